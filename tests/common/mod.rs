//! Helpers that let tests read like specifications: generate trees, snapshot them, restore
//! them, and compare directories byte for byte with their metadata.
#![allow(dead_code)]

pub mod cli;
pub mod craft;
pub mod process;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub mod fidelity;

use cairn::ops::{self, BackupOptions, BackupReport, RestoreOptions};
use cairn::progress::NoProgress;
use cairn::repo::{Access, IndexKind, InitEncryption, InitOptions, KeySource, Repository};

/// For tests marked `#[ignore = "needs root"]`: they run only when asked for (`scripts/test.sh`
/// asks when it is root), and then a missing privilege is a failure, never a silent pass.
pub fn require_root() {
    assert!(cairn::fs::is_root(), "this test needs root: run it as root (scripts/test.sh does when it is)");
}

/// The password of every encrypted test repository.
pub const TEST_PASSWORD: &str = "correct horse battery staple (test)";

/// The environment a test gives the `cairn` binary: the password, and the cheapest KDF that
/// argon2 accepts (a real key file costs ~0.5 s per command; these cost microseconds).
pub const TEST_ENV: [(&str, &str); 3] =
    [("CAIRN_PASSWORD", TEST_PASSWORD), ("CAIRN_KDF_MEMORY_KIB", "8"), ("CAIRN_KDF_PASSES", "1")];

/// What library-level tests init with: encrypted, under [`TEST_PASSWORD`], cheap KDF.
pub fn test_encryption() -> Option<InitEncryption> {
    Some(InitEncryption {
        password: cairn::crypto::Password::new(TEST_PASSWORD.to_string()),
        kdf: cairn::crypto::KdfParams::INSECURE_FAST,
        master: None,
    })
}

pub fn test_keys() -> KeySource {
    KeySource::password(TEST_PASSWORD)
}

/// A small, fast deterministic generator (splitmix64) for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
    /// `len` bytes of JSON-like event records: compressible but not trivially so.
    pub fn events(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 256);
        while out.len() < len {
            let line = format!(
                "{{\"id\":\"{:016x}\",\"kind\":\"webhook.delivered\",\"tenant\":{},\"attempt\":{},\"latency_ms\":{}}}\n",
                self.next_u64(),
                self.below(500),
                self.below(5),
                self.below(10_000)
            );
            out.extend_from_slice(line.as_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A temporary local repository.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub kind: IndexKind,
}

impl TestRepo {
    /// An encrypted repository (the default of `cairn init`).
    pub fn new(kind: IndexKind) -> Self {
        Self::with_options(kind, &InitOptions { encryption: test_encryption(), ..InitOptions::default() })
    }

    /// A repository made with `--encryption none`.
    pub fn unencrypted(kind: IndexKind) -> Self {
        Self::with_options(kind, &InitOptions::default())
    }

    /// A repository with `opts` as given (encrypted only if `opts.encryption` says so).
    pub fn with_options(kind: IndexKind, opts: &InitOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_local(&dir.path().join("repo"), opts).unwrap();
        TestRepo { dir, kind }
    }

    pub fn keys(&self) -> KeySource {
        test_keys()
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn open(&self, access: Access) -> Repository {
        Repository::open_local_with(&self.path(), access, self.kind, &test_keys()).unwrap()
    }

    pub fn snapshot(&self, paths: &[&Path]) -> BackupReport {
        let repo = self.open(Access::Write);
        let opts = BackupOptions {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            host: Some("test-host".into()),
            record_reads: true,
            ..Default::default()
        };
        ops::backup(&repo, &opts, &NoProgress).unwrap()
    }

    pub fn restore_latest(&self, target: &Path) -> ops::RestoreReport {
        let repo = self.open(Access::Read);
        let (id, snap) = repo.resolve_snapshot(&cairn::repo::SnapshotSpec::Latest).unwrap();
        let opts = RestoreOptions { target: target.to_path_buf(), ..Default::default() };
        ops::restore(&repo, &id, &snap, &opts, &NoProgress).unwrap()
    }

    /// Bytes the repository occupies on disk (packs, snapshots, config; not the index).
    pub fn stored_bytes(&self) -> u64 {
        ["packs", "snapshots", "config"].iter().map(|p| dir_bytes(&self.path().join(p))).sum()
    }
}

pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    fs::read_dir(path).unwrap().map(|e| dir_bytes(&e.unwrap().path())).sum()
}

pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

pub fn set_mtime(path: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 123_000_000);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// Asserts that two directory trees are equal: names, kinds, bytes, permission bits, mtimes of
/// files and symlinks (directories' mtimes too), and symlink targets.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let mut diffs = Vec::new();
    compare(expected, actual, Path::new(""), &mut diffs);
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}

