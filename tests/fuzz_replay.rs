//! Replays the fuzz targets' committed seeds (`fuzz/seeds/<target>/`) and thousands of
//! deterministic mutations of them on every `cargo test`: no decoder of bytes read from disk
//! may panic. `cargo fuzz run <target>` explores further (see the README).

#[path = "../fuzz/targets.rs"]
mod targets;

mod common;

use std::fs;
use std::path::{Path, PathBuf};

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = seeds_dir(target);
    let mut files: Vec<_> =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| fs::read(p).unwrap()).collect()
}

#[test]
fn committed_seeds_decode_without_panicking() {
    for (name, run) in targets::TARGETS {
        let seeds = seeds(name);
        assert!(seeds.len() >= 2, "fuzz/seeds/{name} needs seeds");
        for s in &seeds {
            run(s);
        }
    }
}

/// The seeds that stand for well-formed input must decode, not merely not panic: a decoder
/// that rejected everything would pass the replay above, and a stale seed would stop
/// reaching the code behind the first check.
#[test]
fn well_formed_seeds_decode_ok() {
    use cairn::codec::from_bytes;
    use cairn::crypto::{Kind, MasterKey, Sealer};
    use cairn::repo::{Config, LockRecord};
    use cairn::snapshot::{Snapshot, Tree, WalRecord};
    let seed = |path: &str| {
        let (target, name) = path.split_once('/').unwrap();
        fs::read(seeds_dir(target).join(name)).unwrap()
    };
    let ok = |path: &str, decoded: bool| {
        assert!(decoded, "fuzz/seeds/{path} is meant to be well formed but does not decode")
    };
    ok("config/valid", Config::decode(&seed("config/valid")).is_ok());
    ok("config/v2", Config::decode(&seed("config/v2")).is_ok());
    ok("config/payload", Config::decode_payload(1, &seed("config/payload")).is_ok());
    ok("config/v2-payload", Config::decode_payload(2, &seed("config/v2-payload")).is_ok());
    for name in ["root", "subtree", "v2-every-kind"] {
        ok(&format!("tree/{name}"), Tree::decode(&seed(&format!("tree/{name}")), "seed").is_ok());
    }
    ok("tree/payload", Tree::decode_payload(1, &seed("tree/payload"), "seed").is_ok());
    ok("tree/v2-payload", Tree::decode_payload(2, &seed("tree/v2-payload"), "seed").is_ok());
    ok("snapshot/valid", Snapshot::decode(&seed("snapshot/valid"), "seed").is_ok());
    ok("snapshot/payload", from_bytes::<Snapshot>(&seed("snapshot/payload"), "seed").is_ok());
    ok("wal_record/valid", WalRecord::decode(&seed("wal_record/valid"), "seed").is_ok());
    ok("wal_record/payload", from_bytes::<WalRecord>(&seed("wal_record/payload"), "seed").is_ok());
    ok("run_record/valid", cairn::snapshot::RunRecord::decode(&seed("run_record/valid"), "seed").is_ok());
    ok("run_record/payload", from_bytes::<cairn::snapshot::RunRecord>(&seed("run_record/payload"), "seed").is_ok());
    ok("lock/valid", LockRecord::decode(&seed("lock/valid"), "seed").is_ok());
    ok("lock/payload", from_bytes::<LockRecord>(&seed("lock/payload"), "seed").is_ok());
    ok("index_value/location", cairn::index::Location::decode(&seed("index_value/location")).is_ok());
    ok("index_value/pack", cairn::index::PackInfo::decode(&seed("index_value/pack")).is_ok());
    // The pack seed: its trailer parses and every blob it lists decodes and verifies.
    let pack = seed("pack/valid");
    let keyed = Sealer::full(&MasterKey::from_bytes([7; 32]));
    let decoded = [&Sealer::None, &keyed].into_iter().any(|sealer| {
        cairn::pack::parse_pack(&pack, sealer, "seed").is_ok_and(|entries| {
            !entries.is_empty()
                && entries.iter().all(|e| {
                    let stored = &pack[e.offset as usize..e.offset as usize + e.stored_len as usize];
                    cairn::pack::decode_blob(e, stored, "seed", sealer).is_ok()
                })
        })
    });
    ok("pack/valid", decoded);
    // Crypto seeds, sealed under the fixed fuzz key (see `write_crypto_seeds`).
    ok("key_file/full", cairn::crypto::open_key_file(&seed("key_file/full"), targets::FUZZ_PASSPHRASE).is_ok());
    ok("key_file/write-only", cairn::crypto::open_key_file(&seed("key_file/write-only"), b"other").is_ok());
    let header = seed("envelope/session-header");
    let loader: cairn::crypto::SessionLoader = std::sync::Arc::new(move |_| Ok(header.clone()));
    let full = Sealer::full_with_sessions(&MasterKey::from_bytes(targets::FUZZ_MASTER_KEY), Some(loader));
    ok("envelope/suite1-snapshot", full.open(Kind::Snapshot, b"fuzz", &seed("envelope/suite1-snapshot")).is_ok());
    ok("envelope/suite1-trailer", full.open(Kind::PackTrailer, b"fuzz", &seed("envelope/suite1-trailer")).is_ok());
    ok("envelope/suite2-tree", full.open(Kind::Tree, b"fuzz", &seed("envelope/suite2-tree")).is_ok());
    // The export seed: a whole unencrypted export of a one-file snapshot.
    {
        use cairn::repo::export::{Contents, Header, Manifest, Trailer, TRAILER_BYTES};
        let file = seed("export/valid");
        ok("export/valid (header)", Header::decode(&file, "seed").is_ok());
        let trailer = Trailer::decode(&file[file.len() - TRAILER_BYTES..], "seed");
        ok("export/valid (trailer)", trailer.is_ok());
        let manifest = Manifest::decode(&seed("export/manifest"), "seed");
        ok(
            "export/manifest",
            manifest.as_ref().is_ok_and(|m| Contents::open(&m.contents, &Sealer::None, "seed").is_ok()),
        );
    }
    let paper = String::from_utf8(seed("paper_key/valid")).unwrap();
    ok("paper_key/valid", cairn::crypto::import_paper_key(&paper).is_ok());
}

