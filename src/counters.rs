//! CPU-seconds used, computed by the job from the raw samples of usage counters: for the
//! namespaces whose counters fell within an hour (queries module documentation, "Counters are
//! read in two parts").
//!
//! Why in the job: PromQL shares no sub-expression, so its case analysis for a counter that
//! fell reads every counter of those namespaces 22 times: 1.4–1.6 s of Prometheus CPU for 755
//! namespaces of 10,000 (the benchmark's cluster), about a fifth of a billed hour's. Their raw
//! samples are one read: 0.1–0.2 s and 6 MB of JSON. And with every sample at hand nothing is
//! estimated: the PromQL case analysis falls back to the engine's `increase()` for a counter
//! that fell twice in an hour, or climbed back above its value before an inner reset; here
//! every climb is counted.
//!
//! The definitions are the queries' (module documentation), applied to each series' samples
//! in the hour `[E-1h, E)` and the hour before:
//! - with `Lp`, the last sample of the hour before: the climb from `Lp` to the value before the
//!   first fall (without a fall, to the last value `L`), then, after each fall, the counter
//!   since it (the value before the next fall, or `L`). Without a fall that is `L − Lp`, with a
//!   fall between the hours `L`, with one fall inside the hour `(V − Lp) + L`: the PromQL forms'
//!   results, from the same floating-point operations, so both paths agree to the bit where
//!   both are exact;
//! - without `Lp` (a counter born in the hour, or first seen in it): the same from the first
//!   sample `F`, which counts too when the counter started from zero in the hour (`2F` not above
//!   the value before the first fall, or `L`): the born rule of the queries.
//!
//! Samples that are not numbers (staleness markers) are not values of the counter and are
//! skipped, as PromQL's functions skip them. Copies of one series (scraped by two jobs) are
//! merged with `max` per `(namespace, pod, container, id)`, as the queries merge them, then
//! summed per container.

use std::collections::BTreeMap;

use crate::prometheus::Series;

const HOUR_MS: i64 = 3_600_000;

/// A container: namespace, pod, container name.
pub type Container = (String, String, String);

/// Per container, per hour end (unix seconds) of `hour_ends`, the CPU-seconds its usage
/// counters `series` (raw samples, times in milliseconds, covering each hour and the one
/// before) used in the hour. A container without a sample in an hour has no value for it.
pub fn used_seconds(
    series: &[Series],
    hour_ends: &[i64],
) -> BTreeMap<Container, BTreeMap<i64, f64>> {
    let label = |s: &Series, name: &str| s.labels.get(name).cloned().unwrap_or_default();
    // Per series identity, per hour: the largest of its copies.
    let mut by_id: BTreeMap<(Container, String), BTreeMap<i64, f64>> = BTreeMap::new();
    for s in series {
        let key = (
            (
                label(s, "namespace"),
                label(s, "pod"),
                label(s, "container"),
            ),
            label(s, "id"),
        );
        let samples: Vec<(i64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(_, v)| v.is_finite())
            .collect();
        for &end in hour_ends {
            let end_ms = end * 1000;
            let within = |from: i64, to: i64| {
                let lo = samples.partition_point(|(t, _)| *t < from);
                let hi = samples.partition_point(|(t, _)| *t < to);
                &samples[lo..hi.max(lo)]
            };
            let before = within(end_ms - 2 * HOUR_MS, end_ms - HOUR_MS);
            let hour: Vec<f64> = within(end_ms - HOUR_MS, end_ms)
                .iter()
                .map(|(_, v)| *v)
                .collect();
            if let Some(used) = used_in_hour(before.last().map(|(_, v)| *v), &hour) {
                let slot = by_id
                    .entry(key.clone())
                    .or_default()
                    .entry(end)
                    .or_insert(used);
                *slot = slot.max(used);
            }
        }
    }
    let mut out: BTreeMap<Container, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((container, _), hours) in by_id {
        let sums = out.entry(container).or_default();
        for (end, used) in hours {
            *sums.entry(end).or_insert(0.0) += used;
        }
    }
    out
}

