//! `consumption-metrics check`: the command an operator runs on day one and after any change
//! to monitoring, with the job's own configuration, so that it runs in the CronJob's pod too.
//! It asks the store whether a run would bill correctly and prints one line per check,
//! `ok`, `warn` or `FAIL`, each failure with what to do.
//!
//! It reads, never writes: the checkpoint is loaded and its write permission proven without
//! storing anything (a `dryRun` create or update of the ConfigMap, a permission check of the
//! file's directory; a real create would turn a deleted checkpoint into a first run);
//! the Kafka side is connected and its topic's metadata read, and nothing is produced. Every
//! failure is a line, not an error: the report is the whole answer, and the exit code is the
//! class of the first failure (the run's own exit codes, README "Exit codes").

use std::time::Duration;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, Plan};
use crate::collector::{self, Collected, Collector};
use crate::config::Config;
use crate::exit;
use crate::gpu::{GpuSource, Weight};
use crate::kafka::{Publisher, TopicLimit};
use crate::prometheus::{Prometheus, RangeQuery, Series};
use crate::queries::{self, CpuBasis, ReadBy, Windows};
use crate::usage::Tier;
use crate::window::{HourWindow, floor_hour, rfc3339};

// The command's configuration lives with every other command's, in `config` (imports point
// one way: check → config).
pub use crate::config::{CheckConfig, CheckFormat};

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Billed, but maybe not as meant (a GPU without a weight, a StorageClass without a tier).
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub check: String,
    pub verdict: Verdict,
    /// What was found; for a failure, also what to do.
    pub detail: String,
    /// The exit code a failure of this check stands for.
    #[serde(skip)]
    class: u8,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub cluster: String,
    /// The hour the data checks read: the newest settled one.
    pub hour: String,
    pub checks: Vec<Line>,
}

impl CheckReport {
    /// 0 when a run would bill correctly, else the class of the first failure.
    pub fn exit_code(&self) -> u8 {
        self.checks
            .iter()
            .find(|l| l.verdict == Verdict::Fail)
            .map_or(exit::OK, |l| l.class)
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "check of cluster {} with the data of the hour {}\n",
            self.cluster, self.hour
        );
        let width = self.checks.iter().map(|l| l.check.len()).max().unwrap_or(0);
        for l in &self.checks {
            let verdict = match l.verdict {
                Verdict::Ok => "ok",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            out.push_str(&format!("{verdict:<5} {:<width$}  {}\n", l.check, l.detail));
        }
        let failed = self
            .checks
            .iter()
            .filter(|l| l.verdict == Verdict::Fail)
            .count();
        out.push_str(&if failed == 0 {
            "a run would bill this cluster correctly\n".to_string()
        } else {
            format!("{failed} checks failed: a run would not bill this cluster correctly\n")
        });
        out
    }
}

/// Collects the lines.
struct Lines(Vec<Line>);

