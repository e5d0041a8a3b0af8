//! Restoring one batch of files: each file is written under a temporary name in its directory,
//! from chunks that its existing version already holds (see [`super::delta`]) and from the
//! repository, pack by pack (every pack read once, sequentially, nearby blobs coalesced into
//! one range read, packs in parallel). Only a file whose every chunk was written and verified
//! gets its metadata and is renamed into place; a failed one is removed and reported.
//!
//! Zero runs (the holes of a sparse file) are never fetched and never written: the temporary
//! file is first set to its full length, so every range nothing is written to stays a hole.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::links::{self, LinkJob};
use super::{delta, Mode, Restorer};
use crate::error::Result;
use crate::fs::{set_fd_meta, DirFd, Occupant};
use crate::id::{ChunkId, PackId};
use crate::index::Location;
use crate::pack::decode_blob_into;
use crate::repo::pack_key;
use crate::snapshot::Node;

/// Blobs closer than this in a pack are fetched in one read.
const COALESCE_GAP_BYTES: u64 = 256 << 10;
/// Largest single range read: large enough to be sequential, small enough that every thread
/// holding one stays cheap (32 MiB reads took a restore of 5.5 M chunks to 274 MiB).
const MAX_READ_BYTES: u64 = 8 << 20;

/// A file to restore.
pub(super) struct FileJob {
    /// Its directory (`None` when nothing is written: `--verify-only`).
    pub dir: Option<Arc<DirFd>>,
    /// Where it goes, for messages.
    pub path: String,
    pub node: Node,
    /// What the restore replaces at its name, if anything.
    pub replace: Option<Occupant>,
}

/// A directory whose entries are all restored once this batch is.
pub(super) struct DoneDir {
    pub dir: Arc<DirFd>,
    pub node: Node,
    pub path: String,
}

#[derive(Default)]
pub(super) struct Batch {
    pub jobs: Vec<FileJob>,
    pub dirs_done: Vec<DoneDir>,
    /// Later members of hard-link groups, linked once the files are in place.
    pub links: Vec<LinkJob>,
    /// Distinct directories the jobs hold open.
    pub dirs_open: usize,
}

/// A prepared file: its temporary file (none when nothing is written) and the chunks still to
/// fetch, with their offsets.
type Prepared = (Option<Staged>, Vec<(ChunkId, u64)>);

/// A file being written: its temporary name and handle, or (`--in-place`) the existing file
/// under its real name.
struct Staged {
    name: Vec<u8>,
    file: File,
    in_place: bool,
}

impl Staged {
    /// Gives up on the file: a temporary one is removed; one rewritten in place stays.
    fn discard(&self, dir: &DirFd) {
        if !self.in_place {
            let _ = dir.unlink(&self.name);
        }
    }
}

/// Restores a batch; an error here is one that stops the whole restore (the index failed).
pub(super) fn run(r: &Restorer<'_>, batch: Batch) -> Result<()> {
    let Batch { jobs, dirs_done, links, .. } = batch;
    let failures: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let fail = |job: usize, why: String| {
        failures.lock().unwrap_or_else(|p| p.into_inner()).entry(job).or_insert(why);
    };
    // Create every temporary file, reuse what the existing files already hold, and note
    // where each missing chunk goes.
    let prepared: Vec<Prepared> = r.io.install(|| {
        jobs.par_iter()
            .enumerate()
            .map(|(i, job)| {
                prepare(r, job).unwrap_or_else(|why| {
                    fail(i, why);
                    (None, Vec::new())
                })
            })
            .collect()
    });
    let mut targets: HashMap<ChunkId, Vec<(usize, u64)>> = HashMap::new();
    let mut staged = Vec::with_capacity(prepared.len());
    for (i, (file, missing)) in prepared.into_iter().enumerate() {
        for (id, offset) in missing {
            targets.entry(id).or_default().push((i, offset));
        }
        staged.push(file);
    }
    let by_pack = group_by_pack(r, &targets, &fail)?;
    let prefetch = |i: usize| {
        if let Some((pack, blobs)) = by_pack.get(i) {
            prefetch_pack(r, pack, blobs);
        }
    };
    prefetch(0);
    (0..by_pack.len()).into_par_iter().for_each(|i| {
        if r.cancelled() {
            return;
        }
        // The next pack's reads start while this one decodes.
        prefetch(i + 1);
        let (pack, blobs) = &by_pack[i];
        restore_from_pack(r, *pack, blobs, &staged, &targets, &fail);
    });
    if r.cancelled() {
        for i in 0..jobs.len() {
            fail(i, "interrupted".into());
        }
    }
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    r.io.install(|| {
        jobs.par_iter().zip(staged.into_par_iter()).enumerate().for_each(|(i, (job, staged))| {
            finish(r, job, staged, failures.get(&i));
        })
    });
    if !r.cancelled() {
        // Links change their directories' times: before those are set.
        links::place_all(r, &links);
        finish_dirs(r, &dirs_done);
    }
    Ok(())
}

