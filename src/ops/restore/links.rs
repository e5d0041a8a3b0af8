//! Hard links. Files of one snapshot with the same hard-link group (`(device, inode)` of the
//! recorded [`crate::snapshot::HardLink`]) are one file: the first member the walk restores is
//! written like any file (it *leads* the group), and every later member is made a link to it
//! with `linkat` between the two directory handles, under a temporary name renamed into place.
//!
//! A group is linked only among the members this restore writes: with `--include` selecting
//! some members, those are linked to each other and the rest are not restored; one member
//! alone is an ordinary file with one link. A member the policy keeps (`--overwrite never`,
//! `if-newer`) leads nothing, since its name does not hold the snapshot's content. Links are
//! made after the batch's files are in place (a leader is in the same or an earlier batch),
//! and a member whose leader could not be restored is reported, not written.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use super::walker::{Walker, BATCH_FILES};
use super::{Mode, Overwrite, Restorer};
use crate::fs::{DirFd, Occupant};
use crate::snapshot::Node;

/// The member that leads a group, as restored.
#[derive(Clone)]
pub(super) struct Leader {
    /// Its directory (`None` when nothing is written).
    dir: Option<Arc<DirFd>>,
    name: Vec<u8>,
    path: String,
    /// Members still expected (links recorded minus those seen): the entry is dropped at 0.
    remaining: u32,
}

/// The leaders of the groups seen so far, by `(device, inode)`.
#[derive(Default)]
pub(super) struct Leaders(HashMap<(u64, u64), Leader>);

/// A later member of a group: link `leader_name` in `leader_dir` as `name` in `dir`.
pub(super) struct LinkJob {
    leader_dir: Arc<DirFd>,
    leader_name: Vec<u8>,
    leader_path: String,
    dir: Arc<DirFd>,
    name: Vec<u8>,
    path: String,
    replace: Option<Occupant>,
}

impl Leaders {
    /// Makes the file `node` (restored at `path` in `dir`) the leader of its group, if it has
    /// one and no leader yet.
    pub(super) fn lead(&mut self, node: &Node, dir: Option<Arc<DirFd>>, path: String) {
        let (Some(key), Some(h)) = (node.link_key(), node.hardlink) else { return };
        let remaining = h.links.saturating_sub(1);
        if remaining > 0 {
            self.0.entry(key).or_insert(Leader { dir, name: node.name.clone(), path, remaining });
        }
    }

    /// The leader of `node`'s group, counting `node` as seen.
    fn take(&mut self, node: &Node) -> Option<Leader> {
        let key = node.link_key()?;
        let leader = self.0.get_mut(&key)?;
        leader.remaining -= 1;
        let found = leader.clone();
        if found.remaining == 0 {
            self.0.remove(&key); // no more members: release the directory handle
        }
        Some(found)
    }
}

impl Walker<'_, '_> {
    /// Restores `node` as a link to its group's leader; false when it has none (it is then
    /// restored as a file, and may lead).
    pub(super) fn hard_link(&mut self, node: &Node, rel: &str) -> bool {
        let Some(leader) = self.leaders.take(node) else { return false };
        let Some(parent) = self.parent_dir(self.stack.len() - 1) else { return true };
        let occupant = match &parent {
            Some(dir) => match self.occupant(dir, &node.name, rel) {
                Ok(o) => o,
                Err(()) => return true,
            },
            None => None,
        };
        if let (Some(occ), Overwrite::Never) = (occupant, self.policy()) {
            self.keep(rel, "hardlink", occ);
            return true;
        }
        match (self.mode(), parent, leader.dir) {
            (Mode::Write, Some(dir), Some(leader_dir)) => {
                self.queue_link(LinkJob {
                    leader_dir,
                    leader_name: leader.name,
                    leader_path: leader.path,
                    dir,
                    name: node.name.clone(),
                    path: self.display(rel),
                    replace: occupant,
                });
            }
            (_, parent, leader_dir) => {
                let same = match (&parent, &leader_dir) {
                    (Some(d), Some(l)) => same_file(l, &leader.name, d, &node.name),
                    _ => false,
                };
                let action = match (occupant, same) {
                    (_, true) => "unchanged",
                    (Some(_), false) => "replace",
                    (None, false) => "create",
                };
                self.plan(action, "hardlink", rel, 0);
                self.r.count(|r| match same {
                    true => r.unchanged += 1,
                    false => {
                        r.hardlinks += 1;
                        r.replaced += u64::from(occupant.is_some());
                    }
                });
            }
        }
        true
    }
}

impl Walker<'_, '_> {
    /// Queues a link; a batch holds at most as many links as files.
    fn queue_link(&mut self, job: LinkJob) {
        self.batch.links.push(job);
        if self.batch.links.len() >= BATCH_FILES {
            self.queue_batch();
        }
    }
}

/// Whether two names are links to one file.
fn same_file(a_dir: &DirFd, a: &[u8], b_dir: &DirFd, b: &[u8]) -> bool {
    match (a_dir.stat(a), b_dir.stat(b)) {
        (Ok(x), Ok(y)) => x.kind == crate::fs::EntryKind::File && (x.dev, x.inode) == (y.dev, y.inode),
        _ => false,
    }
}

/// Makes every link of a batch (after its files are in place).
pub(super) fn place_all(r: &Restorer<'_>, jobs: &[LinkJob]) {
    for job in jobs {
        if job.replace.is_some() && same_file(&job.leader_dir, &job.leader_name, &job.dir, &job.name) {
            r.count(|rep| rep.unchanged += 1);
            continue;
        }
        match place(r, job) {
            Ok(()) => r.count(|rep| {
                rep.hardlinks += 1;
                rep.replaced += u64::from(job.replace.is_some());
            }),
            Err(e) => r.fail(job.path.clone(), format!("cannot link to {}: {e}", job.leader_path)),
        }
    }
}

fn place(r: &Restorer<'_>, job: &LinkJob) -> io::Result<()> {
    let tmp = job.leader_dir.link_temp(&job.leader_name, &job.dir)?;
    let placed = (|| {
        if let Some(occ) = job.replace {
            r.make_way(&job.dir, &job.name, occ, &job.path)?;
        }
        job.dir.rename(&tmp, &job.name)
    })();
    // rename() of one link over another of the same file does nothing: the temporary name
    // would stay (same_file above excludes that case; this covers a race with it).
    if job.dir.occupant(&tmp).ok().flatten().is_some() {
        let _ = job.dir.unlink(&tmp);
    }
    placed
}
