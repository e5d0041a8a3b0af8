//! The paper key: the master key as printable, checksummed text, for keeping a copy off the
//! machine (`docs/security.md`). Layout (`docs/format.md` §13.7):
//!
//! ```text
//! cairn paper key v1
//! 1: 0001 0203 0405 0607  9c1e
//! 2: 0809 0a0b 0c0d 0e0f  44d0
//! 3: 1011 1213 1415 1617  7a3b
//! 4: 1819 1a1b 1c1d 1e1f  02f5
//! check: 5e7bc1a0
//! ```
//!
//! Each line carries 8 key bytes and a 16-bit check of (line number, those bytes), so a typo
//! is pinned to its line; the last line is a 32-bit check of the whole key. `import` ignores
//! spaces, case, blank lines and the title line.

use super::keys::{MasterKey, KEY_BYTES};
use crate::error::{Error, Result};

const TITLE: &str = "cairn paper key v1";
const BYTES_PER_LINE: usize = 8;
const LINES: usize = KEY_BYTES / BYTES_PER_LINE;
const CONTEXT_LINE: &str = "cairn 2026-12-03 paper key line check v1";
const CONTEXT_WHOLE: &str = "cairn 2026-12-03 paper key whole check v1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn line_check(line: usize, bytes: &[u8]) -> [u8; 2] {
    let mut m = vec![line as u8];
    m.extend_from_slice(bytes);
    let d = blake3::derive_key(CONTEXT_LINE, &m);
    [d[0], d[1]]
}

fn whole_check(key: &[u8]) -> [u8; 4] {
    let d = blake3::derive_key(CONTEXT_WHOLE, key);
    [d[0], d[1], d[2], d[3]]
}

/// The paper form of `master`.
pub fn export(master: &MasterKey) -> String {
    let mut out = format!("{TITLE}\n");
    for (i, chunk) in master.as_bytes().chunks(BYTES_PER_LINE).enumerate() {
        let h = hex(chunk);
        let groups: Vec<&str> = (0..h.len()).step_by(4).map(|j| &h[j..j + 4]).collect();
        out.push_str(&format!("{}: {}  {}\n", i + 1, groups.join(" "), hex(&line_check(i + 1, chunk))));
    }
    out.push_str(&format!("check: {}\n", hex(&whole_check(master.as_bytes()))));
    out
}

fn bad(detail: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("paper key: {}", detail.into()))
}

fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(format!("{what} is not hex digits")));
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad("bad hex"))).collect()
}

/// Parses a paper key back, naming the line of a typo.
pub fn import(text: &str) -> Result<MasterKey> {
    let mut key = Vec::with_capacity(KEY_BYTES);
    let mut whole = None;
    for raw in text.lines() {
        let line: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        if line.is_empty() || line == TITLE.replace(' ', "") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("check:") {
            whole = Some(parse_hex(rest, "the check line")?);
            continue;
        }
        let n = key.len() / BYTES_PER_LINE + 1;
        if n > LINES {
            return Err(bad(format!("more than {LINES} key lines")));
        }
        let body = match line.split_once(':') {
            Some((num, body)) if num == n.to_string() => body,
            Some((num, _)) => return Err(bad(format!("line {num:?} found where line {n} was expected"))),
            None => line.as_str(),
        };
        let bytes = parse_hex(body, &format!("line {n}"))?;
        if bytes.len() != BYTES_PER_LINE + 2 {
            return Err(bad(format!("line {n} has {} hex digits, expected {}", body.len(), 2 * (BYTES_PER_LINE + 2))));
        }
        if line_check(n, &bytes[..BYTES_PER_LINE]) != bytes[BYTES_PER_LINE..] {
            return Err(bad(format!("line {n} does not match its check (a typo in that line)")));
        }
        key.extend_from_slice(&bytes[..BYTES_PER_LINE]);
    }
    let key: [u8; KEY_BYTES] = key
        .as_slice()
        .try_into()
        .map_err(|_| bad(format!("{} of {LINES} key lines found", key.len() / BYTES_PER_LINE)))?;
    match whole {
        None => Err(bad("the check line is missing")),
        Some(c) if c != whole_check(&key) => Err(bad("the whole-key check does not match (a typo in the check line?)")),
        Some(_) => Ok(MasterKey::from_bytes(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        MasterKey::from_bytes(k)
    }

    #[test]
    fn round_trip_tolerates_spaces_case_and_blank_lines() {
        let text = export(&master());
        assert_eq!(import(&text).unwrap(), master());
        let messy = format!("\n  {}\n\n", text.to_uppercase().replace(' ', "   ").replace('\n', "\n\n"));
        assert_eq!(import(&messy).unwrap(), master());
        let no_numbers: String = text
            .lines()
            .map(|l| l.split_once(": ").map_or(l, |(n, r)| if n == "check" { l } else { r }))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(import(&no_numbers).unwrap(), master());
    }

    #[test]
    fn random_keys_round_trip() {
        for _ in 0..50 {
            let m = MasterKey::generate().unwrap();
            assert_eq!(import(&export(&m)).unwrap(), m);
        }
    }

    /// Every single-digit typo in the key lines is caught, on the line it is in.
    #[test]
    fn every_single_digit_typo_is_detected_and_located() {
        let text = export(&master());
        let lines: Vec<&str> = text.lines().collect();
        for (li, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with(char::is_numeric)) {
            let (prefix, body) = line.split_at(3);
            for (ci, c) in body.char_indices().filter(|(_, c)| c.is_ascii_hexdigit()) {
                for repl in "0123456789abcdef".chars().filter(|r| *r != c) {
                    let mut typo = lines.clone();
                    let changed = format!("{prefix}{}{repl}{}", &body[..ci], &body[ci + 1..]);
                    typo[li] = &changed;
                    let err = import(&typo.join("\n")).unwrap_err().to_string();
                    assert!(err.contains(&format!("line {li}")), "typo {changed:?}: {err}");
                }
            }
        }
    }

    #[test]
    fn check_line_and_missing_lines() {
        let text = export(&master());
        let flipped: String = {
            let mut l: Vec<String> = text.lines().map(String::from).collect();
            let last = l.last_mut().unwrap();
            let c = if last.ends_with('0') { '1' } else { '0' };
            last.pop();
            last.push(c);
            l.join("\n")
        };
        assert!(import(&flipped).unwrap_err().to_string().contains("whole-key check"));
        let three: Vec<&str> = text.lines().filter(|l| !l.starts_with("4:")).collect();
        assert!(import(&three.join("\n")).unwrap_err().to_string().contains("3 of 4"));
        let no_check: Vec<&str> = text.lines().filter(|l| !l.starts_with("check")).collect();
        assert!(import(&no_check.join("\n")).unwrap_err().to_string().contains("missing"));
        assert!(import("1: zz").is_err());
        let mut swapped: Vec<&str> = text.lines().collect();
        swapped.swap(1, 2);
        let renumbered: Vec<String> = swapped
            .iter()
            .enumerate()
            .map(|(i, l)| if (1..=4).contains(&i) { format!("{i}:{}", &l[2..]) } else { l.to_string() })
            .collect();
        assert!(import(&renumbered.join("\n")).unwrap_err().to_string().contains("line 1"), "swapped lines");
        assert!(import("").is_err());
    }
}
