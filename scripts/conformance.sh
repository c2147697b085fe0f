#!/usr/bin/env bash
# `make conformance`: the protocol conformance server on localhost:3000 (PORT to change), with
# a throwaway secantusd-rs. Ctrl-C stops both. Run the official Engine.IO / Socket.IO test
# suites (long-polling, upgrade and websocket cases) against it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/throwaway-db.sh
trap stop_db EXIT
start_db
cargo build -q -p conformance-server
target/debug/conformance-server
