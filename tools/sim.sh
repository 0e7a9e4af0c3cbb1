#!/usr/bin/env bash
# Runs the fleet simulation (crates/sim) in a release build: the controller against an
# in-memory AWS on a virtual clock. Arguments go to clawfleet-sim (--sizes 1000,5000,
# --wave 5000, --max-concurrent-replacements 10,100, --stress 100000, --workers N,
# --foreign-access-points N, --plots DIR); see docs/benchmarks.md. No AWS, no moto.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release -p clawfleet-sim
"${CARGO_TARGET_DIR:-target}/release/clawfleet-sim" --plots docs/plots "$@"
