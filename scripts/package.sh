#!/usr/bin/env bash
# `make package`: release builds of every function for Lambda on arm64 (cargo-lambda, which
# brings zig as the cross linker), then each bootstrap's size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/deploy/bin:$PATH"
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
pkgs=()
for f in functions/*/; do pkgs+=(-p "$(basename "$f")"); done
start=$(date +%s)
cargo lambda build --release --arm64 "${pkgs[@]}"
echo "built in $(( $(date +%s) - start )) s"
printf '%-20s %12s\n' function "bootstrap bytes"
for f in functions/*/; do
  name=$(basename "$f")
  size=$(stat -c %s "target/lambda/$name/bootstrap")
  printf '%-20s %12s  (%s MB)\n' "$name" "$size" "$(python3 -c "print(round($size/1048576, 2))")"
done
