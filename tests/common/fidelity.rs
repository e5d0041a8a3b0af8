//! Assertions about a restored tree's file types and attributes (issue 15 item 5), for the
//! restore round trips: each compares an original entry with its restored copy.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// `a` and `b` (restored) are hard links of one file, as `orig_a` and `orig_b` were.
pub fn assert_hard_linked(a: &Path, b: &Path) {
    let (ma, mb) = (std::fs::symlink_metadata(a).unwrap(), std::fs::symlink_metadata(b).unwrap());
    assert_eq!((ma.dev(), ma.ino()), (mb.dev(), mb.ino()), "{} and {} are not one file", a.display(), b.display());
    assert!(ma.nlink() >= 2);
}

/// The restored sparse file has the original's size and content, and allocates at most
/// `slack` bytes (one chunk, say) more than the original (`du` within one chunk).
pub fn assert_sparse_like(original: &Path, restored: &Path, slack: u64) {
    let (mo, mr) = (std::fs::metadata(original).unwrap(), std::fs::metadata(restored).unwrap());
    assert_eq!(mo.len(), mr.len(), "size of {}", restored.display());
    let (ao, ar) = (mo.blocks() * 512, mr.blocks() * 512);
    assert!(ar <= ao + slack, "{} allocates {ar} bytes, the original {ao}", restored.display());
    assert!(std::fs::read(original).unwrap() == std::fs::read(restored).unwrap(), "content of {}", restored.display());
}

/// Both have the same extended attributes (names and values), symlinks not followed.
pub fn assert_same_xattrs(original: &Path, restored: &Path) {
    let list = |p: &Path| {
        let dir = cairn::fs::DirFd::open_path(p.parent().unwrap()).unwrap();
        dir.xattrs(p.file_name().unwrap().as_encoded_bytes()).unwrap()
    };
    assert_eq!(list(original), list(restored), "xattrs of {}", restored.display());
}

/// Same special file type (FIFO, socket, device with the same `rdev`) and mode.
pub fn assert_same_special(original: &Path, restored: &Path) {
    let (mo, mr) = (std::fs::symlink_metadata(original).unwrap(), std::fs::symlink_metadata(restored).unwrap());
    let kind = |m: &std::fs::Metadata| {
        let t = m.file_type();
        (t.is_fifo(), t.is_socket(), t.is_char_device(), t.is_block_device())
    };
    assert_eq!(kind(&mo), kind(&mr), "type of {}", restored.display());
    assert_eq!(mo.mode() & 0o7777, mr.mode() & 0o7777, "mode of {}", restored.display());
    if mo.file_type().is_char_device() || mo.file_type().is_block_device() {
        assert_eq!(mo.rdev(), mr.rdev(), "device of {}", restored.display());
    }
}

/// A 100 MiB file holding 4 KiB of random data at 50 MiB, the rest holes. `false` when the
/// filesystem keeps no holes (the caller skips, saying so).
pub fn make_sparse(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::create(path).unwrap();
    file.set_len(100 << 20).unwrap();
    file.write_all_at(&super::Rng::new(7).bytes(4096), 50 << 20).unwrap();
    drop(file);
    std::fs::metadata(path).unwrap().blocks() * 512 < 1 << 20
}
