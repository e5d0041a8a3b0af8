//! Chunk-level delta restore, through the real binary: rolling a target back to a snapshot
//! reads from the repository only the chunks the target's files no longer hold. The two cases
//! of `benches/delta_restore.rs`, small: a database file with 2% of its 8 KiB pages rewritten,
//! and a data dir of 24 segments where one grew. Asserts the counters, not the time.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use common::{assert_same_tree, write_file, Rng};

fn run_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let o = common::cli::finish(
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(common::TEST_ENV)
            .arg("--repo")
            .arg(repo)
            .arg("--json")
            .args(args),
    );
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    run_json(&repo, &["init"]);
    (dir, repo, src)
}

#[test]
fn rolling_back_a_database_file_reads_only_its_changed_pages() {
    // Without PG_VERSION the file is not a PostgreSQL relation: content-defined chunks.
    // Uniformly scattered 2% page rewrites touch ~8% of 32 KiB chunks (more of the bytes: a
    // long chunk is likelier to be hit), so about 7x fewer bytes than a full restore.
    let chunks = roll_back_database_file(false, 5);
    assert!(chunks.iter().any(|(start, _)| start % (32 << 10) != 0), "content-defined cuts expected");
}

#[test]
fn rolling_back_a_postgres_relation_file_reads_ten_times_less() {
    // In a PostgreSQL data directory the relation file is cut into aligned 32 KiB blocks of
    // four pages: a rewritten page changes exactly one chunk, ~7.7% of the bytes here.
    let chunks = roll_back_database_file(true, 10);
    assert!(chunks.iter().all(|&(start, len)| start % (32 << 10) == 0 && len == 32 << 10), "aligned cuts expected");
}

