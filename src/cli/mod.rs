//! The command line as typed by a person or a CronJob: raw strings, no decisions.
//!
//! Every flag also reads an environment variable so that one image serves every cluster and
//! environment. [`crate::config::Config::from_args`] turns these raw values into a validated plan.

use clap::{Parser, Subcommand, ValueEnum};

mod run;

pub use run::Args;

/// How the engine's range selectors treat the window's left edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowSemantics {
    /// Measure it with one probe query at the start of each run.
    Auto,
    /// `[T-d, T]`: Prometheus 2.x.
    Closed,
    /// `(T-d, T]`: Prometheus 3.x, VictoriaMetrics.
    LeftOpen,
}

/// Which kind of query engine `--prometheus-url` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flavor {
    /// Send Thanos' safety parameters on every query (other engines ignore them).
    Auto,
    /// Plain Prometheus API requests, nothing extra (for a proxy that refuses unknown ones).
    Prometheus,
    /// Thanos querier: deduplicated, complete, raw data only.
    Thanos,
    /// Mimir or Cortex: as auto, and the tenant header is required.
    Mimir,
}

/// Log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (in a cluster), text otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormat> for crate::telemetry::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Auto => Self::Auto,
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

/// Bill every tenant namespace of a Kubernetes cluster for the CPU, GPU and storage it held
/// each hour, and publish one MCMP message per cluster-hour.
///
/// Scheduled run (the hourly CronJob): publishes every complete hour after the checkpoint.
/// Backfill: `--since/--until` publishes an explicit range of hours.
/// `--dry-run` prints the messages as one JSON array on stdout; it sends nothing to Kafka and
/// writes no checkpoint (a scheduled dry-run reads the checkpoint to plan its hours).
/// `audit --since/--until` reads the topic back and checks every hour was sent once and right.
//
// (The whole command line: a run, or a subcommand.)
#[derive(Debug, Clone, Parser)]
#[command(
    name = "consumption-metrics",
    version,
    about,
    long_about,
    max_term_width = 100,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Args,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Read the topic back and show, hour by hour, that every hour of [--since, --until) was
    /// published exactly once and right. Uses the same Kafka, TLS and cluster settings as
    /// publishing; joins no consumer group and commits nothing.
    Audit(AuditArgs),
    /// Ask Prometheus (and Kafka and the checkpoint, when configured) whether a run would bill
    /// this cluster correctly, with the job's own flags and environment: one line per check,
    /// each failure with what to do. Reads, never writes. Exit 0 when every check passes,
    /// otherwise the exit code of the first failure's class.
    Check(CheckArgs),
    /// Inspect the checkpoint, or move it deliberately (the runbook's commands).
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CheckpointAction {
    /// Where the checkpoint lives, its value, the lag, and which hours the next scheduled run
    /// would bill. Changes nothing.
    Show {
        #[command(flatten)]
        run: Args,
    },
    /// Set the checkpoint to the end of the last hour to count as published: the way past an
    /// hour Prometheus never recorded, or a migration from the Go job. Refuses to move
    /// backwards (hours would be billed again) unless --force.
    Set {
        /// The new value: an hour's start, RFC 3339. Example: 2026-11-22T11:00:00Z
        #[arg(long, value_name = "HOUR")]
        to: String,
        /// Allow moving backwards: the hours after --to will be published again (with the
        /// same message ids).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        run: Args,
    },
}

/// `consumption-metrics check`: the run's flags (Prometheus and what is billed; Kafka and the
/// checkpoint when given) plus its own.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Report format on stdout: a line per check for people, or one JSON document.
    #[arg(long, env = "CHECK_OUTPUT", value_enum, default_value_t = CheckOutput::Text)]
    pub output: CheckOutput,

    /// The longest the store's checks may take together: a store that hangs fails them with
    /// what was decided so far, instead of making an operator (or the Job's
    /// activeDeadlineSeconds) wait for every query's timeout and retries in turn.
    #[arg(
        long,
        env = "CHECK_DEADLINE",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub deadline: String,

    #[command(flatten)]
    pub run: Args,
}

/// `--cpu-request-model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestModelArg {
    /// The pod's effective request, as the scheduler and ResourceQuota count it.
    Pod,
    /// The app containers' requests alone.
    Containers,
}

/// `--request-source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestSourceArg {
    /// kube-state-metrics' containers' requests.
    KubeStateMetrics,
    /// kube-scheduler's kube_pod_resource_request.
    Scheduler,
}

/// `check --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    /// One line per check.
    Text,
    /// One JSON document.
    Json,
}

/// `consumption-metrics audit`: the run's flags (Kafka, TLS, cluster, and for --recompute
/// Prometheus and what is billed) plus the audit's own.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Also collect the hours from Prometheus again and compare every namespace and dimension
    /// with what the topic holds (late data, a changed tier map, a different basis).
    #[arg(long, env = "AUDIT_RECOMPUTE")]
    pub recompute: bool,

    /// Report format on stdout: a table for people, or one JSON document.
    #[arg(long, env = "AUDIT_OUTPUT", value_enum, default_value_t = AuditOutput::Text)]
    pub output: AuditOutput,

    /// Read every partition from its first record instead of positioning by time at --since:
    /// also sees copies written with an older record time (a replay, MirrorMaker keeping
    /// original times, a producer clock behind), at the cost of reading the whole topic.
    #[arg(long, env = "AUDIT_FROM_EARLIEST")]
    pub from_earliest: bool,

    #[command(flatten)]
    pub run: Args,
}

/// `audit --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    /// A table for people.
    Text,
    /// One JSON document.
    Json,
}
