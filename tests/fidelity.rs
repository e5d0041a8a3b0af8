//! Capture of every file type and attribute a service data directory can hold (issue 15
//! item 5): hard links, sparse files, xattrs and ACLs, owner names, FIFOs, sockets and device
//! nodes are recorded in the snapshot's trees. (The restore side is asserted by the helpers in
//! `tests/common/fidelity.rs`.)

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cairn::ops::select::find_node;
use cairn::repo::{Access, IndexKind};
use cairn::snapshot::{Node, NodeContent};
use common::TestRepo;

/// The snapshot's entry for absolute path `path`.
fn node(repo: &TestRepo, path: &Path) -> Node {
    let r = repo.open(Access::Read);
    let (_, snap) = r.resolve_snapshot(&cairn::repo::SnapshotSpec::Latest).unwrap();
    find_node(&r, &snap, path.as_os_str().as_bytes())
        .unwrap()
        .unwrap_or_else(|| panic!("{} not in the snapshot", path.display()))
}

#[test]
fn hard_links_share_one_link_group() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("a")).unwrap();
    std::fs::write(src.path().join("a/f"), b"linked content").unwrap();
    std::fs::hard_link(src.path().join("a/f"), src.path().join("g")).unwrap();
    std::fs::write(src.path().join("single"), b"one link").unwrap();
    let repo = TestRepo::new(IndexKind::Memory);
    repo.snapshot(&[src.path()]);
    let (f, g) = (node(&repo, &src.path().join("a/f")), node(&repo, &src.path().join("g")));
    assert!(f.link_key().is_some());
    assert_eq!(f.link_key(), g.link_key());
    assert_eq!(f.hardlink.unwrap().links, 2);
    assert_eq!(node(&repo, &src.path().join("single")).hardlink, None);
    // Unchanged, the second snapshot keeps the group.
    repo.snapshot(&[src.path()]);
    assert_eq!(node(&repo, &src.path().join("g")).link_key(), f.link_key());
}

#[test]
fn a_sparse_100_mib_file_with_4_kib_of_data_is_stored_cheaply_with_its_holes() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("sparse");
    if !common::fidelity::make_sparse(&path) {
        println!("skipped: the filesystem of {} does not keep holes", src.path().display());
        return;
    }
    let repo = TestRepo::new(IndexKind::Memory);
    let report = repo.snapshot(&[src.path()]);
    let s = &report.snapshot.summary;
    assert!(s.bytes_added < 1 << 20, "stored {} bytes for 4 KiB of data", s.bytes_added);
    assert!(s.bytes_read <= 256 << 10, "read {} bytes", s.bytes_read);
    assert_eq!(s.bytes, 100 << 20);
    let n = node(&repo, &path);
    assert_eq!(n.size, 100 << 20);
    let chunks = repo.open(Access::Read).file_chunks(&n).unwrap();
    let holes: u64 = chunks.iter().filter(|c| c.is_zero_run()).map(|c| u64::from(c.len)).sum();
    let total: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
    assert_eq!(total, 100 << 20, "refs cover the file");
    assert!(holes >= (100 << 20) - (192 << 10), "only {holes} bytes of holes");
    // The stored chunks sit around the data, at its offset (holes under 64 KiB are read).
    let mut offset = 0u64;
    for c in &chunks {
        let end = offset + u64::from(c.len);
        if !c.is_zero_run() {
            assert!(end > (50 << 20) - (128 << 10) && offset < (50 << 20) + (132 << 10), "data at {offset}..{end}");
        }
        offset = end;
    }
    // `check --read-data` treats zero runs as present.
    let audit = cairn::Repository::open_local_for_audit(&repo.path(), IndexKind::Memory, &repo.keys()).unwrap();
    let opts = cairn::ops::CheckOptions { read_data: cairn::ops::ReadData::All };
    let report = cairn::ops::check(&audit, &opts, &cairn::progress::NoProgress).unwrap();
    assert!(!report.damage_found(), "{:?}", report.findings);
}

