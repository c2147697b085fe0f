# Sourced by the scripts that need a database of their own for one run (bench, conformance,
# watch-smoke). `start_db [log-file-max]` starts secantusd-rs on a free loopback port with
# its data in a temporary folder, waits until it listens and exports MONGO_URI; `stop_db`
# stops it, waits for it to exit, then removes the folder.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

db_pid=
db_dir=
start_db() {
  db_dir=$(mktemp -d)
  local port
  port=$(free_port)
  .tools/bin/secantusd-rs --port "$port" --storage-path "$db_dir/db" --log-file-max "${1:-16MB}" \
    > "$db_dir/db.log" 2>&1 &
  db_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$db_dir/db.log" 2>/dev/null && break
    kill -0 "$db_pid" 2>/dev/null || { cat "$db_dir/db.log" >&2; echo "secantusd-rs did not start" >&2; exit 1; }
    sleep 0.1
  done
  export MONGO_URI="mongodb://127.0.0.1:${port}/?directConnection=true"
}

stop_db() {
  if [ -n "$db_pid" ]; then
    kill "$db_pid" 2>/dev/null || true
    wait "$db_pid" 2>/dev/null || true
  fi
  if [ -n "$db_dir" ]; then rm -rf "$db_dir"; fi
  db_pid=
  db_dir=
}
