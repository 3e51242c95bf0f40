//! `ants-relay`: the ants-coord relay server. See `ants-relay --help` and `ants_coord::relay`.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ANTS_RELAY_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Logs go to stdout (tests and ants-load read the "relay listening" line there), in
        // colour only on a terminal: a file or a CI log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = match ants_coord::relay::Args::parse().into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ants-relay: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match ants_coord::relay::serve(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, code = error.code(), "relay failed");
            std::process::ExitCode::FAILURE
        }
    }
}
