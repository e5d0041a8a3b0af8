//! Redis 7 multi-part AOF: the manifest that names the files a restart loads, and whether an
//! incr file ends on a command boundary.
//!
//! The manifest (`appendonly.aof.manifest` in `appenddirname`) has one line per file:
//!
//! ```text
//! file appendonly.aof.3.base.rdb seq 3 type b      base: the rewrite's snapshot (RDB or AOF)
//! file appendonly.aof.5.incr.aof seq 5 type i      incr: commands since, loaded in order
//! file appendonly.aof.2.base.rdb seq 2 type h      history: obsolete, deleted soon
//! ```
//!
//! Redis replaces it by rename whenever a rewrite starts (a new incr file) or ends (a new
//! base). A restart needs the base and every incr file it names; history files are not loaded.
//! Incr files hold RESP commands (`*N\r\n$len\r\narg\r\n…`), with `#…\r\n` annotation lines.

use std::io::{self, BufRead, BufReader, Read};

use crate::error::{Error, Result};

/// One file a manifest names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    pub seq: u64,
    pub kind: AofKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AofKind {
    Base,
    Incr,
    History,
}

/// The parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<AofFile>,
}

impl Manifest {
    /// Parses a manifest; `what` names it in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Manifest> {
        let text = std::str::from_utf8(bytes).map_err(|_| Error::corrupt(what, "not UTF-8"))?;
        let mut files = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let at = |why: String| Error::corrupt(what, format!("line {}: {why}", n + 1));
            let words = split_words(line).map_err(at)?;
            let field = |key: &str| words.chunks(2).find(|kv| kv[0] == key).and_then(|kv| kv.get(1)).cloned();
            let name = field("file").ok_or_else(|| at("no file name".into()))?;
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(at(format!("file name {name:?} is not a plain name")));
            }
            let seq = field("seq").and_then(|s| s.parse().ok()).ok_or_else(|| at("no valid seq".into()))?;
            let kind = match field("type").as_deref() {
                Some("b") => AofKind::Base,
                Some("i") => AofKind::Incr,
                Some("h") => AofKind::History,
                other => return Err(at(format!("unknown file type {other:?}"))),
            };
            files.push(AofFile { name, seq, kind });
        }
        let manifest = Manifest { files };
        if manifest.live().next().is_none() {
            return Err(Error::corrupt(what, "it names no base or incr file"));
        }
        Ok(manifest)
    }

    /// The files a restart loads: the base and the incr files.
    pub fn live(&self) -> impl Iterator<Item = &AofFile> {
        self.files.iter().filter(|f| f.kind != AofKind::History)
    }

    /// The incr file with the highest sequence number: the one Redis appends to.
    pub fn last_incr(&self) -> Option<&AofFile> {
        self.files.iter().filter(|f| f.kind == AofKind::Incr).max_by_key(|f| f.seq)
    }
}

/// Words of a manifest line: separated by blanks, or double-quoted with C escapes (Redis
/// quotes names holding blanks or unusual bytes).
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next().ok_or("unclosed quote")? {
                    '"' => break,
                    '\\' => word.push(match chars.next().ok_or("unclosed quote")? {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'x' => {
                            let hex: String = chars.by_ref().take(2).collect();
                            u8::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\x{hex}"))? as char
                        }
                        other => other,
                    }),
                    other => word.push(other),
                }
            }
        } else {
            while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace()) {
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

/// How an incr file's first bytes end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// On a command boundary: loads with `aof-load-truncated no`.
    Complete,
    /// Inside a command (the read met a write in progress): Redis refuses to load it unless
    /// `aof-load-truncated yes`, which drops that command.
    Partial,
    /// Not RESP at this offset: the file is damaged or not an incr file.
    Malformed(String),
}

/// Reads `input` (an incr file's first bytes) command by command and says how it ends.
pub fn tail_of(input: impl Read) -> io::Result<Tail> {
    let mut r = BufReader::new(input);
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(Tail::Complete);
        }
        match line[0] {
            b'#' | b'*' if !line.ends_with(b"\r\n") => return Ok(Tail::Partial),
            b'#' => continue,
            b'*' => {}
            other => return Ok(Tail::Malformed(format!("byte 0x{other:02x} where a command starts"))),
        }
        let Some(args) = number(&line[1..]) else { return Ok(Tail::Malformed("bad argument count".into())) };
        for _ in 0..args {
            let mut head = Vec::new();
            r.read_until(b'\n', &mut head)?;
            if !head.ends_with(b"\r\n") {
                return Ok(Tail::Partial);
            }
            let len = match (head[0], number(&head[1..])) {
                (b'$', Some(len)) => len,
                _ => return Ok(Tail::Malformed("bad argument header".into())),
            };
            let want = len + 2;
            if io::copy(&mut r.by_ref().take(want), &mut io::sink())? < want {
                return Ok(Tail::Partial);
            }
        }
    }
}

/// `123\r\n` → 123.
fn number(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes.strip_suffix(b"\r\n")?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_its_base_and_incr_files() {
        let text = b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.base.rdb seq 1 type h\n\
                     file appendonly.aof.3.incr.aof seq 3 type i\nfile \"odd name.aof\" seq 4 type i\n";
        let m = Manifest::parse(text, "manifest").unwrap();
        let live: Vec<&str> = m.live().map(|f| f.name.as_str()).collect();
        assert_eq!(live, ["appendonly.aof.2.base.rdb", "appendonly.aof.3.incr.aof", "odd name.aof"]);
        assert_eq!(m.last_incr().unwrap().name, "odd name.aof");
    }

    #[test]
    fn bad_manifests_are_named_errors() {
        for text in [
            &b"file ../../etc/passwd seq 1 type b\n"[..],
            b"file a seq x type b\n",
            b"file a seq 1 type z\n",
            b"file \"a seq 1 type b\n",
            b"seq 1 type b\n",
            b"file a seq 1 type h\n",
            b"\xff\n",
            b"",
        ] {
            let e = Manifest::parse(text, "the manifest").unwrap_err();
            assert!(e.to_string().starts_with("the manifest is corrupt"), "{e}");
        }
    }

    #[test]
    fn a_torn_last_command_is_partial() {
        let cmds = b"#TS:1\r\n*3\r\n$3\r\nSET\r\n$5\r\nseq:1\r\n$1\r\n1\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n";
        assert_eq!(tail_of(&cmds[..]).unwrap(), Tail::Complete);
        assert_eq!(tail_of(&b""[..]).unwrap(), Tail::Complete);
        for cut in 1..cmds.len() {
            let expect = if cut == 7 || cut == 38 { Tail::Complete } else { Tail::Partial };
            assert_eq!(tail_of(&cmds[..cut]).unwrap(), expect, "cut at {cut}");
        }
        assert!(matches!(tail_of(&b"REDIS0011"[..]).unwrap(), Tail::Malformed(_)));
    }
}
