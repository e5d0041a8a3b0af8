#!/usr/bin/env bash
# Generates tests/fixtures/v1-repo (a format-version-1 repository) and its manifest
# tests/fixtures/v1-repo.manifest. It was run once with the cairn of commit 2c965af, the last
# build that wrote format version 1:
#
#   CAIRN=/path/to/cairn-at-2c965af scripts/make-v1-fixture.sh
#
# Rerunning it with a newer cairn would write a newer format: the committed fixture is the
# record of what version 1 wrote, and must not be regenerated. tests/compat.rs lists, restores
# (byte for byte against the manifest) and checks it with the current build.
#
# The repository uses 1 KiB average chunks (--chunk-kib 1) so that big.log, 1.5 MiB of a
# repeated 4 KiB pattern, has more than 1024 chunks (a chunk list stored in pieces) while its
# data deduplicates to a few chunks. The RocksDB index and any locks are left out: the index
# is derived data, rebuilt from the pack trailers by whoever opens the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=${CAIRN:-target/release/cairn}
out=$PWD/tests/fixtures/v1-repo
manifest=$PWD/tests/fixtures/v1-repo.manifest
# A fixed source path: snapshots record the absolute path they were taken of.
src=/tmp/cairn-v1-fixture/src
rm -rf /tmp/cairn-v1-fixture "$out" "$manifest"
mkdir -p "$src/dir/nested/deeper" "$src/private"
repo=/tmp/cairn-v1-fixture/repo

printf 'hello, cairn format 1\n' >"$src/hello.txt"
python3 - "$src" <<'PY'
import random, sys, os
src = sys.argv[1]
r = random.Random(1)
with open(os.path.join(src, "dir/notes.txt"), "w") as f:
    for i in range(300):
        f.write('{"id":%d,"kind":"webhook.delivered","tenant":%d}\n' % (i, r.randrange(500)))
with open(os.path.join(src, "dir/nested/deeper/data.bin"), "wb") as f:
    f.write(bytes(r.randrange(256) for _ in range(24 * 1024)))
pattern = bytes(r.randrange(256) for _ in range(4096))
with open(os.path.join(src, "big.log"), "wb") as f:
    f.write(pattern * 384)
PY
: >"$src/dir/empty"
printf 'secret\n' >"$src/private/key"
chmod 0600 "$src/private/key"
chmod 0700 "$src/private"
chmod 0640 "$src/dir/notes.txt"
ln -s dir/notes.txt "$src/link"
ln -s /nonexistent/target "$src/dangling"
touch -h -d '2026-01-01 00:00:00 UTC' "$src"/* "$src"/dir/* "$src"/dir/nested/deeper/*

write_manifest() { # snapshot number
  (cd "$src" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
    p=${p#./}
    if [ -L "$p" ]; then echo "$1 l $(readlink "$p") $p"
    elif [ -d "$p" ]; then echo "$1 d $(stat -c %a "$p") $p"
    else echo "$1 f $(sha256sum <"$p" | cut -d' ' -f1) $(stat -c %a "$p") $p"; fi
  done) >>"$manifest"
}

"$CAIRN" --repo "$repo" init --chunk-kib 1
"$CAIRN" --repo "$repo" snapshot create --host fixture --tag first --time '2026-01-01 00:00:00' "$src"
write_manifest 1
# The second snapshot: a grown log, a changed and a new file, a removed one.
printf 'line appended after the first snapshot\n' >>"$src/big.log"
printf 'hello again\n' >"$src/hello.txt"
printf 'new in two\n' >"$src/dir/new.txt"
rm "$src/dir/empty"
"$CAIRN" --repo "$repo" snapshot create --host fixture --tag second --time '2026-01-02 00:00:00' "$src"
write_manifest 2

mkdir -p "$out"
cp -a "$repo/config" "$repo/packs" "$repo/snapshots" "$out/"
[ -d "$repo/wal" ] && cp -a "$repo/wal" "$out/"
"$CAIRN" --repo "$repo" snapshot list
du -sh "$out"
