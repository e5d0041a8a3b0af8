//! Prometheus textfile-collector output: the metric families cairn writes, and one file that
//! several commands share without erasing each other's samples.
//!
//! Each command writes only its own samples. [`update_file`] takes an exclusive `flock` on a
//! `.PATH.lock` file beside the metrics file, reads the file, replaces every sample with the
//! same name and labels as a new one (keeping all others), and writes the result to a
//! temporary file in the same directory, fsynced and renamed over the old one: the collector
//! never reads half a file, and two commands finishing at once both keep their samples
//! (`docs/metrics.md`). Output is sorted, so the same samples always give the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// Every family cairn writes: name, help. All are gauges.
pub const FAMILIES: &[(&str, &str)] = &[
    ("cairn_check_duration_seconds", "How long the last repo check took."),
    ("cairn_check_last_timestamp_seconds", "When the last repo check finished."),
    ("cairn_check_read_bytes", "Bytes of pack data the last repo check read and verified."),
    ("cairn_check_success", "1 if the last repo check found no damage, else 0."),
    ("cairn_dedup_ratio", "Bytes of all snapshots of the source divided by the bytes they added to packs."),
    ("cairn_forget_last_timestamp_seconds", "When forget last finished."),
    ("cairn_forget_removed_snapshots", "Snapshots the last forget removed."),
    ("cairn_prune_freed_bytes", "Bytes the last prune freed."),
    ("cairn_prune_last_timestamp_seconds", "When prune last finished."),
    ("cairn_restore_test_duration_seconds", "How long the last restore test took (restore and verify)."),
    ("cairn_restore_test_last_timestamp_seconds", "When the last restore test of the source finished."),
    ("cairn_restore_test_success", "1 if the last restore test of the source passed, else 0."),
    ("cairn_snapshot_added_bytes", "Bytes of new data the last snapshot of the source added."),
    ("cairn_snapshot_duration_seconds", "How long the last snapshot of the source took."),
    ("cairn_snapshot_last_failure_timestamp_seconds", "When the last failed snapshot of the source ended."),
    ("cairn_snapshot_last_success_timestamp_seconds", "When the last snapshot of the source finished."),
    ("cairn_snapshot_oldest_timestamp_seconds", "When the oldest snapshot of the source was taken."),
    ("cairn_snapshot_size_bytes", "Bytes of files in the last snapshot of the source."),
    ("cairn_wal_archive_lag_seconds", "Age of the newest archived WAL file when this sample was written."),
    ("cairn_wal_files", "WAL files archived in the stream."),
    ("cairn_wal_last_archive_timestamp_seconds", "When the newest WAL file of the stream was archived."),
    ("cairn_snapshots", "Snapshots of the source in the repository."),
];

/// One sample: a family name, its labels, and the value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// A sample of family `name` (one of [`FAMILIES`]); labels are sorted by name.
    pub fn new(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        labels.sort();
        Sample { name: name.to_string(), labels, value }
    }

    fn series(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// Label values escape `\`, `"` and newlines (the text format's rule).
fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// Seconds since the epoch with millisecond precision: how every timestamp metric is written
/// (and `cairn status --json` prints the same numbers).
pub fn seconds(ns: i64) -> f64 {
    (ns.div_euclid(1_000_000)) as f64 / 1000.0
}

/// A file's families: name → (help, type, series → value text).
type Families = BTreeMap<String, (String, String, BTreeMap<String, String>)>;

/// The text of `samples` (and of what `base` holds), families sorted by name, series sorted.
fn render(families: &Families) -> String {
    let mut out = String::new();
    for (name, (help, kind, series)) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (s, v) in series {
            let _ = writeln!(out, "{s} {v}");
        }
    }
    out
}

