use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use consumption_metrics::audit::AuditConfig;
use consumption_metrics::audit::AuditFormat;
use consumption_metrics::cli::{AuditArgs, CheckpointAction, Cli, Command};
use consumption_metrics::config::Config;
use consumption_metrics::{exit, telemetry};

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(e),
    };
    match &cli.command {
        Some(Command::Audit(args)) => audit(args),
        Some(Command::Check(args)) => check(args),
        Some(Command::Checkpoint { action }) => checkpoint(action),
        None => run(&cli.run),
    }
}

/// glibc raises its mmap threshold to the size of each large block that is freed (up to
/// 32 MiB); after that, a span's Prometheus answers are carved from the heap, whose holes stay
/// resident, and a long backfill ends up well above a one-hour run (1000 namespaces, dry-run:
/// 22.2 MiB for 168 hours against 17.2 for one). A fixed threshold, which turns the dynamic one
/// off, hands every answer back to the system when it is dropped (20.5 MiB). The same as
/// `MALLOC_MMAP_THRESHOLD_=131072` in the environment. Not glibc (musl): nothing to do.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tunable; it is called before any other thread
    // exists, and 128 KiB is glibc's own default value for this threshold.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// What every subcommand does first: logs, its validated configuration (a usage error exits 2)
/// and the async runtime. Returns whether logs are JSON.
fn prepare<C>(
    log_format: consumption_metrics::cli::LogFormat,
    configure: impl FnOnce(
        chrono::DateTime<chrono::Utc>,
    ) -> Result<C, consumption_metrics::config::ConfigError>,
) -> Result<(C, tokio::runtime::Runtime, bool), ExitCode> {
    let json = telemetry::init(log_format.into());
    let config = configure(chrono::Utc::now()).map_err(|e| {
        report(&e, json);
        ExitCode::from(exit::USAGE)
    })?;
    Ok((config, runtime()?, json))
}

/// The first SIGTERM or SIGINT. The run is then dropped where it is: the checkpoint only ever
/// moves after an hour is fully acknowledged (and a checkpoint file is replaced atomically), so
/// stopping anywhere loses nothing; what follows is the one-line error and the failure's push,
/// which a killed process would never send.
async fn terminated() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // No handler could be installed: the default action (termination) stays.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: could not start the async runtime: {e}");
            ExitCode::from(exit::INTERNAL)
        })
}

fn run(args: &consumption_metrics::cli::Args) -> ExitCode {
    let (config, runtime, json) = match prepare(args.log_format, |now| Config::from_args(args, now))
    {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    if args.check_config {
        print!("{}", config.summary());
        return ExitCode::from(exit::OK);
    }
    let pushgateway = config.pushgateway.clone();
    let mut stdout = std::io::stdout().lock();
    let (run_report, result) = runtime.block_on(async {
        tokio::select! {
            done = consumption_metrics::run(config, &mut stdout) => done,
            signal = terminated() => (None, Err(consumption_metrics::Error::Interrupted { signal })),
        }
    });
    if let Some(settings) = &pushgateway {
        let outcome = consumption_metrics::pushgateway::Outcome {
            exit_code: result
                .as_ref()
                .map_or_else(|e| e.exit_code(), |()| exit::OK),
            no_data: result.as_ref().is_err_and(|e| e.is_no_data()),
        };
        runtime.block_on(consumption_metrics::pushgateway::push(
            settings,
            run_report.as_ref(),
            outcome,
        ));
    }
    if let Some(r) = &run_report {
        tracing::info!(
            planned = r.planned,
            hours = r.hours,
            published = r.published,
            messages = r.messages,
            bytes = r.bytes,
            collect_seconds = r.collect.as_secs_f64(),
            deliver_seconds = r.deliver.as_secs_f64(),
            checkpoint_seconds = r.checkpoint.as_secs_f64(),
            windows = r.windows.map(|w| w.to_string()).unwrap_or_default(),
            checkpoint = r
                .checkpoint_end
                .map(consumption_metrics::window::rfc3339)
                .unwrap_or_default(),
            "{}",
            if result.is_ok() {
                "run complete"
            } else {
                "run stopped"
            }
        );
    }
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

/// `consumption-metrics audit`: the report on stdout; exit 0 when every hour is published
/// exactly once and right, 6 when not, and the usual codes when it could not tell.
fn audit(args: &AuditArgs) -> ExitCode {
    let (config, runtime, json) =
        match prepare(args.run.log_format, |now| AuditConfig::from_args(args, now)) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let outcome = runtime.block_on(consumption_metrics::audit::run(
        &config.audit,
        config.recompute.as_deref(),
    ));
    let audit = match outcome {
        Ok(a) => a,
        Err(e) => {
            report(&e, json);
            return ExitCode::from(e.exit_code());
        }
    };
    let json = config.format == AuditFormat::Json;
    if let Err(code) = print_report("audit report", json, || audit.to_text(), &audit) {
        return code;
    }
    ExitCode::from(if audit.is_clean() {
        exit::OK
    } else {
        exit::AUDIT_FINDINGS
    })
}

/// `consumption-metrics check`: the report on stdout; exit 0 when a run would bill correctly.
fn check(args: &consumption_metrics::cli::CheckArgs) -> ExitCode {
    use consumption_metrics::check::{CheckConfig, CheckFormat};
    let (config, runtime, _json) =
        match prepare(args.run.log_format, |now| CheckConfig::from_args(args, now)) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let report = runtime.block_on(consumption_metrics::check::run(&config));
    let json = config.format == CheckFormat::Json;
    if let Err(code) = print_report("check report", json, || report.to_text(), &report) {
        return code;
    }
    ExitCode::from(report.exit_code())
}

/// A command's report on stdout: its text for people, or one JSON document.
fn print_report(
    what: &str,
    json: bool,
    text: impl FnOnce() -> String,
    value: &impl serde::Serialize,
) -> Result<(), ExitCode> {
    let text = if json {
        serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| {
                eprintln!("error: could not serialize the {what}: {e}");
                ExitCode::from(exit::INTERNAL)
            })?
    } else {
        text()
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            eprintln!("error: could not write the {what} to stdout: {e}");
            ExitCode::from(exit::OUTPUT)
        })
}

