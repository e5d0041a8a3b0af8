//! `find`: the entries of chosen snapshots whose name or path matches patterns — "which
//! snapshots hold this file, and how big was it then?".

use crate::error::Result;
use crate::id::SnapshotId;
use crate::ops::browse::{ls, LsEntry};
use crate::ops::select::Includes;
use crate::repo::Repository;
use crate::snapshot::Snapshot;

/// Patterns as `--include` takes them: without `/` a name anywhere (`*.conf`), with `/` an
/// absolute path (`/etc/**/*.conf`). Bad patterns are invalid arguments naming them.
pub fn find_patterns(patterns: &[String]) -> Result<Includes> {
    Includes::for_origin(patterns, b"/", "find")
}

/// Walks each of `snapshots` in turn and calls `f` with every entry `patterns` match, depth
/// first and sorted within a snapshot. An error from `f` (a closed stdout) stops the search.
pub fn find(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    patterns: &Includes,
    f: &mut dyn FnMut(&SnapshotId, &Snapshot, LsEntry) -> Result<()>,
) -> Result<()> {
    repo.require_read("search snapshots")?;
    for (id, snapshot) in snapshots {
        ls(repo, snapshot, None, &mut |entry| {
            let rel = entry.path.trim_start_matches('/');
            let name = rel.rsplit('/').next().unwrap_or(rel);
            match patterns.matches(rel, name) {
                true => f(id, snapshot, entry),
                false => Ok(()),
            }
        })?;
    }
    Ok(())
}
