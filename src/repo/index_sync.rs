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
use crate::pack::{open_trailer, parse_footer, parse_trailer, BlobEntry, FOOTER_BYTES, SEALED_HEADER_BYTES};
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
                let gone: HashSet<PackId> = vanished.into_iter().collect();
                self.relocate_from(&gone)?;
                for id in gone {
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

    /// Packs the index names that the backend no longer lists (removed by a prune that ran
    /// while another process held the index).
    pub fn vanished_packs(&self) -> Result<HashSet<PackId>> {
        let listed: HashSet<PackId> = self.list_packs()?.into_iter().map(|(id, _)| id).collect();
        let mut gone = HashSet::new();
        self.index.for_each_pack(&mut |id, _| {
            if !listed.contains(&id) {
                gone.insert(id);
            }
            Ok(())
        })?;
        Ok(gone)
    }

    /// Where the index places chunks in the packs `gone`, finds other copies in the packs that
    /// exist and records those, so lookups find them; for a view that cannot be rebuilt (a
    /// secondary with its overlay, an audit). A prune that ran while another process held the
    /// index kept each chunk's copy *it* located, possibly one in a pack whose entry the
    /// shared index had overwritten with the copy in the removed pack; hiding the removed
    /// pack's entries alone would then lose a chunk that exists. Reads every trailer, only when
    /// packs vanished; memory grows with the chunks of the vanished packs alone.
    pub fn relocate_from(&self, gone: &HashSet<PackId>) -> Result<u64> {
        let mut orphans = HashSet::new();
        self.index.for_each_chunk(&mut |chunk, loc| {
            if gone.contains(&loc.pack) {
                orphans.insert(chunk);
            }
            Ok(())
        })?;
        if orphans.is_empty() {
            return Ok(0);
        }
        let packs: Vec<(PackId, u64)> = self.list_packs()?.into_iter().filter(|(id, _)| !gone.contains(id)).collect();
        let found: Vec<u64> = packs
            .par_iter()
            .map(|(id, size)| {
                // Only packs the index knows: recording a few entries of an unknown one would
                // make it look indexed, and keep its other chunks from being ingested.
                if self.index.pack_info(id)?.is_none() {
                    return Ok(0);
                }
                let entries = match self.read_trailer(id, *size) {
                    Ok(e) => e,
                    Err(e) if e.is_not_found() || matches!(e, crate::error::Error::Corrupt { .. }) => return Ok(0),
                    Err(e) => return Err(e),
                };
                let copies: Vec<BlobEntry> = entries.into_iter().filter(|e| orphans.contains(&e.id)).collect();
                if !copies.is_empty() {
                    self.index.add_pack(*id, *size, &copies)?;
                }
                Ok(copies.len() as u64)
            })
            .collect::<Result<_>>()?;
        Ok(found.iter().sum())
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
    /// skipped here (its chunks are simply unknown); `repo check` reports it. So is a pack
    /// that vanished since it was listed: a process that syncs before it holds its lock (every
    /// open does) can meet a prune deleting packs; it syncs again under the lock.
    fn ingest(&self, packs: &[(PackId, u64)]) -> Result<u64> {
        let added: Vec<bool> = packs
            .par_iter()
            .map(|(id, size)| match self.read_trailer(id, *size) {
                Ok(entries) => self.index.add_pack(*id, *size, &entries).map(|_| true),
                Err(crate::error::Error::Corrupt { .. }) => Ok(false),
                Err(e) if e.is_not_found() => Ok(false),
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
        let footer = parse_footer(&tail[tail.len() - FOOTER_BYTES..], size, &what)?;
        let region_len = footer.region_len();
        let needed = (region_len + FOOTER_BYTES) as u64;
        let region = if needed <= tail_len {
            tail[tail.len() - FOOTER_BYTES - region_len..tail.len() - FOOTER_BYTES].to_vec()
        } else {
            self.backend.get_range(&key, size - needed, region_len as u64)?
        };
        // An encrypted trailer's context is the pack salt in the header.
        let header = if footer.sealed && needed + SEALED_HEADER_BYTES as u64 <= tail_len && tail_len == size {
            tail[..SEALED_HEADER_BYTES].to_vec()
        } else if footer.sealed {
            self.backend.get_range(&key, 0, SEALED_HEADER_BYTES as u64)?
        } else {
            Vec::new()
        };
        let entries = open_trailer(&region, &footer, &header, &self.sealer, &what)?;
        parse_trailer(&entries, &footer, size, &what)
    }
}
