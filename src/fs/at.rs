//! Entries under a directory handle: every name is resolved relative to an open directory,
//! one component at a time, and no symlink is ever followed. This is how a restore stays inside
//! its target: a path string built and then opened would follow whatever symlinks the target
//! (or a hostile snapshot) put in the way. The snapshot walk reads through the same handles:
//! a walk by descriptor works at any depth (the path of a 10 000-level tree exceeds
//! `PATH_MAX`) and cannot be redirected by a symlink swapped in mid-walk.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};

use super::meta::FileMeta;
use super::special::NodeKind;

/// Prefix of the names a restore writes files under before renaming them into place. Entries
/// with this prefix in a restored directory are leftovers of an interrupted restore.
pub const TEMP_PREFIX: &str = ".cairn-restore-";

/// What occupies a name in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occupant {
    File {
        size: u64,
        mtime_ns: i64,
    },
    Dir,
    Symlink,
    /// FIFO, socket or device (`rdev` is 0 for FIFOs and sockets).
    Special {
        kind: NodeKind,
        rdev: u64,
    },
    /// A file type the kernel reports that cairn does not know.
    Other,
}

impl Occupant {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Occupant::File { .. } => "file",
            Occupant::Dir => "dir",
            Occupant::Symlink => "symlink",
            Occupant::Special { kind, .. } => kind.name(),
            Occupant::Other => "unknown",
        }
    }
}

/// An open directory.
#[derive(Debug)]
pub struct DirFd(OwnedFd);

impl AsFd for DirFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC).union(OFlags::NOFOLLOW).union(OFlags::NOCTTY);

