//! Crash safety: `kill -9` of `snapshot create`, `wal push` and `prune` at random moments
//! (50 seeded trials each; the seed is printed on failure), and a disk that fills up. After
//! each: `repo check` finds no damage (leftover temporary files are allowed), every snapshot
//! committed before the kill restores byte for byte, and rerunning the command completes.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_tree, write_file, Rng};

const TRIALS: u64 = 50;

fn seed() -> u64 {
    std::env::var("CAIRN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261122)
}

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let r = Repo { dir: tempfile::tempdir().unwrap() };
        r.ok(&["init", "--pack-mib", "2"]);
        r
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.envs(common::TEST_ENV);
        c.arg("--repo").arg(self.path()).arg("--lock-wait").arg("5").args(args);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// Runs `args`, killing it with SIGKILL after `delay`; returns whether it finished first.
    fn run_and_kill(&self, args: &[&str], delay: Duration) -> bool {
        let mut child = self.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        false
    }
    fn assert_no_damage(&self, context: &str) {
        let o = self.run(&["repo", "check"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{context}: repo check after the kill:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    fn snapshots(&self) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["snapshot", "list", "--json"])).unwrap();
        v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    }
    fn assert_restores(&self, id: &str, expected: &Path, context: &str) {
        let target = self.dir.path().join(format!("restore-{}", &id[..12]));
        let _ = fs::remove_dir_all(&target);
        let o = self.run(&["restore", id, "--target", target.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{context}: restore {id}: {}", String::from_utf8_lossy(&o.stderr));
        assert_same_tree(expected, &target);
        fs::remove_dir_all(&target).unwrap();
    }
}

/// How long a command takes when not killed, to spread the kills over its whole run.
fn duration_of(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
}

#[test]
fn kill_9_during_snapshot_create() {
    let seed = seed();
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    let mut rng = Rng::new(seed);
    for i in 0..6 {
        write_file(&src.join(format!("seg-{i}")), &rng.bytes(1 << 20));
    }
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    let full = duration_of(|| {
        repo.ok(&["snapshot", "create", src.to_str().unwrap()]);
    });
    let first = repo.snapshots().pop().unwrap();
    copy_tree(&src, &repo.dir.path().join("v-first"));
    expected.insert(first, repo.dir.path().join("v-first"));
    for trial in 0..TRIALS {
        let ctx = format!("snapshot create trial {trial} (CAIRN_CRASH_SEED={seed})");
        // Change something: grow a segment, add a file, drop one.
        let n = rng.below(6);
        let mut f = fs::OpenOptions::new().append(true).create(true).open(src.join(format!("seg-{n}"))).unwrap();
        let grow = rng.below(1 << 20) as usize;
        std::io::Write::write_all(&mut f, &rng.bytes(grow)).unwrap();
        write_file(&src.join(format!("new-{trial}")), &rng.bytes(200_000));
        let _ = fs::remove_file(src.join(format!("new-{}", trial.saturating_sub(3))));
        let version = repo.dir.path().join(format!("v-{trial}"));
        copy_tree(&src, &version);
        let before = repo.snapshots();
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 12 / 10 + 1));
        repo.run_and_kill(&["snapshot", "create", src.to_str().unwrap()], delay);
        repo.assert_no_damage(&ctx);
        for id in repo.snapshots().into_iter().filter(|id| !before.contains(id)) {
            expected.insert(id, version.clone());
        }
        // Rerunning completes, and what it wrote restores.
        repo.ok(&["snapshot", "create", src.to_str().unwrap()]);
        let newest = repo.snapshots().into_iter().find(|id| !expected.contains_key(id)).unwrap();
        expected.insert(newest, version.clone());
        // Spot-check an older snapshot each trial.
        let pick = expected.keys().nth(rng.below(expected.len() as u64) as usize).unwrap().clone();
        repo.assert_restores(&pick, &expected[&pick], &ctx);
    }
    for (id, version) in &expected {
        repo.assert_restores(id, version, &format!("final pass (CAIRN_CRASH_SEED={seed})"));
    }
}