/// Creates the temporary file and fills it from the existing version where that matches;
/// returns the chunks still missing with their offsets.
fn prepare(r: &Restorer<'_>, job: &FileJob) -> std::result::Result<Prepared, String> {
    let chunks = r.repo.file_chunks(&job.node).map_err(|e| format!("chunk list lost: {e}"))?;
    let declared: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
    if declared != job.node.size {
        return Err(format!(
            "damaged snapshot: the file is recorded as {} bytes but its chunks hold {declared}",
            job.node.size
        ));
    }
    // Stored chunks with their offsets, and the zero runs (holes) between them.
    let (mut placed, mut holes) = (Vec::with_capacity(chunks.len()), Vec::new());
    let mut offset = 0u64;
    for c in &chunks {
        if c.is_zero_run() {
            holes.push((offset, u64::from(c.len)));
        } else {
            placed.push((c.id, offset, c.len));
        }
        offset += u64::from(c.len);
    }
    let Some(dir) = job.dir.as_ref().filter(|_| r.opts.mode == Mode::Write) else {
        return Ok((None, placed.into_iter().map(|(id, o, _)| (id, o)).collect()));
    };
    if r.opts.in_place && matches!(job.replace, Some(Occupant::File { .. })) {
        if let Some(file) = open_in_place(dir, &job.node.name) {
            return rewrite_in_place(r, job, file, &placed, &holes);
        }
    }
    let (name, file) = dir.create_temp().map_err(|e| format!("cannot create: {e}"))?;
    let staged = Staged { name, file, in_place: false };
    let cleanup = |why: String| {
        let _ = dir.unlink(&staged.name);
        why
    };
    staged.file.set_len(job.node.size).map_err(|e| cleanup(format!("cannot write: {e}")))?;
    let missing = match job.replace {
        Some(Occupant::File { .. }) => match dir.open_read(&job.node.name) {
            Ok(old) => {
                let reused = delta::reuse(&old, Some(&staged.file), &placed, r.repo.sealer())
                    .map_err(|e| cleanup(format!("cannot write: {e}")))?;
                r.count(|rep| rep.bytes_reused += reused.bytes);
                r.progress.add_bytes(reused.bytes);
                reused.missing
            }
            Err(_) => placed.into_iter().map(|(id, o, _)| (id, o)).collect(),
        },
        _ => placed.into_iter().map(|(id, o, _)| (id, o)).collect(),
    };
    Ok((Some(staged), missing))
}

/// The existing file, when `--in-place` may rewrite it: a regular file this process can write,
/// with no other hard link (rewriting it would change the other names too; such a file is
/// restored under a temporary name and renamed instead).
fn open_in_place(dir: &DirFd, name: &[u8]) -> Option<File> {
    let file = dir.open_read_write(name).ok()?;
    (file.metadata().ok()?.nlink() == 1).then_some(file)
}

/// Rewrites an existing file where it lies: chunks that still match are left alone, the size
/// is set, holes are cleared, and the missing chunks are returned to be written at their
/// offsets.
fn rewrite_in_place(
    r: &Restorer<'_>,
    job: &FileJob,
    file: File,
    placed: &[(ChunkId, u64, u32)],
    holes: &[(u64, u64)],
) -> std::result::Result<Prepared, String> {
    let failed = |e: io::Error| format!("cannot rewrite in place: {e}");
    let reused = delta::reuse(&file, None, placed, r.repo.sealer()).map_err(failed)?;
    file.set_len(job.node.size).map_err(failed)?;
    delta::clear(&file, holes).map_err(failed)?;
    r.count(|rep| rep.bytes_reused += reused.bytes);
    r.progress.add_bytes(reused.bytes);
    Ok((Some(Staged { name: job.node.name.clone(), file, in_place: true }), reused.missing))
}

