//! Where each setting of a run comes from: a flag, then its environment variable, then the
//! configuration file (`docs/config.md`, "Precedence"). Builds the [`Context`] of a command
//! from the global options and the repository they or the file choose.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn::config::{Loaded, RepositoryConfig};
use cairn::crypto::PasswordSources;
use cairn::error::Result;
use cairn::repo::{Connect, IndexKind, S3Options};

use super::password::PasswordCache;
use super::Context;

/// The global options, and the configuration file when there is one.
pub struct Globals {
    /// `--repo` or `CAIRN_REPO`: a configured repository's name, or a location.
    pub repo: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub s3: S3Options,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub json: bool,
    pub quiet: bool,
    pub lock_wait: u64,
    pub config: Option<Loaded>,
}

impl Globals {
    /// The context of a command: `--repo`/`CAIRN_REPO` (a configured name, or a location),
    /// else the one configured repository, else none (the command says so if it needs one).
    pub fn context(&self) -> Result<Context> {
        match &self.repo {
            Some(given) => self.context_for(given),
            None => {
                let only = self.config.as_ref().and_then(|l| l.config.only_repository());
                Ok(match only {
                    Some((_, cfg)) => self.build(Some(cfg.location.clone()), Some(cfg)),
                    None => self.build(None, None),
                })
            }
        }
    }

    /// The context for repository `given`: a configured name, or else a location. A bare
    /// word that names neither a configured repository nor an existing path is refused when a
    /// configuration file is in use: it is far more likely a mistyped name than a new
    /// repository in the current directory (write `./NAME` for that).
    pub fn context_for(&self, given: &str) -> Result<Context> {
        let Some(loaded) = &self.config else {
            return Ok(self.build(Some(given.to_string()), None));
        };
        if let Some(cfg) = loaded.config.repositories.get(given) {
            return Ok(self.build(Some(cfg.location.clone()), Some(cfg)));
        }
        let bare = !given.contains('/') && !given.contains("://");
        if bare && !loaded.config.repositories.is_empty() && !Path::new(given).exists() {
            let names: Vec<&str> = loaded.config.repositories.keys().map(String::as_str).collect();
            return Err(loaded.error(&format!(
                "no repository named {given:?} is configured (configured: {}); write ./{given} for a directory",
                names.join(", ")
            )));
        }
        Ok(self.build(Some(given.to_string()), None))
    }

    fn build(&self, location: Option<String>, cfg: Option<&RepositoryConfig>) -> Context {
        let password = self.password(cfg);
        let connect = Connect {
            s3: self.s3_options(cfg),
            cache_dir: self.cache_dir.clone().or_else(|| cfg.and_then(|c| c.cache_dir.clone())),
            kind: IndexKind::Persistent,
            lock_wait: Some(std::time::Duration::from_secs(self.lock_wait)),
            keys: password.key_source(),
        };
        Context { repo: location, connect, password, json: self.json, quiet: self.quiet }
    }

    /// The flags and `CAIRN_PASSWORD*` variables win as a whole: the file's password source
    /// is used only when none of them is given.
    fn password(&self, cfg: Option<&RepositoryConfig>) -> Arc<PasswordCache> {
        let given = PasswordSources::from_env(self.password_file.clone(), self.password_command.clone()).is_given();
        match cfg {
            Some(c) if !given => PasswordCache::new(c.password_file.clone(), c.password_command.clone()),
            _ => PasswordCache::new(self.password_file.clone(), self.password_command.clone()),
        }
    }

    #[cfg(feature = "s3")]
    fn s3_options(&self, cfg: Option<&RepositoryConfig>) -> S3Options {
        // The file's value only where neither the flag nor the variable gives one.
        let from_file = |flag: &Option<String>, var: &str, file: Option<&String>| {
            let env_set = std::env::var_os(var).is_some_and(|v| !v.is_empty());
            flag.clone().or_else(|| if env_set { None } else { file.cloned() })
        };
        S3Options {
            endpoint: from_file(&self.s3.endpoint, "AWS_ENDPOINT_URL", cfg.and_then(|c| c.s3_endpoint.as_ref())),
            region: from_file(&self.s3.region, "AWS_REGION", cfg.and_then(|c| c.s3_region.as_ref())),
            ..self.s3.clone()
        }
    }

    #[cfg(not(feature = "s3"))]
    fn s3_options(&self, _cfg: Option<&RepositoryConfig>) -> S3Options {
        S3Options::default()
    }
}
