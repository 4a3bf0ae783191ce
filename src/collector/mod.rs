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
mod error;
mod interval;
mod labels;
mod probe;
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
    let judged = labels::judge_clusters(&clusters, span, cluster_label, scoped);
    (clusters.into_values().flatten().collect(), judged)
}

use crate::gpu::Weight;
use crate::prometheus::{Prometheus, RangeQuery, Series};
use crate::queries::{self, CpuBasis, RequestModel, Windows};
use crate::usage::{Dimension, Tier};
use crate::window::{HourWindow, rfc3339};
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
        let counts = interval::read_counts(answer, span, self.config.scrape_interval)?;
        info!(scrape_interval = ?counts.interval, "integrating gauges");
        Ok(counts)
    }

    /// Collect every hour of `span` (consecutive hours), one query per dimension. What needs
    /// nothing from the sample counts goes beside them: GPU, storage, and the CPU the bases
    /// can ask for without them. With 2 cores, this saves the counts' time from every run's
    /// wall time.
    #[instrument(skip_all, fields(from = %span.first().map(|w| rfc3339(w.start())).unwrap_or_default(), hours = span.len()))]
    pub async fn collect_span(&self, span: &[HourWindow]) -> Result<SpanUsage> {
        let (gpu_q, storage_q) = (
            queries::gpu(self.windows, self.config.request_model),
            queries::storage(self.windows),
        );
        let memory_q = self
            .config
            .bill_memory
            .then(|| queries::memory(self.windows, self.config.request_model));
        let labels_q =
            queries::data_labels(self.windows, self.config.request_model == RequestModel::Pod);
        // The data's labels are judged first: exported labels make the other answers fail in
        // misleading ways, or pass wrong. (Several clusters are judged from the namespaces'
        // answer, before its counts: [`Collector::sample_counts`].)
        let (data_labels, answers) =
            tokio::join!(self.query("data labels", &labels_q, span), async {
                tokio::try_join!(
                    self.counts_and_cpu(span),
                    self.query("gpu", &gpu_q, span),
                    self.query("storage", &storage_q, span),
                    async {
                        match &memory_q {
                            Some(q) => self.query("memory", q, span).await,
                            None => Ok(Vec::new()),
                        }
                    },
                )
            });
        labels::check(&data_labels?, span)?;
        let ((counts, cpu), gpu, storage, memory) = match answers {
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

        let mut usage = SpanUsage::new(span, self.config.bill_memory);
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
        let gpu_answer = Answer {
            what: "gpu",
            grouped_by: &["namespace", "resource"],
            series: gpu,
            weights,
        };
        usage.add(gpu_answer, excluded, |s| {
            let resource = s.labels.get("resource").map(String::as_str).unwrap_or("");
            Ok(match self.config.gpu_weights.weight(resource) {
                Weight::Known(w) => Adds::To(Dimension::Gpu, w),
                Weight::Unknown => {
                    unknown.insert(resource.to_string());
                    Adds::Nothing
                }
                Weight::SharedUnconfigured if s.points.iter().any(|(_, v)| *v > 0.0) => {
                    return Err(CollectError::SharedGpu {
                        resource: resource.to_string(),
                    });
                }
                Weight::SharedUnconfigured => Adds::Nothing,
            })
        })?;
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
