//! Encryption primitives on this machine, to choose cairn's AEAD by measurement (issue #16):
//! ring's AES-256-GCM and ChaCha20-Poly1305 against RustCrypto's `aes-gcm`,
//! `chacha20poly1305` and XChaCha20-Poly1305, on 32 KiB (a typical chunk) and 4 MiB buffers;
//! the per-blob key setup cairn's sealing adds; BLAKE3 plain and keyed (chunk ids); and
//! argon2id at a few parameter sets (key files).
//!
//!     cargo bench --bench crypto             # prints a markdown table
//!
//! Results are recorded in `docs/performance.md`, "Encryption primitives". One core throughout:
//! the pipeline runs one blob per core, so per-core throughput is what matters.

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};

const KEY: [u8; 32] = [7; 32];
const AD: &[u8] = b"chunk 0123456789abcdef0123456789abcdef";

/// Runs `f` over `buf` until about `budget` bytes went through, three times; returns the best
/// MB/s (the machine is shared: the best run is the one least disturbed).
fn rate(buf_len: usize, budget: usize, mut f: impl FnMut() -> usize) -> f64 {
    let rounds = (budget / 3 / buf_len).max(3);
    f(); // warm up
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let mut sink = 0usize;
        for _ in 0..rounds {
            sink = sink.wrapping_add(f());
        }
        black_box(sink);
        best = best.max((rounds * buf_len) as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    best
}

/// A copy of `buf` with room for the tag, as cairn's envelope allocates.
fn with_room(buf: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(buf.len() + 64);
    v.extend_from_slice(buf);
    v
}

fn ring_seal(alg: &'static ring::aead::Algorithm, buf: &[u8]) -> usize {
    let key = LessSafeKey::new(UnboundKey::new(alg, &KEY).expect("32-byte key"));
    let mut v = with_room(buf);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key([1; 12]), Aad::from(AD), &mut v).expect("seal");
    v.len()
}

/// cairn's scheme: a per-blob key = BLAKE3-keyed(data key, 24 random bytes), then AES-256-GCM.
fn ring_seal_per_blob_key(buf: &[u8]) -> usize {
    let k = blake3::keyed_hash(&KEY, &[3u8; 24]);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k.as_bytes()).expect("32-byte key"));
    let mut v = with_room(buf);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(AD), &mut v).expect("seal");
    v.len()
}

fn ring_open(alg: &'static ring::aead::Algorithm, sealed: &[u8]) -> usize {
    let key = LessSafeKey::new(UnboundKey::new(alg, &KEY).expect("32-byte key"));
    let mut v = with_room(sealed);
    key.open_in_place(Nonce::assume_unique_for_key([1; 12]), Aad::from(AD), &mut v).expect("open").len()
}

fn rc_seal<C: Aead>(
    cipher: &C,
    nonce: &aes_gcm::aead::generic_array::GenericArray<u8, C::NonceSize>,
    buf: &[u8],
) -> usize {
    cipher.encrypt(nonce, Payload { msg: buf, aad: AD }).expect("seal").len()
}

fn aead_rows(name: &str, len: usize) {
    let buf = vec![0x5au8; len];
    let budget = 256 << 20;
    let aes = rate(len, budget, || ring_seal(&AES_256_GCM, &buf));
    let sealed = {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("key"));
        let mut v = buf.clone();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key([1; 12]), Aad::from(AD), &mut v).expect("seal");
        v
    };
    let aes_open = rate(len, budget, || ring_open(&AES_256_GCM, &sealed));
    let aes_pb = rate(len, budget, || ring_seal_per_blob_key(&buf));
    let cha = rate(len, budget, || ring_seal(&CHACHA20_POLY1305, &buf));
    let rc_aes = aes_gcm::Aes256Gcm::new((&KEY).into());
    let rc_aes_r = rate(len, budget, || rc_seal(&rc_aes, &[1u8; 12].into(), &buf));
    let rc_cha = chacha20poly1305::ChaCha20Poly1305::new((&KEY).into());
    let rc_cha_r = rate(len, budget, || rc_seal(&rc_cha, &[1u8; 12].into(), &buf));
    let rc_x = chacha20poly1305::XChaCha20Poly1305::new((&KEY).into());
    let rc_x_r = rate(len, budget, || rc_seal(&rc_x, &[1u8; 24].into(), &buf));
    println!("| ring AES-256-GCM seal | {name} | {aes:.0} |");
    println!("| ring AES-256-GCM open | {name} | {aes_open:.0} |");
    println!("| ring AES-256-GCM seal, per-blob key (cairn's scheme) | {name} | {aes_pb:.0} |");
    println!("| ring ChaCha20-Poly1305 seal | {name} | {cha:.0} |");
    println!("| RustCrypto aes-gcm Aes256Gcm seal | {name} | {rc_aes_r:.0} |");
    println!("| RustCrypto chacha20poly1305 ChaCha20Poly1305 seal | {name} | {rc_cha_r:.0} |");
    println!("| RustCrypto chacha20poly1305 XChaCha20Poly1305 seal | {name} | {rc_x_r:.0} |");
}

fn hash_rows(name: &str, len: usize) {
    let buf = vec![0x5au8; len];
    let plain = rate(len, 512 << 20, || blake3::hash(&buf).as_bytes()[0] as usize);
    let keyed = rate(len, 512 << 20, || blake3::keyed_hash(&KEY, &buf).as_bytes()[0] as usize);
    println!("| BLAKE3 hash (plain chunk id) | {name} | {plain:.0} |");
    println!("| BLAKE3 keyed_hash (keyed chunk id) | {name} | {keyed:.0} |");
}

fn argon2_rows() {
    use argon2::{Algorithm, Argon2, Params, Version};
    for (m_kib, t, p) in [(65536, 3, 1), (65536, 8, 1), (65536, 9, 1), (65536, 10, 1), (131072, 4, 1)] {
        let params = Params::new(m_kib, t, p, Some(32)).expect("argon2 params");
        let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = [0u8; 32];
        let t0 = Instant::now();
        a.hash_password_into(b"correct horse battery staple", &[9u8; 16], &mut out).expect("argon2");
        let secs = t0.elapsed().as_secs_f64();
        println!("| argon2id m={} MiB t={t} p={p} | one run | {:.0} ms |", m_kib / 1024, secs * 1e3);
    }
}

fn main() {
    println!("One core. Throughput in MB/s (10^6 bytes per second) unless a unit is given.\n");
    // Warm up the CPU clock and the allocator first: the first rows measured otherwise read low.
    let warm = vec![0u8; 32 << 10];
    rate(warm.len(), 1 << 30, || ring_seal(&AES_256_GCM, &warm));
    println!("| primitive | buffer | MB/s |");
    println!("|---|---|---|");
    aead_rows("32 KiB", 32 << 10);
    aead_rows("4 MiB", 4 << 20);
    hash_rows("32 KiB", 32 << 10);
    hash_rows("4 MiB", 4 << 20);
    let setups = 200_000;
    let t = Instant::now();
    for i in 0..setups {
        black_box(ring_seal_per_blob_key(&[i as u8; 0]));
    }
    println!(
        "| per-blob key setup (BLAKE3 + AES key schedule), empty blob | one | {:.2} µs |",
        t.elapsed().as_secs_f64() * 1e6 / setups as f64
    );
    argon2_rows();
}
