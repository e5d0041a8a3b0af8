//! `restore --at`: the newest snapshot taken at or before a time, plus the WAL archived up to
//! it, so the service replays to that instant.
//!
//! For a PostgreSQL data directory the restored directory is prepared for recovery
//! (`recovery.signal`, `restore_command` calling `cairn wal fetch`, `recovery_target_time`,
//! promotion, archiving switched off so the copy never writes into the archive). For any other
//! service `wal_dir` receives every WAL file of the stream archived at or before the time.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{restore, RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::Repository;
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
    /// Only consider snapshots with this tag / host.
    pub tag: Option<String>,
    pub host: Option<String>,
    /// The shell command a restored PostgreSQL runs before `wal fetch %f %p`, such as
    /// `'/usr/local/bin/cairn' --repo '/backup/cairn'`.
    pub fetch_command: String,
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
    let (id, snap) = snapshot_before(repo, opts)?;
    if fs::read_dir(&opts.target).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::InvalidArgument(format!(
            "{} is not empty: a point-in-time restore needs an empty or new directory",
            opts.target.display()
        )));
    }
    let restored =
        restore(repo, &snap, &RestoreOptions { target: opts.target.clone(), ..Default::default() }, progress)?;
    let mut warnings = Vec::new();
    let mut upto = Vec::new();
    let mut newest_overall: Option<(i64, String)> = None;
    if let Some(dir) = &opts.wal_dir {
        fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    repo.for_each_wal(Some(&opts.stream), &mut |r| {
        if newest_overall.as_ref().is_none_or(|(t, _)| r.archived_ns > *t) {
            newest_overall = Some((r.archived_ns, r.name.clone()));
        }
        if r.archived_ns <= opts.at_ns {
            if let Some(dir) = &opts.wal_dir {
                repo.write_wal_file(&r, &dir.join(&r.name))?;
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
        prepare_postgres_recovery(&opts.target, opts)?;
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
fn snapshot_before(repo: &Repository, opts: &PitrOptions) -> Result<(SnapshotId, Snapshot)> {
    let mut best: Option<(SnapshotId, Snapshot)> = None;
    let mut oldest: Option<i64> = None;
    for id in repo.snapshot_ids()? {
        let Ok(snap) = repo.load_snapshot(&id) else {
            continue;
        };
        let matches = opts.tag.as_ref().is_none_or(|t| snap.tags.contains(t))
            && opts.host.as_ref().is_none_or(|h| &snap.host == h);
        if !matches {
            continue;
        }
        oldest = Some(oldest.map_or(snap.time_ns, |o| o.min(snap.time_ns)));
        if snap.time_ns <= opts.at_ns && best.as_ref().is_none_or(|(_, b)| snap.time_ns > b.time_ns) {
            best = Some((id, snap));
        }
    }
    best.ok_or_else(|| match oldest {
        Some(o) => Error::InvalidArgument(format!(
            "no snapshot was taken at or before {}: the oldest is from {}",
            format_ns(opts.at_ns),
            format_ns(o)
        )),
        None => Error::not_found("snapshot to restore from (the repository has no matching snapshots)"),
    })
}

/// Quotes a word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Makes a restored data directory recover to `at` by itself on start.
fn prepare_postgres_recovery(dir: &Path, opts: &PitrOptions) -> Result<()> {
    let restore_command = format!("{} wal fetch %f %p --stream {}", opts.fetch_command, shell_quote(&opts.stream));
    let settings = [
        ("restore_command", restore_command),
        ("recovery_target_time", format_ns_sql(opts.at_ns)),
        ("recovery_target_action", "promote".to_string()),
        ("recovery_target_inclusive", "on".to_string()),
        // The copy must not write its new timeline into the archive it recovers from.
        ("archive_mode", "off".to_string()),
    ];
    let conf = dir.join("postgresql.auto.conf");
    let mut f =
        OpenOptions::new().create(true).append(true).open(&conf).map_err(|e| Error::io("cannot open", &conf, e))?;
    let mut text = format!("\n# Added by cairn restore --at {}\n", format_ns(opts.at_ns));
    for (k, v) in settings {
        text.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
    }
    f.write_all(text.as_bytes()).map_err(|e| Error::io("cannot write", &conf, e))?;
    let signal = dir.join("recovery.signal");
    fs::write(&signal, b"").map_err(|e| Error::io("cannot write", &signal, e))?;
    for d in ["pg_wal", "pg_wal/archive_status"] {
        let p = dir.join(d);
        fs::create_dir_all(&p).map_err(|e| Error::io("cannot create", &p, e))?;
    }
    // Owned like the data directory, so the server can read what we added.
    if let Ok(meta) = fs::metadata(dir) {
        use std::os::unix::fs::MetadataExt;
        for p in [conf, signal, dir.join("pg_wal"), dir.join("pg_wal/archive_status")] {
            let _ = std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid()));
        }
    }
    Ok(())
}
