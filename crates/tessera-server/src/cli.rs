//! The operator command line (B13): `tessera serve` and `tessera config check`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

/// Tessera: a JWT authentication server. Configuration comes from the environment and from a
/// `.env` file in the working directory (see README.md for every variable).
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (zero configuration: an SQLite file under DATA_DIR, keys made on first start).
    Serve {
        /// Listen address; overrides BIND_ADDR (default 127.0.0.1:8000).
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Inspect the configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `tessera config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check every variable and print the effective configuration, secrets redacted. Exits 2
    /// when a value is invalid.
    Check,
}

/// Exit code for an invalid configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Loads and checks the configuration, or prints the one-line error and returns exit code 2.
pub fn load_config() -> Result<Config, ExitCode> {
    config::vars_from_environment()
        .and_then(|vars| Config::from_vars(&vars))
        .map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_CONFIG)
        })
}

/// `tessera config check`.
pub fn config_check() -> ExitCode {
    match load_config() {
        Ok(config) => {
            for (name, value) in config.redacted_summary() {
                println!("{name}={value}");
            }
            println!("# configuration is valid");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
