//! `repo copy` with encryption (issue 16, item 5), through the binary: between twins sharing a
//! master key (sealed data moves as it is), from an unencrypted repository into an encrypted
//! one (the migration path), between different keys, and into an unencrypted repository only
//! when asked. Every copy restores byte for byte, checks clean with `--read-data`, and a rerun
//! copies nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn::repo::{Access, IndexKind, KeySource, Repository, SnapshotSpec};
use common::{assert_same_tree, write_file, Rng, TEST_ENV, TEST_PASSWORD};
use serde_json::Value;

/// One repository in a temporary directory, opened with its own password.
struct Repo {
    dir: tempfile::TempDir,
    password: String,
}

impl Repo {
    fn init(password: &str, args: &[&str]) -> Repo {
        let r = Repo { dir: tempfile::tempdir().unwrap(), password: password.to_string() };
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        r.ok(&all);
        r
    }
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn run(&self, args: &[&str]) -> Output {
        let o = common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .envs(TEST_ENV)
                .env("CAIRN_PASSWORD", &self.password)
                .arg("--repo")
                .arg(self.repo())
                .args(args),
        );
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        o
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
    fn snapshot(&self, src: &Path) -> String {
        self.json(&["snapshot", "create", src.to_str().unwrap()])["id"].as_str().unwrap().to_string()
    }
    /// `repo copy --from other` into this repository, the source opened with its own password.
    fn copy_from(&self, other: &Repo, extra: &[&str]) -> Output {
        let pw = self.path("source-password");
        fs::write(&pw, format!("{}\n", other.password)).unwrap();
        let from = other.repo();
        let mut args = vec!["repo", "copy", "--json", "--from", from.to_str().unwrap(), "--from-password-file"];
        args.push(pw.to_str().unwrap());
        args.extend_from_slice(extra);
        self.run(&args)
    }
    fn copy_ok(&self, other: &Repo, extra: &[&str]) -> Value {
        let o = self.copy_from(other, extra);
        assert_eq!(o.status.code(), Some(0), "copy: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }
    fn restore(&self, id: &str, name: &str) -> PathBuf {
        let target = self.path(name);
        self.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        target
    }
    fn open(&self) -> Repository {
        Repository::open_local_with(
            &self.repo(),
            Access::Read,
            IndexKind::Persistent,
            &KeySource::password(&self.password),
        )
        .unwrap()
    }
    fn snapshot_count(&self) -> usize {
        self.json(&["snapshot", "list"]).as_array().unwrap().len()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tree with small and large files (the large one has a pieced chunk list at 1 KiB chunks),
/// a symlink, an empty file and a nested directory.
fn source_tree(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    write_file(&root.join("log/segment-1.log"), &rng.events(200_000));
    write_file(&root.join("db/large.bin"), &rng.bytes(1_600_000));
    write_file(&root.join("db/empty"), b"");
    write_file(&root.join("deep/a/b/c/d.txt"), b"deep file");
    std::os::unix::fs::symlink("../db/large.bin", root.join("log/link")).unwrap();
}

/// The ids of a copy report's snapshots, (source, destination).
fn copied(report: &Value) -> Vec<(String, String)> {
    let ids = |s: &Value, k: &str| s[k].as_str().unwrap().to_string();
    report["snapshots"].as_array().unwrap().iter().map(|s| (ids(s, "source"), ids(s, "destination"))).collect()
}

fn assert_nothing_copied(again: &Value) {
    for field in ["snapshots_copied", "wal_copied", "blobs_copied", "bytes_copied"] {
        assert_eq!(again[field], 0, "a rerun copied {field}: {again}");
    }
}

/// Two snapshots (the second after a change, so it shares most of the first) and a WAL file.
fn fill(r: &Repo, src: &Path) -> (String, String, Vec<u8>) {
    source_tree(src, 1);
    let first = r.snapshot(src);
    write_file(&src.join("log/segment-2.log"), &Rng::new(2).events(100_000));
    let second = r.snapshot(src);
    let wal_data = Rng::new(3).events(300_000);
    let wal = r.path("000000010000000000000001");
    write_file(&wal, &wal_data);
    r.ok(&["wal", "push", "--stream", "pg", wal.to_str().unwrap()]);
    (first, second, wal_data)
}

fn fetch_wal(r: &Repo) -> Vec<u8> {
    let dest = r.path("fetched-wal");
    r.ok(&["wal", "fetch", "--stream", "pg", "000000010000000000000001", dest.to_str().unwrap()]);
    fs::read(dest).unwrap()
}

#[test]
fn a_twin_copy_moves_ciphertext_as_it_is_and_restores_byte_for_byte() {
    let a = Repo::init(TEST_PASSWORD, &["--chunk-kib", "1"]);
    let src = a.path("src");
    let (first, second, wal_data) = fill(&a, &src);
    let paper = a.path("paper.txt");
    fs::write(&paper, a.ok(&["key", "export"])).unwrap();
    let twin = Repo::init("the twin's own password", &["--from-key-export", paper.to_str().unwrap()]);
    let report = twin.copy_ok(&a, &[]);
    assert_eq!(report["mode"], "same-key", "{report}");
    assert_eq!(copied(&report), vec![(first.clone(), first.clone()), (second.clone(), second.clone())]);
    // Sealed bytes moved as they are: every blob's envelope, and the snapshot objects.
    let (ra, rt) = (a.open(), twin.open());
    let (_, snap) = ra.resolve_snapshot(&SnapshotSpec::Prefix(second.clone())).unwrap();
    let node = cairn::ops::select::find_node(
        &ra,
        &snap,
        fs::canonicalize(src.join("db/large.bin")).unwrap().to_str().unwrap().as_bytes(),
    )
    .unwrap()
    .unwrap();
    let chunks = ra.file_chunks(&node).unwrap();
    assert!(chunks.len() > 1024, "the large file has a pieced list: {}", chunks.len());
    let cairn::snapshot::NodeContent::LargeFile { pieces } = &node.content else { panic!("not pieced") };
    let mut ids: Vec<cairn::ChunkId> = chunks.iter().take(50).map(|c| c.id).collect();
    ids.extend(pieces.iter().map(|p| p.id));
    ids.push(snap.root);
    for id in ids {
        let stored = |r: &Repository| r.read_blob_stored(&id, &r.locate(&id).unwrap()).unwrap().0;
        assert_eq!(stored(&ra), stored(&rt), "blob {id} was sealed again");
    }
    drop((ra, rt));
    for id in [&first, &second] {
        let object = |r: &Repo| fs::read(r.repo().join("snapshots").join(id)).unwrap();
        assert_eq!(object(&a), object(&twin));
    }
    for (id, name) in [(&first, "r1"), (&second, "r2")] {
        let target = twin.restore(id, name);
        let want = a.restore(id, name);
        assert_same_tree(&want, &target);
    }
    assert_same_tree(&src, &twin.path("r2"));
    assert_eq!(fetch_wal(&twin), wal_data);
    twin.ok(&["repo", "check", "--read-data"]);
    assert_nothing_copied(&twin.copy_ok(&a, &[]));
}

fn every_file(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            every_file(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The first of `markers` (in any case) found in a file of `repo` (its index included), with
/// the file.
fn find_marker(repo: &Path, markers: &[&[u8]]) -> Option<String> {
    let mut files = Vec::new();
    every_file(repo, &mut files);
    assert!(files.iter().any(|f| f.starts_with(repo.join("index"))), "the index is searched too");
    for f in &files {
        let bytes = fs::read(f).unwrap().to_ascii_lowercase();
        let path = f.to_string_lossy().to_lowercase().into_bytes();
        for m in markers.iter().map(|m| m.to_ascii_lowercase()) {
            if [&bytes, &path].iter().any(|hay| hay.windows(m.len()).any(|w| w == m)) {
                return Some(format!("{:?} in {}", String::from_utf8_lossy(&m), f.display()));
            }
        }
    }
    None
}

fn assert_no_marker(repo: &Path, markers: &[&[u8]]) {
    assert_eq!(find_marker(repo, markers), None);
}

/// Restores both snapshots of `from` and their copies in `to` and compares them; checks `to`.
fn assert_copies_restore(from: &Repo, to: &Repo, pairs: &[(String, String)]) {
    for (i, (s, d)) in pairs.iter().enumerate() {
        let want = from.restore(s, &format!("from-{i}"));
        let got = to.restore(d, &format!("to-{i}"));
        assert_same_tree(&want, &got);
    }
    to.ok(&["repo", "check", "--read-data"]);
}

#[test]
fn migrating_an_unencrypted_repository_re_encrypts_everything() {
    let plain = Repo::init(TEST_PASSWORD, &["--encryption", "none", "--chunk-kib", "1"]);
    let src = plain.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("zqxmarkername.txt"), &b"ZQXMARKERCONTENT in a compressible line\n".repeat(3000));
    let (_, second, wal_data) = fill(&plain, &src);
    let enc = Repo::init("the new key", &[]);
    let report = enc.copy_ok(&plain, &[]);
    assert_eq!(report["mode"], "re-encrypt", "{report}");
    let pairs = copied(&report);
    assert_eq!(pairs.len(), 2);
    assert!(pairs.iter().all(|(s, d)| s != d), "re-encrypted snapshots get new ids: {pairs:?}");
    assert_copies_restore(&plain, &enc, &pairs);
    assert_same_tree(&src, &enc.path("to-1"));
    assert_eq!(pairs[1].0, second);
    assert_eq!(fetch_wal(&enc), wal_data);
    // The second copy's parent is the first copy, as in the source.
    let shown = enc.json(&["snapshot", "show", &pairs[1].1]);
    assert_eq!(shown["parent"].as_str(), Some(pairs[0].1.as_str()), "{shown}");
    let markers: [&[u8]; 5] = [b"zqxmarkername", b"ZQXMARKERCONTENT", b"webhook.delivered", b"segment-1", b"deep file"];
    assert_no_marker(&enc.repo(), &markers);
    assert!(find_marker(&plain.repo(), &markers[4..]).is_some(), "the search finds what is there");
    assert_nothing_copied(&enc.copy_ok(&plain, &[]));
    assert_eq!(enc.snapshot_count(), 2);
    // The copy is a parent like any other: an unchanged tree is not read again.
    let next = enc.json(&["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(next["summary"]["files_read"], 0, "{next}");
    assert_eq!(next["summary"]["bytes_added"], 0, "{next}");
}

#[test]
fn copying_between_different_keys_re_encrypts_and_reruns_copy_nothing() {
    let a = Repo::init("source password", &["--chunk-kib", "1"]);
    let src = a.path("src");
    let (_, _, wal_data) = fill(&a, &src);
    let b = Repo::init("destination password", &[]);
    // An unrelated snapshot already in the destination stays, and is not mistaken for a copy.
    let other = b.path("other");
    write_file(&other.join("x"), b"the destination's own data");
    b.snapshot(&other);
    let report = b.copy_ok(&a, &[]);
    assert_eq!(report["mode"], "re-encrypt", "{report}");
    assert_eq!(report["snapshots_present"], 0, "{report}");
    let pairs = copied(&report);
    assert_copies_restore(&a, &b, &pairs);
    assert_eq!(fetch_wal(&b), wal_data);
    assert_no_marker(&b.repo(), &[b"webhook.delivered", b"segment-1", b"large.bin", b"deep file"]);
    assert_nothing_copied(&b.copy_ok(&a, &[]));
    assert_eq!(b.snapshot_count(), 3);
    // Without the source's password the copy stops at the source, with one line.
    let o = b.run(&["repo", "copy", "--from", a.repo().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong password or no matching key"), "{}", stderr(&o));
}

#[test]
fn copying_into_an_unencrypted_repository_needs_an_explicit_flag() {
    let enc = Repo::init(TEST_PASSWORD, &[]);
    let src = enc.path("src");
    let (_, _, wal_data) = fill(&enc, &src);
    let plain = Repo::init(TEST_PASSWORD, &["--encryption", "none"]);
    let o = plain.copy_from(&enc, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-unencrypted-destination"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert_eq!(plain.snapshot_count(), 0);
    let report = plain.copy_ok(&enc, &["--allow-unencrypted-destination"]);
    assert_eq!(report["mode"], "re-encrypt", "{report}");
    assert_copies_restore(&enc, &plain, &copied(&report));
    assert_eq!(fetch_wal(&plain), wal_data);
    assert_nothing_copied(&plain.copy_ok(&enc, &["--allow-unencrypted-destination"]));
}

/// Flips a byte in the middle of the stored blob of the first chunk of `file` in `r`.
fn damage_first_chunk(r: &Repo, src: &Path, file: &str) {
    let repo = r.open();
    let (_, snap) = repo.resolve_snapshot(&SnapshotSpec::Latest).unwrap();
    let path = fs::canonicalize(src.join(file)).unwrap();
    let node = cairn::ops::select::find_node(&repo, &snap, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
    let loc = repo.locate(&repo.file_chunks(&node).unwrap()[0].id).unwrap();
    drop(repo);
    let pack = r.repo().join(cairn::repo::pack_key(&loc.pack));
    let mut bytes = fs::read(&pack).unwrap();
    bytes[(loc.offset + loc.stored_len / 2) as usize] ^= 0x5a;
    fs::write(&pack, bytes).unwrap();
}

#[test]
fn a_damaged_source_blob_fails_the_copy_without_a_dangling_snapshot() {
    for (from_args, to_password, to_args, mode) in [
        (vec!["--encryption", "none"], "new key", vec![], "re-encrypt"),
        (vec![], "other key", vec![], "re-encrypt"),
        (vec![], TEST_PASSWORD, vec!["twin"], "same-key"),
    ] {
        let from = Repo::init(TEST_PASSWORD, &from_args);
        let src = from.path("src");
        write_file(&src.join("good.txt"), b"an undamaged file");
        write_file(&src.join("bad.bin"), &Rng::new(9).bytes(100_000));
        from.snapshot(&src);
        let to = match to_args.first() {
            Some(_) => {
                let paper = from.path("paper.txt");
                fs::write(&paper, from.ok(&["key", "export"])).unwrap();
                Repo::init(to_password, &["--from-key-export", paper.to_str().unwrap()])
            }
            None => Repo::init(to_password, &to_args),
        };
        damage_first_chunk(&from, &src, "bad.bin");
        let o = to.copy_from(&from, &[]);
        assert_eq!(o.status.code(), Some(13), "{mode}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("in the source repository") && err.lines().count() == 1, "{mode}: {err}");
        assert_eq!(to.snapshot_count(), 0, "{mode}: a snapshot was written without its data");
        to.ok(&["repo", "check", "--read-data"]);
    }
}
