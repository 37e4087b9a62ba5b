//! Logging set-up (S6): JSON lines (default) or text, level from LOG_LEVEL, timestamps in
//! ISO 8601 UTC. Every event inside a request carries its `request_id` from the request span.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::time::UtcTime;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Call once, from `main`.
pub fn init(config: &Config) {
    // Our events at LOG_LEVEL; chatty dependencies at warn unless asked for more.
    let directive = format!(
        "warn,tessera_server={0},tessera_store={0},tessera={0}",
        config.log_level
    );
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let timer = UtcTime::rfc_3339();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(timer)
        .with_writer(std::io::stdout);
    let result = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
    if let Err(error) = result {
        eprintln!("logging was already initialised: {error}");
    }
}
