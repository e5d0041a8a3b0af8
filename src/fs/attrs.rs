//! Applying owner, mode and times to a restored entry through its descriptor, or by name under
//! its directory's descriptor with no symlink following, so metadata never lands on a
//! symlink's target.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};

/// The metadata [`set_attrs_fd`] and [`set_attrs_at`] apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Set as both access and modification time.
    pub mtime_ns: i64,
}

fn times(mtime_ns: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime_ns.div_euclid(1_000_000_000), tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _ };
    Timestamps { last_access: t, last_modification: t }
}

/// Sets owner (when `chown`), mode and times on an open file or directory. Owner first:
/// `chown` clears the setuid and setgid bits, which the mode then sets again.
pub fn set_attrs_fd(fd: BorrowedFd<'_>, a: &Attrs, chown: bool) -> io::Result<()> {
    if chown {
        rustix::fs::fchown(fd, Some(Uid::from_raw(a.uid)), Some(Gid::from_raw(a.gid)))?;
    }
    rustix::fs::fchmod(fd, Mode::from_bits_truncate(a.mode & 0o7777))?;
    Ok(rustix::fs::futimens(fd, &times(a.mtime_ns))?)
}

/// Sets owner (when `chown`), mode (not on symlinks: Linux has no symlink modes) and times on
/// entry `name` under `dir`, never following it: for symlinks and special files, which cannot
/// be opened for writing metadata.
pub fn set_attrs_at(dir: BorrowedFd<'_>, name: &[u8], a: &Attrs, chown: bool) -> io::Result<()> {
    let os = OsStr::from_bytes(name);
    if chown {
        rustix::fs::chownat(
            dir,
            os,
            Some(Uid::from_raw(a.uid)),
            Some(Gid::from_raw(a.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    // An O_PATH descriptor pins the entry itself; chmod through its /proc name reaches exactly
    // that inode (fchmodat has no working AT_SYMLINK_NOFOLLOW before Linux 6.6).
    let pinned = rustix::fs::openat(dir, os, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&pinned)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        let proc = format!("/proc/self/fd/{}", pinned.as_raw_fd());
        rustix::fs::chmod(proc.as_str(), Mode::from_bits_truncate(a.mode & 0o7777))?;
    }
    Ok(rustix::fs::utimensat(dir, os, &times(a.mtime_ns), AtFlags::SYMLINK_NOFOLLOW)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn fd_and_nofollow_variants() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        let inside = tmp.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("l")).unwrap();
        std::fs::write(inside.join("f"), b"y").unwrap();
        let dir = super::super::open_dir_path(&inside).unwrap();
        let a = Attrs { mode: 0o600, uid: 0, gid: 0, mtime_ns: 1_500_000_000_123_456_789 };
        let f = super::super::open_file_at(dir.as_fd(), b"f").unwrap();
        set_attrs_fd(f.as_fd(), &a, false).unwrap();
        let m = std::fs::metadata(inside.join("f")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.mtime(), m.mtime_nsec()), (0o600, 1_500_000_000, 123_456_789));
        set_attrs_at(dir.as_fd(), b"l", &Attrs { mode: 0o777, ..a }, false).unwrap();
        let link = std::fs::symlink_metadata(inside.join("l")).unwrap();
        assert_eq!(link.mtime(), 1_500_000_000);
        let out = std::fs::metadata(&outside).unwrap();
        assert_eq!(out.mode() & 0o7777, 0o644, "the symlink's target must keep its mode");
        assert_ne!(out.mtime(), 1_500_000_000, "the symlink's target must keep its times");
        super::super::make_node(dir.as_fd(), b"p", super::super::NodeKind::Fifo, 0o600, 0).unwrap();
        set_attrs_at(dir.as_fd(), b"p", &Attrs { mode: 0o640, ..a }, false).unwrap();
        assert_eq!(std::fs::symlink_metadata(inside.join("p")).unwrap().mode() & 0o7777, 0o640);
    }
}
