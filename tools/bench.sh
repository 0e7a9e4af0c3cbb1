#!/usr/bin/env bash
# Runs the benchmark against a moto_server of its own. Arguments go to clawfleet-bench
# (--agents N, --writes N, --workers N).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p clawfleet-bench
eval "$(tools/moto/start.sh)"
trap 'kill "$CLAWFLEET_MOTO_PID" 2>/dev/null || true' EXIT
target/debug/clawfleet-bench "$@"
