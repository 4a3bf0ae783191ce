//! Time as the store has it: whether the store holds an hour in full, and how long each
//! kube-state-metrics sample of it stands for, from the exporter's scrape timeline
//! ([`queries::scrape_times`]) and each source's newest sample ([`queries::newest_samples`]).
//!
//! Three facts of real stores decide the rules:
//! - **Late data.** Remote-write pipelines to a central store lag (an agent restart, a backlog,
//!   a throttled tenant), and the backends take late samples for a long time: Mimir's
//!   out-of-order window (`out_of_order_time_window`) is commonly minutes to hours, Thanos
//!   Receive's likewise, and a Prometheus agent replays up to its WAL's two hours. So an hour
//!   is *complete* only when every source the run reads has a sample at or after its end less
//!   one scrape interval (plus jitter); until then it is not billed (the run waits, and says
//!   so). An hour the store has nothing for while it has data after it is not late but lost:
//!   that is [`CollectError::NoData`], as before.
//! - **Holes.** A Prometheus restart (an upgrade, an OOM kill, a long WAL replay) or failed
//!   scrapes leave a stretch with no sample of the exporter. Each sample stands for the time
//!   from the midpoint with the sample before it to the midpoint with the sample after it
//!   (clipped to the hour), so a hole is bridged from both sides: half by the values before
//!   it, half by those after. That is exact for every object that did not change during the
//!   hole and within the hole's length for one that did; a hole longer than `--max-scrape-gap`
//!   is refused, because what happened in it is unknown.
//! - **Changed intervals.** The same midpoint rule weighs a sample scraped every 15 s half as
//!   much as one scraped every 30 s, also within one hour.
//!
//! An evenly scraped hour (every sample standing for the same time, no hole) is billed with one
//! weight per hour, `3600 / n` from the sample counts: the queries stay as cheap as before.
//! Only an uneven hour is cut into [`Segment`]s of equal weight and its gauges are read with
//! one window per segment ([`queries::SampleWeight::Segments`]).
//!
//! Limits: the timeline is the scrape targets' that write the reference namespace. Sharded
//! kube-state-metrics (`--shard`) writes each namespace from one shard, so another shard's
//! missed scrapes are not seen (its samples are still weighed by the reference's segments,
//! right when the shards share one scrape interval).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::queries::Segment;
use crate::window::HourWindow;

/// An hour's samples stand for the same time when their weights are within this share of
/// each other (scrape jitter is milliseconds; a changed interval is a factor).
const EVEN_SHARE: f64 = 0.1;

/// Jitter allowed on top of one scrape interval when an hour's end is judged complete.
const JITTER_MS: i64 = 5_000;

/// The scrape timestamps (Unix milliseconds) of one exporter, sorted, without repeats (its
/// replicas' and restarted pods' series together), how many of its series hold a sample at
/// each (replicas scraped at the same moments), and its scrape interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    times: Vec<i64>,
    /// Per time, the series of the timeline's namespace sampled at it: two kube-state-metrics
    /// replicas scraped at the same moments (vmagent's `scrape_align_interval`, or two
    /// Prometheus jobs of one scrape interval started together) write two samples of every
    /// object at one time, each standing for half the time around it. Counting the time once
    /// and both samples would bill those hours twice.
    copies: Vec<u32>,
    interval: Option<i64>,
}

impl Timeline {
    /// From the timestamps of each of the exporter's series of the reference namespaces, as
    /// `(namespace, times)` (one series per replica and pod of each namespace).
    ///
    /// The timeline is one namespace's: the one with the most scrape times (ties: the first by
    /// name). Sharded kube-state-metrics writes each namespace from one shard, and shards
    /// scraped at different moments would interleave into a timeline no single object has: a
    /// sample of a one-shard namespace would seem to stand for half its time.
    pub fn new(series: Vec<(String, Vec<i64>)>) -> Self {
        let mut by_namespace: BTreeMap<String, Vec<Vec<i64>>> = BTreeMap::new();
        for (namespace, times) in series {
            by_namespace.entry(namespace).or_default().push(times);
        }
        let distinct = |series: &Vec<Vec<i64>>| {
            let mut all: Vec<i64> = series.iter().flatten().copied().collect();
            all.sort_unstable();
            all.dedup();
            all.len()
        };
        let mut chosen: Option<(usize, Vec<Vec<i64>>)> = None;
        for series in by_namespace.into_values() {
            let n = distinct(&series);
            if chosen.as_ref().is_none_or(|(best, _)| n > *best) {
                chosen = Some((n, series));
            }
        }
        Self::of_one_namespace(chosen.map(|(_, s)| s).unwrap_or_default())
    }

