//! Parse, then validate: the raw [`Args`] become a typed [`Config`] or a usage error that says
//! which flag was wrong and how to fix it.
//!
//! Names say whose a setting is: a component's own settings are its `*Settings`, defined in
//! its module (`PrometheusSettings`, `CollectSettings`, `KafkaSettings`, …); a command's whole
//! validated configuration, built here from them, is a `*Config` (`Config` for a run,
//! `AuditConfig`, `CheckpointCommandConfig`, `CheckConfig`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::audit::{AuditFormat, AuditSettings, Recompute};
use crate::checkpoint::{CheckpointSettings, Plan, Reach};
use crate::cli::{Args, AuditArgs, Flavor, WindowSemantics};
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

/// The largest `--max-message-bytes`: librdkafka refuses a `message.max.bytes` over 10⁹, and
/// the job sets it 64 KiB above ours (kafka::settings).
const MAX_MESSAGE_BYTES: usize = 1_000_000_000 - 64 * 1024;

/// The most hours one run bills (and plans): a leap year. Larger values would only let a run's
/// plan and messages grow with the checkpoint's age.
const MAX_HOURS_PER_RUN: u32 = 366 * 24;

/// Thanos querier parameters that keep a bill exact: replicas deduplicated, no partial answer
/// when a store is down, raw samples only (downsampled 5m/1h blocks would change every
/// integral). Prometheus, VictoriaMetrics and Mimir ignore them.
const THANOS_PARAMS: [(&str, &str); 3] = [
    ("dedup", "true"),
    ("partial_response", "false"),
    ("max_source_resolution", "0s"),
];

