#!/usr/bin/env bash
# Runs the benchmark against a moto_server of its own. Arguments go to clawfleet-bench
# (--scenario all|cold-start|competing|faults, --agents N, --foreign-access-points N,
# --writes N, --workers N, --page-size N, --competitor-share F, --fault-rate F,
# --fault-agents N, --seed N); see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p clawfleet-bench
eval "$(tools/moto/start.sh)"
trap 'kill "$CLAWFLEET_MOTO_PID" 2>/dev/null || true' EXIT
"${CARGO_TARGET_DIR:-target}/debug/clawfleet-bench" "$@"
