//! `cairn ls`.

use clap::Args;

use cairn::error::{exit, Result};
use cairn::ops;
use cairn::repo::{Access, SnapshotSpec};

use super::render::bytes;
use super::select::SelectArgs;
use super::Context;

#[derive(Args)]
pub struct LsArgs {
    /// Snapshot id, unique id prefix, or `latest`.
    snapshot: String,
    /// Absolute path inside the snapshot to list (default: everything).
    path: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn ls(ctx: &Context, args: LsArgs) -> Result<i32> {
    let repo = ctx.open_reading(Access::Read, "list a snapshot's files")?;
    let (_, snap) = repo.resolve_snapshot_matching(&args.snapshot.parse::<SnapshotSpec>()?, &args.select.filter())?;
    if ctx.json {
        let mut all = Vec::new();
        ops::ls(&repo, &snap, args.path.as_deref(), &mut |e| {
            all.push(e);
            Ok(())
        })?;
        super::render::json(&all)?;
    } else {
        ops::ls(&repo, &snap, args.path.as_deref(), &mut |e| {
            let suffix = match (&e.target, e.kind) {
                (Some(t), _) => format!(" -> {}", escape(t.as_bytes())),
                (None, "dir") => "/".to_string(),
                _ => String::new(),
            };
            // Directories above the snapshot's paths are stored without times (see design.md).
            let mtime = if e.kind == "dir" && e.mtime == EPOCH { "-" } else { e.mtime.as_str() };
            let path = e.path_bytes.as_deref().map_or_else(|| escape(e.path.as_bytes()), escape);
            outln!(
                "{} {:>5}:{:<5} {:>10}  {:<30}  {}{}",
                mode_string(e.kind, e.mode),
                e.uid,
                e.gid,
                bytes(e.size),
                mtime,
                path,
                suffix
            )
        })?;
    }
    Ok(exit::OK)
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// A name as one line of text: control characters (a newline in a file name would split the
/// line) as `\n`, `\t` or `\xNN`, a backslash as `\\`, and bytes that are not UTF-8 as
/// `\xNN`, so the exact name can be read back. `--json` carries the raw bytes instead.
fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `drwxr-xr-x` style, with setuid/setgid (`s`/`S`) and sticky (`t`/`T`) shown as `ls -l`
/// shows them.
fn mode_string(kind: &str, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "fifo" => 'p',
        "socket" => 's',
        "chardev" => 'c',
        "blockdev" => 'b',
        _ => '-',
    });
    // (shift of the rwx triple, its special bit, the letter for special with and without x)
    for (shift, special, letters) in [(6, 0o4000, ('s', 'S')), (3, 0o2000, ('s', 'S')), (0, 0o1000, ('t', 'T'))] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (mode & special != 0, bits & 1 != 0) {
            (true, true) => letters.0,
            (true, false) => letters.1,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::mode_string;

    #[test]
    fn names_are_escaped_onto_one_line() {
        assert_eq!(super::escape(b"plain name"), "plain name");
        assert_eq!(super::escape(b"two\nlines\tand\\"), "two\\nlines\\tand\\\\");
        assert_eq!(super::escape(b"bad\xffbyte\x01"), "bad\\xffbyte\\x01");
    }

    #[test]
    fn special_bits_are_shown() {
        assert_eq!(mode_string("file", 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string("dir", 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string("file", 0o2640), "-rw-r-S---");
        assert_eq!(mode_string("dir", 0o1770), "drwxrwx--T");
        assert_eq!(mode_string("file", 0o644), "-rw-r--r--");
    }
}
