#!/usr/bin/env bash
# The side-by-side benchmark against restic, rustic and borg (issues #6 and #21,
# docs/performance.md), in one command on a fresh Debian machine: installs what building cairn
# needs and PostgreSQL (the `pg` corpus runs a real server under pgbench), builds cairn, then
# runs benches/compare/compare.py, which installs missing peers, runs everything in interleaved
# rounds and writes its table into docs/performance.md. Run as root so the page cache can be
# dropped (the PostgreSQL server then runs as the `postgres` user).
#
#   bash scripts/compare.sh                  # pg,events,tree at full size, 6 hours, 3 rounds (~75 min)
#   bash scripts/compare.sh --quick          # the same at scale 0.15, 3 hours (~15 min)
#   bash scripts/compare.sh --corpus a,b,c   # issue #6's generated corpora
#   bash scripts/compare.sh --scale 0.01 --hours 2 --rounds 2 --no-ceilings --out -   # a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
apt_install python3 time findutils
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || apt_install postgresql
command -v setpriv >/dev/null 2>&1 || apt_install util-linux
cargo build --release --quiet
# Compiled now so that measuring the ceilings during the run does not compile anything.
cargo bench --quiet --no-run --bench micro
exec python3 benches/compare/compare.py "$@"
