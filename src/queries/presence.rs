//! What the store holds and who writes it: the labels, metrics and jobs `check` and the
//! provenance rules ask about before any hour is billed.

use super::*;

/// What the data of an hour says about its own labels, in one read, told apart by the label
/// `check`:
///
/// * `check="exported_namespace"` / `"exported_pod"`: how many kube-state-metrics and cAdvisor
///   series carry that label, which Prometheus writes when a target's own labels collide with
///   the scraped ones and `honor_labels` is false ("label conflicts are resolved by renaming
///   conflicting labels in the scraped data to `exported_<original-label>`", Prometheus
///   configuration documentation, `scrape_config`). Their `namespace` is then the exporter's
///   own, and every object would be billed to it: the collector refuses it. The label matcher
///   is answered from the index, so a store without such series reads no samples for it, over
///   the whole hour.
///
/// The clusters in the store are judged from the [`namespace_samples`] answer, whose series
/// keep every label of the namespaces' phase series over the whole hour: no read of its own.
///
/// With `sidecars` (the [`RequestModel::Pod`]), also `check="unlabelled_sidecars"`: how many
/// init containers run all hour without `restart_policy="Always"` in a store where no init
/// container has it. An ordinary init container finishes before its pod's app containers
/// start, so one running a whole hour is a native sidecar, and a store without any
/// `restart_policy="Always"` is written by kube-state-metrics older than 2.11, which does not
/// export it: the pods' effective requests cannot be computed. (Reading the pods' phases to
/// prove the pod ran too would read every pod's phase again, a fifth of the hour's samples at
/// 10,000 namespaces; the init containers' own series are few.)
pub fn data_labels(w: Windows, sidecars: bool) -> String {
    let h = w.hour();
    // kube-state-metrics' and cAdvisor's series in two selectors: each is read from its own
    // exporter only (the client adds each source's provenance matchers by the metric's name).
    // Counted per job, so that a refusal names the scrape job to fix.
    let exported = |label: &str| {
        format!(
            "label_replace(\
             count by (job) (last_over_time({{__name__=~\"{KSM_FAMILIES}\", {label}!=\"\"}}{h})) \
             or count by (job) (last_over_time({CADVISOR_METRIC}{{{label}!=\"\"}}{h})), \
             \"check\", \"{label}\", \"\", \"\")"
        )
    };
    let (namespace, pod) = (exported("exported_namespace"), exported("exported_pod"));
    let mut parts = vec![namespace, "or".into(), pod];
    if sidecars {
        let id = "namespace, pod, uid";
        let running_init = format!(
            "(min by ({id}, container) \
             (min_over_time(kube_pod_init_container_status_running{h})) == 1)"
        );
        let labelled = format!(
            "max by ({id}, container) \
             (max_over_time(kube_pod_init_container_info{{restart_policy=\"Always\"}}{h}))"
        );
        let unlabelled = block(
            "count (",
            &[
                &running_init,
                &format!("unless on ({id}, container)"),
                &labelled,
                "unless on ()",
                &format!("count ({labelled})"),
            ],
            ")",
        );
        parts.push("or".into());
        parts.push(format!(
            "label_replace({unlabelled}, \"check\", \"unlabelled_sidecars\", \"\", \"\")"
        ));
        // Values Kubernetes' API validation forbids (a negative or NaN quantity), which can
        // only be corrupt data: a negative overhead or init-container request would lower a
        // bill, and PromQL's `max` drops a NaN. The pod model reads these families; they are
        // few series (pods with a RuntimeClass overhead, init containers).
        // Per family (a range function drops the metric's name, so two families in one
        // selector would collide), the first that has any.
        let any = |each: &dyn Fn(&str) -> String| {
            let per: Vec<String> = POD_PARTS.iter().map(|m| each(m)).collect();
            format!("({})", per.join(" or "))
        };
        let negative = any(&|m| format!("count(min_over_time({m}{{}}{h}) < 0)"));
        let nan = any(&|m| {
            format!(
                "(count(max_over_time({m}{{}}{h})) - count(max_over_time({m}{{}}{h}) > -Inf) > 0)"
            )
        });
        parts.push("or".into());
        parts.push(format!(
            "label_replace({negative}, \"check\", \"negative_requests\", \"\", \"\")"
        ));
        parts.push("or".into());
        parts.push(format!(
            "label_replace({nan}, \"check\", \"nan_requests\", \"\", \"\")"
        ));
        // kube-state-metrics copies the pod spec's restartPolicy; only `Always` makes a native
        // sidecar, anything else but empty (`always`, `Always `) is no value Kubernetes
        // accepts, and is read as an ordinary init container: the collector names it.
        parts.push("or".into());
        parts.push(format!(
            "label_replace(count by (restart_policy) (last_over_time(\
             kube_pod_init_container_info{{restart_policy!~\"Always|\"}}{h})), \"check\", \
             \"odd_restart_policy\", \"\", \"\")"
        ));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    block("(", &parts, ")")
}

/// The families the pod model reads beside the app containers' requests.
pub(super) const POD_PARTS: [&str; 3] = [
    "kube_pod_init_container_resource_requests",
    "kube_pod_overhead_cpu_cores",
    "kube_pod_overhead_memory_bytes",
];

/// The metrics of kube-state-metrics and cAdvisor that the queries read.
/// The kube-state-metrics families the job reads, and cAdvisor's counter: the series an
/// exporter scraped without honor_labels would bill to the exporter's own namespace. The
/// families by name, not `kube_.+`: a range function drops the metric's name, and two families
/// with the same labels (`kube_pod_created`, `kube_pod_start_time`) would make the engine refuse
/// the query ("vector cannot contain metrics with the same labelset"); those the job reads
/// each have labels of their own.
pub(super) const KSM_FAMILIES: &str = "kube_namespace_status_phase|kube_pod_status_phase|kube_pod_info\
|kube_pod_container_resource_requests|kube_pod_init_container_resource_requests\
|kube_pod_init_container_info|kube_pod_init_container_status_running\
|kube_pod_overhead_cpu_cores|kube_pod_overhead_memory_bytes|kube_pod_resourceclaim_info\
|kube_persistentvolumeclaim_info|kube_persistentvolumeclaim_resource_requests_storage_bytes\
|kube_persistentvolumeclaim_access_mode|kube_node_labels";
pub(super) const CADVISOR_METRIC: &str = "container_cpu_usage_seconds_total";

/// Which CPU bases read a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    /// Every run (namespaces, requests, phases, PVCs).
    Every,
    /// The usage and max bases (cAdvisor's usage counters).
    Usage,
    /// `--request-source scheduler` (kube-scheduler's requests, the pods' QoS classes).
    Scheduler,
}

