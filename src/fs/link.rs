//! Hard links between two names, each under its own directory descriptor.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fd::BorrowedFd;
use rustix::fs::AtFlags;

/// Makes `new_dir/new_name` another link to `old_dir/old_name`. Without `AT_SYMLINK_FOLLOW`,
/// `linkat` never follows a symlink at `old_name` (it links the symlink itself), and it fails
/// with `AlreadyExists` rather than replacing `new_name`.
pub fn hard_link(old_dir: BorrowedFd<'_>, old_name: &[u8], new_dir: BorrowedFd<'_>, new_name: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        old_dir,
        OsStr::from_bytes(old_name),
        new_dir,
        OsStr::from_bytes(new_name),
        AtFlags::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn links_share_an_inode_across_directories() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        std::fs::create_dir(tmp.path().join("b")).unwrap();
        std::fs::write(tmp.path().join("a/f"), b"x").unwrap();
        let a = super::super::open_dir_path(&tmp.path().join("a")).unwrap();
        let b = super::super::open_dir_path(&tmp.path().join("b")).unwrap();
        hard_link(a.as_fd(), b"f", b.as_fd(), b"g").unwrap();
        let (f, g) =
            (std::fs::metadata(tmp.path().join("a/f")).unwrap(), std::fs::metadata(tmp.path().join("b/g")).unwrap());
        assert_eq!((f.ino(), f.nlink()), (g.ino(), 2));
        assert_eq!(hard_link(a.as_fd(), b"f", b.as_fd(), b"g").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
    }
}
