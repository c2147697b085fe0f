#!/usr/bin/env bash
# The product's original stack (bench/seed/app.py: FastAPI + python-socketio + motor under
# uvicorn, one worker), for comparing with ours under the same chat-load runs.
#
# Run (`make seed-stack`): serves the seed app in the foreground on PORT (8001) against
# MONGO_URI / MONGO_DB (chat_seed); without MONGO_URI it starts a throwaway database
# (scripts/throwaway-db.sh) and removes it on exit.
#
# Sourced (scripts/bench.sh): defines
#   seed_venv                    create .tools/seed-venv and install bench/seed/requirements.txt
#                                (again whenever that file changes)
#   start_seed PORT DB [LOG]     start the app against $MONGO_URI, database DB, output to LOG
#                                (default: inherited); prints its PID, returns once it answers;
#                                sets seed_pid
#   stop_seed                    stop it and wait for it to exit
set -euo pipefail

seed_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seed_venv_dir="$seed_root/.tools/seed-venv"
seed_pid=

seed_venv() {
  local req="$seed_root/bench/seed/requirements.txt" stamp="$seed_venv_dir/.installed"
  [ -x "$seed_venv_dir/bin/python" ] || python3 -m venv "$seed_venv_dir"
  if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ]; then
    "$seed_venv_dir/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
}

start_seed() {
  local port=$1 db=$2 log=${3:-}
  : "${MONGO_URI:?start_seed needs MONGO_URI}"
  if [ -n "$log" ]; then
    PORT="$port" MONGO_DB="$db" "$seed_venv_dir/bin/python" "$seed_root/bench/seed/app.py" > "$log" 2>&1 &
  else
    PORT="$port" MONGO_DB="$db" "$seed_venv_dir/bin/python" "$seed_root/bench/seed/app.py" &
  fi
  seed_pid=$!
  echo "seed app: pid $seed_pid, http://127.0.0.1:${port} (database ${db})"
  # Ready once the app (and its startup, which creates the indexes) answers.
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:${port}/health" && return 0
    if ! kill -0 "$seed_pid" 2>/dev/null; then
      [ -n "$log" ] && cat "$log" >&2
      echo "the seed app exited before answering" >&2
      seed_pid=
      return 1
    fi
    sleep 0.1
  done
  echo "the seed app did not answer on port ${port} within 60 s" >&2
  stop_seed
  return 1
}

stop_seed() {
  if [ -n "$seed_pid" ]; then
    kill "$seed_pid" 2>/dev/null || true
    wait "$seed_pid" 2>/dev/null || true
  fi
  seed_pid=
}

seed_main() {
  cd "$seed_root"
  seed_venv
  local own_db=
  if [ -z "${MONGO_URI:-}" ]; then
    source scripts/throwaway-db.sh
    start_db
    own_db=1
    echo "throwaway database at $MONGO_URI"
  fi
  # shellcheck disable=SC2064
  trap "stop_seed; ${own_db:+stop_db}" EXIT
  start_seed "${PORT:-8001}" "${MONGO_DB:-chat_seed}"
  local status=0
  wait "$seed_pid" || status=$?
  seed_pid=
  return "$status"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  seed_main
fi
