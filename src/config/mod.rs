//! The configuration file (`cairn.toml`): named repositories, named sources with their
//! excludes, hooks and retention, and WAL streams, so `cairn run SOURCE` (and every other
//! command) needs no long command lines. See `docs/config.md`.
//!
//! This layer sits above the operations: it turns a source into the options an operation
//! takes (`BackupOptions`, `ForgetOptions`, `Hooks`) and never runs one itself. Precedence
//! (a flag, then its environment variable, then the file) is the CLI's to apply.

mod convert;
mod load;
mod plan;
mod schema;
mod validate;

pub use convert::source_tag;
pub use load::{default_path, Loaded};
pub use plan::{plan, RepositoryRun};
pub use schema::{
    Config, HooksConfig, RepositoryConfig, RetentionConfig, SourceConfig, WalConfig, DEFAULT_HOOK_TIMEOUT,
};

impl Config {
    /// The one repository, when exactly one is configured: the default of every command.
    pub fn only_repository(&self) -> Option<(&str, &RepositoryConfig)> {
        match self.repositories.len() {
            1 => self.repositories.iter().next().map(|(k, v)| (k.as_str(), v)),
            _ => None,
        }
    }

    /// The repository a source or WAL stream writes to: the one it names, else the only one.
    pub fn repository_name<'a>(&'a self, named: Option<&'a str>) -> Option<&'a str> {
        match named {
            Some(n) => self.repositories.contains_key(n).then_some(n),
            None => self.only_repository().map(|(n, _)| n),
        }
    }

    /// The WAL stream whose base backups are `source`'s snapshots (validation allows one).
    pub fn wal_of_source(&self, source: &str) -> Option<(&str, &WalConfig)> {
        self.wal.iter().find(|(_, w)| w.source.as_deref() == Some(source)).map(|(k, v)| (k.as_str(), v))
    }
}