    /// From the timestamps of each series of one namespace.
    fn of_one_namespace(series: Vec<Vec<i64>>) -> Self {
        // One target's interval: the median spacing within a series (holes are rare), the
        // median over the series. The union's spacings would be shorter with replicas.
        let mut intervals: Vec<i64> = series
            .iter()
            .filter_map(|times| {
                let mut spacings: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
                spacings.retain(|d| *d > 0);
                spacings.sort_unstable();
                spacings.get(spacings.len() / 2).copied()
            })
            .collect();
        intervals.sort_unstable();
        let interval = intervals.get(intervals.len() / 2).copied();
        let mut counted: BTreeMap<i64, u32> = BTreeMap::new();
        for times in series {
            let mut times = times;
            times.sort_unstable();
            // A series has one sample per time (a store keeps one); repeats are not copies.
            times.dedup();
            for t in times {
                *counted.entry(t).or_insert(0) += 1;
            }
        }
        let (times, copies) = counted.into_iter().unzip();
        Timeline {
            times,
            copies,
            interval,
        }
    }

    /// The exporter's scrape interval: the time between two scrapes of one target.
    pub fn interval_ms(&self) -> Option<i64> {
        self.interval
    }

    /// The most time a sample may lie before an hour's end when the hour is complete: one
    /// scrape interval, plus jitter.
    pub fn tolerance_ms(&self) -> i64 {
        tolerance(self.interval_ms().unwrap_or(60_000))
    }

    /// The times in `[from, to)` and the samples at each.
    fn within(&self, from: i64, to: i64) -> (&[i64], &[u32]) {
        let a = self.times.partition_point(|t| *t < from);
        let b = self.times.partition_point(|t| *t < to);
        (&self.times[a..b], &self.copies[a..b])
    }

    fn before(&self, t: i64) -> Option<i64> {
        let i = self.times.partition_point(|x| *x < t);
        i.checked_sub(1).map(|i| self.times[i])
    }

    fn at_or_after(&self, t: i64) -> Option<i64> {
        let i = self.times.partition_point(|x| *x < t);
        self.times.get(i).copied()
    }
}

/// A stretch of an hour without a sample of the exporter, `[from, to)` in Unix milliseconds
/// (a hole reaching past the hour is given whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from: i64,
    pub to: i64,
}

impl Gap {
    pub fn len(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.to - self.from).unwrap_or(0))
    }
}

/// How an hour's samples are weighed.
#[derive(Debug, Clone, PartialEq)]
pub enum Weighing {
    /// Every sample stands for the same time and nothing is missing: the sample counts'
    /// `3600 / n` bills the hour.
    Even,
    /// Samples stand for different times (a hole bridged, an interval changed): one weight
    /// per segment, which partition the hour. `gaps` are the holes bridged, `intervals` the
    /// different times a sample stands for away from them (milliseconds: the scrape interval,
    /// divided by the replicas), for the logs and `check`.
    Segments {
        segments: Vec<Segment>,
        gaps: Vec<Gap>,
        intervals: Vec<i64>,
    },
}

/// Why an hour cannot be weighed.
#[derive(Debug, Clone, PartialEq)]
pub enum Unweighable {
    /// No sample in the hour, but some after it: the store lost it.
    NoSamples,
    /// A hole longer than the limit.
    TooLong(Gap),
}

/// Judge `hour` on `timeline` (read with at least `max_gap` on either side of it): how its
/// samples are weighed, or why they cannot be.
pub fn weigh(
    timeline: &Timeline,
    hour: &HourWindow,
    max_gap: Duration,
) -> Result<Weighing, Unweighable> {
    weigh_split(timeline, hour, max_gap, &[])
}

