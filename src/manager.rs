//! The Manager sequences one run: plan the hours from the checkpoint, prepare (the sink
//! connects, the checkpoint proves writable, the engine's windows are measured), then for each
//! hour, oldest first: collect, shape, deliver (Kafka: every acknowledgement awaited), advance
//! the checkpoint. The first failure stops the run; the checkpoint stays at the last hour that
//! was fully acknowledged. [`RunReport`] says what the run did, also when it failed.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, instrument, warn};

use crate::Result;
use crate::checkpoint::{Checkpoint, Cursor, Plan};
use crate::collector::{Collected, Collector, Waiting};
use crate::config::Config;
use crate::kafka::Publisher;
use crate::message::{self, KafkaMessage};
use crate::prometheus::Prometheus;
pub use crate::report::RunReport;
use crate::sink::{Output, Sink, Spool};
use crate::usage::HourUsage;
use crate::window::{self, HourWindow};

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

pub struct Manager {
    config: Config,
    prometheus: Arc<Prometheus>,
    cursor: Cursor,
    report: RunReport,
    /// The test hook's hour, read once ([`crash_after`]).
    crash_after: Option<usize>,
}

impl Manager {
    pub async fn new(config: Config) -> Result<Self> {
        let prometheus = Prometheus::new(&config.prometheus)?;
        let checkpoint = Checkpoint::open(&config.checkpoint).await?;
        Ok(Self::with_checkpoint(config, prometheus, checkpoint))
    }

