//! A record that disagrees with itself is corrupt, named, and never written to a target.
//! Each case is a repository crafted with the library's own encoders, holding `/data` with a
//! good file beside the bad one; the real binary must then:
//! * `repo check` (structural): exit 4, naming the bad file (or pack);
//! * `repo check --read-data`: not say "no damage found";
//! * `restore`: exit 3, restore the good file, and leave nothing under the bad one's name.

mod common;

use std::fs;
use std::time::Duration;

use cairn::crypto::Sealer;
use cairn::pack::{encode_trailer, parse_pack, BlobKind, Codec, FOOTER_BYTES, TRAILER_ENTRY_BYTES};
use cairn::repo::{pack_key, WriteSession};
use cairn::snapshot::{ChunkList, ChunkRef, ListPiece, Node, NodeContent};
use cairn::{ChunkId, PackId};
use common::cli::{cairn, Ran};
use common::craft::{dir, file, node, store_tree, Crafted};

const LIMIT: Duration = Duration::from_secs(60);
const GOOD: &[u8] = b"a good file, restored whatever its neighbour holds";

/// Stores `/data` holding `good` and the entries `make_bad` returns, and a snapshot of it.
fn crafted(make_bad: impl FnOnce(&WriteSession) -> Vec<Node>) -> Crafted {
    let c = Crafted::new();
    let repo = c.open();
    let session = WriteSession::new(&repo);
    let good = file(&session, b"good", GOOD, GOOD.len() as u64);
    // The good file's data in a pack of its own: damage to the bad one's pack spares it.
    session.flush().unwrap();
    let mut nodes = make_bad(&session);
    nodes.push(good);
    let data = store_tree(&session, nodes);
    let root = store_tree(&session, vec![dir(b"data", data)]);
    session.flush().unwrap();
    Crafted::save(&repo, root, 1_700_000_000);
    c
}

/// The three commands' verdicts on a crafted repository whose bad entry is `/data/bad`.
fn assert_rejected(c: &Crafted, named: &[&str]) {
    let repo = c.path();
    let ran = cairn(&repo, &["repo", "check"], LIMIT);
    assert_eq!(ran.code, 4, "structural check: {}", ran.show());
    for n in named {
        assert!(ran.stdout().contains(n), "structural check does not name {n}: {}", ran.show());
    }
    let ran = cairn(&repo, &["repo", "check", "--read-data"], LIMIT);
    assert_eq!(ran.code, 4, "read-data check: {}", ran.show());
    assert!(!ran.stdout().contains("no damage found"), "{}", ran.show());
    assert_restore_fails(c);
}

