//! Pass 1: packs and the index. Finds packs that are missing, truncated or damaged, index
//! entries that disagree with the packs, stray and temporary files, and (with read-data)
//! blobs whose content no longer matches their id.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::{CheckStats, Findings, ReadData, Severity};
use crate::error::{Error, Result};
use crate::id::{ChunkId, PackId};
use crate::index::Location;
use crate::pack::{verify_blob, BlobEntry, FOOTER_BYTES, PACK_HEADER, SEALED_PACK_HEADER};
use crate::progress::Progress;
use crate::repo::{pack_key, Repository, PACKS_DIR};

/// What auditing one pack found.
#[derive(Default)]
struct PackResult {
    /// The pack cannot be parsed (missing trailer, checksum, truncation…).
    broken: Option<String>,
    /// Read-data: the bytes do not hash to the pack's name.
    misnamed: bool,
    /// Read-data: blobs that fail to decompress or verify.
    bad_blobs: Vec<(ChunkId, String)>,
    /// Digest of the trailer's entries as index entries; see [`EntryDigest`].
    trailer_digest: u128,
    unindexed: bool,
    bytes_read: u64,
    blobs_verified: u64,
}

pub(super) fn audit(
    repo: &Repository,
    unindexed: &[PackId],
    read_data: ReadData,
    findings: &mut Findings,
    stats: &mut CheckStats,
    progress: &dyn Progress,
) -> Result<()> {
    let mut listed: HashMap<PackId, u64> = HashMap::new();
    repo.backend().list(PACKS_DIR, &mut |obj| {
        match crate::repo::pack_id_from_key(&obj.key) {
            Some(id) => {
                listed.insert(id, obj.size);
            }
            None => {
                findings.add(
                    Severity::Damage,
                    format!("file {}", obj.key),
                    "is not a pack: a stray file where packs live (nothing references it; remove it)",
                );
            }
        }
        Ok(())
    })?;
    for tmp in repo.backend().stray_temporaries()? {
        findings.add(
            Severity::Warning,
            format!("file {tmp}"),
            "temporary file left by an interrupted write (safe to delete)",
        );
    }
    stats.packs = listed.len() as u64;
    let seed = crate::time::now_ns() as u64;
    let mut packs: Vec<(PackId, u64)> = listed.iter().map(|(k, v)| (*k, *v)).collect();
    packs.sort();
    let digest = EntryDigest::new();
    // Twice as many packs in flight as cores: while some wait for the disk, others decode.
    let pool = crate::fs::decode_pool()?;
    let results: Vec<(PackId, PackResult)> = pool.install(|| {
        packs
            .par_iter()
            .map(|(id, size)| {
                let read = selected(read_data, id, seed);
                let r = audit_pack(repo, id, *size, read, unindexed, &digest);
                progress.add_bytes(r.bytes_read);
                (*id, r)
            })
            .collect()
    });
    let mut broken_packs: HashMap<PackId, usize> = HashMap::new();
    let mut digests: Vec<(PackId, u128)> = Vec::new();
    for (id, r) in results {
        stats.bytes_read += r.bytes_read;
        stats.blobs_verified += r.blobs_verified;
        stats.packs_read += u64::from(r.bytes_read > 0);
        if let Some(why) = r.broken {
            broken_packs.insert(id, findings.add(Severity::Damage, format!("pack {id}"), why));
            continue;
        }
        digests.push((id, r.trailer_digest));
        if r.misnamed {
            findings.add(
                Severity::Damage,
                format!("pack {id}"),
                "content does not match its name (bytes changed on disk)",
            );
        }
        for (chunk, why) in r.bad_blobs {
            let idx = findings.add(Severity::Damage, format!("pack {id} chunk {chunk}"), why);
            if repo.index().get(&chunk)?.is_some_and(|l| l.pack == id) {
                findings.damage_chunk(chunk, idx);
            }
        }
        if r.unindexed {
            findings.add(
                Severity::Warning,
                format!("pack {id}"),
                "is not in the index yet (written while another process held it); the next writer indexes it",
            );
        }
    }
    let index_digests = audit_index_entries(repo, &listed, &broken_packs, &digest, findings, stats);
    // A pack whose trailer and index entries digest alike agrees with the index. The others
    // (damage, or a chunk stored twice whose index entry names the other copy) are compared
    // entry by entry; what is left over after that names the pack without being in it.
    let mut strays: HashMap<PackId, HashSet<ChunkId>> = HashMap::new();
    for (id, trailer_digest) in digests {
        let indexed = index_digests.get(&id).copied().unwrap_or_default();
        if indexed == trailer_digest {
            continue;
        }
        let Some(compared) = compare_entries(repo, &id, listed[&id], &digest) else { continue };
        for chunk in &compared.mismatched {
            let idx = findings.add(
                Severity::Damage,
                format!("index entry for chunk {chunk}"),
                format!("disagrees with the trailer of pack {id}; `cairn repo repair index` rebuilds it"),
            );
            findings.damage_chunk(*chunk, idx);
        }
        if compared.accounted != indexed {
            strays.insert(id, compared.listed);
        }
    }
    if !strays.is_empty() {
        report_strays(repo, &strays, findings);
    }
    Ok(())
}