#[test]
fn mutated_seeds_never_panic() {
    let mut rng = common::Rng::new(2026);
    for (name, run) in targets::TARGETS {
        for seed in seeds(name) {
            for _ in 0..400 {
                let mut m = seed.clone();
                match rng.below(4) {
                    0 if !m.is_empty() => {
                        let i = rng.below(m.len() as u64) as usize;
                        m[i] ^= 1 << rng.below(8);
                    }
                    1 => m.truncate(rng.below(m.len() as u64 + 1) as usize),
                    2 if m.len() >= 4 => {
                        // Overwrite a length-like field with a huge value.
                        let i = rng.below(m.len() as u64 - 3) as usize;
                        m[i..i + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                    }
                    _ => {
                        let n = rng.below(64) as usize;
                        m.extend_from_slice(&rng.bytes(n));
                    }
                }
                run(&m);
            }
        }
    }
}

/// Writes fresh seeds from a real repository: `cargo test --release --test fuzz_replay --
/// --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    use cairn::repo::{Access, IndexKind};
    // Plaintext records: the decoders behind the envelope (encrypted packs are fuzzed with
    // the fixed key of `targets::pack`).
    let repo = common::TestRepo::unencrypted(IndexKind::Memory);
    let src = repo.dir.path().join("src");
    common::write_file(&src.join("a/b.txt"), b"hello seeds");
    common::write_file(&src.join("big.bin"), &common::Rng::new(1).bytes(100_000));
    std::os::unix::fs::symlink("a/b.txt", src.join("link")).unwrap();
    let report = repo.snapshot(&[&src]);
    let r = repo.open(Access::Read);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        fs::create_dir_all(seeds_dir(target)).unwrap();
        fs::write(seeds_dir(target).join(name), bytes).unwrap();
    };
    write("config", "valid", &fs::read(repo.path().join("config")).unwrap());
    write("config", "empty", b"");
    let snap = repo.path().join("snapshots").join(report.id.to_hex());
    write("snapshot", "valid", &fs::read(snap).unwrap());
    write("snapshot", "wrong-kind", &fs::read(repo.path().join("config")).unwrap());
    let root = r.read_blob(&report.snapshot.root).unwrap();
    write("tree", "root", &root);
    let mut tree = r.load_tree(&report.snapshot.root).unwrap();
    let sub = tree.nodes.iter().find_map(|n| n.subtree()).unwrap();
    write("tree", "subtree", &r.read_blob(&sub).unwrap());
    tree.nodes.clear();
    write("tree", "empty", &tree.encode().unwrap());
    let (pack, _) = r.list_packs().unwrap()[0];
    write("pack", "valid", &fs::read(repo.path().join(cairn::repo::pack_key(&pack))).unwrap());
    write("pack", "header-only", b"CRNPACK\x01");
    let loc = r.locate(&report.snapshot.root).unwrap();
    write("index_value", "location", &loc.encode());
    // Payload-only seeds, for the decoders behind the envelope checksum.
    let payload = |sealed: &[u8]| sealed[12..sealed.len() - 32].to_vec();
    write("config", "payload", &payload(&fs::read(repo.path().join("config")).unwrap()));
    write("snapshot", "payload", &payload(&fs::read(repo.path().join("snapshots").join(report.id.to_hex())).unwrap()));
    write("tree", "payload", &payload(&root));
    let wal = repo.dir.path().join("000000010000000000000001");
    common::write_file(&wal, &common::Rng::new(3).bytes(70_000));
    cairn::ops::wal::push(&r, &wal, "pg").unwrap();
    let record = fs::read(repo.path().join("wal/pg/000000010000000000000001")).unwrap();
    write("wal_record", "valid", &record);
    write("wal_record", "payload", &payload(&record));
    let lock = cairn::repo::LockRecord {
        kind: cairn::repo::LockKind::Exclusive,
        command: "prune".into(),
        host: "db1".into(),
        boot_id: "b".into(),
        pid: 42,
        pid_start: 7,
        created_ns: 1,
        heartbeat_ns: 2,
    }
    .encode()
    .unwrap();
    write("lock", "valid", &lock);
    write("lock", "payload", &payload(&lock));
    write("index_value", "pack", &cairn::index::PackInfo { size: 1 << 20, blobs: 7 }.encode());
}

