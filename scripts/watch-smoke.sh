#!/usr/bin/env bash
# `make watch-smoke`: start `cargo lambda watch` against a throwaway secantusd-rs, log in
# through the HTTP functions (request_otp, verify, me), then stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/deploy/bin:$PATH"

source scripts/throwaway-db.sh
work=$(mktemp -d)
watch_port=$(free_port)
watch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  stop_db
  rm -rf "$work"
}
trap cleanup EXIT
start_db

cargo lambda watch -A 127.0.0.1 -P "$watch_port" --ignore-changes > "$work/watch.log" 2>&1 &
watch_pid=$!
base="http://127.0.0.1:${watch_port}"
for _ in $(seq 1 120); do
  curl -s -o /dev/null "$base/" && break
  kill -0 "$watch_pid" 2>/dev/null || { cat "$work/watch.log"; echo "cargo lambda watch exited" >&2; exit 1; }
  sleep 0.5
done

fail() { echo "watch-smoke FAILED: $*" >&2; tail -40 "$work/watch.log" >&2; exit 1; }
json() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }

mobile="+1415555$(printf '%04d' $((RANDOM % 10000)))"
otp_body=$(curl -s --max-time 120 -X POST "$base/lambda-url/http-request-otp/" \
  -H 'content-type: application/json' -d "{\"mobile\":\"$mobile\"}") || fail "request_otp"
otp=$(echo "$otp_body" | json '["otp"]') || fail "request_otp answered: $otp_body"
echo "request_otp -> $otp_body"
session=$(curl -s --max-time 120 -X POST "$base/lambda-url/http-verify/" \
  -H 'content-type: application/json' -d "{\"mobile\":\"$mobile\",\"otp\":\"$otp\"}") || fail "verify"
token=$(echo "$session" | json '["token"]') || fail "verify answered: $session"
echo "verify -> $session"
me=$(curl -s --max-time 120 "$base/users/me" -H "Authorization: Bearer $token") || fail "me"
[ "$(echo "$me" | json '["mobile"]')" = "$mobile" ] || fail "GET /users/me answered: $me"
echo "GET /users/me (custom route) -> $me"
echo "watch-smoke passed"
