#!/usr/bin/env bash
# The pull check-in benchmark (docs/benchmarks.md, "Pull check-ins (agent simulator)"):
# a release `patchdeck serve` on SQLite in a temporary data dir on 127.0.0.1, N simulated agents
# (`patchdeck-sim`) enrolled with a real registration token and long-polling with their own
# certificates, and a measured stream of unchanged check-ins at the fleet's natural rate.
# Prints the simulator's JSON summary, then the manager's warnings and errors.
#
# Usage: crates/patchdeck-sim/bench.sh
#   PATCHDECK_SIM_AGENTS=10000   agents (N)
#   PATCHDECK_SIM_INTERVAL=300   check-in interval (S), seconds: the long-poll's wait, and the
#                                measured stream runs at N/S check-ins per second
#   PATCHDECK_SIM_DURATION=120   measured window (D), seconds
#   PATCHDECK_SIM_WORK=DIR       keep the manager's data dir and the agents' state in DIR instead of
#                                a temporary directory; a second run with the same DIR enrolls nobody
#   PATCHDECK_SIM_ARGS="..."     more patchdeck-sim flags, e.g. "--http1" or "--ramp-secs 60"
#   PATCHDECK_SIM_SKIP_BUILD=1   use the release binaries already built
set -euo pipefail
cd "$(dirname "$0")/../.."

n=${PATCHDECK_SIM_AGENTS:-10000}
interval=${PATCHDECK_SIM_INTERVAL:-300}
duration=${PATCHDECK_SIM_DURATION:-120}

if [ -z "${PATCHDECK_SIM_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -p patchdeck --bin patchdeck
  cargo build --release --locked -p patchdeck-sim
fi
release="${CARGO_TARGET_DIR:-$(pwd)/target}/release"

if [ -n "${PATCHDECK_SIM_WORK:-}" ]; then
  work=$PATCHDECK_SIM_WORK
  keep=1
  mkdir -p "$work"
else
  work=$(mktemp -d)
  keep=0
fi
manager_pid=""
cleanup() {
  if [ -n "$manager_pid" ] && kill -0 "$manager_pid" 2>/dev/null; then
    kill -TERM "$manager_pid"
    wait "$manager_pid" || true
  fi
  if [ "$keep" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# Every held check-in is an open connection, so the manager needs a descriptor per agent (plus
# one per connection of the measured stream); the simulator raises its own limit itself.
ulimit -n "$(ulimit -Hn)"
echo "RLIMIT_NOFILE for the manager: $(ulimit -n)"

# The configuration: the defaults except
#  - auth.login_attempts_per_minute = 10000 (its maximum; default 20): enrollment is rate-limited
#    per source address like logins, and every simulated agent enrolls from 127.0.0.1. The
#    simulator waits out 429s beyond it.
#  - agents.checkin_interval_secs = the simulated interval (300 is also the default).
cat >"$work/patchdeck.toml" <<EOF
[auth]
login_attempts_per_minute = 10000

[agents]
checkin_interval_secs = $interval
EOF

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Only what we pass: no PATCHDECK_* or RUST_LOG from the caller's environment. `env` execs the
# manager, so $! is the manager's own pid (the simulator reads its CPU time and memory).
manager=(env -i PATH="$PATH" HOME="$HOME" "$release/patchdeck" --config "$work/patchdeck.toml"
  --data-dir "$work/data" --log-format text)
"${manager[@]}" serve --listen "127.0.0.1:$port" --public-url "https://localhost:$port" \
  >"$work/manager.out" 2>"$work/manager.log" &
manager_pid=$!
for _ in $(seq 1 240); do
  grep -q "listening on" "$work/manager.out" 2>/dev/null && break
  if ! kill -0 "$manager_pid" 2>/dev/null; then
    cat "$work/manager.log" >&2
    exit 1
  fi
  sleep 0.5
done
grep -q "listening on" "$work/manager.out" || { echo "the manager did not start" >&2; exit 1; }
echo "manager: pid $manager_pid on 127.0.0.1:$port, data dir $work/data"

token=$("${manager[@]}" admin create-token --seats "$n" --expires 2h --label "patchdeck-sim" 2>/dev/null)

status=0
# The token goes through the environment, not the command line. PATCHDECK_SIM_ARGS is split into
# words on purpose.
# shellcheck disable=SC2086
PATCHDECK_SIM_TOKEN="$token" "$release/patchdeck-sim" \
  --server "https://localhost:$port" --ca-cert "$work/data/ca.crt" \
  --agents "$n" --interval-secs "$interval" --duration-secs "$duration" \
  --state-dir "$work/sim" --manager-pid "$manager_pid" --output "$work/summary.json" \
  ${PATCHDECK_SIM_ARGS:-} || status=$?

kill -TERM "$manager_pid"
wait "$manager_pid" || echo "the manager exited with status $?" >&2
manager_pid=""
warnings=$(grep -cE '\b(WARN|ERROR)\b' "$work/manager.log" || true)
echo "manager log: $(wc -l <"$work/manager.log") lines, $warnings warnings or errors"
grep -E '\b(WARN|ERROR)\b' "$work/manager.log" | head -n 20 || true
if [ "$keep" = 1 ]; then echo "kept: $work (summary.json, manager.log)"; fi
exit "$status"
