//! What the shipped binary says about itself (issue 20): `tessera --version` names the version,
//! the git commit it was built from, its features and target; the hidden `tessera generate`
//! writes the man pages and shell completions that scripts/package.sh puts into the package.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

fn tessera(args: &[&str]) -> std::process::Output {
    let output = Command::new(BINARY).args(args).output().expect("run tessera");
    assert!(
        output.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn version_names_the_git_commit_the_features_and_the_target() {
    // Arrange: the commit of this checkout, as build.rs reads it.
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git is installed where the tests run");
    assert!(git.status.success(), "the tests run in a git checkout");
    let expected_commit = String::from_utf8(git.stdout).unwrap().trim().to_owned();

    // Act
    let long = String::from_utf8(tessera(&["--version"]).stdout).unwrap();
    let short = String::from_utf8(tessera(&["-V"]).stdout).unwrap();

    // Assert
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        long,
        format!(
            "tessera {version}\ncommit: {expected_commit}\nfeatures: {}\ntarget: {}\n",
            if cfg!(feature = "aws") { "aws" } else { "none" },
            long.lines().last().unwrap().trim_start_matches("target: ")
        )
    );
    assert!(long.lines().last().unwrap().contains("linux"), "{long}");
    assert_eq!(short, format!("tessera {version} ({expected_commit})\n"));
}

#[test]
fn generate_man_writes_one_page_per_command_and_none_for_hidden_ones() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();

    // Act
    tessera(&["generate", "man", dir.path().to_str().unwrap()]);

    // Assert: the main page, one per subcommand, none for the hidden `generate`.
    let page = std::fs::read_to_string(dir.path().join("tessera.1")).unwrap();
    assert!(page.contains(".TH tessera 1"), "{page}");
    assert!(page.contains("serve"), "{page}");
    let users_create = std::fs::read_to_string(dir.path().join("tessera-users-create.1")).unwrap();
    assert!(users_create.contains("password\\-stdin"), "{users_create}");
    // Every page carries the version and commit in its footer.
    assert!(
        users_create.contains(&format!("{} (", env!("CARGO_PKG_VERSION"))),
        "{users_create}"
    );
    for name in [
        "tessera-serve.1",
        "tessera-migrate.1",
        "tessera-keys-rotate.1",
        "tessera-config-check.1",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    assert!(!dir.path().join("tessera-generate.1").exists());
}

#[test]
fn generate_completions_covers_the_subcommands_and_their_flags() {
    // Act
    let bash = String::from_utf8(tessera(&["generate", "completions", "bash"]).stdout).unwrap();
    let zsh = String::from_utf8(tessera(&["generate", "completions", "zsh"]).stdout).unwrap();
    let fish = String::from_utf8(tessera(&["generate", "completions", "fish"]).stdout).unwrap();

    // Assert
    assert!(bash.contains("complete -F _tessera"), "{bash}");
    assert!(bash.contains("--password-stdin"), "{bash}");
    assert!(zsh.starts_with("#compdef tessera"), "{zsh}");
    assert!(
        fish.contains("__fish_tessera") || fish.contains("complete -c tessera"),
        "{fish}"
    );
    for completions in [&bash, &zsh, &fish] {
        assert!(completions.contains("migrate") && completions.contains("users"));
    }
}
