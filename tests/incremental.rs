//! Incremental snapshots cost what changed: sealed segments are not read, appends cost about
//! the appended bytes, pages rewritten in place cost about their chunks, and an unchanged tree
//! costs nothing.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

use cairn::chunker::ChunkerParams;
use cairn::repo::IndexKind;
use common::{Rng, TestRepo};

const SEGMENT_BYTES: usize = 64 << 20;

fn append(path: &std::path::Path, data: &[u8]) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

#[test]
fn hourly_segments_cost_only_the_appended_bytes() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let max_chunk = u64::from(ChunkerParams::default().max_bytes);
    let data = repo.dir.path().join("segments");
    fs::create_dir_all(&data).unwrap();
    let mut rng = Rng::new(7);
    // Hour 0: two sealed segments and an active one at 40 MiB.
    for i in 0..2 {
        fs::write(data.join(format!("seg-{i:04}.log")), rng.bytes(SEGMENT_BYTES)).unwrap();
    }
    let mut active = 2;
    let mut active_len = 40 << 20;
    fs::write(data.join(format!("seg-{active:04}.log")), rng.bytes(active_len)).unwrap();
    repo.snapshot(&[&data]);
    for hour in 1..=6 {
        // Fill the active segment, seal it, start the next with 16 MiB.
        let fill = SEGMENT_BYTES - active_len;
        append(&data.join(format!("seg-{active:04}.log")), &rng.bytes(fill));
        active += 1;
        active_len = 16 << 20;
        append(&data.join(format!("seg-{active:04}.log")), &rng.bytes(active_len));
        let appended = (fill + active_len) as u64;
        let before = repo.stored_bytes();
        let report = repo.snapshot(&[&data]);
        let growth = repo.stored_bytes() - before;
        let changed_files = 2;
        let bound = appended + appended / 10 + changed_files * max_chunk;
        assert!(growth <= bound, "hour {hour}: grew {growth} bytes for {appended} appended (bound {bound})");
        assert!(growth >= appended, "hour {hour}: grew only {growth} for {appended} appended: data missing?");
        // Only the two segments that changed were read; every sealed one was skipped.
        let read: Vec<_> = report.read_paths.iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
        assert_eq!(read, vec![format!("seg-{:04}.log", active - 1), format!("seg-{active:04}.log")], "hour {hour}");
        assert_eq!(report.snapshot.summary.files_read, 2);
    }
    let target = repo.dir.path().join("restored");
    repo.restore_latest(&target);
    common::assert_same_tree(&data, &target);
}

#[test]
fn pages_rewritten_in_place_cost_about_their_chunks() {
    const FILE_BYTES: usize = 256 << 20;
    const PAGE: usize = 8192;
    let repo = TestRepo::new(IndexKind::Persistent);
    let dir = repo.dir.path().join("db");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("table.db");
    let mut rng = Rng::new(11);
    fs::write(&file, rng.bytes(FILE_BYTES)).unwrap();
    let first = repo.snapshot(&[&dir]);
    // Chunk boundaries of the first snapshot, to compute which chunks the rewrites touch.
    let r = repo.open(cairn::Access::Read);
    let node = cairn::ops::select::find_node(
        &r,
        &first.snapshot,
        fs::canonicalize(&file).unwrap().to_str().unwrap().as_bytes(),
    )
    .unwrap()
    .unwrap();
    let chunks = r.file_chunks(&node).unwrap();
    drop(r);
    let mut bounds = Vec::new();
    let mut off = 0u64;
    for c in chunks {
        bounds.push((off, off + u64::from(c.len)));
        off += u64::from(c.len);
    }
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    let pages = 40;
    let mut touched = std::collections::BTreeSet::new();
    for _ in 0..pages {
        let page = rng.below((FILE_BYTES / PAGE) as u64);
        let at = page * PAGE as u64;
        f.write_all_at(&rng.bytes(PAGE), at).unwrap();
        for (i, (s, e)) in bounds.iter().enumerate() {
            if *s < at + PAGE as u64 && at < *e {
                touched.insert(i);
            }
        }
    }
    drop(f);
    let before = repo.stored_bytes();
    repo.snapshot(&[&dir]);
    let growth = repo.stored_bytes() - before;
    let touched_bytes: u64 = touched.iter().map(|i| bounds[*i].1 - bounds[*i].0).sum();
    // A rewritten page can move a cut point, changing at most the following chunk as well.
    let max_chunk = u64::from(ChunkerParams::default().max_bytes);
    let bound = touched_bytes + touched_bytes / 10 + touched.len() as u64 * max_chunk / 2 + (256 << 10);
    assert!(growth <= bound, "grew {growth} bytes; chunks touched hold {touched_bytes} (bound {bound})");
    assert!(growth >= (pages * PAGE) as u64 / 2, "grew only {growth}");
    assert!(growth < FILE_BYTES as u64 / 20, "grew {growth}: most of the file was stored again");
}

