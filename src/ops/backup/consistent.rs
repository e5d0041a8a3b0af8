//! Snapshots that must see a service's data at one consistent point: checks run after every
//! file was read and before the snapshot record is written ([`Check`]), attempts repeated while
//! a check finds the data moved, and `--consistent-with CMD`, the generic check.
//!
//! `--consistent-with CMD` runs CMD before the data is read and again after; its standard
//! output (a generation, an offset, a checksum of a manifest) must be the same both times, or
//! the attempt is thrown away before its snapshot record is written and the snapshot is taken
//! again. After [`DEFAULT_ATTEMPTS`] attempts that all moved, the command fails with
//! [`Error::Inconsistent`] and no snapshot. Chunks stored by a discarded attempt are
//! unreferenced until `prune`, as after a crash; they make the next attempt cheap.

use std::path::Path;
use std::time::Duration;

use super::{BackupOptions, BackupReport};
use crate::error::{Error, Result};
use crate::hooks::Hook;
use crate::id::ChunkId;
use crate::repo::Repository;

/// How many times a snapshot is taken before a data set that keeps moving is an error.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// The pause after the first inconsistent attempt, doubled after each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A snapshot whose files are all read and stored but whose record is not yet written.
pub struct Draft<'a> {
    pub repo: &'a Repository,
    pub root: ChunkId,
}

impl Draft<'_> {
    /// The stored size of regular file `path` (absolute, symlink-resolved, under a backed-up
    /// path), or `None` when the snapshot does not hold it.
    pub fn file_size(&self, path: &Path) -> Result<Option<u64>> {
        use std::os::unix::ffi::OsStrExt;
        let mut tree = self.repo.load_tree(&self.root)?;
        let names: Vec<&[u8]> = path.components().skip(1).map(|c| c.as_os_str().as_bytes()).collect();
        for (i, name) in names.iter().enumerate() {
            let Some(node) = tree.find(name) else { return Ok(None) };
            if i + 1 == names.len() {
                return Ok(node.is_file().then_some(node.size));
            }
            let Some(sub) = node.subtree() else { return Ok(None) };
            tree = self.repo.load_tree(&sub)?;
        }
        Ok(None)
    }
}

/// A check on a [`Draft`]: `Err(Error::Inconsistent)` discards the attempt (another is made);
/// other errors fail the snapshot; the strings returned are warnings for the report.
pub type Check<'a> = &'a (dyn Fn(&Draft<'_>) -> Result<Vec<String>> + Sync);

/// `--consistent-with`: the command and how long each run of it may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    pub command: Hook,
    pub timeout: Duration,
}

impl Gate {
    /// Runs the command; its output with surrounding blanks trimmed.
    pub fn read(&self, stage: &str, attempt: u32, opts: &BackupOptions) -> Result<Vec<u8>> {
        let paths = opts.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n");
        let env = [
            ("CAIRN_CONSISTENT_STAGE".to_string(), stage.to_string()),
            ("CAIRN_ATTEMPT".to_string(), attempt.to_string()),
            ("CAIRN_PATHS".to_string(), paths),
        ];
        let out = self.command.output("consistent-with", &env, self.timeout)?;
        Ok(out.trim_ascii().to_vec())
    }
}

/// Takes the snapshot with `attempt(number, is_last)` until it is consistent (at most
/// `opts.attempts`, or [`DEFAULT_ATTEMPTS`] when 0), with `--consistent-with` checked around
/// each attempt; `checks` are what the attempt must pass to [`super::backup_checked`].
pub(super) fn with_attempts(
    opts: &BackupOptions,
    mut attempt: impl FnMut(u32, bool, &[Check<'_>]) -> Result<BackupReport>,
) -> Result<BackupReport> {
    let max = if opts.attempts == 0 { DEFAULT_ATTEMPTS } else { opts.attempts };
    let mut backoff = FIRST_BACKOFF;
    let mut discarded = Vec::new();
    for n in 1..=max {
        let before = opts.consistent_with.as_ref().map(|g| g.read("before", n, opts)).transpose()?;
        let gate = |_: &Draft<'_>| -> Result<Vec<String>> {
            let (Some(g), Some(before)) = (&opts.consistent_with, &before) else { return Ok(Vec::new()) };
            let after = g.read("after", n, opts)?;
            if &after != before {
                return Err(Error::Inconsistent(format!(
                    "the --consistent-with output changed while the data was read ({:?} before, {:?} after)",
                    String::from_utf8_lossy(before),
                    String::from_utf8_lossy(&after)
                )));
            }
            Ok(Vec::new())
        };
        match attempt(n, n == max, &[&gate]) {
            Ok(mut report) => {
                report.attempts = n;
                report.discarded = discarded;
                return Ok(report);
            }
            Err(Error::Inconsistent(reason)) => discarded.push(reason),
            Err(e) => return Err(e),
        }
        if n < max {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
    let why = discarded.pop().unwrap_or_default();
    Err(Error::Inconsistent(format!("{why}, in each of {max} attempts: no snapshot was written")))
}
