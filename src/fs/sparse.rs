//! Sparse files: finding a file's data and holes (`SEEK_DATA`/`SEEK_HOLE`) when it is read.
//! (Nothing is needed to write one back: a restore sets a new file's length first and writes
//! only its data, so the zero runs stay unallocated.)

use std::fs::File;
use std::io;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// The data ranges `(start, end)` of the first `len` bytes of `file`, in order; the gaps
/// between them are holes. A filesystem without `SEEK_DATA` reports the whole file as data.
pub fn data_ranges(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut ranges = Vec::new();
    let mut pos = 0;
    while pos < len {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s.min(len),
            Err(Errno::NXIO) => break, // only a hole from `pos` to the end
            Err(Errno::INVAL) if pos == 0 => return Ok(vec![(0, len)]), // no SEEK_DATA here
            Err(e) => return Err(e.into()),
        };
        if start >= len {
            break;
        }
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(e) => e.min(len),
            Err(Errno::NXIO) => len, // shrank meanwhile: what is left is data
            Err(e) => return Err(e.into()),
        };
        ranges.push((start, end.max(start)));
        pos = end.max(start + 1);
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn written_holes_take_no_space_and_are_found_again() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        let file = File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(&[7u8; 4096], 1 << 20).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.len(), 64 << 20);
        let file = File::open(&path).unwrap();
        let ranges = data_ranges(&file, m.len()).unwrap();
        if m.blocks() * 512 >= m.len() {
            println!("skipped: the filesystem of {} does not keep holes", tmp.path().display());
            return;
        }
        assert!(m.blocks() * 512 <= 64 << 10, "allocated {} bytes", m.blocks() * 512);
        assert_eq!(ranges.len(), 1);
        let (start, end) = ranges[0];
        assert!(start <= 1 << 20 && end >= (1 << 20) + 4096 && end - start <= 64 << 10, "{ranges:?}");
    }

    #[test]
    fn a_dense_file_is_one_range() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(data_ranges(&file, 1 << 20).unwrap(), vec![(0, 1 << 20)]);
    }
}
