//! `snapshot export`, `snapshot import` and `restore --from-export` (issue 22, item 4),
//! through the binary: round trips encrypted and not, `--dry-run` lists the files and adds
//! nothing, a flipped byte anywhere (header, entries, data, manifest, trailer) is refused with
//! the part named and nothing changes, a restore from an export equals one from the repository,
//! and a newer major format is refused naming both versions while a newer minor reads.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cli::{cairn_with, Ran};
use common::{assert_same_tree, generate_tree, manifest, TEST_PASSWORD};

const LIMIT: Duration = Duration::from_secs(300);
const HEADER_BYTES: usize = 32;
const TRAILER_BYTES: usize = 80;

/// A scratch directory with a source tree, a repository and room for exports and targets.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    /// A repository (`init ARGS`) holding one snapshot of a generated tree.
    fn new(init: &[&str]) -> (Scene, String) {
        let s = Scene { dir: tempfile::tempdir().unwrap() };
        generate_tree(&s.path("src"), 22, 2 << 20);
        let mut args = vec!["init"];
        args.extend_from_slice(init);
        s.ok("repo", &args, &[]);
        let src = s.path("src");
        let out = s.ok("repo", &["snapshot", "create", "--json", src.to_str().unwrap()], &[]);
        let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"].as_str().unwrap().to_string();
        (s, id)
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn run(&self, repo: &str, args: &[&str], envs: &[(&str, &str)]) -> Ran {
        let ran = cairn_with(&self.path(repo), args, envs, LIMIT);
        assert!(!ran.stderr.contains("panicked"), "{args:?}: {}", ran.show());
        ran
    }
    fn ok(&self, repo: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
        let ran = self.run(repo, args, envs);
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.show());
        ran.stdout()
    }
    /// `snapshot export ID FILE`; returns the file.
    fn export(&self, id: &str, name: &str) -> PathBuf {
        let file = self.path(name);
        self.ok("repo", &["snapshot", "export", id, file.to_str().unwrap()], &[]);
        file
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Export, import into a fresh repository made with `init`, restore from there: the tree
/// comes back byte for byte, and the destination checks clean reading every byte.
fn round_trip(init: &[&str], dest_init: &[&str], envs: &[(&str, &str)]) {
    let (scene, id) = Scene::new(init);
    let file = scene.export(&id, "snap.cairn-export");
    let mut args = vec!["init"];
    args.extend_from_slice(dest_init);
    scene.ok("dest", &args, envs);
    let out = scene.ok("dest", &["snapshot", "import", s(&file)], envs);
    assert!(out.contains("imported snapshot"), "{out}");
    let target = scene.path("restored");
    scene.ok("dest", &["restore", "latest", "--target", s(&target)], envs);
    assert_same_tree(&scene.path("src"), &target);
    scene.ok("dest", &["repo", "check", "--read-data"], envs);
    // A second import adds nothing.
    let again = scene.ok("dest", &["snapshot", "import", s(&file)], envs);
    assert!(again.contains("already in the repository"), "{again}");
}

#[test]
fn round_trip_unencrypted() {
    round_trip(&["--encryption", "none"], &["--encryption", "none"], &[]);
}

#[test]
fn round_trip_encrypted_into_a_repository_with_another_password() {
    // The export opens with the source's password (given as the export's), the destination
    // with its own: the snapshot is re-encrypted with the destination's key.
    let envs = [("CAIRN_PASSWORD", "another password"), ("CAIRN_FROM_PASSWORD", TEST_PASSWORD)];
    round_trip(&[], &[], &envs);
}

#[test]
fn an_encrypted_export_stays_encrypted_and_needs_its_password() {
    let (scene, id) = Scene::new(&[]);
    let file = scene.export(&id, "snap.cairn-export");
    let bytes = fs::read(&file).unwrap();
    assert_eq!(bytes[20] & 1, 1, "the header says encrypted");
    for needle in ["file-0.bin", "deep.txt", "sibling.log", "src"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} is in the clear");
    }
    let wrong = scene.run("none", &["snapshot", "import", "--dry-run", s(&file)], &[("CAIRN_PASSWORD", "wrong")]);
    assert_ne!(wrong.code, 0, "{}", wrong.show());
    assert!(wrong.stderr.contains("wrong password"), "{}", wrong.show());
}

