//! Round trips through `cairn restore` of every file type and attribute format 2 records
//! (issue 15 item 5): hard links come back as links, sparse files with their holes, xattrs,
//! ACLs and capabilities byte for byte, FIFOs, sockets and (as root) device nodes; and
//! `--dry-run`, `--verify-only` and `--overwrite if-changed` treat them as what they are.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use cairn::fs::{DirFd, NodeKind};
use cairn::repo::IndexKind;
use common::cli::{cairn, Ran};
use common::fidelity::{assert_hard_linked, assert_same_special, assert_same_xattrs, assert_sparse_like};
use common::TestRepo;

const LIMIT: Duration = Duration::from_secs(120);

/// `cairn restore latest --target TARGET EXTRA…`, asserted to exit 0.
fn restore(repo: &TestRepo, target: &Path, extra: &[&str]) -> Ran {
    let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    let ran = cairn(&repo.path(), &args, LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    ran
}

/// The same with `--json`, parsed.
fn restore_json(repo: &TestRepo, target: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "restore", "latest", "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    let ran = cairn(&repo.path(), &args, LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    serde_json::from_str(&ran.stdout()).unwrap()
}

/// The actions a dry run plans for `name` (the last path component).
fn planned(plan: &serde_json::Value, name: &str) -> Vec<String> {
    let rows = plan["plan"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .filter(|p| p["path"].as_str().is_some_and(|s| s.ends_with(&format!("/{name}"))))
        .map(|p| format!("{} {}", p["action"].as_str().unwrap(), p["kind"].as_str().unwrap()))
        .collect()
}

#[test]
fn hard_links_come_back_as_links_and_a_partial_selection_as_a_copy() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("a")).unwrap();
    std::fs::create_dir_all(src.path().join("b")).unwrap();
    std::fs::write(src.path().join("a/f"), b"linked content").unwrap();
    std::fs::hard_link(src.path().join("a/f"), src.path().join("g")).unwrap();
    std::fs::hard_link(src.path().join("a/f"), src.path().join("b/h")).unwrap();
    std::fs::write(src.path().join("single"), b"one link").unwrap();
    let repo = TestRepo::new(IndexKind::Persistent);
    repo.snapshot(&[src.path()]);
    let out = tempfile::tempdir().unwrap();
    let t = out.path().join("t");
    let report = restore_json(&repo, &t, &[]);
    assert_hard_linked(&t.join("a/f"), &t.join("g"));
    assert_hard_linked(&t.join("a/f"), &t.join("b/h"));
    assert_eq!(report["hardlinks"], 2, "{report}");
    assert_eq!(std::fs::metadata(t.join("g")).unwrap().nlink(), 3);
    assert_eq!(std::fs::metadata(t.join("single")).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(t.join("b/h")).unwrap(), b"linked content");
    // Rerun: the links are recognised as they are.
    let again = restore_json(&repo, &t, &["--overwrite", "if-changed", "--dry-run"]);
    assert_eq!(planned(&again, "g"), ["unchanged hardlink"], "{again}");
    let again = restore_json(&repo, &t, &["--overwrite", "if-changed"]);
    assert_eq!((again["hardlinks"].as_u64(), again["replaced"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(std::fs::metadata(t.join("g")).unwrap().nlink(), 3);
    // A member replaced by another file is linked again.
    std::fs::remove_file(t.join("b/h")).unwrap();
    std::fs::write(t.join("b/h"), b"other").unwrap();
    restore(&repo, &t, &["--overwrite", "always"]);
    assert_hard_linked(&t.join("a/f"), &t.join("b/h"));
    // Selecting one member writes it as a file of its own.
    let part = out.path().join("part");
    restore(&repo, &part, &["--include", "g"]);
    assert_eq!(std::fs::metadata(part.join("g")).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(part.join("g")).unwrap(), b"linked content");
    assert!(!part.join("a/f").exists());
    let verified = cairn(&repo.path(), &["--json", "restore", "latest", "--verify-only"], LIMIT);
    assert_eq!(verified.code, 0, "{}", verified.show());
}

#[test]
fn a_sparse_file_comes_back_sparse_and_zero_runs_are_never_fetched() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("sparse");
    if !common::fidelity::make_sparse(&path) {
        println!("skipped: the filesystem of {} does not keep holes", src.path().display());
        return;
    }
    let repo = TestRepo::new(IndexKind::Persistent);
    repo.snapshot(&[src.path()]);
    let out = tempfile::tempdir().unwrap();
    let t = out.path().join("t");
    let report = restore_json(&repo, &t, &[]);
    // One chunk of slack: the data chunk around the 4 KiB (holes under 64 KiB are data).
    let one_chunk = cairn::chunker::MAX_CHUNK_BYTES as u64;
    assert_sparse_like(&path, &t.join("sparse"), one_chunk);
    assert!(report["bytes_fetched"].as_u64().unwrap() < 1 << 20, "{report}");
    // Delta restore over it (every chunk changed nothing) keeps it sparse and fetches nothing.
    let again = restore_json(&repo, &t, &["--overwrite", "always"]);
    assert_eq!(again["bytes_fetched"], 0, "{again}");
    assert_sparse_like(&path, &t.join("sparse"), one_chunk);
    // Over a dense file of the same size, the zero runs become holes again.
    std::fs::write(t.join("sparse"), vec![1u8; 100 << 20]).unwrap();
    restore(&repo, &t, &["--overwrite", "always"]);
    assert_sparse_like(&path, &t.join("sparse"), one_chunk);
    let verified = cairn(&repo.path(), &["--json", "restore", "latest", "--verify-only"], LIMIT);
    assert_eq!(verified.code, 0, "{}", verified.show());
    let v: serde_json::Value = serde_json::from_str(&verified.stdout()).unwrap();
    assert!(v["bytes_fetched"].as_u64().unwrap() < 1 << 20, "{v}");
    assert_eq!(v["verified"], 1, "{v}");
}

/// The kernel's binary form of `u::rw,u:1000:r,g::r,m::r,o::r` (`posix_acl_xattr` version 2).
fn acl_bytes() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(0x01u16, 6u16, u32::MAX), (0x02, 4, 1000), (0x04, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 4, u32::MAX)]
    {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn xattrs_acls_and_capabilities_come_back_byte_for_byte() {
    let src = tempfile::tempdir().unwrap();
    let dir = DirFd::open_path(src.path()).unwrap();
    if !cairn::fs::user_xattrs_supported(&dir) {
        println!("skipped: the filesystem of {} has no user xattrs", src.path().display());
        return;
    }
    std::fs::write(src.path().join("f"), b"data").unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    let f = dir.open_read(b"f").unwrap();
    cairn::fs::set_xattr_fd(&f, b"user.origin", b"fidelity\0binary").unwrap();
    if cairn::fs::set_xattr_fd(&f, b"system.posix_acl_access", &acl_bytes()).is_err() {
        println!("note: the filesystem refused a POSIX ACL; only user xattrs checked");
    }
    // cap_net_bind_service, permitted and effective (vfs_cap_data revision 2).
    let mut cap = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
    cap.extend_from_slice(&[(1u32 << 10), 0, 0, 0].map(u32::to_le_bytes).concat());
    if cairn::fs::set_xattr_fd(&f, b"security.capability", &cap).is_err() {
        println!("note: setting a file capability was refused (needs CAP_SETFCAP); not checked");
    }
    let d = dir.open_dir(b"d").unwrap();
    cairn::fs::set_xattr_fd(&d, b"user.dir", b"1").unwrap();
    let _ = cairn::fs::set_xattr_fd(&d, b"system.posix_acl_default", &acl_bytes());
    drop((f, d));
    assert!(!dir.xattrs(b"f").unwrap().is_empty());
    let repo = TestRepo::new(IndexKind::Persistent);
    repo.snapshot(&[src.path()]);
    let out = tempfile::tempdir().unwrap();
    let t = out.path().join("t");
    let report = restore_json(&repo, &t, &[]);
    assert_same_xattrs(&src.path().join("f"), &t.join("f"));
    assert_same_xattrs(&src.path().join("d"), &t.join("d"));
    assert_eq!(report["xattrs_skipped"], 0, "{report}");
    // A replaced file gets them again (set before the rename).
    restore(&repo, &t, &["--overwrite", "always"]);
    assert_same_xattrs(&src.path().join("f"), &t.join("f"));
}

#[test]
fn fifos_sockets_and_devices_come_back_and_identical_ones_are_unchanged() {
    let src = tempfile::tempdir().unwrap();
    let dir = DirFd::open_path(src.path()).unwrap();
    dir.make_node(b"pipe", NodeKind::Fifo, 0o640, 0).unwrap();
    dir.make_node(b"sock", NodeKind::Socket, 0o600, 0).unwrap();
    let root = cairn::fs::is_root();
    if root {
        dir.make_node(b"null", NodeKind::CharDevice, 0o666, rustix::fs::makedev(1, 3)).unwrap();
        dir.make_node(b"loop", NodeKind::BlockDevice, 0o660, rustix::fs::makedev(7, 0)).unwrap();
    } else {
        println!("skipped part: not root, so device nodes are neither made nor restored here");
    }
    // Modes set explicitly (the umask applied at creation).
    std::fs::set_permissions(src.path().join("pipe"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let repo = TestRepo::new(IndexKind::Persistent);
    repo.snapshot(&[src.path()]);
    let out = tempfile::tempdir().unwrap();
    let t = out.path().join("t");
    let report = restore_json(&repo, &t, &[]);
    let names: &[&str] = if root { &["pipe", "sock", "null", "loop"] } else { &["pipe", "sock"] };
    for name in names {
        assert_same_special(&src.path().join(name), &t.join(name));
    }
    assert_eq!(report["specials"], names.len(), "{report}");
    let plan = restore_json(&repo, &t, &["--overwrite", "if-changed", "--dry-run"]);
    assert_eq!(planned(&plan, "pipe"), ["unchanged fifo"], "{plan}");
    assert_eq!(planned(&plan, "sock"), ["unchanged socket"], "{plan}");
    // A regular file where the snapshot has a FIFO is replaced by the FIFO.
    std::fs::remove_file(t.join("pipe")).unwrap();
    std::fs::write(t.join("pipe"), b"not a pipe").unwrap();
    let again = restore_json(&repo, &t, &["--overwrite", "if-changed"]);
    assert_eq!((again["specials"].as_u64(), again["replaced"].as_u64()), (Some(1), Some(1)), "{again}");
    assert_same_special(&src.path().join("pipe"), &t.join("pipe"));
    let verified = cairn(&repo.path(), &["restore", "latest", "--verify-only"], LIMIT);
    assert_eq!(verified.code, 0, "{}", verified.show());
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn owners_are_restored_by_name_where_this_system_knows_it_else_by_id_as_root() {
    common::require_root();
    use cairn::repo::WriteSession;
    use common::craft::{dir, file, store_tree, Crafted};
    let c = Crafted::new();
    let repo = c.open();
    let session = WriteSession::new(&repo);
    // Recorded on another host where `root` had id 4321; a name unknown here keeps its id.
    let mut by_name = file(&session, b"by-name", b"x", 1);
    (by_name.uid, by_name.gid, by_name.user, by_name.group) = (4321, 4321, b"root".to_vec(), b"root".to_vec());
    let mut by_id = file(&session, b"by-id", b"y", 1);
    (by_id.uid, by_id.gid) = (4242, 4343);
    (by_id.user, by_id.group) = (b"no-such-user-on-this-host".to_vec(), b"no-such-group-here".to_vec());
    let mut nameless = file(&session, b"nameless", b"z", 1);
    (nameless.uid, nameless.gid) = (4444, 4445);
    let data = store_tree(&session, vec![by_id, by_name, nameless]);
    let root = store_tree(&session, vec![dir(b"data", data)]);
    session.flush().unwrap();
    Crafted::save(&repo, root, 1_700_000_000);
    drop(repo);
    let t = c.scratch("t");
    let ran = cairn(&c.path(), &["restore", "latest", "--target", t.to_str().unwrap(), "--overwrite", "always"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    let owner = |name: &str| {
        let m = std::fs::symlink_metadata(t.join(name)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("by-name"), (0, 0), "the name wins where it is known");
    assert_eq!(owner("by-id"), (4242, 4343));
    assert_eq!(owner("nameless"), (4444, 4445));
    let t2 = c.scratch("t2");
    let ran = cairn(&c.path(), &["restore", "latest", "--target", t2.to_str().unwrap(), "--no-owner"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
    assert_eq!(std::fs::symlink_metadata(t2.join("by-id")).unwrap().uid(), 0, "--no-owner keeps the restorer's");
}

/// Runs a short system command with a deadline; whether it succeeded.
fn run_briefly(program: &str, args: &[&str]) -> bool {
    let Ok(mut child) = std::process::Command::new(program).args(args).spawn() else { return false };
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A ramfs (no xattr support at all) mounted for the test's life.
struct Ramfs(tempfile::TempDir);

impl Ramfs {
    fn mount() -> Option<Ramfs> {
        let dir = tempfile::tempdir().unwrap();
        run_briefly("mount", &["-t", "ramfs", "ramfs", dir.path().to_str().unwrap()]).then_some(Ramfs(dir))
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        run_briefly("umount", &[self.0.path().to_str().unwrap()]);
    }
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn a_target_without_xattr_support_gets_the_files_and_one_counted_warning_as_root() {
    common::require_root();
    let src = tempfile::tempdir().unwrap();
    let dir = DirFd::open_path(src.path()).unwrap();
    if !cairn::fs::user_xattrs_supported(&dir) {
        println!("skipped: the filesystem of {} has no user xattrs", src.path().display());
        return;
    }
    std::fs::write(src.path().join("f"), b"data").unwrap();
    cairn::fs::set_xattr_fd(dir.open_read(b"f").unwrap(), b"user.origin", b"x").unwrap();
    let repo = TestRepo::new(IndexKind::Persistent);
    repo.snapshot(&[src.path()]);
    let Some(ramfs) = Ramfs::mount() else {
        panic!("cannot mount a ramfs, although running as root");
    };
    let t = ramfs.0.path().join("t");
    let args = ["--json", "restore", "latest", "--target", t.to_str().unwrap()];
    let ran = cairn(&repo.path(), &args, LIMIT);
    assert_eq!(ran.code, 0, "a missing xattr support is no failure: {}", ran.show());
    let report: serde_json::Value = serde_json::from_str(&ran.stdout()).unwrap();
    assert_eq!(report["xattrs_skipped"], 1, "{report}");
    assert!(ran.stderr.contains("extended attributes of 1 entries not restored"), "{}", ran.show());
    assert_eq!(std::fs::read(t.join("f")).unwrap(), b"data");
}

/// `cairn ARGS…` run as user `nobody` (setpriv), with a deadline: exit code and stderr.
fn cairn_as_nobody(args: &[&str]) -> Option<(i32, String)> {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new("setpriv")
        .envs(common::TEST_ENV)
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", env!("CARGO_BIN_EXE_cairn")])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .ok()?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn {args:?} as nobody did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some((status.code().unwrap_or(-1), std::fs::read_to_string(err.path()).unwrap()))
}

#[test]
#[ignore = "needs root: scripts/test.sh runs it when it is root"]
fn without_root_device_nodes_are_left_out_with_one_counted_warning_as_root() {
    use std::os::unix::fs::PermissionsExt;
    common::require_root();
    let src = tempfile::tempdir().unwrap();
    let dir = DirFd::open_path(src.path()).unwrap();
    dir.make_node(b"null", NodeKind::CharDevice, 0o666, rustix::fs::makedev(1, 3)).unwrap();
    dir.make_node(b"pipe", NodeKind::Fifo, 0o644, 0).unwrap();
    let repo = TestRepo::new(IndexKind::Persistent);
    repo.snapshot(&[src.path()]);
    // Everything the unprivileged restore touches is open to it.
    let out = tempfile::tempdir().unwrap();
    let open = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    open(out.path());
    assert!(run_briefly("chmod", &["-R", "a+rwX", repo.path().parent().unwrap().to_str().unwrap()]));
    let t = out.path().join("t");
    let repo_path = repo.path();
    let args = ["--repo", repo_path.to_str().unwrap(), "restore", "latest", "--target", t.to_str().unwrap()];
    let Some((code, stderr)) = cairn_as_nobody(&args) else {
        println!("skipped: setpriv is not available to run as another user");
        return;
    };
    assert_eq!(code, 0, "a device left out is no failure: {stderr}");
    assert!(stderr.contains("1 device nodes not restored") && stderr.contains("null"), "{stderr}");
    assert!(!t.join("null").exists());
    assert_same_special(&src.path().join("pipe"), &t.join("pipe"));
}
