//! `snapshot export` and `snapshot import`: one snapshot as one self-verifying file, built on
//! the copy. Export copies the snapshot into a twin of the source (same key: sealed data moves
//! as it is) and frames the twin's files into the export file (`repo::export`). Import opens
//! the file — which verifies all of it first — and copies its one snapshot into a repository
//! the way `repo copy` would, so nothing is added unless the whole file is sound.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::rekey::Rekeyer;
use super::run::{copy_with, CopyMode, CopyOptions, CopyReport, Transfer};
use super::same_ids::SameIds;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::export::{write_export, Contents, ExportFile, Header, OpenedExport, EXPORT_MAJOR, EXPORT_MINOR};
use crate::repo::{InitEncryption, Repository};
use crate::snapshot::Snapshot;

/// How to seal an export.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Seal the export with a fresh master key under this password, re-encrypting every chunk
    /// (`--to-password-file`), instead of the source's key: to hand a backup to someone
    /// without the repository's password. Also encrypts an unencrypted repository's export.
    pub fresh_key: Option<InitEncryption>,
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    pub snapshot: String,
    pub file: PathBuf,
    /// The export file's size.
    pub bytes: u64,
    pub encrypted: bool,
    pub format: String,
    /// Regular files in the snapshot, and their bytes.
    pub files: u64,
    pub file_bytes: u64,
}

/// Writes snapshot `id` of `src` to the new file `out`.
pub fn export(
    src: &Repository,
    id: SnapshotId,
    snap: &Snapshot,
    out: &Path,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    if !src.sealer().can_read() {
        return Err(Error::WriteOnly { action: "export snapshots (it reads every file)".into() });
    }
    if out.exists() {
        return Err(Error::InvalidArgument(format!("{} exists; give a new file name for the export", out.display())));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Beside the export, on the disk that is meant to hold it, not in a small /tmp.
    let dir = tempfile::Builder::new()
        .prefix(".cairn-export-")
        .tempdir_in(parent)
        .map_err(|e| Error::io("cannot create a temporary directory in", parent, e))?;
    let _lock = src.lock_for_reading("snapshot export")?;
    let (twin, there) = copy_into_twin(src, id, snap, dir.path(), opts, progress)?;
    // Re-encrypted, the snapshot has another root and id there.
    let copy = twin.load_snapshot(&there)?;
    let files = twin.file_digests(&copy.root)?;
    let (count, file_bytes) = (files.len() as u64, files.iter().map(|f| f.size).sum());
    let contents =
        Contents { host: snap.host.clone(), paths: snap.paths.clone(), snapshot_time_ns: snap.time_ns, files };
    let header = Header {
        major: EXPORT_MAJOR,
        minor: EXPORT_MINOR,
        created_ns: crate::time::now_ns(),
        encrypted: twin.is_encrypted(),
    };
    let file =
        ExportFile { header, snapshot: *there.as_bytes(), contents: contents.seal(twin.sealer())?, dir: dir.path() };
    let bytes = write_export(twin.backend().as_ref(), file, out)?;
    progress.finish();
    Ok(ExportReport {
        snapshot: id.to_hex(),
        file: out.to_path_buf(),
        bytes,
        encrypted: twin.is_encrypted(),
        format: format!("{EXPORT_MAJOR}.{EXPORT_MINOR}"),
        files: count,
        file_bytes,
    })
}

/// Copies snapshot `id` into a new repository in `dir`: a twin of `src` (same key, sealed
/// data moved as it is), or a fresh encrypted repository (re-encrypted). Returns the
/// repository and the snapshot's id there.
fn copy_into_twin(
    src: &Repository,
    id: SnapshotId,
    snap: &Snapshot,
    dir: &Path,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<(Repository, SnapshotId)> {
    let twin = match &opts.fresh_key {
        Some(enc) => src.export_fresh(dir, enc)?,
        None => src.export_twin(dir)?,
    };
    let mode = match (&opts.fresh_key, src.is_encrypted()) {
        (Some(_), _) => CopyMode::Reencrypt,
        (None, true) => CopyMode::SameKey,
        (None, false) => CopyMode::Unencrypted,
    };
    let mut copied = CopyReport { mode, ..CopyReport::default() };
    let there = match mode {
        CopyMode::Reencrypt => Rekeyer::new(src, &twin, progress)?.snapshot(id, snap, None, &mut copied)?,
        _ => SameIds::new(src, &twin, mode, progress)?.snapshot(id, snap, None, &mut copied)?,
    };
    Ok((twin, there))
}

/// Adds a verified export's snapshot to `dst` (a `repo copy` from the export's repository).
pub fn import(
    export: &OpenedExport,
    dst: &Repository,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    // Said here, naming the export rather than its temporary directory.
    if export.repo.is_encrypted() && !dst.is_encrypted() && !opts.allow_unencrypted_destination {
        return Err(Error::InvalidArgument(format!(
            "the export is encrypted and {} is not: importing would store every file in the clear; pass \
             --allow-unencrypted-destination if that is what you want",
            dst.location()
        )));
    }
    copy_with(&export.repo, dst, opts, progress)
}
