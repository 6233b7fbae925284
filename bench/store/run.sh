#!/usr/bin/env bash
# Durable puts/s and gets/s of tresor's KV engine beside raw redb doing the
# same work, in the same run. Usage: bench/store/run.sh [--puts N] [--gets N] [--threads N]
# Set BENCH_DIR to a directory on the disk to measure (default: target/).
set -euo pipefail
cd "$(dirname "$0")/../.."
export BENCH_DIR="${BENCH_DIR:-$PWD/target}"
mkdir -p "$BENCH_DIR"
cargo run --quiet --release -p tresor-bench-store -- "$@"