/// Snapshots a 32 MiB relation file, rewrites 2% of its pages in a restored copy, restores
/// over it again, and checks that exactly the chunks overlapping a rewritten page were fetched,
/// at least `fewer` times fewer bytes than the file. Returns the file's chunks.
fn roll_back_database_file(postgres: bool, fewer: u64) -> Vec<(u64, u64)> {
    let (dir, repo, src) = setup();
    const SIZE: usize = 32 << 20;
    const PAGE: u64 = 8192;
    let mut rng = Rng::new(11);
    write_file(&src.join("base/16384/2619"), &rng.bytes(SIZE));
    if postgres {
        write_file(&src.join("PG_VERSION"), b"16\n");
    }
    let snap = run_json(&repo, &["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(snap["paged_files"], u64::from(postgres), "{snap}");
    let id = snap["id"].as_str().unwrap().to_string();
    let target = dir.path().join("target");
    run_json(&repo, &["restore", &id, "--target", target.to_str().unwrap()]);
    // An hour of writes: 2% of the pages rewritten in place.
    let file = fs::OpenOptions::new().write(true).open(target.join("base/16384/2619")).unwrap();
    let pages = SIZE as u64 / PAGE;
    let changed: Vec<u64> = (0..pages / 50).map(|_| rng.below(pages)).collect();
    for page in &changed {
        file.write_all_at(&rng.bytes(PAGE as usize), page * PAGE).unwrap();
    }
    drop(file);
    let report = run_json(&repo, &["restore", &id, "--target", target.to_str().unwrap(), "--overwrite", "always"]);
    assert_same_tree(&src, &target);
    let fetched = report["bytes_fetched"].as_u64().unwrap();
    let reused = report["bytes_reused"].as_u64().unwrap();
    let pg_version = if postgres { 3 } else { 0 };
    assert_eq!(fetched + reused, SIZE as u64 + pg_version, "{report}");
    // Exactly the chunks that overlap a rewritten page are fetched, nothing else.
    let chunks = chunks_of(&repo, &src.join("base/16384/2619"));
    let expected: u64 = chunks
        .iter()
        .filter(|(start, len)| changed.iter().any(|p| p * PAGE < start + len && (p + 1) * PAGE > *start))
        .map(|(_, len)| len)
        .sum();
    assert_eq!(fetched, expected, "{report}");
    assert!(fetched * fewer <= SIZE as u64, "fetched {fetched} of {SIZE} bytes: {report}");
    chunks
}

/// (offset, length) of every chunk of the file at `path` in the latest snapshot.
fn chunks_of(repo: &Path, path: &Path) -> Vec<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let r = cairn::Repository::open_local_with(
        repo,
        cairn::Access::Read,
        cairn::IndexKind::Persistent,
        &common::test_keys(),
    )
    .unwrap();
    let (_, snap) = r.resolve_snapshot(&cairn::repo::SnapshotSpec::Latest).unwrap();
    let abs = fs::canonicalize(path).unwrap();
    let node = cairn::ops::select::find_node(&r, &snap, abs.as_os_str().as_bytes()).unwrap().unwrap();
    let mut offset = 0;
    r.file_chunks(&node)
        .unwrap()
        .iter()
        .map(|c| {
            offset += u64::from(c.len);
            (offset - u64::from(c.len), u64::from(c.len))
        })
        .collect()
}

#[test]
fn rolling_back_segments_where_one_grew_reads_almost_nothing() {
    let (dir, repo, src) = setup();
    let mut rng = Rng::new(12);
    for i in 0..24 {
        write_file(&src.join(format!("segments/{i:08}.log")), &rng.events(1 << 20));
    }
    let id = run_json(&repo, &["snapshot", "create", src.to_str().unwrap()])["id"].as_str().unwrap().to_string();
    let target = dir.path().join("target");
    run_json(&repo, &["restore", &id, "--target", target.to_str().unwrap()]);
    // The newest segment grew after the snapshot; roll back to it.
    let mut grown = fs::read(target.join("segments/00000023.log")).unwrap();
    grown.extend_from_slice(&rng.events(300_000));
    write_file(&target.join("segments/00000023.log"), &grown);
    let report = run_json(&repo, &["restore", &id, "--target", target.to_str().unwrap(), "--overwrite", "if-changed"]);
    assert_same_tree(&src, &target);
    assert_eq!(report["unchanged"], 23, "{report}");
    assert_eq!(report["replaced"], 1, "{report}");
    let fetched = report["bytes_fetched"].as_u64().unwrap();
    assert!(fetched <= 256 << 10, "fetched {fetched} bytes to cut one segment back: {report}");
}

#[test]
fn in_place_rewrites_only_changed_chunks_truncates_clears_holes_and_spares_other_links() {
    use std::os::unix::fs::MetadataExt;
    let (dir, repo, src) = setup();
    const PAGE: u64 = 8192;
    let mut rng = Rng::new(13);
    write_file(&src.join("db"), &rng.bytes(4 << 20));
    // Sparse: 1 MiB of data, a 4 MiB hole, 1 MiB of data.
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.write_all_at(&rng.bytes(1 << 20), 0).unwrap();
    sparse.write_all_at(&rng.bytes(1 << 20), 5 << 20).unwrap();
    drop(sparse);
    write_file(&src.join("linked"), &rng.bytes(1 << 20));
    let id = run_json(&repo, &["snapshot", "create", src.to_str().unwrap()])["id"].as_str().unwrap().to_string();
    let target = dir.path().join("target");
    run_json(&repo, &["restore", &id, "--target", target.to_str().unwrap()]);

    // An hour later: pages of db rewritten and the file grown; data written into the hole;
    // `linked` changed through a second hard link that lives outside the target.
    let db = fs::OpenOptions::new().write(true).open(target.join("db")).unwrap();
    let changed: Vec<u64> = (0..8).map(|_| rng.below((4 << 20) / PAGE)).collect();
    for page in &changed {
        db.write_all_at(&rng.bytes(PAGE as usize), page * PAGE).unwrap();
    }
    db.write_all_at(&rng.bytes(1 << 20), 4 << 20).unwrap();
    drop(db);
    let hole = fs::OpenOptions::new().write(true).open(target.join("sparse")).unwrap();
    hole.write_all_at(&rng.bytes(2 << 20), 2 << 20).unwrap();
    drop(hole);
    let outside = dir.path().join("outside-link");
    fs::hard_link(target.join("linked"), &outside).unwrap();
    let changed_outside = rng.bytes(1 << 20);
    fs::OpenOptions::new().write(true).open(&outside).unwrap().write_all_at(&changed_outside, 0).unwrap();
    let inode = |name: &str| fs::metadata(target.join(name)).unwrap().ino();
    let before = (inode("db"), inode("sparse"), inode("linked"));

    let t = target.to_str().unwrap();
    let report = run_json(&repo, &["restore", &id, "--target", t, "--overwrite", "always", "--in-place"]);
    assert_same_tree(&src, &target);
    assert_eq!(report["in_place"], 2, "db and sparse rewritten in place, linked copied: {report}");
    assert_eq!((inode("db"), inode("sparse")), (before.0, before.1), "in place means the same inode");
    assert_ne!(inode("linked"), before.2, "a file with another hard link is copied, not rewritten");
    assert_eq!(fs::read(&outside).unwrap(), changed_outside, "the other link must not change");
    // The hole is a hole again (allow one chunk of slack), not 2 MiB of written zeros.
    let allocated = fs::metadata(target.join("sparse")).unwrap().blocks() * 512;
    assert!(allocated <= (2 << 20) + (128 << 10), "sparse file allocates {allocated} bytes: {report}");
    // Of db, only the chunks that overlap a rewritten page were read from the repository
    // (linked: all of it; sparse: the chunks overlapping the written range).
    let db_fetched: u64 = chunks_of(&repo, &src.join("db"))
        .iter()
        .filter(|(start, len)| changed.iter().any(|p| p * PAGE < start + len && (p + 1) * PAGE > *start))
        .map(|(_, len)| len)
        .sum();
    let fetched = report["bytes_fetched"].as_u64().unwrap();
    assert!(fetched <= db_fetched + (1 << 20) + (2 << 20) + (256 << 10), "fetched {fetched}: {report}");
    assert!(fetched < 4 << 20, "fetched {fetched}: {report}");
}

#[test]
fn in_place_needs_an_overwrite_policy() {
    let (dir, repo, _) = setup();
    let o = common::cli::finish(
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(common::TEST_ENV)
            .arg("--repo")
            .arg(&repo)
            .args(["restore", "latest", "--in-place", "--target"])
            .arg(dir.path().join("t")),
    );
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--overwrite"), "{}", String::from_utf8_lossy(&o.stderr));
}
