//! Repository locks: small objects in `locks/`, so they work on object storage too.
//!
//! Writers and readers hold *shared* locks, which never conflict with each other; `prune` holds
//! an *exclusive* lock, which conflicts with everything, so it can never delete what a
//! concurrent writer is about to reference. A lock records host, boot id, pid and the pid's
//! start time, and a heartbeat refreshed every [`HEARTBEAT_SECS`]:
//!
//! * a lock of a process on this host (same boot) that no longer runs is **provably stale** and
//!   removed automatically by whoever meets it;
//! * a lock whose heartbeat is older than [`EXPIRED_AFTER_SECS`] is **expired**: it no longer
//!   blocks anyone (so a vanished host never blocks hourly backups for good) but stays until
//!   `cairn repo unlock` removes it. An exclusive holder re-checks its own lock before every
//!   destructive step and stops if it has expired or been removed;
//! * a lock dated more than [`FUTURE_SKEW_SECS`] in the future (creation or heartbeat) is
//!   **invalid**: no clock that far ahead can be trusted to expire it, so it blocks nobody and
//!   `cairn repo unlock` removes it.
//!
//! Acquiring writes the lock first and then looks for conflicts, so two processes racing for
//! conflicting locks both see each other and back off (with jitter) rather than both proceed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, PutMode};
use crate::codec::{self, RecordKind};
use crate::crypto::{Kind, Sealer};
use crate::error::{Error, Result};
use crate::repo::{Repository, LOCKS_DIR};

pub const LOCK_VERSION: u16 = 1;
pub const HEARTBEAT_SECS: u64 = 60;
pub const EXPIRED_AFTER_SECS: i64 = 30 * 60;
/// How far in the future a lock's time may lie (clock skew between hosts) before the lock is
/// invalid. Ten minutes covers hosts whose clocks drift without NTP for days; a lock dated
/// beyond it (a clock set years ahead, a crafted record) would otherwise never expire.
pub const FUTURE_SKEW_SECS: i64 = 10 * 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockKind {
    Shared,
    Exclusive,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub kind: LockKind,
    pub command: String,
    pub host: String,
    pub boot_id: String,
    pub pid: u32,
    /// The process's start time (clock ticks since boot), to tell a reused pid apart.
    pub pid_start: u64,
    pub created_ns: i64,
    pub heartbeat_ns: i64,
}

