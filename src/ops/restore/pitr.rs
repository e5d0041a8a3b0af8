//! `restore --at`: the newest snapshot taken at or before a time, plus the WAL archived up to
//! it, so the service replays to that instant.
//!
//! For a PostgreSQL data directory the restored directory is prepared for recovery
//! (`recovery.signal`, `restore_command` calling `cairn wal fetch`, `recovery_target_time`,
//! promotion, archiving switched off so the copy never writes into the archive). For any other
//! service `wal_dir` receives every WAL file of the stream archived at or before the time.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{restore, RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::fs::{DirFd, Occupant};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotFilter};
use crate::snapshot::Snapshot;
use crate::time::{format_ns, format_ns_sql};

#[derive(Clone, Debug)]
pub struct PitrOptions {
    /// The instant to restore to (nanoseconds since the epoch).
    pub at_ns: i64,
    pub target: PathBuf,
    pub stream: String,
    /// Where to write the WAL files archived up to `at_ns` (generic services).
    pub wal_dir: Option<PathBuf>,
    /// Only consider snapshots this filter matches.
    pub filter: SnapshotFilter,
    /// The shell command a restored PostgreSQL runs before `wal fetch %f %p`, such as
    /// `'/usr/local/bin/cairn' --repo '/backup/cairn'`.
    pub fetch_command: String,
    /// Set (by a signal handler) to stop the restore cleanly.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PitrReport {
    pub snapshot: String,
    pub snapshot_time: String,
    pub restore: RestoreReport,
    /// The target is a PostgreSQL data directory prepared for recovery.
    pub postgres: bool,
    /// WAL files written to the WAL directory, in name order.
    pub wal_files: Vec<String>,
    /// The newest WAL archived at or before the target time, if any.
    pub last_wal: Option<String>,
    pub warnings: Vec<String>,
}

pub fn restore_at(repo: &Repository, opts: &PitrOptions, progress: &dyn Progress) -> Result<PitrReport> {
    repo.require_read("restore snapshots")?;
    let (id, snap) = snapshot_before(repo, opts.at_ns, &opts.filter)?;
    if fs::read_dir(&opts.target).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::InvalidArgument(format!(
            "{} is not empty: a point-in-time restore needs an empty or new directory",
            opts.target.display()
        )));
    }
    let restore_opts =
        RestoreOptions { target: opts.target.clone(), cancel: opts.cancel.clone(), ..Default::default() };
    let restored = restore(repo, &id, &snap, &restore_opts, progress)?;
    let mut warnings = Vec::new();
    let mut upto = Vec::new();
    let mut newest_overall: Option<(i64, String)> = None;
    let wal_dir = match &opts.wal_dir {
        Some(dir) => Some((wal_dir_handle(&opts.target, dir)?, dir)),
        None => None,
    };
    repo.for_each_wal(Some(&opts.stream), &mut |r| {
        if newest_overall.as_ref().is_none_or(|(t, _)| r.archived_ns > *t) {
            newest_overall = Some((r.archived_ns, r.name.clone()));
        }
        if r.archived_ns <= opts.at_ns {
            if let Some((handle, path)) = &wal_dir {
                repo.write_wal_file_at(&r, handle, path)?;
            }
            upto.push((r.archived_ns, r.name));
        }
        Ok(())
    })?;
    upto.sort();
    match &newest_overall {
        None => warnings.push(format!(
            "no WAL is archived in stream {:?}: the state will be as of the snapshot ({})",
            opts.stream,
            format_ns(snap.time_ns)
        )),
        Some((t, name)) if *t < opts.at_ns => warnings.push(format!(
            "{} is later than the newest archived WAL ({name}, archived {}): the state will be as of that WAL",
            format_ns(opts.at_ns),
            format_ns(*t)
        )),
        _ => {}
    }
    let postgres = crate::pg::is_data_directory(&opts.target);
    if postgres {
        warnings.extend(prepare_postgres_recovery(&opts.target, opts)?);
    }
    let mut wal_files: Vec<String> =
        if opts.wal_dir.is_some() { upto.iter().map(|(_, n)| n.clone()).collect() } else { Vec::new() };
    wal_files.sort();
    Ok(PitrReport {
        snapshot: id.to_hex(),
        snapshot_time: format_ns(snap.time_ns),
        restore: restored,
        postgres,
        wal_files,
        last_wal: upto.last().map(|(_, n)| n.clone()),
        warnings,
    })
}

