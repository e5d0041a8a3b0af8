//! The library's error type and the process exit codes the CLI derives from it.
//!
//! Every error renders as one sentence naming the thing involved. Bytes read from disk that do
//! not decode become `Corrupt`, never a panic.

use std::io;
use std::path::Path;

/// Process exit codes, documented in `docs/cli.md`.
pub mod exit {
    /// Everything worked.
    pub const OK: i32 = 0;
    /// The command failed; the message says why. Also `wal fetch` of a file never archived.
    pub const FAILED: i32 = 1;
    /// The command line could not be used: unknown options, missing or malformed arguments,
    /// paths that do not exist, ambiguous snapshot prefixes.
    pub const USAGE: i32 = 2;
    /// The command finished, but some files were skipped (named on stderr): a snapshot was
    /// written without them, or a restore left them out.
    pub const PARTIAL: i32 = 3;
    /// `repo check` found damage.
    pub const DAMAGE_FOUND: i32 = 4;
    /// The repository does not exist or is not a cairn repository.
    pub const NO_REPOSITORY: i32 = 10;
    /// The repository is locked by another process.
    pub const LOCKED: i32 = 11;
    /// The repository uses a format version or a feature this build does not understand.
    pub const UNSUPPORTED_VERSION: i32 = 12;
    /// A repository file that must be intact is damaged (config, snapshot, tree, pack).
    pub const CORRUPT: i32 = 13;
    /// Stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it); what was finished is
    /// complete, and rerunning the command finishes the rest.
    pub const INTERRUPTED: i32 = 130;
    /// The key is write-only: it cannot read what the command needs (restore, ls, check …).
    pub const WRITE_ONLY: i32 = 14;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} is not a cairn repository (no config file); create one with `cairn init`")]
    NotARepository { path: String },

    #[error(
        "{path} holds an unfinished repository (an interrupted `cairn init`); run `cairn init` again to finish it"
    )]
    UnfinishedRepository { path: String },

    #[error("{path} already holds a cairn repository")]
    RepositoryExists { path: String },

    #[error("{what} has format version {found}, but this cairn supports version {supported}")]
    UnsupportedVersion { what: String, found: u32, supported: u32 },

    #[error("the repository uses feature {feature:?} that this cairn does not support; use a newer cairn")]
    UnsupportedFeature { feature: String },

    #[error("{what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },

    #[error("{what} not found")]
    NotFound { what: String },

    #[error("{what} {prefix:?} is ambiguous: {count} ids start with it; give more digits")]
    Ambiguous { what: String, prefix: String, count: usize },

    #[error("{0}")]
    InvalidArgument(String),

    #[error("{path} is on a read-only filesystem")]
    ReadOnly { path: String },

    #[error("no space left on the device holding {path}")]
    NoSpace { path: String },

    #[error("{0}")]
    Conflict(String),

    #[error("{what} interrupted: {detail}")]
    Interrupted { what: String, detail: String },

    #[error("repository is locked: {0}")]
    Locked(String),

    /// A hook (`--pre`, `--post`, …) failed; the sentence names the stage, the command and how.
    #[error("{0}")]
    Hook(String),

    /// A service's data changed while it was read, in every attempt cairn made (an AOF
    /// rewrite, a `--consistent-with` generation that moved): no snapshot was written.
    #[error("{0}")]
    Inconsistent(String),

    /// Input cairn cannot store within the format's bounds (for example a directory whose tree
    /// would be a larger blob than a pack may hold).
    #[error("{0}")]
    TooLarge(String),

    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },

    /// A service cairn talks to (the PostgreSQL server, the S3 endpoint) failed or refused.
    /// `detail` is what to show (URLs' passwords redacted); `source` keeps the client's own
    /// error for callers that want to look inside.
    #[error("{service}: {detail}")]
    Service {
        service: &'static str,
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// One of cairn's own invariants broke (an encoder failed on data cairn built): a bug.
    #[error("internal error: {0} (this is a bug in cairn; please report it)")]
    Internal(String),

    #[error("index: {0}")]
    Index(String),

    #[error("wrong password or no matching key")]
    WrongPassword,

    #[error("the repository has no key files (keys/ is missing or empty); restore access from a paper key with `cairn key import`")]
    NoKeys,

    #[error("this is a write-only key: it cannot {action}")]
    WriteOnly { action: String },
}