impl LockRecord {
    /// A record for this process, dated now.
    pub fn for_this_process(kind: LockKind, command: &str) -> LockRecord {
        let now = crate::time::now_ns();
        let pid = std::process::id();
        LockRecord {
            kind,
            command: command.to_string(),
            host: crate::fs::hostname(),
            boot_id: boot_id(),
            pid,
            pid_start: process_start(pid).unwrap_or(0),
            created_ns: now,
            heartbeat_ns: now,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::seal(RecordKind::Lock, LOCK_VERSION, self)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        codec::unseal(bytes, RecordKind::Lock, LOCK_VERSION, what)
    }

    /// Its process is known to be gone: same host and boot, and the pid is not running (or is
    /// running a different process).
    pub fn provably_stale(&self) -> bool {
        self.host == crate::fs::hostname()
            && self.boot_id == boot_id()
            && process_start(self.pid) != Some(self.pid_start)
    }

    pub fn expired(&self, now_ns: i64) -> bool {
        now_ns.saturating_sub(self.heartbeat_ns) > EXPIRED_AFTER_SECS * 1_000_000_000
    }

    /// Dated beyond [`FUTURE_SKEW_SECS`] in the future: it can never expire, so it counts for
    /// nothing.
    pub fn from_the_future(&self, now_ns: i64) -> bool {
        let limit = now_ns.saturating_add(FUTURE_SKEW_SECS * 1_000_000_000);
        self.created_ns > limit || self.heartbeat_ns > limit
    }

    /// Blocks nobody: expired or dated in the future.
    pub fn ignored(&self, now_ns: i64) -> bool {
        self.expired(now_ns) || self.from_the_future(now_ns)
    }

    /// Why this lock blocks nobody, if it does not: for listings and `repo unlock`.
    pub fn invalid_reason(&self, now_ns: i64) -> Option<String> {
        if self.from_the_future(now_ns) {
            Some(format!(
                "invalid: dated {} in the future, more than the {} min clock skew allowed",
                crate::time::format_ns_secs(self.created_ns.max(self.heartbeat_ns)),
                FUTURE_SKEW_SECS / 60
            ))
        } else if self.expired(now_ns) {
            Some(format!("expired: no heartbeat for more than {} min", EXPIRED_AFTER_SECS / 60))
        } else {
            None
        }
    }

    /// What to do about this live lock, as a sentence for the "locked" error: the command that
    /// actually removes it, or that there is nothing to remove.
    fn remedy(&self) -> String {
        let this_host = self.host == crate::fs::hostname() && self.boot_id == boot_id();
        if this_host {
            format!("wait for pid {} to finish, or stop it (its lock then goes by itself)", self.pid)
        } else {
            format!(
                "if that process is gone, `cairn repo unlock --all` removes the lock (make sure no cairn \
                 process uses the repository), or it expires {} min after its last heartbeat",
                EXPIRED_AFTER_SECS / 60
            )
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock of `{}` (pid {} on {}, since {})",
            match self.kind {
                LockKind::Shared => "shared",
                LockKind::Exclusive => "exclusive",
            },
            self.command,
            self.pid,
            self.host,
            crate::time::format_ns_secs(self.created_ns)
        )
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Field 22 of `/proc/<pid>/stat`: when the process started.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// A held lock; released (deleted) on drop. Its heartbeat runs in a background thread.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    sealer: Arc<Sealer>,
    key: String,
    record: Arc<Mutex<LockRecord>>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl LockGuard {
    pub fn record(&self) -> LockRecord {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Confirms the lock is still held and not expired; call before destructive steps.
    pub fn verify(&self) -> Result<()> {
        let bytes = self.backend.get(&self.key).map_err(|_| Error::Locked("our lock was removed; stopping".into()))?;
        let r = open_lock(&self.sealer, &self.key, &bytes)?;
        if r.ignored(crate::time::now_ns()) {
            return Err(Error::Locked("our lock expired; stopping".into()));
        }
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.heartbeat.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        let _ = self.backend.delete(&self.key);
    }
}

/// A lock record as stored under `key`: sealed with the index key in an encrypted repository
/// (its host name and command are no one else's business), bound to its key.
fn seal_lock(sealer: &Sealer, key: &str, record: &LockRecord) -> Result<Vec<u8>> {
    sealer.seal(Kind::Lock, key.as_bytes(), &record.encode()?)
}

fn open_lock(sealer: &Sealer, key: &str, bytes: &[u8]) -> Result<LockRecord> {
    let what = format!("lock {key}");
    let plain = sealer.open(Kind::Lock, key.as_bytes(), bytes).map_err(|e| match e {
        Error::Corrupt { detail, .. } => Error::corrupt(&what, detail),
        other => other,
    })?;
    LockRecord::decode(&plain, &what)
}

/// Every lock in the repository: key and record (or why it cannot be read).
pub fn list_locks(backend: &dyn Backend, sealer: &Sealer) -> Result<Vec<(String, Result<LockRecord>)>> {
    let mut keys = Vec::new();
    backend.list(LOCKS_DIR, &mut |o| {
        keys.push(o.key);
        Ok(())
    })?;
    Ok(keys
        .into_iter()
        .filter_map(|k| match backend.get(&k) {
            Ok(b) => Some((k.clone(), open_lock(sealer, &k, &b))),
            Err(Error::NotFound { .. }) => None,
            Err(e) => Some((k, Err(e))),
        })
        .collect())
}

impl Repository {
    /// Takes a lock of `kind` for `command`, waiting up to the repository's lock wait for
    /// conflicting locks to go. Removes provably stale locks it meets.
    pub fn lock(&self, kind: LockKind, command: &str) -> Result<LockGuard> {
        let guard = acquire_lock(&self.backend, &self.sealer, kind, command, self.lock_wait)?;
        // What this process read before it held the lock may be stale: a prune may have run
        // in between. Bring the index view up to date under the lock.
        self.sync_index()?;
        Ok(guard)
    }

    /// Removes locks: provably stale ones, or with `all` every lock (after the operator made
    /// sure no cairn process uses the repository). Returns what was removed.
    pub fn unlock(&self, all: bool) -> Result<Vec<String>> {
        let now = crate::time::now_ns();
        let mut removed = Vec::new();
        for (key, rec) in list_locks(self.backend.as_ref(), &self.sealer)? {
            let remove = match &rec {
                Ok(r) => all || r.provably_stale() || r.ignored(now),
                Err(_) => true,
            };
            if remove {
                self.backend.delete(&key)?;
                removed.push(match rec {
                    Ok(r) => match r.invalid_reason(now) {
                        Some(why) => format!("{} ({why})", r.describe()),
                        None => r.describe(),
                    },
                    Err(e) => format!("unreadable lock {key}: {e}"),
                });
            }
        }
        Ok(removed)
    }

    /// Every lock as a sentence, with why it blocks nobody where it does not (for `repo
    /// info`): an invalid lock is named as such, with the command that removes it.
    pub fn describe_locks(&self) -> Result<Vec<String>> {
        let now = crate::time::now_ns();
        Ok(list_locks(self.backend.as_ref(), &self.sealer)?
            .into_iter()
            .map(|(key, rec)| match rec {
                Ok(r) => match r.invalid_reason(now) {
                    Some(why) => format!("{} ({why}; `cairn repo unlock` removes it)", r.describe()),
                    None => r.describe(),
                },
                Err(e) => format!("unreadable lock {key}: {e} (`cairn repo unlock` removes it)"),
            })
            .collect())
    }

    /// A shared lock for a reader; on a read-only repository readers go ahead without one.
    pub fn lock_for_reading(&self, command: &str) -> Result<Option<LockGuard>> {
        match self.lock(LockKind::Shared, command) {
            Ok(g) => Ok(Some(g)),
            Err(Error::ReadOnly { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// How long `lock` waits for conflicting locks.
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }
}

/// Takes a lock of `kind` on the repository in `backend`, waiting up to `wait` for conflicting
/// locks to go; removes provably stale locks it meets. [`Repository::lock`] also refreshes the
/// index view under the lock; an audit takes the lock this way before it reads anything.
pub fn acquire_lock(
    backend: &Arc<dyn Backend>,
    sealer: &Arc<Sealer>,
    kind: LockKind,
    command: &str,
    wait: Duration,
) -> Result<LockGuard> {
    let record = LockRecord::for_this_process(kind, command);
    let pid = record.pid;
    let key = format!("{LOCKS_DIR}{}", crate::repo::RepoId::random()?.0.to_hex());
    let deadline = Instant::now() + wait;
    let mut attempt = 0u32;
    loop {
        backend.put(&key, &seal_lock(sealer, &key, &record)?, PutMode::Overwrite)?;
        let conflicts = conflicts(backend, sealer, &key, kind)?;
        if conflicts.is_empty() {
            return Ok(guard(backend, sealer, key, record));
        }
        let _ = backend.delete(&key);
        if Instant::now() >= deadline {
            return Err(Error::Locked(conflicts.join("; ")));
        }
        attempt += 1;
        // Back off with jitter so racing processes do not collide again.
        let jitter = u64::from(pid.wrapping_mul(2_654_435_761) ^ attempt) % 400;
        std::thread::sleep(Duration::from_millis(200 + jitter));
    }
}

/// Descriptions of live locks (other than `own`) that conflict with `kind`; clears
/// provably stale ones on the way.
fn conflicts(backend: &Arc<dyn Backend>, sealer: &Sealer, own: &str, kind: LockKind) -> Result<Vec<String>> {
    let now = crate::time::now_ns();
    let mut found = Vec::new();
    for (key, rec) in list_locks(backend.as_ref(), sealer)? {
        if key == own {
            continue;
        }
        let Ok(rec) = rec else { continue };
        if rec.provably_stale() {
            let _ = backend.delete(&key);
            continue;
        }
        let conflicting = kind == LockKind::Exclusive || rec.kind == LockKind::Exclusive;
        if conflicting && !rec.ignored(now) {
            found.push(format!("repository held by a {}; {}", rec.describe(), rec.remedy()));
        }
    }
    Ok(found)
}

fn guard(backend: &Arc<dyn Backend>, sealer: &Arc<Sealer>, key: String, record: LockRecord) -> LockGuard {
    let record = Arc::new(Mutex::new(record));
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (backend, sealer, key, record, stop) =
            (backend.clone(), sealer.clone(), key.clone(), record.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_secs(HEARTBEAT_SECS));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut r = record.lock().unwrap_or_else(|p| p.into_inner());
                r.heartbeat_ns = crate::time::now_ns();
                if let Ok(bytes) = seal_lock(&sealer, &key, &r) {
                    let _ = backend.put(&key, &bytes, PutMode::Overwrite);
                }
            }
        })
    };
    LockGuard { backend: backend.clone(), sealer: sealer.clone(), key, record, stop, heartbeat: Some(heartbeat) }
}
