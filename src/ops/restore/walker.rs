//! The restore's tree walk: an explicit stack of directories (no recursion, so depth is bounded
//! only by the filesystem), each held open by handle. It decides for every entry what the
//! overwrite policy allows, creates directories and symlinks at once, and hands files to the
//! batch runner in bounded batches.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use super::batch::{self, Batch, DoneDir, FileJob};
use super::links::Leaders;
use super::special::{same_special, special_of};
use super::{Mode, Overwrite, Planned, RestoreOptions, Restorer};
use crate::error::{Error, Result};
use crate::fs::{DirFd, Occupant, TEMP_PREFIX};
use crate::ops::select::Includes;
use crate::snapshot::{Node, NodeContent};

/// Chunk references planned at once; bounds the plan's memory whatever the snapshot's size.
const BATCH_CHUNK_REFS: usize = 32 * 1024;
/// Files created per batch.
pub(super) const BATCH_FILES: usize = 4096;
/// Directories a batch keeps open (its files' parents and the directories it finishes):
/// bounds open descriptors with up to three batches alive at once.
const BATCH_DIRS: usize = 1024;

/// The target directory, opened once.
pub(super) struct Target {
    root: Option<Arc<DirFd>>,
    path: PathBuf,
    /// Created by this restore, or existing but empty: nothing in it can conflict.
    empty: bool,
}

impl Target {
    /// Nothing in the target can conflict (new or empty).
    pub(super) fn is_empty(&self) -> bool {
        self.empty
    }

