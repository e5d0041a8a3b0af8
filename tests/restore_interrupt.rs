//! Interrupted restores, through the real binary: kill -9 and SIGINT at seeded random moments.
//! Afterwards no file under its real name has wrong content (a file appears only when complete),
//! SIGINT ends with exit 130 and a message, and rerunning the restore with `--overwrite
//! if-changed` completes it with every file identical and no temporary file left.
//! `CAIRN_INTERRUPT_SEED` replays one seed; `CAIRN_INTERRUPT_TRIALS` changes the count.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_tree, write_file, Rng};

const DEADLINE: Duration = Duration::from_secs(60);

fn cairn(repo: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.envs(common::TEST_ENV).arg("--repo").arg(repo);
    c
}

fn run(repo: &Path, args: &[&str]) -> Output {
    cairn(repo).args(args).output().unwrap()
}

/// Waits for `child` with a deadline; kills it and fails with its stderr when it expires.
fn wait(mut child: Child, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what} did not finish in {DEADLINE:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Expected content of every file, by relative path.
fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn interrupted_restores_leave_only_complete_files_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    assert!(run(&repo, &["init"]).status.success());
    let mut rng = Rng::new(7);
    for i in 0..120 {
        let len = if i % 10 == 0 { 2 << 20 } else { rng.below(200_000) as usize };
        write_file(&src.join(format!("d{}/f{i}", i % 7)), &rng.bytes(len));
    }
    let o = run(&repo, &["snapshot", "create", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = contents(&src);

    // How long a whole restore takes here, so the kills land during one.
    let probe = dir.path().join("probe");
    let start = Instant::now();
    assert!(run(&repo, &["restore", "latest", "--target", probe.to_str().unwrap()]).status.success());
    let full_ms = (start.elapsed().as_millis() as u64).max(20);

    let trials: u64 = std::env::var("CAIRN_INTERRUPT_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let seeds: Vec<u64> = match std::env::var("CAIRN_INTERRUPT_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=trials).collect(),
    };
    let mut interrupted = 0;
    for seed in seeds {
        let mut rng = Rng::new(seed);
        let target = dir.path().join(format!("t{seed}"));
        let sigint = seed % 2 == 0;
        let child = cairn(&repo)
            .args(["restore", "latest", "--target", target.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(full_ms)));
        let signal = if sigint { rustix::process::Signal::INT } else { rustix::process::Signal::KILL };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, signal);
        let out = wait(child, "interrupted restore");
        let ctx = format!("seed {seed} ({})", if sigint { "SIGINT" } else { "kill -9" });
        match out.status.code() {
            Some(0) => {}
            Some(130) => {
                interrupted += 1;
                let msg = String::from_utf8_lossy(&out.stderr);
                assert!(msg.contains("interrupted"), "{ctx}: {msg}");
            }
            None => interrupted += 1, // killed
            other => panic!("{ctx}: exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
        // Whatever stands under a real name is complete and right.
        if target.exists() {
            for (rel, data) in contents(&target) {
                let name = rel.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with(".cairn-restore-") {
                    continue;
                }
                assert!(expected.get(&rel) == Some(&data), "{ctx}: {} has wrong content", rel.display());
            }
        }
        let rerun =
            run(&repo, &["restore", "latest", "--target", target.to_str().unwrap(), "--overwrite", "if-changed"]);
        assert_eq!(rerun.status.code(), Some(0), "{ctx}: rerun: {}", String::from_utf8_lossy(&rerun.stderr));
        assert_same_tree(&src, &target);
        fs::remove_dir_all(&target).unwrap();
    }
    eprintln!("{interrupted} of the trials stopped the restore before it finished");
}