    /// Wiring with an explicit checkpoint store (tests use a scripted Kubernetes API).
    pub fn with_checkpoint(config: Config, prometheus: Prometheus, checkpoint: Checkpoint) -> Self {
        let publishing = matches!(config.output, Output::Publish(_));
        let cursor = Cursor::new(checkpoint, config.plan.clone(), config.reach(), publishing);
        Self {
            config,
            prometheus: Arc::new(prometheus),
            cursor,
            report: RunReport::default(),
            crash_after: crash_after(),
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

    /// [`Manager::run_into`] stdout.
    pub async fn run(&mut self) -> Result<RunReport> {
        self.run_into(&mut std::io::stdout()).await
    }

    /// Run the pipeline: plan → prepare → for each hour: collect, shape, deliver, advance. A
    /// dry-run prints its messages on `out` as one JSON array once every hour is collected
    /// (nothing after an error).
    #[instrument(skip_all, fields(cluster = %self.config.message.cluster_name))]
    pub async fn run_into(&mut self, out: &mut dyn std::io::Write) -> Result<RunReport> {
        let hours = self.plan().await?;
        let Some(&first) = hours.first() else {
            info!("nothing to do: every settled hour is already published");
            if matches!(self.config.output, Output::DryRun) {
                // A dry-run still prints an (empty) array.
                Spool::new()?.print(out)?;
            }
            return Ok(self.report());
        };
        info!(first = %first, count = hours.len(), "planned hours");
        let mut sink = self.prepare().await?;
        // The collector borrows these while the steps below update the run's state.
        let (prometheus, settings) = (self.prometheus.clone(), self.config.collect.clone());
        let collector = Collector::connect(&prometheus, &settings, first.end()).await?;
        self.report.windows = Some(collector.windows());
        for span in window::spans(&hours, settings.hours_per_query) {
            let collected = self.collect(&collector, &span).await?;
            self.report.gpu_dra_pods = self.report.gpu_dra_pods.max(collected.dra_unseen.len());
            self.report.pods_requests_unseen = collected.requests_unseen;
            for hour in collected.usage.hours() {
                let messages = self.shape(&hour)?;
                self.deliver(&mut sink, &hour, &messages).await?;
                self.advance(hour.window).await?;
            }
            if let Some(refusal) = collected.refused {
                return Err(refusal.into());
            }
            if let Some(waiting) = collected.waiting {
                self.wait(&hours, &waiting)?;
                break;
            }
        }
        sink.finish(out)?;
        Ok(self.report())
    }

    /// The store does not hold `waiting`'s hour in full yet: the hours before it are billed.
    /// A scheduled run that publishes has done all it can (a routine lag must not fail the
    /// Job nor trigger its retries): it says so and ends well, and the next run bills the
    /// hour. A dry-run or a backfill was asked for that hour, so it is refused
    /// ([`crate::exit::INCOMPLETE`]).
    fn wait(&mut self, planned: &[HourWindow], waiting: &Waiting) -> Result<()> {
        let left = planned.iter().filter(|h| **h >= waiting.hour).count();
        self.report.waiting = Some(crate::report::Waiting {
            hour_end: waiting.hour.end(),
            hours: left,
            newest: waiting
                .newest
                .and_then(chrono::DateTime::from_timestamp_millis),
            source: waiting.source.clone(),
        });
        let scheduled = matches!(self.config.plan, Plan::Scheduled { .. });
        if !(scheduled && matches!(self.config.output, Output::Publish(_))) {
            return Err(waiting.refusal().into());
        }
        info!(
            hour = %waiting.hour,
            source = %waiting.source,
            newest = %waiting.newest_text(),
            lag = %waiting.lag().map(|l| humantime::format_duration(std::time::Duration::from_secs(l.as_secs())).to_string()).unwrap_or_else(|| "unknown".into()),
            hours_waiting = left,
            "the store does not hold this hour in full yet (remote write lags); it is not \
             billed now and the checkpoint stays before it: the next run bills it"
        );
        Ok(())
    }

    /// The hours to bill, from the plan and the checkpoint.
    async fn plan(&mut self) -> Result<Vec<HourWindow>> {
        let reading = Instant::now();
        let hours = self.cursor.hours().await?;
        self.report.checkpoint += reading.elapsed();
        self.report.checkpoint_end = self.cursor.value();
        self.report.planned = hours.len();
        Ok(hours)
    }

    /// One span of hours from Prometheus (one set of range queries), up to the first hour the
    /// store does not hold in full.
    async fn collect(
        &mut self,
        collector: &Collector<'_>,
        span: &[HourWindow],
    ) -> Result<Collected> {
        let collecting = Instant::now();
        let usage = collector.collect_span(span).await?;
        self.report.collect += collecting.elapsed();
        Ok(usage)
    }

    /// The hour's messages, checked against the contract.
    fn shape(&mut self, hour: &HourUsage) -> Result<Vec<KafkaMessage>> {
        let shaping = Instant::now();
        let messages = message::shape(hour, &self.config.message)?;
        self.report.collect += shaping.elapsed();
        Ok(messages)
    }

    /// Print the hour (dry-run) or publish it and await every acknowledgement.
    async fn deliver(
        &mut self,
        sink: &mut Sink,
        hour: &HourUsage,
        messages: &[KafkaMessage],
    ) -> Result<()> {
        let delivering = Instant::now();
        let delivered = sink
            .deliver(&self.config.message.cluster_name, &hour.window, messages)
            .await?;
        let durable = sink.is_durable();
        self.report.deliver += delivering.elapsed();
        self.report.hours += 1;
        self.report.messages += delivered.messages;
        self.report.bytes += delivered.bytes;
        if durable {
            self.report.published += 1;
            info!(hour = %hour.window, namespaces = hour.namespaces.len(), parts = messages.len(), bytes = delivered.bytes, "hour published and acknowledged");
        } else {
            info!(hour = %hour.window, namespaces = hour.namespaces.len(), parts = messages.len(), "hour collected");
        }
        Ok(())
    }

    /// Move the checkpoint past a delivered hour (the cursor decides whether this run may).
    async fn advance(&mut self, hour: HourWindow) -> Result<()> {
        if self.report.published > 0 && self.crash_after == Some(self.report.published) {
            warn!("test hook: aborting before the checkpoint moves");
            std::process::abort();
        }
        let advancing = Instant::now();
        self.cursor.advance_past(hour).await?;
        self.report.checkpoint += advancing.elapsed();
        self.report.checkpoint_end = self.cursor.value();
        Ok(())
    }

    /// Everything that could fail before anything is sent fails now: the sink connects (TLS
    /// files, brokers, topic) and the checkpoint proves writable.
    async fn prepare(&mut self) -> Result<Sink> {
        let sink = match &self.config.output {
            Output::DryRun => Sink::Stdout(Spool::new()?),
            Output::Publish(settings) => Sink::Kafka(Box::new(Publisher::connect(settings).await?)),
        };
        let preparing = Instant::now();
        self.cursor.prepare().await?;
        self.report.checkpoint += preparing.elapsed();
        Ok(sink)
    }
}