/// The parameters of `--prometheus-flavor`, and its checks.
fn flavor_params(args: &Args, headers: &[(String, String)]) -> Result<Vec<(String, String)>> {
    if args.prometheus_flavor == Flavor::Mimir
        && !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-scope-orgid") && !v.trim().is_empty())
    {
        return Err(ConfigError::Usage(
            "--prometheus-flavor mimir needs the tenant: add --prometheus-header \
             X-Scope-OrgID=<tenant> (or PROMETHEUS_HEADERS)"
                .into(),
        ));
    }
    Ok(match args.prometheus_flavor {
        Flavor::Prometheus => Vec::new(),
        Flavor::Auto | Flavor::Thanos | Flavor::Mimir => THANOS_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

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

/// `--max-scrape-gap`: at least a minute (a shorter one would refuse ordinary missed
/// scrapes) and under an hour (a longer hole leaves no sample to bridge from in some hour).
fn max_scrape_gap(raw: &str) -> Result<Duration> {
    let d = parse_duration("--max-scrape-gap", raw)?;
    if !(Duration::from_secs(60)..Duration::from_secs(3600)).contains(&d) {
        return Err(invalid(
            "--max-scrape-gap",
            raw,
            "give a duration from 1m to 59m, e.g. 15m",
        ));
    }
    Ok(d)
}

/// `--max-source-silence`: at least the waiting alert's 3 hours, so that a stopped source pages
/// as such only after lag would have; at most the 6 hours the newest samples are looked for,
/// beyond which a source's newest sample is not seen at all.
fn max_source_silence(raw: &str) -> Result<Duration> {
    let d = parse_duration("--max-source-silence", raw)?;
    if !(Duration::from_secs(3 * 3600)..=Duration::from_secs(6 * 3600)).contains(&d) {
        return Err(invalid(
            "--max-source-silence",
            raw,
            "give a duration from 3h to 6h, e.g. 4h",
        ));
    }
    Ok(d)
}

/// `--reference-namespace`: comma-separated Kubernetes namespace names (RFC 1123 labels),
/// joined into the alternation the queries match (`kube-system|openshift-monitoring`); checked
/// names need no escaping there.
fn reference_namespace(raw: &str) -> Result<String> {
    let label = regex::Regex::new("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
        .map_err(|e| ConfigError::Usage(e.to_string()))?;
    let names: Vec<&str> = raw.split(',').map(str::trim).collect();
    if names.iter().any(|n| !label.is_match(n)) {
        return Err(invalid(
            "--reference-namespace",
            raw,
            "give namespace names (lower-case letters, digits and '-', at most 63), separated \
             by commas, e.g. kube-system,openshift-monitoring",
        ));
    }
    Ok(names.join("|"))
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parse an RFC 3339 time given to `flag`.
pub fn parse_time(flag: &'static str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(
                flag,
                value,
                format!("{e}; use RFC 3339, for example 2026-11-22T10:00:00Z"),
            )
        })
}

pub fn parse_duration(flag: &'static str, value: &str) -> Result<Duration> {
    let v = value.trim();
    // humantime panics (overflow in Duration::new) on numbers near u64::MAX; found by the
    // cli_values fuzz target. No duration we take needs more than 10 digits or 64 characters.
    if v.len() > 64 || v.split(|c: char| !c.is_ascii_digit()).any(|n| n.len() > 10) {
        return Err(invalid(
            flag,
            &v.chars().take(40).collect::<String>(),
            "too long or too large; use for example 30s, 10m or 1h",
        ));
    }
    humantime::parse_duration(v)
        .map_err(|e| invalid(flag, value, format!("{e}; use for example 30s, 10m or 1h")))
}

pub fn parse_tiers(values: &[String]) -> Result<BTreeMap<String, Tier>> {
    let mut map = BTreeMap::new();
    for raw in values.iter().filter(|v| !v.trim().is_empty()) {
        let (class, tier) = raw.split_once('=').ok_or_else(|| {
            invalid(
                "--storage-tier",
                raw,
                "expected CLASS=TIER, for example gold=premium",
            )
        })?;
        let tier: Tier = tier.parse().map_err(|()| {
            invalid(
                "--storage-tier",
                raw,
                "unknown tier; use standard, basic or premium",
            )
        })?;
        let class = class.trim();
        if class.is_empty() {
            return Err(invalid(
                "--storage-tier",
                raw,
                "the StorageClass name is empty",
            ));
        }
        if let Some(previous) = map.insert(class.to_string(), tier)
            && previous != tier
        {
            return Err(invalid(
                "--storage-tier",
                raw,
                format!("StorageClass {class} is mapped twice, to different tiers"),
            ));
        }
    }
    Ok(map)
}

/// `--prometheus-header NAME=VALUE` items. A value is usually a credential (`Authorization=Bearer
/// …`), so no error prints one: not the value, and not an item without `=`, which may be the
/// part of a value after a comma (the list is comma-separated).
fn parse_headers(values: &[String]) -> Result<Vec<(String, String)>> {
    check_headers("--prometheus-header", values)
}

/// `--prometheus-header-file NAME=PATH` items: each header's value read from a file (a
/// mounted Secret), its one trailing line end dropped, then checked as `--prometheus-header`
/// values are. Errors name the header and the file, never the value.
fn parse_header_files(values: &[String]) -> Result<Vec<(String, String)>> {
    let flag = "--prometheus-header-file";
    let mut items = Vec::new();
    for raw in values.iter().filter(|v| !v.trim().is_empty()) {
        let (name, path) = raw.split_once('=').ok_or_else(|| {
            invalid(
                flag,
                raw,
                "expected NAME=PATH, for example X-Scope-OrgID=/var/run/secrets/tenant/org-id",
            )
        })?;
        let text = std::fs::read_to_string(path.trim()).map_err(|e| {
            invalid(
                flag,
                &format!("{}=<value of {}>", name.trim(), path.trim()),
                format!(
                    "cannot read the file: {e}; mount the Secret that holds the header's value                      there"
                ),
            )
        })?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        items.push(format!("{}={value}", name.trim()));
    }
    check_headers(flag, &items)
}

/// Header items `NAME=VALUE` of `flag`, checked (module documentation of [`parse_headers`]).
fn check_headers(flag: &'static str, values: &[String]) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty())
        .enumerate()
        .map(|(i, raw)| {
            let (name, value) = raw.split_once('=').ok_or_else(|| {
                invalid(
                    flag,
                    &format!("item {} (not shown, in case it is part of a secret)", i + 1),
                    "expected NAME=VALUE, for example X-Scope-OrgID=tenant-a; PROMETHEUS_HEADERS \
                     separates headers with commas, so a value cannot contain one",
                )
            })?;
            let name = name.trim();
            let shown = |name: &str| format!("{name}=<hidden>");
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                invalid(
                    flag,
                    &format!("item {} (not shown, in case it is a secret)", i + 1),
                    "not a valid header name: expected NAME=VALUE",
                )
            })?;
            if value.chars().any(char::is_control) {
                return Err(invalid(
                    flag,
                    &shown(name),
                    "the value holds a control character (a CR or LF, often the line end of a \
                     file read with $(cat …)); remove it",
                ));
            }
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| invalid(flag, &shown(name), "not a valid header value"))?;
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Where the checkpoint lives: the ConfigMap when one is named, else the file.
pub fn checkpoint_config(args: &Args) -> CheckpointSettings {
    match &args.checkpoint_configmap {
        Some(name) if !name.trim().is_empty() => CheckpointSettings::ConfigMap {
            name: name.trim().to_string(),
            namespace: args
                .checkpoint_namespace
                .as_ref()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
        },
        _ => CheckpointSettings::File(args.checkpoint_file.clone()),
    }
}

/// What the `checkpoint` commands need: the store, the clock and the scheduling rules.
#[derive(Debug, Clone)]
pub struct CheckpointCommandConfig {
    pub checkpoint: CheckpointSettings,
    pub now: DateTime<Utc>,
    pub settle_delay: Duration,
    pub max_hours_per_run: u32,
}

/// `--cluster-label`: a Prometheus label name.
fn cluster_label(raw: &str) -> Result<String> {
    let name = raw.trim();
    let ok = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !ok || name.starts_with("__") {
        return Err(invalid(
            "--cluster-label",
            raw,
            "must be a label name (letters, digits and '_', not starting with a digit or \
             '__'), e.g. cluster",
        ));
    }
    Ok(name.to_string())
}

/// `checkpoint set --to`: an hour start that is over (the newest settled hour's end at the
/// latest): the checkpoint may only say that hours which are over were published.
pub fn checkpoint_target(to: &str, config: &CheckpointCommandConfig) -> Result<HourWindow> {
    let hour = HourWindow::starting_at(parse_time("--to", to)?, "--to")?;
    let latest = window::latest_billable_end(config.now, config.settle_delay);
    if hour.start() > latest {
        return Err(ConfigError::Usage(format!(
            "--to {} is after the newest settled hour's end ({}): the checkpoint may only say \
             that hours which are over were published",
            window::rfc3339(hour.start()),
            window::rfc3339(latest)
        )));
    }
    Ok(hour)
}

/// The run's clock: `--now`, or the system's.
fn now(args: &Args, system_now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    match &args.now {
        Some(raw) => parse_time("--now", raw),
        None => Ok(system_now),
    }
}

/// `--max-hours-per-run`: the same bounds for a run and for `checkpoint show`'s account of one.
fn max_hours_per_run(args: &Args) -> Result<u32> {
    match args.max_hours_per_run {
        0 => Err(invalid("--max-hours-per-run", "0", "must be at least 1")),
        n if n > MAX_HOURS_PER_RUN => Err(invalid(
            "--max-hours-per-run",
            &n.to_string(),
            "must be at most 8784 (a leap year of hours); catch up over several runs",
        )),
        n => Ok(n),
    }
}

impl CheckpointCommandConfig {
    pub fn from_args(args: &Args, system_now: DateTime<Utc>) -> Result<Self> {
        Ok(Self {
            checkpoint: checkpoint_config(args),
            now: now(args, system_now)?,
            settle_delay: settle_delay(args)?,
            max_hours_per_run: max_hours_per_run(args)?,
        })
    }
}

/// `--settle-delay`, at most a week: data that takes longer to arrive is a broken pipeline,
/// and a huge delay would make every hour look unsettled.
fn settle_delay(args: &Args) -> Result<Duration> {
    let d = parse_duration("--settle-delay", &args.settle_delay)?;
    if d > Duration::from_secs(7 * 24 * 3600) {
        return Err(invalid(
            "--settle-delay",
            &args.settle_delay,
            "must be at most 7d; hours are billed this long after they end",
        ));
    }
    Ok(d)
}

/// What a pod's request is and where it is read, from `--cpu-request-model` and
/// `--request-source`. kube-scheduler publishes one number per pod (`PodRequests`), so it has
/// no containers' model, and the `max` basis, which compares requests with usage per
/// container, cannot read it.
fn request_model(args: &Args) -> Result<crate::queries::RequestModel> {
    use crate::cli::{RequestModelArg, RequestSourceArg};
    use crate::queries::RequestModel;
    match (args.request_source, args.cpu_request_model) {
        (RequestSourceArg::KubeStateMetrics, RequestModelArg::Pod) => Ok(RequestModel::Pod),
        (RequestSourceArg::KubeStateMetrics, RequestModelArg::Containers) => {
            Ok(RequestModel::Containers)
        }
        (RequestSourceArg::Scheduler, RequestModelArg::Containers) => Err(ConfigError::Usage(
            "--request-source scheduler reads what kube-scheduler reserves per pod, which has \
             no containers' part: drop --cpu-request-model containers (CPU_REQUEST_MODEL), or \
             keep it with --request-source kube-state-metrics"
                .into(),
        )),
        (RequestSourceArg::Scheduler, RequestModelArg::Pod)
            if args.cpu_basis == crate::queries::CpuBasis::Max =>
        {
            Err(ConfigError::Usage(
                "--cpu-basis max compares requests with usage per container, and \
                 kube-scheduler publishes requests per pod: use --cpu-basis request or usage \
                 with --request-source scheduler, or --request-source kube-state-metrics \
                 with max"
                    .into(),
            ))
        }
        (RequestSourceArg::Scheduler, RequestModelArg::Pod) => Ok(RequestModel::Scheduler),
    }
}

/// `--prometheus-max-response-mib` in bytes: 1 MiB to 4 GiB.
fn max_response_bytes(args: &Args) -> Result<usize> {
    let mib = args.prometheus_max_response_mib;
    if !(1..=4096).contains(&mib) {
        return Err(invalid(
            "--prometheus-max-response-mib",
            &mib.to_string(),
            "must be between 1 and 4096",
        ));
    }
    Ok(mib as usize * 1024 * 1024)
}

/// An http(s) URL given to `flag`, its credentials hidden in errors, which show `example`.
fn parse_http_url(flag: &'static str, raw: &str, example: &str) -> Result<reqwest::Url> {
    // A URL may carry a password (Basic authentication): errors never print it.
    let url = reqwest::Url::parse(raw).map_err(|e| {
        invalid(
            flag,
            &hide_userinfo(raw),
            format!("{e}; use for example {example}"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            flag,
            &crate::prometheus::redacted(&url),
            "the scheme must be http or https",
        ));
    }
    Ok(url)
}

/// An unparsable URL for an error message: whatever stands between `://` and the last `@`
/// before the path may be credentials, and is hidden.
fn hide_userinfo(raw: &str) -> String {
    // A query string may carry a token: never shown in an unparsed URL.
    let raw = match raw.split_once('?') {
        Some((before, _)) => format!("{before}?***"),
        None => raw.to_string(),
    };
    let raw = raw.as_str();
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => raw.to_string(),
    }
}

/// `--cluster-name`: required by every mode, checked here (not by clap) so that `audit` can
/// take it after the subcommand.
fn cluster_name(args: &Args) -> Result<String> {
    let raw = args.cluster_name.as_deref().ok_or_else(|| {
        ConfigError::Usage(
            "--cluster-name (or CLUSTER_NAME) is required: the name of this cluster, for \
             example prod-alln-01"
                .into(),
        )
    })?;
    let name = raw.trim();
    if name.is_empty() {
        return Err(invalid("--cluster-name", raw, "must not be empty"));
    }
    // It starts every external_id and every message key (`<cluster>/<hour>`): no '/', no
    // quotes, spaces or control characters that the billing side would have to escape.
    // It is also a path segment of the self-metrics push (`.../cluster/<name>`): `.` or `..`
    // there would be resolved away, so it must begin and end with a letter or digit.
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 253
        || !name.chars().all(ok)
        || !edges(name.chars().next())
        || !edges(name.chars().last())
    {
        return Err(invalid(
            "--cluster-name",
            raw,
            "use letters, digits, '-', '.' and '_' only, beginning and ending with a letter or \
             digit (at most 253), e.g. prod-alln-01",
        ));
    }
    Ok(name.to_string())
}

/// The messages' header fields and limits, validated: what a run shapes and what `audit`
/// expects every message under this cluster's key to carry.
fn message_config(args: &Args, cluster_name: &str) -> Result<MessageSettings> {
    for (flag, value) in [
        ("--service-name", &args.service_name),
        ("--service-version", &args.service_version),
        ("--service-location", &args.service_location),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(flag, value, "must not be empty"));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(flag, value, "must not contain control characters"));
        }
    }
    if !(1024..=MAX_MESSAGE_BYTES).contains(&args.max_message_bytes) {
        return Err(invalid(
            "--max-message-bytes",
            &args.max_message_bytes.to_string(),
            "must be between 1024 and 999934464 (librdkafka's message.max.bytes limit of \
             1000000000, less the 64 KiB the job leaves for key, headers and batch)",
        ));
    }
    Ok(MessageSettings {
        cluster_name: cluster_name.to_string(),
        service_name: args.service_name.trim().to_string(),
        service_version: args.service_version.trim().to_string(),
        service_location: args.service_location.trim().to_string(),
        max_message_bytes: args.max_message_bytes,
        id_format: args.message_id_format,
    })
}

