#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (the RocksDB build
# dependencies, PostgreSQL for the point-in-time recovery test, SeaweedFS for the S3 tests),
# then runs the format check, clippy (warnings denied), and every test in one release build
# (so RocksDB is compiled once): unit, integration, CLI, fault-injection, crash, PostgreSQL
# and S3 tests, fuzz-seed replays.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_test_deps
# Everything is installed now: a test that finds a service missing fails instead of skipping.
export CAIRN_REQUIRE_SERVICES=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --all-targets -- -D warnings
echo "== cargo test"
cargo test --release
# Tests that need root (mounts, owners, device nodes) are marked ignored so that a run without
# root shows them as ignored instead of passing them; as root, run them (and only them).
if [ "$(id -u)" = 0 ]; then
  echo "== cargo test: the tests that need root"
  cargo test --release -- --ignored _as_root
else
  echo "== not root: the tests that need root are left out (listed as ignored above)"
fi
echo "== fuzz (15 s per target)"
bash scripts/fuzz.sh 15