/// [`weigh`], with `splits`: the times (Unix milliseconds) at which a kube-state-metrics
/// target's series end or begin ([`TargetTime::splits`]: a restart, a replica added or
/// removed, a shard's pod replaced). A request is averaged per series and reduced by `max`
/// over its copies, which is right for copies side by side (replicas) but not for a series
/// cut in two: the halves' averages are not the hour's if the value changed (an in-place
/// resize). An hour with a split inside is cut into segments there, each averaging its part.
pub fn weigh_split(
    timeline: &Timeline,
    hour: &HourWindow,
    max_gap: Duration,
    splits: &[i64],
) -> Result<Weighing, Unweighable> {
    let (s, e) = (
        hour.start().timestamp_millis(),
        hour.end().timestamp_millis(),
    );
    let (inside, copies) = timeline.within(s, e);
    let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
        return Err(Unweighable::NoSamples);
    };
    let (prev, next) = (timeline.before(s), timeline.at_or_after(e));
    let max_gap_ms = i64::try_from(max_gap.as_millis()).unwrap_or(i64::MAX);
    // The stretches without a sample that touch the hour: between its samples, and at its
    // edges (to the neighbour outside when there is one, else the hour's own edge: data that
    // starts or, billed anyway, stops inside it).
    let mut stretches = vec![Gap {
        from: prev.unwrap_or(s),
        to: first,
    }];
    stretches.extend(inside.windows(2).map(|w| Gap {
        from: w[0],
        to: w[1],
    }));
    stretches.push(Gap {
        from: last,
        to: next.unwrap_or(e),
    });
    // Where the data ends inside the hour (nothing after it), the store lags: the run has
    // judged that already (and only --bill-incomplete bills such an hour), so that stretch is
    // not a hole of the exporter.
    let open_end = next.is_none();
    if let Some(g) = stretches
        .iter()
        .filter(|g| !(open_end && g.from == last))
        .filter(|g| g.to - g.from > max_gap_ms)
        .max_by_key(|g| g.to - g.from)
    {
        return Err(Unweighable::TooLong(*g));
    }
    // Each sample's time: from the midpoint with the one before to the midpoint with the one
    // after, clipped to the hour.
    let mut bounds = Vec::with_capacity(inside.len() + 1);
    bounds.push(s);
    bounds.extend(inside.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2));
    bounds.push(e);
    let weights: Vec<i64> = bounds.windows(2).map(|b| b[1] - b[0]).collect();
    // Unclipped, for the evenness test: the edges of an evenly scraped hour weigh less or
    // more after clipping only because the hour's edge falls between two scrapes. Where the
    // data starts or ends, one side says nothing of the time a sample stands for (replicas
    // make every other spacing short): such a sample keeps its clipped weight and is not
    // judged (`known` false).
    let (around, known): (Vec<i64>, Vec<bool>) = (0..inside.len())
        .map(|i| {
            let before = if i == 0 { prev } else { Some(inside[i - 1]) };
            match (before, inside.get(i + 1).copied().or(next)) {
                (Some(b), Some(a)) => ((a - b) / 2, true),
                _ => (weights[i], false),
            }
        })
        .unzip();
    let mut sorted = around.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2] as f64;
    // A stretch is a hole when it is clearly longer than two samples' time: replicas scraped a
    // few seconds apart leave short and long stretches by turns, and each of their samples
    // stands for about half an interval; a changed interval doubles it at most as often.
    let hole = |g: &Gap| (g.to - g.from) as f64 > 2.0 * median + JITTER_MS as f64;
    let gaps: Vec<Gap> = stretches.iter().filter(|g| hole(g)).copied().collect();
    // Evenness is of what one sample stands for: the time around it shared by the samples at
    // it (a replica added at the same moments halves it, with the times unchanged).
    let per_sample: Vec<f64> = around
        .iter()
        .zip(copies)
        .map(|(w, c)| *w as f64 / f64::from((*c).max(1)))
        .collect();
    let mut sorted_per_sample: Vec<f64> = per_sample.clone();
    sorted_per_sample.sort_by(f64::total_cmp);
    let typical = sorted_per_sample[sorted_per_sample.len() / 2];
    let even = gaps.is_empty()
        && per_sample
            .iter()
            .zip(&known)
            .filter(|(_, known)| **known)
            .all(|(w, _)| (w - typical).abs() <= typical * EVEN_SHARE + 1.0);
    // A split at or before the first sample, or after the last, cuts nothing.
    let cuts: Vec<i64> = splits
        .iter()
        .copied()
        .filter(|t| first <= *t && *t < last)
        .collect();
    if even && cuts.is_empty() {
        return Ok(Weighing::Even);
    }
    let segments = segments(inside, copies, &weights, (s, e), &cuts);
    // The times a sample stands for away from holes, each of at least three samples (the
    // sample where the interval changed stands for a mean of two): more than one when the
    // interval changed.
    let mut seen: Vec<(i64, usize)> = Vec::new();
    for (i, d) in around.iter().enumerate() {
        if gaps
            .iter()
            .any(|g| g.from == inside[i] || g.to == inside[i])
        {
            continue;
        }
        match seen
            .iter_mut()
            .find(|(x, _)| (*x - d).abs() as f64 <= *x as f64 * EVEN_SHARE)
        {
            Some((_, n)) => *n += 1,
            None => seen.push((*d, 1)),
        }
    }
    let intervals: Vec<i64> = seen
        .into_iter()
        .filter(|(_, n)| *n >= 3)
        .map(|(x, _)| x)
        .collect();
    Ok(Weighing::Segments {
        segments,
        gaps,
        intervals,
    })
}

