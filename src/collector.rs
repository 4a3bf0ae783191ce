//! The collector: one range query per dimension for a span of consecutive hours, shaped into
//! per-hour, per-namespace consumption.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{info, instrument, warn};

use crate::counters::{self, Container};
use crate::gpu::Weight;
use crate::prometheus::{Prometheus, PrometheusError, RangeQuery, SampleQuery, Series};
use crate::queries::{self, Counters, CpuBasis, Half, Namespaces, SampleWeight, Windows};
use crate::window::{HourWindow, rfc3339};

/// Storage tier of an RWX volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Standard,
    Basic,
    Premium,
}

impl std::str::FromStr for Tier {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standard" => Ok(Tier::Standard),
            "basic" => Ok(Tier::Basic),
            "premium" => Ok(Tier::Premium),
            _ => Err(()),
        }
    }
}

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
pub struct CollectConfig {
    pub cpu_basis: CpuBasis,
    pub fallen_counters: FallenCounters,
    /// `None`: detect with a probe query at the start of a run.
    pub windows: Option<crate::queries::Windows>,
    /// `None`: derive from the data.
    pub scrape_interval: Option<Duration>,
    pub hours_per_query: usize,
    pub storage_tiers: BTreeMap<String, Tier>,
    pub exclude_namespaces: Vec<glob::Pattern>,
    pub gpu_weights: crate::gpu::GpuWeights,
}

/// What one namespace held in one hour, unrounded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NamespaceUsage {
    /// Core-hours.
    pub cpu: f64,
    /// GPU-hours.
    pub gpu: f64,
    /// GiB-hours of ReadWriteOnce volumes.
    pub storage_rwo_standard: f64,
    /// GiB-hours of ReadWriteMany volumes per tier.
    pub storage_rwx_standard: f64,
    pub storage_rwx_basic: f64,
    pub storage_rwx_premium: f64,
}

/// Every billed namespace of one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourUsage {
    pub window: HourWindow,
    pub namespaces: BTreeMap<String, NamespaceUsage>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    #[error(
        "Prometheus holds no kube-state-metrics data (kube_namespace_status_phase) for the hour \
         {hour}; nothing can be billed for it. Check --prometheus-url, that kube-state-metrics \
         is scraped, and that the hour is within Prometheus's retention. Every later run stops \
         here too: if the data is gone for good, move the checkpoint past the hour with \
         `consumption-metrics checkpoint set --to {end}` (README, Runbook)"
    )]
    NoData { hour: String, end: String },
    #[error(
        "the {what} query returned a series without a namespace label: {labels:?}; nothing was \
         billed for these hours. Check the metrics' relabelling: billing needs the namespace of \
         every series"
    )]
    MissingLabel {
        what: &'static str,
        labels: BTreeMap<String, String>,
    },
    #[error(
        "the {what} query returned {value:?} for namespace {namespace} in the hour {hour}, which \
         cannot be billed (negative, not finite, or over {MAX_QUANTITY:e} per hour); check \
         the metrics of that namespace"
    )]
    BadValue {
        what: &'static str,
        namespace: String,
        hour: String,
        value: f64,
    },
    #[error(
        "Running pods request {resource} (time-sliced GPUs), whose weight depends on the \
         device plugin's replica count; nothing was billed. Set --gpu-resource \
         nvidia.com/gpu.shared=1/<replicas> (GPU_RESOURCES)"
    )]
    SharedGpu { resource: String },
    #[error(
        "the window probe `{probe}` answered {answer}, neither 61 (closed windows, Prometheus \
         2.x) nor 60 (left-open, Prometheus 3.x, VictoriaMetrics); set --window-semantics to \
         closed or left-open for this engine",
        probe = queries::probe()
    )]
    Probe { answer: String },
    #[error(
        "the {what} query returned two series with the same labels {labels:?}; adding them \
         would bill the namespace twice. A proxy, a federation or a remote-read setup answers \
         twice: query the engine that holds each series once, or deduplicate it there"
    )]
    DuplicateSeries {
        what: &'static str,
        labels: BTreeMap<String, String>,
    },
    #[error(
        "the namespaces query returned a series without the label samples=\"series\" or \
         samples=\"exporters\" that the query sets: {labels:?}; nothing was billed for these \
         hours. Something in front of Prometheus rewrites answers: check --prometheus-url"
    )]
    NotOurAnswer { labels: BTreeMap<String, String> },
    #[error(
        "in the hour {hour}, namespace {namespace} has {count} samples of \
         kube_namespace_status_phase{{phase=\"Active\"}} {how} where a namespace has {typical} \
         at most: a second exporter (another kube-state-metrics, a duplicated ServiceMonitor or \
         scrape job) writes it too, and one sample weight cannot bill every namespace right. \
         Nothing was billed for these hours. Find the exporters with `count by (job, instance) \
         (kube_namespace_status_phase{{namespace=\"{namespace}\",phase=\"Active\"}})` and drop \
         the extra scrape"
    )]
    ExportersDisagree {
        hour: String,
        namespace: String,
        count: f64,
        typical: f64,
        how: &'static str,
    },
    #[error(
        "the {what} query, which aggregates by ({grouped_by}), returned a series with the label \
         {label:?} as well: {labels:?}; nothing was billed for these hours, as series that \
         differ by such a label would be added up. A proxy, a federation or a query frontend \
         adds labels to the answer: query the engine directly, or have it drop {label:?}"
    )]
    ExtraLabel {
        what: &'static str,
        label: String,
        labels: BTreeMap<String, String>,
        grouped_by: String,
    },
    #[error(
        "the {what} query returned a point at {at} for namespace {namespace}, which is not one \
         of the evaluation times asked for (the ends of the hours {span}); nothing was billed \
         for these hours. The engine or a proxy in front of it does not answer range queries \
         as Prometheus does: check --prometheus-url"
    )]
    UnexpectedTimestamp {
        what: &'static str,
        namespace: String,
        at: String,
        span: String,
    },
    #[error(
        "the {what} query returned the namespace label {namespace:?}, which is not a Kubernetes \
         namespace name (lowercase letters, digits and '-', at most 63); check the metrics' \
         relabelling"
    )]
    BadNamespace {
        what: &'static str,
        namespace: String,
    },
}

