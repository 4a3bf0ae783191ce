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
        let start_from = match &args.start_from {
            None => None,
            Some(raw) => {
                let t = parse_time("--start-from", raw)?;
                Some(HourWindow::starting_at(t, "--start-from")?)
            }
        };
        let plan = match (&args.since, &args.until) {
            (Some(since), Some(until)) => Plan::Backfill {
                hours: window::plan_backfill(
                    parse_time("--since", since)?,
                    parse_time("--until", until)?,
                    now,
                    settle_delay,
                    args.max_hours_per_run,
                )?,
                advance_checkpoint: args.advance_checkpoint,
            },
            (None, None) => Plan::Scheduled { start_from },
            _ => {
                return Err(ConfigError::Usage(
                    "--since and --until go together; give both for a backfill, or neither for \
                     a scheduled run"
                        .into(),
                ));
            }
        };
        let output = if args.dry_run {
            Output::DryRun
        } else {
            Output::Publish(kafka_settings(args, false)?)
        };
        let checkpoint = checkpoint_config(args);
        let cluster_name = cluster_name(args)?;
        let message = message_config(args, &cluster_name)?;
        if !(1..=24).contains(&args.hours_per_query) {
            return Err(invalid(
                "--hours-per-query",
                &args.hours_per_query.to_string(),
                "must be between 1 and 24",
            ));
        }

        let scrape_interval = match args.scrape_interval.trim() {
            "auto" => None,
            raw => {
                let d = parse_duration("--scrape-interval", raw)?;
                if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                    return Err(invalid(
                        "--scrape-interval",
                        raw,
                        "must be between 1s and 1h, or auto",
                    ));
                }
                Some(d)
            }
        };
        // An empty list would bill kube-* and openshift-* without a word: "exclude nothing"
        // must be said with `none`.
        let patterns: Vec<&String> = args
            .exclude_namespaces
            .iter()
            .filter(|p| !p.trim().is_empty())
            .collect();
        if patterns.is_empty() {
            return Err(invalid(
                "--exclude-namespaces",
                &args.exclude_namespaces.join(","),
                "is empty, which would bill the system namespaces; give glob patterns (default \
                 kube-*,openshift-*), or `none` to bill every namespace",
            ));
        }
        let exclude_namespaces = patterns
            .into_iter()
            .filter(|p| p.trim() != "none")
            .map(|p| {
                glob::Pattern::new(p.trim())
                    .map_err(|e| invalid("--exclude-namespaces", p, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;

        let timeout = parse_duration("--prometheus-timeout", &args.prometheus_timeout)?;
        let mut headers = parse_headers(&args.prometheus_headers)?;
        headers.extend(parse_header_files(&args.prometheus_header_files)?);
        if timeout.is_zero() {
            return Err(invalid(
                "--prometheus-timeout",
                &args.prometheus_timeout,
                "must be > 0",
            ));
        }

        Ok(Config {
            plan,
            output,
            now,
            settle_delay,
            max_hours_per_run: args.max_hours_per_run,
            checkpoint,
            prometheus: PrometheusSettings {
                url: parse_http_url(
                    "--prometheus-url",
                    args.prometheus_url
                        .as_deref()
                        .ok_or_else(|| {
                            ConfigError::Usage(
                        "--prometheus-url (or PROMETHEUS_URL) is required: the base URL of the \
                         Prometheus HTTP API, for example http://prometheus:9090"
                            .into(),
                    )
                        })?
                        .trim(),
                    "http://prometheus:9090",
                )?,
                bearer_token_file: args.prometheus_bearer_token_file.clone(),
                ca_file: args.prometheus_ca.clone(),
                client_cert: args
                    .prometheus_cert
                    .clone()
                    .zip(args.prometheus_key.clone()),
                extra_params: flavor_params(args, &headers)?,
                headers,
                timeout,
                retries: args.prometheus_retries,
                allow_partial_data: args.allow_partial_data,
                max_response_bytes: max_response_bytes(args)?,
                scope: match args.prometheus_selector.as_deref().map(str::trim) {
                    None | Some("") => Scope::default(),
                    Some(raw) => Scope::parse(raw).map_err(|reason| {
                        ConfigError::Usage(format!(
                            "invalid --prometheus-selector: {reason}; give label matchers in \
                             PromQL syntax, e.g. cluster=\"east\" or \
                             cluster=\"east\",prometheus_replica=~\".+\""
                        ))
                    })?,
                },
                provenance: crate::provenance::Provenance::parse(
                    Some(&args.kube_state_metrics_selector),
                    Some(&args.cadvisor_selector),
                    Some(&args.dcgm_exporter_selector),
                    Some(&args.scheduler_selector),
                )
                .map_err(ConfigError::Usage)?,
            },
            prometheus_flavor: args.prometheus_flavor,
            collect: CollectSettings {
                cluster_label: cluster_label(&args.cluster_label)?,
                cpu_basis: args.cpu_basis,
                bill_memory: args.bill_memory,
                request_model: request_model(args)?,
                fallen_counters: args.fallen_counters,
                windows: match args.window_semantics {
                    WindowSemantics::Auto => None,
                    WindowSemantics::Closed => Some(crate::queries::Windows::Closed),
                    WindowSemantics::LeftOpen => Some(crate::queries::Windows::LeftOpen),
                },
                scrape_interval,
                hours_per_query: args.hours_per_query as usize,
                storage_tiers: parse_tiers(&args.storage_tiers)?,
                exclude_namespaces,
                gpu_weights: crate::gpu::GpuWeights::parse(&args.gpu_resources).map_err(
                    |reason| ConfigError::Usage(format!("invalid --gpu-resource {reason}")),
                )?,
                gpu_source: args.gpu_source,
                gpu_models: crate::gpu::GpuModels::parse(&args.gpu_models).map_err(|reason| {
                    ConfigError::Usage(format!("invalid --gpu-model {reason}"))
                })?,
                max_scrape_gap: max_scrape_gap(&args.max_scrape_gap)?,
                max_source_silence: max_source_silence(&args.max_source_silence)?,
                bill_incomplete: args.bill_incomplete,
                reference_namespace: reference_namespace(&args.reference_namespace)?,
                now,
            },
            message,
            pushgateway: match args.pushgateway_url.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(raw) => Some(crate::pushgateway::PushSettings {
                    url: parse_http_url("--pushgateway-url", raw, "http://host:9091")?,
                    // A dry-run publishes nothing: under the CronJob's key it would set
                    // last_run_success 1 and silence the alerts on the runs that bill.
                    job: if args.dry_run {
                        crate::pushgateway::DRY_RUN_JOB
                    } else {
                        crate::pushgateway::JOB
                    },
                    cluster: cluster_name.clone(),
                    timeout: Duration::from_secs(10),
                }),
            },
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
