//! The scrape interval and the weight of a gauge sample, from the sample counts of the
//! namespaces' phase series ([`queries::namespace_samples`]).
//!
//! Why counts: a gauge is billed as a sum of its samples times the seconds one stands for.
//! Per hour that is `3600 / n`, with `n` the samples of a namespace present all hour, summed
//! over every series of it (so a kube-state-metrics restart, whose series split in two, and
//! replicas, whose series add up, are divided back out). The interval is the typical
//! namespace's, and a namespace with more samples than that is refused: one weight cannot
//! bill two exporters at two intervals right.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{CollectError, Result};
use super::validate::{hour_of, namespace_of};
use crate::prometheus::Series;
use crate::queries::{self, SampleWeight};
use crate::window::{HourWindow, rfc3339};

/// Hours the scrape interval is derived from at least: a short span (a scheduled run bills one
/// hour) is read with the hours before it, so that a scrape gap in it does not pass for a
/// longer interval unless every one of these hours has one. More would cost more than every
/// other query of a one-hour run together.
pub(super) const INTERVAL_HOURS: usize = 3;

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

/// What the sample counts of a span say.
#[derive(Debug)]
pub(super) struct Counts {
    /// Per namespace billed, its sample counts in the span's hours (summed over its series).
    pub namespaces: Vec<Series>,
    /// The scrape interval the gauges are integrated at.
    pub interval: Duration,
    /// Seconds a gauge sample stands for, per hour end.
    pub weights: BTreeMap<i64, f64>,
}

impl Counts {
    /// How the max basis weighs requests in its query for `span`: with the weight the
    /// collector has already when every hour of the span has the same, so that the query does
    /// not count the samples again.
    pub fn span_weight(&self, span: &[HourWindow]) -> SampleWeight<'static> {
        let mut span_weights = span
            .iter()
            .filter_map(|w| self.weights.get(&w.end().timestamp()));
        match span_weights.next() {
            Some(first) if span_weights.all(|w| w == first) => SampleWeight::Constant(*first),
            _ => SampleWeight::PerHour,
        }
    }
}

/// Read the answer of [`queries::namespace_samples`] for `span` (and the context hours before
/// it): the interval as `configured`, or of the typical namespace; refused when a namespace
/// has more samples than one exporter at that interval writes, or an hour has no data.
pub(super) fn read_counts(
    answer: Vec<Series>,
    span: &[HourWindow],
    configured: Option<Duration>,
    reference: &str,
) -> Result<Counts> {
    // The two views: counts in one series (the answer's own), and summed over every series
    // of a namespace.
    let series = answer;
    let mut sums: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for s in &series {
        let namespace = namespace_of("namespaces", s)?;
        // A namespace's second series finds its entry without allocating its name again.
        let by_time = match sums.get_mut(namespace) {
            Some(by_time) => by_time,
            None => sums.entry(namespace.to_string()).or_default(),
        };
        for (t, v) in &s.points {
            *by_time.entry(*t).or_insert(0.0) += v;
        }
    }
    let mut namespaces: Vec<Series> = sums
        .into_iter()
        .map(|(namespace, points)| Series {
            labels: BTreeMap::from([("namespace".to_string(), namespace)]),
            points: points.into_iter().collect(),
        })
        .collect();
    let span_ends: BTreeSet<i64> = span.iter().map(|w| w.end().timestamp()).collect();
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
    let interval = match configured {
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
                    if let Some(summed) = limit
                        && let Some(ahead) =
                            ahead_of_others(s, span, *t, summed, reference, interval)
                    {
                        return Err(ahead);
                    }
                    return Err(CollectError::ExportersDisagree {
                        hour: hour_of(span, *t),
                        namespace: s.labels.get("namespace").cloned().unwrap_or_default(),
                        count: *v,
                        typical,
                        how,
                    });
                }
            }
        }
    }
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
    Ok(Counts {
        namespaces,
        interval,
        weights,
    })
}