#[test]
fn dry_run_lists_the_files_and_changes_nothing() {
    let (scene, id) = Scene::new(&[]);
    let file = scene.export(&id, "snap.cairn-export");
    let before = manifest(&scene.path("repo"));
    let out = scene.ok("repo", &["snapshot", "import", "--dry-run", s(&file)], &[]);
    let listed: Vec<(u64, String)> = out
        .lines()
        .filter_map(|l| l.trim_start().split_once("  ").map(|(n, p)| (n.parse().ok(), p.to_string())))
        .filter_map(|(n, p)| n.map(|n| (n, p)))
        .collect();
    let mut expected = Vec::new();
    for (rel, what) in manifest(&scene.path("src")) {
        if what.starts_with("file") {
            expected.push((fs::metadata(scene.path("src").join(&rel)).unwrap().len(), rel));
        }
    }
    assert_eq!(listed.len(), expected.len(), "{out}");
    for (size, rel) in &expected {
        assert!(
            listed.iter().any(|(n, p)| n == size && p.ends_with(&format!("src/{rel}"))),
            "{rel} not listed:\n{out}"
        );
    }
    assert!(out.contains("nothing was added"), "{out}");
    assert_eq!(manifest(&scene.path("repo")), before, "--dry-run changed the repository");
}

#[test]
fn a_restore_from_the_export_equals_a_restore_from_the_repository() {
    let (scene, id) = Scene::new(&[]);
    let file = scene.export(&id, "snap.cairn-export");
    let (a, b) = (scene.path("from-repo"), scene.path("from-export"));
    scene.ok("repo", &["restore", &id, "--target", s(&a)], &[]);
    // No repository at all: --repo names one that does not exist.
    scene.ok("no-such-repo", &["restore", "--from-export", s(&file), "--target", s(&b)], &[]);
    assert_same_tree(&a, &b);
    assert_eq!(manifest(&a), manifest(&b));
    // --atomic works from an export too, into a target that has other content.
    let c = scene.path("atomic");
    common::write_file(&c.join("old"), b"old state");
    scene.ok("no-such-repo", &["restore", "--from-export", s(&file), "--target", s(&c), "--atomic"], &[]);
    assert_same_tree(&a, &c);
}

/// Offsets into the export worth damaging, named: header, first entry (the config), the
/// middle (pack data), the manifest, the trailer's hashes, the end marker.
fn damage_offsets(len: usize) -> Vec<(&'static str, usize)> {
    vec![
        ("header magic", 2),
        ("header version", 9),
        ("first entry framing", HEADER_BYTES + 1),
        ("pack data", len / 2),
        ("manifest", len - TRAILER_BYTES - 20),
        ("trailer manifest hash", len - TRAILER_BYTES + 10),
        ("trailer whole hash", len - TRAILER_BYTES + 50),
        ("end marker", len - 3),
    ]
}

#[test]
fn a_flipped_byte_anywhere_is_refused_naming_the_part_and_nothing_changes() {
    let (scene, id) = Scene::new(&[]);
    let good = fs::read(scene.export(&id, "good.cairn-export")).unwrap();
    scene.ok("dest", &["init"], &[]);
    let target = scene.path("target");
    common::write_file(&target.join("state.db"), b"the service's current state");
    for (part, at) in damage_offsets(good.len()) {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        let file = scene.path("bad.cairn-export");
        fs::write(&file, &bad).unwrap();
        let (repo_before, target_before) = (manifest(&scene.path("dest")), manifest(&target));
        let ran = scene.run("dest", &["snapshot", "import", s(&file)], &[]);
        assert_eq!(ran.code, 13, "{part} (byte {at}): {}", ran.show());
        assert!(ran.stderr.contains("export file") && ran.stderr.contains("is corrupt"), "{part}: {}", ran.stderr);
        assert_eq!(manifest(&scene.path("dest")), repo_before, "{part}: the repository changed");
        let ran = scene.run(
            "no-such-repo",
            &["restore", "--from-export", s(&file), "--target", s(&target), "--overwrite", "always"],
            &[],
        );
        assert_eq!(ran.code, 13, "{part} (byte {at}): {}", ran.show());
        assert_eq!(manifest(&target), target_before, "{part}: the target changed");
        let dry = scene.run("dest", &["snapshot", "import", "--dry-run", s(&file)], &[]);
        assert_eq!(dry.code, 13, "{part}: {}", dry.show());
    }
    let ran = scene.run("dest", &["snapshot", "list", "--json"], &[]);
    assert_eq!(ran.stdout().trim(), "[]", "nothing was imported");
}

