//! The configuration file's schema: what each table and key means, as serde types.
//!
//! Every key is spelled as the command-line flag it stands for (`exclude-if-present`,
//! `keep-daily`, `password-file`), and every table rejects keys it does not know, so a typo is
//! an error rather than a setting silently ignored. Values that have a syntax of their own
//! (durations, sizes, read-data subsets) are parsed here, while the file is read, so their
//! errors name the key and line. Adding a key is adding one field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::ops::ReadData;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Repositories by name (`--repo NAME`).
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryConfig>,
    /// Sources by name (`cairn run NAME`).
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// WAL streams by name (the `--stream` of `cairn wal push`).
    #[serde(default)]
    pub wal: BTreeMap<String, WalConfig>,
}

/// `[repositories.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepositoryConfig {
    /// A local directory or `s3://BUCKET/PREFIX`.
    pub location: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Hooks around a whole `cairn run` of this repository's sources.
    #[serde(default)]
    pub hooks: HooksConfig,
}

/// `[sources.NAME]`: what one `cairn run NAME` backs up, and how long it keeps it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceConfig {
    /// The repository's name; may be left out when exactly one repository is configured.
    pub repository: Option<String>,
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub iexclude: Vec<String>,
    #[serde(default)]
    pub exclude_file: Vec<PathBuf>,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default)]
    pub exclude_caches: bool,
    #[serde(default, deserialize_with = "size")]
    pub exclude_larger_than: Option<u64>,
    #[serde(default)]
    pub one_file_system: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub append_only: Vec<String>,
    /// `snapshot create --postgres CONNINFO`.
    pub postgres: Option<String>,
    /// `snapshot create --redis URL` (RDB or AOF mode, `docs/services.md`).
    pub redis: Option<String>,
    /// `snapshot create --redis-password-file FILE`.
    pub redis_password_file: Option<PathBuf>,
    /// `snapshot create --paged PATTERN`: page-store files cut into aligned blocks.
    #[serde(default)]
    pub paged: Vec<String>,
    #[serde(default)]
    pub hooks: HooksConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Run `prune` on the repository after this source's retention.
    #[serde(default)]
    pub prune: bool,
    /// Run `repo check` on the repository afterwards.
    #[serde(default)]
    pub check: bool,
    /// With `check`: also read this much pack data (`all`, `N%` or `K/M`).
    #[serde(default, deserialize_with = "read_data")]
    pub check_read_data: Option<ReadData>,
}

/// `[sources.NAME.retention]`: `forget --keep-*` for this source's snapshots.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetentionConfig {
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_hourly: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub keep_yearly: u32,
    #[serde(default, deserialize_with = "duration")]
    pub keep_within: Option<Duration>,
}

/// `[wal.STREAM]`: how long a WAL stream stays restorable.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WalConfig {
    /// The repository's name; may be left out when exactly one repository is configured.
    pub repository: Option<String>,
    /// The source whose snapshots are this WAL's base backups: its `cairn run` applies the
    /// window below.
    pub source: Option<String>,
    /// `forget --keep-wal-within`: point-in-time restore stays possible to any second within
    /// this duration before now.
    #[serde(default, deserialize_with = "duration")]
    pub keep_wal_within: Option<Duration>,
}

/// `hooks` tables, of a source or a repository.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HooksConfig {
    #[serde(default)]
    pub pre: Vec<String>,
    #[serde(default)]
    pub post: Vec<String>,
    #[serde(default)]
    pub on_failure: Vec<String>,
    #[serde(default)]
    pub finally: Vec<String>,
    /// Run every hook of this table with `sh -c` (`--hook-shell`).
    #[serde(default)]
    pub shell: bool,
    /// `--hook-timeout`, as a duration (`90s`, `10m`).
    #[serde(default = "default_hook_timeout", deserialize_with = "required_duration")]
    pub timeout: Duration,
}

/// `--hook-timeout`'s default.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

fn default_hook_timeout() -> Duration {
    DEFAULT_HOOK_TIMEOUT
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            pre: Vec::new(),
            post: Vec::new(),
            on_failure: Vec::new(),
            finally: Vec::new(),
            shell: false,
            timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let ns = crate::time::parse_duration(text).map_err(|e| e.to_string())?;
    Ok(Duration::from_nanos(u64::try_from(ns).map_err(|_| format!("duration {text:?} is negative"))?))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
}

fn required_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::ops::parse_size(&text).map(Some).map_err(serde::de::Error::custom)
}

fn read_data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReadData>, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "all" => Ok(Some(ReadData::All)),
        _ => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}
