//! Every answer is checked before anything of its span is billed, and what each series adds to
//! its namespace-hours is kept until the span's hours are read one at a time.
//!
//! Pure: no Prometheus, no clock. What is refused here is an answer no correct engine gives
//! to our queries (a label set twice, a label beyond the `by` labels, a point off the
//! evaluation times) or a value no namespace can be billed (negative, not finite, too large):
//! either would bill a namespace wrong without a trace, so the span fails instead.

use std::collections::{BTreeMap, HashSet};

use super::error::{CollectError, Result};
use crate::prometheus::Series;
use crate::usage::{Dimension, HourUsage, NamespaceUsage, is_billable, is_namespace_name};
use crate::window::{HourWindow, rfc3339};

/// A negative value this small is float noise from subtraction and counts as zero.
const NOISE: f64 = 1e-9;

/// The labels of an answer aggregated `by (namespace)`.
pub(super) const BY_NAMESPACE: &[&str] = &["namespace"];

/// The namespace a series of the `what` query is for: present, and a namespace name.
pub(super) fn namespace_of<'s>(what: &'static str, s: &'s Series) -> Result<&'s str> {
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

/// The hour of `span` ending at `t` (unix seconds), for messages.
pub(super) fn hour_of(span: &[HourWindow], t: i64) -> String {
    span.iter()
        .find(|w| w.end().timestamp() == t)
        .map(|w| w.to_string())
        .unwrap_or_else(|| t.to_string())
}

/// What one series adds to its namespace's usage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Adds {
    /// Nothing: the namespace is billed (the namespace list), or a GPU without a weight.
    Nothing,
    /// Its values, times the factor (GPUs per unit of a resource; 1 otherwise), to a dimension.
    To(Dimension, f64),
    /// Its values, times the factor, to `gpu` and to the GPU model key of that index in the
    /// span's keys (`--gpu-model`).
    ToModel(usize, f64),
}

/// One validated series: its namespace, what it adds, and its values by hour end (sorted).
#[derive(Debug)]
struct Part {
    namespace: String,
    adds: Adds,
    points: Vec<(i64, f64)>,
}

/// One query's answer as [`SpanUsage::add`] takes it.
pub(super) struct Answer<'a> {
    /// The query, for errors.
    pub what: &'static str,
    /// The labels it aggregates by: any other is not our query's answer.
    pub grouped_by: &'a [&'a str],
    pub series: Vec<Series>,
    /// Seconds a sample stands for per hour end, for sums of gauge samples; `None`: values
    /// are quantities already.
    pub weights: Option<&'a BTreeMap<i64, f64>>,
}

/// A span's answers, checked: [`SpanUsage::hours`] gives one hour's usage at a time, so that
/// a span of 24 hours holds its numbers once, not also as 24 hours of per-namespace maps.
#[derive(Debug)]
pub struct SpanUsage {
    hours: Vec<HourWindow>,
    parts: Vec<Part>,
    /// Memory is billed: every namespace carries it, 0 where nothing requested any.
    memory: bool,
    /// GPU model keys (`--gpu-model`): every namespace carries each, 0 where none was held.
    models: Vec<String>,
}

impl SpanUsage {
    pub(super) fn new(span: &[HourWindow], memory: bool, models: Vec<String>) -> Self {
        SpanUsage {
            hours: span.to_vec(),
            parts: Vec::new(),
            memory,
            models,
        }
    }

