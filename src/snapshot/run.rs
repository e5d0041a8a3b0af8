//! Run records: what a restore test, a `repo check` or a failed `snapshot create` found, kept
//! in the repository so `snapshot show` and `cairn status` can report the last result of each.
//!
//! Stored at `records/<kind>/<id>` (`docs/format.md` §14): small, written once, never
//! referenced by anything, and bounded in number (the oldest are deleted as new ones come).
//! They are informational: a reader that does not know them loses nothing.

use serde::{Deserialize, Serialize};

use crate::codec::{self, RecordKind};
use crate::error::{Error, Result};
use crate::id::SnapshotId;

pub const RUN_RECORD_VERSION: u16 = 1;

/// Longest `command` or `detail` a record may hold: enough for a shell line and an error.
pub const MAX_RUN_TEXT_BYTES: usize = 16 << 10;

/// What ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RunKind {
    /// `restore-test`: a snapshot restored into a scratch directory and verified by a command.
    RestoreTest,
    /// `repo check`.
    Check,
    /// A `snapshot create` that failed (a successful one is its snapshot).
    SnapshotFailure,
}

impl RunKind {
    pub const ALL: [RunKind; 3] = [RunKind::RestoreTest, RunKind::Check, RunKind::SnapshotFailure];

    /// The directory name under `records/`, also used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::RestoreTest => "restore-test",
            RunKind::Check => "check",
            RunKind::SnapshotFailure => "snapshot-failure",
        }
    }
}

/// One run's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub kind: RunKind,
    pub success: bool,
    /// When the run started (nanoseconds since the epoch, UTC).
    pub time_ns: i64,
    pub duration_ms: u64,
    /// The machine the run happened on.
    pub ran_on: String,
    /// The source the run concerns (host and paths of the snapshots it groups); empty for a
    /// check, which concerns the whole repository.
    pub host: String,
    pub paths: Vec<Vec<u8>>,
    /// The snapshot restored (restore tests only).
    pub snapshot: Option<SnapshotId>,
    /// The verify command, or the check's mode (`structural`, `read-data 10%`).
    pub command: String,
    /// The verify command's exit code, when it ran and exited.
    pub exit_code: Option<i32>,
    /// Bytes restored (restore test) or read from packs (check).
    pub bytes: u64,
    /// One line: why it failed, or what was read.
    pub detail: String,
    /// `cairn x.y.z` that wrote it.
    pub tool: String,
}

impl RunRecord {
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::Run, RUN_RECORD_VERSION, self)
    }

    /// Decodes and validates: sizes bounded, a restore test names its snapshot.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let r: RunRecord = codec::unseal(bytes, RecordKind::Run, RUN_RECORD_VERSION, what)?;
        if r.command.len() > MAX_RUN_TEXT_BYTES || r.detail.len() > MAX_RUN_TEXT_BYTES {
            return Err(Error::corrupt(what, "command or detail longer than 16 KiB"));
        }
        if (r.kind == RunKind::RestoreTest) != r.snapshot.is_some() {
            return Err(Error::corrupt(what, "a restore test names one snapshot, other runs none"));
        }
        if r.time_ns < 0 {
            return Err(Error::corrupt(what, "time before 1970"));
        }
        Ok(r)
    }

    /// When the run ended, in nanoseconds since the epoch.
    pub fn end_ns(&self) -> i64 {
        self.time_ns.saturating_add((self.duration_ms as i64).saturating_mul(1_000_000))
    }

    /// Cuts `command` and `detail` to what [`RunRecord::decode`] accepts.
    pub fn bounded(mut self) -> Self {
        for s in [&mut self.command, &mut self.detail] {
            if s.len() > MAX_RUN_TEXT_BYTES {
                let mut end = MAX_RUN_TEXT_BYTES - 3;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                s.push_str("...");
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunRecord {
        RunRecord {
            kind: RunKind::RestoreTest,
            success: true,
            time_ns: 1_700_000_000_000_000_000,
            duration_ms: 1500,
            ran_on: "vm".into(),
            host: "vm".into(),
            paths: vec![b"/srv/q".to_vec()],
            snapshot: Some(SnapshotId(crate::id::Digest([7; 32]))),
            command: "true".into(),
            exit_code: Some(0),
            bytes: 10,
            detail: String::new(),
            tool: "cairn test".into(),
        }
    }

    #[test]
    fn records_round_trip_and_are_validated() {
        let r = sample();
        assert_eq!(RunRecord::decode(&r.encode().unwrap(), "r").unwrap(), r);
        let bad = RunRecord { snapshot: None, ..sample() };
        assert!(matches!(RunRecord::decode(&bad.encode().unwrap(), "r"), Err(Error::Corrupt { .. })));
        let long = RunRecord { detail: "é".repeat(MAX_RUN_TEXT_BYTES), ..sample() }.bounded();
        assert!(RunRecord::decode(&long.encode().unwrap(), "r").is_ok());
    }
}