/// Cut the hour `[s, e)` into segments of samples of about equal weight: a sample whose weight
/// differs from its segment's first by more than [`EVEN_SHARE`] opens a new one, except the
/// hour's first and last samples, which join their neighbour's segment when they are not next
/// to a hole (their clipped weight differs only because the hour's edge falls between two
/// scrapes). A segment's samples each stand for its mean weight, so the weights of a segment
/// add up to its length exactly; its window reaches from the midpoint with the segment before
/// to the midpoint with the one after. Each of `cuts` also opens a segment, at the first
/// midpoint after it.
fn segments(
    times: &[i64],
    copies: &[u32],
    weights: &[i64],
    (s, e): (i64, i64),
    cuts: &[i64],
) -> Vec<Segment> {
    let n = times.len();
    // What one sample at each time stands for: its time shared by the samples at it.
    let per_sample: Vec<f64> = weights
        .iter()
        .zip(copies)
        .map(|(w, c)| *w as f64 / f64::from((*c).max(1)))
        .collect();
    // Group index ranges.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=n {
        // A cut opens a segment at the first boundary after it (a boundary lies midway
        // between two samples): a series' last sample at the cut stays before it.
        let boundary = |k: usize| {
            if k == 0 {
                s
            } else {
                times[k - 1] + (times[k] - times[k - 1]) / 2
            }
        };
        let cut = i < n
            && cuts
                .iter()
                .any(|c| boundary(i - 1) <= *c && *c < boundary(i));
        let differs = cut
            || i < n && {
                let reference = per_sample[start];
                (per_sample[i] - reference).abs() > reference * EVEN_SHARE + 1000.0
            };
        if i == n || differs {
            groups.push((start, i));
            start = i;
        }
    }
    let close = |a: f64, b: f64| a.max(b) < 1.5 * a.min(b);
    // The hour's edge samples, alone in a group, join the next group when close to it.
    if groups.len() > 1 && groups[0].1 - groups[0].0 == 1 && close(per_sample[0], per_sample[1]) {
        groups.remove(0);
        groups[0].0 = 0;
    }
    if groups.len() > 1 {
        let k = groups.len() - 1;
        if groups[k].1 - groups[k].0 == 1 && n >= 2 && close(per_sample[n - 1], per_sample[n - 2]) {
            groups.pop();
            if let Some(g) = groups.last_mut() {
                g.1 = n;
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (k, &(a, b)) in groups.iter().enumerate() {
        let from = if k == 0 {
            s
        } else {
            times[a - 1] + (times[a] - times[a - 1]) / 2
        };
        let to = if b == n {
            e
        } else {
            times[b - 1] + (times[b] - times[b - 1]) / 2
        };
        let total: i64 = weights[a..b].iter().sum();
        // Every sample in the segment, the copies at one time each counted.
        let samples: u64 = copies[a..b].iter().map(|c| u64::from((*c).max(1))).sum();
        out.push(Segment {
            len_ms: u128::try_from(to - from).unwrap_or(0),
            offset_ms: u128::try_from(e - to).unwrap_or(0),
            seconds: total as f64 / 1000.0 / samples as f64,
        });
    }
    out
}

/// One interval plus jitter.
fn tolerance(interval_ms: i64) -> i64 {
    interval_ms + JITTER_MS.max(interval_ms / 10)
}

/// The first hour of `hours` (consecutive, oldest first) the store does not hold in full:
/// some source's newest sample lies more than `tolerance_ms` before the hour's end. `newest`
/// is per source, Unix milliseconds; a source without a sample is `None`. Usage counters
/// (cAdvisor, scraped on its own interval, which the timeline does not show) are allowed at
/// least a minute: a counter's last sample a little before the end only moves usage into the
/// next hour (the hours telescope), it loses none.
pub fn first_incomplete<'a>(
    hours: &'a [HourWindow],
    newest: &BTreeMap<String, Option<i64>>,
    tolerance_ms: i64,
) -> Option<(&'a HourWindow, String, Option<i64>)> {
    let allowed = |source: &str| {
        if source == crate::queries::CADVISOR {
            tolerance_ms.max(tolerance(60_000))
        } else {
            tolerance_ms
        }
    };
    hours.iter().find_map(|h| {
        let end = h.end().timestamp_millis();
        newest
            .iter()
            .filter(|(source, t)| t.is_none_or(|t| t < end - allowed(source)))
            .min_by_key(|(_, t)| t.unwrap_or(i64::MIN))
            .map(|(source, t)| (h, source.clone(), *t))
    })
}

/// One kube-state-metrics target's times ([`crate::queries::target_times`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetTime {
    /// The newest sample of its namespaces' phase at each step of the read (Unix
    /// milliseconds), sorted, without repeats.
    pub data: Vec<i64>,
    /// Its newest `up`, answered or not: whether Prometheus still scrapes the target.
    pub up: Option<i64>,
}

