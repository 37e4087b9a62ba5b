//! Build script: records the git commit the binary is built from, so `tessera --version` can say
//! exactly which source a deployed binary runs (`release::LONG_VERSION`).
//!
//! Sources, first found wins: the `TESSERA_GIT_COMMIT` environment variable (set by builds that
//! have no `.git`, e.g. the container build, whose context leaves `.git` out), then
//! `git rev-parse HEAD` in the source tree, else `unknown` (a source tarball without git).
//! Cargo reruns the script when HEAD moves (a commit, a checkout) or the variable changes.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TESSERA_GIT_COMMIT");
    let from_environment = std::env::var("TESSERA_GIT_COMMIT")
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty());
    let commit = from_environment
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TESSERA_GIT_COMMIT={commit}");
    // The target triple, also part of `--version`.
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=TESSERA_BUILD_TARGET={target}");
}

/// The commit of HEAD, abbreviated to 12 hex digits, with `-dirty` left out on purpose: knowing
/// whether the tree was clean would need a rerun on every file change. Also tells cargo which
/// git files to watch. `None` when git or the repository is missing.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD itself (a checkout), the branch it points to (a commit), and packed refs (gc).
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}

/// Runs git in the crate's directory and returns its trimmed output, `None` on any failure.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
