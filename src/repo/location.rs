//! Where a repository lives, as users name it: a local directory (the embedded default) or
//! `s3://BUCKET/PREFIX`; and where its derived index is kept for each.
//!
//! A local repository keeps its RocksDB index inside (`<repo>/index`). An object-store
//! repository keeps it in a local cache directory (`$XDG_CACHE_HOME/cairn/<repository id>/index`,
//! else `~/.cache/cairn/…`), rebuilt from the pack trailers when missing or stale: nothing
//! the repository needs exists only in the cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, LocalBackend};
use crate::error::{Error, Result};
use crate::repo::layout::{CONFIG_KEY, LOCAL_INDEX_DIR};
use crate::repo::open::{ReserveGuard, DEFAULT_LOCK_WAIT};
use crate::repo::{repair_index, AuditOpen, Config, IndexKind, InitOptions, Repository, SyncReport};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoLocation {
    Local(PathBuf),
    S3(String),
}

impl RepoLocation {
    pub fn parse(s: &str) -> RepoLocation {
        if s.starts_with("s3://") {
            RepoLocation::S3(s.to_string())
        } else {
            RepoLocation::Local(PathBuf::from(s))
        }
    }

    /// The string a restored PostgreSQL passes back to `cairn --repo`: absolute for a
    /// local path.
    pub fn for_callback(&self) -> Result<String> {
        match self {
            RepoLocation::Local(p) => {
                let abs = std::fs::canonicalize(p).map_err(|e| Error::io("cannot resolve", p, e))?;
                Ok(abs.display().to_string())
            }
            RepoLocation::S3(url) => Ok(url.clone()),
        }
    }
}

impl std::fmt::Display for RepoLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoLocation::Local(p) => write!(f, "{}", p.display()),
            RepoLocation::S3(u) => f.write_str(&crate::error::redact_urls(u)),
        }
    }
}

/// S3 connection settings (empty without the `s3` feature).
#[cfg(feature = "s3")]
pub use crate::backend::S3Options;
#[cfg(not(feature = "s3"))]
#[derive(Clone, Debug, Default)]
pub struct S3Options {}

/// How to reach a repository.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    pub s3: S3Options,
    /// Index cache for object-store repositories (default: [`default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    pub kind: IndexKind,
    /// How long taking a lock waits for a conflicting one (default [`DEFAULT_LOCK_WAIT`]).
    pub lock_wait: Option<Duration>,
    /// The password of an encrypted repository.
    pub keys: crate::repo::KeySource,
}

/// `$XDG_CACHE_HOME/cairn`, else `$HOME/.cache/cairn`, else a directory under /tmp.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cairn")
}

impl Connect {
    fn backend(&self, loc: &RepoLocation) -> Result<Arc<dyn Backend>> {
        Ok(match loc {
            RepoLocation::Local(p) => Arc::new(LocalBackend::new(p)),
            #[cfg(feature = "s3")]
            RepoLocation::S3(url) => Arc::new(crate::backend::S3Backend::open(url, &self.s3)?),
            #[cfg(not(feature = "s3"))]
            RepoLocation::S3(url) => {
                return Err(Error::InvalidArgument(format!(
                    "{}: this cairn was built without S3 support",
                    crate::error::redact_urls(url)
                )))
            }
        })
    }

    /// Where the index of the repository with `config` lives.
    fn index_dir(&self, loc: &RepoLocation, config: &Config) -> PathBuf {
        match loc {
            RepoLocation::Local(p) => p.join(LOCAL_INDEX_DIR),
            RepoLocation::S3(_) => {
                self.cache_dir.clone().unwrap_or_else(default_cache_dir).join(config.id.0.to_hex()).join("index")
            }
        }
    }

    fn config(&self, backend: &Arc<dyn Backend>) -> Result<Config> {
        match backend.get(CONFIG_KEY) {
            Ok(b) => Config::decode(&b),
            Err(Error::NotFound { .. }) => Err(Error::NotARepository { path: backend.location() }),
            Err(e) => Err(e),
        }
    }

