//! Tests of the sealing interface: every sealer, every kind.

use std::collections::HashMap;
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;

fn master() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

#[test]
fn none_passes_bytes_through_and_uses_plain_ids() {
    let s = Sealer::None;
    assert_eq!(s.seal(Kind::DataBlob, b"x", b"plain").unwrap(), b"plain");
    assert_eq!(s.open(Kind::DataBlob, b"y", b"plain").unwrap(), b"plain");
    assert_eq!(&s.chunk_id(b"abc"), blake3::hash(b"abc").as_bytes());
    assert_eq!(s.chunker_seed(), 0);
    assert_eq!(s.overhead(Kind::Snapshot), 0);
}

#[test]
fn full_round_trips_every_kind_and_binds_kind_and_context() {
    let s = Sealer::full(&master());
    for kind in Kind::ALL {
        let sealed = s.seal(kind, b"id-1", b"payload").unwrap();
        assert_eq!(sealed.len(), 7 + s.overhead(kind));
        assert_eq!(s.open(kind, b"id-1", &sealed).unwrap(), b"payload");
        assert!(matches!(s.open(kind, b"id-2", &sealed), Err(Error::Corrupt { .. })), "{kind:?} context");
        for other in Kind::ALL.into_iter().filter(|k| *k != kind) {
            assert!(s.open(other, b"id-1", &sealed).is_err(), "{kind:?} opened as {other:?}");
        }
    }
}

#[test]
fn another_master_key_opens_nothing() {
    let a = Sealer::full(&master());
    let b = Sealer::full(&MasterKey::from_bytes([43; 32]));
    for kind in Kind::ALL {
        assert!(b.open(kind, b"", &a.seal(kind, b"", b"p").unwrap()).is_err());
    }
    assert_ne!(a.chunk_id(b"same"), b.chunk_id(b"same"));
    assert_ne!(a.chunker_seed(), b.chunker_seed());
}

/// Two valid blobs swapped inside a pack: each is opened at the other's place and fails.
#[test]
fn swapped_ciphertexts_fail() {
    let s = Sealer::full(&master());
    let a = s.seal(Kind::DataBlob, b"pack1|blobA", b"aaaa").unwrap();
    let b = s.seal(Kind::DataBlob, b"pack1|blobB", b"bbbb").unwrap();
    assert!(s.open(Kind::DataBlob, b"pack1|blobA", &b).is_err());
    assert!(s.open(Kind::DataBlob, b"pack1|blobB", &a).is_err());
    assert!(s.open(Kind::DataBlob, b"pack2|blobA", &a).is_err(), "moved to another pack");
}

/// Where the tests keep session headers (the repository's `sessions/` objects).
type HeaderStore = std::sync::Arc<Mutex<HashMap<SessionId, Vec<u8>>>>;

fn write_only_setup() -> (Sealer, Sealer, HeaderStore) {
    let store: HeaderStore = Default::default();
    let writer = Sealer::write_only(master().derive().write_only()).unwrap();
    let (id, header) = writer.session_header().unwrap();
    store.lock().unwrap().insert(id, header.to_vec());
    let st = store.clone();
    let loader: SessionLoader = std::sync::Arc::new(move |id: &SessionId| {
        st.lock().unwrap().get(id).cloned().ok_or_else(|| Error::not_found("session"))
    });
    (writer, Sealer::full_with_sessions(&master(), Some(loader)), store)
}

#[test]
fn write_only_seals_what_only_a_full_key_opens() {
    let (writer, full, _) = write_only_setup();
    assert_eq!(writer.chunk_id(b"chunk"), full.chunk_id(b"chunk"), "dedup needs the same ids");
    assert_eq!(writer.chunker_seed(), full.chunker_seed());
    for kind in Kind::ALL {
        let sealed = writer.seal(kind, b"ctx", b"secret names").unwrap();
        assert_eq!(full.open(kind, b"ctx", &sealed).unwrap(), b"secret names", "{kind:?}");
        let own = writer.open(kind, b"ctx", &sealed);
        if kind.uses_index_key() {
            assert_eq!(own.unwrap(), b"secret names");
        } else {
            assert!(matches!(own, Err(Error::WriteOnly { .. })), "writer opened its own {kind:?}");
            let by_full = full.seal(kind, b"ctx", b"x").unwrap();
            assert!(matches!(writer.open(kind, b"ctx", &by_full), Err(Error::WriteOnly { .. })));
        }
    }
}

#[test]
fn session_objects_without_their_header_fail_clearly() {
    let (writer, _, _) = write_only_setup();
    let sealed = writer.seal(Kind::Tree, b"t", b"tree").unwrap();
    let no_loader = Sealer::full(&master());
    let err = no_loader.open(Kind::Tree, b"t", &sealed).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // A session-sealed frame claiming an index-key kind is refused.
    let mut forged = sealed.clone();
    forged[0] = 2;
    assert!(no_loader.open(Kind::Config, b"t", &forged).is_err());
}

#[test]
fn session_cache_stays_bounded() {
    let (_, full, store) = write_only_setup();
    let mut sealed = Vec::new();
    for _ in 0..(SESSION_CACHE_ENTRIES + 10) {
        let w = Sealer::write_only(master().derive().write_only()).unwrap();
        let (id, h) = w.session_header().unwrap();
        store.lock().unwrap().insert(id, h.to_vec());
        sealed.push(w.seal(Kind::DataBlob, b"c", b"d").unwrap());
    }
    for s in sealed.iter().chain(sealed.iter()) {
        assert_eq!(full.open(Kind::DataBlob, b"c", s).unwrap(), b"d");
    }
    let Sealer::Full(f) = &full else { unreachable!() };
    assert!(f.sessions.lock().unwrap().len() <= SESSION_CACHE_ENTRIES);
}

proptest! {
    #[test]
    fn prop_round_trip(pt in proptest::collection::vec(any::<u8>(), 0..2048), ctx in proptest::collection::vec(any::<u8>(), 0..80)) {
        let s = Sealer::full(&master());
        let sealed = s.seal(Kind::ChunkList, &ctx, &pt).unwrap();
        prop_assert_eq!(s.open(Kind::ChunkList, &ctx, &sealed).unwrap(), pt);
    }

    #[test]
    fn prop_any_flip_is_rejected(pt in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<usize>(), bit in 0u8..8) {
        let s = Sealer::full(&master());
        let mut sealed = s.seal(Kind::WalRecord, b"w", &pt).unwrap();
        let i = pos % sealed.len();
        sealed[i] ^= 1 << bit;
        prop_assert!(s.open(Kind::WalRecord, b"w", &sealed).is_err());
    }

    #[test]
    fn prop_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (writer, full, _) = write_only_setup();
        for kind in Kind::ALL {
            let _ = full.open(kind, b"", &bytes);
            let _ = writer.open(kind, b"", &bytes);
        }
    }
}
