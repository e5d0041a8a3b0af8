//! restore(snapshot(tree)) == tree, for generated trees and for arbitrary small ones.

mod common;

use std::fs;
use std::path::Path;

use cairn::ops::{self, RestoreOptions};
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, SnapshotSpec};
use common::{assert_same_tree, generate_tree, write_file, TestRepo};
use proptest::prelude::*;

#[test]
fn generated_tree_round_trips_through_rocksdb_index() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let src = repo.dir.path().join("src");
    generate_tree(&src, 1, 64 << 20);
    let report = repo.snapshot(&[&src]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let target = repo.dir.path().join("restored");
    let restored = repo.restore_latest(&target);
    assert!(restored.failed.is_empty(), "{:?}", restored.failed);
    assert_same_tree(&src, &target);
}

#[test]
fn generated_tree_round_trips_through_memory_index() {
    let repo = TestRepo::new(IndexKind::Memory);
    let src = repo.dir.path().join("src");
    generate_tree(&src, 2, 3 << 20);
    repo.snapshot(&[&src]);
    let target = repo.dir.path().join("restored");
    repo.restore_latest(&target);
    assert_same_tree(&src, &target);
}

#[test]
fn generated_tree_round_trips_unencrypted() {
    for kind in [IndexKind::Persistent, IndexKind::Memory] {
        let repo = TestRepo::unencrypted(kind);
        let src = repo.dir.path().join("src");
        generate_tree(&src, 3, 3 << 20);
        repo.snapshot(&[&src]);
        let target = repo.dir.path().join("restored");
        repo.restore_latest(&target);
        assert_same_tree(&src, &target);
        assert!(!repo.open(Access::Read).is_encrypted());
    }
}

#[test]
fn several_paths_land_under_their_full_names() {
    let repo = TestRepo::new(IndexKind::Memory);
    let a = repo.dir.path().join("one/a");
    let b = repo.dir.path().join("two/b");
    write_file(&a.join("x"), b"hello");
    write_file(&b.join("y"), b"world");
    repo.snapshot(&[&a, &b]);
    let target = repo.dir.path().join("restored");
    repo.restore_latest(&target);
    let under = |p: &Path| target.join(fs::canonicalize(p).unwrap().strip_prefix("/").unwrap());
    assert_eq!(fs::read(under(&a).join("x")).unwrap(), b"hello");
    assert_eq!(fs::read(under(&b).join("y")).unwrap(), b"world");
}

#[test]
fn include_patterns_select_names_and_paths() {
    let repo = TestRepo::new(IndexKind::Memory);
    let src = repo.dir.path().join("src");
    write_file(&src.join("base/1/data"), b"d1");
    write_file(&src.join("base/2/data"), b"d2");
    write_file(&src.join("conf/main.conf"), b"c");
    write_file(&src.join("other.txt"), b"o");
    repo.snapshot(&[&src]);
    let r = repo.open(Access::Read);
    let (id, snap) = r.resolve_snapshot(&SnapshotSpec::Latest).unwrap();
    let target = repo.dir.path().join("restored");
    let opts = RestoreOptions {
        target: target.clone(),
        include: vec!["base/1".into(), "*.conf".into()],
        ..Default::default()
    };
    let report = ops::restore(&r, &id, &snap, &opts, &NoProgress).unwrap();
    assert_eq!(report.files, 2);
    assert!(target.join("base/1/data").exists());
    assert!(target.join("conf/main.conf").exists());
    assert!(!target.join("base/2").exists());
    assert!(!target.join("other.txt").exists());
}

#[test]
fn a_single_file_path_restores_into_the_target() {
    let repo = TestRepo::new(IndexKind::Memory);
    let f = repo.dir.path().join("solo.dat");
    write_file(&f, b"just me");
    repo.snapshot(&[&f]);
    let target = repo.dir.path().join("restored");
    repo.restore_latest(&target);
    assert_eq!(fs::read(target.join("solo.dat")).unwrap(), b"just me");
}

/// A small tree description: relative path → content (None for an empty directory).
fn arb_tree() -> impl Strategy<Value = Vec<(Vec<String>, Option<Vec<u8>>)>> {
    let name = prop::sample::select(vec!["a", "b", "c", "data", "x.log", "ü", "sp ace"]).prop_map(String::from);
    let path = prop::collection::vec(name, 1..4);
    let content = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..3000).prop_map(Some),
        1 => (0usize..400_000, any::<u8>()).prop_map(|(n, b)| Some(vec![b; n])),
        1 => Just(None),
    ];
    prop::collection::vec((path, content), 0..12)
}

fn build(root: &Path, spec: &[(Vec<String>, Option<Vec<u8>>)]) {
    fs::create_dir_all(root).unwrap();
    for (parts, content) in spec {
        let p = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        // Skip entries that collide with an existing file or directory of the other kind.
        if parts.len() > 1 && p.ancestors().skip(1).take(parts.len() - 1).any(|a| a.is_file()) {
            continue;
        }
        match content {
            Some(data) if !p.is_dir() => write_file(&p, data),
            None if !p.is_file() => fs::create_dir_all(&p).unwrap(),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn restore_of_snapshot_equals_tree(spec in arb_tree()) {
        let repo = TestRepo::new(IndexKind::Memory);
        let src = repo.dir.path().join("src");
        build(&src, &spec);
        repo.snapshot(&[&src]);
        let target = repo.dir.path().join("restored");
        repo.restore_latest(&target);
        assert_same_tree(&src, &target);
    }
}

/// A large file's chunk list is stored piece by piece while the file is read; the pieces must
/// be exactly those of the whole list, whatever the batch sizes, so that they deduplicate
/// against lists stored whole (and against the previous snapshot's pieces).
#[test]
fn chunk_lists_stored_while_reading_equal_lists_stored_whole() {
    use cairn::id::ChunkId;
    use cairn::repo::{FileList, WriteSession};
    use cairn::snapshot::{ChunkRef, LIST_PIECE_CHUNKS};

    let repo = TestRepo::new(IndexKind::Persistent);
    let repo = repo.open(Access::Write);
    let session = WriteSession::new(&repo);
    let p = LIST_PIECE_CHUNKS;
    for count in [0, 1, p - 1, p, p + 1, 2 * p, 2 * p + 1, 5 * p + 77] {
        let all: Vec<ChunkRef> = (0..count)
            .map(|i| ChunkRef { id: ChunkId::of(&(i as u64).to_le_bytes()), len: 1000 + (i % 7) as u32 })
            .collect();
        let whole = session.file_content(all.clone()).unwrap();
        for batch in [1, 7, 64, p + 3] {
            let mut list = FileList::pieced();
            for part in all.chunks(batch) {
                session.extend_list(&mut list, part.iter().copied()).unwrap();
            }
            assert_eq!(session.finish_list(list).unwrap(), whole, "{count} refs in batches of {batch}");
        }
    }
}
