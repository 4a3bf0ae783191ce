//! The Manager sequences one run: load the checkpoint, plan the hours, collect, shape, and
//! hand the messages to the output.

use tracing::{info, instrument};

use crate::checkpoint::FileCheckpoint;
use crate::collector::Collector;
use crate::config::{Config, Output, Plan};
use crate::message::{self, KafkaMessage};
use crate::prometheus::Prometheus;
use crate::window::{self, HourWindow};
use crate::{Error, Result};

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Hours collected.
    pub hours: usize,
    /// Messages shaped (several per hour when an hour is split).
    pub messages: Vec<KafkaMessage>,
}

pub struct Manager {
    config: Config,
    prometheus: Prometheus,
    checkpoint: FileCheckpoint,
}

impl Manager {
    pub fn new(config: Config) -> Result<Self> {
        let prometheus = Prometheus::new(&config.prometheus)?;
        let checkpoint = FileCheckpoint::new(&config.checkpoint_file);
        Ok(Self {
            config,
            prometheus,
            checkpoint,
        })
    }

    /// Which hours this run covers.
    fn plan(&self) -> Result<Vec<HourWindow>> {
        let c = &self.config;
        Ok(match &c.plan {
            Plan::Backfill(hours) => hours.clone(),
            Plan::Scheduled => match self.checkpoint.load(c.now)? {
                Some(next) => {
                    window::plan_scheduled(next, c.now, c.settle_delay, c.max_hours_per_run)
                }
                None => {
                    info!(
                        file = %self.checkpoint.path().display(),
                        "no checkpoint yet: first run bills only the last complete hour"
                    );
                    window::plan_first_run(c.now, c.settle_delay)
                }
            },
        })
    }

    /// Run the pipeline. In a dry-run the messages are returned for printing; nothing is
    /// written anywhere.
    #[instrument(skip_all, fields(cluster = %self.config.message.cluster_name))]
    pub async fn run(&self) -> Result<RunReport> {
        let hours = self.plan()?;
        if hours.is_empty() {
            info!("nothing to do: every settled hour is already published");
            return Ok(RunReport::default());
        }
        info!(
            first = %hours[0],
            count = hours.len(),
            "planned hours"
        );
        let collector = Collector::new(&self.prometheus, &self.config.collect);
        let mut report = RunReport::default();
        for span in collector.spans(&hours) {
            for hour in collector.collect_span(&span).await? {
                let messages = message::shape(&hour, &self.config.message)?;
                info!(
                    hour = %hour.window,
                    namespaces = hour.namespaces.len(),
                    parts = messages.len(),
                    "hour collected"
                );
                match self.config.output {
                    Output::DryRun => report.messages.extend(messages),
                    Output::Publish => return Err(Error::Unsupported("publishing".into())),
                }
                report.hours += 1;
            }
        }
        Ok(report)
    }
}
