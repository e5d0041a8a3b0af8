//! WAL archiving for any service that writes WAL or log segments: push/fetch/list semantics,
//! and `restore --at` + `--wal-dir` yielding exactly the files that existed and were archived
//! at that time.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{write_file, Rng};

struct Cairn {
    dir: tempfile::TempDir,
}

impl Cairn {
    fn new() -> Self {
        let c = Cairn { dir: tempfile::tempdir().unwrap() };
        assert_eq!(code(&c.run(&["init"])), 0);
        c
    }
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn run(&self, args: &[&str]) -> Output {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(self.repo()).args(args),
        )
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn push(&self, file: &Path) -> serde_json::Value {
        let out = self.ok(&["wal", "push", "--json", "--stream", "svc", file.to_str().unwrap()]);
        serde_json::from_str(&out).unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn now_ns() -> i64 {
    cairn::time::now_ns()
}

fn tick() {
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn push_is_idempotent_and_refuses_a_different_file_under_an_archived_name() {
    let c = Cairn::new();
    let wal = c.path("pg_wal/000000010000000000000001");
    write_file(&wal, &Rng::new(1).bytes(16 << 20));
    let first = c.push(&wal);
    assert_eq!(first["already_archived"], false);
    assert!(first["added"]["bytes_added"].as_u64().unwrap() >= 16 << 20);
    let packs = common::dir_bytes(&c.repo().join("packs"));
    let again = c.push(&wal);
    assert_eq!(again["already_archived"], true);
    assert_eq!(again["added"]["bytes_added"], 0);
    assert_eq!(common::dir_bytes(&c.repo().join("packs")), packs, "identical push stored something");
    // A different file under the same name: refused, nothing changes.
    write_file(&wal, &Rng::new(2).bytes(16 << 20));
    let o = c.run(&["wal", "push", "--stream", "svc", wal.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already archived") && stderr(&o).contains("different content"), "{}", stderr(&o));
    assert_eq!(common::dir_bytes(&c.repo().join("packs")), packs);
    // Fetch gives back the first version, verified.
    let dest = c.path("fetched");
    c.ok(&["wal", "fetch", "--stream", "svc", "000000010000000000000001", dest.to_str().unwrap()]);
    assert_eq!(fs::read(&dest).unwrap(), Rng::new(1).bytes(16 << 20));
}

#[test]
fn fetch_of_a_never_archived_name_exits_1_quietly() {
    let c = Cairn::new();
    let o = c.run(&["wal", "fetch", "00000002.history", c.path("x").to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "");
    assert!(!c.path("x").exists());
    // A bad name is a loud usage error, not "not archived".
    let o = c.run(&["wal", "fetch", "../../etc/passwd", c.path("x").to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn list_filters_by_time_and_stream() {
    let c = Cairn::new();
    let mut times = Vec::new();
    for i in 0..4 {
        let f = c.path(&format!("wal/seg-{i}"));
        write_file(&f, format!("segment {i}").as_bytes());
        c.push(&f);
        times.push(now_ns());
        tick();
    }
    let other = c.path("wal2/x");
    write_file(&other, b"other stream");
    c.ok(&["wal", "push", "--stream", "other", other.to_str().unwrap()]);
    let list = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["wal", "list", "--json"];
        a.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&c.ok(&a)).unwrap();
        v.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(list(&["--stream", "svc"]), ["seg-0", "seg-1", "seg-2", "seg-3"]);
    assert_eq!(list(&[]).len(), 5);
    let t1 = cairn::time::format_ns(times[1]);
    assert_eq!(list(&["--stream", "svc", "--until", &t1]), ["seg-0", "seg-1"]);
    assert_eq!(list(&["--stream", "svc", "--since", &t1]), ["seg-2", "seg-3"]);
}

/// A toy service: a data directory of segments plus a WAL directory; files appear over time.
#[test]
fn restore_at_yields_the_snapshot_and_exactly_the_wal_archived_by_then() {
    let c = Cairn::new();
    let data = c.path("svc/data");
    let wal = c.path("svc/wal");
    let mut rng = Rng::new(5);
    let mut contents = Vec::new();
    let mut write_wal = |i: usize, rng: &mut Rng| {
        let p = wal.join(format!("wal-{i:04}"));
        let bytes = rng.events(300_000 + i * 1000);
        write_file(&p, &bytes);
        contents.push(bytes);
        p
    };
    write_file(&data.join("seg-0001"), &rng.events(2 << 20));
    c.ok(&["snapshot", "create", data.to_str().unwrap()]);
    tick();
    c.push(&write_wal(0, &mut rng));
    tick();
    c.push(&write_wal(1, &mut rng));
    tick();
    let t_a = now_ns(); // after wal-0000, wal-0001; before the second snapshot
    tick();
    write_file(&data.join("seg-0002"), &rng.events(1 << 20));
    c.ok(&["snapshot", "create", data.to_str().unwrap()]);
    tick();
    c.push(&write_wal(2, &mut rng));
    tick();
    let t_b = now_ns(); // after wal-0002
    tick();
    c.push(&write_wal(3, &mut rng));

    for (t, want_wal, want_segs) in [(t_a, 2, vec!["seg-0001"]), (t_b, 3, vec!["seg-0001", "seg-0002"])] {
        let target = c.path(&format!("restore-{t}"));
        let wal_dir = c.path(&format!("restore-wal-{t}"));
        let at = cairn::time::format_ns(t);
        let o = c.run(&[
            "restore",
            "--at",
            &at,
            "--stream",
            "svc",
            "--target",
            target.to_str().unwrap(),
            "--wal-dir",
            wal_dir.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let mut segs: Vec<_> =
            fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        segs.sort();
        assert_eq!(segs, want_segs);
        let mut wals: Vec<_> =
            fs::read_dir(&wal_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        wals.sort();
        let expect: Vec<String> = (0..want_wal).map(|i| format!("wal-{i:04}")).collect();
        assert_eq!(wals, expect, "at {at}");
        for (i, name) in expect.iter().enumerate() {
            assert_eq!(fs::read(wal_dir.join(name)).unwrap(), contents[i], "{name}");
        }
    }
}

#[test]
fn restore_at_errors_and_warnings_are_clear() {
    let c = Cairn::new();
    let before_everything = cairn::time::format_ns(now_ns() - 3_600_000_000_000);
    let data = c.path("d");
    write_file(&data.join("f"), b"x");
    c.ok(&["snapshot", "create", data.to_str().unwrap()]);
    let wal = c.path("w/wal-1");
    write_file(&wal, b"wal one");
    c.push(&wal);
    // Before the first snapshot.
    let o = c.run(&["restore", "--at", &before_everything, "--target", c.path("t1").to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no snapshot was taken at or before") && stderr(&o).contains("the oldest is from"),
        "{}",
        stderr(&o)
    );
    // Malformed.
    let o = c.run(&["restore", "--at", "yesterday noon", "--target", c.path("t2").to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot read timestamp \"yesterday noon\""), "{}", stderr(&o));
    // Later than the last archived WAL: works, with a warning.
    tick();
    let later = cairn::time::format_ns(now_ns() + 60_000_000_000);
    let o = c.run(&[
        "restore",
        "--at",
        &later,
        "--stream",
        "svc",
        "--target",
        c.path("t3").to_str().unwrap(),
        "--wal-dir",
        c.path("t3wal").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning:") && stderr(&o).contains("later than the newest archived WAL (wal-1"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(c.path("t3wal/wal-1")).unwrap(), b"wal one");
    // Unix seconds work too.
    let secs = (now_ns() / 1_000_000_000 + 5).to_string();
    let o = c.run(&["restore", "--at", &secs, "--stream", "svc", "--target", c.path("t4").to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn wal_push_works_while_a_snapshot_holds_the_index() {
    let c = Cairn::new();
    let data = c.path("big");
    let mut rng = Rng::new(9);
    for i in 0..6 {
        write_file(&data.join(format!("seg-{i}")), &rng.bytes(48 << 20));
    }
    let mut snap = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(common::TEST_ENV)
        .arg("--repo")
        .arg(c.repo())
        .args(["snapshot", "create", data.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let wal = c.path("w/000000010000000000000042");
    write_file(&wal, &rng.bytes(16 << 20));
    let started = std::time::Instant::now();
    c.push(&wal);
    let push_secs = started.elapsed().as_secs_f64();
    let still_running = snap.try_wait().unwrap().is_none();
    assert!(snap.wait().unwrap().success());
    assert!(still_running, "the snapshot finished before the push; the test proves nothing");
    assert!(push_secs < 10.0, "push waited {push_secs:.1} s");
    // Both are durable and usable.
    let dest = c.path("fetched");
    c.ok(&["wal", "fetch", "000000010000000000000042", dest.to_str().unwrap(), "--stream", "svc"]);
    assert_eq!(fs::read(&dest).unwrap(), fs::read(&wal).unwrap());
    let o = c.run(&["repo", "check"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
}
