//! Fault injection: damage a repository holding several snapshots in one specific way, then
//! prove that the right mode of `repo check` finds it with the right exit code and names what
//! it affects, that nothing panics, that unaffected snapshots still restore byte for byte, and
//! that `repo repair index` recovers the index cases.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn::index::Location;
use cairn::repo::{Access, IndexKind, Repository};
use cairn::{ChunkId, PackId, SnapshotId};
use common::{assert_same_tree, write_file, Rng};

/// A repository with three snapshots: A and C of `src_a` (C after a change), B of `src_b`.
/// A's unique data, B's and C's new data live in separate packs.
struct Fixture {
    dir: tempfile::TempDir,
    encrypted: bool,
    a: SnapshotId,
    b: SnapshotId,
    c: SnapshotId,
}

impl Fixture {
    fn new(encrypted: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let mut rng = Rng::new(99);
        let src_a = dir.path().join("src_a");
        write_file(&src_a.join("a1.bin"), &rng.bytes(1 << 20));
        write_file(&src_a.join("sub/a2.log"), &rng.events(300_000));
        write_file(&src_a.join("small.txt"), b"small and unaffected?");
        let src_b = dir.path().join("src_b");
        write_file(&src_b.join("b1.bin"), &rng.bytes(700_000));
        write_file(&src_b.join("deep/er/b2.log"), &rng.events(200_000));
        let f =
            Fixture { dir, encrypted, a: SnapshotId::default(), b: SnapshotId::default(), c: SnapshotId::default() };
        let init: &[&str] = if encrypted { &["init"] } else { &["init", "--encryption", "none"] };
        assert_eq!(code(&f.cairn(init)), 0);
        let a = f.create(&src_a);
        let b = f.create(&src_b);
        write_file(&src_a.join("later.txt"), b"added after A");
        let c = f.create(&src_a);
        let _ = repo;
        Fixture { a, b, c, ..f }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn src(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cairn(&self, args: &[&str]) -> Output {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(self.repo()).args(args),
        )
    }

    fn create(&self, src: &Path) -> SnapshotId {
        let o = self.cairn(&["snapshot", "create", "--json", src.to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["id"].as_str().unwrap().parse().unwrap()
    }

    fn open(&self) -> Repository {
        Repository::open_local_with(&self.repo(), Access::Read, IndexKind::Persistent, &common::test_keys()).unwrap()
    }

    /// Where the first chunk of `file` (absolute path in the snapshot) lives.
    fn chunk_of(&self, snap: &SnapshotId, file: &Path) -> (ChunkId, Location) {
        let repo = self.open();
        let s = repo.load_snapshot(snap).unwrap();
        let path = fs::canonicalize(file).unwrap();
        let node = cairn::ops::select::find_node(&repo, &s, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
        let id = repo.file_chunks(&node).unwrap()[0].id;
        (id, repo.locate(&id).unwrap())
    }

    fn root_tree_of(&self, snap: &SnapshotId) -> (ChunkId, Location) {
        let repo = self.open();
        let root = repo.load_snapshot(snap).unwrap().root;
        (root, repo.locate(&root).unwrap())
    }

    fn pack_path(&self, pack: &PackId) -> PathBuf {
        self.repo().join(cairn::repo::pack_key(pack))
    }

    fn check(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["repo", "check"];
        args.extend_from_slice(extra);
        let o = self.cairn(&args);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        (code(&o), stdout(&o) + &stderr(&o))
    }

    /// Restores `snap` and returns (exit code, target, stderr).
    fn restore(&self, snap: &SnapshotId, name: &str) -> (i32, PathBuf, String) {
        let target = self.dir.path().join(name);
        let o = self.cairn(&["restore", &snap.to_hex(), "--target", target.to_str().unwrap()]);
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        (code(&o), target, stderr(&o))
    }

    /// How a damaged blob is reported: an encrypted blob fails to open before its hash can
    /// be compared.
    fn blob_damage(&self) -> &'static str {
        if self.encrypted {
            "authentication failed"
        } else {
            "hash mismatch"
        }
    }

    fn assert_b_restores(&self) {
        let (c, target, err) = self.restore(&self.b, "restored-b");
        assert_eq!(c, 0, "{err}");
        assert_same_tree(&self.src("src_b"), &target);
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a scenario on an encrypted repository (the default) and on an unencrypted one.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn encrypted() {
                super::$name(super::Fixture::new(true))
            }
            #[test]
            fn unencrypted() {
                super::$name(super::Fixture::new(false))
            }
        })*
    };
}

both_modes!(
    clean_repository_checks_clean_in_every_mode,
    flipped_bit_in_chunk_data_is_found_by_read_data_only,
    flipped_byte_in_pack_trailer_is_found_structurally,
    truncated_pack_is_found_and_only_its_files_fail_to_restore,
    deleted_pack_is_named_with_every_file_it_takes,
    deleted_index_directory_is_found_and_repaired,
    corrupted_index_files_are_found_and_repaired,
    index_entry_disagreeing_with_its_pack_trailer_is_found_and_repaired,
    index_entry_naming_a_pack_without_the_chunk_is_found_and_repaired,
    corrupted_tree_names_the_directory_and_snapshot,
    corrupted_snapshot_object_is_named,
    corrupted_config_is_reported_and_the_audit_goes_on,
    stray_files_where_packs_live_are_reported,
    leftover_temporary_files_are_warnings_not_damage,
    deleted_metadata_pack_names_whole_directories,
    check_json_names_the_same_findings,
    damaged_piece_of_a_large_files_chunk_list_names_its_byte_range
);

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn short(id: &SnapshotId) -> String {
    id.to_hex()[..8].to_string()
}

fn clean_repository_checks_clean_in_every_mode(f: Fixture) {
    for mode in [&[][..], &["--read-data"], &["--read-data-subset", "50%"], &["--read-data-subset", "2/3"]] {
        let (c, out) = f.check(mode);
        assert_eq!(c, 0, "{mode:?}: {out}");
        assert!(out.contains("no problems found"), "{out}");
    }
}

fn flipped_bit_in_chunk_data_is_found_by_read_data_only(f: Fixture) {
    let a1 = f.src("src_a").join("a1.bin");
    let (chunk, loc) = f.chunk_of(&f.a, &a1);
    flip_byte(&f.pack_path(&loc.pack), u64::from(loc.offset) + 100);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 0, "structural check does not read data: {out}");
    let (c, out) = f.check(&["--read-data"]);
    assert_eq!(c, 4, "{out}");
    let want = format!("pack {} chunk {chunk}: {}", loc.pack, f.blob_damage());
    assert!(out.contains(&want), "{out}");
    assert!(out.contains(&format!("affects snapshot {}", short(&f.a))) && out.contains("a1.bin bytes 0.."), "{out}");
    // Every snapshot holding a1 (A and C) is named.
    assert_eq!(out.lines().filter(|l| l.contains(&want)).count(), 2, "{out}");
    // The damaged file fails loudly and is not left behind; the rest of A restores.
    let (c, target, err) = f.restore(&f.a, "restored-a");
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("a1.bin") && err.contains(f.blob_damage()), "{err}");
    assert!(!target.join("a1.bin").exists());
    assert_eq!(fs::read(target.join("small.txt")).unwrap(), b"small and unaffected?");
    f.assert_b_restores();
}