fn assert_restore_fails(c: &Crafted) -> Ran {
    // A fresh target each call: a restore into a non-empty one needs --overwrite.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let target = c.scratch(&format!("target-{n}"));
    let ran = cairn(&c.path(), &["restore", "latest", "--target", target.to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, 3, "restore: {}", ran.show());
    assert!(ran.stderr.contains("bad"), "restore does not name the file: {}", ran.show());
    assert!(!target.join("bad").exists(), "the bad file was written: {}", ran.show());
    assert_eq!(fs::read(target.join("good")).unwrap(), GOOD);
    ran
}

#[test]
fn a_file_declaring_fewer_bytes_than_its_chunk_is_rejected() {
    let c = crafted(|s| vec![file(s, b"bad", b"six by", 2)]);
    assert_rejected(&c, &["/data/bad", "declares 2 bytes, its chunks hold 6"]);
}

#[test]
fn a_file_declaring_a_tebibyte_for_a_five_byte_chunk_is_rejected() {
    let c = crafted(|s| vec![file(s, b"bad", b"five!", 1 << 40)]);
    assert_rejected(&c, &["/data/bad", "declares 1099511627776 bytes, its chunks hold 5"]);
}

#[test]
fn a_chunk_list_piece_declaring_4294967295_chunks_fails_fast() {
    let c = crafted(|s| {
        let chunk = s.store(BlobKind::Data, b"five!").unwrap();
        let list = ChunkList { chunks: vec![ChunkRef { id: chunk, len: 5 }] };
        let piece = s.store(BlobKind::Tree, &list.encode().unwrap()).unwrap();
        let pieces = vec![ListPiece { id: piece, chunks: u32::MAX, bytes: 5 }];
        vec![node(b"bad", 5, NodeContent::LargeFile { pieces })]
    });
    assert_rejected(&c, &["/data/bad", "4294967295 chunks"]);
    let ran = assert_restore_fails(&c);
    assert!(ran.stderr.contains("4294967295 chunks"), "{}", ran.show());
    assert!(ran.elapsed < Duration::from_secs(20), "restore took {:?}", ran.elapsed);
}

/// Two blobs stored raw in one pack, the second (`world`) then re-pointed by the trailer at
/// the same bytes inside the first (`hello world`): every blob still hashes to its id, so only
/// the overlap rule can tell. The index is rebuilt from the trailers, as after a lost index.
#[test]
fn overlapping_blob_ranges_in_a_pack_trailer_reject_the_pack() {
    let c = crafted(|s| vec![file(s, b"whole", b"hello world", 11), file(s, b"bad", b"world", 5)]);
    let world = ChunkId::of(b"world");
    let repo_dir = c.path();
    let packs = c.open().list_packs().unwrap();
    let (pack, bytes) = packs
        .iter()
        .map(|(id, _)| (*id, fs::read(repo_dir.join(pack_key(id))).unwrap()))
        .find(|(id, b)| parse_pack(b, &Sealer::None, &id.to_hex()).unwrap().iter().any(|e| e.id == world))
        .unwrap();
    let mut entries = parse_pack(&bytes, &Sealer::None, "pack").unwrap();
    let hello = *entries.iter().find(|e| e.id == ChunkId::of(b"hello world")).unwrap();
    assert!(entries.iter().all(|e| e.codec == Codec::Raw));
    let w = entries.iter_mut().find(|e| e.id == world).unwrap();
    w.offset = hello.offset + 6;
    let data_end = bytes.len() - FOOTER_BYTES - entries.len() * TRAILER_ENTRY_BYTES;
    let mut crafted = bytes[..data_end].to_vec();
    crafted.extend_from_slice(&encode_trailer(&entries, None).unwrap());
    let crafted_id = PackId(cairn::id::Digest::of(&crafted));
    fs::remove_file(repo_dir.join(pack_key(&pack))).unwrap();
    fs::create_dir_all(repo_dir.join(pack_key(&crafted_id)).parent().unwrap()).unwrap();
    fs::write(repo_dir.join(pack_key(&crafted_id)), &crafted).unwrap();
    let ran = cairn(&repo_dir, &["repo", "repair", "index"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());

    let short = &crafted_id.to_hex()[..12];
    assert_rejected(&c, &[short, "overlap", "/data/bad"]);
}

/// The writer and the pack reader agree on the largest blob: a tree (or chunk) over
/// `MAX_BLOB_RAW_BYTES` is refused when stored, with a sentence saying why, and nothing of it
/// reaches a pack. (Records may be up to 1 GiB, so a tree between the two limits used to be
/// written, and its whole pack then read as corrupt.)
#[test]
fn a_blob_larger_than_a_pack_may_hold_is_refused_when_written() {
    let c = Crafted::new();
    let repo = c.open();
    let session = WriteSession::new(&repo);
    let over = vec![7u8; cairn::pack::MAX_BLOB_RAW_BYTES as usize + 1];
    for kind in [BlobKind::Tree, BlobKind::Data] {
        let err = session.store(kind, &over).unwrap_err();
        assert!(matches!(err, cairn::Error::TooLarge(_)), "{kind:?}: {err}");
        assert!(err.to_string().contains("larger than"), "{err}");
    }
    let small = store_tree(&session, vec![]);
    session.flush().unwrap();
    // The session is still usable, and what it wrote reads back.
    assert!(repo.load_tree(&small).unwrap().nodes.is_empty());
    let ran = cairn(&c.path(), &["repo", "check", "--read-data"], LIMIT);
    assert_eq!(ran.code, 0, "{}", ran.show());
}