#[test]
fn kill_9_during_wal_push() {
    let seed = seed() + 1;
    let repo = Repo::new();
    let mut rng = Rng::new(seed);
    let wal = repo.dir.path().join("pg_wal");
    let sample = wal.join("sample");
    write_file(&sample, &rng.bytes(4 << 20));
    let full = duration_of(|| {
        repo.ok(&["wal", "push", sample.to_str().unwrap()]);
    });
    let mut pushed = Vec::new();
    for trial in 0..TRIALS {
        let ctx = format!("wal push trial {trial} (CAIRN_CRASH_SEED={seed})");
        let name = format!("0000000100000000000000{trial:02X}");
        let path = wal.join(&name);
        write_file(&path, &rng.bytes(4 << 20));
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 12 / 10 + 1));
        repo.run_and_kill(&["wal", "push", path.to_str().unwrap()], delay);
        repo.assert_no_damage(&ctx);
        // PostgreSQL retries: the rerun succeeds whether or not the killed push got through.
        repo.ok(&["wal", "push", path.to_str().unwrap()]);
        pushed.push((name, path));
        let (name, path) = &pushed[rng.below(pushed.len() as u64) as usize];
        let dest = repo.dir.path().join("fetched");
        repo.ok(&["wal", "fetch", name, dest.to_str().unwrap()]);
        assert_eq!(fs::read(&dest).unwrap(), fs::read(path).unwrap(), "{ctx}: {name}");
    }
}

#[test]
fn kill_9_during_prune() {
    let seed = seed() + 2;
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    let mut rng = Rng::new(seed);
    let mut kept: Vec<(String, PathBuf)> = Vec::new();
    let step = |rng: &mut Rng, i: u64| {
        // Replace one segment and snapshot: older snapshots' data becomes garbage once forgotten.
        write_file(&src.join(format!("seg-{}", i % 3)), &rng.bytes(1 << 20));
        write_file(&src.join("small"), &rng.bytes(10_000));
        repo.ok(&["snapshot", "create", src.to_str().unwrap()]);
        let id = repo.snapshots().pop().unwrap();
        let version = repo.dir.path().join(format!("v-{i}"));
        copy_tree(&src, &version);
        (id, version)
    };
    for i in 0..3 {
        kept.push(step(&mut rng, i));
    }
    let full = duration_of(|| {
        repo.ok(&["prune", "--max-unused", "0"]);
    });
    for trial in 0..TRIALS {
        let ctx = format!("prune trial {trial} (CAIRN_CRASH_SEED={seed})");
        kept.push(step(&mut rng, trial + 3));
        repo.ok(&["forget", "--keep-last", "3"]);
        let alive = repo.snapshots();
        kept.retain(|(id, _)| alive.contains(id));
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 15 / 10 + 1));
        repo.run_and_kill(&["prune", "--max-unused", "0"], delay);
        repo.assert_no_damage(&ctx);
        for (id, version) in &kept {
            repo.assert_restores(id, version, &ctx);
        }
        repo.ok(&["prune", "--max-unused", "0"]);
    }
    let o = repo.run(&["repo", "check", "--read-data"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

/// A tmpfs the test mounts (needs root) and unmounts.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: &Path, size: &str) -> Option<Self> {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn a_full_disk_fails_clearly_and_leaves_the_repository_usable_as_root() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::new(&dir.path().join("small"), "40m") else {
        panic!("mounting a tmpfs is not permitted here, although running as root");
    };
    let repo_path = dir.path().join("small/repo");
    let run = |args: &[&str]| {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn")).envs(common::TEST_ENV).arg("--repo").arg(&repo_path).args(args),
        )
    };
    assert!(run(&["init", "--pack-mib", "4"]).status.success());
    let mut rng = Rng::new(77);
    let small = dir.path().join("small-src");
    write_file(&small.join("a"), &rng.bytes(1 << 20));
    assert!(run(&["snapshot", "create", small.to_str().unwrap()]).status.success());
    let big = dir.path().join("big-src");
    write_file(&big.join("b"), &rng.bytes(64 << 20));
    let o = run(&["snapshot", "create", big.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no space left on the device holding"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Checkable: no damage (the partial snapshot's packs are unreferenced garbage).
    let o = run(&["repo", "check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // Usable: what was committed restores; prune reclaims the garbage; new snapshots work.
    let target = dir.path().join("restored");
    assert!(run(&["restore", "latest", "--target", target.to_str().unwrap()]).status.success());
    assert_same_tree(&small, &target);
    let o = run(&["prune"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    write_file(&small.join("c"), &rng.bytes(1 << 20));
    let o = run(&["snapshot", "create", small.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
