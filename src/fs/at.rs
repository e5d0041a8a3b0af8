//! Entries named relative to an open directory: open, stat, read links and list names without
//! ever following a symlink in the last component and without building a path string. A walk
//! by descriptor works at any depth (a path of a 10 000-level tree exceeds `PATH_MAX`) and
//! cannot be redirected by a symlink swapped in mid-walk.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};

use super::meta::FileMeta;

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

/// Opens the directory at `path` (symlinks in it are followed: the caller named it).
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Opens directory `name` under `dir`; fails (ELOOP/ENOTDIR) if it is a symlink or no directory.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, os(name), flags, Mode::empty())?)
}

/// Opens regular file `name` under `dir` for reading. Never follows a symlink, never blocks on
/// a FIFO swapped in since it was listed, and fails if the entry is no regular file.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, os(name), flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::other("is no longer a regular file"));
    }
    // Reads from a regular file never block anyway; clear the flag for plain reads.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
    Ok(File::from(fd))
}

/// `lstat` of `name` under `dir`.
pub fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<FileMeta> {
    Ok(FileMeta::from_stat(&rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW)?))
}

/// `fstat` of an open descriptor.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<FileMeta> {
    Ok(FileMeta::from_stat(&rustix::fs::fstat(fd)?))
}

/// The target of symlink `name` under `dir`.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, os(name), Vec::new())?.into_bytes())
}

/// The names in directory `dir` (without `.` and `..`), sorted.
pub fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut entries = rustix::fs::Dir::read_from(dir.as_fd())?;
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("d", tmp.path().join("ld")).unwrap();
        std::os::unix::fs::symlink("f", tmp.path().join("lf")).unwrap();
        let dir = open_dir_path(tmp.path()).unwrap();
        assert!(open_dir_at(dir.as_fd(), b"ld").is_err());
        assert!(open_file_at(dir.as_fd(), b"lf").is_err());
        assert!(open_file_at(dir.as_fd(), b"d").is_err());
        assert_eq!(read_link_at(dir.as_fd(), b"lf").unwrap(), b"f");
        assert_eq!(stat_at(dir.as_fd(), b"lf").unwrap().kind, super::super::EntryKind::Symlink);
        assert_eq!(
            read_names(dir.as_fd()).unwrap(),
            vec![b"d".to_vec(), b"f".to_vec(), b"ld".to_vec(), b"lf".to_vec()]
        );
    }

    #[test]
    fn a_fifo_is_not_opened_as_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open_dir_path(tmp.path()).unwrap();
        super::super::make_node(dir.as_fd(), b"p", super::super::NodeKind::Fifo, 0o600, 0).unwrap();
        assert!(open_file_at(dir.as_fd(), b"p").is_err());
    }
}
