//! Requests: pod-level requests kube-state-metrics cannot see, the request sources, in-place
//! resizes and the extended resources that look like GPUs.

use super::*;

/// Pods' requests the kube-state-metrics source cannot see (pod-level requests, a resize
/// down pending), and where kube-scheduler's requests are in the store too, the two sources
/// compared per namespace for the hour (core-hours, the request basis).
pub(super) async fn request_checks(
    collector: &Collector<'_>,
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let scheduler = config.collect.request_model == queries::RequestModel::Scheduler;
    // Both sources' request basis for the hour, weighed in the query (core-hours).
    let read = |model| {
        queries::cpu(
            w,
            queries::CpuRead::Requested(model, Some(queries::SampleWeight::PerHour)),
            queries::Namespaces::All,
        )
    };
    let (ksm_q, scheduler_q) = (
        read(queries::RequestModel::Pod),
        read(queries::RequestModel::Scheduler),
    );
    let (ksm, sched) = tokio::join!(
        at_end(
            prometheus,
            "cpu (kube-state-metrics requests)",
            &ksm_q,
            hour
        ),
        at_end(
            prometheus,
            "cpu (kube-scheduler requests)",
            &scheduler_q,
            hour
        ),
    );
    let (ksm, sched) = match (ksm, sched) {
        (Ok(k), Ok(s)) => (k, s),
        (Err(e), _) | (_, Err(e)) => return lines.fail("request sources", e, exit::COLLECT),
    };
    let per_namespace = |answer: &[Series]| -> std::collections::BTreeMap<String, f64> {
        answer
            .iter()
            .filter_map(|s| {
                let ns = s.labels.get("namespace")?;
                let v = s.points.last()?.1;
                (!config
                    .collect
                    .exclude_namespaces
                    .iter()
                    .any(|p| p.matches(ns)))
                .then(|| (ns.clone(), v))
            })
            .collect()
    };
    let (ksm, sched) = (per_namespace(&ksm), per_namespace(&sched));
    let span = std::slice::from_ref(hour);
    if !scheduler {
        match collector.requests_unseen(span, !sched.is_empty()).await {
            Ok(pods) if pods.is_empty() => lines.ok(
                "pod-level requests",
                "every Running pod's request is its containers' (kube-state-metrics sees it)"
                    .into(),
            ),
            Ok(pods) => lines.warn(
                "pod-level requests",
                format!(
                    "{} pods reserve more than their containers request (first {}): \
                     pod-level requests (Kubernetes 1.34+) or a resize down not yet admitted, \
                     billed at their containers' requests by --request-source \
                     kube-state-metrics. Bill what Kubernetes reserves with --request-source \
                     scheduler (docs/billing.md, Pod-level resources)",
                    pods.len(),
                    pods.keys()
                        .take(3)
                        .map(|(n, p)| format!("{n}/{}", without_controls(p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(e) => lines.fail("pod-level requests", e.to_string(), exit::COLLECT),
        }
    }

    if sched.is_empty() {
        let text = "kube-scheduler's kube_pod_resource_request is not in the store (its \
                    /metrics/resources is not scraped, or --scheduler-selector misses it): \
                    only kube-state-metrics' requests can be billed"
            .to_string();
        return if scheduler {
            lines.fail("request sources", text, exit::COLLECT)
        } else {
            lines.ok("request sources", text)
        };
    }
    let mut differences: Vec<(String, f64, f64)> = ksm
        .keys()
        .chain(sched.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|ns| {
            let k = ksm.get(ns).copied().unwrap_or(0.0);
            let s = sched.get(ns).copied().unwrap_or(0.0);
            (ns.clone(), k, s)
        })
        .filter(|(_, k, s)| (k - s).abs() > 0.01 * k.abs().max(s.abs()).max(1.0))
        .collect();
    differences.sort_by(|a, b| (b.2 - b.1).abs().total_cmp(&(a.2 - a.1).abs()));
    if differences.is_empty() {
        return lines.ok(
            "request sources",
            format!(
                "kube-scheduler and kube-state-metrics agree within 1% in all {} namespaces",
                sched.len().max(ksm.len())
            ),
        );
    }
    let billed = if scheduler {
        "kube-scheduler (--request-source scheduler) is billed"
    } else {
        "kube-state-metrics is billed; --request-source scheduler bills what Kubernetes \
         reserves"
    };
    lines.warn(
        "request sources",
        format!(
            "core-hours of {hour} differ in {} namespaces between kube-state-metrics and \
             kube-scheduler (pod-level requests, pending resizes); largest: {}. {billed} \
             (docs/billing.md, Pod-level resources)",
            differences.len(),
            differences
                .iter()
                .take(3)
                .map(|(ns, k, s)| format!("{ns} {k:.3} vs {s:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

/// GPU resources seen and their weights; StorageClasses seen and their tiers.
pub(super) async fn extended_resource_checks(
    config: &Config,
    prometheus: &Prometheus,
    w: Windows,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let gpu_q = queries::values_of(
        w,
        "kube_pod_container_resource_requests",
        "resource",
        &queries::gpu_matcher(),
    );
    match at_end(prometheus, "gpu resources", &gpu_q, hour).await {
        Err(e) => lines.fail("gpu", e, exit::COLLECT),
        Ok(s) => {
            let resources = values(&s, "resource");
            if resources.is_empty() {
                lines.ok("gpu", "no GPU-like resource requested in this hour".into());
            }
            for r in resources {
                match config.collect.gpu_weights.weight(&r) {
                    Weight::Known(weight) => {
                        lines.ok(format!("gpu {r}"), format!("billed {weight} GPU per unit"))
                    }
                    Weight::Unknown => lines.warn(
                        format!("gpu {r}"),
                        "no weight: billed 0; set --gpu-resource <name>=<GPUs per unit>".into(),
                    ),
                    Weight::SharedUnconfigured => lines.fail(
                        format!("gpu {r}"),
                        "time-sliced GPU without a weight: a run stops; set --gpu-resource \
                         <name>=1/<replicas>"
                            .into(),
                        exit::COLLECT,
                    ),
                }
            }
        }
    }
    let class_q = queries::values_of(w, "kube_persistentvolumeclaim_info", "storageclass", "");
    match at_end(prometheus, "storage classes", &class_q, hour).await {
        Err(e) => lines.fail("storage", e, exit::COLLECT),
        Ok(s) => {
            let classes = values(&s, "storageclass");
            if classes.is_empty() {
                lines.ok("storage", "no PVC in this hour".into());
            }
            for class in classes {
                match config.collect.storage_tiers.get(&class) {
                    Some(tier) => lines.ok(
                        format!("storageclass {class}"),
                        format!(
                            "RWX volumes billed as {}",
                            match tier {
                                Tier::Standard => "standard",
                                Tier::Basic => "basic",
                                Tier::Premium => "premium",
                            }
                        ),
                    ),
                    None => lines.warn(
                        format!("storageclass {class}"),
                        "no --storage-tier: its RWX volumes are billed standard (RWO always \
                         are)"
                            .into(),
                    ),
                }
            }
        }
    }
}
