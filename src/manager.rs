//! The Manager sequences one run: load the checkpoint, plan the hours, then for each hour,
//! oldest first: collect, shape, publish and await every acknowledgement, advance the
//! checkpoint. The first failure stops the run; the checkpoint stays at the last hour that was
//! fully acknowledged.

use chrono::{DateTime, Utc};
use tracing::{info, instrument, warn};

use crate::checkpoint::{Checkpoint, ConfigMapCheckpoint, FileCheckpoint, configmap};
use crate::collector::Collector;
use crate::config::{CheckpointConfig, Config, Output, Plan};
use crate::kafka::Publisher;
use crate::message::{self, KafkaMessage};
use crate::prometheus::Prometheus;
use crate::window::{self, HourWindow, rfc3339};
use crate::{Error, Result};

/// Test hook: abort the process right after the N-th hour was acknowledged by Kafka and before
/// the checkpoint moves, as a crash or an OOM kill would. Used by the crash tests.
pub const CRASH_HOOK_ENV: &str = "CONSUMPTION_METRICS_CRASH_AFTER_PUBLISH";

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Hours collected.
    pub hours: usize,
    /// Hours published and checkpointed.
    pub published: usize,
    /// The messages of a dry-run.
    pub messages: Vec<KafkaMessage>,
}

pub struct Manager {
    config: Config,
    prometheus: Prometheus,
    checkpoint: Checkpoint,
}

async fn checkpoint_store(config: &CheckpointConfig) -> Result<Checkpoint> {
    Ok(match config {
        CheckpointConfig::File(path) => Checkpoint::File(FileCheckpoint::new(path)),
        CheckpointConfig::ConfigMap { name, namespace } => {
            let client = kube::Client::try_default().await.map_err(|e| {
                Error::Kubernetes(format!(
                    "could not configure a Kubernetes client for the ConfigMap checkpoint {name}: \
                     {e}; run in a pod with a service account, or set KUBECONFIG"
                ))
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
        }
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

    /// Run the pipeline.
    #[instrument(skip_all, fields(cluster = %self.config.message.cluster_name))]
    pub async fn run(&mut self) -> Result<RunReport> {
        let (hours, mut next) = self.plan().await?;
        let mut report = RunReport::default();
        let Some(first) = hours.first() else {
            info!("nothing to do: every settled hour is already published");
            return Ok(report);
        };
        info!(first = %first, count = hours.len(), "planned hours");
        let publisher = match &self.config.output {
            Output::DryRun => None,
            Output::Publish(settings) => Some(Publisher::connect(settings).await?),
        };
        // Whatever would keep the checkpoint from being written fails now, before any send.
        if self.config.moves_checkpoint() {
            self.checkpoint.prepare().await?;
        }
        let crash_after = std::env::var(CRASH_HOOK_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok());

        let collector =
            Collector::connect(&self.prometheus, &self.config.collect, first.end()).await?;
        for span in collector.spans(&hours) {
            for hour in collector.collect_span(&span).await? {
                let messages = message::shape(&hour, &self.config.message)?;
                report.hours += 1;
                let Some(publisher) = &publisher else {
                    info!(hour = %hour.window, namespaces = hour.namespaces.len(), parts = messages.len(), "hour collected");
                    report.messages.extend(messages);
                    continue;
                };
                publisher
                    .publish_hour(&self.config.message.cluster_name, &hour.window, &messages)
                    .await?;
                info!(hour = %hour.window, namespaces = hour.namespaces.len(), parts = messages.len(), "hour published and acknowledged");
                if crash_after == Some(report.published + 1) {
                    warn!("{CRASH_HOOK_ENV}: aborting before the checkpoint moves");
                    std::process::abort();
                }
                next = advance(&mut self.checkpoint, &self.config, next, hour.window).await?;
                report.published += 1;
            }
        }
        if let Some(p) = &publisher {
            p.flush();
        }
        Ok(report)
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
