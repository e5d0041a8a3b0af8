//! `repo check`: audit every reference and, on request, every byte; name exactly what any
//! damage affects.
//!
//! Modes (see `docs/check.md`):
//! * structural (default): config, snapshot objects, every reachable tree, every chunk
//!   reference against the index, every index entry against the packs that exist and their
//!   trailers, packs the index does not know, stray and temporary files;
//! * `--read-data` / a subset: additionally reads whole packs and verifies every blob's hash.
//!
//! The audit runs in two passes. Pass 1 (`packs`) finds damaged packs and index entries and
//! collects the ids of damaged chunks (small: proportional to the damage, not the repository).
//! Pass 2 (`trees`) walks every snapshot and attaches to each finding the snapshots, files and
//! byte ranges it affects.

mod packs;
mod record;
mod second_look;
mod trees;

pub use record::{check_record, mode_name, record_check};

use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::progress::Progress;
use crate::repo::AuditOpen;

/// Which packs `--read-data` reads.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum ReadData {
    /// Structural audit only.
    #[default]
    None,
    All,
    /// A random share of the packs, in percent.
    Percent(f64),
    /// The deterministic slice `k` of `of` (1-based): every pack whose id, read as a number,
    /// is `k-1` modulo `of`. Running 1/7 … 7/7 on successive days covers every pack.
    Slice {
        k: u32,
        of: u32,
    },
}

impl FromStr for ReadData {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad =
            || Error::InvalidArgument(format!("read-data subset {s:?} is not N% (0 < N <= 100) or K/M (1 <= K <= M)"));
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return if v > 0.0 && v <= 100.0 { Ok(ReadData::Percent(v)) } else { Err(bad()) };
        }
        let (k, of) = s.split_once('/').ok_or_else(bad)?;
        let (k, of): (u32, u32) = (k.trim().parse().map_err(|_| bad())?, of.trim().parse().map_err(|_| bad())?);
        if k >= 1 && k <= of {
            Ok(ReadData::Slice { k, of })
        } else {
            Err(bad())
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub read_data: ReadData,
}

/// How bad a finding is. Damage means data or integrity is affected (exit code 4);
/// warnings are leftovers that lose nothing (temporary files, packs not yet indexed).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Damage,
}

/// A place damage reaches: a file (with the byte range), a directory (everything below), or a
/// whole snapshot (`path` empty).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Affected {
    pub snapshot: String,
    pub time: String,
    pub path: String,
    /// Byte range of the file that is lost, when the damage is a chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<(u64, u64)>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// What is damaged: `pack 3fa2…`, `pack 3fa2… chunk 9c1e…`, `tree …`, `snapshot …`,
    /// `config`, `index`, `file packs/zz/junk`.
    pub object: String,
    pub problem: String,
    pub affects: Vec<Affected>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CheckStats {
    pub snapshots: u64,
    pub trees: u64,
    pub files: u64,
    pub chunk_refs: u64,
    pub packs: u64,
    pub index_entries: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_verified: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub stats: CheckStats,
    pub duration_ms: u64,
}

impl CheckReport {
    pub fn damage_found(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Damage)
    }
}

/// Findings under construction, with damaged chunk ids pointing at the finding that explains
/// them.
#[derive(Default)]
pub(crate) struct Findings {
    list: Vec<Finding>,
    damaged_chunks: std::collections::HashMap<ChunkId, usize>,
    /// File entries that disagree with themselves, by (tree, name), pointing at their finding.
    bad_entries: std::collections::HashMap<(ChunkId, Vec<u8>), usize>,
    /// Findings of packs the index names but that do not exist; see `second_look`.
    missing_packs: Vec<usize>,
}

impl Findings {
    fn add(&mut self, severity: Severity, object: impl Into<String>, problem: impl Into<String>) -> usize {
        self.list.push(Finding { severity, object: object.into(), problem: problem.into(), affects: Vec::new() });
        self.list.len() - 1
    }

    fn damage_chunk(&mut self, id: ChunkId, finding: usize) {
        self.damaged_chunks.entry(id).or_insert(finding);
    }
}

/// Runs the audit; reports as damage only what is still damage after a second look (see
/// `second_look`: packs written by concurrent writers, index entries of pruned packs).
pub fn check(audit: &AuditOpen, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    // Every audit, with or without --read-data, follows snapshots and trees.
    audit.repo.require_read("check the repository (it must read snapshots and trees)")?;
    let started = Instant::now();
    second_look::relocate_from_vanished(&audit.repo)?;
    let mut unindexed = audit.unindexed_packs.clone();
    // Packs written while the relocation read every trailer.
    unindexed.extend(audit.repo.ingest_unknown_packs()?);
    let mut audits = 1;
    loop {
        let (mut findings, stats) = audit_once(audit, &unindexed, opts, progress)?;
        if audits < second_look::MAX_AUDITS && second_look::found_in_new_packs(&audit.repo, &findings, &mut unindexed)?
        {
            audits += 1;
            continue;
        }
        second_look::stale_missing_packs(&audit.repo, &mut findings)?;
        progress.finish();
        return Ok(CheckReport { findings: findings.list, stats, duration_ms: started.elapsed().as_millis() as u64 });
    }
}

