#!/usr/bin/env bash
# Builds Patchdeck and runs it on this host.
# Until the manager lands, "running Patchdeck" means the agent's scan of this
# host: installed packages, pending updates and security fixes, reboot state.
# Usage: scripts/run.sh [extra `patchdeck-agent scan` flags, e.g. --json or --installed]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }
step "Building patchdeck-agent (release)"
cargo build --release --locked -p patchdeck-agent
bin="${CARGO_TARGET_DIR:-target}/release/patchdeck-agent"
step "patchdeck-agent scan $*"
exec "$bin" scan "$@"