fn flipped_byte_in_pack_trailer_is_found_structurally(f: Fixture) {
    let (_, loc) = f.chunk_of(&f.a, &f.src("src_a").join("a1.bin"));
    let pack = f.pack_path(&loc.pack);
    let len = fs::metadata(&pack).unwrap().len();
    flip_byte(&pack, len - 60); // inside the last trailer entry
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains(&format!("pack {}: is corrupt: trailer checksum mismatch", loc.pack)), "{out}");
    assert!(out.contains(&format!("affects snapshot {}", short(&f.a))), "{out}");
    f.assert_b_restores();
}

fn truncated_pack_is_found_and_only_its_files_fail_to_restore(f: Fixture) {
    let (_, loc) = f.chunk_of(&f.a, &f.src("src_a").join("a1.bin"));
    let pack = f.pack_path(&loc.pack);
    // Cut the pack inside a1's first chunk: the trailer and everything after it are gone.
    fs::File::options().write(true).open(&pack).unwrap().set_len(u64::from(loc.offset) + 10).unwrap();
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains(&format!("pack {}: is corrupt: ", loc.pack)), "{out}");
    assert!(out.contains("a1.bin bytes"), "{out}");
    // Trees live in packs of their own, so A's tree survives: only A's files with chunks in
    // the damaged pack fail, each naming it.
    let (c, _, err) = f.restore(&f.a, "restored-a");
    assert_eq!(c, 3, "{err}");
    assert!(err.contains(&loc.pack.to_hex()) && err.contains("truncated") && err.contains("a1.bin"), "{err}");
    // C shares A's files but has its own root: only the files with lost chunks fail.
    let (c, target, err) = f.restore(&f.c, "restored-c");
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("a1.bin"), "{err}");
    assert!(!target.join("a1.bin").exists());
    assert_eq!(fs::read(target.join("later.txt")).unwrap(), b"added after A");
    f.assert_b_restores();
}

