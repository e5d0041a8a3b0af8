//! `cairn snapshot tag`: change the tags of snapshots (each gets a new id).

use clap::Args;

use cairn::error::{exit, Result};
use cairn::ops::{self, TagChange};
use cairn::repo::{Access, SnapshotSpec};

use super::render::{json, plural};
use super::Context;

#[derive(Args)]
pub struct TagArgs {
    /// Snapshots to change (ids, unique id prefixes, or `latest`).
    #[arg(required = true, value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    remove: Vec<String>,
    /// Replace all tags by these (repeatable; `--set ''` removes every tag).
    #[arg(long, value_name = "TAG")]
    set: Vec<String>,
}

pub fn run(ctx: &Context, args: TagArgs) -> Result<i32> {
    let specs = args.snapshots.iter().map(|s| s.parse::<SnapshotSpec>()).collect::<Result<Vec<_>>>()?;
    let change = TagChange { set: (!args.set.is_empty()).then_some(args.set), add: args.add, remove: args.remove };
    let repo = ctx.open(Access::Write)?;
    let done = ops::tag(&repo, &specs, &change)?;
    if ctx.json {
        json(&done)?;
        return Ok(exit::OK);
    }
    for r in &done {
        let tags = if r.tags.is_empty() { "no tags".to_string() } else { r.tags.join(",") };
        if r.changed {
            outln!("{} -> {}  {tags}", &r.old[..8], &r.new[..8])?;
        } else {
            outln!("{} unchanged  {tags}", &r.old[..8])?;
        }
    }
    let changed = done.iter().filter(|r| r.changed).count() as u64;
    ctx.say(format!("changed the tags of {} (each has a new id)", plural(changed, "snapshot")));
    Ok(exit::OK)
}
