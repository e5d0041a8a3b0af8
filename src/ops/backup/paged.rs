//! Which files are cut at page boundaries ([`Cuts::Aligned`]) instead of by content: PostgreSQL
//! relation files, recognised by their place in a data directory, and files matching the
//! `--paged` patterns (other page stores: SQLite, LMDB, redb).
//!
//! Why: such a file is an array of fixed-size pages rewritten in place; its bytes never shift.
//! Content-defined cuts buy nothing there, and a rewritten page may move the cuts around it
//! so that two or three chunks change. Aligned blocks of whole pages change exactly one.
//! Measured in `docs/chunk-size.md`, "Paged files".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::chunker::{ChunkerParams, Cuts};
use crate::error::Result;
use crate::ops::select::Includes;

pub(super) struct PagedFiles {
    patterns: Option<Includes>,
    block: u32,
    /// Whether each directory seen as a would-be PostgreSQL data directory holds `PG_VERSION`.
    data_dirs: Mutex<HashMap<PathBuf, bool>>,
}

impl PagedFiles {
    pub fn new(patterns: &[String], params: &ChunkerParams) -> Result<Self> {
        let patterns = match patterns.is_empty() {
            true => None,
            false => Some(Includes::for_origin(patterns, b"/", "--paged")?),
        };
        Ok(PagedFiles { patterns, block: params.page_block(), data_dirs: Mutex::default() })
    }

    /// How the regular file at `path` (absolute) is cut.
    pub fn cuts_for(&self, path: &Path) -> Cuts {
        match self.by_pattern(path) || self.is_postgres_relation(path) {
            true => Cuts::Aligned(self.block),
            false => Cuts::ContentDefined,
        }
    }

    fn by_pattern(&self, path: &Path) -> bool {
        self.patterns.as_ref().is_some_and(|p| matches(p, path))
    }

    /// `DATA/global/N`, `DATA/base/DB/N` with `DATA/PG_VERSION` present, or a tablespace's
    /// `PG_<version>_<catalog>/DB/N`; N a relation file name (`16384`, `16384.2`, `16384_fsm`).
    fn is_postgres_relation(&self, path: &Path) -> bool {
        let names: Vec<&str> = path.iter().rev().take(4).filter_map(|c| c.to_str()).collect();
        let [file, dir, up, ..] = names[..] else { return false };
        if !is_relation_file_name(file) {
            return false;
        }
        let data_dir = |levels: usize| path.ancestors().nth(levels).map(Path::to_path_buf);
        match (dir, up) {
            ("global", _) => data_dir(2).is_some_and(|d| self.holds_pg_version(d)),
            (db, "base") if is_oid(db) => data_dir(3).is_some_and(|d| self.holds_pg_version(d)),
            (db, tablespace) if is_oid(db) => tablespace.starts_with("PG_"),
            _ => false,
        }
    }

    fn holds_pg_version(&self, dir: PathBuf) -> bool {
        let mut seen = self.data_dirs.lock().unwrap_or_else(|p| p.into_inner());
        *seen.entry(dir).or_insert_with_key(|d| d.join("PG_VERSION").is_file())
    }
}

/// Whether `includes` matches `path` the way `--append-only` patterns do (by name, or by the
/// path without its leading `/`).
pub(super) fn matches(includes: &Includes, path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    includes.matches(path.to_string_lossy().trim_start_matches('/'), &name)
}

fn is_oid(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `OID`, `OID.SEGMENT`, `OID_fsm`, `OID_vm`, `OID_init`, and their segments.
fn is_relation_file_name(name: &str) -> bool {
    let (base, segment) = name.split_once('.').unwrap_or((name, "0"));
    let oid = ["_fsm", "_vm", "_init"].iter().find_map(|fork| base.strip_suffix(fork)).unwrap_or(base);
    is_oid(oid) && is_oid(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paged(patterns: &[&str]) -> PagedFiles {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        PagedFiles::new(&patterns, &ChunkerParams::default()).unwrap()
    }

    #[test]
    fn relation_file_names() {
        for good in ["16384", "16384.1", "16384_fsm", "16384_vm.3", "1259_init"] {
            assert!(is_relation_file_name(good), "{good}");
        }
        for bad in ["", "pg_filenode.map", "PG_VERSION", "16384.", "16384_x", "a16384", "16384.1.2", "_fsm"] {
            assert!(!is_relation_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn postgres_relations_need_a_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("main");
        std::fs::create_dir_all(data.join("base/5")).unwrap();
        let p = paged(&[]);
        let aligned = Cuts::Aligned(32 << 10);
        assert_eq!(p.cuts_for(&data.join("base/5/16384")), Cuts::ContentDefined, "no PG_VERSION yet");
        std::fs::write(data.join("PG_VERSION"), "16\n").unwrap();
        let p = paged(&[]);
        assert_eq!(p.cuts_for(&data.join("base/5/16384")), aligned);
        assert_eq!(p.cuts_for(&data.join("base/5/16384_vm")), aligned);
        assert_eq!(p.cuts_for(&data.join("global/1262")), aligned);
        assert_eq!(p.cuts_for(&data.join("base/5/pg_filenode.map")), Cuts::ContentDefined);
        assert_eq!(p.cuts_for(&data.join("pg_wal/000000010000000000000001")), Cuts::ContentDefined);
        assert_eq!(p.cuts_for(Path::new("/ts/PG_16_202307071/5/16390.1")), aligned);
        assert_eq!(p.cuts_for(Path::new("/ts/other/5/16390")), Cuts::ContentDefined);
    }

    #[test]
    fn patterns_choose_other_page_stores() {
        let p = paged(&["*.sqlite", "/srv/app/state.redb"]);
        assert_eq!(p.cuts_for(Path::new("/var/lib/x/db.sqlite")), Cuts::Aligned(32 << 10));
        assert_eq!(p.cuts_for(Path::new("/srv/app/state.redb")), Cuts::Aligned(32 << 10));
        assert_eq!(p.cuts_for(Path::new("/srv/app/other.redb")), Cuts::ContentDefined);
    }
}