impl Lines {
    /// Every line passes here: control characters in it are escaped, since names in it come
    /// from the data (StorageClasses, GPU resources, label values) and must not forge further
    /// report lines or send escape codes to an operator's terminal.
    /// Each line is also logged (stderr) as it is decided, so that an operator watching a
    /// slow store sees how far `check` got; the report on stdout comes at the end.
    fn push(&mut self, check: impl Into<String>, verdict: Verdict, detail: String, class: u8) {
        let line = Line {
            check: without_controls(&check.into()),
            verdict,
            detail: without_controls(&detail),
            class,
        };
        tracing::info!(check = %line.check, verdict = ?line.verdict, "{}", line.detail);
        self.0.push(line);
    }
    fn ok(&mut self, check: impl Into<String>, detail: String) {
        self.push(check, Verdict::Ok, detail, exit::OK);
    }
    fn warn(&mut self, check: impl Into<String>, detail: String) {
        self.push(check, Verdict::Warn, detail, exit::OK);
    }
    fn fail(&mut self, check: impl Into<String>, detail: String, class: u8) {
        self.push(check, Verdict::Fail, detail, class);
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`).
fn without_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The newest hour a scheduled run would bill now: settled, and complete.
fn newest_settled(config: &Config) -> Option<HourWindow> {
    let settle = chrono::TimeDelta::from_std(config.settle_delay).ok()?;
    let end = floor_hour(config.now - settle);
    HourWindow::starting_at(end - chrono::TimeDelta::hours(1), "check").ok()
}

/// One range query evaluated at the end of `hour`.
async fn at_end(
    prometheus: &Prometheus,
    what: &str,
    expr: &str,
    hour: &HourWindow,
) -> Result<Vec<Series>, String> {
    prometheus
        .query_range(&RangeQuery {
            what,
            expr,
            start: hour.end(),
            end: hour.end(),
            step: Duration::from_secs(3600),
        })
        .await
        .map_err(|e| e.to_string())
}

/// The single value of a `count(...)` answer (0 when empty).
fn count(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .sum()
}

/// The values of `label` in a `group by (label)` answer, sorted.
fn values<'a>(series: impl IntoIterator<Item = &'a Series>, label: &str) -> Vec<String> {
    let mut v: Vec<String> = series
        .into_iter()
        .map(|s| s.labels.get(label).cloned().unwrap_or_default())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Run every check. Never fails: a check that cannot run is a failed line.
pub async fn run(check: &CheckConfig) -> CheckReport {
    let store = Checkpoint::open(&check.config.checkpoint).await;
    run_with_checkpoint(check, store).await
}

/// [`run`] with the checkpoint store given (tests use a Kubernetes API double that records
/// every request, to prove `check` writes nothing).
pub async fn run_with_checkpoint(
    check: &CheckConfig,
    store: crate::checkpoint::Result<Checkpoint>,
) -> CheckReport {
    let config = &check.config;
    let mut lines = Lines(Vec::new());
    let hour = newest_settled(config);
    let report = |lines: Lines| CheckReport {
        cluster: config.message.cluster_name.clone(),
        hour: hour.map(|h| h.to_string()).unwrap_or_default(),
        checks: lines.0,
    };
    let Some(hour) = hour else {
        lines.fail(
            "clock",
            format!("no settled hour before {}", rfc3339(config.now)),
            exit::USAGE,
        );
        return report(lines);
    };
    // Read once: the retention check needs the value, the checkpoint line says whether it
    // is readable and writable (listed after the data's checks).
    let (next, checkpoint) = read_checkpoint(config, store).await;
    // One deadline for every query to the store: the lines decided before it are kept.
    let deadline = check.deadline;
    if tokio::time::timeout(deadline, prometheus_checks(config, &hour, next, &mut lines))
        .await
        .is_err()
    {
        lines.fail(
            "deadline",
            format!(
                "the store's checks did not finish within {} (--deadline): Prometheus answers \
                 too slowly or hangs, and a run would wait as long for its queries. Check the \
                 store's load and --prometheus-timeout; the lines above were decided before it",
                humantime::format_duration(deadline)
            ),
            exit::COLLECT,
        );
    }
    lines.0.push(checkpoint);
    match &check.kafka {
        Some(settings) => match Publisher::connect(settings).await {
            Ok(publisher) => {
                lines.ok(
                    "kafka",
                    format!(
                        "brokers {} answer over mutual TLS with this certificate and topic {} \
                         exists; write permission is proven by the first publish (check never \
                         writes)",
                        settings.brokers, settings.topic
                    ),
                );
                message_size(
                    &mut lines,
                    settings.max_message_bytes,
                    publisher.topic_limit().await,
                );
            }
            Err(e) => lines.fail("kafka", e.to_string(), exit::OUTPUT),
        },
        None => lines.ok(
            "kafka",
            "not configured (no --kafka-brokers): not checked".into(),
        ),
    }
    report(lines)
}

/// The most bytes a part of `max` bytes of JSON can take in its record batch: lz4's worst
/// case (`LZ4_COMPRESSBOUND`, lz4.h: n + n/255 + 16) plus [`RECORD_FRAMING`]. The topic's
/// `max.message.bytes` bounds the batch as sent, compressed.
fn wire_bound(max: usize) -> u64 {
    let n = u64::try_from(max).unwrap_or(u64::MAX);
    n.saturating_add(n / 255)
        .saturating_add(16)
        .saturating_add(RECORD_FRAMING)
}

/// What a part's record batch carries beside its compressed payload: the batch and record
/// headers, the key, the CloudEvents headers (a few hundred bytes) and lz4's frame and block
/// headers (a few per 64 KiB block).
const RECORD_FRAMING: u64 = 4096;

/// The largest `--max-message-bytes` whose [`wire_bound`] fits `limit`.
fn largest_fitting(limit: u64) -> u64 {
    limit.saturating_sub(16 + RECORD_FRAMING) * 255 / 256
}

/// The `kafka message size` line: a part of `--max-message-bytes` must fit the topic's
/// `max.message.bytes`, or the broker refuses the hour's publish.
fn message_size(lines: &mut Lines, max: usize, limit: TopicLimit) {
    let check = "kafka message size";
    let bound = wire_bound(max);
    match limit {
        TopicLimit::Bytes(limit) if limit >= bound => lines.ok(
            check,
            format!(
                "the topic accepts batches of {limit} bytes (max.message.bytes); a part of \
                 --max-message-bytes {max} takes at most {bound}"
            ),
        ),
        TopicLimit::Bytes(limit) => lines.fail(
            check,
            format!(
                "the topic accepts batches of {limit} bytes (max.message.bytes), and a part of \
                 --max-message-bytes {max} may take {bound} (compressed, with its headers): \
                 lower --max-message-bytes to {} or raise the topic's max.message.bytes",
                largest_fitting(limit)
            ),
            exit::OUTPUT,
        ),
        TopicLimit::NotReported => lines.warn(
            check,
            format!(
                "the brokers do not report the topic's max.message.bytes (Kafka's default is \
                 1048588 bytes); a part of --max-message-bytes {max} takes at most {bound}, \
                 and the first publish proves it fits"
            ),
        ),
        TopicLimit::Unreadable(why) => lines.warn(
            check,
            format!(
                "could not read the topic's max.message.bytes ({why}; DescribeConfigs needs \
                 the DescribeConfigs ACL on the topic); a part of --max-message-bytes {max} \
                 takes at most {bound}, and the first publish proves it fits"
            ),
        ),
    }
}

async fn prometheus_checks(
    config: &Config,
    hour: &HourWindow,
    next: Option<HourWindow>,
    lines: &mut Lines,
) {
    let prometheus = match Prometheus::new(&config.prometheus) {
        Ok(p) => p,
        Err(e) => return lines.fail("prometheus", e.to_string(), exit::COLLECT),
    };
    let url = crate::prometheus::redacted(&config.prometheus.url);
    // The probe is a real query with every parameter and header a run sends.
    let probed = match collector::probe_windows(&prometheus, hour.end()).await {
        Ok(w) => w,
        Err(e) => {
            lines.fail("prometheus", e.to_string(), exit::COLLECT);
            return lines.fail(
                "data",
                "not checked: Prometheus does not answer".into(),
                exit::COLLECT,
            );
        }
    };
    let params: Vec<String> = config
        .prometheus
        .extra_params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    lines.ok(
        "prometheus",
        format!(
            "{url} answers, credentials accepted{}{}",
            if params.is_empty() {
                String::new()
            } else {
                format!(", parameters {} accepted", params.join(" "))
            },
            if config.prometheus.scope.is_empty() {
                String::new()
            } else {
                format!(", every query scoped to {{{}}}", config.prometheus.scope)
            }
        ),
    );
    let windows = config.collect.windows.unwrap_or(probed);
    match config.collect.windows {
        Some(w) if w != probed => lines.fail(
            "windows",
            format!(
                "--window-semantics says {w}, the engine's probe says {probed}: every hour \
                 edge would be billed wrong; remove --window-semantics"
            ),
            exit::COLLECT,
        ),
        _ => lines.ok("windows", format!("{probed} range windows")),
    }
    // A lagging store is checked at the newest hour it holds, as a run would wait for the
    // rest: one line says how far it lags, and no check fails for data not there yet.
    let lagging = store_lag(config, &prometheus, hour).await;
    let newest_held;
    let hour = match lagging {
        Some((newest, held)) => {
            let lag = (hour.end() - newest).to_std().unwrap_or_default();
            lines.warn(
                "store time",
                format!(
                    "the store lags: its newest kube-state-metrics sample is {}, {} before the \
                     end of {hour}; a run waits for that hour (exit 0 when scheduled, 7 for a \
                     dry-run or backfill) and bills it when the data is in. The checks below \
                     are of {held}, the newest hour it holds in full. If the lag persists past \
                     --max-source-silence, check the cluster's remote write and the store's \
                     ingestion (README, Runbook, ConsumptionMetricsHourWaitingForData)",
                    rfc3339(newest),
                    humantime::format_duration(Duration::from_secs(lag.as_secs())),
                ),
            );
            newest_held = held;
            &newest_held
        }
        None => hour,
    };
    metric_checks(config, &prometheus, windows, hour, lines).await;
    provenance_checks(config, &prometheus, windows, hour, lines).await;
    let labels_q = queries::data_labels(
        windows,
        config.collect.request_model == queries::RequestModel::Pod,
    );
    match at_end(&prometheus, "data labels", &labels_q, hour).await {
        Err(e) => lines.fail("honor_labels", e, exit::COLLECT),
        Ok(answer) => match collector::check_data_labels(&answer, std::slice::from_ref(hour)) {
            Err(e @ collector::CollectError::SidecarsUnlabelled { .. }) => {
                lines.fail("init containers", e.to_string(), exit::COLLECT);
            }
            Err(e) => lines.fail("honor_labels", e.to_string(), exit::COLLECT),
            Ok(()) => lines.ok(
                "honor_labels",
                "no exported_namespace or exported_pod".into(),
            ),
        },
    }
    let namespaces_q = queries::namespace_samples(windows);
    match at_end(&prometheus, "namespaces", &namespaces_q, hour).await {
        Err(e) => lines.fail("clusters", e, exit::COLLECT),
        Ok(answer) => {
            let label = &config.collect.cluster_label;
            let (seen, judged) = collector::check_clusters(
                &answer,
                std::slice::from_ref(hour),
                label,
                !config.prometheus.scope.is_empty(),
            );
            match judged {
                Err(e) => lines.fail("clusters", e.to_string(), exit::COLLECT),
                // Nothing within the selector is not one cluster: most likely a typo in it.
                Ok(()) if seen.is_empty() && !config.prometheus.scope.is_empty() => lines.fail(
                    "clusters",
                    format!(
                        "--prometheus-selector {} matches no namespaces' phase series in this \
                         hour: correct the selector (a run says which values the cluster label \
                         has outside it); do not move the checkpoint",
                        config.prometheus.scope
                    ),
                    exit::COLLECT,
                ),
                Ok(()) => lines.ok(
                    "clusters",
                    match seen.first() {
                        Some(one) if one.is_empty() => {
                            format!("one cluster (no {label} label on the series)")
                        }
                        Some(one) => format!("one cluster ({label}=\"{one}\")"),
                        None => "no namespaces' phase series".into(),
                    },
                ),
            }
        }
    }
    match at_end(&prometheus, "exporters", &queries::exporters(windows), hour).await {
        Ok(s) if !s.is_empty() => lines.ok(
            "kube-state-metrics",
            format!(
                "{} targets write the namespaces' phase (replicas and restarts are counted \
                 once each)",
                s.len()
            ),
        ),
        Ok(_) => lines.fail(
            "kube-state-metrics",
            "no target writes kube_namespace_status_phase in this hour".into(),
            exit::COLLECT,
        ),
        Err(e) => lines.fail("kube-state-metrics", e, exit::COLLECT),
    }
    extended_resource_checks(config, &prometheus, windows, hour, lines).await;
    retention_check(config, &prometheus, windows, next, lines).await;
    // Last: the hour as a run collects it, every refusal of the collector included.
    let collect = {
        let mut c = config.collect.clone();
        c.windows = Some(windows);
        c
    };
    let collector = match Collector::connect(&prometheus, &collect, hour.end()).await {
        Ok(c) => c,
        Err(e) => return lines.fail("hour", e.to_string(), exit::COLLECT),
    };
    match collector.scrape_interval(std::slice::from_ref(hour)).await {
        Ok(d) => lines.ok(
            "scrape interval",
            format!(
                "{d:?} ({})",
                if config.collect.scrape_interval.is_some() {
                    "--scrape-interval"
                } else {
                    "of the typical namespace"
                }
            ),
        ),
        Err(e) => lines.fail("scrape interval", e.to_string(), exit::COLLECT),
    }
    let time = time_checks(&collector, config, hour, lines).await;
    gpu_checks(&collector, config, hour, lines).await;
    request_checks(&collector, config, &prometheus, windows, hour, lines).await;
    let seen = at_end(
        &prometheus,
        "namespaces",
        &queries::values_of(
            windows,
            "kube_namespace_status_phase",
            "namespace",
            "phase=\"Active\"",
        ),
        hour,
    )
    .await
    .map(|s| s.len())
    .unwrap_or(0);
    // The store's time read once: the lines above showed it, the hour is collected with it.
    let span = std::slice::from_ref(hour);
    let collected = match &time {
        Some(time) => collector.collect_span_at(span, time).await,
        None => collector.collect_span(span).await,
    };
    match collected {
        Ok(Collected {
            refused: Some(e), ..
        }) => lines.fail("hour", e.to_string(), exit::COLLECT),
        Ok(collected) if collected.waiting.is_some() => {
            if let Some(w) = collected.waiting {
                lines.warn(
                    "hour",
                    format!(
                        "the store does not hold {hour} in full yet (newest {} sample {}): a \
                         scheduled run waits for it and bills it when the data is in",
                        w.source,
                        w.newest_text()
                    ),
                );
            }
        }
        Ok(collected) => {
            let billed = collected
                .usage
                .hours()
                .next()
                .map_or(0, |h| h.namespaces.len());
            lines.ok(
                "hour",
                format!(
                    "a run bills {billed} namespaces for {hour} ({} excluded by \
                     --exclude-namespaces)",
                    seen.saturating_sub(billed)
                ),
            );
        }
        Err(e) => lines.fail("hour", e.to_string(), exit::COLLECT),
    }
}

/// When the store's newest sample of kube-state-metrics (the reference namespaces' phase, in
/// the six hours before `hour`'s end) lies more than a minute before `hour`'s end: that sample
/// and the newest hour the store holds in full. `None` when it holds `hour`, or nothing at
/// all in those hours (the checks then say what is missing).
async fn store_lag(
    config: &Config,
    prometheus: &Prometheus,
    hour: &HourWindow,
) -> Option<(chrono::DateTime<chrono::Utc>, HourWindow)> {
    let q = format!(
        "max(timestamp(kube_namespace_status_phase{{namespace=~\"{}\", phase=\"Active\"}}))",
        config.collect.reference_namespace
    );
    let answer = prometheus
        .query_range(&RangeQuery {
            what: "the store's newest sample",
            expr: &q,
            start: hour.end() - chrono::TimeDelta::hours(6),
            end: hour.end(),
            step: Duration::from_secs(240),
        })
        .await
        .ok()?;
    let newest = answer
        .iter()
        .flat_map(|s| &s.points)
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !newest.is_finite() {
        return None;
    }
    let newest = chrono::DateTime::from_timestamp_millis((newest * 1000.0).round() as i64)?;
    if newest >= hour.end() - chrono::TimeDelta::minutes(1) {
        return None;
    }
    let held_end = floor_hour(newest + chrono::TimeDelta::minutes(1));
    let held = HourWindow::starting_at(held_end - chrono::TimeDelta::hours(1), "check").ok()?;
    Some((newest, held))
}

/// Per source the configured run reads, the jobs that write its metrics in `hour`: those
/// believed (its provenance matchers) and every other, named with its series, which change no
/// bill ([`crate::provenance`]). Only other jobs: a run refuses, naming them.
async fn provenance_checks(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    use crate::provenance::Source;
    let usage = matches!(config.collect.cpu_basis, CpuBasis::Usage | CpuBasis::Max);
    let ksm: Vec<&str> = queries::READS
        .iter()
        .map(|(m, ..)| *m)
        .filter(|m| Source::of_metric(m) == Some(Source::KubeStateMetrics))
        .collect();
    let mut sources = vec![(Source::KubeStateMetrics, ksm.join("|"))];
    if usage {
        sources.push((
            Source::Cadvisor,
            "container_cpu_usage_seconds_total".to_string(),
        ));
    }
    if config.collect.gpu_source == GpuSource::Devices {
        sources.push((Source::DcgmExporter, crate::gpu::dcgm::METRIC.to_string()));
    }
    for (source, metrics) in sources {
        let check = format!("provenance {source}");
        let q = queries::jobs_writing(w, &metrics);
        let every = prometheus
            .query_range_every_job(&RangeQuery {
                what: "jobs writing a source's metrics",
                expr: &q,
                start: hour.end(),
                end: hour.end(),
                step: Duration::from_secs(3600),
            })
            .await;
        let believed = at_end(prometheus, "believed jobs", &q, hour).await;
        let (every, believed) = match (every, believed) {
            (Ok(e), Ok(b)) => (e, b),
            (Err(e), _) => return lines.fail(check, e.to_string(), exit::COLLECT),
            (_, Err(e)) => return lines.fail(check, e, exit::COLLECT),
        };
        let job_of = |s: &Series| s.labels.get("job").cloned().unwrap_or_default();
        let mine: Vec<String> = believed.iter().map(job_of).collect();
        let series = |s: &Series| s.points.last().map_or(0.0, |(_, v)| *v);
        let others: Vec<String> = every
            .iter()
            .filter(|s| !mine.contains(&job_of(s)))
            .map(|s| format!("{:?} ({} series)", job_of(s), series(s)))
            .collect();
        let matchers = prometheus.provenance().of(source);
        let believed_text = if matchers.is_empty() {
            format!("every job ({} is empty)", source.flag())
        } else {
            format!("{{{matchers}}}")
        };
        let mine_text = believed
            .iter()
            .map(|s| format!("{:?} ({} series)", job_of(s), series(s)))
            .collect::<Vec<_>>()
            .join(", ");
        match (believed.is_empty(), others.is_empty()) {
            (true, true) => {}
            (true, false) => lines.fail(
                check,
                format!(
                    "no series of the platform's {source} ({believed_text}) in {hour}, but \
                     other jobs write its metrics: {}. A run refuses (exit 4): if one of them is \
                     the platform's {source}, set {} to matchers that pick it and that tenants \
                     cannot write (README, Trust)",
                    others.join(", "),
                    source.flag()
                ),
                exit::COLLECT,
            ),
            (false, true) => lines.ok(
                check,
                format!("believed {believed_text}: {mine_text}; no other job writes its metrics"),
            ),
            (false, false) => lines.warn(
                check,
                format!(
                    "believed {believed_text}: {mine_text}. Not believed, and changing no bill: \
                     {}. If one of these is the platform's own, widen {}",
                    others.join(", "),
                    source.flag()
                ),
            ),
        }
    }
}

/// Every metric the configured basis reads, with the labels the queries use.
async fn metric_checks(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let usage = matches!(config.collect.cpu_basis, CpuBasis::Usage | CpuBasis::Max);
    let scheduler = config.collect.request_model == queries::RequestModel::Scheduler;
    for (metric, labels, matcher, read_by) in queries::READS {
        if (*read_by == ReadBy::Usage && !usage) || (*read_by == ReadBy::Scheduler && !scheduler) {
            continue;
        }
        let q = queries::present(w, metric, labels, matcher);
        match at_end(prometheus, metric, &q, hour).await {
            Ok(s) if count(&s) > 0.0 => lines.ok(
                *metric,
                format!("{} series with {}", count(&s), labels.join(", ")),
            ),
            // kube-state-metrics writes no series of an empty family: a cluster without a PVC
            // has none, which bills storage 0, rightly.
            Ok(_) if metric.starts_with("kube_persistentvolumeclaim") => lines.warn(
                *metric,
                format!(
                    "no series with the labels {} in this hour: either the cluster has no PVC \
                     (storage is billed 0, rightly) or kube-state-metrics' \
                     persistentvolumeclaims collector is off or not scraped; this check cannot \
                     tell which (kubectl get pvc -A says)",
                    labels.join(", ")
                ),
            ),
            Ok(_) => lines.fail(
                *metric,
                format!(
                    "no series with the labels {} in this hour: {}",
                    labels.join(", "),
                    if *metric == queries::SCHEDULER_METRIC {
                        "check that kube-scheduler's /metrics/resources is scraped (with \
                         honor_labels) and picked by --scheduler-selector, or bill \
                         --request-source kube-state-metrics"
                    } else if metric.starts_with("kube_") {
                        "check that kube-state-metrics v2 is scraped (with honor_labels) and \
                         writes this metric"
                    } else {
                        "check that the kubelet's cAdvisor endpoint is scraped (with \
                         honor_labels), or bill --cpu-basis request"
                    }
                ),
                exit::COLLECT,
            ),
            Err(e) => lines.fail(*metric, e, exit::COLLECT),
        }
    }
}

/// GPUs as the devices report them in `hour` (whatever `--gpu-source` is): the devices seen
/// per model, the GPU-hours nobody held, the pods holding DRA claims (which the requests
/// source bills 0), and models `--gpu-model` does not map.
async fn gpu_checks(
    collector: &Collector<'_>,
    config: &Config,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let devices = config.collect.gpu_source == GpuSource::Devices;
    let per_model = |m: &std::collections::BTreeMap<String, f64>, unit: &str| {
        m.iter()
            .map(|(model, q)| format!("{model}: {} {unit}", crate::message::round(*q)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match collector.device_hour(hour).await {
        Ok(d) if d.seen.is_empty() && devices => lines.fail(
            "gpu devices",
            format!(
                "no dcgm-exporter series ({}) in this hour, and --gpu-source devices bills from \
                 them: check that dcgm-exporter is scraped, or bill --gpu-source requests",
                crate::gpu::dcgm::METRIC
            ),
            exit::COLLECT,
        ),
        Ok(d) if d.seen.is_empty() => lines.ok(
            "gpu devices",
            "no dcgm-exporter series in this hour (--gpu-source devices would have nothing to \
             read)"
                .into(),
        ),
        Ok(d) => {
            lines.ok(
                "gpu devices",
                format!(
                    "GPUs seen per model (a MIG instance as its slices): {}",
                    per_model(&d.seen, "GPUs")
                ),
            );
            let idle: std::collections::BTreeMap<String, f64> = d
                .idle
                .iter()
                .map(|(m, s)| (m.clone(), s / 3600.0))
                .collect();
            lines.ok(
                "gpu idle",
                if idle.is_empty() {
                    "every device was held by a pod all hour".into()
                } else {
                    format!(
                        "GPU-hours nobody held (never billed): {}",
                        per_model(&idle, "GPU-hours")
                    )
                },
            );
            if !d.unweighted.is_empty() {
                lines.warn(
                    "gpu mig",
                    format!(
                        "MIG profiles without a weight, billed 0: {}; set --gpu-resource \
                         nvidia.com/mig-<profile>=<GPUs per instance>",
                        d.unweighted.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            if !d.unmapped.is_empty() {
                lines.fail(
                    "gpu models",
                    format!(
                        "pods held GPUs of models --gpu-model does not map: {}; a run refuses \
                         the hour. Add --gpu-model '<model>=<suffix>' for each",
                        d.unmapped
                            .iter()
                            .map(|m| if m.is_empty() {
                                "(no modelName: --gpu-model '=<suffix>')".to_string()
                            } else {
                                without_controls(m)
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    exit::COLLECT,
                );
            } else if !config.collect.gpu_models.is_empty() {
                lines.ok(
                    "gpu models",
                    format!(
                        "every model held is mapped ({})",
                        config.collect.gpu_models.describe()
                    ),
                );
            }
        }
        Err(e) => lines.fail("gpu devices", e.to_string(), exit::COLLECT),
    }
    match collector.dra_unseen(std::slice::from_ref(hour)).await {
        Ok(pods) if pods.is_empty() => lines.ok(
            "gpu dra",
            "no pod holds devices through a ResourceClaim".into(),
        ),
        Ok(pods) if devices => lines.ok(
            "gpu dra",
            format!(
                "{} pods hold devices through ResourceClaims; --gpu-source devices bills them",
                pods.len()
            ),
        ),
        Ok(pods) => lines.warn(
            "gpu dra",
            format!(
                "{} pods hold devices through ResourceClaims (first {}), and --gpu-source \
                 requests bills their GPUs 0: bill --gpu-source devices",
                pods.len(),
                pods.iter()
                    .take(3)
                    .map(|(n, p)| format!("{n}/{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => lines.fail("gpu dra", e.to_string(), exit::COLLECT),
    }
}

/// Pods' requests the kube-state-metrics source cannot see (pod-level requests, a resize
/// down pending), and where kube-scheduler's requests are in the store too, the two sources
/// compared per namespace for the hour (core-hours, the request basis).
async fn request_checks(
    collector: &Collector<'_>,
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let scheduler = config.collect.request_model == queries::RequestModel::Scheduler;
    // Both sources' request basis for the hour, weighed in the query (core-hours).
    let read = |model| {
        queries::cpu(
            w,
            queries::CpuRead::Requested(model, Some(queries::SampleWeight::PerHour)),
            queries::Namespaces::All,
        )
    };
    let (ksm_q, scheduler_q) = (
        read(queries::RequestModel::Pod),
        read(queries::RequestModel::Scheduler),
    );
    let (ksm, sched) = tokio::join!(
        at_end(
            prometheus,
            "cpu (kube-state-metrics requests)",
            &ksm_q,
            hour
        ),
        at_end(
            prometheus,
            "cpu (kube-scheduler requests)",
            &scheduler_q,
            hour
        ),
    );
    let (ksm, sched) = match (ksm, sched) {
        (Ok(k), Ok(s)) => (k, s),
        (Err(e), _) | (_, Err(e)) => return lines.fail("request sources", e, exit::COLLECT),
    };
    let per_namespace = |answer: &[Series]| -> std::collections::BTreeMap<String, f64> {
        answer
            .iter()
            .filter_map(|s| {
                let ns = s.labels.get("namespace")?;
                let v = s.points.last()?.1;
                (!config
                    .collect
                    .exclude_namespaces
                    .iter()
                    .any(|p| p.matches(ns)))
                .then(|| (ns.clone(), v))
            })
            .collect()
    };
    let (ksm, sched) = (per_namespace(&ksm), per_namespace(&sched));
    let span = std::slice::from_ref(hour);
    if !scheduler {
        match collector.requests_unseen(span, !sched.is_empty()).await {
            Ok(pods) if pods.is_empty() => lines.ok(
                "pod-level requests",
                "every Running pod's request is its containers' (kube-state-metrics sees it)"
                    .into(),
            ),
            Ok(pods) => lines.warn(
                "pod-level requests",
                format!(
                    "{} pods reserve more than their containers request (first {}): \
                     pod-level requests (Kubernetes 1.34+) or a resize down not yet admitted, \
                     billed at their containers' requests by --request-source \
                     kube-state-metrics. Bill what Kubernetes reserves with --request-source \
                     scheduler (README, Pod-level resources)",
                    pods.len(),
                    pods.keys()
                        .take(3)
                        .map(|(n, p)| format!("{n}/{}", without_controls(p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(e) => lines.fail("pod-level requests", e.to_string(), exit::COLLECT),
        }
    }

    if sched.is_empty() {
        let text = "kube-scheduler's kube_pod_resource_request is not in the store (its \
                    /metrics/resources is not scraped, or --scheduler-selector misses it): \
                    only kube-state-metrics' requests can be billed"
            .to_string();
        return if scheduler {
            lines.fail("request sources", text, exit::COLLECT)
        } else {
            lines.ok("request sources", text)
        };
    }
    let mut differences: Vec<(String, f64, f64)> = ksm
        .keys()
        .chain(sched.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|ns| {
            let k = ksm.get(ns).copied().unwrap_or(0.0);
            let s = sched.get(ns).copied().unwrap_or(0.0);
            (ns.clone(), k, s)
        })
        .filter(|(_, k, s)| (k - s).abs() > 0.01 * k.abs().max(s.abs()).max(1.0))
        .collect();
    differences.sort_by(|a, b| (b.2 - b.1).abs().total_cmp(&(a.2 - a.1).abs()));
    if differences.is_empty() {
        return lines.ok(
            "request sources",
            format!(
                "kube-scheduler and kube-state-metrics agree within 1% in all {} namespaces",
                sched.len().max(ksm.len())
            ),
        );
    }
    let billed = if scheduler {
        "kube-scheduler (--request-source scheduler) is billed"
    } else {
        "kube-state-metrics is billed; --request-source scheduler bills what Kubernetes \
         reserves"
    };
    lines.warn(
        "request sources",
        format!(
            "core-hours of {hour} differ in {} namespaces between kube-state-metrics and \
             kube-scheduler (pod-level requests, pending resizes); largest: {}. {billed} \
             (README, Pod-level resources)",
            differences.len(),
            differences
                .iter()
                .take(3)
                .map(|(ns, k, s)| format!("{ns} {k:.3} vs {s:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

/// GPU resources seen and their weights; StorageClasses seen and their tiers.
async fn extended_resource_checks(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let gpu_q = queries::values_of(
        w,
        "kube_pod_container_resource_requests",
        "resource",
        &queries::gpu_matcher(),
    );
    match at_end(prometheus, "gpu resources", &gpu_q, hour).await {
        Err(e) => lines.fail("gpu", e, exit::COLLECT),
        Ok(s) => {
            let resources = values(&s, "resource");
            if resources.is_empty() {
                lines.ok("gpu", "no GPU-like resource requested in this hour".into());
            }
            for r in resources {
                match config.collect.gpu_weights.weight(&r) {
                    Weight::Known(weight) => {
                        lines.ok(format!("gpu {r}"), format!("billed {weight} GPU per unit"))
                    }
                    Weight::Unknown => lines.warn(
                        format!("gpu {r}"),
                        "no weight: billed 0; set --gpu-resource <name>=<GPUs per unit>".into(),
                    ),
                    Weight::SharedUnconfigured => lines.fail(
                        format!("gpu {r}"),
                        "time-sliced GPU without a weight: a run stops; set --gpu-resource \
                         <name>=1/<replicas>"
                            .into(),
                        exit::COLLECT,
                    ),
                }
            }
        }
    }
    let class_q = queries::values_of(w, "kube_persistentvolumeclaim_info", "storageclass", "");
    match at_end(prometheus, "storage classes", &class_q, hour).await {
        Err(e) => lines.fail("storage", e, exit::COLLECT),
        Ok(s) => {
            let classes = values(&s, "storageclass");
            if classes.is_empty() {
                lines.ok("storage", "no PVC in this hour".into());
            }
            for class in classes {
                match config.collect.storage_tiers.get(&class) {
                    Some(tier) => lines.ok(
                        format!("storageclass {class}"),
                        format!(
                            "RWX volumes billed as {}",
                            match tier {
                                Tier::Standard => "standard",
                                Tier::Basic => "basic",
                                Tier::Premium => "premium",
                            }
                        ),
                    ),
                    None => lines.warn(
                        format!("storageclass {class}"),
                        "no --storage-tier: its RWX volumes are billed standard (RWO always \
                         are)"
                            .into(),
                    ),
                }
            }
        }
    }
}

/// Whether the store still holds the hour a run would bill first.
async fn retention_check(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    next: Option<HourWindow>,
    lines: &mut Lines,
) {
    let (first, why) = match (next, &config.plan) {
        (Some(next), _) => (next, "the hour after the checkpoint"),
        (
            None,
            Plan::Scheduled {
                start_from: Some(h),
            },
        ) => (*h, "--start-from"),
        (None, _) => {
            return lines.ok(
                "retention",
                "no checkpoint yet: a first run bills the newest settled hour".into(),
            );
        }
    };
    let q = queries::present(w, "kube_namespace_status_phase", &["namespace"], "");
    match at_end(prometheus, "retention", &q, &first).await {
        Ok(s) if count(&s) > 0.0 => {
            lines.ok("retention", format!("the store holds {first}, {why}"))
        }
        Ok(_) => lines.fail(
            "retention",
            format!(
                "the store holds no data for {first}, {why}: a run stops there (exit 4). If the \
                 data is gone for good, move the checkpoint past it with `consumption-metrics \
                 checkpoint set --to <a later hour>` (README, Runbook)"
            ),
            exit::COLLECT,
        ),
        Err(e) => lines.fail("retention", e, exit::COLLECT),
    }
}

/// Time as the store has it, for the newest settled hour: each source's newest sample and its
/// lag behind the clock (a run waits for an hour whose end a source has not reached), and how
/// kube-state-metrics was scraped in the hour: evenly, with holes (bridged, or refused over
/// `--max-scrape-gap`), or with a changed interval.
async fn time_checks(
    collector: &Collector<'_>,
    config: &Config,
    hour: &HourWindow,
    lines: &mut Lines,
) -> Option<collector::StoreTime> {
    let span = std::slice::from_ref(hour);
    let time = match collector.time_of(span).await {
        Ok(t) => t,
        Err(e) => {
            lines.fail("newest samples", e.to_string(), exit::COLLECT);
            return None;
        }
    };
    let waiting = time.waiting(span);
    // The families of kube-state-metrics share its scrapes: its line stands for them (one
    // missing fails `time_of`, above).
    let shown = time
        .sources
        .iter()
        .filter(|(s, _)| [queries::KSM, queries::CADVISOR].contains(&s.as_str()));
    for (source, newest) in shown {
        let check = format!("newest {source}");
        let Some(t) = newest.and_then(chrono::DateTime::from_timestamp_millis) else {
            lines.warn(
                &check,
                "no sample in the hours before the clock: a run waits for this source".into(),
            );
            continue;
        };
        let lag = (config.now - t).to_std().unwrap_or_default();
        let detail = format!(
            "{}, {} before the clock",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            humantime::format_duration(Duration::from_secs(lag.as_secs()))
        );
        match &waiting {
            Some(w) if &w.source == source => lines.warn(
                &check,
                format!(
                    "{detail}: the store does not hold {hour} in full yet, so a run waits for \
                     it (exit 0 when scheduled, 7 for a dry-run or backfill). If the lag \
                     persists, check the cluster's remote write and the store's ingestion \
                     (README, Runbook, ConsumptionMetricsHourWaitingForData)"
                ),
            ),
            _ => lines.ok(&check, detail),
        }
    }
    let interval = time
        .timeline
        .interval_ms()
        .map(|ms| format!("every {}s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "interval unknown".into());
    match time.weigh(hour, config.collect.max_scrape_gap) {
        Ok(collector::timeline::Weighing::Even) => lines.ok(
            "scrape timeline",
            format!("kube-state-metrics scraped evenly in {hour} ({interval}), no hole"),
        ),
        Ok(collector::timeline::Weighing::Segments {
            gaps, intervals, ..
        }) => {
            let holes: Vec<String> = gaps
                .iter()
                .map(|g| {
                    format!(
                        "{} without a sample from {}",
                        humantime::format_duration(Duration::from_secs(g.len().as_secs())),
                        crate::window::rfc3339_millis(g.from)
                    )
                })
                .collect();
            let times: Vec<String> = intervals
                .iter()
                .map(|ms| format!("{}s", *ms as f64 / 1000.0))
                .collect();
            lines.warn(
                "scrape timeline",
                format!(
                    "kube-state-metrics scraped unevenly in {hour}: {}{}; billed by the time \
                     each sample stands for (holes bridged from both sides). If a hole is a \
                     Prometheus restart or failed scrapes, check its uptime and the target's \
                     scrape errors; a retuned interval needs nothing",
                    if holes.is_empty() {
                        "no hole".to_string()
                    } else {
                        holes.join(", ")
                    },
                    if times.len() > 1 {
                        format!(
                            ", a sample stands for {} by turns (the interval changed)",
                            times.join(" then ")
                        )
                    } else {
                        String::new()
                    }
                ),
            );
        }
        Err(collector::timeline::Unweighable::TooLong(g)) => lines.fail(
            "scrape timeline",
            format!(
                "kube-state-metrics has no sample for {} from {} in {hour}, longer than \
                 --max-scrape-gap {}: a run refuses the hour (exit 4). Raise the flag for one \
                 run to bill it from both sides of the hole",
                humantime::format_duration(Duration::from_secs(g.len().as_secs())),
                crate::window::rfc3339_millis(g.from),
                humantime::format_duration(config.collect.max_scrape_gap)
            ),
            exit::COLLECT,
        ),
        Err(collector::timeline::Unweighable::NoSamples) => lines.fail(
            "scrape timeline",
            format!("kube-state-metrics has no sample in {hour} (see the retention line)"),
            exit::COLLECT,
        ),
    };
    Some(time)
}

/// The checkpoint's value (the hour after it), and its line: readable and writable, proven
/// without writing ([`Checkpoint::verify_writable`]: a missing ConfigMap is not created, which
/// would turn a lost checkpoint into a first run).
async fn read_checkpoint(
    config: &Config,
    store: crate::checkpoint::Result<Checkpoint>,
) -> (Option<HourWindow>, Line) {
    let line = |verdict, detail: String| Line {
        check: "checkpoint".into(),
        verdict,
        detail,
        class: if verdict == Verdict::Fail {
            exit::CHECKPOINT
        } else {
            exit::OK
        },
    };
    let mut store = match store {
        Ok(s) => s,
        Err(e) => return (None, line(Verdict::Fail, e.to_string())),
    };
    let value = match store.load(config.now).await {
        Ok(v) => v,
        Err(e) => return (None, line(Verdict::Fail, e.to_string())),
    };
    let checked = match (store.verify_writable().await, value) {
        (Ok(()), Some(h)) => line(
            Verdict::Ok,
            format!(
                "{}: next hour {}, writable (proven without writing)",
                store.describe(),
                rfc3339(h.start())
            ),
        ),
        // Not an error (a new installation has no value), but the one case where a lost
        // checkpoint would skip hours: say how to tell and what to do.
        (Ok(()), None) => line(
            Verdict::Warn,
            format!(
                "{}: no value yet, writable (proven without writing; check created nothing). A \
                 run takes this for a first run and bills from the newest settled hour only. If \
                 the checkpoint was deleted, restore the last lastPublishedTime from the logs \
                 first (README, Runbook)",
                store.describe()
            ),
        ),
        (Err(e), _) => line(Verdict::Fail, e.to_string()),
    };
    (value, checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A StorageClass named with a newline and an escape code cannot forge a report line.
    #[test]
    fn names_from_the_data_cannot_forge_lines() {
        let mut lines = Lines(Vec::new());
        lines.warn(
            "storageclass gold\nok    forged".to_string(),
            "\u{1b}[2Jcleared".into(),
        );
        let report = CheckReport {
            cluster: "c".into(),
            hour: "h".into(),
            checks: lines.0,
        };
        let text = report.to_text();
        assert!(!text.contains("\nok    forged"), "{text}");
        assert!(text.contains("gold\\nok"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    /// The size a failing line suggests fits, and one byte more of limit is not needed.
    #[test]
    fn the_suggested_message_size_fits_the_topic() {
        for limit in [100_000, 1_048_588, 10_000_000] {
            let max = usize::try_from(largest_fitting(limit)).unwrap();
            assert!(wire_bound(max) <= limit, "{limit}: {max}");
            assert!(wire_bound(max + 300) > limit, "{limit}: {max} is far below");
        }
        // Kafka's default topic limit holds the default --max-message-bytes.
        assert!(wire_bound(900_000) <= 1_048_588);
    }

    #[test]
    fn a_topic_limit_below_a_part_fails_with_the_size_to_set() {
        let mut lines = Lines(Vec::new());
        message_size(&mut lines, 900_000, TopicLimit::Bytes(500_000));
        message_size(&mut lines, 900_000, TopicLimit::Bytes(1_048_588));
        message_size(&mut lines, 900_000, TopicLimit::NotReported);
        let verdicts: Vec<Verdict> = lines.0.iter().map(|l| l.verdict).collect();
        assert_eq!(verdicts, [Verdict::Fail, Verdict::Ok, Verdict::Warn]);
        assert!(
            lines.0[0]
                .detail
                .contains("lower --max-message-bytes to 493950"),
            "{}",
            lines.0[0].detail
        );
        assert_eq!(lines.0[0].class, exit::OUTPUT);
    }
}
