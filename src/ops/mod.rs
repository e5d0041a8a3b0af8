//! Operations: what users do with a repository. Each returns a report; none prints.

pub mod backup;
pub mod browse;
pub mod restore;
pub mod select;

pub use backup::{backup, BackupOptions, BackupReport, Skipped};
pub use browse::{diff, ls, Change, DiffEntry, LsEntry};
pub use restore::{restore, RestoreOptions, RestoreReport};
