//! A second look before damage is reported: what a concurrent writer or prune explains is not
//! damage.
//!
//! `repo check` holds a shared lock, so no prune deletes anything while it runs; writers and
//! `forget` go on working beside it. Two things can then look like damage and are not:
//!
//! * **Packs written after the audit synced its view.** A snapshot written meanwhile names
//!   trees and chunks in packs the audit's index does not know, which look like "in no pack".
//!   When the audit finds such ids, it ingests the packs written since and looks each one up
//!   again; if any is found now, the whole audit runs again with the fuller view (at most
//!   [`MAX_AUDITS`] times), and only what is still missing is reported.
//! * **Index entries of packs a prune removed.** A prune that ran while another process held
//!   the index (RocksDB admits one writer) removed the entries from its private view only; the
//!   shared index names the removed packs until the next process that holds it syncs. Such a
//!   pack is damage only when a snapshot or a WAL record needs a chunk that no existing pack
//!   holds: before the audit, other copies of the chunks the index places in such packs are
//!   looked for in every trailer and put in the audit's view, and pass 1 ignores the entries
//!   they shadow; a missing pack that nothing needs then is a warning.

use std::collections::{HashMap, HashSet};

use super::{Findings, Severity};
use crate::error::Result;
use crate::id::{ChunkId, PackId};
use crate::repo::Repository;

/// Audits of one `repo check` at most: a writer would have to publish a snapshot in every
/// window between the audit's index sync and its tree walk for the last one to see it.
pub(super) const MAX_AUDITS: usize = 4;

/// The problem of a chunk, tree or chunk-list piece that no known pack holds (as pass 2 words
/// it).
pub(super) const IN_NO_PACK: &str = "is in no pack";

const STALE_PACK: &str = "is missing, but no snapshot or WAL record needs a chunk the index places in it: the index \
                          still names a pack that a prune removed (it ran while another process held the index); \
                          the next process that holds the index drops these entries";

/// Gives the audit's view the other copies of chunks the index places in packs that no longer
/// exist (see [`Repository::relocate_from`]); the index entries naming those packs stay, so
/// pass 1 still reports the packs.
pub(super) fn relocate_from_vanished(repo: &Repository) -> Result<()> {
    let gone = repo.vanished_packs()?;
    if !gone.is_empty() {
        repo.relocate_from(&gone)?;
    }
    Ok(())
}

/// Ingests packs written since the audit synced its index (adding them to `unindexed`), and
/// says whether any id found "in no pack" is in one of them (then the audit must run again).
pub(super) fn found_in_new_packs(repo: &Repository, findings: &Findings, unindexed: &mut Vec<PackId>) -> Result<bool> {
    let absent: Vec<ChunkId> = findings
        .damaged_chunks
        .iter()
        .filter(|(_, idx)| findings.list[**idx].problem == IN_NO_PACK)
        .map(|(id, _)| *id)
        .collect();
    if absent.is_empty() {
        return Ok(false);
    }
    let added = repo.ingest_unknown_packs()?;
    if added.is_empty() {
        return Ok(false);
    }
    unindexed.extend(added);
    Ok(repo.index().get_many(&absent)?.iter().any(Option::is_some))
}

/// Turns missing packs that nothing needs into warnings. Call after pass 2 attributed damage
/// to snapshots; WAL records (which pass 2 does not walk) are read here, only when needed.
pub(super) fn stale_missing_packs(repo: &Repository, findings: &mut Findings) -> Result<()> {
    let unneeded: HashSet<usize> =
        findings.missing_packs.iter().copied().filter(|i| findings.list[*i].affects.is_empty()).collect();
    if unneeded.is_empty() {
        return Ok(());
    }
    let chunks: HashMap<ChunkId, usize> =
        findings.damaged_chunks.iter().filter(|(_, i)| unneeded.contains(i)).map(|(c, i)| (*c, *i)).collect();
    let mut needed = HashSet::new();
    repo.for_each_wal(None, &mut |record| {
        needed.extend(record.chunks.iter().filter_map(|c| chunks.get(&c.id).copied()));
        Ok(())
    })?;
    for i in unneeded.difference(&needed) {
        findings.list[*i].severity = Severity::Warning;
        findings.list[*i].problem = STALE_PACK.to_string();
    }
    Ok(())
}
