//! Locks cannot wedge a repository: a lock dated in the future blocks nobody, is reported as
//! invalid and is removed by `repo unlock`; every command that locks gives up within
//! `--lock-wait` (plus a little) with exit 11 and names what actually removes the lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cairn::repo::{LockKind, LockRecord};
use common::{write_file, Rng};

/// Seconds each command may wait for the lock in these tests.
const LOCK_WAIT_SECS: u64 = 2;
/// What a command may take beyond its lock wait: opening, a last backoff (< 0.6 s), exiting.
const SLACK: Duration = Duration::from_secs(4);

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// Unencrypted: the tests write lock records as another process would, and an encrypted
    /// repository's locks are sealed (a plaintext one there is unreadable, so it blocks nobody).
    fn new() -> Self {
        let r = Repo { dir: tempfile::tempdir().unwrap() };
        let o = r.run(&["init", "--encryption", "none"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        r
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn run_on(&self, repo: &Path, args: &[&str]) -> Output {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .envs(common::TEST_ENV)
                .arg("--repo")
                .arg(repo)
                .arg("--lock-wait")
                .arg(LOCK_WAIT_SECS.to_string())
                .args(args),
        )
    }
    fn run(&self, args: &[&str]) -> Output {
        self.run_on(&self.path(), args)
    }
    /// Writes `record` as a lock, as another process would.
    fn put_lock(&self, name: char, record: &LockRecord) {
        let key = name.to_string().repeat(64);
        std::fs::write(self.path().join("locks").join(key), record.encode().unwrap()).unwrap();
    }
}

/// A lock record of this (live) test process, as `cairn` itself writes them.
fn live_lock(kind: LockKind, command: &str) -> LockRecord {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let pid_start = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().nth(19).unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    LockRecord {
        kind,
        command: command.to_string(),
        host: cairn::fs::hostname(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().to_string(),
        pid: std::process::id(),
        pid_start,
        created_ns: now,
        heartbeat_ns: now,
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// 2200-01-01T00:00:00Z in nanoseconds.
const YEAR_2200_NS: i64 = 7_258_118_400 * 1_000_000_000;

#[test]
fn a_lock_dated_in_the_future_blocks_nobody_and_repo_unlock_removes_it() {
    let repo = Repo::new();
    let mut lock = live_lock(LockKind::Exclusive, "prune");
    lock.host = "elsewhere".into();
    lock.boot_id = "another-boot".into();
    lock.pid = 4242;
    lock.created_ns = YEAR_2200_NS;
    lock.heartbeat_ns = YEAR_2200_NS;
    repo.put_lock('f', &lock);

    let data = repo.dir.path().join("data");
    write_file(&data.join("a"), &Rng::new(1).bytes(100_000));
    let t = Instant::now();
    let o = repo.run(&["snapshot", "create", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(LOCK_WAIT_SECS), "waited {:?} for an invalid lock", t.elapsed());
    let o = repo.run(&["repo", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let o = repo.run(&["repo", "info"]);
    assert!(text(&o).contains("invalid: dated 2200-01-01"), "{}", text(&o));
    let o = repo.run(&["repo", "unlock"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 locks removed"), "{}", text(&o));
    assert!(text(&o).contains("in the future"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(repo.path().join("locks")).unwrap().count(), 0);
}

#[test]
fn a_lock_of_another_host_names_unlock_all() {
    let repo = Repo::new();
    let mut lock = live_lock(LockKind::Exclusive, "prune");
    lock.host = "elsewhere".into();
    lock.boot_id = "another-boot".into();
    repo.put_lock('e', &lock);
    let o = repo.run(&["forget", "--keep-last", "1"]);
    assert_eq!(o.status.code(), Some(11), "{}", text(&o));
    assert!(text(&o).contains("`cairn repo unlock --all` removes the lock"), "{}", text(&o));
    // Plain `repo unlock` leaves a live lock of another host alone; `--all` removes it.
    assert!(text(&repo.run(&["repo", "unlock"])).contains("0 locks removed"));
    assert!(text(&repo.run(&["repo", "unlock", "--all"])).contains("1 locks removed"));
    assert_eq!(repo.run(&["forget", "--keep-last", "1"]).status.code(), Some(0));
}

#[test]
fn every_command_that_locks_gives_up_within_lock_wait() {
    let repo = Repo::new();
    let base = repo.dir.path();
    let data = base.join("data");
    write_file(&data.join("a"), &Rng::new(2).bytes(200_000));
    let wal = base.join("000000010000000000000001");
    write_file(&wal, &Rng::new(3).bytes(100_000));
    assert_eq!(repo.run(&["snapshot", "create", data.to_str().unwrap()]).status.code(), Some(0));
    let other = base.join("other");
    assert_eq!(repo.run_on(&other, &["init", "--encryption", "none"]).status.code(), Some(0));

    // A live process (this test) holds the exclusive lock, as a running prune would.
    repo.put_lock('a', &live_lock(LockKind::Exclusive, "prune"));
    let (d, w, t) = (data.to_str().unwrap(), wal.to_str().unwrap(), base.join("t"));
    let (target, from) = (t.to_str().unwrap(), repo.path());
    let locked = repo.path();
    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (&locked, vec!["snapshot", "create", d]),
        (&locked, vec!["wal", "push", w]),
        (&locked, vec!["forget", "--keep-last", "1"]),
        (&locked, vec!["forget", "--keep-last", "1", "--prune"]),
        (&locked, vec!["prune"]),
        (&locked, vec!["restore", "latest", "--target", target]),
        (&locked, vec!["repo", "check"]),
        (&locked, vec!["repo", "check", "--read-data"]),
        // The locked repository as the destination, then as the source of a copy.
        (&locked, vec!["repo", "copy", "--from", other.to_str().unwrap()]),
        (&other, vec!["repo", "copy", "--from", from.to_str().unwrap()]),
    ];
    for (on, args) in cases {
        let t = Instant::now();
        let o = repo.run_on(on, &args);
        let took = t.elapsed();
        assert_eq!(o.status.code(), Some(11), "{args:?}: {}", text(&o));
        assert!(took < Duration::from_secs(LOCK_WAIT_SECS) + SLACK, "{args:?} took {took:?}");
        assert!(took >= Duration::from_secs(LOCK_WAIT_SECS), "{args:?} gave up after {took:?}");
        let err = text(&o);
        assert!(err.contains("wait for pid") && err.lines().count() == 1, "{args:?}: {err}");
    }
}