type PackBlobs = Vec<(PackId, Vec<(ChunkId, Location)>)>;

/// Looks up every missing chunk and groups them by pack, in offset order.
fn group_by_pack(
    r: &Restorer<'_>,
    targets: &HashMap<ChunkId, Vec<(usize, u64)>>,
    fail: &(dyn Fn(usize, String) + Sync),
) -> Result<PackBlobs> {
    let ids: Vec<ChunkId> = targets.keys().copied().collect();
    let locations = r.repo.index().get_many(&ids)?;
    let mut by_pack: HashMap<PackId, Vec<(ChunkId, Location)>> = HashMap::new();
    for (id, loc) in ids.iter().zip(locations) {
        match loc {
            Some(loc) => by_pack.entry(loc.pack).or_default().push((*id, loc)),
            None => {
                for (job, _) in &targets[id] {
                    fail(*job, format!("chunk {id} is in no pack (run `cairn repo check`)"));
                }
            }
        }
    }
    Ok(by_pack
        .into_iter()
        .map(|(pack, mut blobs)| {
            blobs.sort_by_key(|(_, l)| l.offset);
            (pack, blobs)
        })
        .collect())
}

/// Asks the backend to start reading the part of `pack` that holds `blobs` (sorted by
/// offset). Restoring corpus (c) of `docs/performance.md` cold: 15.7–16.6 s without, 14.3–17.4
/// s (median 14.9) with.
fn prefetch_pack(r: &Restorer<'_>, pack: &PackId, blobs: &[(ChunkId, Location)]) {
    let start = blobs.first().map_or(0, |(_, l)| u64::from(l.offset));
    let end = blobs.iter().map(|(_, l)| u64::from(l.offset) + u64::from(l.stored_len)).max().unwrap_or(0);
    r.repo.backend().prefetch(&pack_key(pack), start, end.saturating_sub(start));
}

/// Reads the needed blobs of one pack (sorted by offset) in order, verifies each, and writes
/// it wherever it belongs.
fn restore_from_pack(
    r: &Restorer<'_>,
    pack: PackId,
    blobs: &[(ChunkId, Location)],
    staged: &[Option<Staged>],
    targets: &HashMap<ChunkId, Vec<(usize, u64)>>,
    fail: &(dyn Fn(usize, String) + Sync),
) {
    let key = pack_key(&pack);
    let what = format!("pack {pack}");
    let (mut bytes, mut raw) = (Vec::new(), Vec::new());
    for group in coalesce(blobs) {
        let start = u64::from(group[0].1.offset);
        let end = group.iter().map(|(_, l)| u64::from(l.offset) + u64::from(l.stored_len)).max().unwrap_or(start);
        if let Err(e) = r.repo.backend().get_range_into(&key, start, end - start, &mut bytes) {
            for (id, _) in group {
                for (job, _) in &targets[id] {
                    fail(*job, format!("cannot read {what}: {e}"));
                }
            }
            continue;
        }
        for (id, loc) in group {
            let from = (u64::from(loc.offset) - start) as usize;
            let Some(stored) = bytes.get(from..from + loc.stored_len as usize) else {
                for (job, _) in &targets[id] {
                    fail(*job, format!("{what} is shorter than its index says"));
                }
                continue;
            };
            if let Err(e) = decode_blob_into(&loc.entry(*id), stored, &what, &mut raw, r.repo.sealer()) {
                for (job, _) in &targets[id] {
                    fail(*job, e.to_string());
                }
                continue;
            }
            r.count(|rep| rep.bytes_fetched += raw.len() as u64);
            for (job, offset) in &targets[id] {
                let written = match &staged[*job] {
                    Some(s) => s.file.write_all_at(&raw, *offset),
                    None => Ok(()),
                };
                match written {
                    Ok(()) => r.progress.add_bytes(raw.len() as u64),
                    Err(e) => fail(*job, format!("cannot write: {e}")),
                }
            }
        }
    }
}

