//! `ants-relay`: the ants-coord relay server. See `ants-relay --help` and `ants_coord::relay`.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// How often the relay hands memory its allocator holds free back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Gives back, every [`TRIM_EVERY`], the memory glibc's allocator keeps after it was freed.
///
/// glibc returns freed memory to the system only from the top of each arena's heap, so the
/// buffers of thousands of connections freed in any order stay resident: after a flood of
/// 500 replaying consumers and 4,500 idle connections the relay stayed at 210 MiB (96 MiB
/// before), and one `malloc_trim(0)` took it to 78 MiB (measured with gdb; BENCHMARKS.md,
/// issue 22 item 4). A trim walks the free chunks of every arena: a few milliseconds at most
/// for the relay's heaps, once per period.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_allocator_periodically() {
    let started = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            // SAFETY: malloc_trim takes no pointer and only releases free memory; it is safe
            // to call from any thread at any time (glibc takes each arena's lock).
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "could not start the allocator trim thread");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator_periodically() {}

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
    trim_allocator_periodically();
    match ants_coord::relay::serve(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, code = error.code(), "relay failed");
            std::process::ExitCode::FAILURE
        }
    }
}