/// A command line clap could not parse: help and version are printed as usual; an error is one
/// JSON log event when the logs are JSON (in a cluster, `LOG_FORMAT=json`), so that a log
/// pipeline sees it like any other failure.
fn parse_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json_logs = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
        || std::env::args().any(|a| a == "--log-format=json")
        || std::env::args()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == "--log-format" && w[1] == "json");
    let is_error = !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if json_logs && is_error {
        telemetry::init(telemetry::LogFormat::Json);
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        tracing::error!(error = %first, retryable = false, "run failed");
        return ExitCode::from(exit::USAGE);
    }
    e.exit()
}

/// `consumption-metrics checkpoint show|set`.
fn checkpoint(action: &CheckpointAction) -> ExitCode {
    let (CheckpointAction::Show { run } | CheckpointAction::Set { run, .. }) = action;
    let ((config, target), runtime, json) = match prepare(run.log_format, |now| {
        let config = consumption_metrics::operator::CheckpointCommandConfig::from_args(run, now)?;
        let target = match action {
            CheckpointAction::Set { to, .. } => Some(
                consumption_metrics::operator::checkpoint_target(to, &config)?,
            ),
            CheckpointAction::Show { .. } => None,
        };
        Ok((config, target))
    }) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let outcome: Result<String, consumption_metrics::Error> = runtime.block_on(async {
        let mut store =
            consumption_metrics::checkpoint::Checkpoint::open(&config.checkpoint).await?;
        match (action, target) {
            (CheckpointAction::Set { force, .. }, Some(hour)) => {
                Ok(consumption_metrics::operator::set(&config, &mut store, hour, *force).await?)
            }
            _ => Ok(consumption_metrics::operator::show(&config, &mut store).await?),
        }
    });
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

/// One error line for a person on a terminal; one JSON log event in a cluster. The line ends by
/// saying whether a later run may succeed without anyone changing anything.
fn report(e: &dyn Failure, json: bool) {
    let retryable = e.retryable();
    let advice = if retryable {
        "retryable: a later run may succeed unchanged (the next scheduled run retries from the \
         checkpoint)"
    } else {
        "not retryable: a person must act on the message first"
    };
    if json {
        tracing::error!(error = %e, retryable, "run failed");
    } else {
        eprintln!("error: {e} [{advice}]");
    }
}

/// What `report` needs of an error.
trait Failure: std::fmt::Display {
    fn retryable(&self) -> bool;
}

impl Failure for consumption_metrics::Error {
    fn retryable(&self) -> bool {
        self.is_retryable()
    }
}

impl Failure for consumption_metrics::config::ConfigError {
    fn retryable(&self) -> bool {
        false
    }
}
