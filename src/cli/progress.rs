//! A progress bar on stderr when it is a terminal; nothing otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cairn::progress::{NoProgress, Progress};

pub struct Bar {
    bar: ProgressBar,
}

/// A bar if stderr is a terminal and `quiet` is off, else a silent reporter.
pub fn reporter(quiet: bool) -> Box<dyn Progress> {
    if quiet || !std::io::stderr().is_terminal() {
        return Box::new(NoProgress);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    Box::new(Bar { bar })
}

impl Progress for Bar {
    fn phase(&self, name: &str, total_bytes: Option<u64>) {
        let template = if total_bytes.is_some() {
            "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}"
        } else {
            "{msg} [{elapsed_precise}] {spinner} {bytes} {bytes_per_sec}"
        };
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        self.bar.set_style(style);
        self.bar.set_length(total_bytes.unwrap_or(0));
        self.bar.set_message(name.to_string());
        self.bar.enable_steady_tick(std::time::Duration::from_millis(200));
    }

    fn add_bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