/// An order-independent digest of a set of index entries: the sum of a keyed hash of each
/// (chunk id, location). Pass 1 compares, per pack, the digest of its trailer's entries with
/// that of the index entries naming it, instead of looking every trailer entry up in the
/// index (one sequential scan of the index instead of a point lookup per chunk: 0.3–0.5 s of
/// the 2–3 s of CPU a structural check of corpus (c) took). The key is drawn at random for
/// every run, so no stored bytes can be made to collide.
struct EntryDigest {
    key: [u8; 32],
}

impl EntryDigest {
    fn new() -> Self {
        // The standard library's hash keys come from the operating system's random source.
        let random = |i: u64| {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.finish().to_le_bytes()
        };
        let seed = [random(0), random(1), random(2), random(3)].concat();
        EntryDigest { key: *blake3::hash(&seed).as_bytes() }
    }

    fn of(&self, chunk: &ChunkId, loc: &Location) -> u128 {
        let mut bytes = [0u8; 32 + crate::index::LOCATION_BYTES];
        bytes[..32].copy_from_slice(chunk.as_bytes());
        bytes[32..].copy_from_slice(&loc.encode());
        let h = blake3::keyed_hash(&self.key, &bytes);
        u128::from_le_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
    }

    fn of_trailer(&self, pack: &PackId, entries: &[BlobEntry]) -> u128 {
        entries.iter().fold(0u128, |sum, e| sum.wrapping_add(self.of(&e.id, &Location::new(*pack, e))))
    }
}

/// Checks every index entry against the packs that exist; returns, per pack, the digest of the
/// index entries that name it.
fn audit_index_entries(
    repo: &Repository,
    listed: &HashMap<PackId, u64>,
    broken: &HashMap<PackId, usize>,
    digest: &EntryDigest,
    findings: &mut Findings,
    stats: &mut CheckStats,
) -> HashMap<PackId, u128> {
    // Per pack the listing did not show: the finding naming it, or `None` when a second look
    // finds it (written after the listing).
    let mut missing: HashMap<PackId, Option<usize>> = HashMap::new();
    let mut digests: HashMap<PackId, u128> = HashMap::new();
    let scan = repo.index().for_each_chunk(&mut |chunk, loc| {
        stats.index_entries += 1;
        let sum = digests.entry(loc.pack).or_default();
        *sum = sum.wrapping_add(digest.of(&chunk, &loc));
        let idx = match listed.get(&loc.pack) {
            None => {
                let finding = *missing.entry(loc.pack).or_insert_with(|| missing_pack(repo, &loc.pack, findings));
                // An entry another one shadows (the chunk now lives in a pack that exists, as
                // after a repack by a prune that ran while another process held the index)
                // loses nothing: only chunks the index still places in the gone pack do.
                match finding {
                    Some(idx) if !relocated(repo, &chunk, listed) => idx,
                    _ => return Ok(()),
                }
            }
            Some(_) if broken.contains_key(&loc.pack) => broken[&loc.pack],
            Some(size) if u64::from(loc.offset) + u64::from(loc.stored_len) + FOOTER_BYTES as u64 > *size => findings
                .add(
                    Severity::Damage,
                    format!("index entry for chunk {chunk}"),
                    format!("points past the end of pack {} ({size} bytes)", loc.pack),
                ),
            Some(_) => return Ok(()),
        };
        findings.damage_chunk(chunk, idx);
        Ok(())
    });
    if let Err(e) = scan {
        findings.add(Severity::Damage, "index", format!("cannot be read: {e}; `cairn repo repair index` rebuilds it"));
    }
    digests
}

