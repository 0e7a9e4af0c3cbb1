#!/usr/bin/env bash
# Runs every test against one moto_server started for the whole run, the checks of deploy/
# (tools/deploy_check.sh), and the web console in Chromium (tools/browser/test.sh). Extra arguments go to the test runner (cargo nextest, or
# cargo test where nextest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets --locked
eval "$(tools/moto/start.sh)"
trap 'kill "$CLAWFLEET_MOTO_PID" 2>/dev/null || true' EXIT

# deploy/: cfn-lint, checkov, parliament, promtool, and the template against the development
# stack on this moto (docs/deploy.md, "Checks").
tools/deploy_check.sh

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --locked --no-fail-fast "$@" || status=$?
fi

# The console as a person uses it: sign in, create, secrets, start, stop, other tenant, admin
# (about 30 s; installs Chromium and Playwright when missing). Screenshots: target/console-screenshots/.
tools/browser/test.sh || status=$?
exit "$status"
