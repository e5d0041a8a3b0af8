//! The layering of `docs/design.md`, checked rather than remembered: a module may use only
//! modules of lower layers, the few same-layer edges listed here, and operations may share
//! only `ops::select`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

fn layer(module: &str) -> Option<u8> {
    Some(match module {
        // Foundation, itself in three steps: errors, then ids, then the rest.
        "error" => 0,
        "id" => 1,
        // crypto sits beside codec: it seals and opens bytes, knowing only errors.
        "codec" | "crypto" | "io" | "time" => 2,
        "chunker" | "pack" | "index" | "snapshot" | "fs" | "backend" | "progress" | "pg" => 3,
        "repo" => 4,
        "ops" => 5,
        _ => return None,
    })
}

/// Same-layer dependencies that are part of the design.
const ALLOWED_SAME_LAYER: &[(&str, &str)] = &[
    // The index stores trailer entries: it speaks the pack's vocabulary.
    ("index", "pack"),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn lower_layers_never_use_upper_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let uses = regex_lite_crate_refs();
    let mut violations = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        let Some(own) = layer(&module) else { continue };
        let text = fs::read_to_string(&file).unwrap();
        for target in uses(&text) {
            let Some(theirs) = layer(&target) else {
                continue;
            };
            let same_ok = target == module || ALLOWED_SAME_LAYER.contains(&(module.as_str(), target.as_str()));
            if theirs > own || (theirs == own && !same_ok) {
                violations.insert(format!("{} uses crate::{target}", rel.display()));
            }
        }
        if module == "ops" {
            // ops/backup.rs → backup; ops/check/packs.rs → check.
            let second = rel.components().nth(1).unwrap().as_os_str().to_string_lossy().into_owned();
            let sub = second.trim_end_matches(".rs").to_string();
            for other in ops_refs(&text) {
                if other != sub && other != "select" {
                    violations
                        .insert(format!("{} uses ops::{other} (operations do not call each other)", rel.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.into_iter().collect::<Vec<_>>().join("\n"));
}

/// Top-level modules named in `crate::x` paths, including `use crate::{a, b}` groups.
fn regex_lite_crate_refs() -> impl Fn(&str) -> BTreeSet<String> {
    |text: &str| {
        let mut found = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                found.insert(name);
            }
        }
        found
    }
}

fn ops_refs(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::ops::") {
        let name: String =
            text[i + "crate::ops::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // `crate::ops::Skipped` and other re-exports from ops/mod.rs are shared types.
        if name.chars().next().is_some_and(|c| c.is_lowercase()) {
            found.insert(name);
        }
    }
    found
}
