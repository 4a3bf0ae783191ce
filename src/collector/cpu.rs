//! Which CPU answers a span is billed from, and how the namespaces whose usage counters fell
//! are read (queries module documentation, "Counters are read in two parts").
//!
//! The plan, as types rather than an order of precedence: the *steady* answer bills every
//! namespace whose counters did not fall. It is written without the sample counts on the
//! request and usage bases ([`SteadyQuery::Now`], sent beside the counts) and with their sample
//! weight on the max basis ([`SteadyQuery::AfterCounts`]). The namespaces whose counters fell
//! ([`Fallen`]) are billed from their raw samples, or from PromQL's case analysis in parts
//! short enough for the engine, or, when they are too many for parts, one exact answer for
//! every namespace replaces the steady one. [`CpuAnswer::decide`] puts them together.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tracing::{info, warn};

use super::error::{CollectError, Result};
use super::interval::Counts;
use super::validate::namespace_of;
use super::{Collector, FallenCounters};
use crate::counters::{self, Container};
use crate::prometheus::{PrometheusError, SampleQuery, Series};
use crate::queries::{
    self, Counters, CpuBasis, CpuRead, Half, Namespaces, RequestModel, SampleWeight,
};
use crate::window::HourWindow;

/// The longest query sent: VictoriaMetrics refuses longer ones by default
/// (`-search.maxQueryLen`, 16,384 bytes), and the exact CPU part names namespaces.
pub(super) const MAX_QUERY_BYTES: usize = 16_000;

/// More exact CPU parts than this (each a request): one exact query for every namespace
/// instead.
const MAX_EXACT_PARTS: usize = 32;

/// The most namespace-hours (listed namespaces × the span's hours and the hour before) whose
/// counters' raw samples are read for [`counters`]: about 4 kB of answer each at 10,000
/// namespaces and 2-minute scrapes, 30 kB at 15-second ones, so at most about 60 MB. Beyond, the
/// exact part is read with PromQL's case analysis, whose answers are per namespace.
const MAX_SAMPLED_NAMESPACE_HOURS: usize = 2_000;

/// The steady CPU query, and when it can be sent.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SteadyQuery {
    /// Written without the sample counts (request and usage bases): sent at once, beside
    /// them, in two halves ([`Half`]).
    Now(Vec<String>),
    /// Weighs requests with the counts' sample weight (max basis): sent when they are in.
    AfterCounts,
}

impl SteadyQuery {
    /// `weigh`: an unevenly scraped hour's segments, for the request basis' requests.
    pub fn plan(
        windows: queries::Windows,
        basis: CpuBasis,
        model: RequestModel,
        weigh: Option<SampleWeight>,
    ) -> Self {
        // The request basis' requests of an hour of many segments go in parts whose answers
        // add up ([`super::add_up`]); the other bases' queries before the counts read no
        // requests (usage), and would be sent twice.
        let parts = match basis {
            CpuBasis::Request => queries::segment_parts(weigh),
            CpuBasis::Usage | CpuBasis::Max => vec![weigh],
        };
        let now: Option<Vec<String>> = parts
            .into_iter()
            .flat_map(|weigh| {
                Half::BOTH.iter().map(move |h| {
                    queries::cpu_before_counts(windows, basis, model, weigh, Namespaces::Half(*h))
                })
            })
            .collect();
        match now {
            Some(qs) => SteadyQuery::Now(qs),
            None => SteadyQuery::AfterCounts,
        }
    }
}

/// How the namespaces whose usage counters fell within the span are billed.
#[derive(Debug, PartialEq)]
pub(super) enum Fallen {
    /// None fell (or the request basis, which reads no counters).
    None,
    /// The namespaces `listed` (sorted) are billed from `exact` and dropped from the steady
    /// answer.
    Listed {
        listed: Vec<String>,
        exact: Vec<Series>,
    },
    /// Too many to list: one exact answer for every namespace replaces the steady one.
    Everyone(Vec<Series>),
}

/// The CPU answers a span is billed from, decided.
#[derive(Debug, PartialEq)]
pub(super) struct CpuAnswer {
    /// Bills every namespace it holds.
    pub steady: Vec<Series>,
    /// Bills the namespaces whose counters fell, which `steady` no longer holds.
    pub exact: Vec<Series>,
}