/// Records the pack `id`, which index entries name but the listing did not show, as missing
/// unless a second look finds it; returns the finding.
fn missing_pack(repo: &Repository, id: &PackId, findings: &mut Findings) -> Option<usize> {
    if matches!(repo.backend().size(&pack_key(id)), Ok(Some(_))) {
        return None;
    }
    let idx = findings.add(Severity::Damage, format!("pack {id}"), MISSING_PACK);
    findings.missing_packs.push(idx);
    Some(idx)
}

/// Whether the index, asked for `chunk`, places it in a pack that exists.
fn relocated(repo: &Repository, chunk: &ChunkId, listed: &HashMap<PackId, u64>) -> bool {
    matches!(repo.index().get(chunk), Ok(Some(loc)) if listed.contains_key(&loc.pack))
}

/// The problem of a missing pack (see `super::second_look` for when it is only a warning).
pub(super) const MISSING_PACK: &str = "is missing: the index refers to it, but it does not exist";

/// A pack's trailer compared entry by entry with the index.
struct Compared {
    /// Chunks whose index entry names the pack but disagrees with its trailer.
    mismatched: Vec<ChunkId>,
    /// Digest of the index entries that name the pack and are in its trailer (agreeing or
    /// not): when the index holds more under the pack's name, those are strays.
    accounted: u128,
    /// The chunks the trailer lists.
    listed: HashSet<ChunkId>,
}

fn compare_entries(repo: &Repository, id: &PackId, size: u64, digest: &EntryDigest) -> Option<Compared> {
    // The trailer was read a moment ago; if it cannot be read now, the next check reports the
    // pack as broken, and there is nothing to compare.
    let entries = repo.read_trailer(id, size).ok()?;
    let ids: Vec<ChunkId> = entries.iter().map(|e| e.id).collect();
    // An index that cannot be read is reported by the index scan; here only disagreements count.
    let found = repo.index().get_many(&ids).ok()?;
    let mut c = Compared { mismatched: Vec::new(), accounted: 0, listed: ids.iter().copied().collect() };
    for (e, loc) in entries.iter().zip(found) {
        let Some(loc) = loc.filter(|loc| loc.pack == *id) else { continue };
        if loc != Location::new(*id, e) {
            c.mismatched.push(e.id);
        }
        c.accounted = c.accounted.wrapping_add(digest.of(&e.id, &loc));
    }
    Some(c)
}

/// Reports index entries that name a pack whose trailer does not list their chunk (a reader
/// would decode whatever bytes lie at that place); `strays` holds those packs' listed chunks.
fn report_strays(repo: &Repository, strays: &HashMap<PackId, HashSet<ChunkId>>, findings: &mut Findings) {
    let mut found: Vec<(ChunkId, PackId)> = Vec::new();
    // The first scan already reported an index that cannot be read.
    let _ = repo.index().for_each_chunk(&mut |chunk, loc| {
        if strays.get(&loc.pack).is_some_and(|listed| !listed.contains(&chunk)) {
            found.push((chunk, loc.pack));
        }
        Ok(())
    });
    for (chunk, pack) in found {
        let idx = findings.add(
            Severity::Damage,
            format!("index entry for chunk {chunk}"),
            format!("names pack {pack}, whose trailer does not list the chunk; `cairn repo repair index` rebuilds it"),
        );
        findings.damage_chunk(chunk, idx);
    }
}

/// Whether read-data reads this pack.
fn selected(read_data: ReadData, id: &PackId, seed: u64) -> bool {
    let n = u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"));
    match read_data {
        ReadData::None => false,
        ReadData::All => true,
        ReadData::Slice { k, of } => n % u64::from(of) == u64::from(k - 1),
        ReadData::Percent(p) => (mix(n ^ seed) as f64) < p / 100.0 * u64::MAX as f64,
    }
}

