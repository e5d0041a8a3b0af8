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
    let repo = ctx.open(Access::Read)?;
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
                (Some(t), _) => format!(" -> {t}"),
                (None, "dir") => "/".to_string(),
                _ => String::new(),
            };
            outln!(
                "{} {:>5}:{:<5} {:>10}  {}  {}{}",
                mode_string(e.kind, e.mode),
                e.uid,
                e.gid,
                bytes(e.size),
                e.mtime,
                e.path,
                suffix
            )
        })?;
    }
    Ok(exit::OK)
}

/// `drwxr-xr-x` style.
fn mode_string(kind: &str, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "dir" => 'd',
        "symlink" => 'l',
        _ => '-',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}
