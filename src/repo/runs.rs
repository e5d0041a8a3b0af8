//! Run records in the repository: storing one, listing those of a kind, and keeping their
//! number bounded.
//!
//! Key `records/<kind>/<64 hex id>`, id = the (keyed, when encrypted) hash of the plaintext
//! record, sealed as kind `RunRecord` with the object key as associated data
//! (`docs/format.md` §14). Nothing references a record, so writing and deleting them needs no
//! lock: a record deleted under a reader is skipped like a forgotten snapshot.

use crate::backend::PutMode;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::repo::layout::{run_record_key, run_records_prefix};
use crate::repo::Repository;
use crate::snapshot::{RunKind, RunRecord};

/// How many records of one kind each source keeps: the newest; older ones are deleted when a
/// new one is stored. Bounds the records by the number of sources, not by time.
pub const RUNS_KEPT_PER_SOURCE: usize = 20;

/// The run records of one kind.
#[derive(Debug, Default)]
pub struct Runs {
    /// Oldest first.
    pub records: Vec<RunRecord>,
    /// Object keys of records that cannot be read, and why (for `repo check`).
    pub unreadable: Vec<(String, Error)>,
}

impl Repository {
    /// Stores `record` and deletes the records of its kind and source beyond the newest
    /// [`RUNS_KEPT_PER_SOURCE`] (a write-only key, which cannot read them, deletes none).
    pub fn save_run(&self, record: &RunRecord) -> Result<String> {
        let plain = record.clone().bounded().encode()?;
        let id = self.sealer.chunk_id(&plain);
        let key = run_record_key(record.kind, &hex(&id));
        let sealed = self.sealer.seal(Kind::RunRecord, key.as_bytes(), &plain)?;
        self.store_session_header()?;
        self.backend.put(&key, &sealed, PutMode::Overwrite)?;
        if !self.is_write_only() {
            self.trim_runs(record)?;
        }
        Ok(key)
    }

    /// Every record of `kind`: those that can be read, oldest first, and those that cannot.
    pub fn runs(&self, kind: RunKind) -> Result<Runs> {
        self.require_read("read run records")?;
        let mut keys = Vec::new();
        self.backend.list(&run_records_prefix(kind), &mut |obj| {
            keys.push(obj.key);
            Ok(())
        })?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for key in keys {
            match self.load_run(&key, kind) {
                Ok(r) => good.push(r),
                Err(e) if e.is_not_found() => {} // trimmed since the listing
                Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => bad.push((key, e)),
                Err(e) => return Err(e),
            }
        }
        good.sort_by_key(|r| (r.time_ns, r.duration_ms));
        Ok(Runs { records: good, unreadable: bad })
    }

    /// Reads, opens and validates the record under `key`, which must be of `kind` and named by
    /// its content.
    fn load_run(&self, key: &str, kind: RunKind) -> Result<RunRecord> {
        let what = format!("run record {key}");
        let bytes = self.backend.get(key)?;
        let plain = self.sealer.open(Kind::RunRecord, key.as_bytes(), &bytes).map_err(|e| match e {
            Error::Corrupt { detail, .. } => Error::corrupt(&what, detail),
            other => other,
        })?;
        if run_record_key(kind, &hex(&self.sealer.chunk_id(&plain))) != key {
            return Err(Error::corrupt(&what, "content does not match its name"));
        }
        let record = RunRecord::decode(&plain, &what)?;
        if record.kind != kind {
            return Err(Error::corrupt(&what, format!("holds a {} record", record.kind.name())));
        }
        Ok(record)
    }

    /// Deletes the oldest records of `record`'s kind and source beyond the bound.
    fn trim_runs(&self, record: &RunRecord) -> Result<()> {
        let mut keys = Vec::new();
        let mut mine = Vec::new();
        self.backend.list(&run_records_prefix(record.kind), &mut |obj| {
            keys.push(obj.key);
            Ok(())
        })?;
        for key in &keys {
            // A record that cannot be read is left for `repo check` to report.
            if let Ok(r) = self.load_run(key, record.kind) {
                if r.host == record.host && r.paths == record.paths {
                    mine.push((r.time_ns, r.duration_ms, key.clone()));
                }
            }
        }
        mine.sort();
        let excess = mine.len().saturating_sub(RUNS_KEPT_PER_SOURCE);
        for (_, _, key) in mine.into_iter().take(excess) {
            self.backend.delete(&key)?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
