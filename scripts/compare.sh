#!/usr/bin/env bash
# The side-by-side benchmark against restic, rustic and borg (issue #6, docs/performance.md),
# in one command on a fresh Debian machine: installs what building cairn needs, builds it,
# then runs benches/compare/compare.py, which installs missing peers, runs everything and
# writes its table into docs/performance.md. Run as root so the page cache can be dropped.
#
#   bash scripts/compare.sh                       # full size: ~1 GB per corpus, 6 hours
#   bash scripts/compare.sh --scale 0.1 --corpus a --hours 2 --out -   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
apt_install python3 time findutils
cargo build --release --quiet
# Compiled now so that measuring the ceilings during the run does not compile anything.
cargo bench --quiet --no-run --bench micro
exec python3 benches/compare/compare.py "$@"