/// splitmix64 finaliser: a well-spread hash for the random subset.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn audit_pack(
    repo: &Repository,
    id: &PackId,
    size: u64,
    read: bool,
    unindexed: &[PackId],
    digest: &EntryDigest,
) -> PackResult {
    let mut r = PackResult::default();
    let entries = if read {
        match read_whole_pack(repo, id, size, &mut r) {
            Some(e) => e,
            None => return r,
        }
    } else {
        match repo.read_trailer(id, size) {
            Ok(e) => e,
            Err(e) => {
                r.broken = Some(pack_problem(e));
                return r;
            }
        }
    };
    r.trailer_digest = digest.of_trailer(id, &entries);
    r.unindexed = matches!(repo.index().pack_info(id), Ok(None)) || unindexed.contains(id);
    r
}

/// Bytes of a pack read at once by `--read-data`.
const READ_STEP_BYTES: u64 = 4 << 20;

/// Reads a pack whole, front to back in steps of [`READ_STEP_BYTES`], hashing it (its name is
/// the hash) and verifying every blob as it goes; `None` when its trailer cannot be parsed.
/// Reading in steps keeps one step per pack in memory, so more packs can be read at once
/// (overlapping one's disk reads with another's decoding) within the memory bound.
fn read_whole_pack(repo: &Repository, id: &PackId, size: u64, r: &mut PackResult) -> Option<Vec<BlobEntry>> {
    let what = format!("pack {id}");
    let entries = match repo.read_trailer(id, size) {
        Ok(e) => e,
        Err(e) => {
            r.broken = Some(pack_problem(e));
            return None;
        }
    };
    let mut by_offset: Vec<&BlobEntry> = entries.iter().collect();
    by_offset.sort_by_key(|e| e.offset);
    let key = pack_key(id);
    let mut hasher = blake3::Hasher::new();
    let mut bytes = Vec::new();
    let (mut start, mut next) = (0u64, 0usize);
    while start < size {
        // Extend the step over whole blobs; the last step runs to the end of the pack.
        let mut end = (start + READ_STEP_BYTES).min(size);
        while let Some(e) = by_offset.get(next) {
            let blob_end = u64::from(e.offset) + u64::from(e.stored_len);
            if u64::from(e.offset) >= end {
                break;
            }
            end = end.max(blob_end);
            next += 1;
        }
        if let Err(e) = repo.backend().get_range_into(&key, start, end - start, &mut bytes) {
            r.broken = Some(format!("cannot be read: {e}"));
            return None;
        }
        let magic = if repo.is_encrypted() { SEALED_PACK_HEADER } else { PACK_HEADER };
        if start == 0 && !bytes.starts_with(&magic) {
            r.broken = Some("is corrupt: pack header magic missing".to_string());
            return None;
        }
        hasher.update(&bytes);
        r.bytes_read += bytes.len() as u64;
        let inside = by_offset.iter().filter(|e| u64::from(e.offset) >= start && u64::from(e.offset) < end);
        let inside: Vec<&&BlobEntry> = inside.collect();
        r.bad_blobs.extend(
            inside
                .par_iter()
                .filter_map(|e| {
                    let from = (u64::from(e.offset) - start) as usize;
                    let stored = &bytes[from..from + e.stored_len as usize];
                    verify_blob(e, stored, &what, repo.sealer()).err().map(|err| (e.id, blob_problem(err)))
                })
                .collect::<Vec<_>>(),
        );
        start = end;
    }
    r.misnamed = hasher.finalize().as_bytes() != id.as_bytes();
    r.blobs_verified = entries.len() as u64;
    Some(entries)
}

/// What is wrong with a pack, for a finding that already names it: `is corrupt: detail` for
/// damage, the whole message for anything else (an I/O or service failure).
fn pack_problem(e: Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => format!("is corrupt: {detail}"),
        other => other.to_string(),
    }
}

/// What is wrong with a blob, for a finding that already names it: `hash mismatch: …`.
fn blob_problem(e: Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    }
}
