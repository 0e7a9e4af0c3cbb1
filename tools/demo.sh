#!/usr/bin/env bash
# The quickstart, end to end on a local AWS: start moto, create the development stack (VPC with
# DNS hostnames, private subnets, security group, ECS cluster, EFS file system, template task
# definition), create the table, start the controller and the HTTP API (with a token for the
# tenant acme), apply examples/, wait (`clawfleet wait`) until every example agent is Running,
# and print `clawfleet get` and the addresses.
#
# In a terminal, everything keeps running until Ctrl-C, which stops all it started. Elsewhere
# (CI, scripts) it stops once the agents are Running. CLAWFLEET_DEMO_KEEP=1 keeps it running.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bin clawfleet
clawfleet=$PWD/target/debug/clawfleet
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

eval "$(tools/moto/start.sh)"
pids+=("$CLAWFLEET_MOTO_PID")
eval "$(python3 tools/moto/dev_stack.py)"
export CLAWFLEET_TABLE=${CLAWFLEET_TABLE:-clawfleet-agents}
metrics=${CLAWFLEET_METRICS_ADDR:-127.0.0.1:9090}
log=$(mktemp /tmp/clawfleet-controller.XXXXXX.log)

"$clawfleet" bootstrap
# A resync every 5 minutes: a spec reaches the controller through the table's stream, and a
# crash through the task-state events queue (CLAWFLEET_TASK_EVENTS_QUEUE, from the dev stack).
RUST_LOG=${RUST_LOG:-info} "$clawfleet" --log-format json controller \
  --resync-interval 5m --metrics-addr "$metrics" >"$log" 2>&1 &
pids+=("$!")
echo "controller started (logs: $log)"

# The HTTP API, with one tenant token for acme. Only its SHA-256 goes into the tokens file.
listen=${CLAWFLEET_LISTEN:-127.0.0.1:8080}
token=demo-$(python3 -c 'import secrets; print(secrets.token_hex(16))')
tokens=$(mktemp /tmp/clawfleet-tokens.XXXXXX.yaml)
printf -- '- sha256: %s\n  tenant: acme\n' "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" >"$tokens"
api_log=$(mktemp /tmp/clawfleet-serve.XXXXXX.log)
api_metrics=${CLAWFLEET_API_METRICS_ADDR:-127.0.0.1:9091}
"$clawfleet" serve --listen "$listen" --metrics-addr "$api_metrics" --tokens-file "$tokens" >"$api_log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://$listen/healthz', timeout=1)" 2>/dev/null; then break; fi
  sleep 0.1
done
echo "HTTP API started on http://$listen (access log: $api_log)"

"$clawfleet" apply -f examples/

# `wait` reads each agent at most once a second (never the table's stream) and names the ones
# that did not make it on timeout.
echo "waiting for the example agents (globex-ops is desired stopped)..."
table=$("$clawfleet" get)
running=$(echo "$table" | awk 'NR>1 && $3=="running" {print $1}')
stopped=$(echo "$table" | awk 'NR>1 && $3=="stopped" {print $1}')
# shellcheck disable=SC2086 # one argument per agent id
if ! "$clawfleet" wait $running --for phase=Running --timeout 60s ||
   { [ -n "$stopped" ] && ! "$clawfleet" wait $stopped --for phase=Stopped --timeout 60s; }; then
  echo "controller log: $log" >&2
  exit 1
fi

"$clawfleet" get
echo
# A crash, and its relaunch within seconds, as `clawfleet get --watch` shows it.
echo "an agent crashes (its task is stopped behind clawfleet's back); clawfleet get --watch:"
watch_log=$(mktemp /tmp/clawfleet-watch.XXXXXX.log)
"$clawfleet" get --watch >"$watch_log" 2>&1 &
watch_pid=$!
pids+=("$watch_pid")
sleep 2
python3 tools/moto/crash.py acme-support
sleep 2
kill "$watch_pid" 2>/dev/null || true
sed 's/^/  /' "$watch_log"
"$clawfleet" describe acme-support | sed -n '/Events:/,$p' | tail -6
echo
"$clawfleet" audit && echo "clawfleet audit: no isolation finding"
echo
echo "metrics: http://$metrics/metrics   health: http://$metrics/healthz   ready: http://$metrics/readyz"
echo "HTTP API: http://$listen/v1/agents   OpenAPI: http://$listen/openapi.json   API metrics: http://$api_metrics/metrics"
echo "web console: http://$listen/ (sign in with the tenant's TOKEN)"
"$clawfleet" plan --all

if [ -t 0 ] || [ "${CLAWFLEET_DEMO_KEEP:-0}" = 1 ]; then
  cat <<MSG

Everything keeps running; press Ctrl-C to stop moto, the controller and the API.
The HTTP API as tenant acme (README, "HTTP API"):
  export API=http://$listen TOKEN=$token
From another shell:
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CLAWFLEET_TABLE=$CLAWFLEET_TABLE
  export CLAWFLEET_CLUSTER=$CLAWFLEET_CLUSTER CLAWFLEET_SUBNETS=$CLAWFLEET_SUBNETS CLAWFLEET_SECURITY_GROUPS=$CLAWFLEET_SECURITY_GROUPS
  export CLAWFLEET_FILE_SYSTEM_ID=$CLAWFLEET_FILE_SYSTEM_ID CLAWFLEET_TEMPLATE_TASK_DEFINITION=$CLAWFLEET_TEMPLATE_TASK_DEFINITION
  $clawfleet get
MSG
  wait
fi
