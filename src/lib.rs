//! consumption-metrics: bills every tenant namespace of a Kubernetes cluster for the CPU, GPU
//! and storage it held each hour, as MCMP messages.
//!
//! The pipeline, one module per step: [`config`] (validated settings) → [`window`] (which
//! hours) → [`collector`] with [`queries`] over [`prometheus`] → [`message`] (MCMP) → output,
//! sequenced by [`manager`]. [`synth`] generates synthetic clusters with known ground truth for
//! tests, the demo and benchmarks.

pub mod audit;
pub mod checkpoint;
pub mod cli;
pub mod collector;
pub mod config;
pub mod gpu;
pub mod kafka;
pub mod manager;
pub mod message;
pub mod operator;
pub mod prometheus;
pub mod pushgateway;
pub mod queries;
pub mod sink;
pub mod synth;
pub mod telemetry;
pub mod window;

/// Exit codes, documented in the README.
pub mod exit {
    /// Every planned hour done.
    pub const OK: u8 = 0;
    /// An unexpected internal failure.
    pub const INTERNAL: u8 = 1;
    /// Usage error: a flag or environment variable is wrong. Nothing was done.
    pub const USAGE: u8 = 2;
    /// The checkpoint could not be read or written.
    pub const CHECKPOINT: u8 = 3;
    /// Prometheus could not be queried or its data could not be billed.
    pub const COLLECT: u8 = 4;
    /// The messages could not be shaped or delivered (or, for `audit`, the topic could not be
    /// read).
    pub const OUTPUT: u8 = 5;
    /// `audit` read everything and found an hour that is not published exactly once and
    /// right (missing, conflicting, foreign or, with --recompute, different).
    pub const AUDIT_FINDINGS: u8 = 6;
}

/// Everything that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Prometheus(#[from] prometheus::PrometheusError),
    #[error(transparent)]
    Collect(#[from] collector::CollectError),
    #[error(transparent)]
    Message(#[from] message::MessageError),
    #[error(transparent)]
    Publish(#[from] kafka::PublishError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Stdout(#[from] sink::StdoutError),
    #[error("internal error: {0}; please report it with the logs")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit::USAGE,
            Error::Internal(_) => exit::INTERNAL,
            Error::Checkpoint(_) => exit::CHECKPOINT,
            Error::Prometheus(_) | Error::Collect(_) => exit::COLLECT,
            Error::Message(_) | Error::Stdout(_) | Error::Publish(_) | Error::Audit(_) => {
                exit::OUTPUT
            }
        }
    }

    /// Whether the run stopped at an hour Prometheus holds no data for.
    pub fn is_no_data(&self) -> bool {
        matches!(self, Error::Collect(collector::CollectError::NoData { .. }))
    }

    /// Whether running again later may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Prometheus(e) => e.is_retryable(),
            Error::Collect(e) => e.is_retryable(),
            Error::Publish(e) => e.is_retryable(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Run the job with a validated configuration. A dry-run prints the messages as one JSON array
/// on `out` once every hour has been collected (nothing is printed after an error); a real run
/// publishes and checkpoints hour by hour. The report says what the run did, also when it
/// failed (`None` when it could not even start: a client or store could not be built).
pub async fn run(
    config: config::Config,
    out: &mut dyn std::io::Write,
) -> (Option<manager::RunReport>, Result<()>) {
    let mut manager = match manager::Manager::new(config).await {
        Ok(m) => m,
        Err(e) => return (None, Err(e)),
    };
    let result = match manager.run().await {
        Ok(_) => manager.finish(out),
        Err(e) => Err(e),
    };
    (Some(manager.report()), result)
}
