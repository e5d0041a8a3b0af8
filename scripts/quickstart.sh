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
# The repository is encrypted (the default). Without a password source of the user's own, the
# demo keeps a generated one beside the repository, readable only by its owner.
if [ -z "${CAIRN_PASSWORD_FILE:-}${CAIRN_PASSWORD_COMMAND:-}${CAIRN_PASSWORD:-}" ]; then
  export CAIRN_PASSWORD_FILE="$repo.password"
  if [ ! -s "$CAIRN_PASSWORD_FILE" ]; then
    mkdir -p "$(dirname "$CAIRN_PASSWORD_FILE")"
    (umask 077 && head -c 24 /dev/urandom | base64 > "$CAIRN_PASSWORD_FILE")
    echo "generated the demo repository's password: $CAIRN_PASSWORD_FILE (keep it: without it the repository cannot be read)"
  fi
fi
[ -f "$repo/config" ] || "$cairn" init
"$cairn" snapshot create "$data" --tag demo
"$cairn" snapshot create "$data" --tag demo
"$cairn" snapshot list
echo
echo "repository: $repo, password file: ${CAIRN_PASSWORD_FILE:-(your own password source)}"
pw=""
[ -n "${CAIRN_PASSWORD_FILE:-}" ] && pw="CAIRN_PASSWORD_FILE=$CAIRN_PASSWORD_FILE "
echo "try:"
echo "  $pw$cairn --repo $repo ls latest"
echo "  $pw$cairn --repo $repo restore latest --target /tmp/cairn-demo-restore"
