//! Key file tests. Real key files use `KdfParams::DEFAULT`; these use the fastest argon2
//! parameters so the suite stays quick, except where the cost itself is tested.

use super::*;

const FAST: KdfParams = KdfParams::INSECURE_FAST;

fn owner() -> KeyOwner {
    KeyOwner { created_s: 1_764_000_000, host: "db1".into(), user: "postgres".into() }
}

fn master() -> MasterKey {
    MasterKey::from_bytes([0x11; 32])
}

fn runs() -> usize {
    KDF_RUNS.with(|c| c.get())
}

#[test]
fn full_key_file_round_trips_with_metadata() {
    let f = create_full(&master(), b"hunter2", FAST, &owner()).unwrap();
    assert_eq!(open(&f, b"hunter2").unwrap(), Unlocked::Full(master()));
    let meta = decode_meta(&f).unwrap();
    assert_eq!(meta, KeyFileMeta { class: KeyClass::Full, kdf: FAST, owner: owner() });
    assert!(!f.windows(32).any(|w| w == master().as_bytes()), "master key stored in the clear");
}

#[test]
fn write_only_key_file_round_trips() {
    let wo = master().derive().write_only();
    let f = create_write_only(&wo, b"pw", FAST, &owner()).unwrap();
    assert_eq!(decode_meta(&f).unwrap().class, KeyClass::WriteOnly);
    assert_eq!(open(&f, b"pw").unwrap(), Unlocked::WriteOnly(wo));
}

#[test]
fn wrong_password_costs_one_kdf_run_per_key_file() {
    let files: Vec<Vec<u8>> =
        (0..3).map(|i| create_full(&master(), format!("pw{i}").as_bytes(), FAST, &owner()).unwrap()).collect();
    let named: Vec<(String, &[u8])> = files.iter().map(|f| (key_file_id(f), f.as_slice())).collect();
    let before = runs();
    let err = open_any(named.iter().map(|(i, b)| (i.as_str(), *b)), b"nope").unwrap_err();
    assert!(matches!(err, Error::WrongPassword));
    assert_eq!(err.to_string(), "wrong password or no matching key");
    assert_eq!(err.exit_code(), crate::error::exit::FAILED);
    assert_eq!(runs() - before, 3);
    let before = runs();
    let (id, _) = open_any(named.iter().map(|(i, b)| (i.as_str(), *b)), b"pw1").unwrap();
    assert_eq!(id, named[1].0);
    assert_eq!(runs() - before, 2, "stops at the first key file that opens");
}

#[test]
fn no_key_files_and_all_damaged_are_named() {
    assert!(matches!(open_any(std::iter::empty(), b"pw"), Err(Error::NoKeys)));
    let f = create_full(&master(), b"pw", FAST, &owner()).unwrap();
    let err = open_any([("k", &f[..20])], b"pw").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let err = open_any([("k", &f[..20]), ("k2", &f[..])], b"wrong").unwrap_err();
    assert!(matches!(err, Error::WrongPassword), "{err}");
}

#[test]
fn every_truncation_is_corrupt_never_a_panic() {
    let f = create_full(&master(), b"pw", FAST, &owner()).unwrap();
    for n in 0..f.len() {
        assert!(matches!(decode_meta(&f[..n]), Err(Error::Corrupt { .. })), "prefix {n}");
        assert!(open(&f[..n], b"pw").is_err());
    }
    let mut longer = f.clone();
    longer.push(0);
    assert!(decode_meta(&longer).is_err());
}

#[test]
fn every_flipped_byte_is_rejected() {
    let f = create_full(&master(), b"pw", FAST, &owner()).unwrap();
    for i in 0..f.len() {
        let mut m = f.clone();
        m[i] ^= 0x01;
        assert!(open(&m, b"pw").is_err(), "flip at {i} accepted");
    }
}

#[test]
fn hostile_kdf_parameters_are_refused_before_running() {
    let mut f = create_full(&master(), b"pw", FAST, &owner()).unwrap();
    f[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    let before = runs();
    assert!(matches!(open(&f, b"pw"), Err(Error::Corrupt { .. })));
    assert!(matches!(decode_meta(&f), Err(Error::Corrupt { .. })));
    assert_eq!(runs(), before);
}

#[test]
fn change_passphrase_rewraps_the_same_key() {
    let f = create_full(&master(), b"old", FAST, &owner()).unwrap();
    let g = change_passphrase(&f, b"old", b"new", FAST).unwrap();
    assert_ne!(key_file_id(&f), key_file_id(&g));
    assert_eq!(open(&g, b"new").unwrap(), Unlocked::Full(master()));
    assert!(matches!(open(&g, b"old"), Err(Error::WrongPassword)));
    assert_eq!(decode_meta(&g).unwrap().owner.host, "db1");
    assert!(matches!(change_passphrase(&f, b"bad", b"new", FAST), Err(Error::WrongPassword)));
}

#[test]
fn empty_passwords_and_long_names() {
    assert!(matches!(create_full(&master(), b"", FAST, &owner()), Err(Error::InvalidArgument(_))));
    let long = KeyOwner { host: "é".repeat(200), ..owner() };
    let f = create_full(&master(), b"pw", FAST, &long).unwrap();
    let host = decode_meta(&f).unwrap().owner.host;
    assert!(host.len() <= 255 && long.host.starts_with(&host));
}

/// The default parameters take about half a second here (measured, not asserted tightly:
/// the machine is shared).
#[test]
#[ignore]
fn default_kdf_cost() {
    let t = std::time::Instant::now();
    create_full(&master(), b"pw", KdfParams::DEFAULT, &owner()).unwrap();
    eprintln!("argon2id default: {:?}", t.elapsed());
}
