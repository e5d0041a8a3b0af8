//! Opening an export file: everything is verified before anything is used. In order: the
//! header (magic, checksum, major version), the trailer, the manifest (its own BLAKE3), every
//! entry (framing as the manifest lists it, and each file's BLAKE3) while it is unpacked into
//! a private temporary directory, the whole-file BLAKE3, then — opened as a repository — the
//! snapshot itself: every tree and chunk read and verified against its id, and every file's
//! BLAKE3 compared with the manifest. Any failure is a `Corrupt` error naming the part.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use super::format::{
    entry_head_bytes, Contents, Header, Manifest, ObjectEntry, Trailer, HEADER_BYTES, MAX_KEY_BYTES, TRAILER_BYTES,
    TRAILER_HASHED_BYTES,
};
use crate::backend::{Backend, LocalBackend};
use crate::codec::MAX_RECORD_BYTES;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::keys::KeySource;
use crate::repo::layout::{CONFIG_KEY, KEYS_DIR, PACKS_DIR, SNAPSHOTS_DIR};
use crate::repo::open::{Access, IndexKind};
use crate::repo::Repository;
use crate::snapshot::Snapshot;

const COPY_BUFFER_BYTES: usize = 1 << 20;

/// A verified export, unpacked and opened as a (temporary, read-only) repository.
pub struct OpenedExport {
    pub header: Header,
    pub contents: Contents,
    pub snapshot_id: SnapshotId,
    pub snapshot: Snapshot,
    /// The export's repository: its one snapshot, nothing else.
    pub repo: Repository,
    /// The export file's size.
    pub bytes: u64,
    /// Declared last: the directory goes after the repository is closed.
    _dir: tempfile::TempDir,
}

/// Verifies `file` completely and opens it (an encrypted export with the password `keys`
/// gives). The unpacked copy lives in a private directory in the system temp dir (`TMPDIR`).
pub fn open_export(file: &Path, keys: &KeySource) -> Result<OpenedExport> {
    let what = format!("export file {}", file.display());
    let mut f = File::open(file).map_err(|e| Error::io("cannot open", file, e))?;
    let len = f.metadata().map_err(|e| Error::io("cannot stat", file, e))?.len();
    let mut head = vec![0u8; HEADER_BYTES.min(usize::try_from(len).unwrap_or(HEADER_BYTES))];
    f.read_exact(&mut head).map_err(|e| Error::io("cannot read", file, e))?;
    let header = Header::decode(&head, &what)?;
    let (manifest, manifest_at) = read_manifest(&mut f, len, &what, file)?;
    let dir =
        crate::io::private_temp_dir("export").map_err(|e| Error::io("cannot create", Path::new("temp dir"), e))?;
    f.seek(SeekFrom::Start(0)).map_err(|e| Error::io("cannot read", file, e))?;
    let mut r = Hashed { inner: BufReader::new(f), hasher: blake3::Hasher::new(), file };
    r.take(HEADER_BYTES as u64, None)?;
    let mut at = HEADER_BYTES as u64;
    for (i, obj) in manifest.objects.iter().enumerate() {
        at += unpack_entry(&mut r, obj, dir.path(), &format!("{what} (entry {i}, {})", obj.key), manifest_at - at)?;
    }
    if at != manifest_at {
        return Err(Error::corrupt(format!("{what} (entries)"), "bytes between the last entry and the manifest"));
    }
    r.take(len - TRAILER_BYTES as u64 - at + TRAILER_HASHED_BYTES as u64, None)?;
    let mut whole = [0u8; 32];
    r.inner.read_exact(&mut whole).map_err(|e| Error::io("cannot read", file, e))?;
    if &whole != r.hasher.finalize().as_bytes() {
        return Err(Error::corrupt(format!("{what} (whole-file BLAKE3)"), "it does not match: the file is damaged"));
    }
    let opened = open_verified(dir, header, &manifest, keys, &what)?;
    Ok(OpenedExport { bytes: len, ..opened })
}

/// Reads the trailer and the manifest it frames, checked against its BLAKE3; returns the
/// manifest and the offset where it starts.
fn read_manifest(f: &mut File, len: u64, what: &str, file: &Path) -> Result<(Manifest, u64)> {
    let fixed = (HEADER_BYTES + TRAILER_BYTES) as u64;
    if len < fixed {
        return Err(Error::corrupt(format!("{what} (trailer)"), "the file is too short to hold one"));
    }
    let mut t = [0u8; TRAILER_BYTES];
    f.seek(SeekFrom::Start(len - TRAILER_BYTES as u64)).map_err(|e| Error::io("cannot read", file, e))?;
    f.read_exact(&mut t).map_err(|e| Error::io("cannot read", file, e))?;
    let trailer = Trailer::decode(&t, what)?;
    let part = format!("{what} (manifest)");
    if trailer.manifest_len > len - fixed || trailer.manifest_len > MAX_RECORD_BYTES as u64 {
        return Err(Error::corrupt(part, format!("its length {} does not fit the file", trailer.manifest_len)));
    }
    let at = len - TRAILER_BYTES as u64 - trailer.manifest_len;
    let mut bytes = vec![0u8; trailer.manifest_len as usize];
    f.seek(SeekFrom::Start(at)).map_err(|e| Error::io("cannot read", file, e))?;
    f.read_exact(&mut bytes).map_err(|e| Error::io("cannot read", file, e))?;
    if blake3::hash(&bytes).as_bytes() != &trailer.manifest_hash {
        return Err(Error::corrupt(part, "its BLAKE3 does not match the trailer's"));
    }
    Ok((Manifest::decode(&bytes, what)?, at))
}

