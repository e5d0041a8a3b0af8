//! `cairn run --dry-run`: the plan, shown and nothing else done: which repository, which
//! hooks in which order, what each source stores and keeps, and the maintenance after.

use std::time::Duration;

use serde::Serialize;

use cairn::config::{HooksConfig, Loaded, RepositoryRun, SourceConfig};
use cairn::error::{exit, redact_urls, Result};
use cairn::ops::ReadData;

use super::settings::Globals;

#[derive(Serialize)]
struct RepositoryView {
    repository: String,
    location: String,
    hooks: Vec<String>,
    sources: Vec<SourceView>,
    prune: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<String>,
}

#[derive(Serialize)]
struct SourceView {
    source: String,
    paths: Vec<String>,
    tags: Vec<String>,
    excludes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres: Option<String>,
    hooks: Vec<String>,
    retention: Vec<String>,
}

pub fn print(g: &Globals, loaded: &Loaded, plan: &[RepositoryRun]) -> Result<i32> {
    let views: Vec<RepositoryView> = plan.iter().map(|group| repository_view(g, loaded, group)).collect();
    if g.json {
        super::render::json(&views)?;
        return Ok(exit::OK);
    }
    for r in &views {
        outln!("repository {} ({})", r.repository, r.location)?;
        for h in &r.hooks {
            outln!("  {h}")?;
        }
        for s in &r.sources {
            outln!("  source {}: snapshot {}", s.source, s.paths.join(" "))?;
            let details = [("tags", &s.tags), ("exclude", &s.excludes), ("hook", &s.hooks), ("keep", &s.retention)];
            for (what, items) in details {
                for item in items.iter() {
                    outln!("    {what} {item}")?;
                }
            }
            if let Some(pg) = &s.postgres {
                outln!("    postgres {pg}")?;
            }
        }
        if r.prune {
            outln!("  then prune")?;
        }
        if let Some(c) = &r.check {
            outln!("  then check{c}")?;
        }
    }
    eprintln!("dry run: no hook ran and no repository was opened");
    Ok(exit::OK)
}

fn repository_view(g: &Globals, loaded: &Loaded, group: &RepositoryRun) -> RepositoryView {
    let cfg = loaded.config.repositories.get(&group.repository);
    let location = match (cfg, &g.repo) {
        (Some(c), _) => c.location.clone(),
        (None, Some(given)) => given.clone(),
        (None, None) => String::new(),
    };
    RepositoryView {
        repository: group.repository.clone(),
        location: redact_urls(&location),
        hooks: cfg.map(|c| hook_lines(&c.hooks)).unwrap_or_default(),
        sources: group
            .sources
            .iter()
            .filter_map(|name| Some(source_view(loaded, name, loaded.config.sources.get(name)?)))
            .collect(),
        prune: group.prune,
        check: group.check.map(|r| match r {
            ReadData::None => String::new(),
            ReadData::All => " --read-data".to_string(),
            ReadData::Percent(p) => format!(" --read-data-subset {p}%"),
            ReadData::Slice { k, of } => format!(" --read-data-subset {k}/{of}"),
        }),
    }
}

fn source_view(loaded: &Loaded, name: &str, s: &SourceConfig) -> SourceView {
    let mut excludes: Vec<String> = s.exclude.clone();
    excludes.extend(s.iexclude.iter().map(|p| format!("{p} (ignoring case)")));
    excludes.extend(s.exclude_file.iter().map(|f| format!("patterns of {}", f.display())));
    excludes.extend(s.exclude_if_present.iter().map(|t| format!("directories holding {t}")));
    if s.exclude_caches {
        excludes.push("cache directories (CACHEDIR.TAG)".into());
    }
    if let Some(size) = s.exclude_larger_than {
        excludes.push(format!("files larger than {}", super::render::bytes(size)));
    }
    if s.one_file_system {
        excludes.push("other file systems".into());
    }
    let mut tags = s.tags.clone();
    tags.push(cairn::config::source_tag(name));
    SourceView {
        source: name.to_string(),
        paths: s.paths.iter().map(|p| p.display().to_string()).collect(),
        tags,
        excludes,
        postgres: s.postgres.clone(),
        hooks: hook_lines(&s.hooks),
        retention: retention_lines(loaded, name, s),
    }
}

/// `pre: CMD`, … in the order they run.
fn hook_lines(h: &HooksConfig) -> Vec<String> {
    let how = if h.shell { " (sh -c)" } else { "" };
    let stages = [("pre", &h.pre), ("post", &h.post), ("on-failure", &h.on_failure), ("finally", &h.finally)];
    stages.iter().flat_map(|(stage, cmds)| cmds.iter().map(move |c| format!("{stage}{how}: {c}"))).collect()
}

fn retention_lines(loaded: &Loaded, name: &str, s: &SourceConfig) -> Vec<String> {
    let r = &s.retention;
    let counts = [
        ("last", r.keep_last),
        ("hourly", r.keep_hourly),
        ("daily", r.keep_daily),
        ("weekly", r.keep_weekly),
        ("monthly", r.keep_monthly),
        ("yearly", r.keep_yearly),
    ];
    let mut lines: Vec<String> = counts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
    if let Some(d) = r.keep_within {
        lines.push(format!("within {}", duration(d)));
    }
    if let Some((stream, w)) = loaded.config.wal_of_source(name) {
        if let Some(d) = w.keep_wal_within {
            lines.push(format!("WAL of stream {stream} within {}", duration(d)));
        }
    }
    lines
}

/// `14d`, `36h`, `90m`, `45s`: the largest unit that divides it.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let units = [(86_400 * 7, "w"), (86_400, "d"), (3_600, "h"), (60, "m")];
    match units.iter().find(|(n, _)| secs > 0 && secs % n == 0) {
        Some((n, unit)) => format!("{}{unit}", secs / n),
        None => format!("{secs}s"),
    }
}
