//! The Manager sequences one run: plan the hours from the checkpoint, prepare (the sink
//! connects, the checkpoint proves writable, the engine's windows are measured), then for each
//! hour, oldest first: collect, shape, deliver (Kafka: every acknowledgement awaited), advance
//! the checkpoint. The first failure stops the run; the checkpoint stays at the last hour that
//! was fully acknowledged. [`RunReport`] says what the run did, also when it failed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, instrument, warn};

use crate::checkpoint::{Checkpoint, ConfigMapCheckpoint, FileCheckpoint, configmap};
use crate::collector::Collector;
use crate::config::{CheckpointConfig, Config, Output, Plan};
use crate::kafka::Publisher;
use crate::message;
use crate::prometheus::Prometheus;
use crate::queries::Windows;
use crate::sink::{Sink, Spool};
use crate::window::{self, HourWindow, rfc3339};
use crate::{Error, Result};

/// Test hook, compiled only with the `test-hooks` feature (never in the image): abort the
/// process right after the N-th hour was acknowledged by Kafka and before the checkpoint moves,
/// as a crash or an OOM kill would. Used by the crash tests.
#[cfg(feature = "test-hooks")]
pub const CRASH_HOOK_ENV: &str = "CONSUMPTION_METRICS_CRASH_AFTER_PUBLISH";

/// The hour after which the test hook aborts; always `None` without the feature.
fn crash_after() -> Option<usize> {
    #[cfg(feature = "test-hooks")]
    {
        std::env::var(CRASH_HOOK_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        None
    }
}

/// What a run did, step by step; complete after a success, up to the failure otherwise.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Hours the plan held.
    pub planned: usize,
    /// Hours collected and delivered (printed, or acknowledged by Kafka).
    pub hours: usize,
    /// Hours acknowledged by Kafka.
    pub published: usize,
    /// Messages delivered (parts included).
    pub messages: usize,
    /// Bytes of JSON payload delivered.
    pub bytes: u64,
    /// Time spent collecting from Prometheus (and shaping).
    pub collect: Duration,
    /// Time spent delivering (Kafka: until every acknowledgement).
    pub deliver: Duration,
    /// Time spent reading and writing the checkpoint.
    pub checkpoint: Duration,
    /// The engine's window semantics, once measured.
    pub windows: Option<Windows>,
    /// The checkpoint's value after the run (end of the last hour fully published), when the
    /// run reads or writes it.
    pub checkpoint_end: Option<DateTime<Utc>>,
    /// Prometheus requests sent (retries included) and the time they took.
    pub prometheus_requests: u64,
    pub prometheus_time: Duration,
}

pub struct Manager {
    config: Config,
    prometheus: Prometheus,
    checkpoint: Checkpoint,
    sink: Option<Sink>,
    report: RunReport,
}

/// The checkpoint store `config` names: a file, or a ConfigMap through the pod's service
/// account (or KUBECONFIG).
pub async fn checkpoint_store(config: &CheckpointConfig) -> Result<Checkpoint> {
    Ok(match config {
        CheckpointConfig::File(path) => Checkpoint::File(FileCheckpoint::new(path)),
        CheckpointConfig::ConfigMap { name, namespace } => {
            let client = kube::Client::try_default().await.map_err(|e| {
                crate::checkpoint::CheckpointError::Client {
                    location: format!("checkpoint ConfigMap {name}"),
                    reason: e.to_string(),
                }
            })?;
            let namespace = namespace
                .clone()
                .or_else(configmap::pod_namespace)
                .unwrap_or_else(|| client.default_namespace().to_string());
            Checkpoint::ConfigMap(Box::new(ConfigMapCheckpoint::new(client, &namespace, name)))
        }
    })
}

impl Manager {
    pub async fn new(config: Config) -> Result<Self> {
        let prometheus = Prometheus::new(&config.prometheus)?;
        let checkpoint = checkpoint_store(&config.checkpoint).await?;
        Ok(Self::with_checkpoint(config, prometheus, checkpoint))
    }

    /// Wiring with an explicit checkpoint store (tests use a scripted Kubernetes API).
    pub fn with_checkpoint(config: Config, prometheus: Prometheus, checkpoint: Checkpoint) -> Self {
        Self {
            config,
            prometheus,
            checkpoint,
            sink: None,
            report: RunReport::default(),
        }
    }

    /// What the run did so far: everything after a success, up to the failure otherwise.
    pub fn report(&self) -> RunReport {
        let (requests, time) = self.prometheus.requests();
        RunReport {
            prometheus_requests: requests,
            prometheus_time: time,
            ..self.report.clone()
        }
    }

    /// The Prometheus client of this run (its request counters).
    pub fn prometheus(&self) -> &Prometheus {
        &self.prometheus
    }

