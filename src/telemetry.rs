//! Logs: `tracing` to stderr, filtered by `RUST_LOG` (default info); JSON in a cluster, text on
//! a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log format (`--log-format`, mapped by the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// JSON unless stderr is a terminal.
    Auto,
}

/// Returns whether logs are JSON.
pub fn init(format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second initialisation (tests) is harmless.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    json
}
