//! Making way for the snapshot's entries: what a restore replaces or deletes is removed, or,
//! with `--backup-existing`, kept beside it as `NAME<SUFFIX>` (default suffix
//! `.cairn-bak-<time>`), never through a symlink.

use std::io;

use super::Restorer;
use crate::fs::{DirFd, Occupant};

impl Restorer<'_> {
    /// Frees `name` for a new entry replacing `occ`. A directory is removed (or renamed aside);
    /// a file, symlink or FIFO stays until the new entry is renamed over it, so the name never
    /// disappears, and with a backup it is first hard-linked aside (the link keeps the old
    /// inode when the rename replaces the name).
    pub(super) fn make_way(&self, dir: &DirFd, name: &[u8], occ: Occupant, path: &str) -> io::Result<()> {
        match (&self.opts.backup_suffix, occ) {
            (Some(suffix), Occupant::Dir) => self.set_aside(dir, name, suffix, path, true),
            (Some(suffix), _) => self.set_aside(dir, name, suffix, path, false),
            (None, Occupant::Dir) => dir.remove_all(name),
            (None, _) => Ok(()),
        }
    }

    /// Removes `name` (`--delete`), or renames it aside with a backup.
    pub(super) fn discard(&self, dir: &DirFd, name: &[u8], path: &str) -> io::Result<()> {
        match &self.opts.backup_suffix {
            Some(suffix) => self.set_aside(dir, name, suffix, path, true),
            None => dir.remove_all(name),
        }
    }

    /// Keeps `name` as `name + suffix` (the first free of `suffix`, `suffix.1`, …): renamed
    /// when `rename`, else hard-linked.
    fn set_aside(&self, dir: &DirFd, name: &[u8], suffix: &str, path: &str, rename: bool) -> io::Result<()> {
        for attempt in 0u32.. {
            let mut aside = name.to_vec();
            aside.extend_from_slice(suffix.as_bytes());
            if attempt > 0 {
                aside.extend_from_slice(format!(".{attempt}").as_bytes());
            }
            if dir.occupant(&aside)?.is_some() {
                continue;
            }
            if rename { dir.rename_noreplace(name, &aside) } else { dir.link(name, dir, &aside) }?;
            let kept = format!("{path}{}", String::from_utf8_lossy(&aside[name.len()..]));
            self.count(|r| r.backups.push(kept));
            return Ok(());
        }
        Ok(())
    }
}
