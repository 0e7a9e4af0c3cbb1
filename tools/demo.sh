#!/usr/bin/env bash
# The quickstart: on a fresh machine, start the local AWS (moto), create the development stack
# (VPC, subnets, cluster, file system, template task definition), create the table, apply the
# example agents, list them, and print the plan the controller would carry out. With CLAWFLEET_DEMO_KEEP=1 moto keeps running afterwards and
# the environment to reach it is printed, so you can try more commands.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bin clawfleet
clawfleet=target/debug/clawfleet
eval "$(tools/moto/start.sh)"
if [ "${CLAWFLEET_DEMO_KEEP:-0}" != 1 ]; then
  trap 'kill "$CLAWFLEET_MOTO_PID" 2>/dev/null || true' EXIT
fi
export CLAWFLEET_TABLE=${CLAWFLEET_TABLE:-clawfleet-agents}
eval "$(python3 tools/moto/dev_stack.py)"

set -x
"$clawfleet" bootstrap
"$clawfleet" apply -f examples/
"$clawfleet" get
"$clawfleet" describe acme-support
"$clawfleet" plan --all || [ $? = 1 ]   # exit 1: changes are pending, as expected before any reconcile
{ set +x; } 2>/dev/null

if [ "${CLAWFLEET_DEMO_KEEP:-0}" = 1 ]; then
  cat <<MSG

moto keeps running (pid $CLAWFLEET_MOTO_PID). To use it from another shell:
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export CLAWFLEET_CLUSTER=$CLAWFLEET_CLUSTER CLAWFLEET_SUBNETS=$CLAWFLEET_SUBNETS CLAWFLEET_SECURITY_GROUPS=$CLAWFLEET_SECURITY_GROUPS
  export CLAWFLEET_FILE_SYSTEM_ID=$CLAWFLEET_FILE_SYSTEM_ID CLAWFLEET_TEMPLATE_TASK_DEFINITION=$CLAWFLEET_TEMPLATE_TASK_DEFINITION
  $clawfleet get
Stop it with: kill $CLAWFLEET_MOTO_PID
MSG
fi
