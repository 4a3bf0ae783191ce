//! The collector: one range query per dimension for a span of consecutive hours, checked and
//! shaped into per-hour, per-namespace usage.
//!
//! One idea per file:
//! - `interval`: the scrape interval and the weight of a gauge sample, from sample counts;
//! - `cpu`: which CPU answers are billed, and how namespaces whose counters fell are read;
//! - `validate`: the checks every answer passes and the per-hour sums (pure);
//! - `labels`: the data's own labels: one cluster, scraped with `honor_labels`;
//! - `probe`: the engine's window semantics;
//! - `error`: why a span could not be collected.
//!
//! This file sends the queries of a span side by side and hands each answer to
//! [`SpanUsage::add`] with what its series add to.

mod cpu;
mod devices;
mod error;
mod interval;
mod labels;
mod probe;
pub mod timeline;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, instrument, warn};

pub use error::{CollectError, Result};
pub use interval::interval_from_count;
pub use probe::probe_windows;
pub use validate::SpanUsage;

/// Judge a [`queries::data_labels`] answer as a run does: `honor_labels`, labelled sidecars.
pub fn check_data_labels(answer: &[Series], span: &[HourWindow]) -> Result<()> {
    labels::check(answer, span)
}

/// Judge a [`queries::namespace_samples`] answer as a run does: one cluster per hour. With the
/// values of `cluster_label` seen in the span, for `consumption-metrics check`.
pub fn check_clusters(
    answer: &[Series],
    span: &[HourWindow],
    cluster_label: &str,
    scoped: bool,
) -> (BTreeSet<String>, Result<()>) {
    let clusters = labels::clusters_by_hour(answer, span, cluster_label);
    let judged = labels::one_cluster(answer, span, cluster_label, scoped);
    (clusters.into_values().flatten().collect(), judged)
}

use crate::gpu::dcgm;
use crate::gpu::{GpuSource, Weight};
use crate::prometheus::{Prometheus, RangeQuery, SampleQuery, Series};
use crate::queries::{self, CpuBasis, RequestModel, SampleWeight, Windows};
use crate::usage::{Dimension, Tier};
use crate::window::{HourWindow, rfc3339, rfc3339_millis};
use validate::{Adds, Answer, BY_NAMESPACE};

/// How the CPU of namespaces whose usage counters fell within an hour is read (queries module
/// documentation, "Counters are read in two parts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FallenCounters {
    /// From the counters' raw samples, computed by the job: one read, exact. With PromQL when
    /// they would be too many (over 2,000 namespace-hours, or an answer over the limit of
    /// answers)
    Samples,
    /// With PromQL alone: 22 reads of those counters, and the engine's increase() for a counter
    /// that fell twice in an hour
    Queries,
}

/// What is billed and how.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// The label that tells clusters apart in a shared store (`--cluster-label`).
    pub cluster_label: String,
    pub cpu_basis: CpuBasis,
    /// What a pod's request is, for the request basis, GPUs and memory
    /// (`--cpu-request-model`).
    pub request_model: RequestModel,
    /// Bill memory requested as `ram` (`--bill-memory`).
    pub bill_memory: bool,
    pub fallen_counters: FallenCounters,
    /// `None`: detect with a probe query at the start of a run.
    pub windows: Option<crate::queries::Windows>,
    /// `None`: derive from the data.
    pub scrape_interval: Option<Duration>,
    pub hours_per_query: usize,
    pub storage_tiers: BTreeMap<String, Tier>,
    pub exclude_namespaces: Vec<glob::Pattern>,
    pub gpu_weights: crate::gpu::GpuWeights,
    /// Where GPU-hours come from (`--gpu-source`).
    pub gpu_source: crate::gpu::GpuSource,
    /// GPU models as billing keys (`--gpu-model`).
    pub gpu_models: crate::gpu::GpuModels,
    /// The longest stretch without a kube-state-metrics sample an hour is billed across
    /// (`--max-scrape-gap`).
    pub max_scrape_gap: Duration,
    /// How long a source may stay behind the store's time before it counts as stopped
    /// (`--max-source-silence`).
    pub max_source_silence: Duration,
    /// Bill hours the store does not hold in full yet (`--bill-incomplete`, backfills only).
    pub bill_incomplete: bool,
    /// The namespaces whose series give the scrape timeline (`--reference-namespace`), as a
    /// regular-expression alternation of checked names (`kube-system|openshift-monitoring`).
    pub reference_namespace: String,
    /// The run's clock (`--now`): how far the store may hold data.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// How far before a span the newest samples are looked for: a store lagging more than this
/// (or without the reference namespace) is refused rather than waited for.
const NEWEST_LOOKBACK_HOURS: i64 = 6;

/// The newest-samples query's step: under Prometheus's default lookback (5 minutes), so that
/// every sample is within the lookback of some evaluation.
const NEWEST_STEP: Duration = Duration::from_secs(240);

/// A span's collection: the hours the store holds in full, and the first that waits.
#[derive(Debug)]
pub struct Collected {
    pub usage: SpanUsage,
    pub waiting: Option<Waiting>,
    /// With `--gpu-source requests`: the pods `(namespace, pod)` that held devices through DRA
    /// in the hours collected, which requests cannot see ([`Collector::dra_unseen`]).
    pub dra_unseen: BTreeSet<(String, String)>,
    /// With the kube-state-metrics source: the Running pods, at the span's end, that reserve
    /// more than their containers request ([`Collector::requests_unseen`]).
    pub requests_unseen: usize,
    /// The refusal of the hour after the ones collected (a node's GPU model changed in it):
    /// the hours before it are billed first, then the run stops with it.
    pub refused: Option<CollectError>,
}

/// An hour the store does not hold in full yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub hour: HourWindow,
    /// The source that lags most.
    pub source: String,
    /// Its newest sample (Unix milliseconds), if it has one since the lookback.
    pub newest: Option<i64>,
}

impl Waiting {
    /// The refusal of a run that may not wait (a dry-run, a backfill, an audit's recompute).
    pub fn refusal(&self) -> CollectError {
        CollectError::Incomplete {
            hour: self.hour.to_string(),
            exporter: self.source.clone(),
            newest: self.newest_text(),
            lag: self
                .lag()
                .map(|l| {
                    format!(
                        ", {} before the hour's end",
                        humantime::format_duration(Duration::from_secs(l.as_secs()))
                    )
                })
                .unwrap_or_default(),
        }
    }

    /// How far the source's newest sample lies before the hour's end.
    pub fn lag(&self) -> Option<Duration> {
        let end = self.hour.end().timestamp_millis();
        self.newest
            .map(|t| Duration::from_millis(u64::try_from(end - t).unwrap_or(0)))
    }

    pub fn newest_text(&self) -> String {
        self.newest
            .map(rfc3339_millis)
            .unwrap_or_else(|| format!("none in the {NEWEST_LOOKBACK_HOURS} hours before"))
    }
}

/// What the store holds of a span's time.
#[derive(Debug, Default)]
pub struct StoreTime {
    pub timeline: timeline::Timeline,
    /// Per source read, its newest sample (Unix milliseconds).
    pub sources: BTreeMap<String, Option<i64>>,
    /// Whether kube-scheduler's `kube_pod_resource_request` is in the store around the span
    /// (whichever source the requests are read from).
    pub scheduler_seen: bool,
    /// Per kube-state-metrics target (`instance`: a shard, a replica, a pod after a restart),
    /// its data's and its `up`'s times from the hour before the span on.
    pub targets: BTreeMap<String, timeline::TargetTime>,
    /// Where the targets' read began (Unix milliseconds).
    pub targets_from: i64,
}

