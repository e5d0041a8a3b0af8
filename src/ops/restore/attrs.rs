//! Owners and extended attributes of restored entries.
//!
//! Owners: as root (and without `--no-owner`) an entry gets the owner recorded in the
//! snapshot. Where the snapshot recorded a user or group *name* and this system knows that
//! name, the name wins over the number (as borg does by default): a data directory owned by
//! `postgres` stays owned by `postgres` on a host where that user has another uid. Otherwise
//! the numeric id is used.
//!
//! Extended attributes (POSIX ACLs and file capabilities included) are set through the entry's
//! descriptor, or by name under its directory's handle without following it, before the entry
//! is renamed into place, and after its owner: `chown` clears `security.capability`. A
//! filesystem without xattr support, or a name this user may not set (`trusted.*`,
//! `security.*` when not root), costs the attribute, not the entry: it is counted and named in
//! one warning.

use std::io;
use std::sync::Mutex;

use rustix::fd::AsFd;

use super::Restorer;
use crate::fs::{set_xattr_fd, xattrs_unsupported, DirFd, OwnerNames};
use crate::snapshot::Node;

/// Entries whose metadata was not fully restored for a reason the operator should know but
/// that is not a failure: counted, the first one named.
#[derive(Default)]
pub(super) struct Shortfalls {
    xattrs: Mutex<(u64, Option<String>)>,
    devices: Mutex<(u64, Option<String>)>,
}

impl Shortfalls {
    fn note(slot: &Mutex<(u64, Option<String>)>, path: &str) {
        let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        s.1.get_or_insert_with(|| path.to_string());
    }

    /// The counts and one warning per kind of shortfall.
    pub(super) fn into_warnings(self) -> (u64, u64, Vec<String>) {
        let take = |m: Mutex<(u64, Option<String>)>| m.into_inner().unwrap_or_else(|p| p.into_inner());
        let (xattrs, devices) = (take(self.xattrs), take(self.devices));
        let mut warnings = Vec::new();
        if let (n, Some(first)) = &xattrs {
            warnings.push(format!(
                "extended attributes of {n} entries not restored (first: {first}): the target's filesystem \
                 does not support them, or this user may not set them (trusted.*, security.* need root)"
            ));
        }
        if let (n, Some(first)) = &devices {
            warnings.push(format!("{n} device nodes not restored (first: {first}): creating devices needs root"));
        }
        (xattrs.0, devices.0, warnings)
    }
}

/// Which owner names resolve to on this system (loaded only when owners are restored).
pub(super) fn owner_names(restore_owners: bool) -> OwnerNames {
    if restore_owners {
        OwnerNames::load()
    } else {
        OwnerNames::default()
    }
}

impl Restorer<'_> {
    /// The owner to give `node`, `None` when owners are not restored: by name where the name
    /// is known here, else by number.
    pub(super) fn owner_of(&self, node: &Node) -> Option<(u32, u32)> {
        if !self.owner {
            return None;
        }
        let by_name =
            |name: &[u8], find: &dyn Fn(&[u8]) -> Option<u32>| (!name.is_empty()).then(|| find(name)).flatten();
        let uid = by_name(&node.user, &|n| self.names.uid_of(n)).unwrap_or(node.uid);
        let gid = by_name(&node.group, &|n| self.names.gid_of(n)).unwrap_or(node.gid);
        Some((uid, gid))
    }

    /// A device node was left out because this process may not create one.
    pub(super) fn device_skipped(&self, path: &str) {
        Shortfalls::note(&self.shortfalls.devices, path);
    }

    /// Sets `node`'s xattrs on an open file or directory.
    pub(super) fn set_xattrs_fd(&self, fd: impl AsFd, node: &Node, path: &str) {
        let fd = fd.as_fd();
        self.set_xattrs(node, path, |name, value| set_xattr_fd(fd, name, value));
    }

    /// Sets `node`'s xattrs on entry `name` of `dir` (a symlink or special file), not
    /// following it.
    pub(super) fn set_xattrs_at(&self, dir: &DirFd, name: &[u8], node: &Node, path: &str) {
        self.set_xattrs(node, path, |xname, value| dir.set_xattr(name, xname, value));
    }

    fn set_xattrs(&self, node: &Node, path: &str, set: impl Fn(&[u8], &[u8]) -> io::Result<()>) {
        for x in &node.xattrs {
            let Err(e) = set(&x.name, &x.value) else { continue };
            let code = e.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
            if code.is_some_and(|c| xattrs_unsupported(c) || c == rustix::io::Errno::PERM) {
                Shortfalls::note(&self.shortfalls.xattrs, path);
            } else {
                self.fail(
                    path.to_string(),
                    format!("extended attribute {} not restored: {e}", String::from_utf8_lossy(&x.name)),
                );
            }
            return; // one note per entry
        }
    }
}