/// The newest snapshot (matching the filters) taken at or before the target time.
/// The newest snapshot `filter` matches taken at or before `at_ns`.
pub fn snapshot_before(repo: &Repository, at_ns: i64, filter: &SnapshotFilter) -> Result<(SnapshotId, Snapshot)> {
    let mut best: Option<(SnapshotId, Snapshot)> = None;
    let mut oldest: Option<i64> = None;
    for id in repo.snapshot_ids()? {
        let Ok(snap) = repo.load_snapshot(&id) else {
            continue;
        };
        if !filter.matches(&snap) {
            continue;
        }
        oldest = Some(oldest.map_or(snap.time_ns, |o| o.min(snap.time_ns)));
        if snap.time_ns <= at_ns && best.as_ref().is_none_or(|(_, b)| snap.time_ns > b.time_ns) {
            best = Some((id, snap));
        }
    }
    best.ok_or_else(|| match oldest {
        Some(o) => Error::InvalidArgument(format!(
            "no snapshot was taken at or before {}: the oldest is from {}",
            format_ns(at_ns),
            format_ns(o)
        )),
        None => Error::not_found("snapshot to restore from (the repository has no matching snapshots)"),
    })
}

/// Quotes a word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The directory `--wal-dir` names, opened so that no symlink under the target is followed:
/// inside the target it is resolved component by component from the target's handle.
fn wal_dir_handle(target: &Path, wal_dir: &Path) -> Result<DirFd> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (target_abs, wal_abs) = (absolute(target), absolute(wal_dir));
    match wal_abs.strip_prefix(&target_abs) {
        Ok(rel) => DirFd::open_path(target)
            .and_then(|t| t.open_beneath(rel))
            .map_err(|e| Error::io("cannot open (no symlink under the target is followed)", wal_dir, e)),
        Err(_) => {
            fs::create_dir_all(wal_dir).map_err(|e| Error::io("cannot create", wal_dir, e))?;
            DirFd::open_path(wal_dir).map_err(|e| Error::io("cannot open", wal_dir, e))
        }
    }
}

/// Makes a restored data directory recover to `at` by itself on start. Everything is written
/// through the directory's handle, owned like the directory, and never through a symlink the
/// snapshot carries (a `recovery.signal -> /etc/passwd` planted by whoever owns the data
/// directory must not let a restore run as root truncate or chown that file). Returns warnings.
fn prepare_postgres_recovery(dir_path: &Path, opts: &PitrOptions) -> Result<Vec<String>> {
    let io = |what: &str, e: std::io::Error| Error::io(what, dir_path, e);
    let dir = DirFd::open_path(dir_path).map_err(|e| io("cannot open", e))?;
    let owner = dir.owner().map_err(|e| io("cannot inspect", e))?;
    let mut warnings = Vec::new();
    let restore_command = format!("{} wal fetch %f %p --stream {}", opts.fetch_command, shell_quote(&opts.stream));
    let settings = [
        ("restore_command", restore_command),
        ("recovery_target_time", format_ns_sql(opts.at_ns)),
        ("recovery_target_action", "promote".to_string()),
        ("recovery_target_inclusive", "on".to_string()),
        // The copy must not write its new timeline into the archive it recovers from.
        ("archive_mode", "off".to_string()),
    ];
    let conf_name = b"postgresql.auto.conf";
    let mut conf = match dir.occupant(conf_name).map_err(|e| io("cannot inspect", e))? {
        None => Vec::new(),
        Some(Occupant::File { .. }) => {
            let mut text = Vec::new();
            dir.open_read(conf_name)
                .and_then(|mut f| f.read_to_end(&mut text))
                .map_err(|e| io("cannot read postgresql.auto.conf in", e))?;
            text
        }
        Some(other) => {
            warnings.push(format!(
                "postgresql.auto.conf in the snapshot is a {}, not a file: replaced by one holding only the recovery settings",
                other.kind_name()
            ));
            Vec::new()
        }
    };
    conf.extend_from_slice(format!("\n# Added by cairn restore --at {}\n", format_ns(opts.at_ns)).as_bytes());
    for (k, v) in settings {
        conf.extend_from_slice(format!("{k} = '{}'\n", v.replace('\'', "''")).as_bytes());
    }
    dir.write_file(conf_name, &conf, Some(owner), 0o600).map_err(|e| io("cannot write postgresql.auto.conf in", e))?;
    dir.write_file(b"recovery.signal", b"", Some(owner), 0o600)
        .map_err(|e| io("cannot write recovery.signal in", e))?;
    match dir.occupant(b"pg_wal").map_err(|e| io("cannot inspect", e))? {
        Some(Occupant::Symlink) => warnings.push(
            "pg_wal in the snapshot is a symlink: it was restored as such and nothing was created through it; \
             make sure it points where this server may write, with an archive_status directory"
                .to_string(),
        ),
        _ => {
            let made = dir.open_beneath(Path::new("pg_wal/archive_status")).and_then(|status| {
                let wal = dir.open_dir(b"pg_wal")?;
                set_owner(&wal, owner)?;
                set_owner(&status, owner)
            });
            made.map_err(|e| io("cannot create pg_wal/archive_status in", e))?;
        }
    }
    Ok(warnings)
}

/// Gives a directory we created to the data directory's owner.
fn set_owner(dir: &DirFd, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    match dir.owner()? {
        (u, g) if u == uid && g == gid => Ok(()),
        _ => crate::fs::set_fd_owner(dir, uid, gid),
    }
}
