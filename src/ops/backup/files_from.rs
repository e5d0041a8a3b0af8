//! `--files-from`: the paths to back up, read from a file (restic's three forms).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a list of paths is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathList {
    /// One path per line; blank lines and lines starting with `#` are ignored.
    Lines,
    /// One path per line, taken literally (only empty lines are ignored).
    Verbatim,
    /// Paths separated by NUL bytes (`find -print0`), any bytes allowed.
    Raw,
}

/// Reads the paths listed in `file` (`-` is not special: use `/dev/stdin`).
pub fn read_path_list(file: &Path, form: PathList) -> Result<Vec<PathBuf>> {
    let bytes = std::fs::read(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::InvalidArgument(format!("path list {} does not exist", file.display())),
        _ => Error::io("cannot read", file, e),
    })?;
    let separator = if form == PathList::Raw { b'\0' } else { b'\n' };
    let items = bytes.split(|b| *b == separator).map(|line| match form {
        PathList::Raw => line,
        // A file written on Windows ends its lines with "\r\n".
        _ => line.strip_suffix(b"\r").unwrap_or(line),
    });
    let comment = |item: &[u8]| form == PathList::Lines && item.starts_with(b"#");
    let keep = |item: &&[u8]| !item.is_empty() && !comment(item);
    Ok(items.filter(keep).map(|item| PathBuf::from(OsStr::from_bytes(item))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_read_as_restic_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("list");
        std::fs::write(&file, b"# comment\n/a\r\n\n/b c\n#d\n").unwrap();
        let read = |form| read_path_list(&file, form).unwrap();
        assert_eq!(read(PathList::Lines), [PathBuf::from("/a"), PathBuf::from("/b c")]);
        assert_eq!(read(PathList::Verbatim).len(), 4, "comments are paths in the verbatim form");
        std::fs::write(&file, b"/x\n\0/\xff\0").unwrap();
        let raw = read(PathList::Raw);
        assert_eq!(raw[0], PathBuf::from("/x\n"));
        assert_eq!(raw[1].as_os_str().as_bytes(), b"/\xff");
    }
}
