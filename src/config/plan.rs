//! What `cairn run` will do, decided before anything runs: which repositories, which of
//! their sources in which order, and the maintenance after them. `--dry-run` prints this.

use serde::Serialize;

use super::schema::Config;
use super::validate::known;
use crate::ops::ReadData;

/// One repository's part of a run: its sources in order, then prune and check.
#[derive(Clone, Debug, Serialize)]
pub struct RepositoryRun {
    /// The configured name, or the `--repo` given instead.
    pub repository: String,
    pub sources: Vec<String>,
    /// Whether any of its sources asks for `prune` afterwards.
    pub prune: bool,
    /// `Some` when a source asks for `repo check`: the read-data of the first that sets one.
    #[serde(skip)]
    pub check: Option<ReadData>,
}

/// The run of `names` (every source with `all`), grouped by repository in the order sources
/// are named (`all`: alphabetical). `repo_override` (`--repo`) sends every source to that
/// repository. An unknown source name is the error, with the names configured.
pub fn plan(
    config: &Config,
    names: &[String],
    all: bool,
    repo_override: Option<&str>,
) -> Result<Vec<RepositoryRun>, String> {
    let chosen: Vec<String> = if all { config.sources.keys().cloned().collect() } else { names.to_vec() };
    let mut runs: Vec<RepositoryRun> = Vec::new();
    for name in &chosen {
        let Some(source) = config.sources.get(name) else {
            return Err(format!("no source named {name:?} is configured{}", known(config.sources.keys())));
        };
        // Validation made sure every source has a repository.
        let repo = repo_override
            .or_else(|| config.repository_name(source.repository.as_deref()))
            .unwrap_or_default()
            .to_string();
        let index = match runs.iter().position(|r| r.repository == repo) {
            Some(i) => i,
            None => {
                runs.push(RepositoryRun { repository: repo, sources: Vec::new(), prune: false, check: None });
                runs.len() - 1
            }
        };
        let run = &mut runs[index];
        if run.sources.contains(name) {
            continue;
        }
        run.sources.push(name.clone());
        run.prune |= source.prune;
        if source.check {
            run.check = match run.check {
                Some(ReadData::None) | None => Some(source.check_read_data.unwrap_or_default()),
                kept => kept,
            };
        }
    }
    Ok(runs)
}
