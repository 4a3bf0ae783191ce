use std::process::ExitCode;

use clap::Parser;
use consumption_metrics::{cli::Args, config::Config, exit, telemetry};

fn main() -> ExitCode {
    let args = Args::parse();
    let json = telemetry::init(args.log_format);
    let config = match Config::from_args(&args, chrono::Utc::now()) {
        Ok(c) => c,
        Err(e) => {
            report(&e, json);
            return ExitCode::from(exit::USAGE);
        }
    };
    if args.check_config {
        print!("{}", config.summary());
        return ExitCode::from(exit::OK);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(consumption_metrics::run(config, &mut stdout)) {
        Ok(report) => {
            tracing::info!(
                hours = report.hours,
                messages = report.messages.len(),
                "run complete"
            );
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

/// One error line for a person on a terminal; one JSON log event in a cluster.
fn report(e: &dyn std::fmt::Display, json: bool) {
    if json {
        tracing::error!(error = %e, "run failed");
    } else {
        eprintln!("error: {e}");
    }
}
