//! Operations: what users do with a repository. Each returns a report; none prints.

pub mod backup;
pub mod browse;
pub mod check;
pub mod copy;
pub mod forget;
pub mod prune;
pub mod restore;
pub mod select;
pub mod stats;
pub mod status;
pub mod tag;
pub mod wal;

pub use backup::{
    backup, backup_checked, backup_stream, backup_with, dry_run, parse_size, read_path_list, read_pattern_file,
    BackupOptions, BackupReport, Check, Draft, DryRunReport, Excludes, Gate, LateFiles, PathList, RedisSource,
    StreamSource, TagFile, DEFAULT_ATTEMPTS, DEFAULT_REDIS_TIMEOUT,
};
pub use browse::{diff, dump, find, find_patterns, ls, Change, DiffEntry, LsEntry};
pub use check::{check, record_check, CheckOptions, CheckReport, Finding, ReadData, Severity};
pub use copy::{
    copy, copy_with, export, import, CopiedSnapshot, CopyMode, CopyOptions, CopyReport, ExportOptions, ExportReport,
};
pub use forget::{forget, forget_ids, Decision, ForgetOptions, ForgetReport, KeepPolicy};
pub use prune::{prune, PruneOptions, PrunePlan};
pub use restore::{
    restore, restore_at, restore_atomic, restore_test, AtomicReport, PitrOptions, PitrReport, RestoreOptions,
    RestoreReport, RestoreTestOptions, RestoreTestReport,
};
pub use status::{status, StatusReport};
pub use tag::{tag, Retagged, TagChange};

/// An entry an operation could not handle, and why; operations report these instead of failing.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}