impl CollectError {
    pub fn is_retryable(&self) -> bool {
        match self {
            CollectError::Prometheus(e) => e.is_retryable(),
            // Data may still arrive (a late scrape, a restarted kube-state-metrics).
            CollectError::NoData { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = CollectError> = std::result::Result<T, E>;

/// A negative value this small is float noise from subtraction and counts as zero.
const NOISE: f64 = 1e-9;

/// More than this in one namespace-hour (a billion core-, GPU- or GiB-hours) is a broken
/// metric, not consumption: it fails the hour instead of overflowing the rounding.
pub const MAX_QUANTITY: f64 = 1e9;

/// Whether `name` is a Kubernetes namespace name (an RFC 1123 label).
pub fn is_namespace_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

pub struct Collector<'a> {
    prometheus: &'a Prometheus,
    config: &'a CollectConfig,
    windows: Windows,
    /// Warnings already given this run (an unmapped StorageClass, an unweighted GPU): once
    /// per run, not once per span.
    warned: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The labels of an answer aggregated `by (namespace)`.
const BY_NAMESPACE: &[&str] = &["namespace"];

/// Hours the scrape interval is derived from at least: a short span (a scheduled run bills one
/// hour) is read with the hours before it, so that a scrape gap in it does not pass for a
/// longer interval unless every one of these hours has one. (It was 24; reading 23 hours of
/// sample counts for one billed hour cost more than every other query of the hour together.)
const INTERVAL_HOURS: usize = 3;

/// The scrape interval that explains the largest hourly sample count: `3600 / count`, snapped
/// to whole seconds when an interval that does not divide the hour explains it (such counts
/// alternate by one, e.g. 514 and 515 for 7s).
pub fn interval_from_count(count: f64) -> Option<Duration> {
    if !(count.is_finite() && count >= 1.0) {
        return None;
    }
    let raw = 3600.0 / count;
    let whole = raw.round();
    // With interval w, an hour holds floor or ceil of 3600/w samples: 3600/count is within
    // w²/3600 of w.
    let secs = if whole >= 1.0 && (raw - whole).abs() <= whole * whole / 3600.0 + 1e-9 {
        whole
    } else {
        raw
    };
    Some(Duration::from_secs_f64(secs))
}

/// The longest query sent: VictoriaMetrics refuses longer ones by default
/// (`-search.maxQueryLen`, 16,384 bytes), and the exact CPU part names namespaces.
const MAX_QUERY_BYTES: usize = 16_000;

/// More exact CPU parts than this (each a request): one exact query for every namespace
/// instead, as before the split.
const MAX_EXACT_PARTS: usize = 32;

/// The most namespace-hours (listed namespaces × the span's hours and the hour before) whose
/// counters' raw samples are read for [`counters`]: about 4 kB of answer each at 10,000
/// namespaces and 2-minute scrapes, 30 kB at 15-second ones, so at most about 60 MB. Beyond, the
/// exact part is read with PromQL's case analysis, whose answers are per namespace.
const MAX_SAMPLED_NAMESPACE_HOURS: usize = 2_000;

/// The namespaces `listed` (sorted, not empty) in parts whose queries, written by `build`, are
/// at most [`MAX_QUERY_BYTES`] each, or `None` when that takes more than [`MAX_EXACT_PARTS`].
fn split_by_length(
    listed: &[String],
    build: impl Fn(&[String]) -> String,
) -> Option<Vec<&[String]>> {
    // A query's length is linear in the names: each appears once per selector.
    let first = listed.first()?;
    let one = build(std::slice::from_ref(first));
    let mentions = one.matches("namespace=~\"").count().max(1);
    let base = one.len().saturating_sub(mentions * first.len());
    let mut parts = Vec::new();
    let (mut start, mut len) = (0, base);
    for (i, name) in listed.iter().enumerate() {
        let more = mentions * (name.len() + 1);
        if i > start && len + more > MAX_QUERY_BYTES {
            parts.push(&listed[start..i]);
            (start, len) = (i, base);
        }
        len += more;
    }
    parts.push(&listed[start..]);
    (parts.len() <= MAX_EXACT_PARTS && parts.iter().all(|p| build(p).len() <= MAX_QUERY_BYTES))
        .then_some(parts)
}

/// The exact CPU part for the namespaces `listed` as PromQL queries ([`split_by_length`]).
fn exact_parts(listed: &[String], build: impl Fn(&[String]) -> String) -> Option<Vec<String>> {
    let parts = split_by_length(listed, &build)?;
    Some(parts.into_iter().map(build).collect())
}

/// The namespace a series of the `what` query is for: present, and a namespace name.
fn namespace_of<'s>(what: &'static str, s: &'s Series) -> Result<&'s str> {
    match s.labels.get("namespace") {
        Some(n) if is_namespace_name(n) => Ok(n),
        Some(n) if !n.is_empty() => Err(CollectError::BadNamespace {
            what,
            namespace: n.clone(),
        }),
        _ => Err(CollectError::MissingLabel {
            what,
            labels: s.labels.clone(),
        }),
    }
}

/// One hour's sample counts over the namespaces.
struct HourCounts {
    /// The largest: an object present all hour.
    max: f64,
    /// The upper median: the typical namespace's, which a few namespaces created or deleted
    /// in the hour, or one written by another exporter, do not move.
    typical: f64,
}

/// Per hour end, the counts of `series` (one point per namespace and hour).
fn hourly_counts(series: &[Series]) -> BTreeMap<i64, HourCounts> {
    let mut by_hour: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in series.iter().flat_map(|s| &s.points) {
        if v.is_finite() && *v >= 1.0 {
            by_hour.entry(*t).or_default().push(*v);
        }
    }
    by_hour
        .into_iter()
        .map(|(t, mut v)| {
            v.sort_by(f64::total_cmp);
            let max = v.last().copied().unwrap_or(0.0);
            let typical = v[v.len() / 2];
            (t, HourCounts { max, typical })
        })
        .collect()
}

/// How the max basis weighs requests in its query for `span`: with the weight the collector
/// has already when every hour of the span has the same, so that the query does not count the
/// samples again.
fn span_weight(span: &[HourWindow], weights: &BTreeMap<i64, f64>) -> SampleWeight {
    let mut span_weights = span
        .iter()
        .filter_map(|w| weights.get(&w.end().timestamp()));
    match span_weights.next() {
        Some(first) if span_weights.all(|w| w == first) => SampleWeight::Constant(*first),
        _ => SampleWeight::PerHour,
    }
}

/// The namespaces of a [`queries::counter_resets`] answer with a counter that fell in any hour,
/// sorted. Their names go into a regular expression, so they are checked like every answer's.
fn fallen_counters(resets: Vec<Series>) -> Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for s in &resets {
        let namespace = namespace_of("counter resets", s)?;
        if s.points.iter().any(|(_, v)| *v > 0.0) {
            names.insert(namespace.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

impl<'a> Collector<'a> {
    /// A collector for the engine behind `prometheus`: the window semantics come from
    /// `--window-semantics`, or from one probe query evaluated at `at` (an hour-aligned time).
    pub async fn connect(
        prometheus: &'a Prometheus,
        config: &'a CollectConfig,
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

    /// Collect every hour of `span` (consecutive hours), one query per dimension.
    #[instrument(skip_all, fields(from = %span.first().map(|w| rfc3339(w.start())).unwrap_or_default(), hours = span.len()))]
    pub async fn collect_span(&self, span: &[HourWindow]) -> Result<SpanUsage> {
        let basis = self.config.cpu_basis;
        // What needs nothing from the sample counts goes beside them: GPU, storage, and CPU
        // on the request basis and the usage basis' steady part. With 2 cores, this saves the
        // counts' time from every run's wall time.
        let (gpu_q, storage_q) = (queries::gpu(self.windows), queries::storage(self.windows));
        // In two halves side by side (queries::Half).
        let early_cpu_q: Option<Vec<String>> = Half::BOTH
            .iter()
            .map(|h| queries::cpu_before_counts(self.windows, basis, Namespaces::Half(*h)))
            .collect();
        let (counted, early_cpu, gpu, storage) = tokio::try_join!(
            self.counted_cpu(span),
            async {
                match &early_cpu_q {
                    Some(qs) => self.query_together("cpu", qs, span).await,
                    None => Ok(Vec::new()),
                }
            },
            self.query("gpu", &gpu_q, span),
            self.query("storage", &storage_q, span),
        )?;
        let Counted {
            namespaces,
            weights,
            reset,
            cpu: late_cpu,
            exact: cpu_exact,
        } = counted;
        let exact_listed = cpu_exact.is_some();
        let cpu_exact = cpu_exact.unwrap_or_default();
        let mut cpu = late_cpu.unwrap_or(early_cpu);
        // Counters (usage) are not samples; the max basis weighs in its query.
        let cpu_weights = (basis == CpuBasis::Request).then_some(&weights);

        let mut parts = Vec::new();
        let (cpu_what, exact_what) = match basis {
            CpuBasis::Request => ("cpu (request)", ""),
            CpuBasis::Usage => ("cpu (usage)", "cpu (usage, fallen counters)"),
            CpuBasis::Max => ("cpu (max)", "cpu (max, fallen counters)"),
        };
        let (none, unweighted) = (None, Some(&weights));
        self.validate(
            &mut parts,
            span,
            ("namespaces", BY_NAMESPACE),
            namespaces,
            none,
            |_| Ok(Dim::None),
        )?;
        if exact_listed {
            let listed = |s: &Series| {
                s.labels
                    .get("namespace")
                    .is_some_and(|n| reset.binary_search(n).is_ok())
            };
            cpu.retain(|s| !listed(s));
        }
        self.validate(
            &mut parts,
            span,
            (cpu_what, BY_NAMESPACE),
            cpu,
            cpu_weights,
            |_| Ok(Dim::Cpu),
        )?;
        self.validate(
            &mut parts,
            span,
            (exact_what, BY_NAMESPACE),
            cpu_exact,
            cpu_weights,
            |_| Ok(Dim::Cpu),
        )?;
        let mut unknown = std::collections::BTreeSet::new();
        self.validate(
            &mut parts,
            span,
            ("gpu", &["namespace", "resource"]),
            gpu,
            unweighted,
            |s| {
                let resource = s.labels.get("resource").map(String::as_str).unwrap_or("");
                Ok(match self.config.gpu_weights.weight(resource) {
                    Weight::Known(w) => Dim::Gpu(w),
                    Weight::Unknown => {
                        unknown.insert(resource.to_string());
                        Dim::None
                    }
                    Weight::SharedUnconfigured if s.points.iter().any(|(_, v)| *v > 0.0) => {
                        return Err(CollectError::SharedGpu {
                            resource: resource.to_string(),
                        });
                    }
                    Weight::SharedUnconfigured => Dim::None,
                })
            },
        )?;
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
        let mut unmapped = std::collections::BTreeSet::new();
        let by_class = &["namespace", "storageclass", "rwx"];
        self.validate(
            &mut parts,
            span,
            ("storage", by_class),
            storage,
            unweighted,
            |s| {
                if s.labels.get("rwx").map(String::as_str) != Some("true") {
                    return Ok(Dim::RwoStandard);
                }
                let class = s
                    .labels
                    .get("storageclass")
                    .map(String::as_str)
                    .unwrap_or("");
                Ok(match self.config.storage_tiers.get(class) {
                    Some(Tier::Premium) => Dim::RwxPremium,
                    Some(Tier::Basic) => Dim::RwxBasic,
                    Some(Tier::Standard) => Dim::RwxStandard,
                    None => {
                        unmapped.insert(class.to_string());
                        Dim::RwxStandard
                    }
                })
            },
        )?;
        for class in unmapped
            .into_iter()
            .filter(|c| self.first_warning(&format!("class {c}")))
        {
            warn!(
                storageclass = class,
                "RWX StorageClass has no tier (--storage-tier); billing it as standard"
            );
        }
        Ok(SpanUsage {
            hours: span.to_vec(),
            parts,
        })
    }

    /// The namespaces and sample counts of the span's hours, and what of CPU depends on them:
    /// the CPU query itself on the max basis (it weighs requests with the counts), and, on the
    /// usage and max bases, the exact part for namespaces whose usage counters fell. Each query
    /// goes as soon as what it needs is there: the max basis' CPU query when the counts are
    /// in, not the list of fallen counters too.
    async fn counted_cpu(&self, span: &[HourWindow]) -> Result<Counted> {
        let basis = self.config.cpu_basis;
        let resets_q = queries::counter_resets(self.windows);
        let (weighed_tx, weighed_rx) = tokio::sync::oneshot::channel();
        let ((namespaces, weights, steady), (reset, exact, instead)) = tokio::try_join!(
            async {
                let (namespaces, interval, weights) = self.sample_counts(span).await?;
                let weight = span_weight(span, &weights);
                // Dropped unsent only when the counts failed, whose error then ends the run.
                let _ = weighed_tx.send((interval, weight));
                let steady = match basis {
                    CpuBasis::Max => {
                        let halves = Half::BOTH.map(|h| {
                            let half = Namespaces::Half(h);
                            queries::cpu(
                                self.windows,
                                basis,
                                interval,
                                weight,
                                Counters::Steady,
                                half,
                            )
                        });
                        Some(self.query_together("cpu", &halves, span).await?)
                    }
                    CpuBasis::Request | CpuBasis::Usage => None,
                };
                Ok((namespaces, weights, steady))
            },
            async {
                if basis == CpuBasis::Request {
                    return Ok((Vec::new(), None, None));
                }
                let reset = fallen_counters(self.query("counter resets", &resets_q, span).await?)?;
                if reset.is_empty() {
                    return Ok((reset, None, None));
                }
                let Ok((interval, weight)) = weighed_rx.await else {
                    // The counts failed: their error is the run's.
                    return Ok((reset, None, None));
                };
                let (exact, instead) = self.fallen_cpu(span, &reset, interval, weight).await?;
                Ok::<_, CollectError>((reset, exact, instead))
            },
        )?;
        Ok(Counted {
            namespaces,
            weights,
            reset,
            cpu: instead.or(steady),
            exact,
        })
    }

    /// Per namespace billed, its sample counts in the span's hours; the scrape interval; and
    /// per hour end, the seconds a gauge sample stands for ([`queries::namespace_samples`]).
    async fn sample_counts(
        &self,
        span: &[HourWindow],
    ) -> Result<(Vec<Series>, Duration, BTreeMap<i64, f64>)> {
        let context = INTERVAL_HOURS.saturating_sub(span.len()) as i64;
        let counts_q = queries::namespace_samples(self.windows);
        let answer = self
            .query_from("namespaces", &counts_q, span, context)
            .await?;
        // The two parts: counts in one series, and summed over every series.
        let (mut series, mut namespaces) = (Vec::new(), Vec::new());
        for mut s in answer {
            match s.labels.remove("samples").as_deref() {
                Some("series") => series.push(s),
                Some("exporters") => namespaces.push(s),
                _ => return Err(CollectError::NotOurAnswer { labels: s.labels }),
            }
        }
        let span_ends: std::collections::BTreeSet<i64> =
            span.iter().map(|w| w.end().timestamp()).collect();
        let per_series = hourly_counts(&series);
        let summed = hourly_counts(&namespaces);
        for w in span {
            if !summed.contains_key(&w.end().timestamp()) {
                return Err(CollectError::NoData {
                    hour: w.to_string(),
                    end: rfc3339(w.end()),
                });
            }
        }
        // The interval: of the typical namespace, so one denser series does not set it.
        let interval = match self.config.scrape_interval {
            Some(d) => d,
            None => {
                let typical = per_series.values().map(|c| c.typical).fold(0.0, f64::max);
                interval_from_count(typical).ok_or_else(|| CollectError::NoData {
                    hour: span.first().map(|w| w.to_string()).unwrap_or_default(),
                    end: span.first().map(|w| rfc3339(w.end())).unwrap_or_default(),
                })?
            }
        };
        // One weight serves every namespace only if every namespace is written by the same
        // exporters at the same interval: refuse a namespace with more samples than that.
        let expected = (3600.0 / interval.as_secs_f64()).floor();
        let hour_of = |t: i64| {
            span.iter()
                .find(|w| w.end().timestamp() == t)
                .map(|w| w.to_string())
                .unwrap_or_default()
        };
        for (counts, limit, how) in [
            (&series, None, "in one series"),
            (&namespaces, Some(&summed), "over all its series"),
        ] {
            for s in counts {
                for (t, v) in &s.points {
                    if !span_ends.contains(t) {
                        continue;
                    }
                    let typical = match limit {
                        None => expected,
                        Some(summed) => summed.get(t).map_or(0.0, |c| c.typical),
                    };
                    if *v > typical * 1.05 + 2.0 {
                        return Err(CollectError::ExportersDisagree {
                            hour: hour_of(*t),
                            namespace: s.labels.get("namespace").cloned().unwrap_or_default(),
                            count: *v,
                            typical,
                            how,
                        });
                    }
                }
            }
        }
        info!(scrape_interval = ?interval, "integrating gauges");
        // Seconds a gauge sample stands for, per hour: of an object present all hour.
        let weights: BTreeMap<i64, f64> = summed
            .iter()
            .map(|(t, c)| (*t, queries::sample_weight(c.max)))
            .collect();
        // The context hours only served the interval.
        let first_end = span.first().map(|w| w.end().timestamp()).unwrap_or(0);
        for s in &mut namespaces {
            s.points.retain(|(t, _)| *t >= first_end);
        }
        Ok((namespaces, interval, weights))
    }

    /// The CPU of the namespaces `reset` (not empty), whose usage counters fell within the
    /// span (queries module documentation): from their counters' samples ([`counters`]), or
    /// with PromQL's case analysis in parts (the exact part), or, when they are too many for
    /// parts, with one exact query over every namespace, whose answer replaces the CPU
    /// answer (`instead`; the max basis' steady one is then discarded). Returns the exact part
    /// and `instead`.
    async fn fallen_cpu(
        &self,
        span: &[HourWindow],
        reset: &[String],
        interval: Duration,
        weight: SampleWeight,
    ) -> Result<(Option<Vec<Series>>, Option<Vec<Series>>)> {
        let basis = self.config.cpu_basis;
        let cpu_query = |counters: Counters, namespaces: Namespaces<'_>| {
            queries::cpu(self.windows, basis, interval, weight, counters, namespaces)
        };
        // Their counters' raw samples, when few enough: in parts short enough for the longest
        // query a part sends (the max basis' requests query names them twice).
        let sampled = self.config.fallen_counters == FallenCounters::Samples
            && reset.len().saturating_mul(span.len() + 1) <= MAX_SAMPLED_NAMESPACE_HOURS;
        let sample_parts = sampled
            .then(|| {
                split_by_length(reset, |some| {
                    let some = Namespaces::Only(some);
                    match basis {
                        CpuBasis::Max => queries::requested_cpu_seconds(self.windows, weight, some),
                        CpuBasis::Request | CpuBasis::Usage => {
                            queries::counter_samples(self.windows, span.len(), some)
                        }
                    }
                })
            })
            .flatten();
        info!(
            namespaces = reset.len(),
            from = if sample_parts.is_some() {
                "samples"
            } else {
                "queries"
            },
            "a usage counter fell within the span in some namespaces: their CPU is read \
             with the full case analysis"
        );
        if let Some(parts) = &sample_parts {
            match self.used_from_samples(span, parts, weight).await {
                Ok(series) => return Ok((Some(series), None)),
                // An answer over the limit: the queries' answers are per namespace.
                Err(CollectError::Prometheus(e @ PrometheusError::TooLarge { .. })) => {
                    warn!(error = %e, "reading the fallen counters with PromQL instead");
                }
                Err(e) => return Err(e),
            }
        }
        let exact_q = exact_parts(reset, |some| {
            cpu_query(Counters::Exact, Namespaces::Only(some))
        });
        if let Some(parts) = &exact_q {
            // One after another, beside the CPU query: usually one or none.
            let mut series = Vec::new();
            for q in parts {
                series.extend(self.query("cpu (fallen counters)", q, span).await?);
            }
            return Ok((Some(series), None));
        }
        let all = cpu_query(Counters::Exact, Namespaces::All);
        let instead = self.query("cpu", &all, span).await?;
        Ok((None, Some(instead)))
    }

    /// Per namespace of `parts`, the CPU it used in each hour of `span` (core-hours, the max
    /// basis' larger of requested and used per container), from its usage counters' raw
    /// samples ([`counters`]): what the exact CPU queries answer, read once.
    async fn used_from_samples(
        &self,
        span: &[HourWindow],
        parts: &[&[String]],
        weight: SampleWeight,
    ) -> Result<Vec<Series>> {
        let Some(last) = span.last() else {
            return Ok(Vec::new());
        };
        let hour_ends: Vec<i64> = span.iter().map(|w| w.end().timestamp()).collect();
        let mut out = Vec::new();
        for part in parts {
            let samples_q =
                queries::counter_samples(self.windows, span.len(), Namespaces::Only(part));
            let samples_q = SampleQuery {
                what: "cpu samples (fallen counters)",
                expr: &samples_q,
                at: last.end(),
            };
            let samples = self.prometheus.query_samples(&samples_q);
            let (samples, requested) = match self.config.cpu_basis {
                CpuBasis::Max => {
                    let requested_q = queries::requested_cpu_seconds(
                        self.windows,
                        weight,
                        Namespaces::Only(part),
                    );
                    let requested =
                        self.query("cpu requests (fallen counters)", &requested_q, span);
                    let (samples, requested) = tokio::join!(samples, requested);
                    (samples?, requested?)
                }
                _ => (samples.await?, Vec::new()),
            };
            let mut containers = counters::used_seconds(&samples, &hour_ends);
            drop(samples);
            // The max basis: per container, the larger of requested and used.
            for s in requested {
                let label = |name: &str| s.labels.get(name).cloned().unwrap_or_default();
                let container: Container = (label("namespace"), label("pod"), label("container"));
                let hours = containers.entry(container).or_default();
                for (end, requested) in s.points {
                    let larger = hours.entry(end).or_insert(requested);
                    *larger = larger.max(requested);
                }
            }
            let mut namespaces: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
            for ((namespace, _, _), hours) in containers {
                let sums = namespaces.entry(namespace).or_default();
                for (end, seconds) in hours {
                    *sums.entry(end).or_insert(0.0) += seconds;
                }
            }
            out.extend(namespaces.into_iter().map(|(namespace, hours)| {
                Series {
                    labels: BTreeMap::from([("namespace".to_string(), namespace)]),
                    points: hours
                        .into_iter()
                        .map(|(end, s)| (end, s / 3600.0))
                        .collect(),
                }
            }));
        }
        Ok(out)
    }

    /// Whether `what` is warned about for the first time this run.
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

    /// Check every series of one query before anything of the span is billed (labels, points
    /// on the evaluation times, values), and keep what each adds to its namespace-hours: its
    /// [`Dim`] (from `dim`), and its values, times the hour's weight when `weights` are given
    /// (sums of gauge samples).
    fn validate(
        &self,
        parts: &mut Vec<Part>,
        span: &[HourWindow],
        (what, grouped_by): (&'static str, &[&str]),
        series: Vec<Series>,
        weights: Option<&BTreeMap<i64, f64>>,
        mut dim: impl FnMut(&Series) -> Result<Dim>,
    ) -> Result<()> {
        let by_end: BTreeMap<i64, &HourWindow> =
            span.iter().map(|w| (w.end().timestamp(), w)).collect();
        let span_text = match (span.first(), span.last()) {
            (Some(f), Some(l)) => format!("[{}, {})", rfc3339(f.start()), rfc3339(l.end())),
            _ => String::new(),
        };
        // Each query aggregates by its labels: the same label set twice is an engine (or
        // something in front of it) answering twice, never two real things.
        let mut seen = std::collections::HashSet::with_capacity(series.len());
        if let Some(twice) = series.iter().find(|s| !seen.insert(&s.labels)) {
            return Err(CollectError::DuplicateSeries {
                what,
                labels: twice.labels.clone(),
            });
        }
        drop(seen);
        // Each query aggregates `by` exactly these labels, so a label beyond them (a replica
        // label, a stray `__name__`) is not our query's answer: summing such series could
        // bill one namespace twice.
        if let Some((s, label)) = series.iter().find_map(|s| {
            s.labels
                .keys()
                .find(|k| !grouped_by.contains(&k.as_str()))
                .map(|k| (s, k))
        }) {
            return Err(CollectError::ExtraLabel {
                what,
                label: label.clone(),
                labels: s.labels.clone(),
                grouped_by: grouped_by.join(", "),
            });
        }
        for mut s in series {
            let namespace = namespace_of(what, &s)?.to_string();
            if self.excluded(&namespace) {
                continue;
            }
            s.points.sort_by_key(|(ts, _)| *ts);
            let mut last = None;
            for (ts, value) in &mut s.points {
                let hour = by_end.get(ts);
                // A point off the evaluation times, or the same time twice.
                let (Some(hour), false) = (hour, last == Some(*ts)) else {
                    return Err(CollectError::UnexpectedTimestamp {
                        what,
                        namespace,
                        at: chrono::DateTime::from_timestamp(*ts, 0)
                            .map(rfc3339)
                            .unwrap_or_else(|| ts.to_string()),
                        span: span_text,
                    });
                };
                last = Some(*ts);
                let raw = *value;
                let weight = weights.and_then(|w| w.get(ts)).copied().unwrap_or(1.0);
                let weighted = if (-NOISE..0.0).contains(&raw) {
                    0.0
                } else {
                    raw * weight
                };
                if !weighted.is_finite() || !(0.0..=MAX_QUANTITY).contains(&weighted) {
                    return Err(CollectError::BadValue {
                        what,
                        namespace,
                        hour: hour.to_string(),
                        value: raw,
                    });
                }
                *value = weighted;
            }
            let dim = dim(&s)?;
            parts.push(Part {
                namespace,
                dim,
                points: s.points,
            });
        }
        Ok(())
    }
}

/// What [`Collector::counted_cpu`] found.
struct Counted {
    /// Per namespace billed, its sample counts in the span's hours.
    namespaces: Vec<Series>,
    /// Seconds a gauge sample stands for, per hour end.
    weights: BTreeMap<i64, f64>,
    /// The namespaces whose usage counters fell within the span, sorted.
    reset: Vec<String>,
    /// The CPU answer when it depends on the counts; otherwise the early query's stands.
    cpu: Option<Vec<Series>>,
    /// The exact part's answer, when there is one: the namespaces in `reset` are billed from
    /// it, and dropped from the CPU answer.
    exact: Option<Vec<Series>>,
}

/// What one series adds to its namespace's usage.
#[derive(Debug, Clone, Copy)]
enum Dim {
    /// Nothing: the namespace is billed (the namespace list), or a GPU without a weight.
    None,
    Cpu,
    /// GPUs per unit of this resource.
    Gpu(f64),
    RwoStandard,
    RwxStandard,
    RwxBasic,
    RwxPremium,
}

/// One validated series: its namespace, what it adds, and its values by hour end (sorted).
#[derive(Debug)]
struct Part {
    namespace: String,
    dim: Dim,
    points: Vec<(i64, f64)>,
}

/// A span's answers, checked: [`SpanUsage::hours`] gives one hour's usage at a time, so that
/// a span of 24 hours holds its numbers once, not also as 24 hours of per-namespace maps.
#[derive(Debug)]
pub struct SpanUsage {
    hours: Vec<HourWindow>,
    parts: Vec<Part>,
}

impl SpanUsage {
    /// The span's hours, oldest first, each with every billed namespace.
    pub fn hours(&self) -> impl Iterator<Item = HourUsage> + '_ {
        self.hours.iter().map(|window| {
            let t = window.end().timestamp();
            let mut namespaces: BTreeMap<String, NamespaceUsage> = BTreeMap::new();
            for p in &self.parts {
                let Ok(i) = p.points.binary_search_by_key(&t, |(ts, _)| *ts) else {
                    continue;
                };
                let v = p.points[i].1;
                let u = match namespaces.get_mut(p.namespace.as_str()) {
                    Some(u) => u,
                    None => namespaces.entry(p.namespace.clone()).or_default(),
                };
                match p.dim {
                    Dim::None => {}
                    Dim::Cpu => u.cpu += v,
                    Dim::Gpu(w) => u.gpu += v * w,
                    Dim::RwoStandard => u.storage_rwo_standard += v,
                    Dim::RwxStandard => u.storage_rwx_standard += v,
                    Dim::RwxBasic => u.storage_rwx_basic += v,
                    Dim::RwxPremium => u.storage_rwx_premium += v,
                }
            }
            HourUsage {
                window: *window,
                namespaces,
            }
        })
    }
}

/// Ask the engine whether its range windows are closed or left-open (see
/// [`queries::probe`]); `at` must be hour-aligned.
pub async fn probe_windows(
    prometheus: &Prometheus,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Windows> {
    let series = prometheus
        .query_range(&RangeQuery {
            what: "window probe",
            expr: queries::probe(),
            start: at,
            end: at,
            step: Duration::from_secs(3600),
        })
        .await?;
    let points: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .collect();
    match points.as_slice() {
        [p] => queries::windows_from_probe(*p).ok_or(CollectError::Probe {
            answer: format!("{p}"),
        }),
        other => Err(CollectError::Probe {
            answer: format!("{other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(namespace: &str, points: &[(i64, f64)]) -> Series {
        Series {
            labels: [("namespace".to_string(), namespace.to_string())].into(),
            points: points.to_vec(),
        }
    }

    /// The names go into a regular expression: only namespace names pass, and a namespace is
    /// listed once, whatever hour its counter fell in.
    #[test]
    fn fallen_counters_are_checked_namespace_names() {
        let listed = fallen_counters(vec![
            series("team-b", &[(3600, 1.0), (7200, 1.0)]),
            series("team-a", &[(7200, 1.0)]),
            series("quiet", &[]),
        ])
        .unwrap();
        assert_eq!(listed, ["team-a", "team-b"]);
        let err = fallen_counters(vec![series("a|b", &[(3600, 1.0)])]).unwrap_err();
        assert!(matches!(err, CollectError::BadNamespace { .. }), "{err}");
        let err = fallen_counters(vec![series("", &[(3600, 1.0)])]).unwrap_err();
        assert!(matches!(err, CollectError::MissingLabel { .. }), "{err}");
    }

    /// Every exact part fits VictoriaMetrics' default query length, every listed namespace is
    /// in exactly one, and too many parts fall back to one query for all.
    #[test]
    fn exact_parts_fit_the_query_length() {
        let build = |some: &[String]| {
            queries::cpu(
                Windows::LeftOpen,
                CpuBasis::Max,
                Duration::from_secs(30),
                SampleWeight::PerHour,
                Counters::Exact,
                Namespaces::Only(some),
            )
        };
        let names =
            |n: usize| -> Vec<String> { (0..n).map(|i| format!("tenant-{i:05}")).collect() };
        assert_eq!(exact_parts(&names(3), build).unwrap().len(), 1);
        assert_eq!(exact_parts(&[], build), None);
        let listed = names(400);
        let parts = exact_parts(&listed, build).unwrap();
        assert!(parts.len() > 1, "{}", parts.len());
        let mut seen = Vec::new();
        for q in &parts {
            assert!(q.len() <= MAX_QUERY_BYTES, "{}", q.len());
            let (_, rest) = q.split_once("namespace=~\"").unwrap();
            let (matched, _) = rest.split_once('"').unwrap();
            seen.extend(matched.split('|').map(String::from));
        }
        assert_eq!(seen, listed);
        assert_eq!(exact_parts(&names(5000), build), None);
    }

    #[test]
    fn interval_is_snapped_to_whole_seconds() {
        assert_eq!(interval_from_count(120.0), Some(Duration::from_secs(30)));
        assert_eq!(interval_from_count(515.0), Some(Duration::from_secs(7)));
        assert_eq!(interval_from_count(514.0), Some(Duration::from_secs(7)));
        assert_eq!(interval_from_count(240.0), Some(Duration::from_secs(15)));
        assert_eq!(interval_from_count(0.0), None);
        assert_eq!(interval_from_count(f64::NAN), None);
    }
}
