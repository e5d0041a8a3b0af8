//! Finding and reading the configuration file, and saying exactly where it is wrong.
//!
//! Every error is one line naming the file, the line and the dotted key (`sources.pg.exclud`)
//! and exits 2. serde reports where in the text it failed (a byte span); the key is found by
//! walking the parsed document down to that span. Problems found after parsing (a source
//! naming a repository that does not exist) carry their key path and look the line up the
//! same way.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::schema::Config;
use crate::error::{Error, Result};

/// The file used when neither `--config` nor `CAIRN_CONFIG` names one:
/// `$XDG_CONFIG_HOME/cairn/config.toml`, else `~/.config/cairn/config.toml`. `None` when
/// neither variable is set.
pub fn default_path() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = nonempty("XDG_CONFIG_HOME").or_else(|| nonempty("HOME").map(|h| h.join(".config")))?;
    Some(base.join("cairn").join("config.toml"))
}

/// A configuration file, read and checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub config: Config,
    /// The text, kept to name the line of problems found later (an unknown `--repo NAME`
    /// has none, but a source's unknown repository does).
    text: String,
}

impl Loaded {
    /// Reads `path`; an error when it is missing.
    pub fn read(path: &Path) -> Result<Loaded> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read configuration file {}: {e}", path.display())))?;
        Loaded::parse(path, text)
    }

    /// `explicit` (from `--config` / `CAIRN_CONFIG`) must exist; otherwise the default path is
    /// read when it exists, and no file means no configuration.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Loaded>> {
        match explicit {
            Some(p) => Loaded::read(p).map(Some),
            None => match default_path() {
                Some(p) if p.exists() => Loaded::read(&p).map(Some),
                _ => Ok(None),
            },
        }
    }

    /// Parses and checks `text` as the contents of `path`.
    pub fn parse(path: &Path, text: String) -> Result<Loaded> {
        let mut config: Config = toml::from_str(&text).map_err(|e| parse_error(path, &text, &e))?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        relative_to(&mut config, &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        let loaded = Loaded { path: path.to_path_buf(), config, text };
        if let Err((key, problem)) = super::validate::validate(&loaded.config) {
            return Err(loaded.error_at(&key, &problem));
        }
        Ok(loaded)
    }

    /// An error about the value at `key` (a path of table keys), naming file, line and key.
    pub fn error_at(&self, key: &[String], problem: &str) -> Error {
        let (doc, _) = DeTable::parse_recoverable(&self.text);
        let line = span_of(doc.get_ref(), key).map(|span| line_of(&self.text, span.start));
        located(&self.path, line, &key.join("."), problem)
    }

    /// An error about the file as a whole (an unknown name given on the command line).
    pub fn error(&self, problem: &str) -> Error {
        Error::InvalidArgument(format!("configuration file {}: {problem}", self.path.display()))
    }
}

/// Relative paths in the file are relative to the file's directory, not to wherever cairn
/// was started (a timer starts it in `/`).
fn relative_to(config: &mut Config, dir: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    };
    for repo in config.repositories.values_mut() {
        if !repo.location.contains("://") && Path::new(&repo.location).is_relative() {
            repo.location = dir.join(&repo.location).display().to_string();
        }
        repo.password_file.iter_mut().for_each(fix);
        repo.cache_dir.iter_mut().for_each(fix);
    }
    for source in config.sources.values_mut() {
        source.paths.iter_mut().for_each(fix);
        source.exclude_file.iter_mut().for_each(fix);
        source.redis_password_file.iter_mut().for_each(fix);
    }
}

fn located(path: &Path, line: Option<usize>, key: &str, problem: &str) -> Error {
    let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
    let key = if key.is_empty() { String::new() } else { format!(", key {key}") };
    // serde's messages are one line already; a TOML syntax error's may not be.
    let problem = problem.split_whitespace().collect::<Vec<_>>().join(" ");
    Error::InvalidArgument(format!("configuration file {}{at}{key}: {problem}", path.display()))
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let Some(span) = e.span() else {
        return located(path, None, "", e.message());
    };
    // A document with a syntax error still parses up to it, enough to name the key.
    let (doc, _) = DeTable::parse_recoverable(text);
    let key = key_at(doc.get_ref(), span.start);
    located(path, Some(line_of(text, span.start)), &key.join("."), e.message())
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The dotted path of the key written at byte `offset` (an unknown key), else of the deepest
/// key whose value holds it (a wrong value, a table missing a key). The whole tree is
/// searched: a table's span is its header only, so its keys need not lie inside it.
fn key_at(table: &DeTable<'_>, offset: usize) -> Vec<String> {
    let mut best = (false, Vec::new());
    search(table, offset, &mut Vec::new(), &mut best);
    best.1
}

/// The best match so far: (matched a key itself, its path).
type Best = (bool, Vec<String>);

fn search(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>, best: &mut Best) {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        let on_key = key.span().contains(&offset);
        if (on_key || value.span().contains(&offset)) && (on_key, path.len()) > (best.0, best.1.len()) {
            *best = (on_key, path.clone());
        }
        match value.get_ref() {
            DeValue::Table(t) => search(t, offset, path, best),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        path.push(format!("[{i}]"));
                        search(t, offset, path, best);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// Where the key at `path` is written (the key itself, so a table's header line).
fn span_of(table: &DeTable<'_>, path: &[String]) -> Option<std::ops::Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == first.as_str())?;
    if rest.is_empty() {
        return Some(key.span());
    }
    match value.get_ref() {
        DeValue::Table(t) => span_of(t, rest).or(Some(key.span())),
        _ => Some(key.span()),
    }
}