/// Writes the run record seeds: `cargo test --release --test fuzz_replay -- --ignored
/// write_run_record_seeds`.
#[test]
#[ignore]
fn write_run_record_seeds() {
    use cairn::snapshot::{RunKind, RunRecord};
    let record = RunRecord {
        kind: RunKind::RestoreTest,
        success: false,
        time_ns: 1_764_756_000_000_000_000,
        duration_ms: 1234,
        ran_on: "db1".into(),
        host: "db1".into(),
        paths: vec![b"/var/lib/redis".to_vec()],
        snapshot: Some(cairn::SnapshotId(cairn::id::Digest([9; 32]))),
        command: "redis-check-rdb $CAIRN_RESTORE_DIR/dump.rdb".into(),
        exit_code: Some(1),
        bytes: 4096,
        detail: "verify hook exited with 1".into(),
        tool: "cairn 0.1.0".into(),
    }
    .encode()
    .unwrap();
    let dir = seeds_dir("run_record");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("valid"), &record).unwrap();
    fs::write(dir.join("payload"), &record[12..record.len() - 32]).unwrap();
}

/// Writes the pack seed whose trailer lays one blob over another (`repo check` reports such a
/// pack as corrupt): `cargo test --release --test fuzz_replay -- --ignored write_overlap_seed`.
#[test]
#[ignore]
fn write_overlap_seed() {
    use cairn::pack::{encode_trailer, EncodedBlob, PackBuilder, FOOTER_BYTES, TRAILER_ENTRY_BYTES};
    let mut b = PackBuilder::new();
    for data in [&b"hello world"[..], b"world"] {
        let blob = EncodedBlob { codec: cairn::pack::Codec::Raw, bytes: data.to_vec() };
        b.add(cairn::ChunkId::of(data), cairn::pack::BlobKind::Data, data.len() as u32, &blob);
    }
    let mut pack = b.finish(&cairn::crypto::Sealer::None).unwrap();
    pack.entries[1].offset -= 5;
    pack.bytes.truncate(pack.bytes.len() - FOOTER_BYTES - pack.entries.len() * TRAILER_ENTRY_BYTES);
    pack.bytes.extend_from_slice(&encode_trailer(&pack.entries, None).unwrap());
    fs::write(seeds_dir("pack").join("overlapping"), &pack.bytes).unwrap();
}

/// The fuzz targets are declared once, in `fuzz/Cargo.toml` (`scripts/fuzz.sh` runs that
/// list): each must have its file in `fuzz/fuzz_targets/` and be replayed here, and nothing
/// here may be missing from the list.
#[test]
fn every_declared_fuzz_target_is_replayed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        .filter(|n| *n != "cairn-fuzz")
        .collect();
    declared.sort_unstable();
    let mut files: Vec<String> = fs::read_dir(root.join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    files.sort_unstable();
    let mut replayed: Vec<&str> = targets::TARGETS.iter().map(|(n, _)| *n).collect();
    replayed.sort_unstable();
    assert_eq!(declared, files, "fuzz/Cargo.toml and fuzz/fuzz_targets/ disagree");
    assert_eq!(declared, replayed, "fuzz/Cargo.toml and fuzz/targets.rs TARGETS disagree");
}

