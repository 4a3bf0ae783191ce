//! `audit`'s configuration: the hours, the topic, and with `--recompute` a dry-run's settings.

use chrono::{DateTime, Utc};

use super::{AuditFormat, AuditSettings, Recompute};
use crate::cli::AuditArgs;
use crate::config::{
    Config, ConfigError, Result, cluster_name, kafka_settings, message_config, now, parse_time,
    settle_delay,
};
use crate::window;

/// Hours an audit may cover: a year. Only ids, part numbers and digests are kept per hour.
const AUDIT_MAX_HOURS: u32 = 366 * 24;

/// The validated configuration of `consumption-metrics audit`.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub audit: AuditSettings,
    pub format: AuditFormat,
    /// `--recompute`: the settings of a dry-run over the audited hours, whose messages are
    /// compared with the topic's.
    pub recompute: Option<Box<Recompute>>,
}

impl AuditConfig {
    /// Validate `audit` arguments against the clock `system_now` (ignored with `--now`).
    pub fn from_args(args: &AuditArgs, system_now: DateTime<Utc>) -> Result<Self> {
        let run = &args.run;
        let (Some(since), Some(until)) = (&run.since, &run.until) else {
            return Err(ConfigError::Usage(
                "audit needs --since and --until: the hours [since, until) to check".into(),
            ));
        };
        if run.dry_run {
            return Err(ConfigError::Usage(
                "audit reads the topic; --dry-run does not apply to it".into(),
            ));
        }
        let now = now(run, system_now)?;
        let settle = settle_delay(run)?;
        let hours = window::plan_backfill(
            parse_time("--since", since)?,
            parse_time("--until", until)?,
            now,
            settle,
            AUDIT_MAX_HOURS,
        )?;
        let cluster = cluster_name(run)?;
        let message = message_config(run, &cluster)?;
        let kafka = kafka_settings(run, true)?;
        let recompute = if args.recompute {
            // The same settings as a dry-run over those hours: only its hours differ, and
            // --max-hours-per-run does not limit an audit.
            let mut dry = run.clone();
            dry.dry_run = true;
            dry.since = None;
            dry.until = None;
            let config = Config::from_args(&dry, system_now)?;
            Some(Box::new(Recompute {
                prometheus: config.prometheus,
                collect: config.collect,
                message: config.message,
            }))
        } else {
            None
        };
        Ok(AuditConfig {
            audit: AuditSettings {
                message,
                hours,
                kafka,
                from_earliest: args.from_earliest,
            },
            format: match args.output {
                crate::cli::AuditOutput::Text => AuditFormat::Text,
                crate::cli::AuditOutput::Json => AuditFormat::Json,
            },
            recompute,
        })
    }
}
