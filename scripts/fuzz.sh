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
# The target list lives in one place, fuzz/Cargo.toml (tests/fuzz_replay.rs checks that
# fuzz/targets.rs replays each of them).
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -vx cairn-fuzz)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found in fuzz/Cargo.toml" >&2; exit 1; }
cargo fuzz build --sanitizer=none -O
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzz $t for ${secs}s"
  set +e
  cargo fuzz run --sanitizer=none -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 2>&1 \
    | { grep -E '^(#[0-9]+.*DONE|stat::|==|INFO: -max_total_time|SUMMARY|ERROR|panicked|Done)' || true; }
  # The filter must not hide the run's own status: a target that fails to start, crashes or
  # times out fails this script even when libFuzzer wrote no artifact.
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $t failed (cargo fuzz run exited $status)" >&2
    exit 1
  fi
  # libFuzzer writes crash-* / leak-* / oom-* files on failure.
  if ls "fuzz/artifacts/$t"/* >/dev/null 2>&1; then
    echo "fuzz target $t found a failing input:" >&2
    ls "fuzz/artifacts/$t" >&2
    exit 1
  fi
done
