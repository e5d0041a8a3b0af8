//! `cairn init` and `cairn repo info|repair`.

use clap::{Args, Subcommand};
use serde::Serialize;

use cairn::chunker::ChunkerParams;
use cairn::error::{exit, Result};
use cairn::repo::{Access, InitOptions, Repository};

use super::render::{bytes, count, json};
use super::Context;

#[derive(Args)]
pub struct InitArgs {
    /// zstd compression level for stored chunks (0 = store uncompressed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=22))]
    compression: i32,
    /// Average chunk size in KiB (min is a quarter, max four times). Fixed for the
    /// repository's life: changing it would break deduplication.
    #[arg(long, default_value_t = 64, value_name = "KIB")]
    chunk_kib: u32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024), value_name = "MIB")]
    pack_mib: u32,
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Show the repository's configuration and size.
    Info,
    /// Repair derived data.
    #[command(subcommand)]
    Repair(RepairCommand),
}

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the chunk index from the pack trailers.
    Index,
}

#[derive(Serialize)]
struct InfoView {
    location: String,
    id: String,
    format_version: u16,
    created: String,
    chunker: ChunkerParams,
    compression_level: i32,
    pack_target_bytes: u32,
    packs: u64,
    pack_bytes: u64,
    snapshots: u64,
    index: String,
}

pub fn init(ctx: &Context, args: InitArgs) -> Result<i32> {
    let path = ctx.repo_path()?;
    let avg = args.chunk_kib.saturating_mul(1024);
    let opts = InitOptions {
        chunker: ChunkerParams {
            min_bytes: avg / 4,
            avg_bytes: avg,
            max_bytes: avg.saturating_mul(4),
        },
        compression_level: args.compression,
        pack_target_bytes: args.pack_mib << 20,
    };
    opts.chunker.validate()?;
    let config = Repository::init_local(path, &opts)?;
    // Create the index now so the layout is complete.
    drop(Repository::open_local(
        path,
        Access::Write,
        cairn::IndexKind::Persistent,
    )?);
    if ctx.json {
        json(
            &serde_json::json!({ "location": path.display().to_string(), "id": config.id.0.to_hex() }),
        );
    } else {
        ctx.say(format!(
            "created repository {} at {}",
            &config.id.0.to_hex()[..8],
            path.display()
        ));
    }
    Ok(exit::OK)
}

pub fn run(ctx: &Context, cmd: RepoCommand) -> Result<i32> {
    match cmd {
        RepoCommand::Info => info(ctx),
        RepoCommand::Repair(RepairCommand::Index) => repair_index(ctx),
    }
}

fn info(ctx: &Context) -> Result<i32> {
    let repo = ctx.open(Access::Read)?;
    let c = repo.config();
    let packs = repo.list_packs()?;
    let view = InfoView {
        location: repo.location(),
        id: c.id.0.to_hex(),
        format_version: cairn::repo::REPO_FORMAT_VERSION,
        created: cairn::time::format_ns(c.created_ns),
        chunker: c.chunker,
        compression_level: c.compression_level,
        pack_target_bytes: c.pack_target_bytes,
        packs: packs.len() as u64,
        pack_bytes: packs.iter().map(|(_, s)| s).sum(),
        snapshots: repo.snapshot_ids()?.len() as u64,
        index: repo.index().describe(),
    };
    if ctx.json {
        json(&view);
    } else {
        println!("repository   {}", view.location);
        println!("id           {}", view.id);
        println!("format       version {}", view.format_version);
        println!("created      {}", view.created);
        println!(
            "chunks       FastCDC min {} / avg {} / max {}",
            bytes(u64::from(c.chunker.min_bytes)),
            bytes(u64::from(c.chunker.avg_bytes)),
            bytes(u64::from(c.chunker.max_bytes))
        );
        println!("compression  zstd level {}", view.compression_level);
        println!(
            "packs        {} ({}), target {}",
            count(view.packs),
            bytes(view.pack_bytes),
            bytes(u64::from(view.pack_target_bytes))
        );
        println!("snapshots    {}", count(view.snapshots));
        println!("index        {}", view.index);
    }
    Ok(exit::OK)
}

fn repair_index(ctx: &Context) -> Result<i32> {
    let path = ctx.repo_path()?;
    let report = cairn::repo::repair_local_index(path)?;
    if ctx.json {
        json(&report);
    } else {
        ctx.say(format!(
            "rebuilt the index from {} packs",
            count(report.packs_added)
        ));
    }
    Ok(exit::OK)
}
