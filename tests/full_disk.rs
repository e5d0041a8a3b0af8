//! A repository on a disk filled to the last byte can always be pruned: `forget --prune`
//! succeeds and frees space, and nothing of RocksDB's internal log reaches the user.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_same_tree, write_file, Rng};

/// A tmpfs the test mounts (needs root) and unmounts.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: &Path, size: &str) -> Result<Self, String> {
        fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if o.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(format!("mount failed: {}", String::from_utf8_lossy(&o.stderr).trim()))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let o = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Writes `path` until the filesystem has not one byte left.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    let mut block = vec![0xa5u8; 1 << 20];
    while !block.is_empty() {
        match f.write(&block) {
            Ok(0) | Err(_) => {
                let half = block.len() / 2;
                block.truncate(half);
            }
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn prune_on_a_full_disk_reclaims_space_as_root() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let _fs = match Tmpfs::new(&small, "48m") {
        Ok(fs) => fs,
        Err(why) => panic!("cannot mount a tmpfs, although running as root: {why}"),
    };
    let repo = small.join("repo");
    let run = |args: &[&str]| {
        common::cli::finish(
            Command::new(env!("CARGO_BIN_EXE_cairn"))
                .envs(common::TEST_ENV)
                .arg("--repo")
                .arg(&repo)
                .arg("--lock-wait")
                .arg("5")
                .args(args),
        )
    };
    let o = run(&["init", "--pack-mib", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Eight snapshots, each of 3 MiB of its own and 1 MiB all share, in files that alternate
    // so that packs mix both: the first snapshot's packs stay partly used (the shared part)
    // once it is forgotten, so prune both deletes and repacks.
    let mut rng = Rng::new(7);
    let shared: Vec<Vec<u8>> = (0..8).map(|_| rng.bytes(128 << 10)).collect();
    let src = dir.path().join("src");
    for i in 0..8 {
        let _ = fs::remove_dir_all(&src);
        for (k, part) in shared.iter().enumerate() {
            write_file(&src.join(format!("f{k}-shared")), part);
            write_file(&src.join(format!("f{k}-own")), &rng.bytes(384 << 10));
        }
        let o = run(&["snapshot", "create", src.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "snapshot {i}: {}", text(&o));
    }
    let o = run(&["forget", "--keep-last", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    fill(&small.join("filler"));
    assert_eq!(free_bytes(&small), 0, "the disk is full");
    let o = run(&["forget", "--keep-last", "1", "--prune"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "forget --prune on a full disk: {out}");
    assert!(!out.contains("VersionEdit"), "RocksDB internals reached the user: {out}");
    let freed = free_bytes(&small);
    eprintln!("{out}free after the prune: {freed} bytes");
    assert!(freed > 16 << 20, "only {freed} bytes free after the prune: {out}");
    assert!(!out.contains("repack 0 packs") && !out.contains("warning"), "the repack did not run whole: {out}");

    fs::remove_file(small.join("filler")).unwrap();
    let o = run(&["repo", "check", "--read-data"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let target = dir.path().join("restored");
    let o = run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_same_tree(&src, &target);
}
