//! The core's modules form a DAG in one declared order: a module may import (`crate::x`) only
//! modules listed before it. The token stack reads left to right, `b64` -> `algorithm` ->
//! `header` -> `keys` -> `jws` -> `jwt`, and the rest of the core sits after it.
//!
//! The test reads `src/*.rs` (and `src/<module>/**.rs` for a module kept in a folder), extracts
//! every `crate::x` path, grouped imports (`use crate::{a, b::C}`) included, and fails on an
//! import of a module to the right, or of a module missing from [`ORDER`] (a new module must be
//! given its place). Comment lines are skipped: a doc link is not an import.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The declared order, leftmost first. A module may import only modules before it.
const ORDER: &[&str] = &[
    "b64",
    "algorithm",
    "header",
    "keys",
    "jws",
    "jwt",
    "csrf",
    "password",
    "sealing",
    "limits",
    "identity",
    "scope",
    "gateway",
    "apikey",
    "totp",
    "store",
];

/// The crate-root paths (`crate::x`) named in `source`, comments left out.
fn crate_imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            // `tessera_crate::` or `mycrate::` is not `crate::`.
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level names of a group: `{a, b::{C, D}, e::F}`.
                let mut depth = 0;
                let mut name = String::new();
                let mut at_start = true;
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => at_start = true,
                        c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                        _ if depth == 0 && !name.is_empty() => {
                            found.insert(std::mem::take(&mut name));
                            at_start = false;
                        }
                        _ => {}
                    }
                }
                if !name.is_empty() {
                    found.insert(name);
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a source file belongs to: `src/keys.rs` and `src/keys/ring.rs` are `keys`;
/// `None` for the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib").then_some(name)
}

#[test]
fn the_extractor_sees_plain_grouped_and_nested_imports_and_skips_comments() {
    let source = "use crate::b64;\n\
                  use crate::{header::{self, Header}, keys::Key, jws};\n\
                  let x = crate::jwt::verify(a, crate::limits::decide(b));\n\
                  //! See [`crate::store`].\n\
                  use tessera_crate::password; // crate::sealing\n";
    let found: Vec<String> = crate_imports(source).into_iter().collect();
    assert_eq!(found, ["b64", "header", "jws", "jwt", "keys", "limits"]);
}

#[test]
fn core_modules_import_only_modules_to_their_left() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(position) = ORDER.iter().position(|m| *m == module) else {
            violations.push(format!("{}: module `{module}` is not in ORDER", file.display()));
            continue;
        };
        checked.insert(module.clone());
        let source = fs::read_to_string(file).unwrap();
        for import in crate_imports(&source) {
            if import == module {
                continue;
            }
            match ORDER.iter().position(|m| *m == import) {
                Some(target) if target < position => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` imports `crate::{import}`, which comes after it",
                    file.display()
                )),
                // Re-exports at the crate root (`crate::Algorithm`) are the root's, not a layer.
                None if import.starts_with(char::is_uppercase) => violations.push(format!(
                    "{}: `{module}` names `crate::{import}`: import it from its module",
                    file.display()
                )),
                None => violations.push(format!(
                    "{}: `{module}` imports `crate::{import}`, which is not in ORDER",
                    file.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
    // Every declared module exists, so the order cannot silently go stale.
    let declared: BTreeSet<String> = ORDER.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(checked, declared, "ORDER names modules that do not exist");
}