/// Publishing needs every Kafka flag: mutual TLS is not optional.
fn kafka_settings(args: &Args, audit: bool) -> Result<KafkaSettings> {
    let missing = |flag: &'static str| {
        ConfigError::Usage(if audit {
            format!(
                "audit reads the topic with the publishing settings and needs {flag} (or its \
                 environment variable)"
            )
        } else {
            format!(
                "publishing needs {flag} (or its environment variable); give it, or use \
                 --dry-run to print the messages instead"
            )
        })
    };
    let brokers = args
        .kafka_brokers
        .clone()
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| missing("--kafka-brokers"))?;
    let topic = args
        .kafka_topic
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| missing("--kafka-topic"))?;
    let tls = TlsFiles {
        ca: args.kafka_ca.clone().ok_or_else(|| missing("--kafka-ca"))?,
        cert: args
            .kafka_cert
            .clone()
            .ok_or_else(|| missing("--kafka-cert"))?,
        key: args
            .kafka_key
            .clone()
            .ok_or_else(|| missing("--kafka-key"))?,
    };
    // Not `invalid(..)`: the list may hold secrets, so only the reason (which names the key)
    // is printed.
    let properties = parse_properties(&args.kafka_properties)
        .map_err(|reason| ConfigError::Usage(format!("invalid --kafka-property: {reason}")))?;
    let delivery_timeout =
        parse_duration("--kafka-delivery-timeout", &args.kafka_delivery_timeout)?;
    if delivery_timeout < Duration::from_secs(1) {
        return Err(invalid(
            "--kafka-delivery-timeout",
            &args.kafka_delivery_timeout,
            "must be at least 1s",
        ));
    }
    Ok(KafkaSettings {
        brokers: brokers.trim().to_string(),
        topic: topic.trim().to_string(),
        transport: Transport::MutualTls(tls),
        properties,
        max_message_bytes: args.max_message_bytes,
        delivery_timeout,
        preflight_timeout: Duration::from_secs(10),
        cloudevents: args.kafka_cloudevents,
    })
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
            format: args.output,
            recompute,
        })
    }
}

