#!/usr/bin/env bash
# Runs Patchdeck's benchmarks and prints the numbers recorded in docs/benchmarks.md.
#  1. version comparison throughput (cargo bench -p patchdeck-version)
#  2. `patchdeck-agent scan --no-refresh` on this host against the package-manager commands it runs,
#     replayed from its own debug log, both timed with hyperfine;
#  3. the agent's own share of a scan, from its debug log (scripts/scan_overhead.py);
#  4. the push API: idle memory of `patchdeck-agent serve`, GET /api/v1/packages latency with
#     2,000 installed packages, 100 concurrent mTLS clients (cargo bench --bench push_api);
#  5. the manager on SQLite and PostgreSQL: login latency, a 100-host page of 10,000 hosts
#     (sequential and 8 concurrent clients), idle memory of `patchdeck serve`
#     (cargo bench --bench manager; needs PostgreSQL, started here if none answers).
#  6. pull check-ins: 10,000 simulated agents long-polling a release manager on SQLite, and the
#     measured stream of unchanged check-ins (crates/patchdeck-sim/bench.sh; PATCHDECK_SIM_AGENTS=N).
# Usage: scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_debs hyperfine

step "Version comparison"
cargo bench --locked -p patchdeck-version

step "scan on this host vs. the package-manager commands it runs"
cargo build --release --locked -p patchdeck-agent
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release/patchdeck-agent"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR}/release/patchdeck-agent"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The agent logs every command it runs at debug level; replay exactly those, in order,
# with the same environment, as the baseline.
PATCHDECK_LOG=patchdeck_pkg=debug "$bin" scan --no-refresh --json 2>"$work/log" >/dev/null
{
  echo 'export LC_ALL=C LANG=C LANGUAGE= DEBIAN_FRONTEND=noninteractive'
  sed -n 's/.*patchdeck_pkg::exec: running command=//p' "$work/log" | sed 's/$/ >\/dev\/null 2>\&1/'
} >"$work/baseline.sh"
echo "commands the scan runs:"
sed -n '2,$p' "$work/baseline.sh" | sed 's/ >\/dev\/null 2>&1$//; s/^/  /'
hyperfine --warmup 3 --runs 20 -N \
  --command-name "package-manager commands" "sh $work/baseline.sh" \
  --command-name "patchdeck-agent scan --no-refresh --json" "$bin scan --no-refresh --json"

step "the agent's own share of a scan"
BIN="$bin" python3 scripts/scan_overhead.py

step "push API: idle memory, packages latency, 100 concurrent mTLS clients"
cargo bench --locked -p patchdeck-agent --bench push_api

step "manager: login latency, host list with 10,000 hosts, memory (SQLite and PostgreSQL)"
ensure_postgres
cargo bench --locked -p patchdeck --bench manager

step "pull check-ins: simulated agents on a release manager (SQLite)"
crates/patchdeck-sim/bench.sh
