#!/usr/bin/env bash
# Installs moto if it is missing, starts it on a free loopback port, waits until it answers,
# and prints `export AWS_...` lines for the environment that reaches it.
#
# Usage: eval "$(tools/moto/start.sh)"      # the server lives until `kill $CLAWFLEET_MOTO_PID`
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${CLAWFLEET_PYTHON:-python3}

if ! "$python" -c 'import moto, flask_cors; assert moto.__version__ == "5.2.1"' 2>/dev/null; then
  echo "installing moto (tools/moto/requirements.txt)" >&2
  "$python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
fi

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=${CLAWFLEET_MOTO_LOG:-/tmp/clawfleet-moto-$port.log}
CLAWFLEET_MOTO_DETACHED=1 nohup "$python" "$here/launcher.py" "$port" >"$log" 2>&1 &
pid=$!

for _ in $(seq 1 300); do
  if "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/data.json', timeout=1)" 2>/dev/null; then
    cat <<ENV
export CLAWFLEET_MOTO_PID=$pid
export CLAWFLEET_TEST_AWS_ENDPOINT=http://127.0.0.1:$port
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_REGION=\${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}
ENV
    echo "moto listening on 127.0.0.1:$port (pid $pid, log $log)" >&2
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "moto exited during start; its log:" >&2
    cat "$log" >&2
    exit 2
  fi
  sleep 0.1
done
echo "moto did not answer on 127.0.0.1:$port within 30 s; log: $log" >&2
kill "$pid" 2>/dev/null || true
exit 2