    /// The hours to bill, and the checkpoint's next hour when this run may advance it.
    async fn plan(&mut self) -> Result<(Vec<HourWindow>, Option<HourWindow>)> {
        let c = &self.config;
        let (now, settle, cap) = (c.now, c.settle_delay, c.max_hours_per_run);
        match &c.plan {
            Plan::Backfill(hours) => {
                let next = if c.moves_checkpoint() {
                    self.checkpoint.load(now).await?
                } else {
                    None
                };
                Ok((hours.clone(), next))
            }
            Plan::Scheduled => {
                let start_from = c.start_from;
                match self.checkpoint.load(now).await? {
                    Some(next) => Ok((window::plan_scheduled(next, now, settle, cap), Some(next))),
                    None => {
                        let hours = match start_from {
                            Some(first) => window::plan_scheduled(first, now, settle, cap),
                            None => window::plan_first_run(now, settle),
                        };
                        info!(
                            checkpoint = %self.checkpoint.describe(),
                            first = hours.first().map(|h| h.to_string()).unwrap_or_default(),
                            "no checkpoint yet: first run (see --start-from)"
                        );
                        Ok((hours.clone(), hours.first().copied()))
                    }
                }
            }
        }
    }

    /// Run the pipeline: plan, prepare, then collect → shape → deliver → advance hour by hour.
    #[instrument(skip_all, fields(cluster = %self.config.message.cluster_name))]
    pub async fn run(&mut self) -> Result<RunReport> {
        let started = Instant::now();
        let (hours, mut next) = self.plan().await?;
        self.report.checkpoint += started.elapsed();
        self.report.checkpoint_end = next.map(|n| n.start());
        self.report.planned = hours.len();
        let Some(first) = hours.first().copied() else {
            info!("nothing to do: every settled hour is already published");
            return Ok(self.report());
        };
        info!(first = %first, count = hours.len(), "planned hours");
        self.prepare().await?;
        let crash_after = crash_after();

        let collector =
            Collector::connect(&self.prometheus, &self.config.collect, first.end()).await?;
        self.report.windows = Some(collector.windows());
        let cluster = self.config.message.cluster_name.clone();
        for span in collector.spans(&hours) {
            let collecting = Instant::now();
            let usage = collector.collect_span(&span).await?;
            self.report.collect += collecting.elapsed();
            for hour in usage {
                let shaping = Instant::now();
                let messages = message::shape(&hour, &self.config.message)?;
                self.report.collect += shaping.elapsed();

                let delivering = Instant::now();
                let sink = self.sink.as_mut().ok_or_else(|| {
                    Error::Internal("the sink was not prepared before delivering".into())
                })?;
                let delivered = sink.deliver(&cluster, &hour.window, &messages).await?;
                let durable = sink.is_durable();
                self.report.deliver += delivering.elapsed();
                self.report.hours += 1;
                self.report.messages += delivered.messages;
                self.report.bytes += delivered.bytes;
                if !durable {
                    info!(hour = %hour.window, namespaces = hour.namespaces.len(), parts = messages.len(), "hour collected");
                    continue;
                }
                info!(hour = %hour.window, namespaces = hour.namespaces.len(), parts = messages.len(), bytes = delivered.bytes, "hour published and acknowledged");
                self.report.published += 1;
                if crash_after == Some(self.report.published) {
                    warn!("test hook: aborting before the checkpoint moves");
                    std::process::abort();
                }
                let advancing = Instant::now();
                next = advance(&mut self.checkpoint, &self.config, next, hour.window).await?;
                self.report.checkpoint += advancing.elapsed();
                self.report.checkpoint_end = next.map(|n| n.start());
            }
        }
        Ok(self.report())
    }

    /// Everything that could fail before anything is sent fails now: the sink connects (TLS
    /// files, brokers, topic) and the checkpoint proves writable.
    async fn prepare(&mut self) -> Result<()> {
        let sink = match &self.config.output {
            Output::DryRun => Sink::Stdout(Spool::new()?),
            Output::Publish(settings) => Sink::Kafka(Box::new(Publisher::connect(settings).await?)),
        };
        self.sink = Some(sink);
        if self.config.moves_checkpoint() {
            let preparing = Instant::now();
            self.checkpoint.prepare().await?;
            self.report.checkpoint += preparing.elapsed();
        }
        Ok(())
    }

    /// End a successful run: a dry-run prints its messages on `out`.
    pub fn finish(&mut self, out: &mut dyn std::io::Write) -> Result<()> {
        match self.sink.take() {
            Some(sink) => sink.finish(out),
            // Nothing was planned: a dry-run still prints an (empty) array.
            None if matches!(self.config.output, Output::DryRun) => {
                Spool::new()?.print(out).map_err(Error::from)
            }
            None => Ok(()),
        }
    }
}

/// Move the checkpoint past `hour` if it continues it without a gap; returns the new next
/// hour. A scheduled run always continues it; a backfill only with --advance-checkpoint.
async fn advance(
    checkpoint: &mut Checkpoint,
    config: &Config,
    next: Option<HourWindow>,
    hour: HourWindow,
) -> Result<Option<HourWindow>> {
    if !config.moves_checkpoint() {
        return Ok(next);
    }
    let scheduled = config.plan == Plan::Scheduled;
    match next {
        // A backfill over a fresh checkpoint (no value yet) starts it.
        None if !scheduled => {}
        Some(n) if n == hour => {}
        Some(n) if n > hour => return Ok(next),
        _ => {
            warn!(
                hour = %hour,
                checkpoint = next.map(|n| rfc3339(n.start())).unwrap_or_default(),
                "not advancing the checkpoint: this hour does not continue it"
            );
            return Ok(next);
        }
    }
    let end: DateTime<Utc> = hour.end();
    checkpoint.advance(end, config.now).await?;
    info!(checkpoint = %rfc3339(end), store = %checkpoint.describe(), "checkpoint advanced");
    Ok(Some(hour.next()))
}
