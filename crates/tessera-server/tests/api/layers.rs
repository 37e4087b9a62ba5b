//! The server crate's layering (A1), checked on its source: `http` is the only module that
//! speaks HTTP (axum, tower, hyper), the application services (`app`) know nothing of it, the
//! infrastructure modules know neither, and no import cycle exists between modules.
//!
//! Layers, lowest first: infrastructure (`clock`, `config`, `backends`, `hashing`, `keys`,
//! `metrics`, `revocation`, `token_cache`, `api_key_cache`, `telemetry`, `release`, `mail`), then
//! `app`,
//! then `http`, then `cli`;
//! `lib.rs` and `main.rs` compose them. A module imports only from its own layer or below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each top-level module of `src/`.
fn layer_of(module: &str) -> Option<u8> {
    match module {
        "clock" | "config" | "backends" | "hashing" | "keys" | "metrics" | "revocation" | "token_cache"
        | "api_key_cache" | "telemetry" | "release" | "mail" => Some(0),
        "app" => Some(1),
        "http" => Some(2),
        "cli" => Some(3),
        "lib" | "main" => Some(4),
        _ => None,
    }
}

/// Crates that speak HTTP (server side); only `http/` may name them.
const HTTP_CRATES: [&str; 5] = ["axum", "tower", "tower_http", "hyper", "hyper_util"];

fn source_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/app/login.rs` -> `app`, `src/keys.rs` -> `keys`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without comments (line comments and doc comments).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::name` the code refers to (also inside `use crate::{a, b}` groups).
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        rest = after;
    }
    found
}

/// Whether the code names an HTTP crate as a path (`axum::`, `use tower_http`...).
fn names_http_crate(code: &str) -> Option<&'static str> {
    HTTP_CRATES.into_iter().find(|krate| {
        let path = format!("{krate}::");
        code.match_indices(&path).any(|(at, _)| {
            // A whole path segment: not `my_axum::` or `crate::http::axum_thing`.
            let before = code[..at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
    })
}

fn graph() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut http_outside = Vec::new();
    for file in files {
        let module = module_of(&src, &file);
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        if module != "http"
            && let Some(krate) = names_http_crate(&code)
        {
            http_outside.push(format!("{} names {krate}", file.display()));
        }
        let targets = edges.entry(module.clone()).or_default();
        for target in crate_references(&code) {
            if target != module && layer_of(&target).is_some() {
                targets.insert(target);
            }
        }
    }
    (edges, http_outside)
}

#[test]
fn only_http_speaks_http() {
    let (_, http_outside) = graph();
    assert!(
        http_outside.is_empty(),
        "HTTP crates outside src/http/: {http_outside:#?}"
    );
}

#[test]
fn every_module_has_a_layer_and_imports_only_its_own_or_lower_ones() {
    let (edges, _) = graph();
    let mut violations = Vec::new();
    for (from, targets) in &edges {
        let Some(from_layer) = layer_of(from) else {
            violations.push(format!("{from}: no layer; add it to layer_of"));
            continue;
        };
        for to in targets {
            let to_layer = layer_of(to).unwrap();
            if to_layer > from_layer {
                violations.push(format!("{from} (layer {from_layer}) imports {to} (layer {to_layer})"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn modules_import_each_other_without_cycles() {
    let (edges, _) = graph();
    // Depth-first search for a back edge; reports the cycle found.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checks_see_what_they_claim_to() {
    // The parser finds plain paths and groups, and ignores comments.
    let code = code_of("use crate::app::App;\nuse crate::{clock, config::Config};\n// crate::http\n");
    assert_eq!(
        crate_references(&code),
        ["app", "clock", "config"].into_iter().map(String::from).collect()
    );
    assert_eq!(names_http_crate("use axum::Router;"), Some("axum"));
    assert_eq!(names_http_crate("use crate::http::AppState;"), None);
    // The real source has the three layers.
    let (edges, _) = graph();
    for module in ["app", "http", "cli", "clock", "config"] {
        assert!(edges.contains_key(module), "{module} not found in src/");
    }
    assert!(edges["http"].contains("app"), "http calls the application layer");
}