impl StoreTime {
    /// Where kube-state-metrics targets' series end or begin ([`timeline::splits`]).
    pub fn splits(&self) -> Vec<i64> {
        let step = i64::try_from(NEWEST_STEP.as_millis()).unwrap_or(i64::MAX);
        timeline::splits(&self.targets, self.targets_from, step)
    }

    /// How `hour` is weighed ([`timeline::weigh_split`]).
    pub fn weigh(
        &self,
        hour: &HourWindow,
        max_gap: Duration,
    ) -> std::result::Result<timeline::Weighing, timeline::Unweighable> {
        timeline::weigh_split(&self.timeline, hour, max_gap, &self.splits())
    }

    /// The first hour of `span` some source has not reached.
    pub fn waiting(&self, span: &[HourWindow]) -> Option<Waiting> {
        let tolerance = self.timeline.tolerance_ms();
        let source = timeline::first_incomplete(span, &self.sources, tolerance).map(
            |(hour, source, newest)| Waiting {
                hour: *hour,
                source,
                newest,
            },
        );
        let target = timeline::first_target_behind(span, &self.targets, tolerance).map(
            |(hour, instance, newest)| Waiting {
                hour: *hour,
                source: target_name(instance),
                newest,
            },
        );
        // A target behind while Prometheus scrapes it names the shard to look at; its
        // families lag with it.
        match (source, target) {
            (Some(s), Some(t)) if t.hour <= s.hour => Some(t),
            (s, t) => s.or(t),
        }
    }
}

/// Per `instance`, [`queries::target_times`]' answer: the data's newest sample at each step,
/// and the newest `up`.
fn target_times(answer: &[crate::prometheus::Series]) -> BTreeMap<String, timeline::TargetTime> {
    let mut targets: BTreeMap<String, timeline::TargetTime> = BTreeMap::new();
    for s in answer {
        let (Some(instance), Some(source)) = (s.labels.get("instance"), s.labels.get("source"))
        else {
            continue;
        };
        let times = s
            .points
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite())
            .map(|v| (v * 1000.0).round() as i64);
        let target = targets.entry(instance.clone()).or_default();
        match source.as_str() {
            "data" => {
                target.data.extend(times);
                target.data.sort_unstable();
                target.data.dedup();
            }
            _ => target.up = times.max().max(target.up),
        }
    }
    targets
}

/// How a kube-state-metrics target is named where a source would be: in logs, refusals and
/// the `source` label of `consumption_metrics_data_lag_seconds`.
pub fn target_name(instance: &str) -> String {
    format!("{} target {instance}", queries::KSM)
}

pub struct Collector<'a> {
    prometheus: &'a Prometheus,
    config: &'a CollectSettings,
    windows: Windows,
    /// Warnings already given this run (an unmapped StorageClass, an unweighted GPU): once
    /// per run, not once per span.
    warned: std::sync::Mutex<BTreeSet<String>>,
}

impl<'a> Collector<'a> {
    /// A collector for the engine behind `prometheus`: the window semantics come from
    /// `--window-semantics`, or from one probe query evaluated at `at` (an hour-aligned time).
    pub async fn connect(
        prometheus: &'a Prometheus,
        config: &'a CollectSettings,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Self> {
        let windows = match config.windows {
            Some(w) => {
                info!(windows = %w, "range windows as configured (--window-semantics)");
                w
            }
            None => {
                let w = probe_windows(prometheus, at).await?;
                info!(windows = %w, "range windows detected");
                w
            }
        };
        for source in prometheus.provenance().unguarded() {
            warn!(
                source = %source,
                setting = source.flag(),
                "{source}'s series are believed from every job that writes them ({} is empty): a \
                 tenant's series of the same names can change bills or stop billing (README, \
                 Trust)",
                source.flag()
            );
        }
        Ok(Self {
            prometheus,
            config,
            windows,
            warned: Default::default(),
        })
    }

    /// The window semantics the queries are written for.
    pub fn windows(&self) -> Windows {
        self.windows
    }

    async fn query(&self, what: &str, expr: &str, span: &[HourWindow]) -> Result<Vec<Series>> {
        self.query_from(what, expr, span, 0).await
    }

    /// The queries `qs` side by side, their series together (the halves of a CPU query, whose
    /// namespaces do not overlap).
    async fn query_together(
        &self,
        what: &str,
        qs: &[String],
        span: &[HourWindow],
    ) -> Result<Vec<Series>> {
        let Some((first, rest)) = qs.split_first() else {
            return Ok(Vec::new());
        };
        let (mut series, more) = tokio::try_join!(
            self.query(what, first, span),
            Box::pin(self.query_together(what, rest, span)),
        )?;
        series.extend(more);
        Ok(series)
    }

    /// Query the hours of `span`, and `context` hours before it.
    async fn query_from(
        &self,
        what: &str,
        expr: &str,
        span: &[HourWindow],
        context: i64,
    ) -> Result<Vec<Series>> {
        let (first, last) = match (span.first(), span.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Ok(Vec::new()),
        };
        Ok(self
            .prometheus
            .query_range(&RangeQuery {
                what,
                expr,
                start: first.end() - chrono::TimeDelta::hours(context),
                end: last.end(),
                step: Duration::from_secs(3600),
            })
            .await?)
    }

    /// Per namespace billed, its sample counts in the span's hours, the scrape interval and
    /// the weight of a gauge sample ([`interval`]), read with the context hours the interval
    /// needs.
    async fn sample_counts(&self, span: &[HourWindow]) -> Result<interval::Counts> {
        let context = interval::INTERVAL_HOURS.saturating_sub(span.len()) as i64;
        let counts_q = queries::namespace_samples(self.windows);
        let answer = self
            .query_from("namespaces", &counts_q, span, context)
            .await?;
        // Before the counts: two clusters' series look like a second exporter to them.
        labels::one_cluster(
            &answer,
            span,
            &self.config.cluster_label,
            self.prometheus.is_scoped(),
        )?;
        let counts = interval::read_counts(
            answer,
            span,
            self.config.scrape_interval,
            &self.config.reference_namespace,
        )?;
        info!(scrape_interval = ?counts.interval, "integrating gauges");
        Ok(counts)
    }

    /// Collect the hours of `span` (consecutive hours) the store holds in full, and say which
    /// hour waits for its data ([`timeline`]): evenly scraped hours together, one query per
    /// dimension; an unevenly scraped hour (a hole, a changed interval) alone, its gauges
    /// weighed per segment.
    #[instrument(skip_all, fields(from = %span.first().map(|w| rfc3339(w.start())).unwrap_or_default(), hours = span.len()))]
    pub async fn collect_span(&self, span: &[HourWindow]) -> Result<Collected> {
        let time = self.time_of(span).await?;
        self.collect_span_at(span, &time).await
    }

