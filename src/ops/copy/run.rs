//! The copy itself: choose how (by the keys of both sides), then copy snapshots oldest first
//! and WAL records, skipping what the destination already has.

use std::collections::HashMap;

use serde::Serialize;

use super::identity::DestinationSnapshots;
use super::rekey::Rekeyer;
use super::same_ids::SameIds;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::{snapshot_key, LockKind, Repository};
use crate::snapshot::{Snapshot, WalRecord};

/// What the caller allows.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyOptions {
    /// Copy from an encrypted repository into an unencrypted one, storing everything in the
    /// clear. Refused unless set (`--allow-unencrypted-destination`).
    pub allow_unencrypted_destination: bool,
}

/// How the copy moved data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyMode {
    /// Both sides unencrypted: ids are equal; blobs are compressed with the destination's level.
    #[default]
    Unencrypted,
    /// Both encrypted with the same master key: ids are equal; sealed blobs and objects are
    /// copied as they are.
    SameKey,
    /// Different keys, or one side unencrypted: every chunk is renamed with the destination's
    /// id key and sealed with its key; snapshots get new ids.
    #[serde(rename = "re-encrypt")]
    Reencrypt,
}

/// One snapshot this run copied: its id in the source and in the destination (they differ
/// when re-encrypting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopiedSnapshot {
    #[serde(serialize_with = "hex")]
    pub source: SnapshotId,
    #[serde(serialize_with = "hex")]
    pub destination: SnapshotId,
}

/// Ids in reports are lowercase hex, as printed everywhere else.
fn hex<S: serde::Serializer>(id: &SnapshotId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    pub mode: CopyMode,
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub wal_copied: u64,
    pub wal_present: u64,
    /// Blobs (chunks, trees, chunk-list pieces) new to the destination.
    pub blobs_copied: u64,
    /// Their plaintext bytes.
    pub bytes_copied: u64,
    /// The snapshots copied by this run, oldest first.
    pub snapshots: Vec<CopiedSnapshot>,
}

/// What differs between the two ways of copying.
pub(super) trait Transfer {
    /// Copies everything `snap` (source id `id`) references, then writes it into the
    /// destination with `parent` (its parent's id there); returns its id there.
    fn snapshot(
        &mut self,
        id: SnapshotId,
        snap: &Snapshot,
        parent: Option<SnapshotId>,
        report: &mut CopyReport,
    ) -> Result<SnapshotId>;

    /// Copies a WAL record and the chunks it names.
    fn wal(&mut self, record: &WalRecord, report: &mut CopyReport) -> Result<()>;
}

/// An id key probe: equal ids of this text mean equal id keys, without showing either key.
const ID_KEY_PROBE: &[u8] = b"cairn repo copy: same id key?";

/// [`copy_with`] with the default options (an encrypted source never goes into an
/// unencrypted destination).
pub fn copy(src: &Repository, dst: &Repository, progress: &dyn Progress) -> Result<CopyReport> {
    copy_with(src, dst, &CopyOptions::default(), progress)
}

/// Copies every snapshot and WAL record of `src` that `dst` lacks.
pub fn copy_with(
    src: &Repository,
    dst: &Repository,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let mode = choose_mode(src, dst, opts)?;
    let _src_lock = src.lock_for_reading("repo copy (source)")?;
    let _dst_lock = dst.lock(LockKind::Shared, "repo copy")?;
    let mut report = CopyReport { mode, ..CopyReport::default() };
    let mut transfer: Box<dyn Transfer + '_> = match mode {
        CopyMode::Reencrypt => Box::new(Rekeyer::new(src, dst, progress)?),
        _ => Box::new(SameIds::new(src, dst, mode, progress)?),
    };
    copy_snapshots(src, dst, mode, transfer.as_mut(), &mut report)?;
    copy_wal(src, dst, transfer.as_mut(), &mut report)?;
    progress.finish();
    Ok(report)
}