#[test]
fn a_file_that_grows_costs_only_its_appended_bytes_and_dense_files_have_no_zero_runs() {
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("log");
    let mut rng = common::Rng::new(3);
    std::fs::write(&path, rng.bytes(4 << 20)).unwrap();
    let repo = TestRepo::new(IndexKind::Memory);
    repo.snapshot(&[src.path()]);
    assert!(repo.open(Access::Read).file_chunks(&node(&repo, &path)).unwrap().iter().all(|c| !c.is_zero_run()));
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, &rng.bytes(64 << 10)).unwrap();
    drop(f);
    let second = repo.snapshot(&[src.path()]);
    assert!(second.snapshot.summary.bytes_added < 512 << 10, "added {}", second.snapshot.summary.bytes_added);
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
fn xattrs_acls_and_capabilities_are_recorded() {
    let src = tempfile::tempdir().unwrap();
    let dir = cairn::fs::DirFd::open_path(src.path()).unwrap();
    if !cairn::fs::user_xattrs_supported(&dir) {
        println!("skipped: the filesystem of {} has no user xattrs", src.path().display());
        return;
    }
    std::fs::write(src.path().join("f"), b"data").unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    let f = dir.open_read(b"f").unwrap();
    cairn::fs::set_xattr_fd(&f, b"user.origin", b"fidelity").unwrap();
    let acl = cairn::fs::set_xattr_fd(&f, b"system.posix_acl_access", &acl_bytes()).is_ok();
    // cap_net_bind_service, permitted and effective (vfs_cap_data revision 2).
    let mut cap = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
    cap.extend_from_slice(
        &[(1u32 << 10).to_le_bytes(), 0u32.to_le_bytes(), 0u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
    );
    let capability = cairn::fs::set_xattr_fd(&f, b"security.capability", &cap).is_ok();
    let d = dir.open_dir(b"d").unwrap();
    let default_acl = cairn::fs::set_xattr_fd(&d, b"system.posix_acl_default", &acl_bytes()).is_ok();
    drop((f, d));
    let expected = dir.xattrs(b"f").unwrap();
    let repo = TestRepo::new(IndexKind::Memory);
    repo.snapshot(&[src.path()]);
    let n = node(&repo, &src.path().join("f"));
    let names: Vec<&[u8]> = n.xattrs.iter().map(|x| x.name.as_slice()).collect();
    assert!(names.contains(&b"user.origin".as_slice()), "{names:?}");
    if acl {
        assert!(names.contains(&b"system.posix_acl_access".as_slice()), "{names:?}");
    } else {
        println!("note: the filesystem refused a POSIX ACL; not checked");
    }
    if capability {
        assert!(names.contains(&b"security.capability".as_slice()), "{names:?}");
    } else {
        println!("note: setting a file capability was refused (needs CAP_SETFCAP); not checked");
    }
    let as_pairs: Vec<(Vec<u8>, Vec<u8>)> = n.xattrs.iter().map(|x| (x.name.clone(), x.value.clone())).collect();
    assert_eq!(as_pairs, expected, "values recorded byte for byte");
    if default_acl {
        let d = node(&repo, &src.path().join("d"));
        assert!(d.xattrs.iter().any(|x| x.name == b"system.posix_acl_default"));
    }
    // An unchanged file keeps its xattrs in the next snapshot without being read.
    let second = repo.snapshot(&[src.path()]);
    assert!(second.read_paths.is_empty(), "{:?}", second.read_paths);
    assert_eq!(node(&repo, &src.path().join("f")).xattrs, n.xattrs);
}

#[test]
fn owner_names_are_recorded_beside_the_ids() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"x").unwrap();
    let repo = TestRepo::new(IndexKind::Memory);
    repo.snapshot(&[src.path()]);
    let n = node(&repo, &src.path().join("f"));
    let names = cairn::fs::OwnerNames::load();
    assert_eq!(n.user, names.user(n.uid));
    assert_eq!(n.group, names.group(n.gid));
    if n.uid == 0 {
        assert_eq!(n.user, b"root");
    }
}

#[test]
fn fifos_sockets_and_devices_are_recorded() {
    let src = tempfile::tempdir().unwrap();
    let dir = cairn::fs::DirFd::open_path(src.path()).unwrap();
    dir.make_node(b"pipe", cairn::fs::NodeKind::Fifo, 0o640, 0).unwrap();
    dir.make_node(b"sock", cairn::fs::NodeKind::Socket, 0o600, 0).unwrap();
    let root = cairn::fs::is_root();
    let null = rustix::fs::makedev(1, 3);
    let loop0 = rustix::fs::makedev(7, 0);
    if root {
        dir.make_node(b"null", cairn::fs::NodeKind::CharDevice, 0o666, null).unwrap();
        dir.make_node(b"loop", cairn::fs::NodeKind::BlockDevice, 0o660, loop0).unwrap();
    } else {
        println!("note: not root, device nodes not checked");
    }
    let repo = TestRepo::new(IndexKind::Memory);
    let report = repo.snapshot(&[src.path()]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let pipe = node(&repo, &src.path().join("pipe"));
    assert!(matches!(pipe.content, NodeContent::Fifo));
    assert_eq!(pipe.mode, 0o640 & !current_umask());
    assert!(matches!(node(&repo, &src.path().join("sock")).content, NodeContent::Socket));
    if root {
        assert!(
            matches!(node(&repo, &src.path().join("null")).content, NodeContent::CharDevice { rdev } if rdev == null)
        );
        assert!(
            matches!(node(&repo, &src.path().join("loop")).content, NodeContent::BlockDevice { rdev } if rdev == loop0)
        );
        assert_eq!(report.special_files, 4);
    } else {
        assert_eq!(report.special_files, 2);
    }
}

fn current_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
    u32::from_str_radix(line.trim(), 8).unwrap()
}