    /// Opens (creating it for a real restore) the target. A non-empty target needs a policy.
    pub(super) fn prepare(opts: &RestoreOptions) -> Result<Target> {
        let path = opts.target.clone();
        if opts.mode == Mode::VerifyOnly {
            return Ok(Target { root: None, path, empty: true });
        }
        let exists = path.exists();
        if !exists && opts.mode == Mode::DryRun {
            return Ok(Target { root: None, path, empty: true });
        }
        if !exists {
            std::fs::create_dir_all(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        }
        crate::fs::raise_open_file_limit();
        let root = DirFd::open_path(&path).map_err(|e| Error::io("cannot open directory", &path, e))?;
        let empty = root.names().map_err(|e| Error::io("cannot list", &path, e))?.is_empty();
        if !empty && opts.overwrite.is_none() {
            return Err(Error::InvalidArgument(format!(
                "{} is not empty: choose what happens to what is there with --overwrite \
                 always|if-changed|if-newer|never (and --delete to remove what the snapshot lacks)",
                path.display()
            )));
        }
        Ok(Target { root: Some(Arc::new(root)), path, empty })
    }
}

/// Walks `origin` into the target while a second thread restores the queued batches; returns
/// the include patterns that matched nothing.
pub(super) fn run(
    r: &Restorer<'_>,
    target: Target,
    origin: &Node,
    includes: Includes,
    excludes: Includes,
) -> Result<Vec<String>> {
    let (tx, rx) = sync_channel::<Batch>(1);
    std::thread::scope(|scope| {
        let runner = scope.spawn(|| {
            let mut first_error = None;
            for b in rx {
                if first_error.is_none() {
                    first_error = batch::run(r, b).err();
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        let mut w = Walker {
            r,
            includes,
            excludes,
            base: target.path.clone(),
            stack: Vec::new(),
            batch: Batch::default(),
            batch_refs: 0,
            leaders: Leaders::default(),
            tx,
        };
        let walked = w.walk(origin, &target);
        w.queue_batch();
        let unmatched = w.includes.unmatched();
        drop(w); // closes the queue: the runner finishes what is queued and returns
        let ran = runner.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        walked.and(ran).map(|()| unmatched)
    })
}

/// Whether a directory exists in the target yet.
enum DirState {
    Open(Arc<DirFd>),
    /// Not there (and, in a dry run, not going to be made).
    Absent,
    /// Not looked at: a directory that is not itself restored, only walked through.
    Unresolved,
    /// Could not be made (a kept conflict or an error, reported once): nothing goes below.
    Blocked,
}

pub(super) struct Frame {
    /// Entries still to visit, last first.
    pending: Vec<Node>,
    dir: DirState,
    name: Vec<u8>,
    rel: String,
    /// Everything below is restored (the directory matched, or there are no patterns).
    included: bool,
    /// Existed before this restore: its names may be occupied.
    preexisting: bool,
    /// Metadata to apply once everything in it is restored.
    meta: Option<Node>,
}

pub(super) struct Walker<'r, 'a> {
    pub(super) r: &'r Restorer<'a>,
    includes: Includes,
    excludes: Includes,
    base: PathBuf,
    pub(super) stack: Vec<Frame>,
    pub(super) batch: Batch,
    batch_refs: usize,
    /// The first restored member of each hard-link group seen.
    pub(super) leaders: Leaders,
    tx: SyncSender<Batch>,
}

/// What to do with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Create,
    /// Replace what is there (reusing a file's matching chunks).
    Replace(Occupant),
    /// Already equal to the snapshot's entry.
    Unchanged,
    /// Different, but the policy keeps it.
    Keep(Occupant),
}

impl Walker<'_, '_> {
    pub(super) fn mode(&self) -> Mode {
        self.r.opts.mode
    }

    pub(super) fn policy(&self) -> Overwrite {
        self.r.opts.overwrite.unwrap_or(Overwrite::Always)
    }

    pub(super) fn display(&self, rel: &str) -> String {
        if self.mode() == Mode::VerifyOnly {
            return rel.to_string();
        }
        self.base.join(rel).display().to_string()
    }

    fn walk(&mut self, origin: &Node, target: &Target) -> Result<()> {
        let root_dir = match &target.root {
            Some(fd) => DirState::Open(fd.clone()),
            None => DirState::Absent,
        };
        let included = self.includes.all();
        let (pending, meta) = match origin.content {
            NodeContent::Dir { .. } => {
                // The snapshot of one path maps onto the target: the target takes that
                // directory's metadata, unless only part is restored or the policy keeps
                // what is there.
                let maps = origin.name != b"/"
                    && included
                    && self.excludes.is_empty()
                    && (target.empty || self.r.opts.overwrite.is_some_and(|p| p != Overwrite::Never));
                let tree = crate::ops::select::children(self.r.repo, origin)?;
                (tree.nodes, maps.then(|| origin.clone()))
            }
            _ => (vec![origin.clone()], None),
        };
        self.push(Frame {
            pending,
            dir: root_dir,
            name: Vec::new(),
            rel: String::new(),
            included,
            preexisting: !target.empty,
            meta,
        })?;
        while let Some(top) = self.stack.last_mut() {
            if self.r.cancelled() {
                break;
            }
            match top.pending.pop() {
                Some(node) => self.visit(node)?,
                None => self.pop(),
            }
        }
        Ok(())
    }

    /// Enters a directory: tidies what an interrupted restore left, applies `--delete`.
    fn push(&mut self, mut frame: Frame) -> Result<()> {
        if let (DirState::Open(dir), true, false) = (&frame.dir, frame.preexisting, self.mode() == Mode::VerifyOnly) {
            let names = dir.names().map_err(|e| Error::io("cannot list", Path::new(&self.display(&frame.rel)), e))?;
            for name in names {
                if frame.pending.binary_search_by(|n| n.name.cmp(&name)).is_ok() {
                    continue;
                }
                let rel = join(&frame.rel, &name);
                let leftover = name.starts_with(TEMP_PREFIX.as_bytes());
                let wanted_gone = self.r.opts.delete && frame.included && !self.excluded(&rel, &name);
                if leftover || wanted_gone {
                    self.delete(dir, &name, &rel, leftover);
                }
            }
        }
        frame.pending.reverse();
        self.stack.push(frame);
        Ok(())
    }

    fn delete(&self, dir: &DirFd, name: &[u8], rel: &str, leftover: bool) {
        if !leftover {
            let kind = dir.occupant(name).ok().flatten().map_or("entry", |o| o.kind_name());
            self.plan("delete", kind, rel, 0);
            self.r.count(|r| r.deleted += 1);
        }
        if self.mode() == Mode::Write {
            let removed = if leftover { dir.remove_all(name) } else { self.r.discard(dir, name, &self.display(rel)) };
            if let Err(e) = removed {
                self.r.fail(self.display(rel), format!("cannot delete: {e}"));
            }
        }
    }

    /// Leaves a directory: its metadata is applied once the batch holding its files is done.
    fn pop(&mut self) {
        let Some(frame) = self.stack.pop() else { return };
        if let (Some(node), DirState::Open(dir), Mode::Write) = (frame.meta, frame.dir, self.mode()) {
            self.batch.dirs_done.push(DoneDir { dir, node, path: self.display(&frame.rel) });
            if self.batch.dirs_done.len() >= BATCH_DIRS {
                self.queue_batch();
            }
        }
    }

    fn excluded(&self, rel: &str, name: &[u8]) -> bool {
        !self.excludes.is_empty() && self.excludes.matches(rel, &String::from_utf8_lossy(name))
    }

    fn visit(&mut self, node: Node) -> Result<()> {
        let Some(parent) = self.stack.last() else { return Ok(()) };
        let rel = join(&parent.rel, &node.name);
        if self.excluded(&rel, &node.name) {
            return Ok(());
        }
        let included = parent.included || self.includes.matches(&rel, &node.name_lossy());
        match &node.content {
            NodeContent::Dir { .. } => self.dir(node, rel, included),
            NodeContent::Symlink { target } if included => {
                let target = target.clone();
                self.symlink(&node, &target, &rel);
                Ok(())
            }
            NodeContent::File { .. } | NodeContent::LargeFile { .. } if included => {
                if !self.hard_link(&node, &rel) {
                    self.file(node, rel);
                }
                Ok(())
            }
            content if included => {
                if let Some((kind, rdev)) = special_of(content) {
                    self.special(&node, &rel, kind, rdev);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn dir(&mut self, node: Node, rel: String, included: bool) -> Result<()> {
        let children = match crate::ops::select::children(self.r.repo, &node) {
            Ok(tree) => tree.nodes,
            Err(e) => {
                self.r.fail(self.display(&rel), format!("directory contents lost: {e}"));
                return Ok(());
            }
        };
        let (dir, preexisting) = if included {
            match self.enter_dir(&node.name, &rel, true) {
                Some(opened) => opened,
                None => return Ok(()),
            }
        } else {
            (DirState::Unresolved, false)
        };
        let meta = (included && matches!(dir, DirState::Open(_))).then(|| node.clone());
        self.push(Frame { pending: children, dir, name: node.name, rel, included, preexisting, meta })
    }

    /// Opens or creates directory `name` in the top frame's directory; `None` when the
    /// policy keeps a non-directory there or it failed (reported).
    fn enter_dir(&mut self, name: &[u8], rel: &str, counted: bool) -> Option<(DirState, bool)> {
        let parent = self.parent_dir(self.stack.len() - 1)?;
        let Some(parent) = parent else {
            if counted {
                self.plan("create", "dir", rel, 0);
                self.r.count(|r| r.dirs += 1);
            }
            return Some((DirState::Absent, false));
        };
        let occupant = match self.occupant(&parent, name, rel) {
            Ok(o) => o,
            Err(()) => return None,
        };
        let opened = match occupant {
            Some(Occupant::Dir) => parent.open_dir(name).map(|d| (d, true)),
            None if self.mode() == Mode::DryRun => {
                self.plan("create", "dir", rel, 0);
                self.r.count(|r| r.dirs += 1);
                return Some((DirState::Absent, false));
            }
            None => parent.make_dir(name).map(|d| (d, false)),
            Some(other) => {
                if self.policy() == Overwrite::Never {
                    self.keep(rel, "dir", other);
                    return None;
                }
                self.plan("replace", "dir", rel, 0);
                self.r.count(|r| r.replaced += 1);
                if self.mode() == Mode::DryRun {
                    return Some((DirState::Absent, false));
                }
                let path = self.display(rel);
                let cleared = self.r.make_way(&parent, name, other, &path).and_then(|()| match other {
                    Occupant::Dir => Ok(()),
                    _ => parent.unlink(name),
                });
                cleared.and_then(|()| parent.make_dir(name)).map(|d| (d, false))
            }
        };
        match opened {
            Ok((dir, existed)) => {
                if counted {
                    if !existed {
                        self.plan("create", "dir", rel, 0);
                    }
                    self.r.count(|r| r.dirs += 1);
                }
                Some((DirState::Open(Arc::new(dir)), existed))
            }
            Err(e) => {
                self.r.fail(self.display(rel), format!("cannot create directory: {e}"));
                None
            }
        }
    }

    /// The open directory of frame `i`, creating the directories above an included entry
    /// that were only walked through. `Some(None)`: it does not exist (dry run, verify);
    /// `None`: it cannot be made (reported when that was found).
    pub(super) fn parent_dir(&mut self, i: usize) -> Option<Option<Arc<DirFd>>> {
        let first_unresolved = (0..=i).rev().take_while(|&k| matches!(self.stack[k].dir, DirState::Unresolved)).last();
        if let Some(start) = first_unresolved {
            for k in start..=i {
                match self.resolve(k) {
                    Some((state, preexisting)) => {
                        self.stack[k].dir = state;
                        self.stack[k].preexisting = preexisting;
                    }
                    None => {
                        for f in &mut self.stack[k..=i] {
                            f.dir = DirState::Blocked;
                        }
                        return None;
                    }
                }
            }
        }
        match &self.stack[i].dir {
            DirState::Open(d) => Some(Some(d.clone())),
            DirState::Blocked => None,
            _ => Some(None),
        }
    }

    /// Opens or creates the directory of frame `k` (walked through, not itself restored).
    fn resolve(&mut self, k: usize) -> Option<(DirState, bool)> {
        let parent = match &self.stack[k - 1].dir {
            DirState::Open(d) => d.clone(),
            DirState::Blocked => return None,
            _ => return Some((DirState::Absent, false)),
        };
        let (name, rel) = (self.stack[k].name.clone(), self.stack[k].rel.clone());
        let occupant = match self.stack[k - 1].preexisting {
            true => parent.occupant(&name).ok().flatten(),
            false => None,
        };
        let result = match occupant {
            Some(Occupant::Dir) => parent.open_dir(&name).map(|d| (d, true)),
            _ if self.mode() != Mode::Write => return Some((DirState::Absent, false)),
            None => parent.make_dir(&name).map(|d| (d, false)),
            Some(other) if self.policy() != Overwrite::Never => {
                let path = self.display(&rel);
                let cleared = self.r.make_way(&parent, &name, other, &path).and_then(|()| match other {
                    Occupant::Dir => Ok(()),
                    _ => parent.unlink(&name),
                });
                cleared.and_then(|()| parent.make_dir(&name)).map(|d| (d, false))
            }
            Some(other) => {
                self.keep(&rel, "dir", other);
                return None;
            }
        };
        match result {
            Ok((d, existed)) => Some((DirState::Open(Arc::new(d)), existed)),
            Err(e) => {
                self.r.fail(self.display(&rel), format!("cannot create directory: {e}"));
                None
            }
        }
    }

    /// What occupies `name` in a directory that existed before (nothing in one we made).
    pub(super) fn occupant(&self, dir: &DirFd, name: &[u8], rel: &str) -> std::result::Result<Option<Occupant>, ()> {
        if !self.stack.last().is_some_and(|f| f.preexisting) {
            return Ok(None);
        }
        dir.occupant(name).map_err(|e| self.r.fail(self.display(rel), format!("cannot inspect: {e}")))
    }

    pub(super) fn decide(
        &self,
        node: &Node,
        occupant: Option<Occupant>,
        same_symlink: impl FnOnce() -> bool,
    ) -> Decision {
        let Some(occ) = occupant else { return Decision::Create };
        let policy = self.policy();
        if policy == Overwrite::Never {
            return Decision::Keep(occ);
        }
        match (occ, &node.content) {
            (Occupant::File { size, mtime_ns }, NodeContent::File { .. } | NodeContent::LargeFile { .. }) => {
                match policy {
                    Overwrite::IfChanged if size == node.size && mtime_ns == node.mtime_ns => Decision::Unchanged,
                    Overwrite::IfNewer if mtime_ns >= node.mtime_ns => Decision::Keep(occ),
                    _ => Decision::Replace(occ),
                }
            }
            (Occupant::Symlink, NodeContent::Symlink { .. }) if policy != Overwrite::Always && same_symlink() => {
                Decision::Unchanged
            }
            (Occupant::Special { .. }, _) if policy != Overwrite::Always && same_special(occ, node) => {
                Decision::Unchanged
            }
            // A change of type is a change whatever the times say.
            _ => Decision::Replace(occ),
        }
    }

    pub(super) fn keep(&self, rel: &str, kind: &'static str, occ: Occupant) {
        let _ = occ;
        self.plan("keep", kind, rel, 0);
        self.r.count(|r| r.kept += 1);
    }

    pub(super) fn plan(&self, action: &'static str, kind: &'static str, rel: &str, bytes: u64) {
        if self.mode() == Mode::DryRun {
            let path = self.display(rel);
            self.r.count(|r| r.plan.push(Planned { action, kind, path, bytes }));
        }
    }

    fn file(&mut self, node: Node, rel: String) {
        let Some(parent) = self.parent_dir(self.stack.len() - 1) else { return };
        let occupant = match &parent {
            Some(dir) => match self.occupant(dir, &node.name, &rel) {
                Ok(o) => o,
                Err(()) => return,
            },
            None => None,
        };
        let decision = self.decide(&node, occupant, || false);
        let replace = match decision {
            Decision::Keep(occ) => return self.keep(&rel, "file", occ),
            Decision::Unchanged => {
                self.leaders.lead(&node, parent.clone(), self.display(&rel));
                self.plan("unchanged", "file", &rel, node.size);
                self.r.count(|r| r.unchanged += 1);
                self.r.progress.add_bytes(node.size);
                return;
            }
            Decision::Create => None,
            Decision::Replace(occ) => Some(occ),
        };
        self.leaders.lead(&node, parent.clone(), self.display(&rel));
        self.plan(if replace.is_some() { "replace" } else { "create" }, "file", &rel, node.size);
        if self.mode() == Mode::DryRun {
            self.r.count(|r| {
                r.files += 1;
                r.bytes += node.size;
                r.replaced += u64::from(replace.is_some());
            });
            return;
        }
        let new_dir = self.batch.jobs.last().is_none_or(|j| match (&j.dir, &parent) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            _ => false,
        });
        self.batch.dirs_open += usize::from(new_dir);
        self.batch_refs += node.chunk_count() as usize;
        self.batch.jobs.push(FileJob { dir: parent, path: self.display(&rel), node, replace });
        if self.batch_refs >= BATCH_CHUNK_REFS
            || self.batch.jobs.len() >= BATCH_FILES
            || self.batch.dirs_open >= BATCH_DIRS
        {
            self.queue_batch();
        }
    }

    fn symlink(&mut self, node: &Node, target: &[u8], rel: &str) {
        let Some(parent) = self.parent_dir(self.stack.len() - 1) else { return };
        let Some(dir) = parent else {
            self.plan("create", "symlink", rel, 0);
            self.r.count(|r| r.symlinks += 1);
            return;
        };
        let occupant = match self.occupant(&dir, &node.name, rel) {
            Ok(o) => o,
            Err(()) => return,
        };
        let same = || dir.read_link(&node.name).is_ok_and(|t| t == target);
        let decision = self.decide(node, occupant, same);
        match decision {
            Decision::Keep(occ) => return self.keep(rel, "symlink", occ),
            Decision::Unchanged => {
                self.plan("unchanged", "symlink", rel, 0);
                self.r.count(|r| r.unchanged += 1);
                return;
            }
            Decision::Create => self.plan("create", "symlink", rel, 0),
            Decision::Replace(_) => self.plan("replace", "symlink", rel, 0),
        }
        let replaced = matches!(decision, Decision::Replace(_));
        if self.mode() == Mode::Write {
            let path = self.display(rel);
            if let Err(e) = batch::place_symlink(self.r, &dir, node, target, decision_occupant(decision), &path) {
                return self.r.fail(self.display(rel), format!("cannot create symlink: {e}"));
            }
        }
        self.r.count(|r| {
            r.symlinks += 1;
            r.replaced += u64::from(replaced);
        });
    }

    /// Hands the queued files to the batch runner (waiting while it still has one queued).
    pub(super) fn queue_batch(&mut self) {
        self.batch_refs = 0;
        let b = std::mem::take(&mut self.batch);
        if !b.jobs.is_empty() || !b.dirs_done.is_empty() || !b.links.is_empty() {
            // Fails only when the runner is gone, i.e. panicked: the join reports that.
            let _ = self.tx.send(b);
        }
    }
}

pub(super) fn decision_occupant(d: Decision) -> Option<Occupant> {
    match d {
        Decision::Replace(o) => Some(o),
        _ => None,
    }
}

fn join(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent.is_empty() {
        name.into_owned()
    } else {
        format!("{parent}/{name}")
    }
}