/// A page store's file (a PostgreSQL relation in a data directory, or one named by `--paged`)
/// is cut into aligned 32 KiB blocks: rewriting pages adds exactly the blocks holding them,
/// where content-defined cuts may also change a neighbour (the test above).
#[test]
fn paged_files_cost_exactly_the_blocks_of_their_rewritten_pages() {
    const FILE_BYTES: usize = 64 << 20;
    const PAGE: u64 = 8192;
    let block = u64::from(ChunkerParams::default().page_block());
    let repo = TestRepo::new(IndexKind::Persistent);
    let data = repo.dir.path().join("pgdata");
    let mut rng = Rng::new(12);
    common::write_file(&data.join("PG_VERSION"), b"16\n");
    common::write_file(&data.join("base/5/16384"), &rng.bytes(FILE_BYTES));
    common::write_file(&data.join("app/state.redb"), &rng.bytes(FILE_BYTES / 4));
    let snapshot = |r: &cairn::Repository| {
        let opts =
            cairn::ops::BackupOptions { paths: vec![data.clone()], paged: vec!["*.redb".into()], ..Default::default() };
        cairn::ops::backup(r, &opts, &cairn::progress::NoProgress).unwrap()
    };
    let first = snapshot(&repo.open(cairn::Access::Write));
    assert_eq!(first.paged_files, 2, "the relation file and the --paged one");
    let mut blocks = std::collections::BTreeSet::new();
    for (name, bytes) in [("base/5/16384", FILE_BYTES), ("app/state.redb", FILE_BYTES / 4)] {
        let f = OpenOptions::new().write(true).open(data.join(name)).unwrap();
        for _ in 0..40 {
            let at = rng.below(bytes as u64 / PAGE) * PAGE;
            f.write_all_at(&rng.bytes(PAGE as usize), at).unwrap();
            blocks.insert((name, at / block));
        }
    }
    let second = snapshot(&repo.open(cairn::Access::Write));
    let r = repo.open(cairn::Access::Read);
    let mut changed = std::collections::BTreeSet::new();
    for name in ["base/5/16384", "app/state.redb"] {
        let path = fs::canonicalize(data.join(name)).unwrap();
        let chunks = |snap: &cairn::snapshot::Snapshot| {
            let node = cairn::ops::select::find_node(&r, snap, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
            r.file_chunks(&node).unwrap()
        };
        let (before, after) = (chunks(&first.snapshot), chunks(&second.snapshot));
        assert!(after.iter().all(|c| u64::from(c.len) == block), "{name}: every chunk one whole block");
        assert_eq!(before.len(), after.len());
        changed.extend(
            before.iter().zip(&after).enumerate().filter(|(_, (a, b))| a.id != b.id).map(|(i, _)| (name, i as u64)),
        );
    }
    assert_eq!(changed, blocks, "exactly the blocks holding a rewritten page changed");
    assert!(second.snapshot.summary.bytes_added < (blocks.len() as u64 + 8) * block, "{:?}", second.snapshot.summary);
    let target = repo.dir.path().join("restored");
    repo.restore_latest(&target);
    common::assert_same_tree(&data, &target);
}

#[test]
fn unchanged_tree_adds_nothing_and_reads_nothing() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let src = repo.dir.path().join("src");
    common::generate_tree(&src, 3, 8 << 20);
    let first = repo.snapshot(&[&src]);
    assert!(first.snapshot.summary.files_read > 0);
    let packs_before = common::dir_bytes(&repo.path().join("packs"));
    let second = repo.snapshot(&[&src]);
    let s = &second.snapshot.summary;
    assert_eq!(second.snapshot.parent, Some(first.id));
    assert_eq!((s.files_read, s.bytes_read), (0, 0), "unchanged files were read");
    assert_eq!((s.bytes_added, s.chunks_added, s.packs_written), (0, 0, 0));
    assert_eq!(common::dir_bytes(&repo.path().join("packs")), packs_before);
    assert!(second.read_paths.is_empty());
    assert_eq!(second.snapshot.root, first.snapshot.root, "same tree, same root id");
}

fn snapshot_append_only(repo: &TestRepo, dir: &std::path::Path) -> cairn::ops::BackupReport {
    let r = repo.open(cairn::Access::Write);
    let opts = cairn::ops::BackupOptions {
        paths: vec![dir.to_path_buf()],
        append_only: vec!["*.log".into()],
        record_reads: true,
        ..Default::default()
    };
    cairn::ops::backup(&r, &opts, &cairn::progress::NoProgress).unwrap()
}

#[test]
fn append_only_files_are_read_from_their_last_chunk_on() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let max_chunk = u64::from(ChunkerParams::default().max_bytes);
    let dir = repo.dir.path().join("queue");
    let mut rng = Rng::new(31);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("seg-1.log"), rng.bytes(24 << 20)).unwrap();
    fs::write(dir.join("state.db"), rng.bytes(4 << 20)).unwrap();
    snapshot_append_only(&repo, &dir);

    // Grows by 1 MiB: only the last chunk and the new MiB are read.
    append(&dir.join("seg-1.log"), &rng.bytes(1 << 20));
    let r = snapshot_append_only(&repo, &dir);
    assert_eq!(r.appended_files, 1);
    let read = r.snapshot.summary.bytes_read;
    assert!(read >= 1 << 20 && read <= (1 << 20) + max_chunk, "read {read} bytes for a 1 MiB append");

    // A file that is not declared append-only is read whole when it grows.
    append(&dir.join("state.db"), &rng.bytes(1 << 20));
    let r = snapshot_append_only(&repo, &dir);
    assert_eq!((r.appended_files, r.snapshot.summary.bytes_read), (0, 5 << 20));

    // The old tail changed: the proof fails and the file is read whole.
    let f = OpenOptions::new().write(true).open(dir.join("seg-1.log")).unwrap();
    f.write_all_at(b"rewritten in place", (25 << 20) - 100).unwrap();
    drop(f);
    append(&dir.join("seg-1.log"), &rng.bytes(1 << 20));
    let r = snapshot_append_only(&repo, &dir);
    assert_eq!(r.appended_files, 0);
    assert_eq!(r.snapshot.summary.bytes_read, 26 << 20);

    let target = repo.dir.path().join("restored");
    repo.restore_latest(&target);
    common::assert_same_tree(&dir, &target);
}
