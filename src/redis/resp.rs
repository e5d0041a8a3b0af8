//! RESP2, the Redis wire protocol, as far as cairn speaks it: commands go out as arrays of bulk
//! strings; replies come back as one of five types, read with bounds so that a server (or
//! something that is not one) sending nonsense gets an error, never a panic or an unbounded
//! allocation.
//!
//! ```text
//! +OK\r\n                  simple string       -ERR msg\r\n       error
//! :42\r\n                  integer             $3\r\nfoo\r\n     bulk string ($-1: nil)
//! *2\r\n<elem><elem>       array (*-1: nil)
//! ```

use std::io::{self, BufRead, Read, Write};

/// The largest bulk string cairn accepts: its replies (INFO, CONFIG GET, LASTSAVE) are small.
pub const MAX_BULK_BYTES: usize = 64 << 20;
/// The most elements an array reply may have.
pub const MAX_ARRAY_ITEMS: usize = 1 << 16;
/// How deeply arrays may nest.
const MAX_DEPTH: usize = 8;
/// The longest header line (`+OK`, `:12`, `$5` …) accepted.
const MAX_LINE_BYTES: usize = 64 << 10;

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The reply as text, for simple and bulk strings.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(s) => Some(s.clone()),
            Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Writes `args` as one command (an array of bulk strings).
pub fn write_command(out: &mut impl Write, args: &[&[u8]]) -> io::Result<()> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
    out.write_all(&buf)?;
    out.flush()
}

fn bad(detail: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.into())
}

/// Reads one reply.
pub fn read_value(input: &mut impl BufRead) -> io::Result<Value> {
    read_nested(input, 0)
}

fn read_nested(input: &mut impl BufRead, depth: usize) -> io::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(bad("reply arrays nested too deeply"));
    }
    let line = read_line(input)?;
    let (kind, rest) = line.split_first().ok_or_else(|| bad("empty reply line"))?;
    let text = String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Value::Simple(text)),
        b'-' => Ok(Value::Error(text)),
        b':' => Ok(Value::Int(parse_int(&text)?)),
        b'$' => read_bulk(input, parse_int(&text)?),
        b'*' => match parse_int(&text)? {
            -1 => Ok(Value::Array(None)),
            n if n < 0 || n as u64 > MAX_ARRAY_ITEMS as u64 => Err(bad(format!("array of {n} elements"))),
            n => {
                (0..n).map(|_| read_nested(input, depth + 1)).collect::<io::Result<_>>().map(|v| Value::Array(Some(v)))
            }
        },
        other => Err(bad(format!("unknown reply type byte 0x{other:02x}"))),
    }
}

fn read_bulk(input: &mut impl BufRead, len: i64) -> io::Result<Value> {
    if len == -1 {
        return Ok(Value::Bulk(None));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_BULK_BYTES)
        .ok_or_else(|| bad(format!("bulk of {len} bytes")))?;
    let mut data = vec![0; len + 2];
    input.read_exact(&mut data)?;
    if !data.ends_with(b"\r\n") {
        return Err(bad("bulk string not followed by CRLF"));
    }
    data.truncate(len);
    Ok(Value::Bulk(Some(data)))
}

fn parse_int(text: &str) -> io::Result<i64> {
    text.parse().map_err(|_| bad(format!("{text:?} is not an integer")))
}

/// One CRLF-terminated line, without the CRLF.
fn read_line(input: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut limited = Read::take(&mut *input, MAX_LINE_BYTES as u64);
    let n = limited.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad("reply line not terminated by CRLF"));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Value> {
        read_value(&mut io::BufReader::new(bytes))
    }

    #[test]
    fn every_reply_type_parses() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Value::Simple("OK".into()));
        assert_eq!(parse(b"-ERR no\r\n").unwrap(), Value::Error("ERR no".into()));
        assert_eq!(parse(b":-7\r\n").unwrap(), Value::Int(-7));
        assert_eq!(parse(b"$3\r\na\r\n\r\n").unwrap(), Value::Bulk(Some(b"a\r\n".to_vec())));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Value::Bulk(None));
        let arr = parse(b"*2\r\n$3\r\ndir\r\n$4\r\n/var\r\n").unwrap();
        assert_eq!(
            arr,
            Value::Array(Some(vec![Value::Bulk(Some(b"dir".to_vec())), Value::Bulk(Some(b"/var".to_vec()))]))
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"+OK",
            b"?x\r\n",
            b":x\r\n",
            b"$5\r\nab\r\n",
            b"$99999999999\r\n",
            b"$-5\r\n",
            b"*-3\r\n",
            b"*99999999\r\n",
            b"*1\r\n",
            b"$2\r\nabcd",
            b"\r\n",
        ] {
            assert!(parse(bytes).is_err(), "{bytes:?}");
        }
        let deep = "*1\r\n".repeat(20) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"CONFIG", b"GET", b"dir"]).unwrap();
        assert_eq!(out, b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n");
    }
}