/// A reader that hashes everything read through it.
struct Hashed<'a, R: Read> {
    inner: R,
    hasher: blake3::Hasher,
    file: &'a Path,
}

impl<R: Read> Hashed<'_, R> {
    /// Reads `n` bytes, hashing them, writing them to `sink` if given (with `per` hashing too).
    fn take(&mut self, mut n: u64, mut sink: Option<(&mut File, &mut blake3::Hasher, &Path)>) -> Result<()> {
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        while n > 0 {
            let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            self.inner.read_exact(&mut buf[..want]).map_err(|e| Error::io("cannot read", self.file, e))?;
            self.hasher.update(&buf[..want]);
            if let Some((out, per, path)) = sink.as_mut() {
                per.update(&buf[..want]);
                out.write_all(&buf[..want]).map_err(|e| Error::io("cannot write", path, e))?;
            }
            n -= want as u64;
        }
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.inner.read_exact(&mut b).map_err(|e| Error::io("cannot read", self.file, e))?;
        self.hasher.update(&b);
        Ok(b)
    }
}

/// Unpacks one entry into `dir`, checking its framing and BLAKE3 against the manifest line;
/// returns the bytes it took. `room` is what is left before the manifest.
fn unpack_entry<R: Read>(r: &mut Hashed<'_, R>, obj: &ObjectEntry, dir: &Path, part: &str, room: u64) -> Result<u64> {
    let need = entry_head_bytes(obj.key.len()) as u64;
    if !safe_key(&obj.key) || need.saturating_add(obj.size) > room {
        return Err(Error::corrupt(part, "the manifest names a file that cannot be in this export"));
    }
    let len = r.bytes(2)?;
    let key = r.bytes(usize::from(u16::from_le_bytes([len[0], len[1]])).min(MAX_KEY_BYTES))?;
    let size = r.bytes(8)?;
    let size = u64::from_le_bytes(size.try_into().map_err(|_| Error::corrupt(part, "short size"))?);
    if key != obj.key.as_bytes() || size != obj.size {
        return Err(Error::corrupt(part, "its name or size differs from the manifest's"));
    }
    let path = dir.join(&obj.key);
    if let Some(p) = path.parent() {
        crate::io::create_private_dir_all(p).map_err(|e| Error::io("cannot create", p, e))?;
    }
    let mut out = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
    let mut per = blake3::Hasher::new();
    r.take(size, Some((&mut out, &mut per, &path)))?;
    if per.finalize().as_bytes() != &obj.blake3 {
        return Err(Error::corrupt(part, "its BLAKE3 does not match the manifest's"));
    }
    Ok(need + size)
}

/// Only the repository files an export carries, with no way out of the directory.
fn safe_key(key: &str) -> bool {
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match key.split_once('/') {
        None => key == CONFIG_KEY,
        Some((dir, rest)) => {
            let dir = format!("{dir}/");
            (dir == KEYS_DIR || dir == SNAPSHOTS_DIR) && plain(rest)
                || dir == PACKS_DIR && rest.split_once('/').is_some_and(|(a, b)| plain(a) && plain(b))
        }
    }
}

/// Opens the unpacked repository and checks the snapshot against the manifest.
fn open_verified(
    dir: tempfile::TempDir,
    header: Header,
    manifest: &Manifest,
    keys: &KeySource,
    what: &str,
) -> Result<OpenedExport> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
    let repo =
        Repository::open_with(backend, None, Access::Read, IndexKind::Memory, keys).map_err(|e| inside(e, what))?;
    if repo.is_encrypted() != header.encrypted {
        return Err(Error::corrupt(format!("{what} (header)"), "its encryption flag disagrees with the repository"));
    }
    let contents = Contents::open(&manifest.contents, repo.sealer(), what)?;
    let snapshot_id = SnapshotId(crate::id::Digest(manifest.snapshot));
    if repo.snapshot_ids().map_err(|e| inside(e, what))? != [snapshot_id] {
        return Err(Error::corrupt(format!("{what} (snapshot)"), "it does not hold exactly the snapshot it names"));
    }
    let snapshot = repo.load_snapshot(&snapshot_id).map_err(|e| inside(e, what))?;
    let files = repo.file_digests(&snapshot.root).map_err(|e| inside(e, what))?;
    if let Some((i, _)) = files.iter().zip(&contents.files).enumerate().find(|(_, (a, b))| a != b) {
        let name = String::from_utf8_lossy(&contents.files[i].path).into_owned();
        return Err(Error::corrupt(format!("{what} (file {name})"), "its content differs from the manifest"));
    }
    if files.len() != contents.files.len() {
        return Err(Error::corrupt(format!("{what} (snapshot)"), "its file list differs from the manifest"));
    }
    Ok(OpenedExport { header, contents, snapshot_id, snapshot, repo, bytes: 0, _dir: dir })
}

/// Names the export in damage found inside it.
fn inside(e: Error, what: &str) -> Error {
    match e {
        Error::Corrupt { what: w, detail } => Error::Corrupt { what: format!("{what} ({w})"), detail },
        Error::NotFound { what: w } => Error::corrupt(format!("{what} ({w})"), "it is missing"),
        other => other,
    }
}
