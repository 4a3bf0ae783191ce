//! Parse, then validate: the raw [`Args`] become a typed [`Config`] or a usage error that says
//! which flag was wrong and how to fix it.
//!
//! Names say whose a setting is: a component's own settings are its `*Settings`, defined in
//! its module (`PrometheusSettings`, `CollectSettings`, `KafkaSettings`, …); a command's whole
//! validated configuration, built from them, is a `*Config`: [`Config`] for a run, here; the
//! other commands' beside them (`audit::AuditConfig`, `check::CheckConfig`,
//! `operator::CheckpointCommandConfig`), from the parsers and settings here.

mod parse;
mod settings;
mod summary;

pub use parse::*;
pub use settings::*;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::checkpoint::{CheckpointSettings, Plan, Reach};
use crate::cli::{Args, Flavor, WindowSemantics};
use crate::collector::CollectSettings;
use crate::kafka::{KafkaSettings, TlsFiles, Transport, settings::parse_properties};
use crate::message::MessageSettings;
use crate::prometheus::PrometheusSettings;
use crate::scope::Scope;
use crate::sink::Output;
use crate::usage::Tier;
use crate::window::{self, HourWindow, WindowError};

/// A usage error: the command line or environment asks for something impossible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {flag} {value:?}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The whole validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub plan: Plan,
    pub output: Output,
    pub now: DateTime<Utc>,
    pub settle_delay: Duration,
    pub max_hours_per_run: u32,
    pub checkpoint: CheckpointSettings,
    pub prometheus: PrometheusSettings,
    pub prometheus_flavor: Flavor,
    pub collect: CollectSettings,
    pub message: MessageSettings,
    /// Where the run's own metrics go, if anywhere.
    pub pushgateway: Option<crate::pushgateway::PushSettings>,
}

impl Config {
    /// Validate `args` against the clock `system_now` (ignored when `--now` is given).
    pub fn from_args(args: &Args, system_now: DateTime<Utc>) -> Result<Self> {
        let now = now(args, system_now)?;
        let settle_delay = settle_delay(args)?;
        max_hours_per_run(args)?;
        // Validated whatever the plan, so that a wrong value in the CronJob's settings shows
        // on a manual backfill too.
        let plan = plan(args, now, settle_delay)?;
        let output = if args.dry_run {
            Output::DryRun
        } else {
            Output::Publish(kafka_settings(args, false)?)
        };
        let checkpoint = checkpoint_config(args);
        let cluster_name = cluster_name(args)?;
        let message = message_config(args, &cluster_name)?;
        let prometheus = prometheus_settings(args)?;
        Ok(Config {
            plan,
            output,
            now,
            settle_delay,
            max_hours_per_run: args.max_hours_per_run,
            checkpoint,
            prometheus,
            prometheus_flavor: args.prometheus_flavor,
            collect: collect_settings(args, now)?,
            message,
            pushgateway: pushgateway_settings(args, &cluster_name)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec![
            "consumption-metrics",
            "--prometheus-url",
            "http://127.0.0.1:9090",
            "--cluster-name",
            "c1",
            "--dry-run",
        ];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }
    fn now() -> DateTime<Utc> {
        parse_time("x", "2026-11-22T12:00:00Z").unwrap()
    }

    /// Found by the cli_values fuzz target: humantime panicked on this; now a usage error.
    #[test]
    fn huge_durations_are_refused_not_panicked_on() {
        for raw in [
            "18446744073709551615s000.00s",
            "99999999999999h",
            &"1s".repeat(40),
        ] {
            let e = parse_duration("--settle-delay", raw).unwrap_err();
            assert!(e.to_string().contains("--settle-delay"), "{e}");
        }
        assert_eq!(
            parse_duration("--x", "9999999999s").unwrap().as_secs(),
            9_999_999_999
        );
    }

    #[test]
    fn storage_tiers_from_flags() {
        let c = Config::from_args(
            &args(&[
                "--storage-tier",
                "gold=premium",
                "--storage-tier",
                "nfs=Basic",
            ]),
            now(),
        )
        .unwrap();
        assert_eq!(c.collect.storage_tiers.get("gold"), Some(&Tier::Premium));
        assert_eq!(c.collect.storage_tiers.get("nfs"), Some(&Tier::Basic));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = Config::from_args(&args(&["--storage-tier", "gold=platinum"]), now()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid --storage-tier \"gold=platinum\""),
            "{e}"
        );
        let e =
            Config::from_args(&args(&["--since", "yesterday", "--until", "x"]), now()).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid --since \"yesterday\""),
            "{e}"
        );
        let e = Config::from_args(&args(&["--settle-delay", "ten"]), now()).unwrap_err();
        assert!(e.to_string().contains("--settle-delay"), "{e}");
        let e = Config::from_args(&args(&["--prometheus-header", "novalue"]), now()).unwrap_err();
        assert!(e.to_string().contains("NAME=VALUE"), "{e}");
        for (selector, says) in [
            ("cluster=east", "must be quoted"),
            (r#"cluster=~"(east""#, "does not compile"),
        ] {
            let e =
                Config::from_args(&args(&["--prometheus-selector", selector]), now()).unwrap_err();
            assert!(matches!(e, ConfigError::Usage(_)), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("invalid --prometheus-selector") && text.contains(says),
                "{text}"
            );
        }
        let c = Config::from_args(
            &args(&["--prometheus-selector", r#"cluster="east""#]),
            now(),
        )
        .unwrap();
        assert_eq!(c.prometheus.scope.to_string(), r#"cluster="east""#);
        for label in ["", "1x", "__cluster", "a-b"] {
            let e = Config::from_args(&args(&["--cluster-label", label]), now()).unwrap_err();
            assert!(e.to_string().contains("--cluster-label"), "{e}");
        }
    }

    #[test]
    fn backfill_plan_uses_now_flag() {
        let c = Config::from_args(
            &args(&[
                "--since",
                "2026-11-01T00:00:00Z",
                "--until",
                "2026-11-01T03:00:00Z",
                "--now",
                "2026-11-01T03:10:00Z",
            ]),
            now(),
        )
        .unwrap();
        match c.plan {
            Plan::Backfill { hours, .. } => assert_eq!(hours.len(), 3),
            other => panic!("unexpected plan {other:?}"),
        }
    }
}