impl DirFd {
    /// Opens the directory at `path`. Symlinks in `path` itself are followed: it is the
    /// directory the user named. Nothing below it is resolved through a symlink.
    pub fn open_path(path: &Path) -> io::Result<DirFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(DirFd(rustix::fs::open(path, flags, Mode::empty())?))
    }

    /// What `name` is, without following a symlink; `None` when nothing is there.
    pub fn occupant(&self, name: &[u8]) -> io::Result<Option<Occupant>> {
        match rustix::fs::statat(self, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(occupant_of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens subdirectory `name`; fails (ELOOP/ENOTDIR) when it is a symlink or not a directory.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<DirFd> {
        Ok(DirFd(rustix::fs::openat(self, OsStr::from_bytes(name), DIR_FLAGS, Mode::empty())?))
    }

    /// Creates subdirectory `name` (private until its metadata is applied) and opens it.
    pub fn make_dir(&self, name: &[u8]) -> io::Result<DirFd> {
        rustix::fs::mkdirat(self, OsStr::from_bytes(name), Mode::from_raw_mode(0o700))?;
        self.open_dir(name)
    }

    /// Creates a new, empty, private file under a fresh temporary name in this directory.
    pub fn create_temp(&self) -> io::Result<(Vec<u8>, File)> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let name = temp_name();
            match rustix::fs::openat(self, OsStr::from_bytes(&name), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok((name, File::from(fd))),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens regular file `name` for writing (no symlink followed, never blocks on a FIFO).
    pub fn open_write(&self, name: &[u8]) -> io::Result<File> {
        self.open_regular(name, OFlags::WRONLY)
    }

    /// Opens regular file `name` for reading and writing in place (`restore --in-place`).
    pub fn open_read_write(&self, name: &[u8]) -> io::Result<File> {
        self.open_regular(name, OFlags::RDWR)
    }

    /// Opens regular file `name` for reading; fails when it is anything but a regular file.
    pub fn open_read(&self, name: &[u8]) -> io::Result<File> {
        self.open_regular(name, OFlags::RDONLY)
    }

    fn open_regular(&self, name: &[u8], access: OFlags) -> io::Result<File> {
        let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = rustix::fs::openat(self, OsStr::from_bytes(name), flags, Mode::empty())?;
        if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(File::from(fd))
    }

    /// Renames `from` to `to` within this directory, replacing what `to` names unless it is a
    /// non-empty directory. A symlink at `to` is replaced, never followed.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::renameat(self, OsStr::from_bytes(from), self, OsStr::from_bytes(to))?)
    }

    /// Renames `from` to `to` within this directory; fails if `to` exists.
    pub fn rename_noreplace(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let (from, to) = (OsStr::from_bytes(from), OsStr::from_bytes(to));
        Ok(rustix::fs::renameat_with(self, from, self, to, rustix::fs::RenameFlags::NOREPLACE)?)
    }

    /// Swaps what `a` and `b` name, atomically (`renameat2(RENAME_EXCHANGE)`): at no instant
    /// does either name point at nothing or at a mix.
    pub fn exchange(&self, a: &[u8], b: &[u8]) -> io::Result<()> {
        let (a, b) = (OsStr::from_bytes(a), OsStr::from_bytes(b));
        Ok(rustix::fs::renameat_with(self, a, self, b, rustix::fs::RenameFlags::EXCHANGE)?)
    }

    /// Flushes this directory's entries (after renames that must survive a crash).
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(self)?)
    }

    /// Makes `to` in directory `to_dir` a second name of `from` in this one (the entry itself:
    /// without `AT_SYMLINK_FOLLOW` a symlink is linked, not its target). Fails with
    /// `AlreadyExists` rather than replacing `to`.
    pub fn link(&self, from: &[u8], to_dir: &DirFd, to: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::linkat(self, OsStr::from_bytes(from), to_dir, OsStr::from_bytes(to), AtFlags::empty())?)
    }

    /// Links `from` (in this directory) under a fresh temporary name in `to_dir`; returns the
    /// name. A restore renames it over the real name, so a hard link appears atomically.
    pub fn link_temp(&self, from: &[u8], to_dir: &DirFd) -> io::Result<Vec<u8>> {
        loop {
            let name = temp_name();
            match self.link(from, to_dir, &name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|()| name),
            }
        }
    }

    /// Creates a symlink to `target` under a fresh temporary name; returns the name.
    pub fn temp_symlink(&self, target: &[u8]) -> io::Result<Vec<u8>> {
        loop {
            let name = temp_name();
            match rustix::fs::symlinkat(OsStr::from_bytes(target), self, OsStr::from_bytes(&name)) {
                Ok(()) => return Ok(name),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The target of symlink `name`.
    pub fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        Ok(rustix::fs::readlinkat(self, OsStr::from_bytes(name), Vec::new())?.into_bytes())
    }

    /// `lstat` of `name`: never follows a symlink.
    pub fn stat(&self, name: &[u8]) -> io::Result<FileMeta> {
        Ok(FileMeta::from_stat(&rustix::fs::statat(self, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)?))
    }

    /// `fstat` of this directory.
    pub fn meta(&self) -> io::Result<FileMeta> {
        Ok(FileMeta::from_stat(&rustix::fs::fstat(self)?))
    }

    /// Owner and group of this directory.
    pub fn owner(&self) -> io::Result<(u32, u32)> {
        let st = rustix::fs::fstat(self)?;
        Ok((st.st_uid, st.st_gid))
    }

    /// Opens the directory at relative path `rel` below this one, one component at a time,
    /// creating missing ones (mode 0700) and following no symlink.
    pub fn open_beneath(&self, rel: &Path) -> io::Result<DirFd> {
        let mut dir = self.open_dir(b".")?;
        for comp in rel.components() {
            let std::path::Component::Normal(name) = comp else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "path leaves the directory"));
            };
            let name = name.as_bytes();
            dir = match dir.occupant(name)? {
                None => dir.make_dir(name)?,
                Some(_) => dir.open_dir(name)?,
            };
        }
        Ok(dir)
    }

    /// Writes `data` to `name` atomically: a temporary file, synced, renamed over whatever
    /// `name` was (a symlink there is replaced, not followed).
    pub fn write_file(&self, name: &[u8], data: &[u8], owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
        use std::io::Write;
        let (tmp, mut file) = self.create_temp()?;
        let written = (|| {
            file.write_all(data)?;
            if let Some((uid, gid)) = owner {
                rustix::fs::fchown(&file, Some(uid_of(uid)), Some(gid_of(gid)))?;
            }
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
            file.sync_all()?;
            self.rename(&tmp, name)
        })();
        if written.is_err() {
            let _ = self.unlink(&tmp);
        }
        written
    }

    /// Creates symlink `name` pointing at `target`.
    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::symlinkat(OsStr::from_bytes(target), self, OsStr::from_bytes(name))?)
    }

    /// Removes `name` whatever it is; a directory with everything below it (handle by handle,
    /// never through a symlink, without recursion).
    pub fn remove_all(&self, name: &[u8]) -> io::Result<()> {
        match self.occupant(name)? {
            None => Ok(()),
            Some(Occupant::Dir) => remove_tree(self, name),
            Some(_) => self.unlink(name),
        }
    }

    /// Removes a non-directory entry.
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(self, OsStr::from_bytes(name), AtFlags::empty())?)
    }

    /// The names in this directory (not `.` and `..`), sorted.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(self)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Applies owner, mode (`None` for symlinks: Linux has no symlink modes) and times to entry
    /// `name` itself, never following it: for symlinks and special files, which cannot be
    /// opened to set metadata through a descriptor. Owner first: `chown` clears setuid/setgid.
    pub fn set_meta_at(
        &self,
        name: &[u8],
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
        mtime_ns: i64,
    ) -> io::Result<()> {
        let path = OsStr::from_bytes(name);
        if let Some((uid, gid)) = owner {
            rustix::fs::chownat(self, path, Some(uid_of(uid)), Some(gid_of(gid)), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        if let Some(mode) = mode {
            // An O_PATH descriptor pins the entry itself; chmod through its /proc name reaches
            // exactly that inode (fchmodat has no working AT_SYMLINK_NOFOLLOW before Linux 6.6).
            let pinned =
                rustix::fs::openat(self, path, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
            if FileType::from_raw_mode(rustix::fs::fstat(&pinned)?.st_mode) != FileType::Symlink {
                let proc = format!("/proc/self/fd/{}", pinned.as_raw_fd());
                rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode & 0o7777))?;
            }
        }
        Ok(rustix::fs::utimensat(self, path, &timestamps(mtime_ns), AtFlags::SYMLINK_NOFOLLOW)?)
    }
}

