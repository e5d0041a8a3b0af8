//! Human formatting of sizes, counts, durations and JSON output.

use serde::Serialize;

use cairn::error::{Error, Result};

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

/// `1 file`, `12,431 files`, `2 index entries`: English plural of a regular noun.
pub fn plural(n: u64, noun: &str) -> String {
    let many = match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{stem}ies"),
        _ if noun.ends_with(['s', 'x', 'z']) || noun.ends_with("ch") || noun.ends_with("sh") => format!("{noun}es"),
        _ => format!("{noun}s"),
    };
    count_of(n, noun, &many)
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

/// Problems of many paths with repeats folded, in order of first appearance: paths whose
/// reason is the same once the path itself is taken out of it become one line, `PATH and N
/// more paths: REASON`, so a full disk reports one line rather than one per file. Every
/// command that lists skipped or failed paths prints through this.
pub fn fold_paths<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut groups: Vec<(String, &str, &str, u64)> = Vec::new();
    for (path, reason) in items {
        let key = without_path(reason, path);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.3 += 1,
            None => groups.push((key, path, reason, 1)),
        }
    }
    groups
        .into_iter()
        .map(|(_, path, reason, n)| match n {
            1 => format!("{path}: {reason}"),
            2 => format!("{path} and 1 more path: {reason}"),
            n => format!("{path} and {} more paths: {reason}", count(n - 1)),
        })
        .collect()
}

/// `reason` with its last mention of `path` (as a whole path, not inside a longer name) cut
/// out, so that the same problem of different paths compares equal.
fn without_path(reason: &str, path: &str) -> String {
    let edge = |c: Option<char>| c.is_none_or(|c| c == '/' || c == '\'' || c == '"' || c.is_whitespace());
    let at = reason.match_indices(path).map(|(i, _)| i).filter(|&i| {
        edge(reason[..i].chars().next_back()) && {
            let after = reason[i + path.len()..].chars().next();
            after.is_none_or(|c| c == ':' || c == ',' || c == ')' || edge(Some(c)))
        }
    });
    match at.last().filter(|_| !path.is_empty()) {
        Some(i) => format!("{}\u{0}{}", &reason[..i], &reason[i + path.len()..]),
        None => reason.to_string(),
    }
}

/// Identical lines folded into one with a count, in order of first appearance.
pub fn fold_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut groups: Vec<(&str, u64)> = Vec::new();
    for line in lines {
        match groups.iter_mut().find(|g| g.0 == line) {
            Some(g) => g.1 += 1,
            None => groups.push((line, 1)),
        }
    }
    groups.into_iter().map(|(l, n)| if n == 1 { l.to_string() } else { format!("{l} ({n} times)") }).collect()
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    match serde_json::to_string_pretty(value) {
        Ok(s) => outln!("{s}"),
        Err(e) => {
            eprintln!("error: cannot render JSON: {e}");
            Ok(())
        }
    }
}

/// Writes one line to stdout. A failure is an error rather than `println!`'s panic: a reader
/// that stops early (`cairn ls … | head`) closes the pipe, and the command must then stop
/// quietly (`main` exits 0 on a broken pipe), as every Unix tool does.
pub fn out(line: std::fmt::Arguments) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .map_err(|source| Error::Io { context: STDOUT.into(), source })
}

/// [`out`] for bytes made elsewhere (a completion script, a man page), as they are.
pub fn out_bytes(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(|source| Error::Io { context: STDOUT.into(), source })
}

/// A stdout failure as [`is_closed_stdout`] recognises it.
pub fn stdout_error(source: std::io::Error) -> Error {
    Error::Io { context: STDOUT.into(), source }
}

const STDOUT: &str = "cannot write to stdout";

/// Whether `e` is [`out`]'s failure on a pipe whose reader went away (and not a broken pipe to
/// some child process, which is a real failure).
pub fn is_closed_stdout(e: &Error) -> bool {
    matches!(e, Error::Io { context, source } if context == STDOUT && source.kind() == std::io::ErrorKind::BrokenPipe)
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
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(2, "index entry"), "2 index entries");
        assert_eq!(plural(1234, "key"), "1,234 keys");
        assert_eq!(duration_ms(42_000), "0:42");
        assert_eq!(duration_ms(45), "45 ms");
        assert_eq!(duration_ms(4_240), "4.2 s");
        assert_eq!(duration_ms(3_723_000), "1:02:03");
    }

    #[test]
    fn repeated_problems_fold_into_one_line_with_a_count() {
        let full = |p: &str| format!("no space left on the device holding /t/{p}");
        let (a, b, c) = (full("a"), full("b"), full("c"));
        let items = [("a", a.as_str()), ("x", "permission denied"), ("b", b.as_str()), ("c", c.as_str())];
        assert_eq!(
            fold_paths(items),
            vec![
                "a and 2 more paths: no space left on the device holding /t/a".to_string(),
                "x: permission denied".to_string()
            ]
        );
        assert_eq!(fold_paths([("a", "gone"), ("b", "gone")]), vec!["a and 1 more path: gone".to_string()]);
        assert_eq!(fold_lines(["w", "v", "w"]), vec!["w (2 times)".to_string(), "v".to_string()]);
    }
}
