//! Human formatting of sizes, counts, durations and JSON output.

use serde::Serialize;

/// `8.1 GiB`, `131 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `12,431`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 problem`, `2 problems`, `12,431 files`.
pub fn count_of(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// `45 ms`, `4.2 s`, `0:42`, `1:02:03`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if ms < 1000 {
        format!("{ms} ms")
    } else if secs < 10 {
        format!("{}.{} s", secs, (ms % 1000) / 100)
    } else if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// How many paths with the same reason are listed before the rest is counted.
const SAME_REASON_LISTED: usize = 3;

/// Prints `error: LABEL: PATH: REASON` per entry on stderr, but a reason shared by many
/// entries (a full disk fails every file alike) only for the first few, then one line with the
/// count of the rest.
pub fn print_failures(label: &str, failed: &[cairn::ops::Skipped]) {
    let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in failed {
        match by_reason.iter_mut().find(|(r, _)| *r == f.reason) {
            Some((_, paths)) => paths.push(&f.path),
            None => by_reason.push((&f.reason, vec![&f.path])),
        }
    }
    for (reason, paths) in by_reason {
        for p in paths.iter().take(SAME_REASON_LISTED) {
            eprintln!("error: {label}: {p}: {reason}");
        }
        if paths.len() > SAME_REASON_LISTED {
            let rest = paths.len() - SAME_REASON_LISTED;
            eprintln!("error: {label}: {} more with the same error: {reason}", count_of(rest as u64, "path", "paths"));
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(131 << 20), "131 MiB");
        assert_eq!(bytes((81 << 30) / 10), "8.1 GiB");
        assert_eq!(count(12431), "12,431");
        assert_eq!(count(7), "7");
        assert_eq!(duration_ms(42_000), "0:42");
        assert_eq!(duration_ms(45), "45 ms");
        assert_eq!(duration_ms(4_240), "4.2 s");
        assert_eq!(duration_ms(3_723_000), "1:02:03");
    }
}
