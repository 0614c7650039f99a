//! Where the daemon's log goes (`log:` in the config): stderr or a file.
//! journald and syslog targets are refused by config validation until they
//! land, so this never silently drops logs.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Install the global subscriber for the daemon. `NFTBAN_LOG` (a tracing
/// filter) overrides the level, for debugging.
pub fn init(log: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_env("NFTBAN_LOG").unwrap_or_else(|_| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if log.target == "stderr" {
        builder.with_writer(std::io::stderr).init();
    } else {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.target)
            .map_err(|e| anyhow::anyhow!("cannot open log file {} (log.target): {e}", log.target))?;
        builder.with_ansi(false).with_writer(Mutex::new(file)).init();
    }
    Ok(())
}

/// Warnings only, to stderr: for client commands.
pub fn init_quiet() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("NFTBAN_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
