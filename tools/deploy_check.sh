#!/usr/bin/env bash
# Checks deploy/ (docs/deploy.md, "Checks"):
#   1. the CloudFormation template is up to date with deploy/policies (render_template.py --check);
#   2. cfn-lint reports nothing;
#   3. checkov reports no failed check (skips are written in the template with their reason);
#   4. parliament finds nothing in any policy document of the template or of deploy/policies
#      (ignores in tools/deploy/parliament-overrides.yaml, each with its reason);
#   5. promtool: the alert rules load and their unit tests pass;
#   6. every alert has a runbook section, a firing and a silent test, and every metric the
#      rules and the dashboard use is exported (check_monitoring.py);
#   7. the template deploys what tools/moto/dev_stack.py creates, on moto (check_equality.py).
#
# Installs cfn-lint, checkov and parliament (tools/deploy/requirements.txt, pinned with
# constraints.txt) into target/deploy-venv, and promtool (Debian's `prometheus` package) when
# it is missing. Uses the moto server at AWS_ENDPOINT_URL when one is given (tools/test.sh
# passes its own), else starts one and stops it on exit. Nothing here reaches the network
# but the package installs: checkov runs with --skip-download and without its PyPI version
# check, in a network namespace of its own where `unshare` allows it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${CLAWFLEET_PYTHON:-python3}
venv=$PWD/target/deploy-venv
step() { printf '== %s\n' "$*"; }

wanted=$(cat tools/deploy/requirements.txt tools/deploy/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$wanted" ]; then
  echo "installing cfn-lint, checkov, parliament (tools/deploy/requirements.txt) into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r tools/deploy/requirements.txt -c tools/deploy/constraints.txt
  echo "$wanted" >"$venv/.installed"
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "promtool is missing: run 'apt-get update && apt-get install -y prometheus' as root" >&2
    exit 2
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
# A private network namespace proves that checkov contacts nothing; fall back where the
# kernel or the container refuses one.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi

step "template up to date with deploy/policies"
"$venv/bin/python" tools/deploy/render_template.py --check

step "cfn-lint"
"$venv/bin/cfn-lint" deploy/cloudformation/clawfleet.yaml
echo "cfn-lint: no findings"

step "checkov"
CKV_SKIP_PACKAGE_UPDATE_CHECK=true "${offline[@]}" "$venv/bin/checkov" --quiet --compact --skip-download \
  --framework cloudformation dockerfile \
  -f deploy/cloudformation/clawfleet.yaml -f deploy/Dockerfile

step "parliament"
"$venv/bin/python" tools/deploy/lint_policies.py

step "promtool"
promtool check rules deploy/monitoring/clawfleet.rules.yaml
(cd deploy/monitoring && promtool test rules clawfleet.rules.test.yaml)

step "monitoring: runbooks, test coverage, exported metrics"
"$venv/bin/python" tools/deploy/check_monitoring.py

step "the template deploys what dev_stack.py creates (moto)"
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  eval "$(tools/moto/start.sh)"
  trap 'kill "$CLAWFLEET_MOTO_PID" 2>/dev/null || true' EXIT
fi
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing} \
  "$venv/bin/python" tools/deploy/check_equality.py
echo "deploy checks passed"
