//! `check`'s configuration: a dry-run's, the Kafka settings when given, and its deadline.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Config, Result, invalid, kafka_settings, parse_duration};
use crate::kafka::KafkaSettings;

/// `check`'s report format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
}

/// The validated configuration of `consumption-metrics check`: a dry-run's configuration, and
/// the Kafka settings when given.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub config: Config,
    pub kafka: Option<KafkaSettings>,
    pub format: CheckFormat,
    /// How long the store's checks may take together (`--deadline`).
    pub deadline: Duration,
}

impl CheckConfig {
    /// Validate `check` arguments: a dry-run's configuration (nothing is published), and the
    /// Kafka settings when --kafka-brokers is given.
    pub fn from_args(args: &crate::cli::CheckArgs, system_now: DateTime<Utc>) -> Result<Self> {
        let mut dry = args.run.clone();
        dry.dry_run = true;
        let config = Config::from_args(&dry, system_now)?;
        let kafka = match args.run.kafka_brokers {
            Some(_) => Some(kafka_settings(&args.run, false)?),
            None => None,
        };
        let deadline = parse_duration("--deadline", &args.deadline)?;
        if deadline < Duration::from_secs(10) {
            return Err(invalid(
                "--deadline",
                &args.deadline,
                "give at least 10s, e.g. 5m",
            ));
        }
        Ok(Self {
            config,
            kafka,
            deadline,
            format: match args.output {
                crate::cli::CheckOutput::Text => CheckFormat::Text,
                crate::cli::CheckOutput::Json => CheckFormat::Json,
            },
        })
    }
}
