//! A real directory tree 10 000 levels deep (issue 17 item 3) snapshots through the real
//! binary: the walk must neither overflow a thread's stack (it did at 800 levels) nor need a
//! path longer than `PATH_MAX` (a 10 000-level path is 20 000 bytes). The tree is built and
//! removed through directory descriptors, since paths that long cannot be used.

/// The password and cheap KDF of `tests/common` (this file does not use the module).
const TEST_ENV: [(&str, &str); 3] = [
    ("CAIRN_PASSWORD", "correct horse battery staple (test)"),
    ("CAIRN_KDF_MEMORY_KIB", "8"),
    ("CAIRN_KDF_PASSES", "1"),
];

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn::repo::{Access, IndexKind, Repository, SnapshotSpec};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags};

const LEVELS: usize = 10_000;
const DEADLINE: Duration = Duration::from_secs(300);

fn open_dir(dir: &OwnedFd, name: &str) -> OwnedFd {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// `root/d/d/…/d` (`levels` directories) with file `deepest` at the bottom; one descriptor
/// open at a time.
fn build_deep(root: &Path, levels: usize) {
    let mut dir = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..levels {
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = open_dir(&dir, "d");
    }
    let f = rustix::fs::openat(&dir, "deepest", OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o644)).unwrap();
    rustix::io::write(&f, b"at the bottom\n").unwrap();
}

/// Removes `root/d` and everything below it, one level at a time: `d/d` is renamed up to
/// `root/next`, the now-empty `d` removed, and `next` renamed to `d`.
fn remove_deep(root: &Path) {
    let top = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    while rustix::fs::statat(&top, "d", AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        let d = open_dir(&top, "d");
        let _ = rustix::fs::unlinkat(&d, "deepest", AtFlags::empty());
        let has_child = rustix::fs::statat(&d, "d", AtFlags::SYMLINK_NOFOLLOW).is_ok();
        if has_child {
            rustix::fs::renameat(&d, "d", &top, "next").unwrap();
        }
        drop(d);
        rustix::fs::unlinkat(&top, "d", AtFlags::REMOVEDIR).unwrap();
        if has_child {
            rustix::fs::renameat(&top, "next", &top, "d").unwrap();
        }
    }
}

/// Runs the binary, killing it past the deadline.
fn cairn(repo: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(TEST_ENV)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            panic!("cairn {args:?} took longer than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_10000_level_tree_snapshots_and_its_deepest_file_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build_deep(&src, LEVELS);
    let repo = tmp.path().join("repo");
    let init = cairn(&repo, &["init"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out = cairn(&repo, &["snapshot", "create", src.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "snapshot create: {stderr}");
    // The tree, followed down iteratively through the library (`cairn ls` would print
    // 10 000 paths of up to 20 000 bytes each).
    let r = Repository::open_local_with(
        &repo,
        Access::Read,
        IndexKind::Persistent,
        &cairn::repo::KeySource::password(TEST_ENV[0].1),
    )
    .unwrap();
    let (_, snap) = r.resolve_snapshot(&SnapshotSpec::Latest).unwrap();
    let mut tree = r.load_tree(&snap.root).unwrap();
    for comp in src.components().skip(1) {
        let id = tree.find(comp.as_os_str().as_bytes()).unwrap().subtree().unwrap();
        tree = r.load_tree(&id).unwrap();
    }
    for level in 0..LEVELS {
        let node = tree.find(b"d").unwrap_or_else(|| panic!("level {level} has no d"));
        tree = r.load_tree(&node.subtree().unwrap()).unwrap();
    }
    let deepest = tree.find(b"deepest").expect("the deepest file is in the snapshot");
    assert_eq!(deepest.size, 14);
    assert_eq!(snap.summary.dirs, LEVELS as u64 + 1);
    assert_eq!(snap.summary.files, 1);
    // Unchanged: the second snapshot takes everything from the first.
    let again = cairn(&repo, &["--json", "snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", String::from_utf8_lossy(&again.stderr));
    remove_deep(&src);
    drop(r);
}

#[test]
fn the_deep_walk_keeps_every_entry_of_a_wide_tree_below_the_parallel_depth() {
    // 40 levels (past the parallel part), with files and symlinks at every level and a
    // sibling directory at some: the iterative walk must give the same trees as the
    // recursive one would, entry for entry.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut dir = rustix::fs::open(&src, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for level in 0..40 {
        for name in ["a", "z"] {
            let f =
                rustix::fs::openat(&dir, name, OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o644)).unwrap();
            rustix::io::write(&f, format!("{name} at {level}\n").as_bytes()).unwrap();
        }
        rustix::fs::symlinkat("a", &dir, "l").unwrap();
        if level % 7 == 0 {
            rustix::fs::mkdirat(&dir, "side", Mode::from_raw_mode(0o700)).unwrap();
            let side = open_dir(&dir, "side");
            drop(rustix::fs::openat(&side, "s", OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o600)).unwrap());
        }
        rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = open_dir(&dir, "d");
    }
    drop(dir);
    let repo = tempfile::tempdir().unwrap();
    let rp = repo.path().join("r");
    Repository::init_local(&rp, &Default::default()).unwrap();
    let out = cairn(&rp, &["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let target = tempfile::tempdir().unwrap();
    let restored = cairn(&rp, &["restore", "latest", "--target", target.path().to_str().unwrap()]);
    assert_eq!(restored.status.code(), Some(0), "{}", String::from_utf8_lossy(&restored.stderr));
    let mut a = src.clone();
    let mut b = target.path().to_path_buf();
    for level in 0..40 {
        for name in ["a", "z"] {
            assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap(), "level {level}");
        }
        assert_eq!(std::fs::read_link(b.join("l")).unwrap(), Path::new("a"));
        assert_eq!(b.join("side/s").exists(), level % 7 == 0, "level {level}");
        a = a.join("d");
        b = b.join("d");
    }
}
