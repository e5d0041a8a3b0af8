//! Write-only keys (issue 16 item 4), end to end through the binary: a host holding only a
//! write-only key snapshots and pushes WAL, deduplicating against the whole repository; a
//! full key lists, restores and checks all of it, also after a prune; the write-only key
//! reads nothing back (exit 14, one line), and its repository holds no plaintext.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cli::{cairn_with, Ran};
use common::{assert_same_tree, dir_bytes, write_file};

/// The password of the write-only key; the full key's is the test environment's.
const WO_PASSWORD: &str = "write-only host password";
const LIMIT: Duration = Duration::from_secs(120);

/// Plaintext markers: in a file's contents, a file name, a directory name, a tag, a host name.
const MARKER_DATA: &str = "WRITE-ONLY-MARKER-DATA-7f3c";
const MARKER_NAME: &str = "write-only-marker-name-91ab";
const MARKER_TAG: &str = "wo-marker-tag-55d1";
const MARKER_HOST: &str = "wo-marker-host-c0de";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// An encrypted repository with its full key and one write-only key, and a source tree.
    fn new() -> Self {
        let s = Setup { dir: tempfile::tempdir().unwrap() };
        s.full(&["init"]);
        let added = s.run(&["key", "add", "--write-only"], &[("CAIRN_NEW_PASSWORD", WO_PASSWORD)], true);
        assert!(added.stdout().contains("added write-only key"), "{}", added.show());
        common::generate_tree(&s.src(), 11, 400_000);
        let data = format!("{MARKER_DATA}\n").repeat(2000);
        write_file(&s.src().join(MARKER_NAME).join(format!("{MARKER_NAME}.txt")), data.as_bytes());
        s
    }
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn run(&self, args: &[&str], envs: &[(&str, &str)], must_succeed: bool) -> Ran {
        // Each write-only run keeps its own cache dir under the test's directory.
        let cache = self.path("cache");
        let mut all = vec![("CAIRN_CACHE_DIR", cache.to_str().unwrap())];
        all.extend_from_slice(envs);
        let r = cairn_with(&self.repo(), args, &all, LIMIT);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.show());
        if must_succeed {
            assert_eq!(r.code, 0, "{args:?}: {}", r.show());
        }
        r
    }
    /// A command with the full key.
    fn full(&self, args: &[&str]) -> Ran {
        self.run(args, &[], true)
    }
    /// A command with the write-only key, which must succeed.
    fn wo(&self, args: &[&str]) -> Ran {
        self.run(args, &[("CAIRN_PASSWORD", WO_PASSWORD)], true)
    }
    /// A command with the write-only key, which may fail.
    fn wo_try(&self, args: &[&str]) -> Ran {
        self.run(args, &[("CAIRN_PASSWORD", WO_PASSWORD)], false)
    }
    fn wo_snapshot(&self) -> String {
        self.wo_snapshot_json()["id"].as_str().unwrap().to_string()
    }
    /// `snapshot create --json` with the write-only key: the id, the parent, the summary.
    fn wo_snapshot_json(&self) -> serde_json::Value {
        let src = self.src();
        let r = self.wo(&[
            "snapshot",
            "create",
            "--json",
            "--tag",
            MARKER_TAG,
            "--host",
            MARKER_HOST,
            src.to_str().unwrap(),
        ]);
        serde_json::from_str(&r.stdout()).unwrap()
    }
    fn pack_bytes(&self) -> u64 {
        dir_bytes(&self.repo().join("packs"))
    }
    fn count(&self, dir: &str) -> usize {
        fs::read_dir(self.repo().join(dir)).map(|d| d.count()).unwrap_or(0)
    }
}