/// `text` with the password of every URL in it replaced by `***` (`s3://key:***@host`,
/// `http://user:***@endpoint`), for every message that may name a repository or an endpoint.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_len =
            tail.find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'<>()[]{}`,;".contains(c));
        let authority = &tail[..authority_len.unwrap_or(tail.len())];
        match authority.rfind('@').and_then(|a| authority[..a].find(':').map(|c| (c, a))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority.len()..];
    }
    out.push_str(rest);
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what was being done, mapping the conditions a user must act on
    /// (read-only filesystem, full disk) to their own variants.
    pub fn io(context: impl Into<String>, path: &Path, source: io::Error) -> Self {
        // Kinds survive wrapping (tempfile adds the path) where raw OS codes do not.
        match (source.raw_os_error(), source.kind()) {
            (Some(libc::EROFS), _) | (_, io::ErrorKind::ReadOnlyFilesystem) => {
                Error::ReadOnly { path: path.display().to_string() }
            }
            (Some(libc::ENOSPC), _) | (_, io::ErrorKind::StorageFull) => {
                Error::NoSpace { path: path.display().to_string() }
            }
            _ => Error::Io { context: format!("{} {}", context.into(), path.display()), source },
        }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into(), detail: detail.into() }
    }

    /// A failure of `service` (`"PostgreSQL"`, `"S3"`), keeping the client's error.
    pub fn service(
        service: &'static str,
        detail: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Service { service, detail: detail.into(), source: Some(Box::new(source)) }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// The exit code the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotARepository { .. } | Error::UnfinishedRepository { .. } => exit::NO_REPOSITORY,
            Error::UnsupportedVersion { .. } | Error::UnsupportedFeature { .. } => exit::UNSUPPORTED_VERSION,
            Error::Corrupt { .. } => exit::CORRUPT,
            Error::Locked(_) => exit::LOCKED,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            Error::InvalidArgument(_) | Error::Ambiguous { .. } => exit::USAGE,
            Error::WriteOnly { .. } => exit::WRITE_ONLY,
            _ => exit::FAILED,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::{exit, redact_urls, Error};

    /// Only the user's own arguments exit 2; a service or cairn itself failing never does.
    #[test]
    fn failures_outside_the_arguments_never_exit_as_usage_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Error::service("PostgreSQL", "cannot connect", refused).exit_code(), exit::FAILED);
        assert_eq!(Error::Internal("encoder failed".into()).exit_code(), exit::FAILED);
        assert_eq!(Error::TooLarge("tree".into()).exit_code(), exit::FAILED);
        assert_eq!(Error::InvalidArgument("bad flag".into()).exit_code(), exit::USAGE);
        let e = Error::service("S3", "GET x: 503", std::io::Error::other("503"));
        assert_eq!(e.to_string(), "S3: GET x: 503");
        assert!(std::error::Error::source(&e).is_some(), "the client's error is kept");
    }

    #[test]
    fn url_passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(redact_urls("cannot use s3://AKIA:s3cr3t@host/b/p: x"), "cannot use s3://AKIA:***@host/b/p: x");
        assert_eq!(
            redact_urls("GET http://u:pw@127.0.0.1:9/b (\"https://a:b@c\")"),
            "GET http://u:***@127.0.0.1:9/b (\"https://a:***@c\")"
        );
        assert_eq!(
            redact_urls("s3://bucket/prefix and http://host:9000/x"),
            "s3://bucket/prefix and http://host:9000/x"
        );
        assert_eq!(redact_urls("user@host: no url"), "user@host: no url");
        assert_eq!(redact_urls("s3://k:p@"), "s3://k:***@");
    }
}
