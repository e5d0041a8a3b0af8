//! `snapshot create --dry-run`: walk the given paths with the snapshot's exclusion rules and
//! count what a snapshot would hold, reading no file data and touching no repository.
//!
//! The walk is iterative (a stack of open directories, one descriptor per level still to
//! finish), names entries relative to their directory's descriptor and never follows a
//! symlink, like the real walk (`walk.rs`); it applies the same [`Filter`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::exclude::Filter;
use super::{canonical_paths, BackupOptions};
use crate::error::{Error, Result};
use crate::fs::{DirFd, EntryKind};
use crate::ops::Skipped;

/// What a snapshot of the given paths would hold.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DryRunReport {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, FIFOs, sockets and device nodes.
    pub others: u64,
    /// Bytes of the regular files (their sizes; nothing is read).
    pub bytes: u64,
    /// Entries left out by the exclusion rules (see [`super::BackupReport::excluded`]).
    pub excluded: u64,
    /// With `list_excluded`: each of them, with the rule that left it out.
    pub excluded_paths: Vec<Skipped>,
    /// With `list_excluded`: each regular file and its size.
    pub file_paths: Vec<(String, u64)>,
    /// Entries that could not be read.
    pub skipped: Vec<Skipped>,
}

/// Walks `opts.paths` as `snapshot create` would and reports what it would store.
pub fn dry_run(opts: &BackupOptions) -> Result<DryRunReport> {
    let paths = canonical_paths(&opts.paths)?;
    let filter = Filter::new(&opts.excludes, &paths)?;
    let mut walk = DryWalk { filter, list: opts.list_excluded, report: DryRunReport::default() };
    for root in &paths {
        let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io("cannot access", root, e))?;
        let meta = crate::fs::FileMeta::from_metadata(&meta);
        walk.entry(root, meta.kind, meta.size);
        if meta.kind == EntryKind::Dir {
            walk.tree(root);
        }
    }
    Ok(walk.report)
}

struct DryWalk<'a> {
    filter: Filter<'a>,
    list: bool,
    report: DryRunReport,
}

impl DryWalk<'_> {
    /// Counts one kept entry.
    fn entry(&mut self, path: &Path, kind: EntryKind, size: u64) {
        let r = &mut self.report;
        match kind {
            EntryKind::Dir => r.dirs += 1,
            EntryKind::File => {
                r.files += 1;
                r.bytes += size;
                if self.list {
                    r.file_paths.push((path.display().to_string(), size));
                }
            }
            _ => r.others += 1,
        }
    }

    fn exclude(&mut self, path: &Path, why: String) {
        self.report.excluded += 1;
        if self.list {
            self.report.excluded_paths.push(Skipped { path: path.display().to_string(), reason: why });
        }
    }

    fn skip(&mut self, path: &Path, why: impl std::fmt::Display) {
        self.report.skipped.push(Skipped { path: path.display().to_string(), reason: why.to_string() });
    }

    /// Walks the directory tree at `root` (already counted) without recursion: one frame per
    /// directory level, holding its descriptor and the subdirectories still to visit.
    fn tree(&mut self, root: &Path) {
        let mut stack: Vec<(PathBuf, DirFd, Vec<Vec<u8>>)> = Vec::new();
        match DirFd::open_path(root) {
            Ok(fd) => stack.push(self.enter(root.to_path_buf(), fd)),
            Err(e) => self.skip(root, e),
        }
        while let Some((path, fd, subdirs)) = stack.last_mut() {
            let Some(name) = subdirs.pop() else {
                stack.pop();
                continue;
            };
            let child = path.join(OsStr::from_bytes(&name));
            match fd.open_dir(&name) {
                Ok(sub) => {
                    let frame = self.enter(child, sub);
                    stack.push(frame);
                }
                Err(e) => self.skip(&child, e),
            }
        }
    }

    /// Counts the kept entries of directory `fd` at `path`; its frame with the subdirectories.
    fn enter(&mut self, path: PathBuf, fd: DirFd) -> (PathBuf, DirFd, Vec<Vec<u8>>) {
        let names = fd.names().unwrap_or_else(|e| {
            self.skip(&path, e);
            Vec::new()
        });
        let emptied = self.filter.emptied(&fd, &path);
        let mut subdirs = Vec::new();
        for name in names {
            let child = path.join(OsStr::from_bytes(&name));
            if let Some(why) = self.filter.why_excluded(&emptied, &child, &name) {
                self.exclude(&child, why);
                continue;
            }
            let meta = match fd.stat(&name) {
                Ok(meta) => meta,
                Err(e) => {
                    self.skip(&child, e);
                    continue;
                }
            };
            if let Some(why) = (meta.kind == EntryKind::File).then(|| self.filter.why_too_large(meta.size)).flatten() {
                self.exclude(&child, why);
                continue;
            }
            self.entry(&child, meta.kind, meta.size);
            if meta.kind == EntryKind::Dir {
                subdirs.push(name);
            }
        }
        subdirs.reverse();
        (path, fd, subdirs)
    }
}