/// Same ids when both sides are unencrypted or share a master key (equal key checks in their
/// configs, and equal ids of a probe text); re-encryption otherwise.
fn choose_mode(src: &Repository, dst: &Repository, opts: &CopyOptions) -> Result<CopyMode> {
    if !src.sealer().can_read() {
        return Err(Error::WriteOnly { action: "be the source of a copy (it reads every snapshot)".into() });
    }
    if !dst.sealer().can_read() {
        return Err(Error::WriteOnly {
            action: "be the destination of a copy (it reads the destination's snapshots to skip those already there)"
                .into(),
        });
    }
    let same_id_key = src.sealer().chunk_id(ID_KEY_PROBE) == dst.sealer().chunk_id(ID_KEY_PROBE);
    match (src.key_check()?, dst.key_check()?) {
        (None, None) => Ok(CopyMode::Unencrypted),
        (Some(_), None) if !opts.allow_unencrypted_destination => Err(Error::InvalidArgument(format!(
            "{} is encrypted and {} is not: copying would store every file in the clear; pass \
             --allow-unencrypted-destination if that is what you want",
            src.location(),
            dst.location()
        ))),
        (Some(a), Some(b)) if a == b && same_id_key => Ok(CopyMode::SameKey),
        _ => Ok(CopyMode::Reencrypt),
    }
}

/// Copies each source snapshot the destination lacks, oldest first. With equal ids a snapshot
/// is present when its object is; re-encrypted snapshots get new ids, so there a snapshot is
/// present when one with the same record (all but root and parent) is (see `identity`).
fn copy_snapshots(
    src: &Repository,
    dst: &Repository,
    mode: CopyMode,
    transfer: &mut dyn Transfer,
    report: &mut CopyReport,
) -> Result<()> {
    let present = match mode {
        CopyMode::Reencrypt => Some(DestinationSnapshots::load(dst)?),
        _ => None,
    };
    // Source id → destination id, to name each copy's parent in the destination.
    let mut mapped: HashMap<SnapshotId, SnapshotId> = HashMap::new();
    for (id, snap) in src.snapshots()? {
        let there = match (&present, &snap) {
            (None, _) => dst.backend().size(&snapshot_key(&id))?.map(|_| id),
            (Some(p), Ok(s)) => p.find(s)?,
            (Some(_), Err(_)) => None,
        };
        if let Some(there) = there {
            report.snapshots_present += 1;
            mapped.insert(id, there);
            continue;
        }
        let snap = snap.map_err(in_source)?;
        let parent = snap.parent.and_then(|p| mapped.get(&p).copied());
        let destination = transfer.snapshot(id, &snap, parent, report)?;
        mapped.insert(id, destination);
        report.snapshots.push(CopiedSnapshot { source: id, destination });
        report.snapshots_copied += 1;
    }
    Ok(())
}

/// Copies each WAL record the destination lacks (by stream and name, on both sides).
fn copy_wal(src: &Repository, dst: &Repository, transfer: &mut dyn Transfer, report: &mut CopyReport) -> Result<()> {
    let mut names = Vec::new();
    src.for_each_wal(None, &mut |r| {
        names.push((r.stream, r.name));
        Ok(())
    })
    .map_err(in_source)?;
    for (stream, name) in names {
        if dst.find_wal(&stream, &name)?.is_some() {
            report.wal_present += 1;
            continue;
        }
        let Some(record) = src.find_wal(&stream, &name).map_err(in_source)? else { continue };
        transfer.wal(&record, report)?;
        report.wal_copied += 1;
    }
    Ok(())
}

/// Names the source in damage found there, so that a failed copy says which side is bad.
pub(super) fn in_source(e: Error) -> Error {
    match e {
        Error::Corrupt { what, detail } => {
            Error::Corrupt { what: format!("{what} (in the source repository)"), detail }
        }
        Error::NotFound { what } => Error::NotFound { what: format!("{what} (in the source repository)") },
        other => other,
    }
}