/// Writes the crypto targets' seeds (key files, envelopes, paper keys), sealed with the fixed
/// fuzz key: `cargo test --release --test fuzz_replay -- --ignored write_crypto_seeds`.
#[test]
#[ignore]
fn write_crypto_seeds() {
    use cairn::crypto::{self, KdfParams, KeyOwner, Kind, MasterKey, Sealer};
    let write = |target: &str, name: &str, bytes: &[u8]| {
        fs::create_dir_all(seeds_dir(target)).unwrap();
        fs::write(seeds_dir(target).join(name), bytes).unwrap();
    };
    let master = MasterKey::from_bytes(targets::FUZZ_MASTER_KEY);
    let owner = KeyOwner { created_s: 1_764_000_000, host: "db1".into(), user: "postgres".into() };
    let full = crypto::create_full(&master, targets::FUZZ_PASSPHRASE, KdfParams::INSECURE_FAST, &owner).unwrap();
    write("key_file", "full", &full);
    let wo = master.derive().write_only();
    write(
        "key_file",
        "write-only",
        &crypto::create_write_only(&wo, b"other", KdfParams::INSECURE_FAST, &owner).unwrap(),
    );
    write("key_file", "truncated", &full[..40]);
    let sealer = Sealer::full(&master);
    write("envelope", "suite1-snapshot", &sealer.seal(Kind::Snapshot, b"fuzz", b"a snapshot record").unwrap());
    write("envelope", "suite1-trailer", &sealer.seal(Kind::PackTrailer, b"fuzz", &[0u8; 64]).unwrap());
    let writer = Sealer::write_only(wo).unwrap();
    write("envelope", "session-header", writer.session_header().unwrap().1);
    write("envelope", "suite2-tree", &writer.seal(Kind::Tree, b"fuzz", b"a tree").unwrap());
    let paper = crypto::export_paper_key(&master);
    write("paper_key", "valid", paper.as_bytes());
    write("paper_key", "typo", paper.replacen("1: ", "1: f", 1).as_bytes());
}

/// The encrypted pack seeds open under the pack target's key, so its mutations reach the
/// sealed trailer and every sealed blob, not only the header checks.
#[test]
fn encrypted_pack_seeds_open_with_the_pack_targets_key() {
    use cairn::crypto::{MasterKey, Sealer};
    let sealer = Sealer::full(&MasterKey::from_bytes([7; 32]));
    for name in ["encrypted-data", "encrypted-trees"] {
        let bytes = fs::read(seeds_dir("pack").join(name)).unwrap();
        let entries = cairn::pack::parse_pack(&bytes, &sealer, name).unwrap();
        assert!(!entries.is_empty(), "{name}");
        for e in entries {
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            cairn::pack::decode_blob(&e, stored, name, &sealer).unwrap();
        }
        assert!(cairn::pack::parse_pack(&bytes, &Sealer::None, name).is_err(), "{name} is not plaintext");
    }
}

/// Writes encrypted pack seeds from a real encrypted repository whose master key is the pack
/// target's fixed key (`targets::pack`): one pack of data blobs, one of trees and chunk lists.
/// `cargo test --release --test fuzz_replay -- --ignored write_encrypted_pack_seeds`.
#[test]
#[ignore]
fn write_encrypted_pack_seeds() {
    use cairn::crypto::{KdfParams, MasterKey, Password, Sealer};
    use cairn::pack::BlobKind;
    use cairn::repo::{Access, IndexKind, InitEncryption, InitOptions};
    let master = MasterKey::from_bytes([7; 32]);
    let encryption = InitEncryption {
        password: Password::new(common::TEST_PASSWORD.to_string()),
        kdf: KdfParams::INSECURE_FAST,
        master: Some(master.clone()),
    };
    let repo = common::TestRepo::with_options(
        IndexKind::Memory,
        &InitOptions { encryption: Some(encryption), ..InitOptions::default() },
    );
    let src = repo.dir.path().join("src");
    common::write_file(&src.join("a/log.txt"), &b"a compressible line of a log\n".repeat(200));
    common::write_file(&src.join("random.bin"), &common::Rng::new(4).bytes(3000));
    std::os::unix::fs::symlink("a/log.txt", src.join("link")).unwrap();
    repo.snapshot(&[&src]);
    let r = repo.open(Access::Read);
    let sealer = Sealer::full(&master);
    for (pack, _) in r.list_packs().unwrap() {
        let bytes = fs::read(repo.path().join(cairn::repo::pack_key(&pack))).unwrap();
        let entries = cairn::pack::parse_pack(&bytes, &sealer, "seed").unwrap();
        let name = match entries[0].kind {
            BlobKind::Data => "encrypted-data",
            BlobKind::Tree => "encrypted-trees",
        };
        fs::write(seeds_dir("pack").join(name), &bytes).unwrap();
    }
}
