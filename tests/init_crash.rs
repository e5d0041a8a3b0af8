//! `kill -9` during `init` (seeded trials through the real binary, at random moments up to
//! the time a whole init takes) leaves either no repository, and then `init` succeeds, or a
//! complete one that `repo check` passes.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

const TRIALS: u64 = 40;

fn seed() -> u64 {
    std::env::var("CAIRN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261203)
}

/// splitmix64, as in `common`.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn cmd(repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.envs(common::TEST_ENV).arg("--repo").arg(repo).arg("--lock-wait").arg("5").args(args);
    c
}

fn run(repo: &Path, args: &[&str]) -> Output {
    cmd(repo, args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `init`, killing it with SIGKILL after `delay`; returns whether it finished first.
fn init_and_kill(repo: &Path, delay: Duration) -> bool {
    let mut child = cmd(repo, &["init"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    child.wait().unwrap();
    false
}

#[test]
fn kill_9_during_init_leaves_nothing_or_a_complete_repository() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let o = run(&dir.path().join("probe"), &["init"]);
    let normal = t.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let seed = seed();
    let mut state = seed;
    let (mut complete, mut unfinished, mut nothing) = (0, 0, 0);
    for trial in 0..TRIALS {
        let repo = dir.path().join(format!("r{trial}"));
        let delay = normal.mul_f64((next(&mut state) % 1001) as f64 / 1000.0);
        let ctx = format!("seed {seed}, trial {trial}, killed after {delay:?} (normal init {normal:?})");
        init_and_kill(&repo, delay);
        if repo.join("config").exists() {
            complete += 1;
        } else {
            if repo.exists() {
                unfinished += 1;
            } else {
                nothing += 1;
            }
            // No repository: other commands say so (exit 10), and `init` completes it.
            let o = run(&repo, &["snapshot", "list"]);
            assert_eq!(o.status.code(), Some(10), "{ctx}: {}", text(&o));
            let o = run(&repo, &["init"]);
            assert_eq!(o.status.code(), Some(0), "{ctx}: init after the kill: {}", text(&o));
        }
        let o = run(&repo, &["repo", "check"]);
        assert_eq!(o.status.code(), Some(0), "{ctx}: repo check: {}", text(&o));
        assert!(!text(&o).contains("warning"), "{ctx}: {}", text(&o));
        std::fs::remove_dir_all(&repo).unwrap();
    }
    eprintln!("{TRIALS} kills: {complete} complete, {unfinished} unfinished and completed, {nothing} nothing there");
    assert!(unfinished + nothing > 0, "no kill landed before the config was written");
}

#[test]
fn an_unfinished_repository_is_named_and_init_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // What an init killed while writing its config leaves: the layout and a temporary file.
    for d in ["packs", "snapshots", "wal", "locks", "index"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    std::fs::write(repo.join(".tmp-Ab12Cd"), b"half a config").unwrap();
    let o = run(&repo, &["snapshot", "list"]);
    assert_eq!(o.status.code(), Some(10), "{}", text(&o));
    assert!(text(&o).contains("unfinished repository") && text(&o).contains("run `cairn init` again"), "{}", text(&o));
    let o = run(&repo, &["init"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&repo, &["repo", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A directory with anything else in it is not touched.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("packs")).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let o = run(&other, &["init"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(other.join("notes.txt").exists());
}
