//! Requests a source cannot see: pod-level requests hidden from kube-state-metrics, and pods
//! kube-scheduler did not report.

use super::*;

impl Collector<'_> {
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
            .query_range(&RangeQuery::at(
                "requests kube-state-metrics cannot see",
                &q,
                last.end(),
            ))
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
                 /metrics/resources scraped; docs/billing.md, Pod-level resources)"
            );
        }
        Ok(pods)
    }
}

/// [`queries::unseen_by_scheduler`]'s answer: refused at the first hour with such a pod.
pub(super) fn scheduler_saw_every_pod(
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
