//! Extended attributes (POSIX ACLs and file capabilities included) read from and written to
//! entries without following symlinks.
//!
//! Files and directories go through their open descriptor (`flistxattr`/`fsetxattr`). Other
//! entries (symlinks, FIFOs, sockets, devices) cannot be opened for that, so they are named as
//! `/proc/self/fd/<dir>/<name>` with the `l*` calls ([`DirFd::xattrs`], [`DirFd::set_xattr`]):
//! the directory part resolves through the descriptor itself, and the last component is never
//! followed.

use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fd::{AsFd, AsRawFd};
use rustix::io::Errno;

use super::DirFd;

/// Name/value pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Largest value Linux allows (`XATTR_SIZE_MAX`); also bounds the name list read.
const XATTR_MAX_BYTES: usize = 64 << 10;

/// Whether `e` says the filesystem or entry has no xattr support (not a failure to report).
pub fn unsupported(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::OPNOTSUPP || e == Errno::NOSYS
}

/// Reads a buffer the kernel may resize between the size `query` and the `read` (ERANGE):
/// retries with the new size a few times.
fn read_sized(
    mut query: impl FnMut() -> Result<usize, Errno>,
    mut call: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
) -> io::Result<Vec<u8>> {
    for _ in 0..4 {
        let size = query()?.min(XATTR_MAX_BYTES);
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("extended attributes kept changing while read"))
}

fn collect(names: Vec<u8>, mut get: impl FnMut(&[u8]) -> io::Result<Option<Vec<u8>>>) -> io::Result<Xattrs> {
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        // A name removed between the list and the read is just gone.
        if let Some(value) = get(name)? {
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

fn gone_is_none(r: io::Result<Vec<u8>>) -> io::Result<Option<Vec<u8>>> {
    match r {
        Err(e) if e.raw_os_error() == Some(Errno::NODATA.raw_os_error()) => Ok(None),
        other => other.map(Some),
    }
}

/// The xattrs of an open file or directory; empty where the filesystem has none.
pub fn list_fd(fd: impl AsFd) -> io::Result<Xattrs> {
    let fd = fd.as_fd();
    let names = match read_sized(|| rustix::fs::flistxattr_query(fd), |buf| rustix::fs::flistxattr(fd, buf)) {
        Err(e) if e.raw_os_error().is_some_and(|c| unsupported(Errno::from_raw_os_error(c))) => return Ok(Vec::new()),
        other => other?,
    };
    collect(names, |name| {
        let name = std::ffi::OsStr::from_bytes(name);
        gone_is_none(read_sized(|| rustix::fs::fgetxattr_query(fd, name), |buf| rustix::fs::fgetxattr(fd, name, buf)))
    })
}

fn proc_path(dir: &DirFd, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

impl DirFd {
    /// The xattrs of entry `name`, not following it if it is a symlink.
    pub fn xattrs(&self, name: &[u8]) -> io::Result<Xattrs> {
        let path = proc_path(self, name);
        let path = std::ffi::OsStr::from_bytes(&path);
        let names = match read_sized(|| rustix::fs::llistxattr_query(path), |buf| rustix::fs::llistxattr(path, buf)) {
            Err(e) if e.raw_os_error().is_some_and(|c| unsupported(Errno::from_raw_os_error(c))) => {
                return Ok(Vec::new())
            }
            other => other?,
        };
        collect(names, |n| {
            let n = std::ffi::OsStr::from_bytes(n);
            gone_is_none(read_sized(|| rustix::fs::lgetxattr_query(path, n), |buf| rustix::fs::lgetxattr(path, n, buf)))
        })
    }

    /// Sets one xattr on entry `name` without following it (for symlinks and special files;
    /// Linux allows only `trusted.` and `security.` names on symlinks).
    pub fn set_xattr(&self, name: &[u8], xname: &[u8], value: &[u8]) -> io::Result<()> {
        let path = proc_path(self, name);
        let (path, xname) = (std::ffi::OsStr::from_bytes(&path), std::ffi::OsStr::from_bytes(xname));
        Ok(rustix::fs::lsetxattr(path, xname, value, rustix::fs::XattrFlags::empty())?)
    }
}

/// Sets one xattr on an open file or directory (replacing any value it had).
pub fn set_fd(fd: impl AsFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::fsetxattr(fd, std::ffi::OsStr::from_bytes(name), value, rustix::fs::XattrFlags::empty())?)
}

/// Whether the filesystem holding `dir` accepts `user.` xattrs (tests skip without them).
pub fn user_xattrs_supported(dir: impl AsFd) -> bool {
    let dir = dir.as_fd();
    match rustix::fs::fsetxattr(dir, "user.cairn-probe", b"1", rustix::fs::XattrFlags::empty()) {
        Ok(()) => {
            let _ = rustix::fs::fremovexattr(dir, "user.cairn-probe");
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_list_through_descriptors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirFd::open_path(tmp.path()).unwrap();
        if !user_xattrs_supported(&dir) {
            println!("skipped: the filesystem of {} has no user xattrs", tmp.path().display());
            return;
        }
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        let file = dir.open_read(b"f").unwrap();
        set_fd(&file, b"user.b", b"2").unwrap();
        set_fd(&file, b"user.a", &[0, 1, 2]).unwrap();
        let want = vec![(b"user.a".to_vec(), vec![0, 1, 2]), (b"user.b".to_vec(), b"2".to_vec())];
        assert_eq!(list_fd(&file).unwrap(), want);
        assert_eq!(dir.xattrs(b"f").unwrap(), want);
        dir.make_node(b"p", super::super::NodeKind::Fifo, 0o600, 0).unwrap();
        // user.* is refused on FIFOs by Linux; the call must reach the FIFO, not fail to find it.
        let err = dir.set_xattr(b"p", b"user.c", b"3").unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(dir.xattrs(b"p").unwrap(), Vec::new());
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirFd::open_path(tmp.path()).unwrap();
        if !user_xattrs_supported(&dir) {
            println!("skipped: the filesystem of {} has no user xattrs", tmp.path().display());
            return;
        }
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", tmp.path().join("l")).unwrap();
        assert!(dir.set_xattr(b"l", b"user.x", b"1").is_err());
        let file = dir.open_read(b"f").unwrap();
        assert!(list_fd(&file).unwrap().is_empty());
    }
}
