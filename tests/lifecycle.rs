//! Retention and garbage collection: forget policies, WAL windows, prune (plan, repack,
//! delete), locks that protect prune from writers, and concurrent writers and readers.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cairn::ops::{self, BackupOptions, ForgetOptions, KeepPolicy};
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, LockKind, LockRecord};
use common::{assert_same_tree, write_file, Rng, TestRepo};

const HOUR: i64 = 3_600_000_000_000;

fn cairn(repo: &Path, args: &[&str]) -> Output {
    common::cli::finish(
        Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(repo).args(args),
    )
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = cairn(repo, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn snapshot_at(repo: &TestRepo, src: &Path, time_ns: i64) {
    let r = repo.open(Access::Write);
    let opts = BackupOptions {
        paths: vec![src.to_path_buf()],
        host: Some("h".into()),
        time_ns: Some(time_ns),
        ..Default::default()
    };
    ops::backup(&r, &opts, &NoProgress).unwrap();
}

#[test]
fn forget_keeps_the_newest_snapshot_of_each_bucket_and_says_why() {
    let repo = TestRepo::new(IndexKind::Memory);
    let src = repo.dir.path().join("src");
    write_file(&src.join("f"), b"data");
    // Snapshots every 30 minutes for three days, starting 2026-11-01T00:00Z.
    let start = cairn::time::parse_timestamp("2026-11-01T00:00:00Z").unwrap();
    let times: Vec<i64> = (0..144).map(|i| start + i * HOUR / 2).collect();
    for t in &times {
        snapshot_at(&repo, &src, *t);
    }
    let r = repo.open(Access::Write);
    let opts = ForgetOptions {
        policy: KeepPolicy { last: 2, hourly: 4, daily: 3, ..Default::default() },
        dry_run: true,
        ..Default::default()
    };
    let report = ops::forget(&r, &opts).unwrap();
    let kept: BTreeSet<String> = report.snapshots.iter().filter(|d| d.keep).map(|d| d.time.clone()).collect();
    let want: BTreeSet<String> = [
        "2026-11-03T23:30:00Z", // last 2, hourly, daily
        "2026-11-03T23:00:00Z", // last 2
        "2026-11-03T22:30:00Z", // hourly
        "2026-11-03T21:30:00Z", // hourly
        "2026-11-03T20:30:00Z", // hourly
        "2026-11-02T23:30:00Z", // daily
        "2026-11-01T23:30:00Z", // daily
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kept, want);
    let newest = report.snapshots.iter().find(|d| d.time == "2026-11-03T23:30:00Z").unwrap();
    assert_eq!(newest.reasons, ["last 2", "hourly 4", "daily 3"]);
    assert_eq!(report.forgotten(), 144 - 7);
    // Dry run changed nothing.
    assert_eq!(r.snapshot_ids().unwrap().len(), 144);
    // keep-within is relative to the group's newest snapshot.
    let opts = ForgetOptions {
        policy: KeepPolicy { within_ns: Some(3 * HOUR), ..Default::default() },
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(ops::forget(&r, &opts).unwrap().snapshots.iter().filter(|d| d.keep).count(), 7);
    // No rule: refused.
    assert!(ops::forget(&r, &ForgetOptions::default()).is_err());
}

#[test]
fn forget_and_prune_free_space_and_what_is_kept_still_restores() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let p = repo.path();
    let src = repo.dir.path().join("src");
    let mut rng = Rng::new(4);
    let mut versions = Vec::new();
    for i in 0..5 {
        write_file(&src.join(format!("seg-{i}")), &rng.bytes(3 << 20));
        if i > 0 {
            fs::remove_file(src.join(format!("seg-{}", i - 1))).unwrap();
        }
        ok(&p, &["snapshot", "create", src.to_str().unwrap()]);
        let copy = repo.dir.path().join(format!("v{i}"));
        copy_tree(&src, &copy);
        versions.push(copy);
    }
    let before = repo.stored_bytes();
    let plan: serde_json::Value = serde_json::from_str(&ok(&p, &["prune", "--dry-run", "--json"])).unwrap();
    assert_eq!(plan["delete"].as_array().unwrap().len(), 0, "nothing is unused yet");
    let out = ok(&p, &["forget", "--keep-last", "2", "--prune"]);
    assert!(out.contains("removed 3 of 5 snapshots"), "{out}");
    let after = repo.stored_bytes();
    assert!(after < before / 2, "prune freed too little: {before} -> {after}");
    let o = cairn(&p, &["repo", "check", "--read-data"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    // The two kept snapshots restore byte for byte.
    let list: serde_json::Value = serde_json::from_str(&ok(&p, &["snapshot", "list", "--json"])).unwrap();
    for (snap, version) in list.as_array().unwrap().iter().zip(&versions[3..]) {
        let target = repo.dir.path().join(format!("r-{}", &snap["id"].as_str().unwrap()[..8]));
        ok(&p, &["restore", snap["id"].as_str().unwrap(), "--target", target.to_str().unwrap()]);
        assert_same_tree(version, &target);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let s = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(s.success());
}

#[test]
fn prune_repacks_partly_used_packs_and_dry_run_changes_nothing() {
    let opts = cairn::repo::InitOptions { pack_target_bytes: 64 << 20, ..Default::default() };
    let repo = TestRepo::with_options(IndexKind::Persistent, &opts);
    let p = repo.path();
    let src = repo.dir.path().join("src");
    let mut rng = Rng::new(8);
    // One snapshot writes one pack holding both files; then one file goes away.
    write_file(&src.join("keep.bin"), &rng.bytes(2 << 20));
    write_file(&src.join("drop.bin"), &rng.bytes(6 << 20));
    ok(&p, &["snapshot", "create", src.to_str().unwrap()]);
    fs::remove_file(src.join("drop.bin")).unwrap();
    ok(&p, &["snapshot", "create", src.to_str().unwrap()]);
    ok(&p, &["forget", "--keep-last", "1"]);
    let packs_before = common::dir_bytes(&p.join("packs"));
    let plan: serde_json::Value = serde_json::from_str(&ok(&p, &["prune", "--dry-run", "--json"])).unwrap();
    assert_eq!(plan["repack"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(common::dir_bytes(&p.join("packs")), packs_before, "dry run changed packs");
    ok(&p, &["prune"]);
    let packs_after = common::dir_bytes(&p.join("packs"));
    assert!(packs_after < packs_before / 2, "{packs_before} -> {packs_after}");
    let target = repo.dir.path().join("restored");
    ok(&p, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    assert_eq!(cairn(&p, &["repo", "check", "--read-data"]).status.code(), Some(0));
}

#[test]
fn keep_wal_within_keeps_the_window_restorable_and_forgets_older_wal() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let p = repo.path();
    let src = repo.dir.path().join("data");
    let wal = repo.dir.path().join("wal");
    let tick = || std::thread::sleep(std::time::Duration::from_millis(30));
    write_file(&src.join("seg"), b"v1");
    ok(&p, &["snapshot", "create", src.to_str().unwrap()]);
    tick();
    for n in ["w1", "w2"] {
        write_file(&wal.join(n), n.as_bytes());
        ok(&p, &["wal", "push", "--stream", "s", wal.join(n).to_str().unwrap()]);
    }
    // Past every grace period: WAL archived now belongs to no snapshot's span.
    let s2_time = cairn::time::now_ns() + 2 * HOUR;
    write_file(&src.join("seg"), b"v2");
    let r = repo.open(Access::Write);
    ops::backup(
        &r,
        &BackupOptions { paths: vec![src.clone()], time_ns: Some(s2_time), ..Default::default() },
        &NoProgress,
    )
    .unwrap();
    drop(r);
    let window_start = s2_time + 1;
    let opts = ForgetOptions {
        policy: KeepPolicy { last: 1, ..Default::default() },
        keep_wal_within_ns: Some(HOUR),
        now_ns: Some(window_start + HOUR),
        ..Default::default()
    };
    let r = repo.open(Access::Write);
    let report = ops::forget(&r, &opts).unwrap();
    drop(r);
    assert_eq!(report.wal_forgotten, ["s/w1", "s/w2"], "{report:?}");
    let kept: Vec<_> = report.snapshots.iter().filter(|d| d.keep).map(|d| d.reasons.join(",")).collect();
    assert_eq!(kept, ["last 1,base of the WAL window"]);
    let list = ok(&p, &["wal", "list", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list).unwrap().as_array().unwrap().len(), 0);
    ok(&p, &["prune"]);
    assert_eq!(cairn(&p, &["repo", "check"]).status.code(), Some(0));
}

#[test]
fn a_live_exclusive_lock_blocks_writers_and_a_dead_one_does_not() {
    // Lock records are written by hand below: in plaintext, so the repository is unencrypted
    // (encrypted locks are sealed with the index key; tests/encryption.rs).
    let repo = TestRepo::unencrypted(IndexKind::Persistent);
    let p = repo.path();
    let src = repo.dir.path().join("src");
    write_file(&src.join("f"), b"x");
    let lock_file = |pid: u32, host: &str, heartbeat_ns: i64| {
        let start = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s[s.rfind(')').unwrap() + 1..].split_whitespace().nth(19).map(|v| v.parse().unwrap()))
            .unwrap_or(1);
        let rec = LockRecord {
            kind: LockKind::Exclusive,
            command: "prune".into(),
            host: host.into(),
            boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().into(),
            pid,
            pid_start: start,
            created_ns: heartbeat_ns,
            heartbeat_ns,
        };
        let path = p.join("locks").join(format!("{pid}-{host}"));
        fs::write(&path, rec.encode().unwrap()).unwrap();
        path
    };
    let now = cairn::time::now_ns();
    // Held by a live process (this test): writers wait, then give up with exit 11.
    let live = lock_file(std::process::id(), &cairn::fs::hostname(), now);
    let o = cairn(&p, &["--lock-wait", "1", "snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(11), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exclusive lock of `prune`"));
    fs::remove_file(live).unwrap();
    // Held by a process that is gone: cleared automatically.
    let dead = lock_file(4_000_000, &cairn::fs::hostname(), now);
    ok(&p, &["--lock-wait", "1", "snapshot", "create", src.to_str().unwrap()]);
    assert!(!dead.exists(), "stale lock was not removed");
    // Another host, not refreshed for an hour: expired, does not block; unlock removes it.
    let expired = lock_file(12345, "other-host", now - HOUR);
    ok(&p, &["--lock-wait", "1", "snapshot", "create", src.to_str().unwrap()]);
    let o = cairn(&p, &["repo", "check"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("has not been refreshed since"));
    let out = ok(&p, &["repo", "unlock"]);
    assert!(out.contains("1 locks removed"), "{out}");
    assert!(!expired.exists());
}

/// Runs `cairn` in the background.
fn spawn(repo: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(common::TEST_ENV)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_writers_readers_and_prune_all_succeed() {
    let repo = TestRepo::new(IndexKind::Persistent);
    let p = repo.path();
    let mut rng = Rng::new(21);
    let dirs: Vec<PathBuf> = (0..3).map(|i| repo.dir.path().join(format!("src{i}"))).collect();
    for (i, d) in dirs.iter().enumerate() {
        for j in 0..4 {
            // Shared content across the trees, so writers dedupe against each other.
            let mut data = Rng::new(j).bytes(4 << 20);
            data.extend_from_slice(&rng.bytes(1 << 20));
            write_file(&d.join(format!("f{i}-{j}")), &data);
        }
    }
    ok(&p, &["snapshot", "create", dirs[2].to_str().unwrap()]);
    let reader_target = repo.dir.path().join("reader");
    let mut children = [
        spawn(&p, &["snapshot", "create", dirs[0].to_str().unwrap()]),
        spawn(&p, &["snapshot", "create", dirs[1].to_str().unwrap()]),
        spawn(&p, &["restore", "latest", "--target", reader_target.to_str().unwrap()]),
        spawn(&p, &["repo", "check"]),
        spawn(&p, &["prune"]),
    ];
    let wal = repo.dir.path().join("wal/000000010000000000000001");
    write_file(&wal, &rng.bytes(16 << 20));
    ok(&p, &["wal", "push", wal.to_str().unwrap()]);
    for c in children.iter_mut() {
        let out = c.wait_with_output_ref();
        assert!(out.0.success(), "a concurrent command failed ({:?}): {}", out.0, out.1);
    }
    // Everything committed restores, and the repository is clean.
    let list: serde_json::Value = serde_json::from_str(&ok(&p, &["snapshot", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    for snap in list.as_array().unwrap() {
        let src = PathBuf::from(snap["paths"][0].as_str().unwrap());
        let target = repo.dir.path().join(format!("r-{}", &snap["id"].as_str().unwrap()[..8]));
        ok(&p, &["restore", snap["id"].as_str().unwrap(), "--target", target.to_str().unwrap()]);
        assert_same_tree(&src, &target);
    }
    ok(&p, &["prune"]);
    let o = cairn(&p, &["repo", "check", "--read-data"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

trait WaitRef {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitRef for std::process::Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let status = self.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }
}
