//! Finding snapshots: listing, resolving what a user typed, choosing a parent.

use std::str::FromStr;

use crate::backend::PutMode;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{is_hex_prefix, SnapshotId};
use crate::repo::layout::{snapshot_id_from_key, snapshot_key, SNAPSHOTS_DIR};
use crate::repo::Repository;
use crate::snapshot::Snapshot;

/// How a user names a snapshot: `latest`, or an id or unique prefix of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotSpec {
    Latest,
    Prefix(String),
}

impl FromStr for SnapshotSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "latest" {
            Ok(SnapshotSpec::Latest)
        } else if is_hex_prefix(s) {
            Ok(SnapshotSpec::Prefix(s.to_ascii_lowercase()))
        } else {
            // Exit 1 like an id that matches nothing (`show 0000`): both name no snapshot.
            Err(Error::not_found(format!("snapshot {s:?} (give an id, a hex id prefix or `latest`)")))
        }
    }
}

/// Which snapshots `latest` may pick and a listing shows: of any of these hosts, with all
/// these tags, of exactly these paths. An empty filter matches every snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Any of these (none: every host).
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<Vec<u8>>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.host))
            && self.tags.iter().all(|t| s.tags.contains(t))
            && (self.paths.is_empty() || {
                let mut want = self.paths.clone();
                want.sort();
                want.dedup();
                let mut have = s.paths.clone();
                have.sort();
                want == have
            })
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    /// `host vm, tag hourly, path /srv/queue`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            parts.push(format!("host {}", self.hosts.join(" or ")));
        }
        parts.extend(self.tags.iter().map(|t| format!("tag {t}")));
        parts.extend(self.paths.iter().map(|p| format!("path {}", String::from_utf8_lossy(p))));
        parts.join(", ")
    }
}

impl Repository {
    /// Resolves `latest` among the snapshots `filter` matches, or an id prefix (which must
    /// then match the filter too).
    pub fn resolve_snapshot_matching(
        &self,
        spec: &SnapshotSpec,
        filter: &SnapshotFilter,
    ) -> Result<(SnapshotId, Snapshot)> {
        if filter.is_empty() {
            return self.resolve_snapshot(spec);
        }
        match spec {
            SnapshotSpec::Latest => {
                let mut best: Option<(SnapshotId, Snapshot)> = None;
                for id in self.snapshot_ids()? {
                    let snap = self.load_snapshot(&id)?;
                    if filter.matches(&snap) && best.as_ref().is_none_or(|(_, b)| snap.time_ns > b.time_ns) {
                        best = Some((id, snap));
                    }
                }
                best.ok_or_else(|| Error::not_found(format!("snapshot `latest` of {}", filter.describe())))
            }
            SnapshotSpec::Prefix(_) => {
                let (id, snap) = self.resolve_snapshot(spec)?;
                if !filter.matches(&snap) {
                    return Err(Error::InvalidArgument(format!(
                        "snapshot {} does not match {}",
                        id.short(),
                        filter.describe()
                    )));
                }
                Ok((id, snap))
            }
        }
    }

