//! Where the CLI gets a repository password: `--password-file` / `CAIRN_PASSWORD_FILE`,
//! `--password-command` / `CAIRN_PASSWORD_COMMAND`, `CAIRN_PASSWORD`, then a prompt on the
//! terminal. No flag takes the password itself (flags show in `ps`). The password is asked
//! for once per process and kept for the next open of the same run (`init` opens twice).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cairn::crypto::{prompt_tty, Password, PasswordSources};
use cairn::error::Result;
use cairn::repo::KeySource;

/// The password sources of one run, and the password once it was given.
pub struct PasswordCache {
    sources: PasswordSources,
    cached: Mutex<Option<Password>>,
}

impl PasswordCache {
    pub fn new(file: Option<PathBuf>, command: Option<String>) -> Arc<Self> {
        Arc::new(PasswordCache { sources: PasswordSources::from_env(file, command), cached: Mutex::new(None) })
    }

    /// The password; a prompt asks twice when `confirm` (a new repository or key).
    pub fn get(&self, prompt: &str, confirm: bool) -> Result<Password> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cached.as_ref() {
            return Ok(p.clone());
        }
        let p = self.sources.resolve(|| prompt_tty(prompt, confirm))?;
        *cached = Some(p.clone());
        Ok(p)
    }

    /// The password options a callback into this cairn (PostgreSQL's `restore_command`) must
    /// repeat, as (flag, value): a file (made absolute) or a command, never the password.
    pub fn callback_option(&self) -> Option<(&'static str, String)> {
        if let Some(f) = &self.sources.file {
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            return Some(("--password-file", abs.display().to_string()));
        }
        self.sources.command.as_ref().map(|c| ("--password-command", c.clone()))
    }

    /// The password sources of a copy's source repository: `--from-password-file` /
    /// `CAIRN_FROM_PASSWORD_FILE`, `--from-password-command` / `CAIRN_FROM_PASSWORD_COMMAND`,
    /// `CAIRN_FROM_PASSWORD`; `None` when none is given (the source then shares the
    /// destination's password).
    pub fn for_source(file: Option<PathBuf>, command: Option<String>) -> Option<Arc<Self>> {
        let sources =
            PasswordSources::from_vars(file, command, |k| std::env::var(k.replacen("CAIRN_", "CAIRN_FROM_", 1)).ok());
        sources.is_given().then(|| Arc::new(PasswordCache { sources, cached: Mutex::new(None) }))
    }

    /// What a repository open asks (only when the repository is encrypted).
    pub fn key_source(self: &Arc<Self>) -> KeySource {
        self.key_source_asking("repository password: ")
    }

    /// [`PasswordCache::key_source`] with its own prompt.
    pub fn key_source_asking(self: &Arc<Self>, prompt: &'static str) -> KeySource {
        let me = Arc::clone(self);
        KeySource::from_fn(Arc::new(move || me.get(prompt, false)))
    }
}
