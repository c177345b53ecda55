#!/usr/bin/env bash
# Builds Patchdeck and runs it on this machine: the manager on its embedded SQLite database
# (data in .patchdeck/ at the top of the repository) and a local agent registered with it as a
# push-mode host. Prints the URL and how to sign in; Ctrl-C stops both.
# Usage: scripts/run.sh [--listen ADDR:PORT]   (default 127.0.0.1:8443)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

listen="127.0.0.1:8443"
if [ "${1:-}" = "--listen" ] && [ -n "${2:-}" ]; then listen=$2; fi
port=${listen##*:}

export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }
command -v npm >/dev/null || ensure_debs nodejs npm

step "Building the web UI"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)

step "Building patchdeck and patchdeck-agent (release)"
cargo build --release --locked -p patchdeck -p patchdeck-agent
bin="${CARGO_TARGET_DIR:-target}/release"

home="$PWD/.patchdeck"
data="$home/manager"
agent="$home/agent"
mkdir -p "$home" "$agent"
chmod 700 "$home"

first_start=0
[ -f "$data/patchdeck.db" ] || first_start=1

step "Starting the manager on https://localhost:$port"
"$bin/patchdeck" serve --data-dir "$data" --listen "$listen" --public-url "https://localhost:$port" \
  --log-format text >"$home/manager.out" 2>"$home/manager.log" &
manager=$!
trap 'kill $manager ${agent_pid:-} 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q "listening on" "$home/manager.out" 2>/dev/null && break
  kill -0 $manager 2>/dev/null || { cat "$home/manager.log" >&2; exit 1; }
  sleep 0.2
done

if [ ! -f "$agent/tls/server.crt" ]; then
  step "Registering this machine's agent as a push-mode host"
  "$bin/patchdeck" --data-dir "$data" --log-format text admin add-push-host --fqdn localhost --address 127.0.0.1 \
    --bundle-dir "$agent/tls"
fi
printf '127.0.0.1\n::1\n' >"$agent/allowlist"
cat >"$agent/agent.yaml" <<YAML
state_dir: $agent/state
push:
  enabled: true
  listen: "127.0.0.1:12443"
  ca_bundle: $agent/tls/ca.crt
  server_cert: $agent/tls/server.crt
  server_key: $agent/tls/server.key
  allowlist: $agent/allowlist
audit:
  file:
    path: $agent/audit.jsonl
  journald:
    mode: "off"
YAML

step "Starting the agent (push API on 127.0.0.1:12443)"
"$bin/patchdeck-agent" --config "$agent/agent.yaml" serve >"$agent/agent.log" 2>&1 &
agent_pid=$!
sleep 1
kill -0 $agent_pid 2>/dev/null || { cat "$agent/agent.log" >&2; exit 1; }

echo
echo "Patchdeck is running."
echo "  Open:     https://localhost:$port  (the certificate is from Patchdeck's own CA: $data/ca.crt)"
if [ $first_start -eq 1 ]; then
  password=$(sed -n 's/.*sign in as user "admin" with password \([^ ]*\).*/\1/p' "$home/manager.out")
  echo "  Sign in:  user admin, password $password"
  echo "            (shown once; you will choose a new password and set up MFA at first login)"
else
  echo "  Sign in:  with the account you set up. Lost the admin password? Run:"
  echo "            $bin/patchdeck --data-dir $data admin reset-password admin"
fi
echo "  Logs:     $home/manager.log, $agent/agent.log"
echo "Press Ctrl-C to stop."
wait $manager
