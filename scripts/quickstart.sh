#!/usr/bin/env bash
# Builds cairn and runs its main job on the embedded default: snapshot a directory into a
# local repository, twice (the second run shows what an unchanged tree costs), then list.
#   usage: scripts/quickstart.sh [DATA_DIR] [REPO_DIR]
# DATA_DIR defaults to this checkout's src/, REPO_DIR to target/demo-repo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps

data="${1:-$PWD/src}"
repo="${2:-$PWD/target/demo-repo}"
cargo build --release
cairn="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
export CAIRN_REPO="$repo"
[ -f "$repo/config" ] || "$cairn" init
"$cairn" snapshot create "$data" --tag demo
"$cairn" snapshot create "$data" --tag demo
"$cairn" snapshot list
echo
echo "repository: $repo  (try: $cairn --repo $repo ls latest, or restore latest --target /tmp/out)"
