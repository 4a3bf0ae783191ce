//! Who writes what a run reads: each source's believed jobs and any other, and the metrics
//! every configured dimension needs.

use super::*;

/// Per source the configured run reads, the jobs that write its metrics in `hour`: those
/// believed (its provenance matchers) and every other, named with its series, which change no
/// bill ([`crate::provenance`]). Only other jobs: a run refuses, naming them.
pub(super) async fn provenance_checks(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    use crate::provenance::Source;
    let usage = matches!(config.collect.cpu_basis, CpuBasis::Usage | CpuBasis::Max);
    let ksm: Vec<&str> = queries::READS
        .iter()
        .map(|(m, ..)| *m)
        .filter(|m| Source::of_metric(m) == Some(Source::KubeStateMetrics))
        .collect();
    let mut sources = vec![(Source::KubeStateMetrics, ksm.join("|"))];
    if usage {
        sources.push((
            Source::Cadvisor,
            "container_cpu_usage_seconds_total".to_string(),
        ));
    }
    if config.collect.gpu_source == GpuSource::Devices {
        sources.push((Source::DcgmExporter, crate::gpu::dcgm::METRIC.to_string()));
    }
    for (source, metrics) in sources {
        let check = format!("provenance {source}");
        let q = queries::jobs_writing(w, &metrics);
        let every = prometheus
            .query_range_every_job(&RangeQuery::at(
                "jobs writing a source's metrics",
                &q,
                hour.end(),
            ))
            .await;
        let believed = at_end(prometheus, "believed jobs", &q, hour).await;
        let (every, believed) = match (every, believed) {
            (Ok(e), Ok(b)) => (e, b),
            (Err(e), _) => return lines.fail(check, e.to_string(), exit::COLLECT),
            (_, Err(e)) => return lines.fail(check, e, exit::COLLECT),
        };
        let job_of = |s: &Series| s.labels.get("job").cloned().unwrap_or_default();
        let mine: Vec<String> = believed.iter().map(job_of).collect();
        let series = |s: &Series| s.points.last().map_or(0.0, |(_, v)| *v);
        let others: Vec<String> = every
            .iter()
            .filter(|s| !mine.contains(&job_of(s)))
            .map(|s| format!("{:?} ({} series)", job_of(s), series(s)))
            .collect();
        let matchers = prometheus.provenance().of(source);
        let believed_text = if matchers.is_empty() {
            format!("every job ({} is empty)", source.flag())
        } else {
            format!("{{{matchers}}}")
        };
        let mine_text = believed
            .iter()
            .map(|s| format!("{:?} ({} series)", job_of(s), series(s)))
            .collect::<Vec<_>>()
            .join(", ");
        match (believed.is_empty(), others.is_empty()) {
            (true, true) => {}
            (true, false) => lines.fail(
                check,
                format!(
                    "no series of the platform's {source} ({believed_text}) in {hour}, but \
                     other jobs write its metrics: {}. A run refuses (exit 4): if one of them is \
                     the platform's {source}, set {} to matchers that pick it and that tenants \
                     cannot write (docs/trust.md)",
                    others.join(", "),
                    source.flag()
                ),
                exit::COLLECT,
            ),
            (false, true) => lines.ok(
                check,
                format!("believed {believed_text}: {mine_text}; no other job writes its metrics"),
            ),
            (false, false) => lines.warn(
                check,
                format!(
                    "believed {believed_text}: {mine_text}. Not believed, and changing no bill: \
                     {}. If one of these is the platform's own, widen {}",
                    others.join(", "),
                    source.flag()
                ),
            ),
        }
    }
}

/// Every metric the configured basis reads, with the labels the queries use.
pub(super) async fn metric_checks(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let usage = matches!(config.collect.cpu_basis, CpuBasis::Usage | CpuBasis::Max);
    let scheduler = config.collect.request_model == queries::RequestModel::Scheduler;
    for (metric, labels, matcher, read_by) in queries::READS {
        if (*read_by == ReadBy::Usage && !usage) || (*read_by == ReadBy::Scheduler && !scheduler) {
            continue;
        }
        let q = queries::present(w, metric, labels, matcher);
        match at_end(prometheus, metric, &q, hour).await {
            Ok(s) if count(&s) > 0.0 => lines.ok(
                *metric,
                format!("{} series with {}", count(&s), labels.join(", ")),
            ),
            // kube-state-metrics writes no series of an empty family: a cluster without a PVC
            // has none, which bills storage 0, rightly.
            Ok(_) if metric.starts_with("kube_persistentvolumeclaim") => lines.warn(
                *metric,
                format!(
                    "no series with the labels {} in this hour: either the cluster has no PVC \
                     (storage is billed 0, rightly) or kube-state-metrics' \
                     persistentvolumeclaims collector is off or not scraped; this check cannot \
                     tell which (kubectl get pvc -A says)",
                    labels.join(", ")
                ),
            ),
            Ok(_) => lines.fail(
                *metric,
                format!(
                    "no series with the labels {} in this hour: {}",
                    labels.join(", "),
                    if *metric == queries::SCHEDULER_METRIC {
                        "check that kube-scheduler's /metrics/resources is scraped (with \
                         honor_labels) and picked by --scheduler-selector, or bill \
                         --request-source kube-state-metrics"
                    } else if metric.starts_with("kube_") {
                        "check that kube-state-metrics v2 is scraped (with honor_labels) and \
                         writes this metric"
                    } else {
                        "check that the kubelet's cAdvisor endpoint is scraped (with \
                         honor_labels), or bill --cpu-basis request"
                    }
                ),
                exit::COLLECT,
            ),
            Err(e) => lines.fail(*metric, e, exit::COLLECT),
        }
    }
}
