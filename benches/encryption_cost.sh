#!/usr/bin/env bash
# The CPU cost of encryption, counted in instructions by valgrind (cachegrind without cache
# simulation): the count is the same whatever else the machine runs, unlike wall-clock time on
# this shared 2-core VM, where one run can be 2x off. For snapshot create, restore and
# `repo check --read-data` of a tree of real files, it prints the instructions with
# `--encryption none` and encrypted (the default), and their ratio. The KDF is set to its
# cheapest: the one argon2id run per command is a fixed cost, not a per-byte one.
#   usage: benches/encryption_cost.sh [SOURCE_DIR]    (default /usr/lib/python3.11)
# Results are recorded in docs/performance.md ("Encryption on versus off").
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-/usr/lib/python3.11}"
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package valgrind)" >&2; exit 1; }
cargo build --release --quiet --bin cairn
bin="$PWD/target/release/cairn"
work=$(mktemp -d "${CAIRN_BENCH_DIR:-/var/tmp}/cairn-enc-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench CAIRN_KDF_MEMORY_KIB=8 CAIRN_KDF_PASSES=1

# Instructions executed by one command (all threads), from cachegrind's summary on stderr.
instructions() {
  local out
  out=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null) || {
    echo "failed: $*" >&2; echo "$out" | tail -5 >&2; exit 1; }
  echo "$out" | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}

declare -A count
for mode in none encrypted; do
  repo="$work/repo-$mode"
  if [ "$mode" = none ]; then "$bin" --repo "$repo" --quiet init --encryption none; else "$bin" --repo "$repo" --quiet init; fi
  count[$mode,snapshot]=$(instructions "$bin" --repo "$repo" --quiet snapshot create "$src")
  count[$mode,restore]=$(instructions "$bin" --repo "$repo" --quiet restore latest --target "$work/restored-$mode")
  count[$mode,check]=$(instructions "$bin" --repo "$repo" --quiet repo check --read-data)
  rm -rf "$work/restored-$mode"
done
echo "source: $src ($(du -sb "$src" | cut -f1) bytes, $(find "$src" -type f | wc -l) files)"
echo "| step | instructions, none | instructions, encrypted | encrypted / none |"
echo "|---|---:|---:|---:|"
for step in snapshot restore check; do
  n=${count[none,$step]} e=${count[encrypted,$step]}
  awk -v s="$step" -v n="$n" -v e="$e" 'BEGIN { printf "| %s | %.3g | %.3g | %.3f |\n", s, n, e, e / n }'
done