    fn lock_wait(&self) -> Duration {
        self.lock_wait.unwrap_or(DEFAULT_LOCK_WAIT)
    }

    /// Opens the repository; its locks wait up to [`Connect::lock_wait`].
    pub fn open(&self, loc: &RepoLocation, access: crate::repo::Access) -> Result<Repository> {
        let mut repo = self.open_unlocked(loc, access)?;
        repo.set_lock_wait(self.lock_wait());
        // Under the repository id, beside object-store repositories' index caches.
        let own = self.cache_dir.clone().unwrap_or_else(default_cache_dir).join(repo.config().id.0.to_hex());
        repo.use_own_cache(own.join("write-only"));
        Ok(repo)
    }

    fn open_unlocked(&self, loc: &RepoLocation, access: crate::repo::Access) -> Result<Repository> {
        if let RepoLocation::Local(p) = loc {
            return Repository::open_local_with(p, access, self.kind, &self.keys);
        }
        let backend = self.backend(loc)?;
        let config = self.config(&backend)?;
        let dir = self.index_dir(loc, &config);
        crate::io::create_private_dir_all(&dir).map_err(|e| Error::io("cannot create the index cache", &dir, e))?;
        Repository::open_with(backend, Some(dir), access, self.kind, &self.keys)
    }

    /// Opens for writing on behalf of a command that frees space (`forget`, `prune`): a local
    /// repository's space reserve is released first, so that the lock and the index can be
    /// written on a disk filled to the last byte, and set aside again when the repository is
    /// dropped.
    pub fn open_to_reclaim(&self, loc: &RepoLocation) -> Result<Repository> {
        let backend = self.backend(loc)?;
        let is_repo = matches!(loc, RepoLocation::Local(p) if p.join(CONFIG_KEY).is_file());
        let released = is_repo && backend.release_reserve()?;
        match self.open(loc, crate::repo::Access::Write) {
            Ok(mut repo) => {
                repo.reserve = is_repo.then(|| ReserveGuard(backend));
                Ok(repo)
            }
            Err(e) => {
                if released {
                    let _ = backend.restore_reserve();
                }
                Err(e)
            }
        }
    }

    pub fn init(&self, loc: &RepoLocation, options: &InitOptions) -> Result<Config> {
        match loc {
            RepoLocation::Local(p) => Repository::init_local(p, options),
            RepoLocation::S3(_) => Repository::init(&self.backend(loc)?, options),
        }
    }

    /// Writes a new key file from a paper key (see [`crate::repo::import_paper_key`]).
    pub fn import_paper_key(
        &self,
        loc: &RepoLocation,
        paper: &str,
        password: &crate::crypto::Password,
        kdf: crate::crypto::KdfParams,
    ) -> Result<String> {
        let backend = self.backend(loc)?;
        self.config(&backend)?;
        crate::repo::import_paper_key(&backend, paper, password, kdf)
    }

    pub fn audit(&self, loc: &RepoLocation) -> Result<AuditOpen> {
        if let RepoLocation::Local(p) = loc {
            return Repository::open_local_for_audit_waiting(p, self.kind, self.lock_wait(), &self.keys);
        }
        let backend = self.backend(loc)?;
        let dir = self.config(&backend).ok().map(|c| self.index_dir(loc, &c)).filter(|d| d.join("CURRENT").exists());
        Repository::open_for_audit(backend, dir, self.kind, self.lock_wait(), &self.keys)
    }

    pub fn repair_index(&self, loc: &RepoLocation) -> Result<SyncReport> {
        if let RepoLocation::Local(p) = loc {
            return crate::repo::repair_local_index(p, &self.keys);
        }
        let backend = self.backend(loc)?;
        let config = self.config(&backend)?;
        let dir = self.index_dir(loc, &config);
        crate::io::create_private_dir_all(dir.parent().unwrap_or(Path::new("/")))
            .map_err(|e| Error::io("cannot create the index cache", &dir, e))?;
        repair_index(backend, &dir, &self.keys)
    }
}