    /// [`Collector::collect_span`] with the store's time of `span` read already
    /// ([`Collector::time_of`]; `check` shows it before it collects).
    pub async fn collect_span_at(
        &self,
        span: &[HourWindow],
        time: &StoreTime,
    ) -> Result<Collected> {
        // A node's GPU model changed in an hour (requests source with --gpu-model): the
        // hours before it are billed, and that one is refused.
        if let Some((at, refusal)) = self.gpu_model_changed(span).await? {
            let mut collected = Box::pin(self.collect_span_at(&span[..at], time)).await?;
            if collected.waiting.is_none() && collected.refused.is_none() {
                collected.refused = Some(refusal);
            }
            return Ok(collected);
        }
        match self.collect_hours(span, time).await {
            // The reference namespaces are held further than the others: the hours before
            // are billed, and this one waits like an hour whose sources lag.
            Err(CollectError::AheadOfOthers {
                end,
                namespace,
                reached,
                ..
            }) if !self.config.bill_incomplete
                && let Some(at) = span.iter().position(|h| h.end().timestamp() == end) =>
            {
                let mut collected = Box::pin(self.collect_hours(&span[..at], time)).await?;
                collected.waiting = Some(Waiting {
                    hour: span[at],
                    source: format!(
                        "{} outside the reference namespaces (which, like {namespace}, the store \
                         holds further)",
                        queries::KSM
                    ),
                    newest: Some(reached),
                });
                Ok(collected)
            }
            other => other,
        }
    }

    /// The first hour of `span` in which a node's GPU model label changed, with its refusal
    /// ([`queries::gpu_model_changes`]); read only with `--gpu-model` on the requests source.
    async fn gpu_model_changed(
        &self,
        span: &[HourWindow],
    ) -> Result<Option<(usize, CollectError)>> {
        if span.is_empty()
            || self.config.gpu_source != GpuSource::Requests
            || self.config.gpu_models.is_empty()
        {
            return Ok(None);
        }
        let q = queries::gpu_model_changes(self.windows);
        let answer = self.query("gpu model changes", &q, span).await?;
        let first = answer
            .iter()
            .flat_map(|s| s.points.iter().map(move |(t, v)| (*t, v, s)))
            .filter(|(_, v, _)| **v > 1.0)
            .min_by_key(|(t, _, _)| *t);
        let Some((t, v, s)) = first else {
            return Ok(None);
        };
        let Some(at) = span.iter().position(|h| h.end().timestamp() == t) else {
            return Ok(None);
        };
        Ok(Some((
            at,
            CollectError::GpuModelChanged {
                hour: span[at].to_string(),
                node: s.labels.get("node").cloned().unwrap_or_default(),
                models: *v as usize,
            },
        )))
    }

    /// The hours of `span` the store holds in full, per [`Collector::collect_span_at`].    /// The hours of `span` the store holds in full, per [`Collector::collect_span_at`].
    async fn collect_hours(&self, span: &[HourWindow], time: &StoreTime) -> Result<Collected> {
        let (complete, waiting) = match time.waiting(span) {
            Some(w) if self.config.bill_incomplete => {
                warn!(
                    hour = %w.hour, source = %w.source, newest = %w.newest_text(), lag = ?w.lag(),
                    "the store does not hold this hour in full yet; billing it anyway \
                     (--bill-incomplete): what arrives later is never billed"
                );
                (span, None)
            }
            Some(w) => {
                let at = span.iter().position(|h| *h == w.hour).unwrap_or(span.len());
                (&span[..at], Some(w))
            }
            None => (span, None),
        };
        let mut parts: Vec<(Vec<HourWindow>, Option<timeline::Weighing>)> = Vec::new();
        for hour in complete {
            let weighing = match time.weigh(hour, self.config.max_scrape_gap) {
                Ok(w) => w,
                Err(timeline::Unweighable::NoSamples) => {
                    return Err(CollectError::NoData {
                        hour: hour.to_string(),
                        end: rfc3339(hour.end()),
                    });
                }
                Err(timeline::Unweighable::TooLong(gap)) => {
                    return Err(CollectError::ScrapeGap {
                        hour: hour.to_string(),
                        from: rfc3339_millis(gap.from),
                        to: rfc3339_millis(gap.to),
                        minutes: gap.len().as_secs_f64() / 60.0,
                        limit: humantime::format_duration(self.config.max_scrape_gap).to_string(),
                    });
                }
            };
            match (&weighing, parts.last_mut()) {
                (timeline::Weighing::Even, Some((hours, None))) => hours.push(*hour),
                (timeline::Weighing::Even, _) => parts.push((vec![*hour], None)),
                (
                    timeline::Weighing::Segments {
                        gaps, intervals, ..
                    },
                    _,
                ) => {
                    info!(
                        hour = %hour,
                        holes = gaps.len(),
                        longest_hole_s = gaps.iter().map(|g| g.len().as_secs()).max().unwrap_or(0),
                        intervals_s = ?intervals.iter().map(|i| *i as f64 / 1000.0).collect::<Vec<_>>(),
                        "kube-state-metrics was scraped unevenly in this hour: each sample is \
                         weighed by the time it stands for"
                    );
                    parts.push((vec![*hour], Some(weighing)));
                }
            }
        }
        // Which pods hold devices through DRA (requests source): one small read beside the
        // hours' queries; the hours' error, if any, is the run's news first.
        let dra = async {
            if self.config.gpu_source == GpuSource::Requests && !complete.is_empty() {
                self.dra_unseen(complete).await
            } else {
                Ok(BTreeSet::new())
            }
        };
        let hours = async {
            let mut usages = Vec::with_capacity(parts.len());
            for (hours, weighing) in &parts {
                let segments = match weighing {
                    Some(timeline::Weighing::Segments { segments, .. }) => {
                        Some(segments.as_slice())
                    }
                    _ => None,
                };
                usages.push(self.collect_part(hours, segments).await?);
            }
            Ok::<_, CollectError>(usages)
        };
        // Which Running pods reserve more than kube-state-metrics shows (pod-level requests):
        // one instant read at the span's end, beside the hours' queries.
        let unseen = async {
            // Only where the bill claims what Kubernetes reserves from kube-state-metrics (the
            // pod model of the request basis or of memory): the containers model and the
            // `max` basis bill containers by definition, and the usage basis no request.
            let pod_model = self.config.request_model == RequestModel::Pod
                && (self.config.cpu_basis == CpuBasis::Request || self.config.bill_memory);
            if pod_model && !complete.is_empty() {
                self.requests_unseen(complete, time.scheduler_seen).await
            } else {
                Ok(BTreeMap::new())
            }
        };
        let (usages, dra_unseen, requests_unseen) = tokio::join!(hours, dra, unseen);
        let (usages, dra_unseen, requests_unseen) = (usages?, dra_unseen?, requests_unseen?);
        Ok(Collected {
            usage: SpanUsage::join(
                usages,
                self.config.bill_memory,
                self.config.gpu_models.keys(),
            ),
            waiting,
            dra_unseen,
            requests_unseen: requests_unseen.len(),
            refused: None,
        })
    }

