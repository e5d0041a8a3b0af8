//! Talking to Redis for consistent snapshots of its data directory: a small RESP client of
//! our own (`client.rs`, `resp.rs`) and the multi-part AOF manifest (`aof.rs`).
//!
//! Why not the `redis` crate: cairn sends about six commands (AUTH, INFO, CONFIG GET,
//! LASTSAVE, BGSAVE) and reads small replies; RESP2 for that fits in one short, fuzzable file
//! with bounded reads, where the crate would bring its own URL, TLS and async layers.

pub mod aof;
pub mod client;
pub mod resp;

pub use aof::{tail_of, AofFile, AofKind, Manifest, Tail};
pub use client::{Client, Target};