/// Every metric the queries read, with the labels they group and join on (and a matcher its
/// selectors carry, if any): what `consumption-metrics check` asks the store for. A query that
/// starts reading another metric or label adds it here.
pub const READS: &[(&str, &[&str], &str, ReadBy)] = &[
    (
        "kube_namespace_status_phase",
        &["namespace", "phase"],
        "phase=\"Active\"",
        ReadBy::Every,
    ),
    (
        "kube_pod_status_phase",
        &["namespace", "pod", "uid", "phase"],
        "phase=\"Running\"",
        ReadBy::Every,
    ),
    (
        "kube_pod_container_resource_requests",
        &["namespace", "pod", "uid", "container", "resource"],
        "resource=\"cpu\"",
        ReadBy::Every,
    ),
    (
        "kube_persistentvolumeclaim_resource_requests_storage_bytes",
        &["namespace", "persistentvolumeclaim"],
        "",
        ReadBy::Every,
    ),
    (
        "kube_persistentvolumeclaim_info",
        &["namespace", "persistentvolumeclaim", "storageclass"],
        "",
        ReadBy::Every,
    ),
    (
        "container_cpu_usage_seconds_total",
        &["namespace", "pod", "container", "id"],
        "container!=\"\", container!=\"POD\"",
        ReadBy::Usage,
    ),
    (
        SCHEDULER_METRIC,
        &["namespace", "pod", "resource"],
        "resource=\"cpu\"",
        ReadBy::Scheduler,
    ),
    (
        "kube_pod_status_qos_class",
        &["namespace", "pod", "uid", "qos_class"],
        "",
        ReadBy::Scheduler,
    ),
];

/// How many series of `metric` (with `matcher`) carry every one of `labels` in the hour:
/// zero when the metric is missing or its labels differ from what the queries use.
pub fn present(w: Windows, metric: &str, labels: &[&str], matcher: &str) -> String {
    let mut matchers: Vec<String> = labels.iter().map(|l| format!("{l}!=\"\"")).collect();
    if !matcher.is_empty() {
        matchers.push(matcher.to_string());
    }
    format!(
        "count(last_over_time({metric}{{{}}}{}))",
        matchers.join(", "),
        w.hour()
    )
}

/// Per `job`, the series of the metrics `metrics` (an alternation of names) in the hour: which
/// jobs write a source's metrics (`check`, [`crate::provenance`]). In braces alone, so that the
/// client adds the source's matchers by the name's literal start, or none.
pub fn jobs_writing(w: Windows, metrics: &str) -> String {
    format!(
        "count by (job) (last_over_time({{__name__=~\"{metrics}\"}}{}))",
        w.hour()
    )
}

/// Per `job`, the series of `metric` with a sample in the `hours` before the evaluation time:
/// whether other jobs write a source's metric when its believed series are missing (the
/// collector's refusal names them).
pub fn jobs_writing_recently(metric: &str, hours: i64) -> String {
    format!("count by (job) (last_over_time({metric}[{hours}h]))")
}

/// The distinct values of `label` on `metric`'s series in the hour (`matcher` narrows them),
/// one series each: the GPU resources and StorageClasses `check` lists.
pub fn values_of(w: Windows, metric: &str, label: &str, matcher: &str) -> String {
    format!(
        "group by ({label}) (last_over_time({metric}{{{matcher}}}{}))",
        w.hour()
    )
}

/// The kube-state-metrics targets (`instance`) that wrote the namespaces' phase in the hour.
pub fn exporters(w: Windows) -> String {
    values_of(
        w,
        "kube_namespace_status_phase",
        "instance",
        "phase=\"Active\"",
    )
}

/// The matcher of GPU-like extended resources (for `check`'s list of them).
pub fn gpu_matcher() -> String {
    format!("resource=~\"{GPU_RESOURCES}\"")
}
