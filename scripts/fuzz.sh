#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), starting from the committed seeds.
# Needs cargo-fuzz (installed if missing). Stable toolchain: --sanitizer=none.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config pack tree snapshot index_value wal_record lock)
cargo fuzz build --sanitizer=none -O
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzz $t for ${secs}s"
  cargo fuzz run --sanitizer=none -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+.*DONE|stat::|==|INFO: -max_total_time|SUMMARY|ERROR|panicked|Done)' || true
  # libFuzzer writes crash-* / leak-* / oom-* files on failure.
  if ls "fuzz/artifacts/$t"/* >/dev/null 2>&1; then
    echo "fuzz target $t found a failing input:" >&2
    ls "fuzz/artifacts/$t" >&2
    exit 1
  fi
done