#[test]
fn each_damaged_part_is_named() {
    let (scene, id) = Scene::new(&["--encryption", "none"]);
    let good = fs::read(scene.export(&id, "good.cairn-export")).unwrap();
    let named = [
        (5, "(header)"),
        (good.len() / 2, "(entry "),
        (good.len() - TRAILER_BYTES - 20, "(manifest)"),
        (good.len() - TRAILER_BYTES + 50, "(whole-file BLAKE3)"),
        (good.len() - 2, "(trailer)"),
    ];
    for (at, part) in named {
        let mut bad = good.clone();
        bad[at] ^= 1;
        let file = scene.path("bad.cairn-export");
        fs::write(&file, &bad).unwrap();
        let ran = scene.run("none", &["snapshot", "import", "--dry-run", s(&file)], &[]);
        assert_eq!(ran.code, 13, "byte {at}: {}", ran.show());
        assert!(ran.stderr.contains(part), "byte {at} should name {part}: {}", ran.stderr);
    }
    // Cut short: the trailer is missing.
    let file = scene.path("short.cairn-export");
    fs::write(&file, &good[..good.len() - 1000]).unwrap();
    let ran = scene.run("none", &["snapshot", "import", "--dry-run", s(&file)], &[]);
    assert_eq!(ran.code, 13, "{}", ran.show());
}

/// Sets the header's version and re-seals what covers it (header checksum, whole-file hash),
/// as a newer cairn would have written it.
fn with_version(good: &[u8], major: u16, minor: u16) -> Vec<u8> {
    let mut b = good.to_vec();
    b[8..10].copy_from_slice(&major.to_le_bytes());
    b[10..12].copy_from_slice(&minor.to_le_bytes());
    let check = blake3::hash(&b[..24]);
    b[24..32].copy_from_slice(&check.as_bytes()[..8]);
    let whole_at = b.len() - TRAILER_BYTES + 40;
    let whole = blake3::hash(&b[..whole_at]);
    b[whole_at..whole_at + 32].copy_from_slice(whole.as_bytes());
    b
}

#[test]
fn a_newer_major_version_is_refused_naming_both_and_a_newer_minor_reads() {
    let (scene, id) = Scene::new(&["--encryption", "none"]);
    let good = fs::read(scene.export(&id, "good.cairn-export")).unwrap();
    let file = scene.path("v2.cairn-export");
    fs::write(&file, with_version(&good, 2, 0)).unwrap();
    let ran = scene.run("repo", &["snapshot", "import", "--dry-run", s(&file)], &[]);
    assert_eq!(ran.code, 12, "{}", ran.show());
    assert!(ran.stderr.contains("export format 2.0") && ran.stderr.contains("supports version 1"), "{}", ran.stderr);
    fs::write(&file, with_version(&good, 1, 7)).unwrap();
    let out = scene.ok("repo", &["snapshot", "import", "--dry-run", s(&file)], &[]);
    assert!(out.contains("export verified"), "{out}");
}

#[test]
fn an_export_with_a_fresh_key_opens_only_with_its_own_password() {
    for init in [&[][..], &["--encryption", "none"][..]] {
        let (scene, id) = Scene::new(init);
        let pw = scene.path("handover-password");
        fs::write(&pw, "handed over\n").unwrap();
        let file = scene.path("handover.cairn-export");
        scene.ok("repo", &["snapshot", "export", &id, s(&file), "--to-password-file", s(&pw)], &[]);
        assert_eq!(fs::read(&file).unwrap()[20] & 1, 1, "{init:?}: the export is encrypted");
        // The repository's password does not open it (nor does the repository's key file go
        // with it).
        let ran = scene.run("none", &["snapshot", "import", "--dry-run", s(&file)], &[]);
        assert!(ran.code != 0 && ran.stderr.contains("wrong password"), "{init:?}: {}", ran.show());
        let target = scene.path("restored");
        let handed = [("CAIRN_PASSWORD", "handed over")];
        scene.ok("none", &["restore", "--from-export", s(&file), "--target", s(&target)], &handed);
        assert_same_tree(&scene.path("src"), &target);
    }
}
