//! The PromQL of every dimension, and why it is exact.
//!
//! Each expression is evaluated by a range query at the *end* `E` of each hour (step 1h) and
//! describes the hour `[E-1h, E)`:
//!
//! * Range selectors are written `[3599999ms] offset 1ms`, which selects the samples with
//!   timestamps in `[E-1h, E)`. A plain `[1h]` is closed at both ends in Prometheus 2.x and would
//!   count a sample that falls exactly on the hour in two hours.
//! * Gauges (requests, phases, PVC sizes) are integrated as `sum_over_time(x) * Δ`, where `Δ` is
//!   the kube-state-metrics scrape interval: every sample stands for one interval. This is exact
//!   for objects that exist the whole hour and within one interval for objects that start or
//!   stop inside it. `avg_over_time` would be wrong for partial hours.
//! * Requests are constant over a pod's life, so `request × (Running samples × Δ)` equals the
//!   integral of `request × [phase = Running]` without a subquery (subqueries would fill gaps with
//!   the 5 minute lookback and bill stopped pods for up to 5 more minutes).
//! * kube-state-metrics may run as several replicas: every series is reduced with `max by` its
//!   identity before anything is summed, so replicas never add up.
//! * A scrape gap of kube-state-metrics (all replicas missing scrapes) is compensated per hour:
//!   the sample weight is `Δ × N / n`, where `N = floor(3600 / Δ)` is the expected and `n` the
//!   observed largest sample count of `kube_namespace_status_phase` in that hour.
//! * CPU usage counters are telescoped: an hour's usage is the counter's last value in the hour
//!   minus its last value in the hour before, so consecutive hours sum exactly to the span total
//!   and a constant rate is exact. A counter born in the hour counts from zero (capped by
//!   `increase`); only hours with a counter reset fall back to `increase`.

use std::time::Duration;

use crate::cli::CpuBasis;

/// Samples with timestamps in `[E-1h, E)`.
const HOUR: &str = "[3599999ms] offset 1ms";
/// Samples with timestamps in `[E-2h, E-1h)`: the hour before.
const PREVIOUS_HOUR: &str = "[3599999ms] offset 3600001ms";
/// Samples with timestamps in `[E-2h, E)`.
const TWO_HOURS: &str = "[7199999ms] offset 1ms";

/// Largest sample count of one kube-state-metrics series in the hour; gives the scrape interval.
pub fn sample_count() -> String {
    format!("max(count_over_time(kube_namespace_status_phase{HOUR}))")
}

/// Every namespace seen in the hour.
pub fn namespaces() -> String {
    format!("group by (namespace) (count_over_time(kube_namespace_status_phase{HOUR}))")
}

/// Seconds one sample stands for in the hour, with the scrape-gap compensation.
fn sample_seconds(interval: Duration) -> String {
    let secs = interval.as_secs_f64();
    let expected = (3600.0 / secs).floor().max(1.0);
    format!(
        "({secs} * scalar(clamp_min({expected} / max(count_over_time(kube_namespace_status_phase{HOUR})), 1)))"
    )
}

/// Per container: resource-seconds requested while the pod was Running, labels
/// `namespace, pod, uid, container`.
fn requested_seconds(resource: &str, interval: Duration) -> String {
    format!(
        "(\n  max by (namespace, pod, uid, container) (avg_over_time(kube_pod_container_resource_requests{{resource=\"{resource}\"}}{HOUR}))\n  * on (namespace, pod, uid) group_left ()\n  max by (namespace, pod, uid) (sum_over_time(kube_pod_status_phase{{phase=\"Running\"}}{HOUR}))\n  * {sw}\n)",
        sw = sample_seconds(interval)
    )
}

/// Per container series: CPU-seconds used in the hour, labels `namespace, pod, container, id`.
fn used_seconds() -> String {
    let c = r#"container_cpu_usage_seconds_total{container!="", container!="POD"}"#;
    format!(
        "max by (namespace, pod, container, id) (\n  (\n    (last_over_time({c}{HOUR}) - last_over_time({c}{PREVIOUS_HOUR}))\n    unless (resets({c}{TWO_HOURS}) > 0)\n  )\n  or\n  (\n    (last_over_time({c}{HOUR}) <= increase({c}{HOUR}))\n    unless (resets({c}{TWO_HOURS}) > 0)\n  )\n  or\n  increase({c}{HOUR})\n)"
    )
}

