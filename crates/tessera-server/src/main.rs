//! The `tessera` binary: parse the command line, load the configuration, set up logging, and
//! hand over to the library. Everything else lives in `lib.rs` so tests can reuse it.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tessera_server::cli::{
    Cli, Command, ConfigAction, config_check, keys_command, load_config, migrate_command, users_command,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keys { action } => keys_command(action),
        Command::Users { action } => users_command(action),
        Command::ServiceAccounts { action } => tessera_server::cli::service_accounts::service_accounts_command(action),
        Command::ApiKeys { action } => tessera_server::cli::service_accounts::api_keys_command(action),
        Command::Migrate { check } => migrate_command(check),
        Command::Generate { action } => match tessera_server::release::generate(action, Cli::command()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
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
    // Every connection is a file descriptor: take what the hard limit allows (logged).
    tessera_server::http::serve::raise_open_file_limit();
    let app = tessera_server::build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("could not listen on {bind}"))?;
    let address = listener.local_addr()?;
    let config = &app.state.config;
    let limits = tessera_server::ConnectionLimits::from_config(config);
    // /metrics on its own listener when METRICS_ADDR is set (so it need not be public).
    let metrics_address = match config.metrics_addr {
        Some(metrics_bind) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_bind)
                .await
                .with_context(|| format!("could not listen on METRICS_ADDR {metrics_bind}"))?;
            let metrics_address = metrics_listener.local_addr()?;
            let router = tessera_server::http::metrics_router(app.state.clone());
            tokio::spawn(async move {
                // The same connection bounds as the main listener; it lives as long as the process.
                let forever = std::future::pending::<()>();
                if let Err(error) = tessera_server::http::serve::serve(router, metrics_listener, limits, forever).await
                {
                    tracing::error!(event = "metrics_listener_failed", %error, "metrics listener stopped");
                }
            });
            Some(metrics_address.to_string())
        }
        None => None,
    };
    tracing::info!(
        event = "startup",
        address = %address,
        metrics_address = metrics_address.as_deref().unwrap_or("(same listener: /metrics)"),
        database = %config.database,
        state_backend = if config.redis_url.is_some() { "redis (shared by every instance)" } else { "memory (single instance)" },
        algorithm = %config.algorithm,
        keys = app.state.keys.source,
        "tessera listening on http://{address}"
    );
    tessera_server::serve(app, listener, limits, tessera_server::shutdown_signal()).await
}