impl TargetTime {
    /// Its newest sample of data.
    pub fn newest(&self) -> Option<i64> {
        self.data.last().copied()
    }

    /// Whether it wrote data in `[from, to)`.
    fn wrote(&self, from: i64, to: i64) -> bool {
        let i = self.data.partition_point(|t| *t < from);
        self.data.get(i).is_some_and(|t| *t < to)
    }

    /// Whether Prometheus scraped the target at or after `t`: it still exists (a shard scaled
    /// away or a replaced pod is a target no more, and its `up` ends with it).
    fn scraped_since(&self, t: i64) -> bool {
        self.up.is_some_and(|u| u >= t)
    }
}

/// Where kube-state-metrics targets' series end or begin while others go on ([`weigh_split`]):
/// a target's newest sample, when another target has samples more than one `step_ms` after it
/// (it ended: a restart, a replica or shard removed; exact, `data` holds sample times); and
/// its oldest seen, when that is more than one step after `read_from`, where the read began (it
/// began then, within one step before).
pub fn splits(targets: &BTreeMap<String, TargetTime>, read_from: i64, step_ms: i64) -> Vec<i64> {
    let latest = targets.values().filter_map(TargetTime::newest).max();
    let mut out = Vec::new();
    for t in targets.values() {
        let (Some(first), Some(newest), Some(latest)) = (t.data.first(), t.newest(), latest) else {
            continue;
        };
        if newest + step_ms < latest {
            out.push(newest);
        }
        if *first > read_from + step_ms {
            out.push(*first);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The first hour of `hours` (consecutive, oldest first) that a kube-state-metrics target
/// which wrote the hour before has not reached although Prometheus still scrapes it: a shard
/// whose scrapes fail or whose series lag, whose objects would vanish from the hour. Gives
/// the hour, the target's `instance` and its newest sample. A target that stopped together
/// with its `up` is gone (kube-state-metrics scaled down, a pod replaced): its objects are
/// written by the others from then on.
pub fn first_target_behind<'a, 'b>(
    hours: &'a [HourWindow],
    targets: &'b BTreeMap<String, TargetTime>,
    tolerance_ms: i64,
) -> Option<(&'a HourWindow, &'b str, Option<i64>)> {
    hours.iter().find_map(|h| {
        let (s, e) = (h.start().timestamp_millis(), h.end().timestamp_millis());
        targets
            .iter()
            .filter(|(_, t)| t.wrote(s - 3_600_000, s))
            .filter(|(_, t)| t.newest().is_none_or(|n| n < e - tolerance_ms))
            .filter(|(_, t)| t.scraped_since(e - tolerance_ms))
            .min_by_key(|(_, t)| t.newest())
            .map(|(instance, t)| (h, instance.as_str(), t.newest()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z

    fn hour(start: i64) -> HourWindow {
        let t = chrono::DateTime::from_timestamp_millis(start).unwrap();
        HourWindow::starting_at(t, "test").unwrap()
    }

    /// Scrapes every `every` seconds at `offset` seconds past, from `from` to `to` minutes
    /// after S.
    fn scrapes(from_min: i64, to_min: i64, every: i64, offset: i64) -> Vec<i64> {
        let mut t = S + from_min * 60_000 + offset * 1000;
        let mut out = Vec::new();
        while t < S + to_min * 60_000 {
            out.push(t);
            t += every * 1000;
        }
        out
    }

    /// A timeline of one namespace's series.
    fn one(series: Vec<Vec<i64>>) -> Timeline {
        Timeline::new(
            series
                .into_iter()
                .map(|t| ("kube-system".to_string(), t))
                .collect(),
        )
    }

    fn total(w: &Weighing) -> f64 {
        match w {
            Weighing::Even => 3600.0,
            Weighing::Segments { segments, .. } => segments
                .iter()
                .map(|s| s.len_ms as f64 / 1000.0)
                .sum::<f64>(),
        }
    }

    /// One replica, or two a few seconds apart, scraped evenly: one weight.
    #[test]
    fn even_scrapes_take_one_weight() {
        for series in [
            vec![scrapes(-20, 80, 30, 7)],
            vec![scrapes(-20, 80, 30, 7), scrapes(-20, 80, 30, 13)],
            vec![scrapes(-20, 80, 30, 1), scrapes(-20, 80, 30, 2)],
            // The data ends with the hour (the newest hour of a store): no neighbour after.
            vec![scrapes(-20, 60, 30, 7), scrapes(-20, 60, 30, 13)],
            vec![scrapes(0, 80, 30, 7), scrapes(0, 80, 30, 13)],
        ] {
            let tl = one(series);
            assert_eq!(tl.interval_ms(), Some(30_000));
            let w = weigh(&tl, &hour(S), Duration::from_secs(900)).unwrap();
            assert_eq!(w, Weighing::Even);
        }
    }

    /// A 12-minute hole: the samples next to it carry half of it each, the segments add up
    /// to the hour, and an object present on both sides is billed the whole hour.
    #[test]
    fn a_hole_is_bridged_from_both_sides() {
        let times = [scrapes(-20, 20, 30, 7), scrapes(32, 80, 30, 7)].concat();
        let tl = one(vec![times]);
        let w = weigh(&tl, &hour(S), Duration::from_secs(900)).unwrap();
        let Weighing::Segments { segments, gaps, .. } = &w else {
            panic!("{w:?}")
        };
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].len(), Duration::from_secs(12 * 60 + 30));
        assert!((total(&w) - 3600.0).abs() < 1e-9, "{segments:?}");
        // Every sample weighed once: the weights times the samples in each window add up.
        let mut billed = 0.0;
        for seg in segments {
            let to = S + 3_600_000 - seg.offset_ms as i64;
            let from = to - seg.len_ms as i64;
            let n = tl.within(from, to).0.len() as f64;
            billed += n * seg.seconds;
        }
        assert!((billed - 3600.0).abs() < 1e-6, "{billed} {segments:?}");
        // The two samples beside the hole stand for half of it each, and half an interval.
        assert!(
            segments.iter().any(|s| (s.seconds - 390.0).abs() < 1e-9),
            "{segments:?}"
        );
    }

    /// What a weighing bills for an object present all hour in every series of `series`:
    /// each segment's samples (the copies at one time each counted) times its weight.
    fn billed(series: &[Vec<i64>], w: &Weighing) -> f64 {
        let Weighing::Segments { segments, .. } = w else {
            let n: usize = series
                .iter()
                .map(|t| t.iter().filter(|t| (S..S + 3_600_000).contains(*t)).count())
                .sum();
            return n as f64 * 3600.0 / n as f64;
        };
        segments
            .iter()
            .map(|seg| {
                let to = S + 3_600_000 - seg.offset_ms as i64;
                let from = to - seg.len_ms as i64;
                let n: usize = series
                    .iter()
                    .map(|t| t.iter().filter(|t| (from..to).contains(*t)).count())
                    .sum();
                n as f64 * seg.seconds
            })
            .sum()
    }

    /// Two replicas scraped at the same moments (aligned scrapes), with a hole, a changed
    /// interval, one replica's own gap, a replica added or removed inside the hour, and a
    /// restart: every sample stands for its share, so an object present all hour in every
    /// series is billed exactly the hour, never twice it.
    #[test]
    fn replicas_at_equal_timestamps_are_weighed_by_their_share() {
        let hole = [scrapes(-20, 20, 30, 7), scrapes(32, 80, 30, 7)].concat();
        let retuned = [scrapes(-20, 25, 30, 7), scrapes(25, 80, 15, 7)].concat();
        let cases: Vec<(&str, Vec<Vec<i64>>)> = vec![
            ("aligned, hole", vec![hole.clone(), hole.clone()]),
            ("aligned, retuned", vec![retuned.clone(), retuned.clone()]),
            (
                "aligned, one replica's own gap",
                vec![
                    hole.clone(),
                    [scrapes(-20, 20, 30, 7), scrapes(20, 80, 30, 7)].concat(),
                ],
            ),
            (
                "aligned, a replica added at :30 beside a hole",
                vec![hole.clone(), scrapes(30, 80, 30, 7)],
            ),
            (
                "aligned, a replica removed at :40",
                vec![scrapes(-20, 80, 30, 7), scrapes(-20, 40, 30, 7)],
            ),
            (
                "aligned, one replica restarted at :10 (a new series), a hole",
                vec![
                    hole.clone(),
                    [scrapes(-20, 10, 30, 7)].concat(),
                    [scrapes(10, 20, 30, 7), scrapes(32, 80, 30, 7)].concat(),
                ],
            ),
            (
                "distinct offsets, hole",
                vec![
                    hole.clone(),
                    [scrapes(-20, 20, 30, 13), scrapes(32, 80, 30, 13)].concat(),
                ],
            ),
        ];
        for (what, series) in cases {
            let tl = one(series.clone());
            let w = weigh(&tl, &hour(S), Duration::from_secs(900)).unwrap();
            let got = billed(&series, &w);
            // Exact to the rounding of a millisecond per segment boundary.
            assert!((got - 3600.0).abs() < 0.01, "{what}: billed {got} s: {w:?}");
        }
    }

    /// Shards at distinct moments write the reference namespaces from different targets:
    /// the timeline is one namespace's, not their interleaving (which would halve each
    /// sample's weight in a hole's hour).
    #[test]
    fn the_timeline_is_one_namespaces() {
        let hole = |offset| [scrapes(-20, 20, 30, offset), scrapes(32, 80, 30, offset)].concat();
        let tl = Timeline::new(vec![
            ("kube-system".into(), hole(7)),
            ("openshift-monitoring".into(), hole(19)),
        ]);
        let w = weigh(&tl, &hour(S), Duration::from_secs(900)).unwrap();
        assert!((billed(&[hole(19)], &w) - 3600.0).abs() < 31.0, "{w:?}");
        assert!((billed(&[hole(7)], &w) - 3600.0).abs() < 0.01, "{w:?}");
    }

    /// 30 s, then 15 s from :25: each sample weighs its own interval.
    #[test]
    fn a_changed_interval_weighs_each_side_by_its_own() {
        let times = [scrapes(-20, 25, 30, 7), scrapes(25, 80, 15, 7)].concat();
        let w = weigh(&one(vec![times]), &hour(S), Duration::from_secs(900)).unwrap();
        let Weighing::Segments {
            segments,
            gaps,
            intervals,
        } = &w
        else {
            panic!("{w:?}")
        };
        assert!(gaps.is_empty(), "{gaps:?}");
        assert_eq!(intervals, &[30_000, 15_000]);
        // The hour's edge samples (clipped) join their neighbours: means within a second.
        assert!(
            segments.iter().any(|s| (s.seconds - 30.0).abs() < 1.0),
            "{segments:?}"
        );
        assert!(
            segments.iter().any(|s| (s.seconds - 15.0).abs() < 1.0),
            "{segments:?}"
        );
        assert!((total(&w) - 3600.0).abs() < 1e-9);
    }

    /// A hole over the limit, also one that straddles the hour's start, is refused; an hour
    /// without samples but data after it is lost, not late.
    #[test]
    fn holes_over_the_limit_and_empty_hours_are_refused() {
        let limit = Duration::from_secs(900);
        let times = [scrapes(-20, 20, 30, 7), scrapes(40, 80, 30, 7)].concat();
        let e = weigh(&one(vec![times]), &hour(S), limit).unwrap_err();
        assert!(
            matches!(e, Unweighable::TooLong(g) if g.len() > limit),
            "{e:?}"
        );
        let times = [scrapes(-20, -8, 30, 7), scrapes(9, 80, 30, 7)].concat();
        let e = weigh(&one(vec![times]), &hour(S), limit).unwrap_err();
        assert!(matches!(e, Unweighable::TooLong(_)), "{e:?}");
        let times = [scrapes(-20, -1, 30, 7), scrapes(61, 80, 30, 7)].concat();
        let e = weigh(&one(vec![times]), &hour(S), limit).unwrap_err();
        assert_eq!(e, Unweighable::NoSamples);
    }

    /// Data that starts inside the hour (a new cluster) is weighed from its first sample on.
    #[test]
    fn data_that_starts_in_the_hour_is_not_a_hole() {
        let times = scrapes(0, 80, 30, 7);
        let w = weigh(&one(vec![times]), &hour(S), Duration::from_secs(900)).unwrap();
        assert_eq!(w, Weighing::Even);
    }

    /// The first hour whose end some source has not reached is the first incomplete one.
    #[test]
    fn completeness_is_decided_by_the_laggiest_source() {
        let hours = [hour(S), hour(S + 3_600_000)];
        let tl = one(vec![scrapes(-20, 140, 30, 7)]);
        let tol = tl.tolerance_ms();
        assert_eq!(tol, 35_000);
        let newest = BTreeMap::from([
            ("kube-state-metrics".to_string(), Some(S + 130 * 60_000)),
            ("cadvisor".to_string(), Some(S + 7_200_000 - 20_000)),
        ]);
        assert_eq!(first_incomplete(&hours, &newest, tol), None);
        let newest = BTreeMap::from([
            ("kube-state-metrics".to_string(), Some(S + 130 * 60_000)),
            ("cadvisor".to_string(), Some(S + 40 * 60_000)),
        ]);
        let (h, source, t) = first_incomplete(&hours, &newest, tol).unwrap();
        assert_eq!(
            (h, source.as_str(), t),
            (&hours[0], "cadvisor", Some(S + 2_400_000))
        );
        let newest = BTreeMap::from([("kube-state-metrics".to_string(), None)]);
        assert_eq!(first_incomplete(&hours, &newest, tol).unwrap().2, None);
    }

    fn target(data: &[i64], up: Option<i64>) -> TargetTime {
        TargetTime {
            data: data.to_vec(),
            up,
        }
    }

    /// A shard that wrote the hour before and is still scraped holds the hour until its data
    /// reaches the end; one gone with its `up`, or new in the hour, does not.
    #[test]
    fn every_target_that_wrote_the_hour_before_must_reach_the_hour() {
        let hours = [hour(S), hour(S + 3_600_000)];
        let tol = tolerance(30_000);
        let end = S + 3_600_000;
        let current = target(&[S - 1_800_000, S + 1_800_000, end - 10_000], Some(end));
        let mut targets = BTreeMap::from([("10.0.0.1:8080".to_string(), current.clone())]);
        assert_eq!(first_target_behind(&hours, &targets, tol), None);
        // A shard whose scrapes fail from half past: up goes on (0), its data stops.
        let stalled = target(&[S - 1_800_000, S + 1_800_000], Some(end + 3_600_000));
        targets.insert("10.0.0.2:8080".into(), stalled.clone());
        let (h, instance, newest) = first_target_behind(&hours, &targets, tol).unwrap();
        assert_eq!(
            (h.start().timestamp_millis(), instance),
            (S, "10.0.0.2:8080")
        );
        assert_eq!(newest, Some(S + 1_800_000));
        // The same shard gone with its up (scaled down): not waited for.
        targets.insert(
            "10.0.0.2:8080".into(),
            target(&stalled.data, Some(S + 1_800_000)),
        );
        assert_eq!(first_target_behind(&hours, &targets, tol), None);
        // A target that did not write the hour before (new in the hour) holds nothing of it,
        // but the next hour, which it wrote the hour before.
        targets.insert(
            "10.0.0.3:8080".into(),
            target(&[S + 1_800_000], Some(end + 3_600_000)),
        );
        assert_eq!(first_target_behind(&hours[..1], &targets, tol), None);
        let (h, instance, _) = first_target_behind(&hours, &targets, tol).unwrap();
        assert_eq!(
            (h.start().timestamp_millis(), instance),
            (end, "10.0.0.3:8080")
        );
    }

    /// A kube-state-metrics restart at 00:30 in an evenly scraped hour: the old pod's series
    /// ends, the new one's begins, and the hour is cut there into two segments of the same
    /// weight, the old series' last sample before the cut.
    #[test]
    fn a_series_cut_in_two_cuts_the_hour() {
        let old = scrapes(-60, 30, 30, 19);
        let new = scrapes(30, 120, 30, 19);
        let reference = one(vec![scrapes(-60, 120, 30, 7)]);
        let step = 240_000;
        let targets = BTreeMap::from([
            (
                "old".to_string(),
                target(
                    &old.iter()
                        .step_by(8)
                        .copied()
                        .chain(old.last().copied())
                        .collect::<Vec<_>>(),
                    old.last().copied(),
                ),
            ),
            (
                "new".to_string(),
                target(
                    &new.iter().skip(3).step_by(8).copied().collect::<Vec<_>>(),
                    new.last().copied(),
                ),
            ),
        ]);
        let splits = splits(&targets, S - 3_600_000, step);
        let last_old = *old.last().unwrap();
        assert_eq!(splits[0], last_old, "{splits:?}");
        assert!(
            splits[1] > last_old && splits[1] <= new[0] + step,
            "{splits:?}"
        );
        assert_eq!(
            weigh(&reference, &hour(S), Duration::from_secs(900)),
            Ok(Weighing::Even)
        );
        let Weighing::Segments { segments, gaps, .. } =
            weigh_split(&reference, &hour(S), Duration::from_secs(900), &splits).unwrap()
        else {
            panic!("cut")
        };
        assert!(gaps.is_empty());
        assert!(segments.len() >= 2, "{segments:?}");
        let total: u128 = segments.iter().map(|s| s.len_ms).sum();
        assert_eq!(total, 3_600_000);
        // Each sample stands for its interval, but for the hour's edges falling between two
        // scrapes (a segment's mean weight carries them).
        for seg in &segments {
            assert!((seg.seconds - 30.0).abs() < 0.5, "{seg:?}");
        }
        // The first segment ends after the old series' last sample.
        let first_end = S + 3_600_000 - segments[0].offset_ms as i64;
        assert!(
            first_end > last_old && first_end < last_old + 30_000,
            "{segments:?}"
        );
    }
}
