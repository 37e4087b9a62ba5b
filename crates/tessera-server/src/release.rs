//! What a shipped binary says about itself and the files packages generate from it: the long
//! `tessera --version` (version, git commit, cargo features, target), and the hidden
//! `tessera generate man|completions` that scripts/package.sh runs to put man pages and shell
//! completions into the Debian package.
//!
//! Both come from the one clap definition in `cli`, so the man pages and completions cannot
//! drift from `--help`. This module takes that definition as an argument (`clap::Command`)
//! rather than importing `cli`, which imports this module for [`GenerateAction`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use clap_complete::Shell;

/// The literal feature list of this build, for `concat!` (`concat!` takes literals only).
#[cfg(feature = "aws")]
macro_rules! feature_list {
    () => {
        "aws"
    };
}
/// The literal feature list of this build, for `concat!` (`concat!` takes literals only).
#[cfg(not(feature = "aws"))]
macro_rules! feature_list {
    () => {
        "none"
    };
}

/// The optional cargo features this binary was built with (`none` for the default build).
pub const FEATURES: &str = feature_list!();

/// `tessera -V`: the version and the commit, e.g. `0.1.0 (4d4a96c0b1e2)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TESSERA_GIT_COMMIT"), ")");

/// `tessera --version`: the version, then one `name: value` line each for the commit, the cargo
/// features and the target triple (the commit comes from build.rs: `git rev-parse`, or
/// `TESSERA_GIT_COMMIT`, or `unknown`).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("TESSERA_GIT_COMMIT"),
    "\nfeatures: ",
    feature_list!(),
    "\ntarget: ",
    env!("TESSERA_BUILD_TARGET"),
);

/// `tessera generate ...` (hidden: a packaging step, not an operator command).
#[derive(Debug, Subcommand)]
pub enum GenerateAction {
    /// Write the man pages (`tessera.1`, one `tessera-<command>.1` per subcommand) into DIR.
    Man {
        /// Directory to write into (created when missing).
        dir: PathBuf,
    },
    /// Print the completion script of SHELL (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// Runs `tessera generate ...` for `command`, the binary's clap definition (`Cli::command()`).
pub fn generate(action: GenerateAction, command: clap::Command) -> anyhow::Result<()> {
    match action {
        GenerateAction::Man { dir } => write_man_pages(command, &dir),
        GenerateAction::Completions { shell } => {
            // Into memory first: clap_complete panics on a write error (a closed pipe).
            let mut command = command;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "tessera", &mut script);
            std::io::stdout()
                .write_all(&script)
                .context("could not write the completion script")
        }
    }
}

/// Writes one roff page per visible command into `dir`; hidden commands (this one) get none.
fn write_man_pages(command: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    // Every page (the subcommands' too) shows the version and commit in its footer.
    let command = command.version(VERSION).propagate_version(true);
    clap_mangen::generate_to(command, dir).with_context(|| format!("could not write man pages to {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_the_commit_the_features_and_the_target() {
        // Arrange / Act
        let lines: Vec<&str> = LONG_VERSION.lines().collect();

        // Assert
        assert_eq!(lines[0], env!("CARGO_PKG_VERSION"));
        assert_eq!(lines[1], concat!("commit: ", env!("TESSERA_GIT_COMMIT")));
        assert_eq!(lines[2], format!("features: {FEATURES}"));
        assert!(lines[3].starts_with("target: ") && lines[3].len() > "target: ".len());
    }

    #[test]
    fn man_pages_are_written_for_each_visible_command() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let command = clap::Command::new("tessera")
            .about("test")
            .subcommand(clap::Command::new("serve").about("run"))
            .subcommand(clap::Command::new("generate").hide(true));

        // Act
        write_man_pages(command, dir.path()).unwrap();

        // Assert
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["tessera-serve.1", "tessera.1"]);
    }
}