/// What a counter used in an hour whose values are `hour` (in time order), `last_before` the
/// last value of the hour before (module documentation). `None` without a value in the hour.
fn used_in_hour(last_before: Option<f64>, hour: &[f64]) -> Option<f64> {
    let first = *hour.first()?;
    // The value before the first fall, and the sum of the values before the later ones.
    let mut first_run_end = None;
    let mut later_runs = 0.0;
    let mut prev = last_before.unwrap_or(first);
    for &v in hour {
        if v < prev {
            match first_run_end {
                None => first_run_end = Some(prev),
                Some(_) => later_runs += prev,
            }
        }
        prev = v;
    }
    let last = prev;
    // The first run's climb: from the hour before, or from the first value when it is not
    // counted itself (the counter did not start from zero in this hour).
    let climb = |to: f64| match last_before {
        Some(lp) => to - lp,
        None if 2.0 * first > to => to - first,
        None => to,
    };
    Some(match first_run_end {
        None => climb(last),
        Some(before_fall) => climb(before_fall) + (later_runs + last),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(id: &str, points: &[(i64, f64)]) -> Series {
        let labels = [
            ("namespace", "ns"),
            ("pod", "p"),
            ("container", "c"),
            ("id", id),
        ];
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: points.to_vec(),
        }
    }

    /// The definitions of the module documentation, shape by shape.
    #[test]
    fn each_shape_by_its_definition() {
        // The climb since the hour before.
        assert_eq!(used_in_hour(Some(100.0), &[110.0, 150.0]), Some(50.0));
        // A fall between the hours: the counter since it.
        assert_eq!(used_in_hour(Some(100.0), &[5.0, 30.0]), Some(30.0));
        // Born from zero: all of it; first seen with history: its climb.
        assert_eq!(used_in_hour(None, &[2.0, 40.0]), Some(40.0));
        assert_eq!(used_in_hour(None, &[1000.0, 1040.0]), Some(40.0));
        // 2F = L: counted, as the queries' `m > L / 2` does not hold.
        assert_eq!(used_in_hour(None, &[20.0, 40.0]), Some(40.0));
        // One fall inside the hour: the climb to it, then the counter since.
        assert_eq!(
            used_in_hour(Some(100.0), &[120.0, 180.0, 3.0, 9.0]),
            Some(89.0)
        );
        // The same, climbing back above the value before the fall (PromQL: increase()).
        assert_eq!(used_in_hour(Some(100.0), &[120.0, 3.0, 500.0]), Some(520.0));
        // Two falls: every climb.
        assert_eq!(
            used_in_hour(Some(100.0), &[120.0, 3.0, 10.0, 1.0, 4.0]),
            Some(20.0 + 10.0 + 4.0)
        );
        // Born, then a fall: the born rule on the first run.
        assert_eq!(used_in_hour(None, &[1000.0, 1010.0, 2.0]), Some(12.0));
        assert_eq!(used_in_hour(None, &[1.0, 10.0, 2.0]), Some(12.0));
        // Nothing in the hour.
        assert_eq!(used_in_hour(Some(100.0), &[]), None);
    }

    /// PromQL's forms and this one must agree to the bit where both are exact: the same
    /// operations on the same values.
    #[test]
    fn steady_shapes_are_the_queries_operations() {
        let (lp, v, l) = (0.1 + 0.2, 1e9 / 3.0, 7.0 / 3.0);
        assert_eq!(used_in_hour(Some(lp), &[v, v + 1.1]), Some((v + 1.1) - lp));
        assert_eq!(used_in_hour(Some(v), &[lp, l]), Some(l));
        assert_eq!(used_in_hour(Some(lp), &[v, 1.0, l]), Some(l + (v - lp)));
    }

    #[test]
    fn hours_copies_and_containers() {
        let h = 3600;
        let (e1, e2) = (10 * h, 11 * h);
        // Samples every 30 s from the hour before the first to the end of the second,
        // climbing 1 a sample; a staleness marker is skipped.
        let ts: Vec<i64> = (0..360).map(|k| (e1 - 2 * h) * 1000 + 30_000 * k).collect();
        let climbing: Vec<(i64, f64)> =
            ts.iter().enumerate().map(|(k, t)| (*t, k as f64)).collect();
        let mut with_nan = climbing.clone();
        with_nan.insert(201, (with_nan[200].0 + 1, f64::NAN));
        // A second copy of the same series, scraped by another job, with a smaller value.
        let copy: Vec<(i64, f64)> = climbing.iter().map(|(t, v)| (*t, v / 2.0)).collect();
        let mut other = series("/b", &climbing);
        other.labels.insert("container".into(), "d".into());
        let got = used_seconds(
            &[series("/a", &with_nan), series("/a", &copy), other],
            &[e1, e2],
        );
        let c = |name: &str| ("ns".to_string(), "p".to_string(), name.to_string());
        // The first sample of each hour is 120 samples on: 120 climbs of 1 in each.
        assert_eq!(got[&c("c")], BTreeMap::from([(e1, 120.0), (e2, 120.0)]));
        assert_eq!(got[&c("d")], BTreeMap::from([(e1, 120.0), (e2, 120.0)]));
        // Two ids of one container add up; an hour without samples has no value.
        let got = used_seconds(
            &[series("/a", &climbing), series("/b", &climbing)],
            &[e2, e2 + h],
        );
        assert_eq!(got[&c("c")], BTreeMap::from([(e2, 240.0)]));
    }
}
