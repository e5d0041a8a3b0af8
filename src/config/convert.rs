//! From a source's table to the options the operations take.

use crate::error::Result;
use crate::hooks::{Hook, Hooks};
use crate::ops::{self, BackupOptions, Excludes, ForgetOptions, KeepPolicy};

use super::schema::{Config, HooksConfig, RetentionConfig, SourceConfig};

/// The tag `cairn run` gives every snapshot of source `name`. A source's retention applies
/// only to snapshots with this tag (and its host), so it never forgets another source's.
pub fn source_tag(name: &str) -> String {
    format!("source:{name}")
}

impl HooksConfig {
    pub fn hooks(&self) -> Result<Hooks> {
        let make = |lines: &[String]| -> Result<Vec<Hook>> {
            lines.iter().map(|l| if self.shell { Ok(Hook::shell(l)) } else { Hook::argv(l) }).collect()
        };
        Ok(Hooks {
            pre: make(&self.pre)?,
            post: make(&self.post)?,
            on_failure: make(&self.on_failure)?,
            finally: make(&self.finally)?,
            timeout: self.timeout,
        })
    }
}

impl RetentionConfig {
    pub fn policy(&self) -> KeepPolicy {
        KeepPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within_ns: self.keep_within.map(|d| d.as_nanos().min(i64::MAX as u128) as i64),
        }
    }
}

impl SourceConfig {
    /// The exclusion rules written in the file, without reading `exclude-file`s (they may
    /// not exist where the file is checked).
    pub fn patterns(&self) -> Excludes {
        Excludes {
            patterns: self.exclude.clone(),
            ignore_case_patterns: self.iexclude.clone(),
            if_present: self.exclude_if_present.iter().filter_map(|s| ops::TagFile::parse(s).ok()).collect(),
            caches: self.exclude_caches,
            larger_than: self.exclude_larger_than,
            one_file_system: self.one_file_system,
            ..Default::default()
        }
    }

    /// Every exclusion rule, `exclude-file`s read.
    pub fn excludes(&self) -> Result<Excludes> {
        let mut excludes = self.patterns();
        excludes.if_present = self.exclude_if_present.iter().map(|s| ops::TagFile::parse(s)).collect::<Result<_>>()?;
        for file in &self.exclude_file {
            excludes.patterns.extend(ops::read_pattern_file(file)?);
        }
        excludes.validate()?;
        Ok(excludes)
    }

    /// `snapshot create` of source `name`.
    pub fn backup_options(&self, name: &str) -> Result<BackupOptions> {
        let mut tags = self.tags.clone();
        tags.push(source_tag(name));
        Ok(BackupOptions {
            paths: self.paths.clone(),
            tags,
            host: self.host.clone(),
            excludes: self.excludes()?,
            append_only: self.append_only.clone(),
            paged: self.paged.clone(),
            postgres: self.postgres.clone(),
            redis: self.redis_source()?,
            ..Default::default()
        })
    }
}

impl SourceConfig {
    /// The Redis server to snapshot through, its password read from `redis-password-file`.
    fn redis_source(&self) -> Result<Option<ops::RedisSource>> {
        let Some(url) = &self.redis else { return Ok(None) };
        let password = match &self.redis_password_file {
            Some(file) => {
                let text =
                    std::fs::read_to_string(file).map_err(|e| crate::error::Error::io("cannot read", file, e))?;
                Some(text.lines().next().unwrap_or_default().to_string())
            }
            None => None,
        };
        Ok(Some(ops::RedisSource { url: url.clone(), password, timeout: ops::DEFAULT_REDIS_TIMEOUT }))
    }
}

impl Config {
    /// The `forget` of source `name` after its snapshot: its retention, limited to its own
    /// snapshots (tag and host), and the WAL window of the stream it is the base of. `None`
    /// when it has neither (nothing is forgotten).
    pub fn forget_options(&self, name: &str) -> Option<ForgetOptions> {
        let source = self.sources.get(name)?;
        let policy = source.retention.policy();
        let wal = self.wal_of_source(name).and_then(|(stream, w)| Some((stream, w.keep_wal_within?)));
        if policy.is_empty() && wal.is_none() {
            return None;
        }
        Some(ForgetOptions {
            policy,
            host: Some(source.host.clone().unwrap_or_else(crate::fs::hostname)),
            tag: Some(source_tag(name)),
            keep_wal_within_ns: wal.map(|(_, d)| d.as_nanos().min(i64::MAX as u128) as i64),
            wal_stream: wal.map(|(s, _)| s.to_string()),
            ..Default::default()
        })
    }
}
