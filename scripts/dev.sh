#!/usr/bin/env bash
# `make dev`: a local MongoDB-compatible server (unless MONGO_URI is set), migrations, and the
# local gateway in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${MONGO_URI:-}" ]; then
  port="${MONGO_PORT:-27017}"
  mkdir -p .data/db
  .tools/bin/secantusd-rs --port "$port" --storage-path .data/db --log-file-max 16MB \
    > .data/secantusd.log 2>&1 &
  db_pid=$!
  trap 'kill "$db_pid" 2>/dev/null || true; wait "$db_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    grep -q "listening on" .data/secantusd.log 2>/dev/null && break
    kill -0 "$db_pid" 2>/dev/null || { cat .data/secantusd.log; echo "secantusd-rs did not start" >&2; exit 1; }
    sleep 0.1
  done
  export MONGO_URI="mongodb://127.0.0.1:${port}/?directConnection=true"
  echo "secantusd-rs on 127.0.0.1:${port} (data in .data/db)"
fi

# Load generators log in hundreds of users from this one address: the per-address login
# limits (production: 20 OTP requests and 30 verifies per 15 minutes) are raised here.
export OTP_REQUESTS_PER_IP="${OTP_REQUESTS_PER_IP:-100000}"
export VERIFY_ATTEMPTS_PER_IP="${VERIFY_ATTEMPTS_PER_IP:-100000}"
# ... and their users send flat out (production: 30 sends/typing per user per 10 s).
export EVENTS_PER_USER="${EVENTS_PER_USER:-1000000}"

cargo build -q -p local-gateway -p chat-migrations
target/debug/migrate up
target/debug/local-gateway