impl Config {
    /// How far a scheduled run of this configuration reaches.
    pub fn reach(&self) -> Reach {
        Reach {
            now: self.now,
            settle_delay: self.settle_delay,
            max_hours_per_run: self.max_hours_per_run,
        }
    }

    /// A human-readable account of what this configuration makes a run do (`--check-config`).
    pub fn summary(&self) -> String {
        let plan = match &self.plan {
            Plan::Scheduled { .. } => format!(
                "scheduled: every hour after the checkpoint, settled {:?} after its end, at most \
                 {} per run",
                self.settle_delay, self.max_hours_per_run
            ),
            Plan::Backfill {
                hours,
                advance_checkpoint,
            } => format!(
                "backfill of {} hours from {}{}",
                hours.len(),
                hours.first().map(|h| h.to_string()).unwrap_or_default(),
                if *advance_checkpoint {
                    ", advancing the checkpoint"
                } else {
                    ""
                }
            ),
        };
        let output = match &self.output {
            Output::DryRun => "dry-run: messages printed on stdout".to_string(),
            Output::Publish(k) => format!(
                "publish to Kafka topic {} at {} over mutual TLS (CA {}, cert {})",
                k.topic,
                k.brokers,
                k.transport
                    .tls()
                    .map(|t| t.ca.display().to_string())
                    .unwrap_or_default(),
                k.transport
                    .tls()
                    .map(|t| t.cert.display().to_string())
                    .unwrap_or_default(),
            ),
        };
        let checkpoint = match &self.checkpoint {
            CheckpointSettings::File(p) => format!("file {}", p.display()),
            CheckpointSettings::ConfigMap { name, namespace } => format!(
                "ConfigMap {}/{name}",
                namespace.as_deref().unwrap_or("(pod namespace)")
            ),
        };
        let store_time = format!(
            "timeline and newest samples from namespace {}; an hour waits until every source \
             reaches its end ({}); holes up to {} bridged",
            self.collect.reference_namespace,
            if self.collect.bill_incomplete {
                "--bill-incomplete: billed anyway, with a warning"
            } else {
                "a dry-run or backfill refuses it, exit 7"
            },
            humantime::format_duration(self.collect.max_scrape_gap)
        );
        let tiers: Vec<String> = self
            .collect
            .storage_tiers
            .iter()
            .map(|(c, t)| format!("{c}={t:?}"))
            .collect();
        format!(
            "configuration is valid\n\
             plan:        {plan}\n\
             output:      {output}\n\
             checkpoint:  {checkpoint}\n\
             prometheus:  {} ({:?}{})\n\
             cluster:     {} (service {} {} at {}, message ids {})\n\
             cpu basis:   {:?}, request model {:?}\n\
             memory:      {}\n\
             scope:       {}\n\
             believed:    {}\n\
             windows:     {}\n\
             store time:  {}\n\
             tiers:       {}\n\
             gpu source:  {}\n\
             gpu models:  {}\n\
             gpu weights: {}\n\
             excluded:    {}\n\
             self-metrics: {}\n",
            crate::prometheus::redacted(&self.prometheus.url),
            self.prometheus_flavor,
            if self.prometheus.extra_params.is_empty() {
                String::new()
            } else {
                let p: Vec<String> = self
                    .prometheus
                    .extra_params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(", every query with {}", p.join("&"))
            },
            self.message.cluster_name,
            self.message.service_name,
            self.message.service_version,
            self.message.service_location,
            self.message.id_format,
            self.collect.cpu_basis,
            self.collect.request_model,
            if self.collect.bill_memory {
                "billed as ram (GiB-hours of memory requested, --bill-memory)"
            } else {
                "not billed (no ram key in the messages)"
            },
            if self.prometheus.scope.is_empty() {
                format!(
                    "the whole store (a run refuses data with more than one {} value)",
                    self.collect.cluster_label
                )
            } else {
                format!("every selector with {{{}}}", self.prometheus.scope)
            },
            self.prometheus.provenance.describe(),
            match self.collect.windows {
                Some(w) => format!("{w} (--window-semantics)"),
                None => "detected at the start of each run (closed on Prometheus 2.x, left-open \
                         on Prometheus 3.x and VictoriaMetrics)"
                    .to_string(),
            },
            store_time,
            if tiers.is_empty() {
                "(none)".into()
            } else {
                tiers.join(", ")
            },
            match self.collect.gpu_source {
                crate::gpu::GpuSource::Requests =>
                    "requests (kube-state-metrics' container requests, models by the node's \
                     nvidia.com/gpu.product label; GPUs allocated through DRA are not seen: a \
                     run warns of them)",
                crate::gpu::GpuSource::Devices =>
                    "devices (dcgm-exporter's DCGM_FI_DEV_FB_USED \
                     per device and pod: device plugin, DRA, MIG and shared GPUs)",
            },
            self.collect.gpu_models.describe(),
            self.collect.gpu_weights.describe(),
            if self.collect.exclude_namespaces.is_empty() {
                "(none: every namespace is billed)".to_string()
            } else {
                self.collect
                    .exclude_namespaces
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            match &self.pushgateway {
                Some(p) => format!(
                    "pushed to {} (job {}, cluster {})",
                    crate::prometheus::redacted(&p.url),
                    p.job,
                    p.cluster
                ),
                None => "not pushed (no --pushgateway-url)".to_string(),
            },
        )
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
