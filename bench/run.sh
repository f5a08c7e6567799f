#!/usr/bin/env bash
# Builds the portal and the benchmark in release mode, then runs the benchmark.
# Arguments are passed on: bash bench/run.sh --concurrency 1000 --duration 20
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p portal -p portal-bench
target_dir="${CARGO_TARGET_DIR:-target}"
ulimit -n 65536 2>/dev/null || true
exec "$target_dir/release/portal-bench" "$@"