/// Every file below `dir`, for grepping.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_write_only_host_backs_up_and_a_full_key_restores_and_checks_it() {
    let s = Setup::new();
    let list = s.full(&["key", "list"]).stdout();
    assert!(list.contains("write-only") && list.contains("full"), "{list}");

    let first = s.wo_snapshot();
    let after_first = s.pack_bytes();
    let v = s.wo_snapshot_json();
    let second = v["id"].as_str().unwrap().to_string();
    let added = s.pack_bytes() - after_first;
    // Unchanged data: every chunk and tree is found in the index, no pack is written; and the
    // host's own cache names the parent, so no file is read again.
    assert!(added * 100 <= after_first, "a second identical snapshot added {added} of {after_first} pack bytes");
    assert_eq!(v["parent"].as_str(), Some(first.as_str()), "{v}");
    assert_eq!(v["summary"]["files_read"], 0, "{v}");
    let wal = s.path("000000010000000000000001");
    write_file(&wal, &common::Rng::new(3).bytes(1 << 20));
    s.wo(&["wal", "push", wal.to_str().unwrap()]);
    // One session per run that sealed something: two snapshots and a WAL push.
    assert_eq!(s.count("sessions"), 3);

    let listed = s.full(&["snapshot", "list"]).stdout();
    assert!(listed.contains(&first[..8]) && listed.contains(&second[..8]), "{listed}");
    assert!(listed.contains(MARKER_HOST), "{listed}");
    let target = s.path("restored");
    s.full(&["restore", &second, "--target", target.to_str().unwrap()]);
    assert_same_tree(&s.src(), &target);
    let fetched = s.path("fetched");
    s.full(&["wal", "fetch", "000000010000000000000001", fetched.to_str().unwrap()]);
    assert_eq!(fs::read(&fetched).unwrap(), fs::read(&wal).unwrap());
    s.full(&["repo", "check", "--read-data"]);
}

#[test]
fn a_write_only_key_reads_nothing_back() {
    let s = Setup::new();
    let id = s.wo_snapshot();
    let wal = s.path("000000010000000000000002");
    write_file(&wal, b"wal bytes");
    s.wo(&["wal", "push", wal.to_str().unwrap()]);
    let target = s.path("t");
    let copy_dst = s.path("other");
    let t = target.to_str().unwrap();
    let src = s.src().to_str().unwrap().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["restore", &id, "--target", t],
        vec!["restore", "latest", "--target", t],
        vec!["restore", "--at", "2100-01-01 00:00", "--target", t],
        vec!["ls", &id],
        vec!["snapshot", "show", &id],
        vec!["snapshot", "diff", &id, &id],
        vec!["snapshot", "list"],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["repo", "check"],
        vec!["repo", "check", "--read-data"],
        vec!["wal", "fetch", "000000010000000000000002", t],
        vec!["wal", "list"],
        vec!["key", "export"],
        vec!["key", "add"],
        vec!["key", "passwd"],
        vec!["snapshot", "create", "--parent", &id, &src],
    ];
    for args in &commands {
        let r = s.wo_try(args);
        assert_eq!(r.code, 14, "{args:?}: {}", r.show());
        let err = r.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{args:?}: {}", r.show());
        assert!(err.starts_with("error: this is a write-only key: it cannot "), "{args:?}: {err}");
        assert!(!target.exists(), "{args:?} created the target");
    }
    // `repo copy` with the write-only key as the source.
    assert_eq!(cairn_with(&copy_dst, &["init"], &[], LIMIT).code, 0);
    let r = cairn_with(
        &copy_dst,
        &["repo", "copy", "--from", s.repo().to_str().unwrap()],
        &[("CAIRN_PASSWORD", WO_PASSWORD)],
        LIMIT,
    );
    assert_eq!(r.code, 14, "{}", r.show());
    // Nothing above left a session header behind: only the two runs that wrote did.
    assert_eq!(s.count("sessions"), 2);
}