fn deleted_pack_is_named_with_every_file_it_takes(f: Fixture) {
    let (_, loc) = f.chunk_of(&f.a, &f.src("src_a").join("a1.bin"));
    fs::remove_file(f.pack_path(&loc.pack)).unwrap();
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(
        out.contains(&format!("pack {} is missing", loc.pack))
            || out.contains(&format!("pack {}: is missing", loc.pack)),
        "{out}"
    );
    // The pack held data only (trees have packs of their own): every file of A and C with a
    // chunk in it is named with its byte range; B is not named.
    for snap in [&f.a, &f.c] {
        for name in ["a1.bin bytes", "small.txt bytes", "sub/a2.log bytes"] {
            assert!(out.lines().any(|l| l.contains(&short(snap)) && l.contains(name)), "{name} not named: {out}");
        }
    }
    assert!(!out.contains(&short(&f.b)), "{out}");
    let (c, _, err) = f.restore(&f.a, "restored-a");
    assert_ne!(c, 0, "{err}");
    f.assert_b_restores();
}

fn deleted_index_directory_is_found_and_repaired(f: Fixture) {
    fs::remove_dir_all(f.repo().join("index")).unwrap();
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains("index: index") && out.contains("is missing"), "{out}");
    let o = f.cairn(&["repo", "repair", "index"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (c, out) = f.check(&["--read-data"]);
    assert_eq!(c, 0, "{out}");
    let (c, target, err) = f.restore(&f.a, "restored-a");
    assert_eq!(c, 0, "{err}");
    assert!(target.join("a1.bin").exists());
    f.assert_b_restores();
}

fn corrupted_index_files_are_found_and_repaired(f: Fixture) {
    for entry in fs::read_dir(f.repo().join("index")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            fs::write(&p, b"\x00garbage\xff not rocksdb").unwrap();
        }
    }
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains("index: index") && out.contains("cannot be opened"), "{out}");
    // Commands that need the index fail with a clear message pointing at the repair.
    let (c, _, err) = f.restore(&f.b, "restored-before-repair");
    assert_ne!(c, 0);
    assert!(err.contains("repair index"), "{err}");
    let o = f.cairn(&["repo", "repair", "index"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(f.check(&[]).0, 0);
    f.assert_b_restores();
}

/// Writes `chunk`'s index entry as `loc`, the way a damaged or stale index could hold it.
fn set_index_entry(f: &Fixture, chunk: ChunkId, loc: &Location) {
    use cairn::index::{ChunkIndex, OpenMode, RocksIndex};
    let index = RocksIndex::open(&f.repo().join("index"), OpenMode::Primary).unwrap();
    let size = fs::metadata(f.pack_path(&loc.pack)).unwrap().len();
    index.add_pack(loc.pack, size, &[loc.entry(chunk)]).unwrap();
    index.persist().unwrap();
}

fn index_entry_disagreeing_with_its_pack_trailer_is_found_and_repaired(f: Fixture) {
    let (chunk, loc) = f.chunk_of(&f.a, &f.src("src_a").join("a1.bin"));
    set_index_entry(&f, chunk, &Location { offset: loc.offset + 1, ..loc });
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(
        out.contains(&format!("index entry for chunk {chunk}: disagrees with the trailer of pack {}", loc.pack)),
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains(&short(&f.a)) && l.contains("a1.bin bytes 0..")), "{out}");
    assert!(!out.contains(&short(&f.b)), "{out}");
    let o = f.cairn(&["repo", "repair", "index"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(f.check(&[]).0, 0);
    // C is the newest snapshot of src_a (A's files plus one).
    let (c, target, err) = f.restore(&f.c, "restored-c");
    assert_eq!(c, 0, "{err}");
    assert_same_tree(&f.src("src_a"), &target);
}

fn index_entry_naming_a_pack_without_the_chunk_is_found_and_repaired(f: Fixture) {
    let (chunk, _) = f.chunk_of(&f.b, &f.src("src_b").join("b1.bin"));
    let (_, elsewhere) = f.chunk_of(&f.a, &f.src("src_a").join("a1.bin"));
    // B's first chunk said to be where A's first chunk is: same pack format, other bytes.
    set_index_entry(&f, chunk, &elsewhere);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    let want =
        format!("index entry for chunk {chunk}: names pack {}, whose trailer does not list the chunk", elsewhere.pack);
    assert!(out.contains(&want), "{out}");
    assert!(out.lines().any(|l| l.contains(&short(&f.b)) && l.contains("b1.bin bytes 0..")), "{out}");
    // A's own chunk at that place is fine: A is not named.
    assert!(!out.contains(&short(&f.a)), "{out}");
    let o = f.cairn(&["repo", "repair", "index"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(f.check(&[]).0, 0);
    f.assert_b_restores();
}

fn corrupted_tree_names_the_directory_and_snapshot(f: Fixture) {
    let (tree, loc) = f.root_tree_of(&f.a);
    flip_byte(&f.pack_path(&loc.pack), u64::from(loc.offset) + u64::from(loc.stored_len) / 2);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains(&format!("pack {} tree {tree}", loc.pack)), "{out}");
    assert!(
        out.contains(&format!("affects snapshot {}", short(&f.a)))
            && out.contains("/ (directory and everything below)"),
        "{out}"
    );
    f.assert_b_restores();
}

fn corrupted_snapshot_object_is_named(f: Fixture) {
    let path = f.repo().join("snapshots").join(f.a.to_hex());
    flip_byte(&path, 30);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains(&format!("snapshot {}: is corrupt", f.a)), "{out}");
    let o = f.cairn(&["snapshot", "list"]);
    assert_eq!(code(&o), 13, "list reports the damaged snapshot");
    assert!(stdout(&o).contains(&short(&f.b)));
    f.assert_b_restores();
}

fn corrupted_config_is_reported_and_the_audit_goes_on(f: Fixture) {
    flip_byte(&f.repo().join("config"), 14);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains("config: repository config is corrupt: checksum mismatch"), "{out}");
    assert!(out.contains("checked 3 snapshots"), "{out}");
}

fn stray_files_where_packs_live_are_reported(f: Fixture) {
    write_file(&f.repo().join("packs/zz/junk"), b"not a pack");
    let fake = "ab".repeat(32);
    write_file(&f.repo().join(format!("packs/ab/{fake}")), &[0u8; 100]);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains("file packs/zz/junk: is not a pack"), "{out}");
    assert!(out.contains(&format!("pack {fake}: is corrupt")), "{out}");
    f.assert_b_restores();
}

