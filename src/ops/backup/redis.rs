//! `snapshot create --redis URL PATH`: a snapshot of a Redis data directory that a fresh
//! `redis-server` loads with every write acknowledged before the snapshot began.
//!
//! - RDB mode (`appendonly no`): wait out a running BGSAVE (it forked before we were asked),
//!   start our own, wait until it finished with `rdb_last_bgsave_status:ok` and a save count
//!   (or LASTSAVE) newer than before, then store the directory with `dump.rdb` as it stands.
//! - AOF mode (`appendonly yes`, Redis 7 multi-part AOF): wait out a running rewrite, read the
//!   manifest, store exactly the files it names plus the manifest, and re-read the manifest
//!   before the snapshot record is written. A rewrite that started or ended meanwhile changed
//!   it: the attempt is discarded and made again (see `consistent.rs`). Rewrites are detected,
//!   not prevented: cairn changes no server setting, so a killed cairn leaves nothing to undo.
//!
//! In both modes Redis's temporary files (`temp-*.rdb`, `temp-rewriteaof-*.aof`, a manifest
//! being replaced) are never stored: they are half-written by design.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::consistent::{Check, Draft};
use super::{backup_checked, canonical_paths, BackupOptions, BackupReport};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::redis::{tail_of, Client, Manifest, Tail, Target};
use crate::repo::Repository;

/// How long a BGSAVE or a running AOF rewrite is waited for by default.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the server is asked whether a save or a rewrite finished.
const POLL: Duration = Duration::from_millis(50);
/// Names Redis gives the files it is still writing (RDB saves, AOF rewrites, manifests).
pub const TEMP_PREFIX: &str = "temp-";

/// Which Redis server, and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisSource {
    /// `redis://[user:password@]host:port`, `unix:///path` or a socket path.
    pub url: String,
    /// The AUTH password when not in the URL (from `--redis-password-file`).
    pub password: Option<String>,
    pub timeout: Duration,
}

fn redis_err(detail: String) -> Error {
    Error::Service { service: "Redis", detail, source: None }
}

pub(super) fn snapshot(
    repo: &Repository,
    opts: &BackupOptions,
    source: &RedisSource,
    checks: &[Check<'_>],
    last: bool,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let [data] = canonical_paths(&opts.paths)?.try_into().map_err(|_| {
        Error::InvalidArgument("--redis takes exactly one path: the server's data directory (CONFIG GET dir)".into())
    })?;
    let mut target = Target::parse(&source.url)?;
    if source.password.is_some() {
        target.password = source.password.clone();
    }
    let mut client = Client::connect(&target)?;
    let dir = served_dir(&mut client, &data)?;
    let deadline = Instant::now() + source.timeout;
    let mut opts = opts.clone();
    opts.excludes.name_prefixes.push(TEMP_PREFIX.into());
    if client.config_get("appendonly")?.as_deref() == Some("yes") {
        return aof_snapshot(repo, opts, &mut client, &dir, checks, last, deadline, progress);
    }
    fresh_rdb(&mut client, deadline)?;
    let dbfile = dir.join(client.config_get("dbfilename")?.unwrap_or_else(|| "dump.rdb".into()));
    if !dbfile.starts_with(&data) || !dbfile.is_file() {
        return Err(redis_err(format!(
            "BGSAVE finished but {} is not a file under {}",
            dbfile.display(),
            data.display()
        )));
    }
    let has_rdb = |d: &Draft<'_>| -> Result<Vec<String>> {
        match d.file_size(&dbfile)? {
            Some(_) => Ok(Vec::new()),
            None => Err(Error::Inconsistent(format!("{} was not in the snapshot", dbfile.display()))),
        }
    };
    let mut all: Vec<Check<'_>> = checks.to_vec();
    all.push(&has_rdb);
    backup_checked(repo, &opts, None, &all, progress)
}

/// The server's `dir`, which must be `data` or lie under it.
fn served_dir(client: &mut Client, data: &Path) -> Result<PathBuf> {
    let dir = client.config_get("dir")?.ok_or_else(|| redis_err("CONFIG GET dir returned nothing".into()))?;
    let real = std::fs::canonicalize(&dir).ok();
    match real {
        Some(real) if real.starts_with(data) => Ok(real),
        _ => Err(Error::InvalidArgument(format!(
            "the Redis server keeps its data in {dir}, which is not under {}",
            data.display()
        ))),
    }
}

fn persistence(client: &mut Client) -> Result<std::collections::BTreeMap<String, String>> {
    client.info("persistence")
}

fn flag(info: &std::collections::BTreeMap<String, String>, key: &str) -> bool {
    info.get(key).is_some_and(|v| v == "1")
}

fn number(info: &std::collections::BTreeMap<String, String>, key: &str) -> Option<i64> {
    info.get(key).and_then(|v| v.parse().ok())
}

/// Polls INFO persistence until `done` says so, failing with `what` past `deadline`.
fn wait_until(
    client: &mut Client,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut(&std::collections::BTreeMap<String, String>) -> bool,
) -> Result<std::collections::BTreeMap<String, String>> {
    loop {
        let info = persistence(client)?;
        if done(&info) {
            return Ok(info);
        }
        if Instant::now() >= deadline {
            return Err(redis_err(format!("gave up waiting for {what} (raise --redis-timeout)")));
        }
        std::thread::sleep(POLL);
    }
}

fn idle(info: &std::collections::BTreeMap<String, String>) -> bool {
    !flag(info, "rdb_bgsave_in_progress") && !flag(info, "aof_rewrite_in_progress")
}