/// Applies owner (when given), mode and modification time through an open descriptor. Owner
/// first: `chown` clears setuid and setgid bits.
pub fn set_fd_meta(fd: impl AsFd, owner: Option<(u32, u32)>, mode: u32, mtime_ns: i64) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    Ok(rustix::fs::futimens(&fd, &timestamps(mtime_ns))?)
}

/// Changes the owner of an open file or directory.
pub fn set_fd_owner(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))?)
}

/// Removes directory `name` under `parent` and everything below it, with an explicit stack of
/// open directories instead of recursion (depth is bounded only by the filesystem).
fn remove_tree(parent: &DirFd, name: &[u8]) -> io::Result<()> {
    let mut stack: Vec<(DirFd, Vec<u8>)> = vec![(parent.open_dir(name)?, name.to_vec())];
    while let Some((dir, _)) = stack.last() {
        let mut descended = None;
        for child in dir.names()? {
            match dir.occupant(&child)? {
                Some(Occupant::Dir) => {
                    descended = Some((dir.open_dir(&child)?, child));
                    break;
                }
                Some(_) => dir.unlink(&child)?,
                None => {}
            }
        }
        match descended {
            Some(next) => stack.push(next),
            None => {
                let (_, done) = stack.pop().expect("the loop runs only while the stack has an entry");
                let holder = stack.last().map_or(parent, |(d, _)| d);
                rustix::fs::unlinkat(holder, OsStr::from_bytes(&done), AtFlags::REMOVEDIR)?;
            }
        }
    }
    Ok(())
}

// `st_rdev`'s type differs between architectures: the cast is a no-op on x86_64 only.
#[allow(clippy::unnecessary_cast)]
fn occupant_of(st: &rustix::fs::Stat) -> Occupant {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Occupant::File {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec as i64),
        },
        FileType::Directory => Occupant::Dir,
        FileType::Symlink => Occupant::Symlink,
        FileType::Fifo => Occupant::Special { kind: NodeKind::Fifo, rdev: 0 },
        FileType::Socket => Occupant::Special { kind: NodeKind::Socket, rdev: 0 },
        FileType::CharacterDevice => Occupant::Special { kind: NodeKind::CharDevice, rdev: st.st_rdev as u64 },
        FileType::BlockDevice => Occupant::Special { kind: NodeKind::BlockDevice, rdev: st.st_rdev as u64 },
        FileType::Unknown => Occupant::Other,
    }
}

