//! `--host`, `--tag` and `--path`: which snapshots `latest` may pick and `snapshot list`
//! shows, the same in every command that takes a snapshot.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::Args;

use cairn::repo::SnapshotFilter;

#[derive(Args, Clone, Debug, Default)]
pub struct SelectArgs {
    /// Only snapshots of this host (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: all must be present).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only snapshots of exactly these paths (repeatable), as given to `snapshot create`.
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<PathBuf>,
}

impl SelectArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self
                .paths
                .iter()
                .map(|p| {
                    let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                    let s = abs.as_os_str().as_bytes();
                    let trimmed = if s.len() > 1 { s.strip_suffix(b"/").unwrap_or(s) } else { s };
                    trimmed.to_vec()
                })
                .collect(),
        }
    }
}
