//! Writes a synthetic cluster as OpenMetrics (for `promtool tsdb create-blocks-from
//! openmetrics`) plus its ground truth. Used by the demo, the tests and the benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use consumption_metrics_synth::{scenario::Options, write_dataset};

/// Generate a synthetic cluster's metrics and ground truth.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Directory for metrics.om and truth.json.
    #[arg(long)]
    out_dir: PathBuf,
    /// First sample (RFC 3339, hour-aligned). Default: 2026-11-01T00:00:00Z.
    #[arg(long)]
    start: Option<String>,
    /// Hours of data.
    #[arg(long, default_value_t = 6)]
    hours: i64,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 30)]
    interval: i64,
    /// Random tenant namespaces added to the hand-made ones.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Seed of the random namespaces.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Only the random namespaces (benchmarks).
    #[arg(long)]
    only_random: bool,
    /// Also write kube-scheduler's kube_pod_resource_request (two replicas) and
    /// kube-state-metrics' kube_pod_status_qos_class, for --request-source scheduler.
    #[arg(long)]
    scheduler_metric: bool,
    /// Also write a GPU fleet of this many GPUs as dcgm-exporter reports them (nodes of eight:
    /// whole, MIG and time-sliced), scraped every 15 s, for --gpu-source devices.
    #[arg(long, default_value_t = 0)]
    gpus: usize,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<()> {
    let mut opts = Options {
        hours: args.hours,
        interval: args.interval,
        random_namespaces: args.namespaces,
        seed: args.seed,
        only_random: args.only_random,
        scheduler_metric: args.scheduler_metric,
        gpu_scale: args.gpus,
        ..Options::default()
    };
    if let Some(start) = &args.start {
        let t = chrono::DateTime::parse_from_rfc3339(start)
            .with_context(|| format!("--start {start:?} is not an RFC 3339 time"))?;
        ensure!(
            t.timestamp() % 3600 == 0,
            "--start {start:?} must be on the hour"
        );
        opts.start = t.timestamp();
    }
    ensure!(
        args.hours >= 1 && (1..=3600).contains(&args.interval),
        "--hours must be >= 1 and --interval within 1..=3600 seconds"
    );
    let d = write_dataset(&opts, &args.out_dir)
        .with_context(|| format!("writing the dataset to {}", args.out_dir.display()))?;
    eprintln!(
        "wrote {} and {}",
        d.openmetrics.display(),
        d.truth.display()
    );
    Ok(())
}