    /// The store's time for `span`: kube-state-metrics' scrape timeline around it, and each
    /// source's newest sample from a few hours before it to after it. Two small queries side
    /// by side.
    pub async fn time_of(&self, span: &[HourWindow]) -> Result<StoreTime> {
        let (Some(first), Some(last)) = (span.first(), span.last()) else {
            return Ok(StoreTime::default());
        };
        let margin = self.config.max_scrape_gap + Duration::from_secs(60);
        let margin_ms = margin.as_millis();
        let span_ms = u128::try_from((last.end() - first.start()).num_milliseconds()).unwrap_or(0);
        let reference = &self.config.reference_namespace;
        let at = last.end() + chrono::TimeDelta::from_std(margin).unwrap_or_default();
        let times_q = queries::scrape_times(self.windows, reference, span_ms + 2 * margin_ms);
        let usage = self.config.cpu_basis != CpuBasis::Request;
        let devices = self.config.gpu_source == GpuSource::Devices;
        let gpu_models = !devices && !self.config.gpu_models.is_empty();
        let scheduler = self.config.request_model == RequestModel::Scheduler;
        let provenance = self.prometheus.provenance();
        let newest_q = queries::newest_samples(
            reference,
            queries::Sources {
                usage,
                devices,
                gpu_models,
                scheduler,
            },
            &provenance.targets(crate::provenance::Source::KubeStateMetrics),
            &provenance.targets(crate::provenance::Source::DcgmExporter),
        );
        let targets_from = first.start() - chrono::TimeDelta::hours(1);
        let lookback = chrono::TimeDelta::hours(NEWEST_LOOKBACK_HOURS);
        let (samples, newest, targets) = tokio::try_join!(
            async {
                Ok::<_, CollectError>(
                    self.prometheus
                        .query_samples(&SampleQuery {
                            what: "scrape times",
                            expr: &times_q,
                            at,
                        })
                        .await?,
                )
            },
            async {
                Ok(self
                    .prometheus
                    .query_range(&RangeQuery {
                        what: "newest samples",
                        expr: &newest_q,
                        start: first.start() - lookback,
                        end: at,
                        step: NEWEST_STEP,
                    })
                    .await?)
            },
            self.targets_of(span, at),
        )?;
        let timeline = timeline::Timeline::new(
            samples
                .iter()
                .map(|s| {
                    let namespace = s.labels.get("namespace").cloned().unwrap_or_default();
                    (namespace, s.points.iter().map(|(t, _)| *t).collect())
                })
                .collect(),
        );
        let mut sources: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for source in [
            queries::KSM,
            "kube_pod_status_phase",
            "kube_pod_container_resource_requests",
        ] {
            sources.insert(source.to_string(), None);
        }
        if usage {
            sources.insert(queries::CADVISOR.to_string(), None);
        }
        if devices {
            sources.insert(queries::DCGM.to_string(), None);
        }
        if scheduler {
            for source in [queries::SCHEDULER_METRIC, "kube_pod_status_qos_class"] {
                sources.insert(source.to_string(), None);
            }
        }
        if gpu_models {
            for source in ["kube_pod_info", "kube_node_labels"] {
                sources.insert(source.to_string(), None);
            }
        }
        let mut store = None;
        let mut scheduler_seen = false;
        for s in &newest {
            let Some(source) = s.labels.get("source") else {
                continue;
            };
            scheduler_seen |= source == queries::SCHEDULER_METRIC && !s.points.is_empty();
            let newest = s
                .points
                .iter()
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            if !newest.is_finite() {
                continue;
            }
            let newest = (newest * 1000.0).round() as i64;
            if source == queries::STORE {
                store = Some(newest);
            } else if let Some(slot) = sources.get_mut(source) {
                *slot = Some(newest);
            }
        }
        // The store's time for this cluster: kube-state-metrics' targets' `up`, else the
        // newest of the sources themselves.
        let frontier = store.max(sources.values().flatten().copied().max());
        let looked_from = (first.start() - lookback).timestamp_millis();
        if sources.get(queries::KSM).is_some_and(Option::is_none) {
            // Scraped without honor_labels, the reference's namespace is the exporter's own:
            // that is the news, not a missing namespace.
            let labels_q = queries::data_labels(self.windows, false);
            labels::check(&self.query("data labels", &labels_q, span).await?, span)?;
            // Data after the span: the store lost these hours (retention, an outage), it does
            // not lag.
            if self.samples_after(last.end()).await? {
                return Err(CollectError::NoData {
                    hour: first.to_string(),
                    end: rfc3339(first.end()),
                });
            }
            if self.prometheus.is_scoped() {
                self.selector_matches_something(at).await?;
            }
            self.believed_somewhere(queries::KSM, at).await?;
            self.stopped(&sources, frontier, looked_from, true)?;
            return Err(CollectError::NoReference {
                namespace: reference.clone(),
                from: rfc3339(first.start() - lookback),
                to: rfc3339(at),
            });
        }
        // The namespaces are there but a family the bill reads is not: every namespace would
        // be billed 0 for it. A namespace may use nothing; a whole cluster may not.
        if let Some((source, _)) = sources.iter().find(|(_, t)| t.is_none()) {
            self.believed_somewhere(source, at).await?;
            self.stopped(&sources, frontier, looked_from, false)?;
            let (whence, advice) = missing_source(source, reference);
            return Err(CollectError::MissingSource {
                metric: queries::source_metric(source).to_string(),
                whence,
                advice,
                from: rfc3339(first.start() - lookback),
                to: rfc3339(at),
            });
        }
        self.target_stopped(&targets, frontier)?;
        self.stopped(&sources, frontier, looked_from, false)?;
        Ok(StoreTime {
            timeline,
            sources,
            scheduler_seen,
            targets,
            targets_from: targets_from.timestamp_millis(),
        })
    }