fn compare(a: &Path, b: &Path, rel: &Path, diffs: &mut Vec<String>) {
    let (ma, mb) = match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Ok(_), Err(_)) => return diffs.push(format!("{}: missing in restore", rel.display())),
        (Err(_), Ok(_)) => return diffs.push(format!("{}: unexpected in restore", rel.display())),
        _ => return,
    };
    if ma.file_type() != mb.file_type() {
        return diffs.push(format!("{}: kind differs", rel.display()));
    }
    if !ma.file_type().is_symlink() && ma.permissions().mode() & 0o7777 != mb.permissions().mode() & 0o7777 {
        diffs.push(format!("{}: mode {:o} vs {:o}", rel.display(), ma.mode() & 0o7777, mb.mode() & 0o7777));
    }
    if !rel.as_os_str().is_empty() && (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        diffs.push(format!(
            "{}: mtime {}.{} vs {}.{}",
            rel.display(),
            ma.mtime(),
            ma.mtime_nsec(),
            mb.mtime(),
            mb.mtime_nsec()
        ));
    }
    if ma.file_type().is_symlink() {
        if fs::read_link(a).unwrap() != fs::read_link(b).unwrap() {
            diffs.push(format!("{}: symlink target differs", rel.display()));
        }
    } else if ma.is_file() {
        if ma.len() != mb.len() {
            diffs.push(format!("{}: size {} vs {}", rel.display(), ma.len(), mb.len()));
        } else if fs::read(a).unwrap() != fs::read(b).unwrap() {
            diffs.push(format!("{}: content differs", rel.display()));
        }
    } else if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        for n in na.iter().chain(nb.iter().filter(|n| !na.contains(n))) {
            compare(&a.join(n), &b.join(n), &rel.join(n), diffs);
        }
    }
}

/// Builds a varied tree under `root`: files from 0 bytes up to `max_file` bytes, nested and
/// empty directories, symlinks (relative, absolute, dangling), unusual modes, old mtimes.
pub fn generate_tree(root: &Path, seed: u64, max_file: usize) {
    let mut rng = Rng::new(seed);
    fs::create_dir_all(root).unwrap();
    let sizes = [0usize, 1, 100, 4096, 65_536, 300_000, 1 << 20, max_file];
    for (i, size) in sizes.iter().enumerate() {
        let data = if i % 2 == 0 { rng.bytes(*size) } else { rng.events(*size) };
        let p = root.join(format!("file-{i}.bin"));
        write_file(&p, &data);
    }
    write_file(&root.join("a/b/c/deep.txt"), b"deep\n");
    write_file(&root.join("a/b/sibling.log"), &rng.events(200_000));
    fs::create_dir_all(root.join("empty/also-empty")).unwrap();
    write_file(&root.join("dup/one"), &[7u8; 300_000]);
    write_file(&root.join("dup/two"), &[7u8; 300_000]);
    write_file(&root.join("names/with space & ünïcode"), b"x");
    std::os::unix::fs::symlink("a/b/c/deep.txt", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("link-dangling")).unwrap();
    fs::set_permissions(root.join("file-1.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("file-2.bin"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("a/b/c"), fs::Permissions::from_mode(0o700)).unwrap();
    // mtimes last, deepest first, so creating children does not move them.
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 3600);
    }
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(p).unwrap() {
        let path = e.unwrap().path();
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            collect(&path, out);
        }
    }
}

/// Every entry below `root`, by relative path: kind, mode, and content hash or link target.
pub fn manifest(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o} {}", m.mode() & 0o7777, m.uid())
            } else {
                format!("file {:o} {} {}", m.mode() & 0o7777, m.uid(), blake3::hash(&fs::read(&p).unwrap()))
            };
            out.insert(rel, what);
        }
    }
    out
}
