//! Which source snapshots a re-encrypting copy already made, when ids differ between the two
//! sides.
//!
//! A re-encrypted snapshot keeps every field of its source record but two: `root` (the
//! destination's id of the same tree) and `parent` (the destination's id of the parent). So a
//! snapshot's *identity* is BLAKE3 of its record with those two cleared: time (ns), host,
//! paths, tags, summary and tool. Two different snapshots with equal identities would have to
//! start in the same nanosecond on the same host with the same paths and tags and the same
//! counts; a source holding such a pair gets one copy. The format gains no field for the
//! source id, so old readers read copies as any snapshot.

use std::collections::HashMap;

use crate::error::Result;
use crate::id::{ChunkId, Digest, SnapshotId};
use crate::repo::Repository;
use crate::snapshot::Snapshot;

/// The identities of the destination's snapshots (32 bytes each, plus its id: memory grows
/// with the snapshot count as the list of snapshots does, never with the data).
pub(super) struct DestinationSnapshots {
    by_identity: HashMap<Digest, SnapshotId>,
}

impl DestinationSnapshots {
    /// Every readable snapshot of `dst`; a damaged one is no match (a copy is made again).
    pub(super) fn load(dst: &Repository) -> Result<Self> {
        let mut by_identity = HashMap::new();
        for (id, snap) in dst.snapshots()? {
            if let Ok(snap) = snap {
                by_identity.insert(identity(&snap)?, id);
            }
        }
        Ok(DestinationSnapshots { by_identity })
    }

    /// The destination's copy of `snap`, if there is one.
    pub(super) fn find(&self, snap: &Snapshot) -> Result<Option<SnapshotId>> {
        Ok(self.by_identity.get(&identity(snap)?).copied())
    }
}

/// BLAKE3 of the snapshot record with `root` and `parent` cleared.
fn identity(snap: &Snapshot) -> Result<Digest> {
    let mut s = snap.clone();
    s.root = ChunkId::ZERO_RUN;
    s.parent = None;
    Ok(Digest::of(&s.encode()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Summary;

    fn snap(time_ns: i64, root: u8) -> Snapshot {
        Snapshot {
            time_ns,
            host: "h".into(),
            paths: vec![b"/srv".to_vec()],
            tags: vec!["t".into()],
            root: ChunkId::of(&[root]),
            parent: None,
            summary: Summary::default(),
            tool: "cairn".into(),
        }
    }

    #[test]
    fn identity_ignores_root_and_parent_only() {
        let a = snap(1, 1);
        let mut b = snap(1, 2);
        b.parent = Some(SnapshotId(Digest::of(b"p")));
        assert_eq!(identity(&a).unwrap(), identity(&b).unwrap());
        assert_ne!(identity(&a).unwrap(), identity(&snap(2, 1)).unwrap());
        let mut c = snap(1, 1);
        c.tags.push("more".into());
        assert_ne!(identity(&a).unwrap(), identity(&c).unwrap());
    }
}