    /// Per kube-state-metrics target, its data's and its `up`'s times around `span`
    /// ([`queries::target_times`]), read where they say something: over the span's last
    /// minutes for every target (is it current?), which targets wrote in the hour before the
    /// span ([`queries::targets_before`]), and the whole range, from the hour before the span,
    /// only for a target that started or stopped around it (a restart, a shard added or
    /// removed, a stall). A target that wrote before the span and is current at its end is
    /// taken to have written through it.
    async fn targets_of(
        &self,
        span: &[HourWindow],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<BTreeMap<String, timeline::TargetTime>> {
        let (Some(first), Some(last)) = (span.first(), span.last()) else {
            return Ok(BTreeMap::new());
        };
        let ksm = self
            .prometheus
            .provenance()
            .targets(crate::provenance::Source::KubeStateMetrics);
        let from = first.start() - chrono::TimeDelta::hours(1);
        // The last minutes: longer than the completeness tolerance (an interval and jitter)
        // before the span's end, and a step after it (a sample on the hour's edge).
        let tail_from = last.end() - chrono::TimeDelta::minutes(8);
        let tail_to = last.end() + chrono::TimeDelta::from_std(NEWEST_STEP).unwrap_or_default();
        let (tail_q, before_q) = (
            queries::target_times(&ksm, ""),
            queries::targets_before(self.windows),
        );
        let (tail_read, before_read) = (
            RangeQuery {
                what: "kube-state-metrics targets' times",
                expr: &tail_q,
                start: tail_from,
                end: tail_to.min(at),
                step: NEWEST_STEP,
            },
            RangeQuery {
                what: "kube-state-metrics targets before the span",
                expr: &before_q,
                start: first.start(),
                end: first.start(),
                step: Duration::from_secs(3600),
            },
        );
        let (tail, before) = tokio::try_join!(
            self.prometheus.query_range(&tail_read),
            self.prometheus.query_range(&before_read),
        )?;
        let mut targets = target_times(&tail);
        let wrote_before: BTreeSet<String> = before
            .iter()
            .filter(|s| s.points.iter().any(|(_, v)| *v > 0.0))
            .filter_map(|s| s.labels.get("instance").cloned())
            .collect();
        let tail_ms = tail_from.timestamp_millis();
        let current = |t: &timeline::TargetTime| t.newest().is_some_and(|n| n >= tail_ms);
        let changed: BTreeSet<String> = wrote_before
            .iter()
            .filter(|i| !targets.get(*i).is_some_and(current))
            .chain(
                targets
                    .iter()
                    .filter(|(i, t)| current(t) && !wrote_before.contains(*i))
                    .map(|(i, _)| i),
            )
            .cloned()
            .collect();
        if !changed.is_empty() {
            let instances: Vec<String> = changed.iter().map(|i| regex::escape(i)).collect();
            let whole_q = queries::target_times(&ksm, &instances.join("|").replace('\\', "\\\\"));
            let whole = self
                .prometheus
                .query_range(&RangeQuery {
                    what: "kube-state-metrics targets that started or stopped",
                    expr: &whole_q,
                    start: from,
                    end: at,
                    step: NEWEST_STEP,
                })
                .await?;
            for (instance, t) in target_times(&whole) {
                targets.insert(instance, t);
            }
        }
        // Those that wrote before and are current: written through the span (a sample at the
        // read's start stands for that; their first in the tail is no start).
        let from_ms = from.timestamp_millis();
        for instance in wrote_before.iter().filter(|i| !changed.contains(*i)) {
            if let Some(t) = targets.get_mut(instance) {
                t.data.insert(0, from_ms);
            }
        }
        Ok(targets)
    }

    /// A source that stays behind the store's time by more than `--max-source-silence` has
    /// stopped (an exporter uninstalled or stalled, a reference namespace deleted): an error
    /// that pages, not lag to wait for. `looked_from` is where the newest samples were looked
    /// for: with `missing`, a source without one there is at least that far behind (the
    /// reference namespaces gone while kube-state-metrics' targets are scraped); without it such
    /// a source is left to [`CollectError::MissingSource`], which also covers one never scraped.
    fn stopped(
        &self,
        sources: &BTreeMap<String, Option<i64>>,
        frontier: Option<i64>,
        looked_from: i64,
        missing: bool,
    ) -> Result<()> {
        let Some(frontier) = frontier else {
            return Ok(());
        };
        let limit = i64::try_from(self.config.max_source_silence.as_millis()).unwrap_or(i64::MAX);
        let behind = sources
            .iter()
            .filter(|(_, t)| missing || t.is_some())
            .map(|(source, t)| (source, *t, frontier - t.unwrap_or(looked_from)))
            .filter(|(_, _, behind)| *behind > limit)
            .max_by_key(|(_, _, behind)| *behind);
        let Some((source, newest, behind)) = behind else {
            return Ok(());
        };
        let metric = queries::source_metric(source);
        Err(CollectError::SourceStopped {
            // kube-state-metrics' families are sources of their own, of one exporter.
            exporter: crate::provenance::Source::of_metric(metric)
                .map_or_else(|| source.clone(), |s| s.name().to_string()),
            what: match source.as_str() {
                queries::DCGM | "kube_node_labels" => queries::source_metric(source).to_string(),
                _ => format!(
                    "{} in the reference namespaces {}",
                    queries::source_metric(source),
                    self.config.reference_namespace
                ),
            },
            newest: newest
                .map(rfc3339_millis)
                .unwrap_or_else(|| format!("none since {}", rfc3339_millis(looked_from))),
            store: rfc3339_millis(frontier),
            behind: humantime::format_duration(Duration::from_secs(
                u64::try_from(behind / 1000).unwrap_or(0),
            ))
            .to_string(),
            limit: humantime::format_duration(self.config.max_source_silence).to_string(),
        })
    }

    /// A kube-state-metrics target that Prometheus still scrapes while its data stays behind
    /// the store's time by more than `--max-source-silence`, and another target is current,
    /// has stopped: a shard whose scrapes fail (a hung or crash-looping pod, a shard that lost
    /// its API watch), never billed lag. When none is current, the exporter as a whole has
    /// stopped, which [`Collector::stopped`] says.
    fn target_stopped(
        &self,
        targets: &BTreeMap<String, timeline::TargetTime>,
        frontier: Option<i64>,
    ) -> Result<()> {
        let Some(frontier) = frontier else {
            return Ok(());
        };
        let limit = i64::try_from(self.config.max_source_silence.as_millis()).unwrap_or(i64::MAX);
        if !targets
            .values()
            .any(|t| t.newest().is_some_and(|n| frontier - n <= limit))
        {
            return Ok(());
        }
        let behind = targets
            .iter()
            .filter_map(|(instance, t)| Some((instance, t.newest()?, t.up?)))
            .filter(|(_, _, up)| frontier - up <= limit)
            .map(|(instance, newest, _)| (instance, newest, frontier - newest))
            .filter(|(_, _, behind)| *behind > limit)
            .max_by_key(|(_, _, behind)| *behind);
        let Some((instance, newest, behind)) = behind else {
            return Ok(());
        };
        Err(CollectError::SourceStopped {
            exporter: target_name(instance),
            what: "the kube_namespace_status_phase series of this shard or replica (its up is \
                   still written: Prometheus scrapes it, and the scrapes fail or its series \
                   are lost on their way)"
                .to_string(),
            newest: rfc3339_millis(newest),
            store: rfc3339_millis(frontier),
            behind: humantime::format_duration(Duration::from_secs(
                u64::try_from(behind / 1000).unwrap_or(0),
            ))
            .to_string(),
            limit: humantime::format_duration(self.config.max_source_silence).to_string(),
        })
    }

    /// When a source's believed series are missing: whether other jobs write its metric.
    /// Then the default matchers miss the platform's exporter (another job name), or only a
    /// tenant writes it; either way the operator must say which job is the platform's.
    async fn believed_somewhere(
        &self,
        source: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let metric = queries::source_metric(source);
        let Some(kind) = crate::provenance::Source::of_metric(metric) else {
            return Ok(());
        };
        let matchers = self.prometheus.provenance().of(kind);
        if matchers.is_empty() {
            return Ok(());
        }
        let q = queries::jobs_writing_recently(metric, NEWEST_LOOKBACK_HOURS);
        let answer = self
            .prometheus
            .query_range_every_job(&RangeQuery {
                what: "jobs writing a source's metric (outside its provenance)",
                expr: &q,
                start: at,
                end: at,
                step: Duration::from_secs(3600),
            })
            .await?;
        if answer.is_empty() {
            return Ok(());
        }
        let jobs: Vec<String> = answer
            .iter()
            .map(|s| {
                let job = s.labels.get("job").map(String::as_str).unwrap_or("");
                let n = s.points.last().map(|(_, v)| *v).unwrap_or(0.0);
                format!("{job:?} ({n} series)")
            })
            .collect();
        Err(CollectError::NotBelieved {
            exporter: kind.name(),
            metric: metric.to_string(),
            matchers: matchers.to_string(),
            jobs: jobs.join(", "),
            flag: kind.flag(),
            env: kind.env(),
        })
    }

    /// When `--prometheus-selector` is set and the store holds nothing within it: whether the
    /// store holds the reference namespace without the selector, and with which values of the
    /// cluster label. A typo in the selector (`cluster="eats"`) then says so, instead of
    /// reading as lost data (whose remedy, moving the checkpoint, would skip billing data that
    /// exists).
    async fn selector_matches_something(&self, at: chrono::DateTime<chrono::Utc>) -> Result<()> {
        let label = &self.config.cluster_label;
        let q = format!(
            "group by ({label}) (last_over_time(kube_namespace_status_phase{{namespace=~\"{}\"}}[1h]))",
            self.config.reference_namespace
        );
        let answer = self
            .prometheus
            .query_range_unscoped(&RangeQuery {
                what: "cluster label values (outside the selector)",
                expr: &q,
                start: at,
                end: at,
                step: Duration::from_secs(3600),
            })
            .await?;
        if answer.is_empty() {
            return Ok(());
        }
        let mut values: Vec<String> = answer
            .iter()
            .map(|s| {
                s.labels
                    .get(label)
                    .map_or_else(|| "(none)".to_string(), |v| format!("{v:?}"))
            })
            .collect();
        values.sort();
        values.dedup();
        Err(CollectError::SelectorMatchesNothing {
            selector: self.prometheus.scope_text(),
            label: label.clone(),
            values: values.join(", "),
        })
    }

    /// Whether the store holds a sample of the reference namespace's phase between `after`
    /// and the run's clock: one count of few samples, sent only when the span has none.
    async fn samples_after(&self, after: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        let now = self.config.now.max(after);
        let len = u128::try_from((now - after).num_milliseconds()).unwrap_or(0);
        if len == 0 {
            return Ok(false);
        }
        let q = queries::samples_since(self.windows, &self.config.reference_namespace, len);
        let answer = self
            .prometheus
            .query_range(&RangeQuery {
                what: "samples after the hours",
                expr: &q,
                start: now,
                end: now,
                step: Duration::from_secs(3600),
            })
            .await?;
        Ok(answer.iter().flat_map(|s| &s.points).any(|(_, v)| *v > 0.0))
    }

    /// Collect every hour of `span` (consecutive hours), one query per dimension; `segments`
    /// weighs the gauges of a one-hour span scraped unevenly. What needs nothing from the
    /// sample counts goes beside them: GPU, storage, and the CPU the bases can ask for without
    /// them. With 2 cores, this saves the counts' time from every run's wall time.
    async fn collect_part(
        &self,
        span: &[HourWindow],
        segments: Option<&[queries::Segment]>,
    ) -> Result<SpanUsage> {
        let weigh = segments.map(SampleWeight::Segments);
        let devices = self.config.gpu_source == GpuSource::Devices;
        let models = self.config.gpu_models.keys();
        // Requests in parts of a many-segment hour ([`queries::segment_parts`]).
        let parts = queries::segment_parts(weigh);
        let (gpu_q, storage_q): (Vec<String>, String) = (
            parts
                .iter()
                .map(|weigh| {
                    queries::gpu(
                        self.windows,
                        self.config.request_model,
                        *weigh,
                        !devices && !models.is_empty(),
                    )
                })
                .collect(),
            queries::storage(self.windows, weigh),
        );
        let memory_q: Vec<String> = if self.config.bill_memory {
            parts
                .iter()
                .map(|weigh| queries::memory(self.windows, self.config.request_model, *weigh))
                .collect()
        } else {
            Vec::new()
        };
        let labels_q =
            queries::data_labels(self.windows, self.config.request_model == RequestModel::Pod);
        // With the scheduler's requests: the pods it did not see, which it would bill 0.
        let unseen_q = (self.config.request_model == RequestModel::Scheduler)
            .then(|| queries::unseen_by_scheduler(self.windows));
        // The data's labels are judged first: exported labels make the other answers fail in
        // misleading ways, or pass wrong. (Several clusters are judged from the namespaces'
        // answer, before its counts: [`Collector::sample_counts`].)
        let (data_labels, answers) =
            tokio::join!(self.query("data labels", &labels_q, span), async {
                tokio::try_join!(
                    self.counts_and_cpu(span, weigh),
                    async {
                        if devices {
                            self.gpu_from_devices(span).await
                        } else {
                            Ok(add_up(self.query_together("gpu", &gpu_q, span).await?))
                        }
                    },
                    self.query("storage", &storage_q, span),
                    async {
                        Ok(add_up(
                            self.query_together("memory", &memory_q, span).await?,
                        ))
                    },
                    async {
                        match &unseen_q {
                            Some(q) => self.query("pods unseen by the scheduler", q, span).await,
                            None => Ok(Vec::new()),
                        }
                    },
                )
            });
        labels::check(&data_labels?, span)?;
        let ((counts, cpu), gpu, storage, memory, unseen) = match answers {
            Ok(answers) => answers,
            Err(e @ CollectError::MixedClusters { .. }) => return Err(e),
            // An unreachable or busy Prometheus is the news as it is (and asking it again
            // would only wait for its retries twice).
            Err(e) if matches!(&e, CollectError::Prometheus(p) if p.is_retryable()) => {
                return Err(e);
            }
            Err(e) => {
                // Several clusters make other queries fail in misleading ways (a join finding a
                // PVC twice, "a second exporter"), and the failure may have cancelled the
                // namespaces' answer they are judged from: judge them again, so that the
                // clusters are the news.
                self.one_cluster_again(span).await?;
                return Err(e);
            }
        };
        scheduler_saw_every_pod(&unseen, span, |ns| self.excluded(ns))?;
        let weights = Some(&counts.weights);
        // Counters (usage) are not samples; the max basis weighs in its query.
        let cpu_weights = (self.config.cpu_basis == CpuBasis::Request).then_some(&counts.weights);
        let (cpu_what, exact_what) = match self.config.cpu_basis {
            CpuBasis::Request => ("cpu (request)", ""),
            CpuBasis::Usage => ("cpu (usage)", "cpu (usage, fallen counters)"),
            CpuBasis::Max => ("cpu (max)", "cpu (max, fallen counters)"),
        };
        let excluded = |namespace: &str| self.excluded(namespace);
        let by_namespace = |what, series, weights| Answer {
            what,
            grouped_by: BY_NAMESPACE,
            series,
            weights,
        };
        let to = |d: Dimension| move |_: &Series| Ok(Adds::To(d, 1.0));

        let mut usage = SpanUsage::new(span, self.config.bill_memory, models.clone());
        usage.add(
            by_namespace("namespaces", counts.namespaces, None),
            excluded,
            |_| Ok(Adds::Nothing),
        )?;
        usage.add(
            by_namespace(cpu_what, cpu.steady, cpu_weights),
            excluded,
            to(Dimension::Cpu),
        )?;
        usage.add(
            by_namespace(exact_what, cpu.exact, cpu_weights),
            excluded,
            to(Dimension::Cpu),
        )?;
        usage.add(
            by_namespace("memory", memory, weights),
            excluded,
            to(Dimension::Ram),
        )?;
        let mut unknown = BTreeSet::new();
        if devices {
            // GPU-hours already, per namespace and model key.
            let gpu_answer = Answer {
                what: "gpu (devices)",
                grouped_by: &["namespace", "model"],
                series: gpu,
                weights: None,
            };
            usage.add(gpu_answer, excluded, |s| {
                let key = s.labels.get("model").map(String::as_str).unwrap_or("");
                Ok(match models.iter().position(|k| k == key) {
                    Some(i) => Adds::ToModel(i, 1.0),
                    None => Adds::To(Dimension::Gpu, 1.0),
                })
            })?;
        } else {
            let gpu_answer = Answer {
                what: "gpu",
                grouped_by: &["namespace", "resource", "model"],
                series: gpu,
                weights,
            };
            let held = |s: &Series| s.points.iter().any(|(_, v)| *v > 0.0);
            usage.add(gpu_answer, excluded, |s| {
                // kube-scheduler names the resource as Kubernetes does (`nvidia.com/gpu`),
                // kube-state-metrics as a label name; the weights know the latter.
                let resource = crate::gpu::ksm_name(
                    s.labels.get("resource").map(String::as_str).unwrap_or(""),
                );
                let resource = resource.as_str();
                Ok(match self.config.gpu_weights.weight(resource) {
                    Weight::Known(w) if models.is_empty() || !held(s) => {
                        Adds::To(Dimension::Gpu, w)
                    }
                    // `--gpu-model`: the node's GPU model names the key.
                    Weight::Known(w) => {
                        let namespace = s.labels.get("namespace").cloned().unwrap_or_default();
                        let hour = s
                            .points
                            .iter()
                            .find(|(_, v)| *v > 0.0)
                            .map(|(t, _)| validate::hour_of(span, *t))
                            .unwrap_or_default();
                        let model = s.labels.get("model").map(String::as_str).unwrap_or("");
                        if model.is_empty() {
                            return Err(CollectError::GpuModelUnknown {
                                namespace,
                                resource: resource.to_string(),
                                hour,
                            });
                        }
                        let key = self.config.gpu_models.key(model).ok_or_else(|| {
                            CollectError::UnmappedGpuModel {
                                model: model.to_string(),
                                hour: hour.clone(),
                            }
                        })?;
                        match models.iter().position(|k| k == key) {
                            Some(i) => Adds::ToModel(i, w),
                            None => Adds::To(Dimension::Gpu, w),
                        }
                    }
                    Weight::Unknown => {
                        unknown.insert(resource.to_string());
                        Adds::Nothing
                    }
                    Weight::SharedUnconfigured if held(s) => {
                        return Err(CollectError::SharedGpu {
                            resource: resource.to_string(),
                        });
                    }
                    Weight::SharedUnconfigured => Adds::Nothing,
                })
            })?;
        }
        for resource in unknown
            .into_iter()
            .filter(|r| self.first_warning(&format!("gpu {r}")))
        {
            warn!(
                resource,
                "a GPU-like extended resource has no weight and is billed 0; set \
                 --gpu-resource <name>=<GPUs per unit>"
            );
        }
        let mut unmapped = BTreeSet::new();
        let storage_answer = Answer {
            what: "storage",
            grouped_by: &["namespace", "storageclass", "rwx"],
            series: storage,
            weights,
        };
        usage.add(storage_answer, excluded, |s| {
            if s.labels.get("rwx").map(String::as_str) != Some("true") {
                return Ok(Adds::To(Dimension::StorageRwoStandard, 1.0));
            }
            let class = s
                .labels
                .get("storageclass")
                .map(String::as_str)
                .unwrap_or("");
            let tier = self.config.storage_tiers.get(class).copied();
            if tier.is_none() {
                unmapped.insert(class.to_string());
            }
            Ok(Adds::To(tier.unwrap_or(Tier::Standard).dimension(), 1.0))
        })?;
        for class in unmapped
            .into_iter()
            .filter(|c| self.first_warning(&format!("class {c}")))
        {
            warn!(
                storageclass = class,
                "RWX StorageClass has no tier (--storage-tier); billing it as standard"
            );
        }
        Ok(usage)
    }

    /// The pods of `span` that hold devices through Dynamic Resource Allocation, which the
    /// requests source bills 0 (they request no extended resource): Running pods with a
    /// ResourceClaim (`kube_pod_resourceclaim_info`), and pods dcgm-exporter attributes a
    /// device to through `dra_*` labels. One small read of two families absent from clusters
    /// without DRA (an index lookup); the pods' phases are read only when claims exist.
    /// Warned about once per run, naming `--gpu-source devices`.
    pub async fn dra_unseen(&self, span: &[HourWindow]) -> Result<BTreeSet<(String, String)>> {
        let claims_q = queries::dra_claims(self.windows);
        let answer = self.query("dra claims", &claims_q, span).await?;
        let mut by_hour: BTreeMap<i64, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut claimed: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
        for s in &answer {
            let get = |k: &str| s.labels.get(k).filter(|v| !v.is_empty()).cloned();
            let pod = match (get("exported_namespace"), get("exported_pod")) {
                (Some(ns), Some(pod)) => (ns, pod),
                _ => match (get("namespace"), get("pod")) {
                    (Some(ns), Some(pod)) => (ns, pod),
                    _ => continue,
                },
            };
            if !crate::usage::is_namespace_name(&pod.0) || self.excluded(&pod.0) {
                continue;
            }
            let hours = s.points.iter().map(|(t, _)| *t);
            if s.labels.get("via").map(String::as_str) == Some("dcgm") {
                for t in hours {
                    by_hour.entry(t).or_default().insert(pod.clone());
                }
            } else {
                claimed.entry(pod).or_default().extend(hours);
            }
        }
        if !claimed.is_empty() {
            let namespaces: BTreeSet<&str> = claimed.keys().map(|(ns, _)| ns.as_str()).collect();
            let running_q = queries::running_pods(
                self.windows,
                &namespaces.into_iter().collect::<Vec<_>>().join("|"),
            );
            for s in self.query("dra claims (running)", &running_q, span).await? {
                let (Some(ns), Some(pod)) = (s.labels.get("namespace"), s.labels.get("pod")) else {
                    continue;
                };
                let key = (ns.clone(), pod.clone());
                let Some(hours) = claimed.get(&key) else {
                    continue;
                };
                for (t, _) in s.points.iter().filter(|(t, _)| hours.contains(t)) {
                    by_hour.entry(*t).or_default().insert(key.clone());
                }
            }
        }
        let pods: BTreeSet<(String, String)> = by_hour.into_values().flatten().collect();
        if !pods.is_empty() && self.first_warning("dra") {
            let shown: Vec<String> = pods
                .iter()
                .take(5)
                .map(|(n, p)| format!("{n}/{p}"))
                .collect();
            warn!(
                pods = pods.len(),
                first = %shown.join(", "),
                "pods hold devices through Dynamic Resource Allocation (ResourceClaims), which \
                 request no extended resource: --gpu-source requests bills their GPUs 0. Bill \
                 GPUs as the devices report them with --gpu-source devices (dcgm-exporter; \
                 README, GPUs)"
            );
        }
        Ok(pods)
    }

    /// GPU-hours of `span` from the devices (`--gpu-source devices`), one hour at a time: as
    /// series labelled `namespace` and `model` (the model key, `""` without `--gpu-model`),
    /// one point per hour at its end, for [`SpanUsage::add`].
    async fn gpu_from_devices(&self, span: &[HourWindow]) -> Result<Vec<Series>> {
        let mut out: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
        for hour in span {
            let held = self.device_hour(hour).await?;
            for profile in held
                .unweighted
                .iter()
                .filter(|p| self.first_warning(&format!("mig {p}")))
            {
                warn!(
                    profile = %profile,
                    resource = %dcgm::mig_resource(profile),
                    "a MIG profile has no weight and its instances are billed 0; set \
                     --gpu-resource nvidia.com/mig-<profile>=<GPUs per instance>"
                );
            }
            if let Some(model) = held.unmapped.first() {
                return Err(if model.is_empty() {
                    CollectError::UnnamedGpuModel {
                        hour: hour.to_string(),
                    }
                } else {
                    CollectError::UnmappedGpuModel {
                        model: model.clone(),
                        hour: hour.to_string(),
                    }
                });
            }
            for ((namespace, key), secs) in held.held {
                out.entry((namespace, key))
                    .or_default()
                    .push((hour.end().timestamp(), secs / 3600.0));
            }
        }
        Ok(out
            .into_iter()
            .map(|((namespace, model), points)| Series {
                labels: BTreeMap::from([
                    ("namespace".to_string(), namespace),
                    ("model".to_string(), model),
                ]),
                points,
            })
            .collect())
    }

    /// After another query failed: the clusters of `span` judged from a fresh namespaces'
    /// answer ([`labels::one_cluster`]). A failure of that query is not the news: the first
    /// failure is.
    async fn one_cluster_again(&self, span: &[HourWindow]) -> Result<()> {
        let counts_q = queries::namespace_samples(self.windows);
        match self.query("namespaces", &counts_q, span).await {
            Ok(answer) => labels::one_cluster(
                &answer,
                span,
                &self.config.cluster_label,
                self.prometheus.is_scoped(),
            ),
            Err(_) => Ok(()),
        }
    }

    /// The scrape interval the gauges of `span` are integrated at, with every refusal of the
    /// sample counts (`consumption-metrics check` shows it).
    pub async fn scrape_interval(&self, span: &[HourWindow]) -> Result<Duration> {
        Ok(self.sample_counts(span).await?.interval)
    }

    /// Whether `what` is warned about for the first time this run.
    /// With the kube-state-metrics source: the Running pods whose requests it cannot see
    /// ([`queries::unseen_requests`]) at the end of the span's last hour, warned about once per
    /// run with their count, a few names and the setting that bills them.
    /// `scheduler`: kube-scheduler's requests are in the store to compare with.
    pub async fn requests_unseen(
        &self,
        span: &[HourWindow],
        scheduler: bool,
    ) -> Result<BTreeMap<(String, String), &'static str>> {
        let Some(last) = span.last() else {
            return Ok(BTreeMap::new());
        };
        let q = queries::unseen_requests(scheduler);
        let answer = self
            .prometheus
            .query_range(&RangeQuery {
                what: "requests kube-state-metrics cannot see",
                expr: &q,
                start: last.end(),
                end: last.end(),
                step: Duration::from_secs(3600),
            })
            .await?;
        let mut pods = BTreeMap::new();
        for s in &answer {
            let (Some(ns), Some(pod)) = (s.labels.get("namespace"), s.labels.get("pod")) else {
                continue;
            };
            if !crate::usage::is_namespace_name(ns) || self.excluded(ns) {
                continue;
            }
            let via = match s.labels.get("via").map(String::as_str) {
                Some("scheduler") => "scheduler",
                _ => "qos",
            };
            pods.entry((ns.clone(), pod.clone())).or_insert(via);
        }
        if !pods.is_empty() && self.first_warning("pod-level") {
            let shown: Vec<String> = pods
                .keys()
                .take(5)
                .map(|(n, p)| format!("{n}/{}", p.escape_debug()))
                .collect();
            warn!(
                pods = pods.len(),
                first = %shown.join(", "),
                above_scheduler = pods.values().filter(|v| **v == "scheduler").count(),
                "pods reserve more than their containers request: pod-level requests \
                 (Kubernetes 1.34+, spec.resources), which kube-state-metrics does not export, or \
                 an in-place resize down not yet admitted. The kube-state-metrics source bills \
                 their containers' requests only. Bill what Kubernetes reserves with \
                 --request-source scheduler (REQUEST_SOURCE; kube-scheduler's \
                 /metrics/resources scraped; README, Pod-level resources)"
            );
        }
        Ok(pods)
    }

