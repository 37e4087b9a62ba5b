//! The `tessera` binary: parse the command line, load the configuration, set up logging, and
//! hand over to the library. Everything else lives in `lib.rs` so tests can reuse it.

use std::process::ExitCode;

use clap::Parser;
use tessera_server::cli::{
    Cli, Command, ConfigAction, config_check, keys_command, load_config, migrate_command, users_command,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys { action } => keys_command(action),
        Command::Users { action } => users_command(action),
        Command::Migrate { check } => migrate_command(check),
        Command::Config {
            action: ConfigAction::Check,
        } => config_check(),
        Command::Serve { bind } => {
            let mut config = match load_config() {
                Ok(config) => config,
                Err(code) => return code,
            };
            if let Some(bind) = bind {
                config.bind = bind;
            }
            tessera_server::telemetry::init(&config);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: could not start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "tessera stopped");
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: tessera_server::config::Config) -> anyhow::Result<()> {
    use anyhow::Context;
    let bind = config.bind;
    let app = tessera_server::build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("could not listen on {bind}"))?;
    let address = listener.local_addr()?;
    let config = &app.state.config;
    tracing::info!(
        event = "startup",
        address = %address,
        database = %config.database,
        state_backend = "memory (single instance)",
        algorithm = %config.algorithm,
        keys = app.state.keys.source,
        "tessera listening on http://{address}"
    );
    tessera_server::serve(app, listener, tessera_server::shutdown_signal()).await
}
