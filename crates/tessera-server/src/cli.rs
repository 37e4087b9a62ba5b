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
    /// Manage the signing keys of a running deployment (managed key ring).
    Keys {
        /// What to do with them.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Inspect the configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `tessera keys ...`. These work on the database directly; running instances pick the change
/// up within KEY_RELOAD_SECONDS, without restart.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// List access and refresh keys with their state now (published, signing, verify_only,
    /// retired) and their timetable.
    List,
    /// Add a new key: published (JWK set, verification) at once, signing after KEY_PUBLISH_DELAY.
    Rotate {
        /// Which key ring: access or refresh.
        #[arg(long, default_value = "access", value_parser = ["access", "refresh"])]
        purpose: String,
    },
    /// Delete all but the newest N keys of each ring. Never the signing key; without --force,
    /// never a key that may still verify an unexpired token.
    Prune {
        /// How many keys to keep per ring (the seed's keep_count).
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Also delete keys that may still verify unexpired tokens (those tokens stop working).
        #[arg(long)]
        force: bool,
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

/// Runs `tessera keys ...`. Exit code 0 on success, 1 on failure, 2 on invalid configuration.
pub fn keys_command(action: KeysAction) -> ExitCode {
    let config = match load_config() {
        Ok(config) => config,
        Err(code) => return code,
    };
    // The security events (key_rotated, key_pruned) go to stderr as JSON lines.
    crate::telemetry::init_with_writer(&config, std::io::stderr);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_keys(action, &config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_keys(action: KeysAction, config: &Config) -> anyhow::Result<()> {
    use tessera_core::store::KeyPurpose;
    let store = crate::open_key_store(&config.database).await?;
    let now = crate::state::unix_now();
    match action {
        KeysAction::List => {
            println!(
                "{:<26} {:<8} {:<6} {:<12} {:<21} {:<21} retired",
                "kid", "purpose", "alg", "state", "created", "signs from"
            );
            for key in crate::keys::list(store.as_ref(), config, now).await? {
                println!(
                    "{:<26} {:<8} {:<6} {:<12} {:<21} {:<21} {}",
                    key.kid,
                    key.purpose.as_str(),
                    key.alg.as_str(),
                    key.state.as_str(),
                    crate::http::rfc3339(key.created_at),
                    crate::http::rfc3339(key.activates_at),
                    key.retired_at
                        .map(crate::http::rfc3339)
                        .unwrap_or_else(|| "-".to_owned())
                );
            }
        }
        KeysAction::Rotate { purpose } => {
            let purpose = if purpose == "refresh" {
                KeyPurpose::Refresh
            } else {
                KeyPurpose::Access
            };
            let kid = crate::keys::rotate(store.as_ref(), config, purpose, now).await?;
            println!(
                "added {} key {kid}: published now, signing from {} (KEY_PUBLISH_DELAY={} s)",
                purpose.as_str(),
                crate::http::rfc3339(now + config.key_publish_delay_secs),
                config.key_publish_delay_secs
            );
        }
        KeysAction::Prune { keep, force } => {
            let outcome = crate::keys::prune(store.as_ref(), config, keep, force, now).await?;
            for kid in &outcome.removed {
                println!("removed {kid}");
            }
            for kid in &outcome.refused {
                println!("kept {kid}: it may still verify unexpired tokens (use --force to remove it anyway)");
            }
            if outcome.removed.is_empty() && outcome.refused.is_empty() {
                println!("nothing to prune");
            }
        }
    }
    Ok(())
}
