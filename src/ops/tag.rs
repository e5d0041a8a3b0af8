//! `snapshot tag`: adds, removes or replaces the tags of snapshots.
//!
//! Snapshot objects are immutable and named by their content, so a tag change writes a new
//! snapshot object (every field as before but `tags`) and then deletes the old one: the id
//! changes. The new object is durable before the old one is removed, so a crash in between
//! leaves both (two snapshots with the same tree, which `forget ID` can remove), never neither.
//! Snapshots whose `parent` named the old id keep naming it; a parent is only a hint for
//! change detection (`docs/format.md` §8).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::repo::{snapshot_key, LockKind, Repository, SnapshotSpec};

/// What to do with the tags: `set` (when given) replaces them all, then `add` and `remove`
/// apply in that order. An empty tag in `set` stands for none (`--set ''` clears the tags).
#[derive(Clone, Debug, Default)]
pub struct TagChange {
    pub set: Option<Vec<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl TagChange {
    /// The tags after the change: sorted, without duplicates.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self.set.clone().unwrap_or_else(|| tags.to_vec());
        out.retain(|t| !t.is_empty());
        out.extend(self.add.iter().cloned());
        out.retain(|t| !self.remove.contains(t));
        out.sort();
        out.dedup();
        out
    }

    /// The same tags, in the order [`TagChange::apply`] gives: to tell an actual change.
    fn apply_none(&self, tags: &[String]) -> Vec<String> {
        TagChange::default().apply(tags)
    }

    fn check(&self) -> Result<()> {
        if self.set.is_none() && self.add.is_empty() && self.remove.is_empty() {
            return Err(Error::InvalidArgument("no tag change given: use --add, --remove or --set".into()));
        }
        let set = self.set.iter().flatten().filter(|t| !t.is_empty());
        if let Some(bad) = set.chain(&self.add).chain(&self.remove).find(|t| t.is_empty() || t.contains(',')) {
            return Err(Error::InvalidArgument(format!("bad tag {bad:?}: a tag is not empty and has no comma")));
        }
        Ok(())
    }
}

/// One snapshot's tag change: its old id, its new id (the same when nothing changed).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Retagged {
    pub old: String,
    pub new: String,
    pub tags: Vec<String>,
    pub changed: bool,
}

/// Applies `change` to every snapshot named in `specs` (all resolved before anything is
/// written, so one bad name changes nothing).
pub fn tag(repo: &Repository, specs: &[SnapshotSpec], change: &TagChange) -> Result<Vec<Retagged>> {
    change.check()?;
    repo.require_read("change tags (a snapshot's record must be read to rewrite it)")?;
    // Shared, like `forget`: keeps a prune (exclusive) from listing the old id and then
    // failing to read it.
    let _lock = repo.lock(LockKind::Shared, "snapshot tag")?;
    let mut chosen = Vec::new();
    for spec in specs {
        let (id, snap) = repo.resolve_snapshot(spec)?;
        if !chosen.iter().any(|(c, _)| *c == id) {
            chosen.push((id, snap));
        }
    }
    let mut out = Vec::new();
    for (old, mut snap) in chosen {
        let tags = change.apply(&snap.tags);
        if tags == change.apply_none(&snap.tags) {
            out.push(Retagged { old: old.to_hex(), new: old.to_hex(), tags, changed: false });
            continue;
        }
        snap.tags = tags.clone();
        let new = repo.save_snapshot(&snap)?;
        // The new id can only equal the old one if the record did not change (handled above).
        if new != old {
            repo.backend().delete(&snapshot_key(&old))?;
        }
        out.push(Retagged { old: old.to_hex(), new: new.to_hex(), tags, changed: true });
    }
    Ok(out)
}