/// Puts a completed file in place (metadata first, then the rename), or removes a failed one.
fn finish(r: &Restorer<'_>, job: &FileJob, staged: Option<Staged>, failure: Option<&String>) {
    let dir = job.dir.as_ref().filter(|_| r.opts.mode == Mode::Write);
    let in_place = staged.as_ref().is_some_and(|s| s.in_place);
    if let Some(why) = failure {
        if let (Some(dir), Some(s)) = (dir, &staged) {
            s.discard(dir);
        }
        if why != "interrupted" {
            let why = match in_place {
                true => format!("{why}; it was being rewritten in place (--in-place) and now mixes old and new data: run the restore again"),
                false => why.clone(),
            };
            r.fail(job.path.clone(), why);
        }
        return;
    }
    let n = &job.node;
    let placed = match (dir, staged) {
        (Some(dir), Some(s)) => place_file(r, dir, job, s),
        _ => Ok(()),
    };
    match placed {
        Ok(()) => r.count(|rep| {
            if r.opts.mode == Mode::VerifyOnly {
                rep.verified += 1;
            }
            rep.files += 1;
            rep.bytes += n.size;
            rep.replaced += u64::from(job.replace.is_some());
            rep.in_place += u64::from(in_place);
        }),
        Err(e) => r.fail(job.path.clone(), e),
    }
    r.progress.add_files(1);
}

fn place_file(r: &Restorer<'_>, dir: &DirFd, job: &FileJob, s: Staged) -> std::result::Result<(), String> {
    let n = &job.node;
    let Staged { name, file, in_place } = s;
    let result = (|| -> io::Result<()> {
        set_fd_meta(&file, r.owner_of(n), r.mode_bits(n.mode), n.mtime_ns)?;
        r.set_xattrs_fd(&file, n, &job.path);
        if in_place {
            return Ok(());
        }
        drop(file);
        if let Some(occ) = job.replace {
            r.make_way(dir, &n.name, occ, &job.path)?;
        }
        dir.rename(&name, &n.name)
    })();
    result.map_err(|e| {
        if !in_place {
            let _ = dir.unlink(&name);
        }
        format!("cannot put in place: {e}")
    })
}

/// Creates a symlink (replacing `replace` if given): under a temporary name and renamed over
/// what is there, so the name never disappears for a non-directory.
pub(super) fn place_symlink(
    r: &Restorer<'_>,
    dir: &DirFd,
    node: &Node,
    target: &[u8],
    replace: Option<Occupant>,
    path: &str,
) -> io::Result<()> {
    let tmp = dir.temp_symlink(target)?;
    place_temp(r, dir, &tmp, node, None, replace, path)
}

/// Puts a non-directory entry made under the temporary name `tmp` in place: its metadata
/// (`mode` where the kind has one) and xattrs, what `replace` names moved aside, then renamed
/// over `node`'s name. On failure the temporary entry is removed.
pub(super) fn place_temp(
    r: &Restorer<'_>,
    dir: &DirFd,
    tmp: &[u8],
    node: &Node,
    mode: Option<u32>,
    replace: Option<Occupant>,
    path: &str,
) -> io::Result<()> {
    let placed = dir.set_meta_at(tmp, r.owner_of(node), mode, node.mtime_ns).and_then(|()| {
        r.set_xattrs_at(dir, tmp, node, path);
        if let Some(occ) = replace {
            r.make_way(dir, &node.name, occ, path)?;
        }
        dir.rename(tmp, &node.name)
    });
    if placed.is_err() {
        let _ = dir.unlink(tmp);
    }
    placed
}

/// Applies the metadata of directories whose contents are complete (deepest first).
fn finish_dirs(r: &Restorer<'_>, dirs: &[DoneDir]) {
    for d in dirs {
        let n = &d.node;
        match set_fd_meta(d.dir.as_ref(), r.owner_of(n), r.mode_bits(n.mode), n.mtime_ns) {
            Ok(()) => r.set_xattrs_fd(d.dir.as_ref(), n, &d.path),
            Err(e) => r.fail(d.path.clone(), format!("cannot set metadata: {e}")),
        }
    }
}

/// Splits offset-sorted blobs into runs that are read with one request each.
fn coalesce(blobs: &[(ChunkId, Location)]) -> Vec<&[(ChunkId, Location)]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=blobs.len() {
        let split = i == blobs.len() || {
            let first = u64::from(blobs[start].1.offset);
            let prev_end = u64::from(blobs[i - 1].1.offset) + u64::from(blobs[i - 1].1.stored_len);
            let next = &blobs[i].1;
            let next_end = u64::from(next.offset) + u64::from(next.stored_len);
            u64::from(next.offset) > prev_end + COALESCE_GAP_BYTES || next_end - first > MAX_READ_BYTES
        };
        if split {
            groups.push(&blobs[start..i]);
            start = i;
        }
    }
    groups
}