    fn first_warning(&self, what: &str) -> bool {
        self.warned
            .lock()
            .map(|mut w| w.insert(what.to_string()))
            .unwrap_or(true)
    }

    fn excluded(&self, namespace: &str) -> bool {
        self.config
            .exclude_namespaces
            .iter()
            .any(|p| p.matches(namespace))
    }
}

/// [`queries::unseen_by_scheduler`]'s answer: refused at the first hour with such a pod.
fn scheduler_saw_every_pod(
    unseen: &[Series],
    span: &[HourWindow],
    excluded: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut by_hour: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for s in unseen {
        let (Some(ns), Some(pod)) = (s.labels.get("namespace"), s.labels.get("pod")) else {
            continue;
        };
        if excluded(ns) {
            continue;
        }
        for (t, _) in &s.points {
            by_hour.entry(*t).or_default().insert(format!(
                "{}/{}",
                ns.escape_debug(),
                pod.escape_debug()
            ));
        }
    }
    match by_hour.into_iter().next() {
        None => Ok(()),
        Some((t, pods)) => Err(CollectError::SchedulerMissedPods {
            hour: validate::hour_of(span, t),
            count: pods.len(),
            first: pods.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The answers of queries that each give a part of the same sums (the segments of one hour,
/// [`queries::segment_parts`]) as one: the series of equal labels added point by point. An
/// answer of one query has each label set once, and passes unchanged.
fn add_up(series: Vec<Series>) -> Vec<Series> {
    let mut sums: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for s in series {
        let points = sums.entry(s.labels.clone()).or_insert_with(|| {
            order.push(s.labels.clone());
            BTreeMap::new()
        });
        for (t, v) in s.points {
            *points.entry(t).or_insert(0.0) += v;
        }
    }
    order
        .into_iter()
        .map(|labels| {
            let points = sums
                .remove(&labels)
                .unwrap_or_default()
                .into_iter()
                .collect();
            Series { labels, points }
        })
        .collect()
}

/// For [`CollectError::MissingSource`]: where the source's series were looked for, and what
/// to do, by the exporter that writes it.
fn missing_source(source: &str, reference: &str) -> (String, String) {
    let in_reference = format!("in the reference namespaces ({reference})");
    let reference_advice = "or set --reference-namespace (REFERENCE_NAMESPACE) to namespaces \
                            with running pods";
    match source {
        queries::DCGM => (
            "of any device".into(),
            "Scrape the platform's dcgm-exporter (the GPU Operator's nvidia-dcgm-exporter, or \
             the dcgm-exporter chart's) and pick it with --dcgm-exporter-selector \
             (DCGM_EXPORTER_SELECTOR), or bill GPUs by the pods' requests with --gpu-source \
             requests (GPU_SOURCE)"
                .into(),
        ),
        queries::CADVISOR => (
            in_reference,
            format!(
                "Scrape the kubelets' cAdvisor (/metrics/cadvisor) and pick it with \
                 --cadvisor-selector, bill --cpu-basis request, {reference_advice}"
            ),
        ),
        queries::SCHEDULER_METRIC => (
            in_reference,
            format!(
                "Scrape kube-scheduler's /metrics/resources (with honor_labels) and pick it \
                 with --scheduler-selector (SCHEDULER_SELECTOR), bill the containers' requests \
                 with --request-source kube-state-metrics, {reference_advice}"
            ),
        ),
        _ => (
            in_reference,
            format!(
                "Scrape kube-state-metrics with the collector that writes it (pods, nodes) and \
                 pick it with --kube-state-metrics-selector, {reference_advice}"
            ),
        ),
    }
}

#[cfg(test)]
mod add_up_tests {
    use super::*;

    fn series(ns: &str, points: &[(i64, f64)]) -> Series {
        Series {
            labels: BTreeMap::from([("namespace".to_string(), ns.to_string())]),
            points: points.to_vec(),
        }
    }

    /// Parts of one hour's sums add up per label set and time; one answer passes unchanged.
    #[test]
    fn parts_add_up_and_a_single_answer_is_unchanged() {
        let one = vec![series("a", &[(3600, 1.5)]), series("b", &[(3600, 2.0)])];
        assert_eq!(add_up(one.clone()), one);
        let parts = vec![
            series("a", &[(3600, 1.0), (7200, 4.0)]),
            series("b", &[(3600, 2.0)]),
            series("a", &[(3600, 0.5)]),
        ];
        assert_eq!(
            add_up(parts),
            vec![
                series("a", &[(3600, 1.5), (7200, 4.0)]),
                series("b", &[(3600, 2.0)])
            ]
        );
    }
}