/// `.cairn-restore-<pid>-<counter>`: short (a long original name must not push it past
/// NAME_MAX) and unique per process; `O_EXCL` settles clashes with other processes.
pub(super) fn temp_name() -> Vec<u8> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{:x}-{n:x}", std::process::id()).into_bytes()
}

fn timestamps(mtime_ns: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime_ns.div_euclid(1_000_000_000), tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _ };
    Timestamps { last_access: t, last_modification: t }
}

fn uid_of(uid: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(uid)
}

fn gid_of(gid: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_replaced_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), target.path().join("conf")).unwrap();
        let dir = DirFd::open_path(target.path()).unwrap();
        assert_eq!(dir.occupant(b"conf").unwrap(), Some(Occupant::Symlink));
        assert!(dir.open_write(b"conf").is_err(), "opening a symlink for writing must fail");
        assert!(dir.open_dir(b"conf").is_err());
        let (tmp, _f) = dir.create_temp().unwrap();
        dir.rename(&tmp, b"conf").unwrap();
        assert_eq!(std::fs::read(outside.path().join("victim")).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(target.path().join("conf")).unwrap().is_file());
    }

    #[test]
    fn remove_all_stays_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"x").unwrap();
        let target = tempfile::tempdir().unwrap();
        let mut deep = target.path().join("d");
        for i in 0..50 {
            deep = deep.join(format!("{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), b"y").unwrap();
        std::os::unix::fs::symlink(outside.path(), deep.join("link")).unwrap();
        let dir = DirFd::open_path(target.path()).unwrap();
        dir.remove_all(b"d").unwrap();
        assert_eq!(dir.names().unwrap(), Vec::<Vec<u8>>::new());
        assert!(outside.path().join("precious").exists());
    }

    #[test]
    fn nothing_is_read_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("d", tmp.path().join("ld")).unwrap();
        std::os::unix::fs::symlink("f", tmp.path().join("lf")).unwrap();
        let dir = DirFd::open_path(tmp.path()).unwrap();
        assert!(dir.open_dir(b"ld").is_err());
        assert!(dir.open_read(b"lf").is_err());
        assert!(dir.open_read(b"d").is_err());
        assert_eq!(dir.read_link(b"lf").unwrap(), b"f");
        assert_eq!(dir.stat(b"lf").unwrap().kind, super::super::EntryKind::Symlink);
        dir.make_node(b"p", NodeKind::Fifo, 0o600, 0).unwrap();
        assert!(dir.open_read(b"p").is_err(), "a FIFO is never opened as a file");
        assert_eq!(dir.occupant(b"p").unwrap(), Some(Occupant::Special { kind: NodeKind::Fifo, rdev: 0 }));
    }

    #[test]
    fn special_metadata_never_reaches_a_symlink_target() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        let inside = tmp.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("l")).unwrap();
        let dir = DirFd::open_path(&inside).unwrap();
        let t = 1_500_000_000_123_456_789;
        dir.set_meta_at(b"l", None, Some(0o777), t).unwrap();
        assert_eq!(std::fs::symlink_metadata(inside.join("l")).unwrap().mtime(), 1_500_000_000);
        let out = std::fs::metadata(&outside).unwrap();
        assert_eq!(out.mode() & 0o7777, 0o644, "the symlink's target must keep its mode");
        assert_ne!(out.mtime(), 1_500_000_000, "the symlink's target must keep its times");
        dir.make_node(b"p", NodeKind::Fifo, 0o600, 0).unwrap();
        dir.set_meta_at(b"p", None, Some(0o640), t).unwrap();
        let p = std::fs::symlink_metadata(inside.join("p")).unwrap();
        assert_eq!((p.mode() & 0o7777, p.mtime_nsec()), (0o640, 123_456_789));
    }
}
