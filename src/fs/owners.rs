//! User and group names for numeric ids, from `/etc/passwd` and `/etc/group`.
//!
//! Read once per snapshot or restore. Names served only by NSS modules (LDAP, sssd) are not
//! found and are stored empty: the numeric id is always stored, and a restore uses it wherever
//! the recorded name is empty or unknown on the restoring system (see `docs/cli.md`).

use std::collections::HashMap;

/// Names by numeric id.
#[derive(Clone, Debug, Default)]
pub struct OwnerNames {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
    uids: HashMap<Vec<u8>, u32>,
    gids: HashMap<Vec<u8>, u32>,
}

/// The reverse map: the first id listed for each name.
fn by_name(ids: &HashMap<u32, Vec<u8>>) -> HashMap<Vec<u8>, u32> {
    let mut out: HashMap<Vec<u8>, u32> = HashMap::new();
    for (id, name) in ids {
        out.entry(name.clone()).and_modify(|v| *v = (*v).min(*id)).or_insert(*id);
    }
    out
}

/// `name:x:id:…` lines: name and id (third field), later duplicates ignored.
fn parse(text: &[u8]) -> HashMap<u32, Vec<u8>> {
    let mut out = HashMap::new();
    for line in text.split(|b| *b == b'\n') {
        let mut fields = line.split(|b| *b == b':');
        let (Some(name), _, Some(id)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let id = std::str::from_utf8(id).ok().and_then(|s| s.trim().parse::<u32>().ok());
        if let (Some(id), false) = (id, name.is_empty() || name.starts_with(b"#")) {
            out.entry(id).or_insert_with(|| name.to_vec());
        }
    }
    out
}

impl OwnerNames {
    /// The system's names; empty maps where the files cannot be read.
    pub fn load() -> Self {
        let read = |p: &str| std::fs::read(p).unwrap_or_default();
        Self::from_files(&read("/etc/passwd"), &read("/etc/group"))
    }

    pub fn from_files(passwd: &[u8], group: &[u8]) -> Self {
        let (users, groups) = (parse(passwd), parse(group));
        OwnerNames { uids: by_name(&users), gids: by_name(&groups), users, groups }
    }

    /// The user name of `uid`, empty if it has none.
    pub fn user(&self, uid: u32) -> Vec<u8> {
        self.users.get(&uid).cloned().unwrap_or_default()
    }

    pub fn group(&self, gid: u32) -> Vec<u8> {
        self.groups.get(&gid).cloned().unwrap_or_default()
    }

    /// The uid a user name has on this system (for restoring by name).
    pub fn uid_of(&self, name: &[u8]) -> Option<u32> {
        self.uids.get(name).copied()
    }

    pub fn gid_of(&self, name: &[u8]) -> Option<u32> {
        self.gids.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_group_lines() {
        let names = OwnerNames::from_files(
            b"root:x:0:0:root:/root:/bin/bash\n# comment\npostgres:x:113:120::/var/lib/postgresql:/bin/sh\nbad\n",
            b"root:x:0:\npostgres:x:120:\n",
        );
        assert_eq!(names.user(113), b"postgres");
        assert_eq!(names.group(120), b"postgres");
        assert!(names.user(5).is_empty());
        assert_eq!(names.uid_of(b"root"), Some(0));
    }
}