/// Adds `samples` to `families`, replacing samples of the same series.
fn merge(families: &mut Families, samples: &[Sample]) {
    for s in samples {
        let help = FAMILIES.iter().find(|(n, _)| *n == s.name).map_or("cairn metric.", |(_, h)| h);
        let entry =
            families.entry(s.name.clone()).or_insert_with(|| (help.to_string(), "gauge".to_string(), BTreeMap::new()));
        entry.2.insert(s.series(), format_value(s.value));
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The text of `samples` alone, as a fresh file would hold it.
pub fn render_samples(samples: &[Sample]) -> String {
    let mut families = Families::new();
    merge(&mut families, samples);
    render(&families)
}

/// Reads a file cairn wrote: `# HELP`, `# TYPE`, and sample lines of families declared
/// before them. Anything else is refused, so a file that is not cairn's is never overwritten.
fn parse(text: &str, path: &Path) -> Result<Families> {
    let mut families = Families::new();
    let bad = |n: usize, why: &str| {
        Error::InvalidArgument(format!(
            "metrics file {} line {}: {why}; it is not a file cairn wrote, so it is left alone",
            path.display(),
            n + 1
        ))
    };
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_insert_with(|| (String::new(), "gauge".into(), BTreeMap::new())).0 =
                help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| bad(n, "TYPE without a type"))?;
            families.entry(name.to_string()).or_insert_with(|| (String::new(), String::new(), BTreeMap::new())).1 =
                kind.to_string();
        } else if !line.is_empty() {
            // The value is the last space-separated field (values hold no spaces; label
            // values may), so the series is everything before it.
            let (series, value) = line.rsplit_once(' ').ok_or_else(|| bad(n, "a sample without a value"))?;
            let name: String = series.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let family = families.get_mut(&name).ok_or_else(|| bad(n, "a sample before its # TYPE line"))?;
            family.2.insert(series.to_string(), value.to_string());
        }
    }
    Ok(families)
}

/// Merges `samples` into the metrics file at `path` (created if missing) under an exclusive
/// lock, writing it atomically (temporary file, fsync, rename).
pub fn update_file(path: &Path, samples: &[Sample]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("cannot open", &lock_path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("cannot lock", &lock_path, e.into()))?;
    let mut families = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Families::new(),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    merge(&mut families, samples);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(&dir)
        .map_err(|e| Error::io("cannot create a file in", &dir, e))?;
    tmp.write_all(render(&families).as_bytes()).map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io("cannot sync", tmp.path(), e))?;
    // The collector reads the file as another user (node_exporter): readable, not writable.
    use std::os::unix::fs::PermissionsExt;
    let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    tmp.persist(path).map_err(|e| Error::io("cannot rename into", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_text_format() {
        let samples = [
            Sample::new("cairn_snapshot_added_bytes", &[("source", "vm:/srv/q"), ("repo", "/b")], 4096.0),
            Sample::new("cairn_check_success", &[("repo", "/b\"x\\")], 1.0),
            Sample::new(
                "cairn_snapshot_last_success_timestamp_seconds",
                &[("repo", "/b"), ("source", "a")],
                seconds(1_700_000_000_123_456_789),
            ),
        ];
        let expected = "\
# HELP cairn_check_success 1 if the last repo check found no damage, else 0.
# TYPE cairn_check_success gauge
cairn_check_success{repo=\"/b\\\"x\\\\\"} 1
# HELP cairn_snapshot_added_bytes Bytes of new data the last snapshot of the source added.
# TYPE cairn_snapshot_added_bytes gauge
cairn_snapshot_added_bytes{repo=\"/b\",source=\"vm:/srv/q\"} 4096
# HELP cairn_snapshot_last_success_timestamp_seconds When the last snapshot of the source finished.
# TYPE cairn_snapshot_last_success_timestamp_seconds gauge
cairn_snapshot_last_success_timestamp_seconds{repo=\"/b\",source=\"a\"} 1700000000.123
";
        assert_eq!(render_samples(&samples), expected);
    }

    #[test]
    fn updates_keep_other_series_and_replace_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.prom");
        update_file(&path, &[Sample::new("cairn_check_success", &[("repo", "a")], 0.0)]).unwrap();
        update_file(&path, &[Sample::new("cairn_snapshots", &[("repo", "a"), ("source", "s")], 3.0)]).unwrap();
        update_file(&path, &[Sample::new("cairn_check_success", &[("repo", "a")], 1.0)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("cairn_check_success{repo=\"a\"} 1\n"), "{text}");
        assert!(!text.contains("cairn_check_success{repo=\"a\"} 0"), "{text}");
        assert!(text.contains("cairn_snapshots{repo=\"a\",source=\"s\"} 3\n"), "{text}");
        std::fs::write(&path, "something else\n").unwrap();
        assert!(update_file(&path, &[]).is_err(), "a file cairn did not write is left alone");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "something else\n");
    }

    #[test]
    fn writers_at_the_same_time_keep_each_others_samples() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.prom");
        std::thread::scope(|scope| {
            for t in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    for i in 0..10 {
                        let source = format!("s{t}-{i}");
                        update_file(path, &[Sample::new("cairn_snapshots", &[("source", &source)], 1.0)]).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("cairn_snapshots{")).count(), 80, "{text}");
    }
}
