//! kube-state-metrics' targets one by one: each that wrote the hour before must reach the
//! hour while Prometheus scrapes it, so a stalled shard holds its hour instead of billing its
//! namespaces short ([`timeline::first_target_behind`]).

use super::*;

impl Collector<'_> {
    /// Per kube-state-metrics target, its data's and its `up`'s times around `span`
    /// ([`queries::target_times`]), read where they say something: over the span's last
    /// minutes for every target (is it current?), which targets wrote in the hour before the
    /// span ([`queries::targets_before`]), and the whole range, from the hour before the span,
    /// only for a target that started or stopped around it (a restart, a shard added or
    /// removed, a stall). A target that wrote before the span and is current at its end is
    /// taken to have written through it.
    pub(super) async fn targets_of(
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
            RangeQuery::at(
                "kube-state-metrics targets before the span",
                &before_q,
                first.start(),
            ),
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
    pub(super) fn stopped(
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
    pub(super) fn target_stopped(
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
}

/// Per `instance`, [`queries::target_times`]' answer: the data's newest sample at each step,
/// and the newest `up`.
pub(super) fn target_times(
    answer: &[crate::prometheus::Series],
) -> BTreeMap<String, timeline::TargetTime> {
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
