#!/usr/bin/env bash
# The web console in a real browser: Chromium from Debian's packages, driven by Playwright from
# PyPI, against `clawfleet serve` and `clawfleet controller` on moto (tools/browser/console.py
# says what it covers). Installs both when missing (CI runs as root on a fresh machine). Uses
# the moto of the environment (tools/test.sh starts one) or starts its own. Screenshots go to
# target/console-screenshots/.
#
# Usage: tools/browser/test.sh        (after cargo build; tools/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${CLAWFLEET_PYTHON:-python3}
chromium=${CLAWFLEET_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
  echo "installing chromium (Debian package)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: $chromium is missing; install it with: sudo apt-get install -y chromium" >&2
    exit 2
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
if ! "$python" -c 'import importlib.metadata as m; assert m.version("playwright") == "1.65.2"' 2>/dev/null; then
  echo "installing playwright (tools/browser/requirements.txt)" >&2
  "$python" -m pip install --quiet --disable-pip-version-check -r tools/browser/requirements.txt >&2
fi

target=${CARGO_TARGET_DIR:-target}
clawfleet=${CLAWFLEET_BIN:-$target/debug/clawfleet}
[ -x "$clawfleet" ] || cargo build --locked --bin clawfleet
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  eval "$(tools/moto/start.sh)"
  pids+=("$CLAWFLEET_MOTO_PID")
fi
logs=$target/console-browser
mkdir -p "$logs"
name=console-$(date +%s)-$$
stack=$("$python" tools/moto/dev_stack.py --name "$name" 2>"$logs/dev_stack.log") || {
  cat "$logs/dev_stack.log" >&2
  exit 1
}
eval "$stack"
export CLAWFLEET_TABLE=$name
# Secrets outlive agents (recovery window), and moto may be shared with other runs.
export CLAWFLEET_SECRET_PREFIX=/$name/agents/
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

"$clawfleet" bootstrap >/dev/null
# A short resync, so that the admin's fleet summary is fresh within seconds.
"$clawfleet" --log-format json controller --resync-interval 3s \
  --metrics-addr "127.0.0.1:$(free_port)" >"$logs/controller.log" 2>&1 &
pids+=("$!")

tokens=$logs/tokens.yaml
declare -A token
: >"$tokens"
for who in acme globex admin; do
  token[$who]=$who-$("$python" -c 'import secrets; print(secrets.token_hex(16))')
  hash=$(printf '%s' "${token[$who]}" | sha256sum | cut -d' ' -f1)
  if [ "$who" = admin ]; then
    printf -- '- sha256: %s\n  admin: true\n' "$hash" >>"$tokens"
  else
    printf -- '- sha256: %s\n  tenant: %s\n' "$hash" "$who" >>"$tokens"
  fi
done
listen=127.0.0.1:$(free_port)
"$clawfleet" serve --listen "$listen" --metrics-addr "127.0.0.1:$(free_port)" \
  --tokens-file "$tokens" >"$logs/serve.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do
  if "$python" -c "import urllib.request; urllib.request.urlopen('http://$listen/healthz', timeout=1)" 2>/dev/null; then break; fi
  sleep 0.1
done

CONSOLE_URL=http://$listen CONSOLE_CHROMIUM=$chromium \
  CONSOLE_TOKEN_ACME=${token[acme]} CONSOLE_TOKEN_GLOBEX=${token[globex]} CONSOLE_TOKEN_ADMIN=${token[admin]} \
  CONSOLE_SCREENSHOTS=$target/console-screenshots \
  "$python" tools/browser/console.py || {
    echo "controller log: $logs/controller.log; API log: $logs/serve.log" >&2
    exit 1
  }