impl CpuAnswer {
    pub fn decide(mut steady: Vec<Series>, fallen: Fallen) -> Self {
        match fallen {
            Fallen::None => CpuAnswer {
                steady,
                exact: Vec::new(),
            },
            Fallen::Listed { listed, exact } => {
                steady.retain(|s| {
                    s.labels
                        .get("namespace")
                        .is_none_or(|n| listed.binary_search(n).is_err())
                });
                CpuAnswer { steady, exact }
            }
            Fallen::Everyone(all) => CpuAnswer {
                steady: all,
                exact: Vec::new(),
            },
        }
    }
}

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

/// The namespaces of a [`queries::fallen_counters`] answer with a counter that fell in any
/// hour, sorted. Their names go into a regular expression, so they are checked like every
/// answer's.
fn fallen_namespaces(answer: Vec<Series>) -> Result<Vec<String>> {
    let mut names = BTreeSet::new();
    for s in &answer {
        let namespace = namespace_of("fallen counters", s)?;
        if s.points.iter().any(|(_, v)| *v > 0.0) {
            names.insert(namespace.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

impl Collector<'_> {
    /// The sample counts of the span's hours and its CPU answers. Each query goes as soon as
    /// what it needs is there: the steady query of the request and usage bases at once, the
    /// max basis' when the counts are in, the fallen counters' exact part when the counts'
    /// weight is (not the steady answer too).
    ///
    /// `weigh` is an unevenly scraped hour's segments (a one-hour span): requests are weighed
    /// with them inside the queries, and the counts' weight of the hour is then 1.
    pub(super) async fn counts_and_cpu(
        &self,
        span: &[HourWindow],
        weigh: Option<SampleWeight<'_>>,
    ) -> Result<(Counts, CpuAnswer)> {
        let basis = self.config.cpu_basis;
        let steady_q = SteadyQuery::plan(self.windows, basis, self.config.request_model, weigh);
        let fallen_q = queries::fallen_counters(self.windows);
        let (weighed_tx, weighed_rx) = tokio::sync::oneshot::channel();
        let ((counts, after_counts), fallen, now) = tokio::try_join!(
            async {
                let mut counts = self.sample_counts(span).await?;
                let weight = match weigh {
                    Some(segments) => {
                        // Weighed inside every query: the answers are in seconds already.
                        counts.weights.values_mut().for_each(|w| *w = 1.0);
                        segments
                    }
                    None => counts.span_weight(span),
                };
                // Dropped unsent only when the counts failed, whose error then ends the run.
                let _ = weighed_tx.send((counts.interval, weight));
                let after = match steady_q {
                    SteadyQuery::AfterCounts => {
                        // The max basis, the one that waits for the weight.
                        let read = CpuRead::Larger(weight, Counters::Steady);
                        let halves = Half::BOTH
                            .map(|h| queries::cpu(self.windows, read, Namespaces::Half(h)));
                        self.query_together("cpu", &halves, span).await?
                    }
                    SteadyQuery::Now(_) => Vec::new(),
                };
                Ok((counts, after))
            },
            async {
                if basis == CpuBasis::Request {
                    return Ok(Fallen::None);
                }
                let fallen =
                    fallen_namespaces(self.query("fallen counters", &fallen_q, span).await?)?;
                if fallen.is_empty() {
                    return Ok(Fallen::None);
                }
                self.fallen_cpu(span, fallen, weighed_rx).await
            },
            async {
                match &steady_q {
                    SteadyQuery::Now(qs) => self.query_together("cpu", qs, span).await,
                    SteadyQuery::AfterCounts => Ok(Vec::new()),
                }
            },
        )?;
        // Exactly one of the two was sent; the parts of a many-segment hour add up.
        let steady = super::add_up([now, after_counts].concat());
        Ok((counts, CpuAnswer::decide(steady, fallen)))
    }

    /// The CPU of the namespaces `fallen` (not empty), whose usage counters fell within the
    /// span: from their counters' samples ([`counters`]), or with PromQL's case analysis in
    /// parts, or, when they are too many for parts, with one exact query over every namespace.
    ///
    /// `weighed` brings the counts' interval and sample weight. The usage basis' samples need
    /// neither, so they are read as soon as the list is in, beside the counts: waiting for the
    /// counts first put the counts, the list and the samples one after another on the run's
    /// critical path. The max basis' requests and the PromQL case analysis wait for them.
    async fn fallen_cpu(
        &self,
        span: &[HourWindow],
        fallen: Vec<String>,
        weighed: tokio::sync::oneshot::Receiver<(Duration, SampleWeight<'_>)>,
    ) -> Result<Fallen> {
        let mut samples_tried = false;
        if self.config.cpu_basis == CpuBasis::Usage && self.samples_fit(span, &fallen) {
            let parts = split_by_length(&fallen, |some| {
                queries::counter_samples(self.windows, span.len(), Namespaces::Only(some))
            });
            if let Some(parts) = parts {
                samples_tried = true;
                self.log_fallen(&fallen, "samples");
                // The usage basis reads no requests, so no weight.
                match self.used_from_samples(span, &parts, None).await {
                    Ok(exact) => {
                        return Ok(Fallen::Listed {
                            listed: fallen,
                            exact,
                        });
                    }
                    Err(CollectError::Prometheus(e @ PrometheusError::TooLarge { .. })) => {
                        warn!(error = %e, "reading the fallen counters with PromQL instead");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let Ok((interval, weight)) = weighed.await else {
            // The counts failed: their error is the run's.
            return Ok(Fallen::None);
        };
        self.fallen_cpu_weighed(span, fallen, interval, weight, samples_tried)
            .await
    }

    /// Whether the fallen counters' raw samples are few enough to read (and wanted).
    fn samples_fit(&self, span: &[HourWindow], fallen: &[String]) -> bool {
        self.config.fallen_counters == FallenCounters::Samples
            && fallen.len().saturating_mul(span.len() + 1) <= MAX_SAMPLED_NAMESPACE_HOURS
    }

    fn log_fallen(&self, fallen: &[String], from: &'static str) {
        info!(
            namespaces = fallen.len(),
            from,
            "a usage counter fell within the span in some namespaces: their CPU is read \
             with the full case analysis"
        );
    }

    /// [`Collector::fallen_cpu`] once the counts' interval and weight are in; the samples are
    /// not read again when `samples_tried`.
    async fn fallen_cpu_weighed(
        &self,
        span: &[HourWindow],
        fallen: Vec<String>,
        interval: Duration,
        weight: SampleWeight<'_>,
        samples_tried: bool,
    ) -> Result<Fallen> {
        let basis = self.config.cpu_basis;
        let exact = Counters::Exact { interval };
        let read = match basis {
            CpuBasis::Max => CpuRead::Larger(weight, exact),
            CpuBasis::Request | CpuBasis::Usage => CpuRead::Used(exact),
        };
        // Their counters' raw samples, when few enough: in parts short enough for the longest
        // query a part sends (the max basis' requests query names them twice).
        let sampled = !samples_tried && self.samples_fit(span, &fallen);
        let sample_parts = sampled
            .then(|| {
                split_by_length(&fallen, |some| {
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
        if !samples_tried {
            self.log_fallen(
                &fallen,
                if sample_parts.is_some() {
                    "samples"
                } else {
                    "queries"
                },
            );
        }
        if let Some(parts) = &sample_parts {
            let requests = (basis == CpuBasis::Max).then_some(weight);
            match self.used_from_samples(span, parts, requests).await {
                Ok(exact) => {
                    return Ok(Fallen::Listed {
                        listed: fallen.clone(),
                        exact,
                    });
                }
                // An answer over the limit: the queries' answers are per namespace.
                Err(CollectError::Prometheus(e @ PrometheusError::TooLarge { .. })) => {
                    warn!(error = %e, "reading the fallen counters with PromQL instead");
                }
                Err(e) => return Err(e),
            }
        }
        let exact_q = exact_parts(&fallen, |some| {
            queries::cpu(self.windows, read, Namespaces::Only(some))
        });
        if let Some(parts) = &exact_q {
            // One after another, beside the CPU query: usually one or none.
            let mut exact = Vec::new();
            for q in parts {
                exact.extend(self.query("cpu (fallen counters)", q, span).await?);
            }
            return Ok(Fallen::Listed {
                listed: fallen,
                exact,
            });
        }
        let all = queries::cpu(self.windows, read, Namespaces::All);
        Ok(Fallen::Everyone(self.query("cpu", &all, span).await?))
    }

    /// Per namespace of `parts`, the CPU it used in each hour of `span` (core-hours), from its
    /// usage counters' raw samples ([`counters`]): what the exact CPU queries answer, read
    /// once. With `requests` (the max basis, with its sample weight), per container the larger
    /// of requested and used.
    async fn used_from_samples(
        &self,
        span: &[HourWindow],
        parts: &[&[String]],
        requests: Option<SampleWeight<'_>>,
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
            let (samples, requested) = match requests {
                Some(weight) => {
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
                None => (samples.await?, Vec::new()),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::Windows;

    fn series(namespace: &str, points: &[(i64, f64)]) -> Series {
        Series {
            labels: [("namespace".to_string(), namespace.to_string())].into(),
            points: points.to_vec(),
        }
    }

    /// The names go into a regular expression: only namespace names pass, and a namespace is
    /// listed once, whatever hour its counter fell in.
    #[test]
    fn fallen_namespaces_are_checked_namespace_names() {
        let listed = fallen_namespaces(vec![
            series("team-b", &[(3600, 1.0), (7200, 1.0)]),
            series("team-a", &[(7200, 1.0)]),
            series("quiet", &[]),
        ])
        .unwrap();
        assert_eq!(listed, ["team-a", "team-b"]);
        let err = fallen_namespaces(vec![series("a|b", &[(3600, 1.0)])]).unwrap_err();
        assert!(matches!(err, CollectError::BadNamespace { .. }), "{err}");
        let err = fallen_namespaces(vec![series("", &[(3600, 1.0)])]).unwrap_err();
        assert!(matches!(err, CollectError::MissingLabel { .. }), "{err}");
    }

    /// Every exact part fits VictoriaMetrics' default query length, every listed namespace is
    /// in exactly one, and too many parts fall back to one query for all.
    #[test]
    fn exact_parts_fit_the_query_length() {
        let build = |some: &[String]| {
            let exact = Counters::Exact {
                interval: Duration::from_secs(30),
            };
            let read = CpuRead::Larger(SampleWeight::PerHour, exact);
            queries::cpu(Windows::LeftOpen, read, Namespaces::Only(some))
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

    /// The request and usage bases send their steady query beside the counts; the max basis
    /// weighs with them and waits.
    #[test]
    fn the_steady_query_goes_as_early_as_it_can() {
        for w in [Windows::Closed, Windows::LeftOpen] {
            for basis in [CpuBasis::Request, CpuBasis::Usage] {
                let SteadyQuery::Now(halves) = SteadyQuery::plan(w, basis, RequestModel::Pod, None)
                else {
                    panic!("{basis:?} waits for the counts");
                };
                assert_eq!(halves.len(), 2);
            }
            assert_eq!(
                SteadyQuery::plan(w, CpuBasis::Max, RequestModel::Pod, None),
                SteadyQuery::AfterCounts
            );
            // An hour of six segments: the request basis in two parts of each half, the usage
            // basis (which reads no requests) once per half, never twice.
            let six = [queries::Segment {
                len_ms: 600_000,
                offset_ms: 0,
                seconds: 30.0,
            }; 6];
            let weigh = Some(SampleWeight::Segments(&six));
            for (basis, queries) in [(CpuBasis::Request, 4), (CpuBasis::Usage, 2)] {
                let SteadyQuery::Now(qs) = SteadyQuery::plan(w, basis, RequestModel::Pod, weigh)
                else {
                    panic!("{basis:?} waits for the counts");
                };
                assert_eq!(qs.len(), queries, "{basis:?}");
                let unique: std::collections::BTreeSet<&String> = qs.iter().collect();
                assert_eq!(unique.len(), queries, "{basis:?}: a query sent twice");
            }
        }
    }

    /// Fallen namespaces are billed from the exact answer only; too many replace the steady
    /// answer with one for everyone; none leave it as it is.
    #[test]
    fn fallen_namespaces_are_billed_from_one_answer_only() {
        let steady = || {
            vec![
                series("a", &[(3600, 1.0)]),
                series("b", &[(3600, 2.0)]),
                series("c", &[(3600, 3.0)]),
            ]
        };
        let exact = vec![series("b", &[(3600, 2.5)])];
        assert_eq!(
            CpuAnswer::decide(steady(), Fallen::None),
            CpuAnswer {
                steady: steady(),
                exact: vec![]
            }
        );
        let listed = CpuAnswer::decide(
            steady(),
            Fallen::Listed {
                listed: vec!["b".into()],
                exact: exact.clone(),
            },
        );
        assert_eq!(
            listed.steady,
            vec![series("a", &[(3600, 1.0)]), series("c", &[(3600, 3.0)])]
        );
        assert_eq!(listed.exact, exact);
        let everyone = CpuAnswer::decide(steady(), Fallen::Everyone(exact.clone()));
        assert_eq!(
            everyone,
            CpuAnswer {
                steady: exact,
                exact: vec![]
            }
        );
    }
}
