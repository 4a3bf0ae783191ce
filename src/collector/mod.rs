//! The collector: one range query per dimension for a span of consecutive hours, checked and
//! shaped into per-hour, per-namespace usage.
//!
//! One idea per file:
//! - `part`: one part of a span, the queries of every dimension side by side;
//! - `store_time`: how far each source reaches, an hour that waits, a source that stopped;
//! - `targets`: kube-state-metrics' targets one by one (a stalled shard);
//! - `timeline`: the scrape times that weigh each sample, replicas and restarts;
//! - `interval`: the scrape interval and the weight of a gauge sample, from sample counts;
//! - `cpu`: which CPU answers are billed, and how namespaces whose counters fell are read;
//! - `requests`: requests a source cannot see (pod-level, pods the scheduler missed);
//! - `gpu`, `devices`: the GPU model changes and DRA claims of the requests source, and the
//!   devices source's hours read as a summary ([`crate::gpu`] integrates them);
//! - `validate`: the checks every answer passes and the per-hour sums (pure);
//! - `labels`: the data's own labels: one cluster, scraped with `honor_labels`;
//! - `probe`: the engine's window semantics;
//! - `error`: why a span could not be collected.
//!
//! This file holds the collector's settings and sequences a span: its store time, then its
//! parts.

mod cpu;
mod devices;
mod error;
mod gpu;
mod interval;
mod labels;
mod part;
mod probe;
mod requests;
mod store_time;
mod targets;
pub mod timeline;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, instrument, warn};

pub use error::{CollectError, Result};
pub use interval::interval_from_count;
pub use probe::probe_windows;
pub use store_time::{StoreTime, Waiting};
pub use targets::target_name;
pub use validate::SpanUsage;

use part::*;
use requests::*;
use store_time::*;

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
                 tenant's series of the same names can change bills or stop billing (docs/trust.md)",
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
