#!/usr/bin/env bash
# `make bench`: release builds, then chat-load against the local gateway (experiments off) at
# 100 and 1,000 connections, MongoDB round trips per delivered message, and each function's
# cold start and binary size. Writes bench/out/*.json and BENCHMARKS.md. Loopback only.
# BENCH_RUNS="200x20 1000x10 sweep10k" runs only those chat-load settings (both stacks), the
# 10,000-connection sweep if named, the round trips, and no cold starts (so only the gateway
# and the tools are built).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
fns=()
for f in functions/*/; do fns+=(-p "$(basename "$f")"); done

echo "== release build (functions, gateway, benchmark tools)"
start=$(date +%s)
if [ -n "${BENCH_RUNS:-}" ]; then
  cargo build --release -p local-gateway -p chat-bench
else
  cargo build --release -p local-gateway -p chat-bench -p chat-migrations "${fns[@]}"
fi
echo "built in $(( $(date +%s) - start )) s"

source scripts/throwaway-db.sh
source scripts/bench-seed.sh
echo "== the seed's own stack (FastAPI + python-socketio + motor): project-local venv"
seed_venv
work=$(mktemp -d)
gw_port=$(free_port)
seed_port=$(free_port)
gw_pid=
cleanup() {
  [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  stop_seed
  stop_db
  rm -rf "$work"
}
trap cleanup EXIT
start_db 64MB

start_gateway() {
  MONGO_DB="bench_$1" RUN_MIGRATIONS=1 CHAT_EXPERIMENTS=off PORT="$gw_port" RUST_LOG=warn \
    PING_INTERVAL_MS=25000 PING_TIMEOUT_MS=20000 SCHEDULE_EVERY_MS=5000 \
    OTP_REQUESTS_PER_IP=1000000 VERIFY_ATTEMPTS_PER_IP=1000000 EVENTS_PER_USER=1000000 \
    target/release/local-gateway > "$work/gw-$1.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:${gw_port}/" && break; sleep 0.1; done
}
stop_gateway() { kill "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null || true; gw_pid=; }
# CPU time (user + system, in clock ticks) a process has used so far.
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
# Runs chat-load ($1: report name, $2: server port, $3: server pid, rest: settings) and
# writes the server's, the database's and chat-load's own CPU over the run to cpu-<name>.json
# (chat-load's from bash's `time`: its user and system seconds, logins and connects included).
measured() {
  local name=$1 port=$2 pid=$3; shift 3
  local s0 d0 load_cpu
  s0=$(cpu "$pid"); d0=$(cpu "$db_pid")
  local TIMEFORMAT='%3U %3S'
  { time target/release/chat-load --http "http://127.0.0.1:${port}" --ws "ws://127.0.0.1:${port}/socket.io/" \
    --duration 300 --json "$out/load-$name.json" "$@" 2>&4 \
    || echo "chat-load $name reported loss, duplicates, reordering or errors"; } 4>&2 2> "$work/load-cpu-$name"
  load_cpu=$(awk 'END { printf "%.3f", $1 + $2 }' "$work/load-cpu-$name")
  echo "{\"server_ticks\": $(( $(cpu "$pid") - s0 )), \"db_ticks\": $(( $(cpu "$db_pid") - d0 )), \"ticks_per_second\": $ticks, \"load_cpu_seconds\": ${load_cpu:-null}}" \
    > "$out/cpu-$name.json"
}

load() {
  local name=$1; shift
  echo "== chat-load $name: $*"
  start_gateway "$name"
  measured "$name" "$gw_port" "$gw_pid" "$@"
  stop_gateway
}
# The same run against the seed's stack, on the same database server.
load_seed() {
  local name=$1; shift
  echo "== chat-load seed-$name: $*"
  start_seed "$seed_port" "bench_seed_$name" "$work/seed-$name.log"
  measured "seed-$name" "$seed_port" "$seed_pid" "$@"
  stop_seed
}
both() {
  if [ -n "${BENCH_RUNS:-}" ] && [[ " $BENCH_RUNS " != *" $1 "* ]]; then return; fi
  load "$@"; load_seed "$@"
}
both 100-paced --users 100 --messages 50 --rate 5
both 100-flat --users 100 --messages 50
both 200x20 --users 200 --messages 20
both 1000-light --users 1000 --messages 10 --rate 0.2
both 1000x10 --users 1000 --messages 10
both 1000-paced --users 1000 --messages 20 --rate 1
both 1000-flat --users 1000 --messages 20

if [ -z "${BENCH_RUNS:-}" ] || [[ " $BENCH_RUNS " == *" sweep10k "* ]]; then
  echo "== 10,000 connections held open: the sharded sweep"
  MONGO_DB=bench_sweep RUN_MIGRATIONS=1 CHAT_EXPERIMENTS=off PORT="$gw_port" RUST_LOG=warn \
    PING_INTERVAL_MS=15000 PING_TIMEOUT_MS=30000 SCHEDULE_EVERY_MS=20000 \
    OTP_REQUESTS_PER_IP=1000000 VERIFY_ATTEMPTS_PER_IP=1000000 \
    target/release/local-gateway > "$work/gw-sweep.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:${gw_port}/" && break; sleep 0.1; done
  target/release/bench-sweep --http "http://127.0.0.1:${gw_port}" --ws "ws://127.0.0.1:${gw_port}/socket.io/" \
    --connections 10000 --per-user 10 --concurrency 16 --schedule-ms 20000 --observe-secs 70 \
    --server-pid "$gw_pid" --db-pid "$db_pid" --json "$out/sweep.json" || echo "bench-sweep: not every connection was kept"
  stop_gateway
fi

echo "== MongoDB round trips per delivered message"
MESSAGES=300 target/release/bench-roundtrips | tee "$out/roundtrips.json"
echo "== the same with an AWS-like 15 ms on every @connections post"
POST_LATENCY_MS=15 MESSAGES=300 target/release/bench-roundtrips | tee "$out/roundtrips-15ms.json"
echo "== MongoDB commands per delivered message under load (chat-load 200 x 20), by collection"
LOAD_USERS=200 LOAD_MESSAGES=20 target/release/bench-roundtrips | tee "$out/commands-200x20.json"

if [ -z "${BENCH_RUNS:-}" ]; then
  echo "== cold starts"
  MONGO_DB=bench_coldstart target/release/migrate up > /dev/null
  target/release/bench-coldstart --bin-dir target/release --runs 9 --json "$out/coldstart.json"
fi

python3 scripts/bench_report.py "$out" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
