//! What `snapshot create` leaves out: the user's `--exclude` patterns, tag files
//! (`--exclude-if-present`, `--exclude-caches`), a size limit and file system boundaries,
//! compiled once per snapshot into a [`Filter`] the walk asks about each entry.
//!
//! Pattern rules (restic's): a pattern without `/` matches an entry's name anywhere; one that
//! starts with `/` matches the absolute path; any other pattern with `/` is anchored at each
//! backed-up path. `*` and `?` never cross a `/`, `**` spans any number of directories, and a
//! match on a directory leaves out everything it holds. A trailing `/` is ignored.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::Excludes;
use crate::error::{Error, Result};
use crate::fs::DirFd;

/// The tag file of the Cache Directory Tagging specification and the bytes it starts with.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// A tag file: its name, and the bytes it must start with (if any) to count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFile {
    pub name: String,
    pub header: Option<Vec<u8>>,
}

impl TagFile {
    /// Parses restic's `NAME[:HEADER]`.
    pub fn parse(spec: &str) -> Result<TagFile> {
        let (name, header) = match spec.split_once(':') {
            Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
            None => (spec, None),
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "bad --exclude-if-present {spec:?}: give a file name, without '/'"
            )));
        }
        Ok(TagFile { name: name.to_string(), header })
    }

    /// The `--exclude-caches` tag.
    pub fn cachedir() -> TagFile {
        TagFile { name: CACHEDIR_TAG.into(), header: Some(CACHEDIR_SIGNATURE.to_vec()) }
    }

    /// Whether directory `dir` holds this tag (a regular file, with the header if one is set).
    fn present_in(&self, dir: &DirFd) -> bool {
        let name = self.name.as_bytes();
        let Ok(meta) = dir.stat(name) else { return false };
        if meta.kind != crate::fs::EntryKind::File {
            return false;
        }
        let Some(header) = &self.header else { return true };
        let mut start = vec![0; header.len()];
        // An unreadable tag does not exclude: storing too much is the safe mistake.
        dir.open_read(name).and_then(|mut f| f.read_exact(&mut start)).is_ok() && &start == header
    }
}

/// Reads an exclude file: one pattern per line, `#` comments and blank lines ignored,
/// surrounding spaces trimmed.
pub fn read_pattern_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::InvalidArgument(format!("exclude file {} does not exist", path.display()))
        }
        _ => Error::io("cannot read", path, e),
    })?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::InvalidArgument(format!("exclude file {} is not UTF-8 text", path.display())))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

/// Parses a size as `--exclude-larger-than` takes it: bytes, or a number with `K`, `M`, `G`
/// or `T` (powers of 1024, an optional `B`/`iB` after the letter, any case).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || Error::InvalidArgument(format!("bad size {text:?}: give bytes or a number with K, M, G or T"));
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let number: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1 << shift).ok_or_else(bad)
}

impl Excludes {
    /// Checks the patterns compile, so a bad one is reported before any work starts.
    pub fn validate(&self) -> Result<()> {
        Patterns::new(&self.patterns, &self.ignore_case_patterns).map(drop)
    }
}

/// Patterns compiled by kind (see the module docs).
struct Patterns {
    by_name: GlobSet,
    absolute: GlobSet,
    anchored: GlobSet,
}

impl Patterns {
    fn new(exact: &[String], ignore_case: &[String]) -> Result<Patterns> {
        let (mut by_name, mut absolute, mut anchored) =
            (GlobSetBuilder::new(), GlobSetBuilder::new(), GlobSetBuilder::new());
        let tagged = exact.iter().map(|p| (p, false)).chain(ignore_case.iter().map(|p| (p, true)));
        for (pattern, fold) in tagged {
            let flag = if fold { "--iexclude" } else { "--exclude" };
            let bad = |why: String| Error::InvalidArgument(format!("bad {flag} pattern {pattern:?}: {why}"));
            let trimmed = pattern.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(bad("it would exclude everything".into()));
            }
            let rel = trimmed.strip_prefix("./").unwrap_or(trimmed);
            let glob = |p: &str| {
                GlobBuilder::new(p)
                    .literal_separator(true)
                    .case_insensitive(fold)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| bad(e.kind().to_string()))
            };
            match () {
                _ if trimmed.starts_with('/') => absolute.add(glob(trimmed)?),
                _ if rel.contains('/') => anchored.add(glob(rel)?),
                _ => by_name.add(glob(rel)?),
            };
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(format!("bad --exclude: {e}")));
        Ok(Patterns { by_name: build(by_name)?, absolute: build(absolute)?, anchored: build(anchored)? })
    }

    fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.absolute.is_empty() && self.anchored.is_empty()
    }

    /// Whether the entry at absolute `path` (relative `rel` to its backed-up path) matches.
    fn matches(&self, path: &Path, rel: Option<&Path>, name: &[u8]) -> bool {
        self.by_name.is_match(OsStr::from_bytes(name))
            || self.absolute.is_match(path)
            || rel.is_some_and(|r| self.anchored.is_match(r))
    }
}

