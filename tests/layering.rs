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
        "chunker" | "pack" | "index" | "snapshot" | "fs" | "backend" | "progress" | "pg" | "redis" | "hooks"
        | "metrics" => 3,
        "repo" => 4,
        "ops" => 5,
        // The configuration file turns a source into operations' options; nothing below it
        // knows it exists.
        "config" => 6,
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

/// Top-level modules named in `crate::x` paths, including `use crate::{a, b::{c, d}}` groups.
fn regex_lite_crate_refs() -> impl Fn(&str) -> BTreeSet<String> {
    |text: &str| module_refs(text, "crate::")
}

/// Top-level modules named after `prefix` (`crate::` or `cairn::`): `prefix x::…` names `x`,
/// and a group `prefix {a, b::{c, d}, e}` names `a`, `b` and `e` (only its outermost items:
/// nested groups are skipped by brace depth, not cut at the first `}`).
fn module_refs(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.insert(ident(rest));
            continue;
        };
        let (mut depth, mut item_start) = (0usize, true);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if c.is_whitespace() => {}
                _ if item_start && depth == 0 => {
                    item_start = false;
                    let name = ident(&group[j..]);
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
                _ => {}
            }
        }
        found.remove("");
    }
    found.remove("");
    found
}

#[test]
fn nested_use_groups_name_every_top_level_module() {
    let refs = module_refs("use crate::{fs::{a, b}, repo::{X, Y}, ops};\nlet x = crate::pack::y;", "crate::");
    let names: Vec<&str> = refs.iter().map(String::as_str).collect();
    assert_eq!(names, ["fs", "ops", "pack", "repo"]);
}

/// Library modules the command line may not reach into: it renders what `ops` and `repo`
/// return, and storage internals stay behind them (DESIGN.md: "the CLI holds no logic that a
/// library user would need").
const CLI_FORBIDDEN: &[&str] = &["pack", "index", "backend", "codec", "io", "fs"];

#[test]
fn the_command_line_uses_only_the_library_surface() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("main.rs")];
    rust_files(&src.join("cli"), &mut files);
    let mut violations = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for target in module_refs(&text, "cairn::") {
            if CLI_FORBIDDEN.contains(&target.as_str()) {
                violations.insert(format!("{} uses cairn::{target}", file.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the CLI reaches past ops/repo:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
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
