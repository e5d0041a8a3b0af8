//! Refusing a live target: restoring under a running service replaces files it still writes
//! through their old inodes, and what it writes after that is silently lost. Before writing
//! into a non-empty target, every process's open files and memory maps (`/proc/*/fd`,
//! `/proc/*/maps`) are looked at; one inside the target refuses the restore unless `--force`.

use std::path::{Path, PathBuf};

use super::{Mode, RestoreOptions};
use crate::error::{Error, Result};

/// How many holders an error names (the rest are counted).
const NAMED_HOLDERS: usize = 3;

/// A process that has a file of the target open or mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    pub path: PathBuf,
}

/// Errs when processes hold files of a non-empty target; with `--force`, the same sentence
/// comes back as a warning.
pub(super) fn refuse_live_target(opts: &RestoreOptions, target_empty: bool) -> Result<Option<String>> {
    if opts.mode != Mode::Write || target_empty {
        return Ok(None);
    }
    let Ok(target) = std::fs::canonicalize(&opts.target) else { return Ok(None) };
    let holders = holders_of(&target);
    if holders.is_empty() {
        return Ok(None);
    }
    let named: Vec<String> = holders
        .iter()
        .take(NAMED_HOLDERS)
        .map(|h| format!("process {} ({}) has {} open", h.pid, h.command, h.path.display()))
        .collect();
    let more = match holders.len().saturating_sub(NAMED_HOLDERS) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let sentence = format!("{} is in use: {}{more}", target.display(), named.join("; "));
    if opts.force {
        return Ok(Some(format!("{sentence}; restoring anyway (--force): what it writes now may be lost")));
    }
    Err(Error::Conflict(format!(
        "{sentence}; stop the service first (its writes to replaced files would be lost), or pass --force"
    )))
}

/// Every (process, file) with a file under `dir` open or mapped, other than this process.
pub fn holders_of(dir: &Path) -> Vec<Holder> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let proc_dir = entry.path();
        let mut paths: Vec<PathBuf> = Vec::new();
        if let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) {
            paths.extend(fds.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()));
        }
        if let Ok(maps) = std::fs::read_to_string(proc_dir.join("maps")) {
            paths.extend(maps.lines().filter_map(|l| l.split_once('/').map(|(_, p)| PathBuf::from(format!("/{p}")))));
        }
        let Some(path) = paths.into_iter().find(|p| p.starts_with(dir) && p != dir) else { continue };
        let command = std::fs::read_to_string(proc_dir.join("comm")).map(|c| c.trim().to_string()).unwrap_or_default();
        out.push(Holder { pid, command, path });
    }
    out.sort_by_key(|h| h.pid);
    out
}
