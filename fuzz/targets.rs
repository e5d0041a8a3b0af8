//! The bodies of the fuzz targets, as plain functions: every decoder of bytes read from disk.
//! Hostile input must give an error, never a panic, an abort or an unbounded allocation.
//! Included by `fuzz/fuzz_targets/*.rs` (libFuzzer) and by `tests/fuzz_replay.rs`, which
//! replays the committed seeds in `fuzz/seeds/` on every `cargo test`.

/// The repository config record: the sealed envelope, and the payload decoder behind the
/// checksum (which random mutations would otherwise rarely get past).
pub fn config(data: &[u8]) {
    let _ = cairn::repo::Config::decode(data);
    for version in [1, 2] {
        let _ = cairn::repo::Config::decode_payload(version, data);
    }
}

/// A whole pack: header, footer, trailer, and every blob it lists; read as an unencrypted
/// pack and as an encrypted one (under a fixed key, as the committed seeds were written).
pub fn pack(data: &[u8]) {
    let keyed = cairn::crypto::Sealer::full(&cairn::crypto::MasterKey::from_bytes([7; 32]));
    for sealer in [&cairn::crypto::Sealer::None, &keyed] {
        if let Ok(entries) = cairn::pack::parse_pack(data, sealer, "fuzz") {
            for e in entries {
                let stored = &data[e.offset as usize..e.offset as usize + e.stored_len as usize];
                let _ = cairn::pack::decode_blob(&e, stored, "fuzz", sealer);
            }
        }
    }
}

/// A directory tree record.
pub fn tree(data: &[u8]) {
    let _ = cairn::snapshot::Tree::decode(data, "fuzz");
    for version in [1, 2] {
        let _ = cairn::snapshot::Tree::decode_payload(version, data, "fuzz");
    }
    let _ = cairn::snapshot::ChunkList::decode(data, "fuzz");
    let _ = cairn::codec::from_bytes::<cairn::snapshot::ChunkList>(data, "fuzz");
}

/// A snapshot record.
pub fn snapshot(data: &[u8]) {
    let _ = cairn::snapshot::Snapshot::decode(data, "fuzz");
    let _ = cairn::codec::from_bytes::<cairn::snapshot::Snapshot>(data, "fuzz");
}

/// A WAL catalog record.
pub fn wal_record(data: &[u8]) {
    let _ = cairn::snapshot::WalRecord::decode(data, "fuzz");
    let _ = cairn::codec::from_bytes::<cairn::snapshot::WalRecord>(data, "fuzz");
}

/// A run record (restore test, check, failed snapshot).
pub fn run_record(data: &[u8]) {
    let _ = cairn::snapshot::RunRecord::decode(data, "fuzz");
    let _ = cairn::codec::from_bytes::<cairn::snapshot::RunRecord>(data, "fuzz");
}

/// A lock record.
pub fn lock(data: &[u8]) {
    let _ = cairn::repo::LockRecord::decode(data, "fuzz");
    let _ = cairn::codec::from_bytes::<cairn::repo::LockRecord>(data, "fuzz");
}

/// Index values: chunk locations and pack records.
pub fn index_value(data: &[u8]) {
    let _ = cairn::index::Location::decode(data);
    let _ = cairn::index::PackInfo::decode(data);
}

/// A key file: header, names and KDF bounds; opened too when its KDF parameters are cheap
/// enough for a fuzzer (the seeds use the fastest argon2 settings).
pub fn key_file(data: &[u8]) {
    if let Ok(meta) = cairn::crypto::decode_meta(data) {
        if meta.kdf.memory_kib <= 64 && meta.kdf.passes <= 2 {
            let _ = cairn::crypto::open_key_file(data, FUZZ_PASSPHRASE);
        }
    }
}

/// The fixed key the crypto seeds are sealed with, so mutations reach the opening code.
pub const FUZZ_MASTER_KEY: [u8; 32] = [0x5e; 32];
pub const FUZZ_PASSPHRASE: &[u8] = b"fuzz";

/// A sealed envelope opened as every kind by a full key; and the input as a write-only
/// session header (the loader returns it for a frame that names it).
pub fn envelope(data: &[u8]) {
    use cairn::crypto::{Kind, MasterKey, Sealer};
    let header = data.to_vec();
    let loader: cairn::crypto::SessionLoader = std::sync::Arc::new(move |_| Ok(header.clone()));
    let full = Sealer::full_with_sessions(&MasterKey::from_bytes(FUZZ_MASTER_KEY), Some(loader));
    let mut naming = vec![cairn::crypto::SUITE_SESSION];
    naming.extend_from_slice(&cairn::crypto::session_id(data));
    naming.extend_from_slice(&[0; 40]);
    let _ = full.open(Kind::Tree, b"", &naming);
    for kind in Kind::ALL {
        let _ = cairn::crypto::inspect_envelope(data, kind);
        let _ = full.open(kind, b"fuzz", data);
    }
}

/// A paper key's text.
pub fn paper_key(data: &[u8]) {
    let _ = cairn::crypto::import_paper_key(&String::from_utf8_lossy(data));
}

/// An export file's header, trailer and manifest (and the manifest's contents, as plaintext
/// and sealed under the fixed fuzz key): what `snapshot import` decodes before it trusts any
/// length in the file.
pub fn export(data: &[u8]) {
    use cairn::crypto::{MasterKey, Sealer};
    use cairn::repo::export::{Contents, Header, Manifest, Trailer, HEADER_BYTES, TRAILER_BYTES};
    let keyed = Sealer::full(&MasterKey::from_bytes(FUZZ_MASTER_KEY));
    let contents = |bytes: &[u8]| {
        for sealer in [&Sealer::None, &keyed] {
            let _ = Contents::open(bytes, sealer, "fuzz");
        }
    };
    let _ = Header::decode(data, "fuzz");
    let _ = Manifest::decode(data, "fuzz");
    contents(data);
    if data.len() < HEADER_BYTES + TRAILER_BYTES {
        return;
    }
    let end = data.len() - TRAILER_BYTES;
    let Ok(trailer) = Trailer::decode(&data[end..], "fuzz") else { return };
    let Some(start) = usize::try_from(trailer.manifest_len).ok().and_then(|n| end.checked_sub(n)) else { return };
    if let Ok(m) = Manifest::decode(&data[start..end], "fuzz") {
        contents(&m.contents);
    }
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
#[allow(dead_code)]
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("pack", pack),
    ("tree", tree),
    ("snapshot", snapshot),
    ("index_value", index_value),
    ("wal_record", wal_record),
    ("run_record", run_record),
    ("lock", lock),
    ("key_file", key_file),
    ("envelope", envelope),
    ("paper_key", paper_key),
    ("export", export),
];