/// Why a directory's contents are left out while the directory itself is kept.
pub(super) enum Emptied {
    /// It holds this tag file, which is kept.
    Tagged(String),
    /// It is on another file system than its backed-up path (`--one-file-system`).
    OtherDevice,
}

/// The exclusion rules of one snapshot, ready to ask.
pub(super) struct Filter<'a> {
    rules: &'a Excludes,
    patterns: Patterns,
    tags: Vec<TagFile>,
    /// Each backed-up path with its device (`st_dev`).
    roots: Vec<(PathBuf, u64)>,
}

impl<'a> Filter<'a> {
    /// Compiles `rules` for a walk of `roots` (canonical paths); a bad pattern is an error.
    pub fn new(rules: &'a Excludes, roots: &[PathBuf]) -> Result<Filter<'a>> {
        let patterns = Patterns::new(&rules.patterns, &rules.ignore_case_patterns)?;
        let mut tags = rules.if_present.clone();
        if rules.caches {
            tags.push(TagFile::cachedir());
        }
        let roots = roots
            .iter()
            .map(|r| {
                let dev = std::os::unix::fs::MetadataExt::dev(
                    &std::fs::symlink_metadata(r).map_err(|e| Error::io("cannot access", r, e))?,
                );
                Ok((r.clone(), dev))
            })
            .collect::<Result<_>>()?;
        Ok(Filter { rules, patterns, tags, roots })
    }

    /// The backed-up path `path` lies in, with its device.
    fn root_of(&self, path: &Path) -> Option<&(PathBuf, u64)> {
        self.roots.iter().find(|(r, _)| path.starts_with(r))
    }

    /// Whether the entry `name` at absolute `path` is left out by name or path.
    pub fn skips_name(&self, path: &Path, name: &[u8]) -> bool {
        if self.rules.skips(path, name) {
            return true;
        }
        if self.patterns.is_empty() {
            return false;
        }
        let rel = self.root_of(path).and_then(|(r, _)| path.strip_prefix(r).ok());
        self.patterns.matches(path, rel.filter(|r| !r.as_os_str().is_empty()), name)
    }

    /// Why entry `name` at `path`, in a directory `emptied` or not, is left out; `None` if kept.
    pub fn why_excluded(&self, emptied: &Option<Emptied>, path: &Path, name: &[u8]) -> Option<String> {
        match emptied {
            Some(Emptied::Tagged(tag)) if tag.as_bytes() != name => Some(format!("its directory holds {tag}")),
            Some(Emptied::OtherDevice) => Some("its directory is on another file system".into()),
            _ if self.skips_name(path, name) => Some("matches an exclude rule".into()),
            _ => None,
        }
    }

    /// Why a regular file of `size` bytes is left out; `None` if kept.
    pub fn why_too_large(&self, size: u64) -> Option<String> {
        self.skips_size(size).then(|| format!("larger than the limit ({size} bytes)"))
    }

    /// Whether a regular file of `size` bytes is too large to store.
    pub fn skips_size(&self, size: u64) -> bool {
        self.rules.larger_than.is_some_and(|limit| size > limit)
    }

    /// Whether directory `dir` at `path` is kept without its contents.
    pub fn emptied(&self, dir: &DirFd, path: &Path) -> Option<Emptied> {
        if self.rules.one_file_system {
            // A directory whose device cannot be read is walked: storing too much is safer.
            let dev = dir.meta().map(|m| m.dev).ok();
            if let (Some(dev), Some((_, root_dev))) = (dev, self.root_of(path)) {
                if dev != *root_dev {
                    return Some(Emptied::OtherDevice);
                }
            }
        }
        self.tags.iter().find(|t| t.present_in(dir)).map(|t| Emptied::Tagged(t.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert!(matches!(parse_size("10X"), Err(Error::InvalidArgument(_))));
        assert!(matches!(parse_size(""), Err(Error::InvalidArgument(_))));
        assert!(matches!(parse_size("99999999999T"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn patterns_follow_restic_anchoring() {
        let p = Patterns::new(&["*.log".into(), "/srv/a/tmp".into(), "cache/**".into()], &["*.BAK".into()]).unwrap();
        let m = |path: &str, rel: &str, name: &str| p.matches(Path::new(path), Some(Path::new(rel)), name.as_bytes());
        assert!(m("/srv/a/x/y.log", "x/y.log", "y.log"));
        assert!(m("/srv/a/tmp", "tmp", "tmp"));
        assert!(!m("/srv/b/tmp", "tmp", "tmp"));
        assert!(m("/srv/a/cache/z", "cache/z", "z"));
        assert!(!m("/srv/a/x/cache/z", "x/cache/z", "z"));
        assert!(m("/srv/a/old.bak", "old.bak", "old.bak"));
        assert!(!m("/srv/a/old.Log", "old.Log", "old.Log"));
    }

    #[test]
    fn a_bad_pattern_names_itself() {
        let err = Patterns::new(&["a[".into()], &[]).err().unwrap();
        assert!(err.to_string().contains("\"a[\""), "{err}");
    }
}
