//! FIFOs, sockets and device nodes. Each is created under a temporary name with `mknodat`,
//! given its owner, mode, times and xattrs by name without following it, and renamed into place,
//! like a symlink. A socket comes back as a socket node nobody listens on (what a data
//! directory's `.s.PGSQL.5432` is after a crash). Devices need root: without it each is
//! counted and named in one warning, not a failure.
//!
//! An existing entry of the same kind (and, for a device, the same device number) is
//! "unchanged" under `--overwrite if-changed` and `if-newer`; `always` recreates it.

use std::io;

use super::walker::{decision_occupant, Decision, Walker};
use super::{Mode, Restorer};
use crate::fs::{DirFd, NodeKind, Occupant};
use crate::snapshot::{Node, NodeContent};

/// The kind and device number of a special node; `None` for other entries.
pub(super) fn special_of(content: &NodeContent) -> Option<(NodeKind, u64)> {
    match content {
        NodeContent::Fifo => Some((NodeKind::Fifo, 0)),
        NodeContent::Socket => Some((NodeKind::Socket, 0)),
        NodeContent::CharDevice { rdev } => Some((NodeKind::CharDevice, *rdev)),
        NodeContent::BlockDevice { rdev } => Some((NodeKind::BlockDevice, *rdev)),
        _ => None,
    }
}

/// Whether what occupies a name already is the snapshot's special node.
pub(super) fn same_special(occ: Occupant, node: &Node) -> bool {
    matches!((occ, special_of(&node.content)), (Occupant::Special { kind, rdev }, Some((k, r))) if kind == k && rdev == r)
}

impl Walker<'_, '_> {
    pub(super) fn special(&mut self, node: &Node, rel: &str, kind: NodeKind, rdev: u64) {
        let Some(parent) = self.parent_dir(self.stack.len() - 1) else { return };
        let device = matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice);
        if device && !self.r.devices && self.mode() != Mode::VerifyOnly {
            self.plan("skip", kind.name(), rel, 0);
            self.r.device_skipped(&self.display(rel));
            return;
        }
        let Some(dir) = parent else {
            self.plan("create", kind.name(), rel, 0);
            self.r.count(|r| r.specials += 1);
            return;
        };
        let occupant = match self.occupant(&dir, &node.name, rel) {
            Ok(o) => o,
            Err(()) => return,
        };
        let decision = self.decide(node, occupant, || false);
        match decision {
            Decision::Keep(occ) => return self.keep(rel, kind.name(), occ),
            Decision::Unchanged => {
                self.plan("unchanged", kind.name(), rel, 0);
                self.r.count(|r| r.unchanged += 1);
                return;
            }
            Decision::Create => self.plan("create", kind.name(), rel, 0),
            Decision::Replace(_) => self.plan("replace", kind.name(), rel, 0),
        }
        let replace = decision_occupant(decision);
        if self.mode() == Mode::Write {
            let path = self.display(rel);
            if let Err(e) = place(self.r, &dir, node, (kind, rdev), replace, &path) {
                return self.r.fail(path, format!("cannot create {}: {e}", kind.name()));
            }
        }
        self.r.count(|r| {
            r.specials += 1;
            r.replaced += u64::from(replace.is_some());
        });
    }
}

/// Creates the node under a temporary name, applies its metadata and renames it over the name.
fn place(
    r: &Restorer<'_>,
    dir: &DirFd,
    node: &Node,
    (kind, rdev): (NodeKind, u64),
    replace: Option<Occupant>,
    path: &str,
) -> io::Result<()> {
    let tmp = dir.temp_node(kind, rdev)?;
    super::batch::place_temp(r, dir, &tmp, node, Some(r.mode_bits(node.mode)), replace, path)
}