/// A reference namespace over the typical count in the hour ending at `t` (Unix seconds)
/// because the others fell behind, not because it gained samples: its count is what it was
/// the hour before, and the typical namespace's is lower than the hour before. Remote write
/// sends series on parallel shards, and a central store may hold the reference namespaces'
/// series further than the rest: the hour is not held in full, and waits
/// ([`CollectError::AheadOfOthers`]) instead of being refused as a second exporter.
fn ahead_of_others(
    namespace: &Series,
    span: &[HourWindow],
    t: i64,
    summed: &BTreeMap<i64, HourCounts>,
    reference: &str,
    interval: Duration,
) -> Option<CollectError> {
    let name = namespace.labels.get("namespace")?;
    if !reference.split('|').any(|r| r == name) {
        return None;
    }
    let at = |t: i64| {
        namespace
            .points
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, v)| *v)
    };
    let (count, own_before) = (at(t)?, at(t - 3600)?);
    let (typical, before) = (summed.get(&t)?.typical, summed.get(&(t - 3600))?.typical);
    let steady = count <= own_before * 1.05 + 2.0;
    let others_fell = typical * 1.05 + 2.0 < before;
    if !(steady && others_fell) {
        return None;
    }
    let start_ms = (t - 3600) * 1000;
    let reached = start_ms + (typical * interval.as_secs_f64() * 1000.0).round() as i64;
    Some(CollectError::AheadOfOthers {
        hour: hour_of(span, t),
        end: t,
        namespace: name.clone(),
        count,
        typical,
        before,
        reached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_snapped_to_whole_seconds() {
        assert_eq!(interval_from_count(120.0), Some(Duration::from_secs(30)));
        assert_eq!(interval_from_count(515.0), Some(Duration::from_secs(7)));
        assert_eq!(interval_from_count(514.0), Some(Duration::from_secs(7)));
        assert_eq!(interval_from_count(240.0), Some(Duration::from_secs(15)));
        assert_eq!(interval_from_count(0.0), None);
        assert_eq!(interval_from_count(f64::NAN), None);
    }

    fn span() -> Vec<HourWindow> {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        vec![HourWindow::starting_at(t, "t").unwrap()]
    }

    const END: i64 = 1_793_494_800;

    /// One series per (namespace, instance, count in the hour ending at END, and before).
    fn answer(rows: &[(&str, &str, f64, f64)]) -> Vec<Series> {
        rows.iter()
            .map(|(ns, instance, now, before)| Series {
                labels: [
                    ("namespace", *ns),
                    ("instance", *instance),
                    ("phase", "Active"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                points: vec![(END - 3600, *before), (END, *now)],
            })
            .collect()
    }

    /// A restart splits a namespace's series in two: the typical count per series sets the
    /// interval, the counts summed over series set the weight, and the context hour is dropped.
    #[test]
    fn interval_from_the_typical_series_and_weight_from_the_sums() {
        let counts = read_counts(
            answer(&[
                ("a", "ksm-1", 60.0, 120.0),
                ("a", "ksm-2", 60.0, 0.0),
                ("b", "ksm-2", 120.0, 120.0),
                ("c", "ksm-2", 30.0, 120.0),
            ]),
            &span(),
            None,
            "kube-system",
        )
        .unwrap();
        assert_eq!(counts.interval, Duration::from_secs(30));
        assert_eq!(counts.weights[&END], 30.0, "seconds a sample stands for");
        assert_eq!(counts.namespaces.len(), 3);
        let a = &counts.namespaces[0];
        assert_eq!(a.labels.len(), 1, "only the namespace is kept: {a:?}");
        assert_eq!(a.points, [(END, 120.0)]);
        assert_eq!(counts.span_weight(&span()), SampleWeight::Constant(30.0));
    }

    /// A namespace written by a second exporter is refused, whether in one denser series or
    /// as extra series; an hour without counts is no data; a series without a namespace is
    /// not billable.
    #[test]
    fn counts_that_cannot_be_billed_with_one_weight_are_refused() {
        let typical = [
            ("b", "ksm", 120.0, 120.0),
            ("c", "ksm", 120.0, 120.0),
            ("d", "ksm", 120.0, 120.0),
        ];
        let with = |extra: &[(&str, &str, f64, f64)]| {
            read_counts(
                answer(&[&typical[..], extra].concat()),
                &span(),
                None,
                "kube-system",
            )
        };
        let e = with(&[("a", "ksm", 360.0, 360.0)]).unwrap_err();
        assert!(
            matches!(&e, CollectError::ExportersDisagree { how, .. } if *how == "in one series"),
            "{e}"
        );
        let e = with(&[("b", "tenant-ksm", 120.0, 120.0)]).unwrap_err();
        assert!(
            matches!(&e, CollectError::ExportersDisagree { how, .. } if *how == "over all its series"),
            "{e}"
        );
        let e = read_counts(
            answer(&[("b", "ksm", 0.0, 120.0)]),
            &span(),
            None,
            "kube-system",
        )
        .unwrap_err();
        assert!(matches!(e, CollectError::NoData { .. }), "{e}");
        let mut nameless = answer(&[("b", "ksm", 120.0, 120.0)]);
        nameless[0].labels.remove("namespace");
        let e = read_counts(nameless, &span(), None, "kube-system").unwrap_err();
        assert!(matches!(e, CollectError::MissingLabel { .. }), "{e}");
    }

    /// Remote write holds the other namespaces back: the reference namespace keeps its count
    /// and the typical one falls below the hour before, so the hour waits; a reference
    /// namespace that gains samples is a second exporter.
    #[test]
    fn a_reference_namespace_ahead_of_the_others_waits() {
        let lagging = [
            ("b", "ksm", 80.0, 120.0),
            ("c", "ksm", 80.0, 120.0),
            ("d", "ksm", 81.0, 120.0),
        ];
        let with = |reference: (&str, &str, f64, f64)| {
            read_counts(
                answer(&[&lagging[..], &[reference]].concat()),
                &span(),
                None,
                "kube-system|openshift-monitoring",
            )
        };
        let e = with(("kube-system", "ksm", 120.0, 120.0)).unwrap_err();
        let CollectError::AheadOfOthers {
            typical,
            before,
            reached,
            end,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*typical, *before, *end), (81.0, 120.0, END));
        assert_eq!(*reached, (END - 3600) * 1000 + 81 * 30_000, "{e}");
        let e = with(("kube-system", "ksm", 240.0, 120.0)).unwrap_err();
        assert!(
            matches!(e, CollectError::ExportersDisagree { .. }),
            "gained samples: {e}"
        );
        let e = with(("team-a", "ksm", 120.0, 120.0)).unwrap_err();
        assert!(
            matches!(e, CollectError::ExportersDisagree { .. }),
            "not a reference namespace: {e}"
        );
    }
}
