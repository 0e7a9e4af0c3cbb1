#!/usr/bin/env bash
# Runs schemathesis (property-based API testing from the OpenAPI document) against
# `clawfleet serve` on moto, with a tenant's token. Fails on any 5xx, any response that breaks
# the document (status, content type, headers, body schema), any schema-violating request that
# is accepted, and any route that answers without a valid token.
#
# Installs schemathesis (tools/schemathesis/requirements.txt) into target/schemathesis-venv,
# starts its own moto and server, and stops both on exit. Extra arguments go to
# `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${CLAWFLEET_PYTHON:-python3}
venv=$PWD/target/schemathesis-venv
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "4.32.5"; then
  echo "installing schemathesis (tools/schemathesis/requirements.txt)" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tools/schemathesis/requirements.txt
fi

# The same build as tools/test.sh, so that one of the two finds it done.
cargo build --workspace --all-targets --locked
binary=target/debug/clawfleet

eval "$(tools/moto/start.sh)"
pids+=("$CLAWFLEET_MOTO_PID")
export CLAWFLEET_TABLE=schemathesis-$$
export CLAWFLEET_SECRET_PREFIX=/schemathesis-$$/
"$binary" bootstrap

# Tokens as SHA-256 hashes: the tenant schemathesis acts as, a second tenant whose agent it must
# never reach, and an admin to seed that agent.
tenant=st-tenant-$RANDOM$RANDOM
other=st-other-$RANDOM$RANDOM
admin=st-admin-$RANDOM$RANDOM
hash() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
cat >"$work/tokens.yaml" <<TOKENS
- sha256: $(hash "$tenant")
  tenant: acme
- sha256: $(hash "$other")
  tenant: globex
- sha256: $(hash "$admin")
  admin: true
TOKENS

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
# The tenant limit is raised: the fuzzer sends far more than a tenant may, and 429s would only
# hide the answers it checks (the limit itself is tested in crates/api/tests/routes.rs).
"$binary" serve --listen "127.0.0.1:$port" --metrics-addr 127.0.0.1:0 --tenant-rate-limit 1000000/1000000 --tokens-file "$work/tokens.yaml" 2>"$work/serve.log" &
pids+=("$!")
for _ in $(seq 1 100); do
  if "$python" -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

# Something to find: one agent each for the tenant and for the other tenant.
request() { # METHOD PATH TOKEN [BODY]
  "$python" - "$@" <<'PY'
import sys, urllib.request
method, url, token = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(url, data=body, method=method, headers={
    "Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status < 300, r.status
PY
}
request POST "$base/v1/agents" "$tenant" '{"agent_id": "acme-seed", "plan": "small"}'
request PUT "$base/v1/agents/acme-seed/secrets" "$tenant" '{"SEED_KEY": "seed"}'
request POST "$base/v1/agents" "$admin" '{"agent_id": "globex-seed", "client_id": "globex"}'

set +e
# From the scratch directory, where schemathesis leaves its cache.
(cd "$work" && "$venv/bin/schemathesis" run "$base/openapi.json" \
  --header "Authorization: Bearer $tenant" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,missing_required_header,unsupported_method \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --seed "${SCHEMATHESIS_SEED:-20261125}" \
  --report-dir "$work/report" \
  "$@")
status=$?
set -e

# The other tenant's agent must be exactly as seeded: the fuzzer, acting as acme, cannot reach it.
"$python" - "$base" "$other" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1:3]
req = urllib.request.Request(base + "/v1/agents/globex-seed", headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, timeout=10) as r:
    agent = json.load(r)
assert agent["metadata"]["generation"] == 1, agent
assert agent["metadata"]["deletion_requested_at"] is None, agent
print("globex's agent is untouched after the run")
PY
if grep -q "panicked" "$work/serve.log"; then
  echo "the server panicked:" >&2
  grep -A5 panicked "$work/serve.log" >&2
  exit 1
fi
exit $status
