#!/usr/bin/env bash
# `make conformance`: the protocol conformance server on localhost:3000 (PORT to change), with
# a throwaway secantusd-rs. Ctrl-C stops both. Run the official Engine.IO / Socket.IO test
# suites' websocket cases against it.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
db_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.tools/bin/secantusd-rs --port "$db_port" --storage-path "$work/db" --log-file-max 16MB > "$work/db.log" 2>&1 &
db_pid=$!
trap 'kill "$db_pid" 2>/dev/null; wait "$db_pid" 2>/dev/null; rm -rf "$work"' EXIT
cargo build -q -p conformance-server
MONGO_URI="mongodb://127.0.0.1:${db_port}/?directConnection=true" target/debug/conformance-server
