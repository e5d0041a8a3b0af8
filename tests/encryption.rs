//! Encryption at rest (issue 16), end to end through the binary: encrypted by default, opt-out
//! with `--encryption none`, wrong passwords and missing keys, no plaintext anywhere in the
//! repository or its index, and damage to any sealed object detected, never served.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn::repo::{Access, IndexKind, Repository, SnapshotSpec};
use common::{assert_same_tree, test_keys, write_file, Rng, TEST_ENV};

struct Cairn {
    dir: tempfile::TempDir,
}

impl Cairn {
    fn new(init: &[&str]) -> Self {
        let c = Cairn { dir: tempfile::tempdir().unwrap() };
        let mut args = vec!["init"];
        args.extend_from_slice(init);
        c.ok(&args);
        c
    }
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.envs(TEST_ENV).arg("--repo").arg(self.repo()).args(args);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        let o = self.cmd(args).output().unwrap();
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        o
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn snapshot(&self, src: &Path, extra: &[&str]) -> String {
        let mut args = vec!["snapshot", "create", "--json"];
        args.extend_from_slice(extra);
        args.push(src.to_str().unwrap());
        let v: serde_json::Value = serde_json::from_str(&self.ok(&args)).unwrap();
        v["id"].as_str().unwrap().to_string()
    }
    fn open(&self) -> Repository {
        Repository::open_local_with(&self.repo(), Access::Read, IndexKind::Persistent, &test_keys()).unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_encrypts_by_default_and_none_opts_out() {
    let enc = Cairn::new(&[]);
    assert!(enc.ok(&["repo", "info"]).contains("encryption   aes-256-gcm"));
    assert_eq!(fs::read_dir(enc.repo().join("keys")).unwrap().count(), 1);
    let config = fs::read(enc.repo().join("config")).unwrap();
    assert!(config.windows(10).any(|w| w == b"encryption"), "the feature is named in the clear");
    let plain = Cairn::new(&["--encryption", "none"]);
    assert!(plain.ok(&["repo", "info"]).contains("encryption   none"));
    assert!(!plain.repo().join("keys").exists());
    // Both read and write.
    for c in [&enc, &plain] {
        let src = c.path("src");
        common::generate_tree(&src, 5, 300_000);
        c.snapshot(&src, &[]);
        let target = c.path("restored");
        c.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
        assert_same_tree(&src, &target);
        c.ok(&["repo", "check", "--read-data"]);
    }
}

#[test]
fn wrong_password_exits_1_with_one_line() {
    let c = Cairn::new(&[]);
    let o = c.cmd(&["snapshot", "list"]).env("CAIRN_PASSWORD", "not the password").output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong password or no matching key"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    // A password file and a password command are sources too; a flag wins over the variable.
    let pw = c.path("pw");
    fs::write(&pw, format!("{}\n", common::TEST_PASSWORD)).unwrap();
    let o = c.cmd(&["snapshot", "list", "--password-file", pw.to_str().unwrap()]).env("CAIRN_PASSWORD", "x").output();
    assert_eq!(code(&o.unwrap()), 0);
    let o = c.cmd(&["snapshot", "list", "--password-command", "echo nope"]).output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // No source at all and no terminal: a sentence naming the sources.
    let o = c.cmd(&["snapshot", "list"]).env_remove("CAIRN_PASSWORD").output().unwrap();
    assert_eq!(code(&o), 2, "a missing password is a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("--password-file"), "{}", stderr(&o));
}

#[test]
fn a_key_file_from_another_repository_is_no_key() {
    let a = Cairn::new(&[]);
    let b = Cairn::new(&[]);
    let keys = |c: &Cairn| c.repo().join("keys");
    for e in fs::read_dir(keys(&a)).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    for e in fs::read_dir(keys(&b)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), keys(&a).join(e.file_name())).unwrap();
    }
    let o = a.run(&["snapshot", "list"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong password or no matching key"), "{}", stderr(&o));
}

#[test]
fn missing_keys_directory_is_named() {
    let c = Cairn::new(&[]);
    fs::remove_dir_all(c.repo().join("keys")).unwrap();
    let o = c.run(&["snapshot", "list"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("no key files (keys/ is missing or empty)"), "{}", stderr(&o));
}

/// Markers that must not appear anywhere in the repository or its index in the clear.
struct Markers {
    compressible: Vec<u8>,
    random: Vec<u8>,
    names: Vec<&'static str>,
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

fn plaintext_tree(root: &Path, m: &Markers) {
    // Compressible: a marker line repeated; random: incompressible bytes with a marker run.
    write_file(&root.join("zqxmarkerfile.log"), &m.compressible);
    write_file(&root.join("zqxmarkerdir/inner.bin"), &m.random);
    std::os::unix::fs::symlink("/zqxmarkerlinktarget/x", root.join("link")).unwrap();
}

#[test]
fn no_plaintext_marker_is_found_in_the_repository_or_index() {
    let c = Cairn::new(&[]);
    let mut rng = Rng::new(7);
    let line = b"ZQXMARKERCONTENT compressible line of the webhook log\n";
    let mut random = rng.bytes(200_000);
    let random_marker = rng.bytes(64);
    random[100_000..100_064].copy_from_slice(&random_marker);
    let m = Markers {
        compressible: line.repeat(5000),
        random,
        names: vec![
            "zqxmarkerfile",
            "zqxmarkerdir",
            "zqxmarkerlinktarget",
            "zqxmarkertag",
            "zqxmarkerhost",
            "zqxmarkerwal",
            "zqxmarkerstream",
            "ZQXMARKERCONTENT",
            "ZQXWALCONTENT",
        ],
    };
    let src = c.path("src");
    plaintext_tree(&src, &m);
    c.snapshot(&src, &["--tag", "zqxmarkertag", "--host", "zqxmarkerhost"]);
    let wal = c.path("000000010000000000000001.zqxmarkerwal");
    write_file(&wal, &b"ZQXWALCONTENT record\n".repeat(4000));
    c.ok(&["wal", "push", "--stream", "zqxmarkerstream", wal.to_str().unwrap()]);
    // The markers are really there to find: the restore gives them back.
    let target = c.path("restored");
    c.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    let listed = c.ok(&["wal", "list"]);
    assert!(listed.contains("zqxmarkerwal"), "{listed}");
    let mut files = Vec::new();
    every_file(&c.repo(), &mut files);
    assert!(files.iter().any(|f| f.starts_with(c.repo().join("index"))), "the index is searched too");
    for f in &files {
        let bytes = fs::read(f).unwrap();
        let path = f.to_string_lossy().to_lowercase();
        for name in &m.names {
            let lower = name.to_lowercase();
            assert!(!path.contains(&lower), "{name} in the path {}", f.display());
            assert!(!contains(&bytes, name.as_bytes()), "{name} found in {}", f.display());
            assert!(!contains(&bytes, lower.as_bytes()), "{lower} found in {}", f.display());
        }
        assert!(!contains(&bytes, &random_marker), "random content found in {}", f.display());
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keyed_ids_and_seeded_cut_points_differ_between_repositories() {
    let a = Cairn::new(&[]);
    let b = Cairn::new(&[]);
    let src = a.path("src");
    write_file(&src.join("data.bin"), &Rng::new(3).events(2 << 20));
    for c in [&a, &b] {
        c.snapshot(&src, &[]);
    }
    let chunks = |c: &Cairn| {
        let r = c.open();
        let (_, snap) = r.resolve_snapshot(&SnapshotSpec::Latest).unwrap();
        let path = fs::canonicalize(src.join("data.bin")).unwrap();
        let node = cairn::ops::select::find_node(&r, &snap, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
        r.file_chunks(&node).unwrap()
    };
    let (ca, cb) = (chunks(&a), chunks(&b));
    assert!(ca.len() > 10);
    let ids = |v: &[cairn::snapshot::ChunkRef]| v.iter().map(|c| c.id).collect::<Vec<_>>();
    assert!(ids(&ca).iter().all(|id| !ids(&cb).contains(id)), "chunk ids are keyed per repository");
    let lens = |v: &[cairn::snapshot::ChunkRef]| v.iter().map(|c| c.len).collect::<Vec<_>>();
    assert_ne!(lens(&ca), lens(&cb), "cut points are seeded per repository");
    let data = fs::read(src.join("data.bin")).unwrap();
    let mut at = 0usize;
    for c in &ca {
        let plain = cairn::ChunkId::of(&data[at..at + c.len as usize]);
        assert_ne!(plain, c.id, "a chunk id is plain BLAKE3 of its data");
        at += c.len as usize;
    }
    assert_eq!(at, data.len());
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn check(c: &Cairn, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["repo", "check"];
    args.extend_from_slice(extra);
    let o = c.run(&args);
    (code(&o), String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o))
}

#[test]
fn two_blobs_swapped_inside_a_pack_are_detected_and_not_restored() {
    let c = Cairn::new(&[]);
    let src = c.path("src");
    let mut rng = Rng::new(11);
    // Incompressible and of one length: stored raw, so their envelopes are the same size.
    write_file(&src.join("one.bin"), &rng.bytes(1000));
    write_file(&src.join("two.bin"), &rng.bytes(1000));
    write_file(&src.join("other.txt"), b"not involved");
    c.snapshot(&src, &[]);
    let r = c.open();
    let (_, snap) = r.resolve_snapshot(&SnapshotSpec::Latest).unwrap();
    let loc = |name: &str| {
        let path = fs::canonicalize(src.join(name)).unwrap();
        let node = cairn::ops::select::find_node(&r, &snap, path.to_str().unwrap().as_bytes()).unwrap().unwrap();
        r.locate(&r.file_chunks(&node).unwrap()[0].id).unwrap()
    };
    let (a, b) = (loc("one.bin"), loc("two.bin"));
    drop(r);
    assert_eq!((a.pack, a.stored_len), (b.pack, b.stored_len));
    let pack = c.repo().join(cairn::repo::pack_key(&a.pack));
    let mut bytes = fs::read(&pack).unwrap();
    let (ra, rb) =
        (a.offset as usize..(a.offset + a.stored_len) as usize, b.offset as usize..(b.offset + b.stored_len) as usize);
    let blob_a = bytes[ra.clone()].to_vec();
    let blob_b = bytes[rb.clone()].to_vec();
    bytes[ra].copy_from_slice(&blob_b);
    bytes[rb].copy_from_slice(&blob_a);
    fs::write(&pack, bytes).unwrap();
    let (code_, out) = check(&c, &["--read-data"]);
    assert_eq!(code_, 4, "{out}");
    assert!(out.contains("one.bin") && out.contains("two.bin"), "{out}");
    assert!(out.contains("authentication failed"), "{out}");
    let target = c.path("restored");
    let o = c.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(!target.join("one.bin").exists() && !target.join("two.bin").exists());
    assert_eq!(fs::read(target.join("other.txt")).unwrap(), b"not involved");
}

#[test]
fn two_snapshot_objects_swapped_are_detected() {
    let c = Cairn::new(&[]);
    let src = c.path("src");
    write_file(&src.join("f"), b"first");
    let a = c.snapshot(&src, &[]);
    write_file(&src.join("f"), b"second");
    let b = c.snapshot(&src, &[]);
    let dir = c.repo().join("snapshots");
    let (pa, pb) = (dir.join(&a), dir.join(&b));
    let (ba, bb) = (fs::read(&pa).unwrap(), fs::read(&pb).unwrap());
    fs::write(&pa, bb).unwrap();
    fs::write(&pb, ba).unwrap();
    let (code_, out) = check(&c, &[]);
    assert_eq!(code_, 4, "{out}");
    assert!(out.contains(&format!("snapshot {a}: is corrupt")), "{out}");
    assert!(out.contains(&format!("snapshot {b}: is corrupt")), "{out}");
    let o = c.run(&["restore", &a, "--target", c.path("r").to_str().unwrap()]);
    assert_eq!(code(&o), 13, "{}", stderr(&o));
}

#[test]
fn a_flipped_byte_in_a_wal_record_is_found_by_check() {
    let c = Cairn::new(&[]);
    let wal = c.path("000000010000000000000007");
    write_file(&wal, &Rng::new(2).events(100_000));
    c.ok(&["wal", "push", "--stream", "pg", wal.to_str().unwrap()]);
    let mut files = Vec::new();
    every_file(&c.repo().join("wal"), &mut files);
    assert_eq!(files.len(), 1);
    flip_byte(&files[0], 60);
    let (code_, out) = check(&c, &[]);
    assert_eq!(code_, 4, "{out}");
    assert!(out.contains("WAL record") && out.contains("authentication failed"), "{out}");
    let o = c.run(&["wal", "fetch", "--stream", "pg", "000000010000000000000007", c.path("out").to_str().unwrap()]);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    assert!(!c.path("out").exists(), "no wrong bytes are written");
}

#[test]
fn a_flipped_byte_in_the_key_file_is_reported_as_damage() {
    let c = Cairn::new(&[]);
    let key = fs::read_dir(c.repo().join("keys")).unwrap().next().unwrap().unwrap().path();
    for offset in [10u64, 60, fs::metadata(&key).unwrap().len() - 3] {
        let before = fs::read(&key).unwrap();
        flip_byte(&key, offset);
        let o = c.run(&["snapshot", "list"]);
        assert_ne!(code(&o), 0, "offset {offset}");
        assert!(
            stderr(&o).contains("key file is corrupt") || stderr(&o).contains("wrong password"),
            "offset {offset}: {}",
            stderr(&o)
        );
        fs::write(&key, before).unwrap();
    }
    c.ok(&["snapshot", "list"]);
}

#[test]
fn keys_are_added_listed_changed_and_the_last_one_is_kept() {
    let c = Cairn::new(&[]);
    let list = |c: &Cairn, pw: &str| -> Vec<serde_json::Value> {
        let o = c.cmd(&["key", "list", "--json"]).env("CAIRN_PASSWORD", pw).output().unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(list(&c, common::TEST_PASSWORD).len(), 1);
    let o = c.cmd(&["key", "add", "--json"]).env("CAIRN_NEW_PASSWORD", "second password").output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let second: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let second = second["id"].as_str().unwrap().to_string();
    let keys = list(&c, "second password");
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|k| k["id"] == second.as_str() && k["current"] == true && k["class"] == "full"));
    // Change the first key's password; the old one no longer opens.
    let o = c.cmd(&["key", "passwd"]).env("CAIRN_NEW_PASSWORD", "third password").output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(list(&c, "third password").len(), 2);
    let o = c.cmd(&["snapshot", "list"]).output().unwrap();
    assert_eq!(code(&o), 1, "the old password is gone: {}", stderr(&o));
    // Remove the second key; removing the last is refused.
    let o = c.cmd(&["key", "remove", &second[..10]]).env("CAIRN_PASSWORD", "third password").output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let keys = list(&c, "third password");
    assert_eq!(keys.len(), 1);
    let last = keys[0]["id"].as_str().unwrap();
    let o = c.cmd(&["key", "remove", last]).env("CAIRN_PASSWORD", "third password").output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("last full key"), "{}", stderr(&o));
    assert_eq!(list(&c, "third password").len(), 1);
}

#[test]
fn a_paper_key_restores_access_and_seeds_a_twin_repository() {
    let c = Cairn::new(&[]);
    let src = c.path("src");
    write_file(&src.join("f"), b"kept by the paper key");
    c.snapshot(&src, &[]);
    let paper = c.ok(&["key", "export"]);
    assert!(paper.starts_with("cairn paper key v1"), "{paper}");
    let paper_file = c.path("paper.txt");
    fs::write(&paper_file, &paper).unwrap();
    // Every key file lost: the paper key brings access back under a new password.
    fs::remove_dir_all(c.repo().join("keys")).unwrap();
    let o = c
        .cmd(&["key", "import", "--paper-key-file", paper_file.to_str().unwrap()])
        .env("CAIRN_NEW_PASSWORD", "after the fire")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let target = c.path("restored");
    let o = c
        .cmd(&["restore", "latest", "--target", target.to_str().unwrap()])
        .env("CAIRN_PASSWORD", "after the fire")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read(target.join("f")).unwrap(), b"kept by the paper key");
    // Another repository's paper key is refused.
    let other = Cairn::new(&[]);
    let o = other
        .cmd(&["key", "import", "--paper-key-file", paper_file.to_str().unwrap()])
        .env("CAIRN_NEW_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("no matching key"), "{}", stderr(&o));
    // init --from-key-export: same master key, so the same keyed ids.
    let twin = Cairn { dir: tempfile::tempdir().unwrap() };
    twin.ok(&["init", "--from-key-export", paper_file.to_str().unwrap()]);
    assert_eq!(twin.ok(&["key", "export"]), paper);
}

#[test]
fn an_unencrypted_config_swapped_into_an_encrypted_repository_is_refused() {
    let enc = Cairn::new(&[]);
    let plain = Cairn::new(&["--encryption", "none"]);
    fs::copy(plain.repo().join("config"), enc.repo().join("config")).unwrap();
    let src = enc.path("src");
    write_file(&src.join("secret.txt"), b"must never be stored in the clear");
    let o = enc.run(&["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(code(&o), 13, "{}", stderr(&o));
    assert!(stderr(&o).contains("keys/ holds key files"), "{}", stderr(&o));
}
