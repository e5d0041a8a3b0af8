//! Keeping the derived index in step with the packs that exist, and rebuilding it.
//!
//! Packs describe themselves, so the index can always be recomputed: every open lists the
//! packs and ingests the trailers of any the index does not know (written by a process that
//! could not write the index, or lost in a crash before the index write). Packs the index
//! knows but that no longer exist (pruned elsewhere) trigger a rebuild, because a chunk may
//! also live in another pack the index never recorded for it.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::id::PackId;
use crate::pack::{parse_footer, parse_trailer, BlobEntry, FOOTER_BYTES, TRAILER_ENTRY_BYTES};
use crate::repo::layout::{pack_id_from_key, pack_key, PACKS_DIR};
use crate::repo::Repository;

/// Bytes read from a pack's end in one request, enough for ~1300 trailer entries.
const TRAILER_READ_BYTES: u64 = 64 << 10;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SyncReport {
    pub packs_listed: u64,
    pub packs_added: u64,
    pub packs_removed: u64,
    pub rebuilt: bool,
}

impl Repository {
    /// Ingests packs the index does not know; rebuilds when known packs have vanished.
    pub fn sync_index(&self) -> Result<SyncReport> {
        let mut listed = HashSet::new();
        let mut unknown = Vec::new();
        self.backend.list(PACKS_DIR, &mut |obj| {
            if let Some(id) = pack_id_from_key(&obj.key) {
                listed.insert(id);
                if self.index.pack_info(&id)?.is_none() {
                    unknown.push((id, obj.size));
                }
            }
            Ok(())
        })?;
        let mut vanished = Vec::new();
        self.index.for_each_pack(&mut |id, _| {
            if !listed.contains(&id) {
                vanished.push(id);
            }
            Ok(())
        })?;
        let mut report = SyncReport { packs_listed: listed.len() as u64, ..Default::default() };
        if !vanished.is_empty() {
            report.packs_removed = vanished.len() as u64;
            if self.index.clear().is_ok() {
                report.rebuilt = true;
                unknown = self.list_packs()?;
            } else {
                for id in vanished {
                    self.index.remove_pack(id, None)?;
                }
            }
        }
        report.packs_added = self.ingest(&unknown)?;
        Ok(report)
    }

    /// Adds the packs the index does not know (and whose trailers read) to the index, without
    /// touching entries of packs that vanished; returns the ids added. For audits, which must
    /// still see — and report — index entries pointing at missing packs.
    pub fn ingest_unknown_packs(&self) -> Result<Vec<PackId>> {
        let mut unknown = Vec::new();
        self.backend.list(PACKS_DIR, &mut |obj| {
            if let Some(id) = pack_id_from_key(&obj.key) {
                if self.index.pack_info(&id)?.is_none() {
                    unknown.push((id, obj.size));
                }
            }
            Ok(())
        })?;
        self.ingest(&unknown)?;
        let mut added = Vec::new();
        for (id, _) in unknown {
            if self.index.pack_info(&id)?.is_some() {
                added.push(id);
            }
        }
        Ok(added)
    }

    /// Drops the index and rebuilds it from every pack's trailer.
    pub fn rebuild_index(&self) -> Result<SyncReport> {
        self.index.clear()?;
        let packs = self.list_packs()?;
        let added = self.ingest(&packs)?;
        Ok(SyncReport { packs_listed: packs.len() as u64, packs_added: added, packs_removed: 0, rebuilt: true })
    }

    /// Every pack in the backend with its size.
    pub fn list_packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut packs = Vec::new();
        self.backend.list(PACKS_DIR, &mut |obj| {
            if let Some(id) = pack_id_from_key(&obj.key) {
                packs.push((id, obj.size));
            }
            Ok(())
        })?;
        Ok(packs)
    }

    /// Reads trailers in parallel and records each pack. A pack whose trailer is damaged is
    /// skipped here (its chunks are simply unknown); `repo check` reports it.
    fn ingest(&self, packs: &[(PackId, u64)]) -> Result<u64> {
        let added: Vec<bool> = packs
            .par_iter()
            .map(|(id, size)| match self.read_trailer(id, *size) {
                Ok(entries) => self.index.add_pack(*id, *size, &entries).map(|_| true),
                Err(crate::error::Error::Corrupt { .. }) => Ok(false),
                Err(e) => Err(e),
            })
            .collect::<Result<_>>()?;
        Ok(added.into_iter().filter(|a| *a).count() as u64)
    }

    /// Reads and validates the trailer of pack `id`, whose size is `size`.
    pub fn read_trailer(&self, id: &PackId, size: u64) -> Result<Vec<BlobEntry>> {
        let key = pack_key(id);
        let what = format!("pack {id}");
        if size < FOOTER_BYTES as u64 {
            return Err(crate::error::Error::corrupt(&what, format!("only {size} bytes, too short for a trailer")));
        }
        let tail_len = size.min(TRAILER_READ_BYTES);
        let tail = self.backend.get_range(&key, size - tail_len, tail_len)?;
        let (count, checksum) = parse_footer(&tail[tail.len() - FOOTER_BYTES..], size, &what)?;
        let entries_len = count as usize * TRAILER_ENTRY_BYTES;
        let needed = (entries_len + FOOTER_BYTES) as u64;
        let entries = if needed <= tail_len {
            tail[tail.len() - FOOTER_BYTES - entries_len..tail.len() - FOOTER_BYTES].to_vec()
        } else {
            self.backend.get_range(&key, size - needed, entries_len as u64)?
        };
        parse_trailer(&entries, &checksum, size, &what)
    }
}
