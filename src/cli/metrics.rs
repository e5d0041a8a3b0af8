//! `--metrics-file PATH`: the Prometheus textfile a command updates with its own samples
//! (`docs/metrics.md`). A metrics file that cannot be written is a warning, never the
//! command's failure: the backup it reports on happened.

use std::path::PathBuf;

use clap::Args;

use cairn::error::redact_urls;
use cairn::metrics::{update_file, Sample};

use super::Context;

#[derive(Args, Clone, Debug, Default)]
pub struct MetricsArgs {
    /// Update this Prometheus textfile-collector file (e.g. in node_exporter's
    /// --collector.textfile.directory, named *.prom) with this command's metrics, keeping
    /// the samples other commands wrote there (docs/metrics.md).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

impl MetricsArgs {
    /// Merges `samples` into the file, if one was given; a failure is a warning.
    pub fn write(&self, samples: &[Sample]) {
        let Some(path) = &self.metrics_file else { return };
        if let Err(e) = update_file(path, samples) {
            eprintln!("warning: metrics not written: {e}");
        }
    }
}

/// The `repo` label: the repository as given, without any password in it.
pub fn repo_label(ctx: &Context) -> String {
    ctx.location().map(|l| redact_urls(&l.to_string())).unwrap_or_default()
}