#[test]
fn a_repeated_wal_push_is_recognised_only_from_the_hosts_own_memory() {
    let s = Setup::new();
    let wal = s.path("000000010000000000000003");
    write_file(&wal, &common::Rng::new(5).bytes(300_000));
    s.wo(&["wal", "push", wal.to_str().unwrap()]);
    // PostgreSQL retrying the same segment: the host remembers what it pushed.
    let again = s.wo(&["wal", "push", wal.to_str().unwrap()]).stdout();
    assert!(again.contains("already archived"), "{again}");
    // Other content under the same name cannot be compared with the sealed record: refused.
    let wal_bytes = fs::read(&wal).unwrap();
    write_file(&wal, b"different content");
    let r = s.wo_try(&["wal", "push", wal.to_str().unwrap()]);
    assert_eq!(r.code, 14, "{}", r.show());
    assert!(r.stderr.contains("already archived"), "{}", r.show());
    // Without the host's cache, not even the same file can be recognised.
    write_file(&wal, &wal_bytes);
    fs::remove_dir_all(s.path("cache")).unwrap();
    let r = s.wo_try(&["wal", "push", wal.to_str().unwrap()]);
    assert_eq!(r.code, 14, "{}", r.show());
    // Nothing was replaced: a full key fetches the first content.
    let fetched = s.path("fetched");
    s.full(&["wal", "fetch", "000000010000000000000003", fetched.to_str().unwrap()]);
    assert_eq!(fs::read(&fetched).unwrap(), wal_bytes);
    s.full(&["wal", "push", wal.to_str().unwrap()]);
}

#[test]
fn the_repository_holds_no_plaintext_a_write_only_key_could_recover() {
    let s = Setup::new();
    s.wo_snapshot();
    let wal = s.path(MARKER_NAME);
    write_file(&wal, MARKER_DATA.repeat(100).as_bytes());
    s.wo(&["wal", "push", wal.to_str().unwrap()]);
    let mut all = Vec::new();
    files(&s.repo(), &mut all);
    assert!(all.len() > 5);
    for f in &all {
        let bytes = fs::read(f).unwrap();
        for marker in [MARKER_DATA, MARKER_NAME, MARKER_TAG, MARKER_HOST] {
            assert!(!contains(&bytes, marker.as_bytes()), "{marker} found in {}", f.display());
        }
    }
    // The write-only key file holds no master key: it cannot export one, nor open a full key's
    // objects. A full key reads the marker back.
    let target = s.path("restored");
    s.full(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let found = fs::read(target.join(MARKER_NAME).join(format!("{MARKER_NAME}.txt"))).unwrap();
    assert!(contains(&found, MARKER_DATA.as_bytes()));
}

#[test]
fn prune_with_a_full_key_keeps_what_write_only_snapshots_use() {
    let s = Setup::new();
    s.wo_snapshot();
    // Change the source, so the second snapshot shares some data and not all.
    fs::remove_file(s.src().join("file-7.bin")).unwrap();
    write_file(&s.src().join("new.bin"), &common::Rng::new(9).bytes(500_000));
    s.wo_snapshot();
    s.full(&["forget", "--keep-last", "1"]);
    s.full(&["prune", "--max-unused", "0"]);
    assert_eq!(s.count("snapshots"), 1);
    let target = s.path("restored");
    s.full(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&s.src(), &target);
    s.full(&["repo", "check", "--read-data"]);
}

#[test]
fn the_last_full_key_is_kept_and_a_write_only_key_manages_no_keys() {
    let s = Setup::new();
    let keys: serde_json::Value = serde_json::from_str(&s.full(&["key", "list", "--json"]).stdout()).unwrap();
    let full = keys.as_array().unwrap().iter().find(|k| k["class"] == "full").unwrap();
    let wo = keys.as_array().unwrap().iter().find(|k| k["class"] == "write-only").unwrap();
    // A write-only key does not count as a way back in.
    let r = s.run(&["key", "remove", full["id"].as_str().unwrap()], &[], false);
    assert_eq!(r.code, 1, "{}", r.show());
    assert!(r.stderr.contains("last full key"), "{}", r.show());
    let r = s.wo_try(&["key", "remove", wo["id"].as_str().unwrap()]);
    assert_eq!(r.code, 14, "{}", r.show());
    // A full key removes the write-only one.
    s.full(&["key", "remove", wo["id"].as_str().unwrap()]);
    assert_eq!(s.count("keys"), 1);
}

#[test]
fn a_write_only_host_finds_changes_with_its_own_cache_and_reads_all_without_it() {
    let s = Setup::new();
    let first = s.wo_snapshot();
    // One file changed in place (same size, new contents and mtime): only it is read.
    let changed = s.src().join("a/b/sibling.log");
    let mut bytes = fs::read(&changed).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&changed, &bytes).unwrap();
    common::set_mtime(&changed, 1_700_000_000);
    let v = s.wo_snapshot_json();
    assert_eq!(v["parent"].as_str(), Some(first.as_str()), "{v}");
    assert_eq!(v["summary"]["files_read"], 1, "{v}");
    // The cache holds this host's trees in the clear, in its own directory, never the
    // repository; without it every file is read again, and dedup keeps the bytes stored small.
    assert!(s.path("cache").exists());
    fs::remove_dir_all(s.path("cache")).unwrap();
    let before = s.pack_bytes();
    let v = s.wo_snapshot_json();
    assert!(v["parent"].is_null(), "{v}");
    assert!(v["summary"]["files_read"].as_u64().unwrap() > 10, "{v}");
    assert!((s.pack_bytes() - before) * 100 <= before, "re-reading stored new data");
    let target = s.path("restored");
    s.full(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&s.src(), &target);
}

