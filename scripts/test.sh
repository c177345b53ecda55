#!/usr/bin/env bash
# Runs Patchdeck's whole test suite: formatting, lints, dependency audit and
# every test, against real package managers in sandboxes.
# Installs what it needs (Debian packages, cargo-nextest, cargo-deny) when missing.
# Usage: scripts/test.sh            (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "Debian packages for the package-manager sandboxes"
ensure_debs dpkg-dev apt-utils dnf rpm createrepo-c pacman-package-manager makepkg zypper \
  libarchive-tools zstd python3-apt python3-rpm procps systemd openssl python3-aiosmtpd
step "Chromium for the browser tests (crates/patchdeck/tests/web_ui.rs)"
ensure_debs chromium fonts-dejavu-core
ensure_locale de_DE.UTF-8

step "PostgreSQL for the storage and manager tests"
ensure_postgres

step "Rust tools"
ensure_rust_tools

step "Web UI: install, API types up to date, type-check, build and test"
command -v npm >/dev/null || ensure_debs nodejs npm
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run check:api && npm run build && npm test)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny (licenses, bans, sources, advisories)"
cargo deny --log-level error check bans licenses sources
# The RustSec advisory database is a git repository; without a route to it
# (an offline CI machine) the audit cannot run, and we say so loudly.
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "WARNING: the RustSec advisory database could not be fetched; advisories were NOT checked." >&2
fi

step "cargo nextest run (whole workspace)"
cargo nextest run --workspace --locked --no-fail-fast
