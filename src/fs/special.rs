//! Creating FIFOs, sockets and device nodes under a directory handle.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{FileType, Mode};

use super::DirFd;

/// The special file kinds cairn stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NodeKind {
    /// How messages and plans name it.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Fifo => "fifo",
            NodeKind::Socket => "socket",
            NodeKind::CharDevice => "char device",
            NodeKind::BlockDevice => "block device",
        }
    }
}

impl DirFd {
    /// Creates node `name` of `kind` in this directory with permission bits `mode` (the umask
    /// applies: set the mode afterwards with [`DirFd::set_meta_at`]). `rdev` matters for devices
    /// only, which need root (CAP_MKNOD); an existing entry of that name makes it fail with
    /// `AlreadyExists`.
    pub fn make_node(&self, name: &[u8], kind: NodeKind, mode: u32, rdev: u64) -> io::Result<()> {
        let file_type = match kind {
            NodeKind::Fifo => FileType::Fifo,
            NodeKind::Socket => FileType::Socket,
            NodeKind::CharDevice => FileType::CharacterDevice,
            NodeKind::BlockDevice => FileType::BlockDevice,
        };
        let rdev = if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) { rdev } else { 0 };
        Ok(rustix::fs::mknodat(
            self,
            OsStr::from_bytes(name),
            file_type,
            Mode::from_bits_truncate(mode & 0o7777),
            rdev,
        )?)
    }

    /// Creates a private node of `kind` under a fresh temporary name; returns the name.
    pub fn temp_node(&self, kind: NodeKind, rdev: u64) -> io::Result<Vec<u8>> {
        loop {
            let name = super::at::temp_name();
            match self.make_node(&name, kind, 0o600, rdev) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|()| name),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn fifo_and_socket_nodes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirFd::open_path(tmp.path()).unwrap();
        dir.make_node(b"p", NodeKind::Fifo, 0o640, 0).unwrap();
        dir.make_node(b"s", NodeKind::Socket, 0o600, 0).unwrap();
        assert!(std::fs::symlink_metadata(tmp.path().join("p")).unwrap().file_type().is_fifo());
        assert!(std::fs::symlink_metadata(tmp.path().join("s")).unwrap().file_type().is_socket());
        let again = dir.make_node(b"p", NodeKind::Fifo, 0o640, 0).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn device_nodes_as_root() {
        if !super::super::is_root() {
            println!("skipped: creating device nodes needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirFd::open_path(tmp.path()).unwrap();
        let null = rustix::fs::makedev(1, 3);
        dir.make_node(b"null", NodeKind::CharDevice, 0o666, null).unwrap();
        let m = std::fs::symlink_metadata(tmp.path().join("null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(std::os::unix::fs::MetadataExt::rdev(&m), null);
    }
}