#[test]
fn a_missing_session_header_is_damage_not_a_forgotten_snapshot() {
    let s = Setup::new();
    s.wo_snapshot();
    fs::remove_dir_all(s.repo().join("sessions")).unwrap();
    let target = s.path("restored");
    let r = s.run(&["restore", "latest", "--target", target.to_str().unwrap()], &[], false);
    assert_eq!(r.code, 13, "{}", r.show());
    assert!(r.stderr.contains("sessions/") && r.stderr.contains("is missing"), "{}", r.show());
    let r = s.run(&["repo", "check"], &[], false);
    assert_eq!(r.code, 4, "{}", r.show());
}

/// What write-only sessions sealed travels with `repo copy`: to a twin (same master key, where
/// sealed data is copied as it is and session objects are sealed again, their headers living
/// in the source) and to a repository of another key (re-encrypted). Both restore byte for byte
/// and pass `check --read-data` with their own full key.
#[test]
fn what_a_write_only_host_wrote_copies_to_a_twin_and_to_another_key() {
    let s = Setup::new();
    let id = s.wo_snapshot();
    let paper = s.path("paper.txt");
    fs::write(&paper, s.full(&["key", "export"]).stdout()).unwrap();
    let source_password = s.path("source-password");
    fs::write(&source_password, format!("{}\n", common::TEST_PASSWORD)).unwrap();
    for (name, init_extra) in [("twin", vec!["--from-key-export", paper.to_str().unwrap()]), ("other", vec![])] {
        let dst = s.path(name);
        let password = format!("{name}'s own password");
        let env = [("CAIRN_PASSWORD", password.as_str())];
        let run = |args: &[&str]| {
            let r = cairn_with(&dst, args, &env, LIMIT);
            assert_eq!(r.code, 0, "{name}: {args:?}: {}", r.show());
            r
        };
        let mut init = vec!["init"];
        init.extend_from_slice(&init_extra);
        run(&init);
        let from = s.repo();
        let copy = run(&[
            "repo",
            "copy",
            "--json",
            "--from",
            from.to_str().unwrap(),
            "--from-password-file",
            source_password.to_str().unwrap(),
        ]);
        let report: serde_json::Value = serde_json::from_str(&copy.stdout()).unwrap();
        assert_eq!(report["snapshots_copied"], 1, "{name}: {report}");
        let copied = report["snapshots"][0]["destination"].as_str().unwrap().to_string();
        if name == "other" {
            assert_ne!(copied, id, "a re-encrypted snapshot gets a new id");
        }
        let target = s.path(&format!("restored-{name}"));
        run(&["restore", &copied, "--target", target.to_str().unwrap()]);
        assert_same_tree(&s.src(), &target);
        run(&["repo", "check", "--read-data"]);
    }
}