fn leftover_temporary_files_are_warnings_not_damage(f: Fixture) {
    write_file(&f.repo().join("packs/00/.tmp-abc123"), b"half a pack");
    let (c, out) = f.check(&[]);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("warning: file packs/00/.tmp-abc123: temporary file"), "{out}");
}

fn deleted_metadata_pack_names_whole_directories(f: Fixture) {
    let repo = f.open();
    let root = repo.load_snapshot(&f.a).unwrap().root;
    let loc = repo.locate(&root).unwrap();
    drop(repo);
    fs::remove_file(f.pack_path(&loc.pack)).unwrap();
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    // A's trees were written in A's run, so all of A is gone; C reuses A's unchanged `sub`.
    assert!(
        out.lines().any(|l| l.contains(&short(&f.a)) && l.contains(" / (directory and everything below)")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains(&short(&f.c)) && l.contains("/sub (directory and everything below)")),
        "{out}"
    );
    let (c, _, err) = f.restore(&f.a, "restored-a");
    assert_ne!(c, 0, "{err}");
    f.assert_b_restores();
}

fn check_json_names_the_same_findings(f: Fixture) {
    let (_, loc) = f.chunk_of(&f.a, &f.src("src_a").join("a1.bin"));
    fs::remove_file(f.pack_path(&loc.pack)).unwrap();
    let o = f.cairn(&["repo", "check", "--json"]);
    assert_eq!(code(&o), 4);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let missing = findings.iter().find(|x| x["object"] == format!("pack {}", loc.pack)).unwrap();
    assert_eq!(missing["severity"], "damage");
    let affects = missing["affects"].as_array().unwrap();
    let names = |snap: &SnapshotId, suffix: &str| {
        affects.iter().any(|a| a["snapshot"] == snap.to_hex() && a["path"].as_str().unwrap().ends_with(suffix))
    };
    assert!(names(&f.a, "a1.bin"), "{affects:?}");
    assert!(names(&f.c, "a1.bin"), "{affects:?}");
    assert!(!names(&f.b, ""), "B is not affected");
}

