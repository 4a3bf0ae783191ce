//! Any argument vector (NUL-separated) through clap and the configuration's validation: no
//! panic, whatever the flags and values.
#![no_main]
use clap::Parser;
use consumption_metrics::cli::Cli;
use consumption_metrics::config::{AuditConfig, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let argv = std::iter::once("consumption-metrics").chain(text.split('\0'));
    let Ok(cli) = Cli::try_parse_from(argv) else { return };
    let now = chrono::DateTime::from_timestamp(1_795_343_400, 0).unwrap();
    match &cli.command {
        Some(consumption_metrics::cli::Command::Audit(a)) => {
            let _ = AuditConfig::from_args(a, now);
        }
        _ => {
            if let Ok(c) = Config::from_args(&cli.run, now) {
                let _ = c.summary();
            }
        }
    }
});