    /// Ids of all snapshots (not their contents).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let mut ids = Vec::new();
        self.backend.list(SNAPSHOTS_DIR, &mut |obj| {
            if let Some(id) = snapshot_id_from_key(&obj.key) {
                ids.push(id);
            }
            Ok(())
        })?;
        ids.sort();
        Ok(ids)
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.require_read("read snapshots")?;
        let bytes = self.backend.get(&snapshot_key(id)).map_err(|e| match e {
            Error::NotFound { .. } => Error::not_found(format!("snapshot {id}")),
            other => other,
        })?;
        let what = format!("snapshot {id}");
        let bytes = if self.sealer.is_encrypted() {
            // Bound to its id: a snapshot object swapped with another fails to open.
            let plain = self.sealer.open(Kind::Snapshot, id.as_bytes(), &bytes).map_err(|e| match e {
                Error::Corrupt { detail, .. } => Error::corrupt(&what, detail),
                other => other,
            })?;
            if self.sealer.chunk_id(&plain) != *id.as_bytes() {
                return Err(Error::corrupt(what, "content does not match its id"));
            }
            plain
        } else if SnapshotId(crate::id::Digest::of(&bytes)) != *id {
            return Err(Error::corrupt(what, "content does not match its id"));
        } else {
            bytes
        };
        Snapshot::decode(&bytes, &what)
    }

    /// All snapshots, oldest first. Damaged ones are returned as errors in place. A snapshot
    /// that vanishes between the listing and its read was forgotten meanwhile (`forget` runs
    /// beside readers under a shared lock) and is left out.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Result<Snapshot>)>> {
        // Not one "cannot read" per snapshot, as if each were damaged.
        self.require_read("read snapshots")?;
        let mut all: Vec<_> = self
            .snapshot_ids()?
            .into_iter()
            .map(|id| (id, self.load_snapshot(&id)))
            .filter(|(_, s)| !s.as_ref().is_err_and(|e| e.is_not_found()))
            .collect();
        all.sort_by_key(|(id, s)| (s.as_ref().map(|s| s.time_ns).unwrap_or(i64::MIN), *id));
        Ok(all)
    }

    /// Resolves `latest` or a unique id prefix.
    pub fn resolve_snapshot(&self, spec: &SnapshotSpec) -> Result<(SnapshotId, Snapshot)> {
        match spec {
            SnapshotSpec::Latest => {
                let mut best: Option<(SnapshotId, Snapshot)> = None;
                for id in self.snapshot_ids()? {
                    let snap = match self.load_snapshot(&id) {
                        Err(e) if e.is_not_found() => continue, // forgotten since the listing
                        other => other?,
                    };
                    if best.as_ref().is_none_or(|(_, b)| snap.time_ns > b.time_ns) {
                        best = Some((id, snap));
                    }
                }
                best.ok_or_else(|| Error::not_found("snapshot `latest` (the repository has no snapshots)"))
            }
            SnapshotSpec::Prefix(prefix) => {
                let matches: Vec<_> =
                    self.snapshot_ids()?.into_iter().filter(|id| id.to_hex().starts_with(prefix.as_str())).collect();
                match matches.as_slice() {
                    [id] => Ok((*id, self.load_snapshot(id)?)),
                    [] => Err(Error::not_found(format!("snapshot {prefix}"))),
                    _ => Err(Error::Ambiguous {
                        what: "snapshot id".into(),
                        prefix: prefix.clone(),
                        count: matches.len(),
                    }),
                }
            }
        }
    }

    /// The newest snapshot of the same host and paths: the parent for change detection.
    /// A write-only key cannot read snapshots, its own included: its parent is the last
    /// snapshot it remembers in its own cache, else none (every file is read again, and
    /// deduplicated: only new chunks are stored).
    pub fn find_parent(&self, host: &str, paths: &[Vec<u8>]) -> Result<Option<(SnapshotId, Snapshot)>> {
        if self.is_write_only() {
            return Ok(self.own_parent(host, paths));
        }
        let mut best: Option<(SnapshotId, Snapshot)> = None;
        for id in self.snapshot_ids()? {
            // A damaged snapshot is no parent; `repo check` reports it.
            let Ok(snap) = self.load_snapshot(&id) else {
                continue;
            };
            if snap.host == host && snap.paths == paths && best.as_ref().is_none_or(|(_, b)| snap.time_ns > b.time_ns) {
                best = Some((id, snap));
            }
        }
        Ok(best)
    }

    /// Writes a snapshot object. Call only after every blob it references is durable.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let bytes = snapshot.encode()?;
        // Encrypted: the keyed id of the plaintext record, so the id can be the ciphertext's
        // associated data (docs/format.md §13.5); BLAKE3 of the bytes otherwise.
        let id = SnapshotId(crate::id::Digest(self.sealer.chunk_id(&bytes)));
        let bytes = self.sealer.seal(Kind::Snapshot, id.as_bytes(), &bytes)?;
        self.store_session_header()?;
        self.backend.put(&snapshot_key(&id), &bytes, PutMode::Overwrite)?;
        Ok(id)
    }
}