/// One audit: both passes over the repository as the index now shows it.
fn audit_once(
    audit: &AuditOpen,
    unindexed: &[crate::id::PackId],
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<(Findings, CheckStats)> {
    let mut findings = Findings::default();
    audit_locks(&audit.repo, &mut findings)?;
    audit_wal(&audit.repo, &mut findings)?;
    audit_runs(&audit.repo, &mut findings)?;
    let mut stats = CheckStats::default();
    if let Some(e) = &audit.config_error {
        findings.add(Severity::Damage, "config", e.to_string());
    }
    if let Some(e) = &audit.index_error {
        findings.add(Severity::Damage, "index", format!("{e}; `cairn repo repair index` rebuilds it"));
    }
    // The passes run at once: pass 2 (snapshots and trees, mostly small reads and index
    // lookups) then costs nothing beside pass 1 (every pack, read whole with read-data). Pass 2
    // needs pass 1's damaged chunks only to name what they affect: when pass 1 finds any, its
    // result is set aside and pass 2 runs again with them, so a damaged repository costs one
    // more pass 2 and a clean one costs the longer pass. (Corpus (c) of docs/performance.md
    // at scale 0.5, 16 snapshots: read-data check 1.94 s one pass after the other, 1.57 s at
    // once; structural 1.15 s, 0.81 s.)
    progress.phase("check packs and snapshots", None);
    let mut trees_alone = Findings::default();
    let mut trees_stats = CheckStats::default();
    let (packs, trees) = std::thread::scope(|scope| {
        let trees = scope.spawn(|| trees::audit(&audit.repo, &mut trees_alone, &mut trees_stats));
        let packs = packs::audit(&audit.repo, unindexed, opts.read_data, &mut findings, &mut stats, progress);
        (packs, trees.join())
    });
    packs?;
    let trees = trees.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if findings.damaged_chunks.is_empty() {
        trees?;
        // Keep what pass 2 found damaged, for the second look.
        let shift = findings.list.len();
        findings.damaged_chunks.extend(trees_alone.damaged_chunks.iter().map(|(id, idx)| (*id, idx + shift)));
        findings.list.append(&mut trees_alone.list);
    } else {
        trees_stats = CheckStats::default();
        trees::audit(&audit.repo, &mut findings, &mut trees_stats)?;
    }
    stats.snapshots = trees_stats.snapshots;
    stats.trees = trees_stats.trees;
    stats.files = trees_stats.files;
    stats.chunk_refs = trees_stats.chunk_refs;
    Ok((findings, stats))
}

/// Every WAL record opens and decodes, and every chunk it names is in the index (its bytes
/// are verified with the packs by `--read-data`).
fn audit_wal(repo: &crate::repo::Repository, findings: &mut Findings) -> Result<()> {
    for key in repo.wal_keys()? {
        let record = match repo.load_wal(&key) {
            Ok(r) => r,
            Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                findings.add(Severity::Damage, format!("WAL record {key}"), e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        let ids: Vec<ChunkId> = record.chunks.iter().map(|c| c.id).filter(|id| *id != ChunkId::ZERO_RUN).collect();
        let missing = repo.index().get_many(&ids)?.iter().filter(|l| l.is_none()).count();
        if missing > 0 {
            findings.add(
                Severity::Damage,
                format!("WAL record {}/{}", record.stream, record.name),
                format!("{missing} of its chunks are in no pack"),
            );
        }
    }
    Ok(())
}

/// Every run record opens, is named by its content and decodes (`docs/format.md` §14). A
/// damaged one loses no backup data, but it is damage to the repository's objects all the same.
fn audit_runs(repo: &crate::repo::Repository, findings: &mut Findings) -> Result<()> {
    for kind in crate::snapshot::RunKind::ALL {
        for (key, e) in repo.runs(kind)?.unreadable {
            findings.add(Severity::Damage, format!("run record {key}"), e.to_string());
        }
    }
    Ok(())
}

/// Locks of processes that are gone, and locks nobody has refreshed for a long time.
fn audit_locks(repo: &crate::repo::Repository, findings: &mut Findings) -> Result<()> {
    let now = crate::time::now_ns();
    for (key, rec) in crate::repo::list_locks(repo.backend().as_ref(), repo.sealer())? {
        match rec {
            Ok(r) if r.provably_stale() => {
                findings.add(
                    Severity::Warning,
                    format!("lock {key}"),
                    format!("{} is stale: its process is gone (the next writer removes it)", r.describe()),
                );
            }
            Ok(r) if r.expired(now) => {
                findings.add(
                    Severity::Warning,
                    format!("lock {key}"),
                    format!(
                        "{} has not been refreshed since {}: `cairn repo unlock` removes it",
                        r.describe(),
                        crate::time::format_ns_secs(r.heartbeat_ns)
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                findings.add(Severity::Warning, format!("lock {key}"), format!("cannot be read: {e}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subsets() {
        assert_eq!("10%".parse::<ReadData>().unwrap(), ReadData::Percent(10.0));
        assert_eq!("3/7".parse::<ReadData>().unwrap(), ReadData::Slice { k: 3, of: 7 });
        for bad in ["0%", "101%", "0/7", "8/7", "x", "1/0"] {
            assert!(bad.parse::<ReadData>().is_err(), "{bad}");
        }
    }
}
