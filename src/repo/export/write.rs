//! Writing an export file from a twin repository's files: streamed (no file is held in
//! memory whole), under a temporary name beside the target, fsynced, then renamed into place,
//! so a crash leaves either no export or a complete one.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use super::format::{encode_entry_head, Header, Manifest, ObjectEntry, Trailer, TRAILER_HASHED_BYTES};
use crate::backend::{Backend, ObjectInfo};
use crate::error::{Error, Result};
use crate::repo::layout::{CONFIG_KEY, KEYS_DIR, PACKS_DIR, SNAPSHOTS_DIR};

const COPY_BUFFER_BYTES: usize = 1 << 20;

/// What goes into an export besides the repository's files.
pub struct ExportFile<'a> {
    pub header: Header,
    pub snapshot: [u8; 32],
    /// The manifest's contents, sealed when encrypted.
    pub contents: Vec<u8>,
    /// The twin repository's directory.
    pub dir: &'a Path,
}

/// A writer that hashes everything written through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8], what: &Path) -> Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes).map_err(|e| Error::io("cannot write", what, e))
    }
}

/// Every repository file an export carries, sorted by key (so equal repositories give equal
/// export files): config, key files, packs, snapshots. Locks and the index stay behind.
fn export_keys(backend: &dyn Backend) -> Result<Vec<ObjectInfo>> {
    let mut all = vec![ObjectInfo { key: CONFIG_KEY.into(), size: 0 }];
    for prefix in [KEYS_DIR, PACKS_DIR, SNAPSHOTS_DIR] {
        backend.list(prefix, &mut |o| {
            all.push(o);
            Ok(())
        })?;
    }
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

/// Writes the export to `out` (which must not exist); returns its size in bytes.
pub fn write_export(backend: &dyn Backend, file: ExportFile<'_>, out: &Path) -> Result<u64> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".cairn-export-")
        .tempfile_in(parent)
        .map_err(|e| Error::io("cannot create a temporary file in", parent, e))?;
    let mut w = Hashing { inner: BufWriter::new(tmp.as_file()), hasher: blake3::Hasher::new(), written: 0 };
    w.put(&file.header.encode(), out)?;
    let mut objects = Vec::new();
    for info in export_keys(backend)? {
        objects.push(copy_entry(&mut w, file.dir, &info.key, out)?);
    }
    let manifest = Manifest {
        major: file.header.major,
        minor: file.header.minor,
        created_ns: file.header.created_ns,
        snapshot: file.snapshot,
        objects,
        contents: file.contents,
    }
    .encode()?;
    w.put(&manifest, out)?;
    let mut trailer = Trailer {
        manifest_len: manifest.len() as u64,
        manifest_hash: *blake3::hash(&manifest).as_bytes(),
        whole_hash: [0; 32],
    }
    .encode();
    w.put(&trailer[..TRAILER_HASHED_BYTES], out)?;
    trailer[TRAILER_HASHED_BYTES..TRAILER_HASHED_BYTES + 32].copy_from_slice(w.hasher.finalize().as_bytes());
    w.inner.write_all(&trailer[TRAILER_HASHED_BYTES..]).map_err(|e| Error::io("cannot write", out, e))?;
    let size = w.written + (trailer.len() - TRAILER_HASHED_BYTES) as u64;
    w.inner.flush().map_err(|e| Error::io("cannot write", out, e))?;
    drop(w);
    tmp.as_file().sync_all().map_err(|e| Error::io("cannot sync", out, e))?;
    tmp.persist_noclobber(out).map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::InvalidArgument(format!("{} exists; give a new file name for the export", out.display()))
        }
        _ => Error::io("cannot create", out, e.error),
    })?;
    crate::backend::local_sync_dir(parent)?;
    Ok(size)
}

/// Appends one repository file as an entry; returns its manifest line.
fn copy_entry<W: Write>(w: &mut Hashing<W>, dir: &Path, key: &str, out: &Path) -> Result<ObjectEntry> {
    let path = dir.join(key);
    let mut f = File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
    let size = f.metadata().map_err(|e| Error::io("cannot stat", &path, e))?.len();
    w.put(&encode_entry_head(key, size)?, out)?;
    let (mut hasher, mut buf, mut left) = (blake3::Hasher::new(), vec![0u8; COPY_BUFFER_BYTES], size);
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        f.read_exact(&mut buf[..want]).map_err(|e| Error::io("cannot read", &path, e))?;
        hasher.update(&buf[..want]);
        w.put(&buf[..want], out)?;
        left -= want as u64;
    }
    Ok(ObjectEntry { key: key.to_string(), size, blake3: *hasher.finalize().as_bytes() })
}