/// Core-hours per namespace for the chosen basis.
pub fn cpu(basis: CpuBasis, interval: Duration) -> String {
    match basis {
        CpuBasis::Request => format!(
            "sum by (namespace) {req} / 3600",
            req = requested_seconds("cpu", interval)
        ),
        CpuBasis::Usage => format!("sum by (namespace) ({}) / 3600", used_seconds()),
        CpuBasis::Max => format!(
            "sum by (namespace) (\n  max by (namespace, pod, container) (\n    label_replace(max by (namespace, pod, container) {req}, \"basis\", \"request\", \"\", \"\")\n    or\n    label_replace(sum by (namespace, pod, container) ({used}), \"basis\", \"usage\", \"\", \"\")\n  )\n) / 3600",
            req = requested_seconds("cpu", interval),
            used = used_seconds()
        ),
    }
}

/// GPU-hours requested per namespace.
pub fn gpu(interval: Duration) -> String {
    format!(
        "sum by (namespace) {req} / 3600",
        req = requested_seconds("nvidia_com_gpu", interval)
    )
}

/// GiB-hours of PVC requests per namespace, StorageClass and access (`rwx="true"|"false"`).
pub fn storage(interval: Duration) -> String {
    format!(
        "sum by (namespace, storageclass, rwx) (\n  max by (namespace, persistentvolumeclaim) (sum_over_time(kube_persistentvolumeclaim_resource_requests_storage_bytes{HOUR}))\n  * on (namespace, persistentvolumeclaim) group_left (storageclass)\n  max by (namespace, persistentvolumeclaim, storageclass) (max_over_time(kube_persistentvolumeclaim_info{HOUR}))\n  * on (namespace, persistentvolumeclaim) group_left (rwx)\n  (\n    label_replace(max by (namespace, persistentvolumeclaim) (max_over_time(kube_persistentvolumeclaim_access_mode{{access_mode=\"ReadWriteMany\"}}{HOUR})), \"rwx\", \"true\", \"\", \"\")\n    or on (namespace, persistentvolumeclaim)\n    label_replace(max by (namespace, persistentvolumeclaim) (max_over_time(kube_persistentvolumeclaim_info{HOUR})), \"rwx\", \"false\", \"\", \"\")\n  )\n) * {sw} / 3600 / 1073741824",
        sw = sample_seconds(interval)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIRTY: Duration = Duration::from_secs(30);

    /// What we send to Prometheus is reviewed like code: any change shows in the snapshot.
    #[test]
    fn queries_snapshot() {
        insta::assert_snapshot!("cpu_request", cpu(CpuBasis::Request, THIRTY));
        insta::assert_snapshot!("cpu_usage", cpu(CpuBasis::Usage, THIRTY));
        insta::assert_snapshot!("cpu_max", cpu(CpuBasis::Max, THIRTY));
        insta::assert_snapshot!("gpu", gpu(THIRTY));
        insta::assert_snapshot!("storage", storage(THIRTY));
        insta::assert_snapshot!("namespaces", namespaces());
    }

    #[test]
    fn no_query_names_a_namespace_or_a_time() {
        for q in [
            cpu(CpuBasis::Max, THIRTY),
            gpu(THIRTY),
            storage(THIRTY),
            namespaces(),
            sample_count(),
        ] {
            assert!(!q.contains("namespace=\""), "{q}");
            assert!(!q.contains('@'), "{q}");
        }
    }

    #[test]
    fn sample_weight_uses_the_interval() {
        assert!(sample_seconds(Duration::from_secs(7)).starts_with("(7 * scalar(clamp_min(514 /"));
        assert!(sample_seconds(THIRTY).starts_with("(30 * scalar(clamp_min(120 /"));
    }
}