fn damaged_piece_of_a_large_files_chunk_list_names_its_byte_range(f: Fixture) {
    let big_dir = f.src("src_big");
    write_file(&big_dir.join("big.bin"), &Rng::new(5).bytes(48 << 20));
    write_file(&big_dir.join("other.txt"), b"unaffected");
    let snap = f.create(&big_dir);
    let repo = f.open();
    let s = repo.load_snapshot(&snap).unwrap();
    let path = fs::canonicalize(big_dir.join("big.bin")).unwrap();
    let node = cairn::ops::select::find_node(&repo, &s, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
    let cairn::snapshot::NodeContent::LargeFile { pieces } = &node.content else {
        panic!("a 48 MiB file should keep its chunk list in pieces")
    };
    let piece = pieces[0];
    let loc = repo.locate(&piece.id).unwrap();
    drop(repo);
    flip_byte(&f.pack_path(&loc.pack), u64::from(loc.offset) + u64::from(loc.stored_len) / 2);
    let (c, out) = f.check(&[]);
    assert_eq!(c, 4, "{out}");
    assert!(out.contains(&format!("chunk list {}", piece.id)), "{out}");
    assert!(out.contains(&format!("big.bin bytes 0..{}", piece.bytes)), "{out}");
    let (c, target, err) = f.restore(&snap, "restored-big");
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("big.bin"), "{err}");
    assert!(!target.join("big.bin").exists());
    assert_eq!(fs::read(target.join("other.txt")).unwrap(), b"unaffected");
}