/// Starts a BGSAVE of our own (after any running save or rewrite) and waits until it wrote
/// the RDB file successfully.
fn fresh_rdb(client: &mut Client, deadline: Instant) -> Result<()> {
    let (saves_before, lastsave_before) = loop {
        let info = wait_until(client, deadline, "a running BGSAVE or AOF rewrite to finish", idle)?;
        let saves = number(&info, "rdb_saves");
        let lastsave = client.lastsave()?;
        if saves.is_none() {
            // Without a save counter only LASTSAVE (seconds) tells saves apart.
            while crate::time::now_ns() / 1_000_000_000 <= lastsave {
                std::thread::sleep(POLL);
            }
        }
        match client.call(&["BGSAVE"]) {
            Ok(_) => break (saves, lastsave),
            // Another save or a rewrite started in between: wait for it, then ask again.
            Err(e) if e.to_string().contains("in progress") && Instant::now() < deadline => continue,
            Err(e) => return Err(e),
        }
    };
    let info = wait_until(client, deadline, "BGSAVE to finish", |i| !flag(i, "rdb_bgsave_in_progress"))?;
    let newer = match (saves_before, number(&info, "rdb_saves")) {
        (Some(before), Some(now)) => now > before,
        _ => client.lastsave()? > lastsave_before,
    };
    let status = info.get("rdb_last_bgsave_status").map(String::as_str).unwrap_or("unknown");
    if !newer || status != "ok" {
        return Err(redis_err(format!("BGSAVE did not complete (rdb_last_bgsave_status:{status}); see the Redis log")));
    }
    Ok(())
}

/// Where the AOF lives and what its manifest said when the attempt began.
struct AofState {
    dir: PathBuf,
    manifest_path: PathBuf,
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
}

#[allow(clippy::too_many_arguments)]
fn aof_snapshot(
    repo: &Repository,
    mut opts: BackupOptions,
    client: &mut Client,
    dir: &Path,
    checks: &[Check<'_>],
    last: bool,
    deadline: Instant,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    wait_until(client, deadline, "a running AOF rewrite to finish", |i| {
        !flag(i, "aof_rewrite_in_progress") && !flag(i, "aof_rewrite_scheduled")
    })?;
    let state = read_manifest(client, dir)?;
    // Obsolete (history) files and leftovers in the AOF directory are not part of the data.
    let keep: Vec<&str> = state.manifest.live().map(|f| f.name.as_str()).collect();
    let listing = std::fs::read_dir(&state.dir).map_err(|e| Error::io("cannot list", &state.dir, e))?;
    for entry in listing.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !keep.contains(&name.as_ref()) && state.manifest_path.file_name() != Some(entry.file_name().as_os_str()) {
            opts.excludes.paths.push(state.dir.join(entry.file_name()));
        }
    }
    let verify = |d: &Draft<'_>| verify_aof(&state, d, last);
    let mut all: Vec<Check<'_>> = checks.to_vec();
    all.push(&verify);
    backup_checked(repo, &opts, None, &all, progress)
}

fn read_manifest(client: &mut Client, dir: &Path) -> Result<AofState> {
    let dirname = client.config_get("appenddirname")?.ok_or_else(|| {
        Error::InvalidArgument("AOF mode needs Redis 7 or newer (multi-part AOF with appenddirname)".into())
    })?;
    let filename = client.config_get("appendfilename")?.unwrap_or_else(|| "appendonly.aof".into());
    manifest_at(dir.join(&dirname), &filename)
}

/// The manifest of AOF `filename` in directory `aof_dir`, read now.
fn manifest_at(aof_dir: PathBuf, filename: &str) -> Result<AofState> {
    let manifest_path = aof_dir.join(format!("{filename}.manifest"));
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| Error::io("cannot read", &manifest_path, e))?;
    let manifest = Manifest::parse(&manifest_bytes, &format!("AOF manifest {}", manifest_path.display()))?;
    Ok(AofState { dir: aof_dir, manifest_path, manifest_bytes, manifest })
}

/// After every file was stored: the manifest is unchanged, every file it names (and itself)
/// is in the snapshot, and the last incr file ends on a command boundary (else, on the last
/// attempt, a warning).
fn verify_aof(state: &AofState, draft: &Draft<'_>, last: bool) -> Result<Vec<String>> {
    let now = std::fs::read(&state.manifest_path).map_err(|e| Error::io("cannot read", &state.manifest_path, e))?;
    if now != state.manifest_bytes {
        return Err(Error::Inconsistent(format!(
            "the AOF manifest {} changed while the files it names were read (an AOF rewrite ran)",
            state.manifest_path.display()
        )));
    }
    for name in state.manifest.live().map(|f| &f.name).chain(std::iter::once(&String::new())) {
        let path = if name.is_empty() { state.manifest_path.clone() } else { state.dir.join(name) };
        if draft.file_size(&path)?.is_none() {
            return Err(Error::Inconsistent(format!(
                "{} is named by the AOF manifest but was not stored",
                path.display()
            )));
        }
    }
    let Some(incr) = state.manifest.last_incr() else { return Ok(Vec::new()) };
    let path = state.dir.join(&incr.name);
    let size = draft.file_size(&path)?.unwrap_or(0);
    let file = File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
    // The file is only appended to: its first `size` bytes are what was stored.
    let tail = tail_of(file.take(size)).map_err(|e| Error::io("cannot read", &path, e))?;
    match tail {
        Tail::Complete => Ok(Vec::new()),
        Tail::Partial if !last => Err(Error::Inconsistent(format!(
            "{} was stored ending inside a command (read during a write)",
            path.display()
        ))),
        Tail::Partial => Ok(vec![format!(
            "{} ends inside a command (read during a write): a restore needs `aof-load-truncated yes` \
             (the default), which drops that unacknowledged command",
            path.display()
        )]),
        Tail::Malformed(why) => Ok(vec![format!("{} does not parse as an AOF incr file: {why}", path.display())]),
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