    /// Check every series of one answer (labels, points on the evaluation times, values) and
    /// keep what each adds to its namespace-hours: its [`Adds`] (from `adds`), and its values,
    /// times the hour's weight when the answer has weights. Namespaces `excluded` are dropped
    /// after their labels are checked.
    pub(super) fn add(
        &mut self,
        answer: Answer<'_>,
        excluded: impl Fn(&str) -> bool,
        mut adds: impl FnMut(&Series) -> Result<Adds>,
    ) -> Result<()> {
        let Answer {
            what,
            grouped_by,
            series,
            weights,
        } = answer;
        let by_end: BTreeMap<i64, &HourWindow> = self
            .hours
            .iter()
            .map(|w| (w.end().timestamp(), w))
            .collect();
        let span_text = match (self.hours.first(), self.hours.last()) {
            (Some(f), Some(l)) => format!("[{}, {})", rfc3339(f.start()), rfc3339(l.end())),
            _ => String::new(),
        };
        // Each query aggregates by its labels: the same label set twice is an engine (or
        // something in front of it) answering twice, never two real things.
        let mut seen = HashSet::with_capacity(series.len());
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
            if excluded(&namespace) {
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
                if !is_billable(weighted) {
                    return Err(CollectError::BadValue {
                        what,
                        namespace,
                        hour: hour.to_string(),
                        value: raw,
                    });
                }
                *value = weighted;
            }
            let adds = adds(&s)?;
            self.parts.push(Part {
                namespace,
                adds,
                points: s.points,
            });
        }
        Ok(())
    }

    /// The usages of consecutive parts of a span as one, oldest first.
    pub(super) fn join(parts: Vec<SpanUsage>, memory: bool, models: Vec<String>) -> Self {
        let mut joined = SpanUsage {
            hours: Vec::new(),
            parts: Vec::new(),
            memory,
            models,
        };
        for p in parts {
            joined.hours.extend(p.hours);
            joined.parts.extend(p.parts);
        }
        joined
    }

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
                let memory = self.memory;
                let models = &self.models;
                let u =
                    match namespaces.get_mut(p.namespace.as_str()) {
                        Some(u) => u,
                        None => namespaces.entry(p.namespace.clone()).or_insert_with(|| {
                            NamespaceUsage {
                                ram: memory.then_some(0.0),
                                gpu_models: models.iter().map(|k| (k.clone(), 0.0)).collect(),
                                ..NamespaceUsage::default()
                            }
                        }),
                    };
                match p.adds {
                    Adds::Nothing => {}
                    Adds::To(d, factor) => *u.get_mut(d) += v * factor,
                    Adds::ToModel(i, factor) => {
                        u.gpu += v * factor;
                        if let Some(key) = self.models.get(i) {
                            *u.gpu_models.entry(key.clone()).or_default() += v * factor;
                        }
                    }
                }
            }
            HourUsage {
                window: *window,
                namespaces,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Vec<HourWindow> {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let first = HourWindow::starting_at(t, "t").unwrap();
        vec![first, first.next()]
    }

    /// Hour ends of [`span`].
    const H1: i64 = 1_793_494_800;
    const H2: i64 = H1 + 3600;

    fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: points.to_vec(),
        }
    }

    fn answer<'a>(series: Vec<Series>, weights: Option<&'a BTreeMap<i64, f64>>) -> Answer<'a> {
        Answer {
            what: "cpu",
            grouped_by: BY_NAMESPACE,
            series,
            weights,
        }
    }

    fn cpu(_: &Series) -> Result<Adds> {
        Ok(Adds::To(Dimension::Cpu, 1.0))
    }

    fn collected(
        answers: Vec<(Vec<Series>, Adds)>,
        weights: Option<&BTreeMap<i64, f64>>,
    ) -> Result<Vec<HourUsage>> {
        let mut usage = SpanUsage::new(&span(), false, Vec::new());
        for (series, adds) in answers {
            usage.add(answer(series, weights), |n| n == "excluded", |_| Ok(adds))?;
        }
        Ok(usage.hours().collect())
    }

    /// Answers add up per namespace, hour and dimension; a namespace listed with nothing to
    /// add is billed zero; weights multiply sums of samples; excluded namespaces are dropped.
    #[test]
    fn answers_add_up_per_namespace_hour_and_dimension() {
        let weights = BTreeMap::from([(H1, 30.0 / 3600.0), (H2, 60.0 / 3600.0)]);
        let hours = collected(
            vec![
                (
                    vec![
                        series(&[("namespace", "a")], &[(H2, 120.0), (H1, 120.0)]),
                        series(&[("namespace", "excluded")], &[(H1, 120.0)]),
                    ],
                    Adds::To(Dimension::Gpu, 0.5),
                ),
                (
                    vec![series(&[("namespace", "b")], &[(H1, 1.0)])],
                    Adds::Nothing,
                ),
            ],
            Some(&weights),
        )
        .unwrap();
        assert_eq!(hours.len(), 2);
        let a1 = &hours[0].namespaces["a"];
        assert_eq!(a1.gpu, 120.0 * 30.0 / 3600.0 * 0.5);
        assert_eq!(hours[1].namespaces["a"].gpu, 120.0 * 60.0 / 3600.0 * 0.5);
        assert_eq!(hours[0].namespaces["b"], NamespaceUsage::default());
        assert!(!hours[1].namespaces.contains_key("b"));
        assert!(!hours[0].namespaces.contains_key("excluded"));
    }

    /// What no correct engine answers, or no namespace can be billed, fails the span.
    #[test]
    fn answers_we_cannot_bill_are_refused() {
        let refused = |series: Vec<Series>| {
            let mut usage = SpanUsage::new(&span(), false, Vec::new());
            usage.add(answer(series, None), |_| false, cpu).unwrap_err()
        };
        let e = refused(vec![
            series(&[("namespace", "a")], &[(H1, 1.0)]),
            series(&[("namespace", "a")], &[(H2, 1.0)]),
        ]);
        assert!(matches!(e, CollectError::DuplicateSeries { .. }), "{e}");
        let e = refused(vec![series(
            &[("namespace", "a"), ("prometheus_replica", "r1")],
            &[(H1, 1.0)],
        )]);
        assert!(
            matches!(&e, CollectError::ExtraLabel { label, .. } if label == "prometheus_replica"),
            "{e}"
        );
        let e = refused(vec![series(&[("namespace", "a")], &[(H1 + 1, 1.0)])]);
        assert!(matches!(e, CollectError::UnexpectedTimestamp { .. }), "{e}");
        let e = refused(vec![series(&[("namespace", "a")], &[(H1, 1.0), (H1, 1.0)])]);
        assert!(matches!(e, CollectError::UnexpectedTimestamp { .. }), "{e}");
        for bad in [-0.5, f64::NAN, f64::INFINITY, 2e9] {
            let e = refused(vec![series(&[("namespace", "a")], &[(H1, bad)])]);
            assert!(matches!(e, CollectError::BadValue { .. }), "{bad}: {e}");
        }
        let e = refused(vec![series(&[("namespace", "A|b")], &[(H1, 1.0)])]);
        assert!(matches!(e, CollectError::BadNamespace { .. }), "{e}");
        let e = refused(vec![series(&[], &[(H1, 1.0)])]);
        assert!(matches!(e, CollectError::MissingLabel { .. }), "{e}");
    }

    /// Subtraction noise just below zero is zero, not a refusal.
    #[test]
    fn float_noise_below_zero_is_zero() {
        let hours = collected(
            vec![(
                vec![series(&[("namespace", "a")], &[(H1, -1e-12)])],
                Adds::To(Dimension::Cpu, 1.0),
            )],
            None,
        )
        .unwrap();
        assert_eq!(hours[0].namespaces["a"].cpu, 0.0);
    }
}
