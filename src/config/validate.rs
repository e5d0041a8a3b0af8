//! Checks that span the file: names that must refer to something, and values whose meaning
//! depends on other keys. Each problem comes back with the key path it is about, so the
//! loader can name its line.

use super::schema::{Config, HooksConfig};

/// A key path and what is wrong there.
pub type Problem = (Vec<String>, String);

fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

pub fn validate(config: &Config) -> Result<(), Problem> {
    for (name, repo) in &config.repositories {
        if repo.location.trim().is_empty() {
            return Err((key(&["repositories", name, "location"]), "the location is empty".into()));
        }
        hooks(&repo.hooks, &["repositories", name, "hooks"])?;
    }
    for (name, source) in &config.sources {
        repository(config, source.repository.as_deref(), &["sources", name])?;
        if source.paths.is_empty() {
            return Err((key(&["sources", name, "paths"]), "a source needs at least one path".into()));
        }
        hooks(&source.hooks, &["sources", name, "hooks"])?;
        source.patterns().validate().map_err(|e| (key(&["sources", name]), e.to_string()))?;
    }
    for (name, wal) in &config.wal {
        repository(config, wal.repository.as_deref(), &["wal", name])?;
        if let Some(s) = &wal.source {
            if !config.sources.contains_key(s) {
                let problem = format!("no source named {s:?} is configured{}", known(config.sources.keys()));
                return Err((key(&["wal", name, "source"]), problem));
            }
            if let Some((other, _)) = config.wal.iter().find(|(o, w)| *o < name && w.source.as_ref() == Some(s)) {
                let problem = format!("source {s:?} is already the base of WAL stream {other:?}");
                return Err((key(&["wal", name, "source"]), problem));
            }
        }
    }
    Ok(())
}

fn repository(config: &Config, named: Option<&str>, at: &[&str]) -> Result<(), Problem> {
    let mut path = key(at);
    match named {
        Some(n) if !config.repositories.contains_key(n) => {
            path.push("repository".into());
            let problem = format!("no repository named {n:?} is configured{}", known(config.repositories.keys()));
            Err((path, problem))
        }
        None if config.only_repository().is_none() => {
            let problem = match config.repositories.len() {
                0 => "no repository is configured: add a [repositories.NAME] table".to_string(),
                _ => format!("`repository` is needed when several are configured{}", known(config.repositories.keys())),
            };
            Err((path, problem))
        }
        _ => Ok(()),
    }
}

fn hooks(h: &HooksConfig, at: &[&str]) -> Result<(), Problem> {
    h.hooks().map(|_| ()).map_err(|e| (key(at), e.to_string()))
}

/// ` (configured: a, b)`, or nothing when none is.
pub fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    match names.is_empty() {
        true => String::new(),
        false => format!(" (configured: {})", names.join(", ")),
    }
}
