//! The reads of the timeline ([`crate::collector`]'s `timeline`): each hour's sample counts per
//! namespace and target, the scrape times, and how far each source's samples reach (the
//! store's frontier, a target's currency).

use super::*;

/// Per series of `kube_namespace_status_phase{phase="Active"}` (every label of it kept), its
/// sample count in the hour: one read of the phases, from which the collector takes both
/// counts it needs ([`crate::collector`]'s interval module):
///
/// * per series: the scrape interval comes from the typical one, and a series far above the
///   others is a second exporter scraping it at another interval (the collector refuses the
///   hour);
/// * per namespace, summed over every series: the samples every exporter wrote for it,
///   whatever their series. A kube-state-metrics restart inside the hour (a new `instance`,
///   each series split in two halves) sums to a whole hour's; replicas sum to their number of
///   hours. Its maximum over the namespaces, the samples of an object present all hour, gives
///   the seconds a sample stands for ([`sample_weight`]).
///
/// Both used to be aggregated here (`max by` and `sum by` the namespace, told apart by a
/// label): PromQL reads a selector again for each mention, so that read every phase sample
/// twice. The namespaces to bill are those of the answer.
pub fn namespace_samples(w: Windows) -> String {
    namespace_phase_samples(w)
}

/// Per namespace (and kube-state-metrics series), its samples of the phase series in the
/// hour. kube-state-metrics writes one series per phase for every namespace, `Active` and
/// `Terminating`, the one not current with 0: the `Active` series alone has every sample time,
/// and reading it alone halves what the count reads.
pub(super) fn namespace_phase_samples(w: Windows) -> String {
    format!(
        "count_over_time(kube_namespace_status_phase{{phase=\"Active\"}}{})",
        w.hour()
    )
}

/// The raw samples of kube-state-metrics' phase series of the namespaces `reference` (an
/// alternation of namespace names, `kube-system|openshift-monitoring` by default) in the
/// `len_ms` before the evaluation time: the exporter's scrape timeline, from which the
/// collector learns how long each sample of an hour stands for (gaps, a changed interval) and
/// whether the store holds the hour in full.
///
/// Why one namespace: kube-state-metrics writes every series of a scrape with the scrape's
/// timestamp (it sets none of its own; Prometheus stamps each sample with the scrape's start),
/// so the timestamps of one series are those of every series of that target; reading a few
/// namespaces' phase costs a few hundred samples instead of one per namespace. Each replica,
/// and each pod after a restart, is its own target with its own series of the namespace, so
/// their timestamps together are every scrape. `kube-system` exists in every cluster: the API
/// server creates it and its NamespaceLifecycle admission plugin refuses to delete it (with
/// `default` and `kube-public`, its "immortal" namespaces); on OpenShift it holds no pods,
/// and `openshift-monitoring` (the platform's own Prometheus) does.
pub fn scrape_times(w: Windows, reference: &str, len_ms: u128) -> String {
    format!(
        "kube_namespace_status_phase{{namespace=~\"{reference}\", phase=\"Active\"}}{}",
        w.select(len_ms, 0)
    )
}

/// Per source the job reads (`source="kube-state-metrics"`, and `"cadvisor"` with `usage`),
/// the timestamp of its newest sample at each evaluation time (within the engine's lookback),
/// from the namespace `reference`'s series only: a range query of this over the hours to bill
/// and after tells how far the store holds each source. `timestamp()` of a vector selector is
/// the sample's own timestamp on Prometheus and VictoriaMetrics alike (checked against both).
///
/// Beside the namespaces' phase (`source="kube-state-metrics"`, the timeline), the other
/// kube-state-metrics families every run bills from are sources of their own, named by metric:
/// a family missing from the store (a collector switched off, a metric dropped by relabelling)
/// would bill 0 for every namespace, and is refused instead. The reference namespace has pods
/// with requests in every cluster (kube-system's DNS and network pods); PVC families are not
/// required (a cluster may have no PVC). With `devices` (`--gpu-source devices`),
/// dcgm-exporter's field is a source too (`source="dcgm-exporter"`), over every device: a
/// cluster billed by its devices has GPUs.
///
/// Beside the sources, the store's own time for this cluster (`source="store"`): the newest
/// `up` of kube-state-metrics' scrape targets (`ksm_targets`, its provenance matchers).
/// Prometheus writes `up` for every scrape it attempts, whether the target answers or not
/// (Prometheus documentation, "Jobs and instances: automatically generated labels and time
/// series"), so it advances while the cluster's Prometheus writes the store, also when
/// kube-state-metrics is down or a reference namespace was deleted: a source that stays behind
/// it has stopped, it does not lag. A few series (one per replica or shard).
///
/// dcgm-exporter's time is read apart ([`newest_dcgm`]).
pub fn newest_samples(reference: &str, sources: Sources, ksm_targets: &str) -> String {
    let Sources {
        usage,
        gpu_models,
        scheduler,
    } = sources;
    let source = |selector: String, name: &str| {
        format!("label_replace(timestamp({selector}), \"source\", \"{name}\", \"\", \"\")")
    };
    let mut parts = vec![
        format!(
            "label_replace(max(timestamp(up{{{ksm_targets}}})), \"source\", \"{STORE}\", \"\", \"\")"
        ),
        "or".to_string(),
        source(
            format!("kube_namespace_status_phase{{namespace=~\"{reference}\", phase=\"Active\"}}"),
            KSM,
        ),
        "or".to_string(),
        source(
            format!("kube_pod_status_phase{{namespace=~\"{reference}\", phase=\"Running\"}}"),
            "kube_pod_status_phase",
        ),
        "or".to_string(),
        source(
            format!(
                "kube_pod_container_resource_requests{{namespace=~\"{reference}\", \
                 resource=\"cpu\"}}"
            ),
            "kube_pod_container_resource_requests",
        ),
    ];
    if usage {
        parts.push("or".to_string());
        parts.push(source(
            format!(
                "container_cpu_usage_seconds_total{{container!=\"\", container!=\"POD\", \
                 namespace=~\"{reference}\"}}"
            ),
            CADVISOR,
        ));
    }
    // kube-scheduler's requests: the source of `--request-source scheduler`, and otherwise
    // whether the kube-state-metrics source can compare with them ([`unseen_requests`]).
    parts.push("or".to_string());
    parts.push(source(
        format!("{SCHEDULER_METRIC}{{namespace=~\"{reference}\", resource=\"cpu\"}}"),
        SCHEDULER_METRIC,
    ));
    if scheduler {
        // The QoS classes that tell a pod the scheduler hides ([`unseen_by_scheduler`]).
        parts.push("or".to_string());
        parts.push(source(
            format!("kube_pod_status_qos_class{{namespace=~\"{reference}\"}}"),
            "kube_pod_status_qos_class",
        ));
    }
    if gpu_models {
        // The pods' nodes and the nodes' GPU models (`--gpu-model` with the requests source):
        // without them every GPU would read as of no model.
        parts.push("or".to_string());
        parts.push(source(
            format!("kube_pod_info{{namespace=~\"{reference}\"}}"),
            "kube_pod_info",
        ));
        parts.push("or".to_string());
        parts.push(source(
            format!("kube_node_labels{{{GPU_PRODUCT_LABEL}=~\".+\"}}"),
            "kube_node_labels",
        ));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    block("max by (source) (", &parts, ")")
}

/// dcgm-exporter's time (`source="dcgm-exporter"`, with `--gpu-source devices`): the newest
/// `up` of its targets (`dcgm_targets`, its provenance matchers), over every device: a cluster
/// billed by its devices has GPUs. Prometheus stamps a scrape's `up` and its samples alike, so
/// the newest `up` is at least the newest device sample; an exporter whose scrapes fail writes
/// `up` 0 and no device series, which is not lag but a hole of every device, judged by the
/// devices' rules (refused past `--max-scrape-gap`). Apart from [`newest_samples`]: a target
/// per GPU node (1,250 at 10,000 GPUs) looked up at every step of hours is a third of one pass
/// over the devices' samples, so the collector reads the last minutes first and the whole
/// lookback only when dcgm-exporter is not there.
pub fn newest_dcgm(dcgm_targets: &str) -> String {
    format!(
        "label_replace(max(timestamp(up{{{dcgm_targets}}})), \"source\", \"{DCGM}\", \"\", \"\")"
    )
}

/// Per kube-state-metrics target (`instance`): the newest sample of its namespaces' phase
/// (`source="data"`), and of its `up` (`source="up"`), at each step of a range query. A
/// sharded kube-state-metrics (`--shard`/`--total-shards`) writes each object from one shard,
/// and replicas or a restarted pod each are a target of their own: a target whose scrapes fail
/// (a stalled shard: `up` 0, none of its series) or whose data lags in remote write would make
/// its objects vanish from an hour the reference namespaces call complete. `up` tells a target
/// that still exists (scraped, answered or not) from one that is gone (scaled down, replaced:
/// its `up` ends with it). `instances` (a regular expression; empty: every target) narrows it
/// to the targets whose whole history the collector needs: a `timestamp()` of every
/// namespace's series at every step costs Prometheus about 2 s at 10,000 namespaces over a
/// one-hour run's range, so the run reads it over the span's last minutes only
/// ([`targets_before`] says which targets wrote before the span).
pub fn target_times(ksm_targets: &str, instances: &str) -> String {
    let only = if instances.is_empty() {
        String::new()
    } else {
        format!(", instance=~\"{instances}\"")
    };
    // Aggregated per instance before the label is added: `label_replace` on every namespace's
    // series at every step would allocate a label set each.
    [
        format!(
            "label_replace(max by (instance) (timestamp(kube_namespace_status_phase{{phase=\"Active\"{only}}})), \
             \"source\", \"data\", \"\", \"\")"
        ),
        format!(
            "label_replace(max by (instance) (timestamp(up{{{ksm_targets}{only}}})), \"source\", \"up\", \
             \"\", \"\")"
        ),
    ]
    .join("\nor\n")
}

/// The kube-state-metrics targets (`instance`) that wrote namespaces' phases in the hour before
/// the evaluation time: one count per series, in one pass over an hour of them.
pub fn targets_before(w: Windows) -> String {
    format!(
        "count by (instance) (count_over_time(kube_namespace_status_phase{{phase=\"Active\"}}{}))",
        w.hour()
    )
}

/// The sources a run reads beside kube-state-metrics' namespaces, pods and requests
/// ([`newest_samples`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources {
    /// cAdvisor's usage counters (the `usage` and `max` bases).
    pub usage: bool,
    /// The pods' nodes and the nodes' GPU models (`--gpu-model` with `--gpu-source requests`).
    pub gpu_models: bool,
    /// kube-scheduler's requests and the pods' QoS classes (`--request-source scheduler`).
    pub scheduler: bool,
}

/// The metric a [`newest_samples`] source reads.
pub fn source_metric(source: &str) -> &str {
    match source {
        KSM => "kube_namespace_status_phase",
        CADVISOR => "container_cpu_usage_seconds_total",
        DCGM => crate::gpu::dcgm::METRIC,
        other => other,
    }
}

/// How many samples of the namespace `reference`'s phase the store holds in the `len_ms`
/// before the evaluation time: whether it has data after hours it holds nothing of.
pub fn samples_since(w: Windows, reference: &str, len_ms: u128) -> String {
    format!(
        "sum(count_over_time(kube_namespace_status_phase{{namespace=~\"{reference}\", \
         phase=\"Active\"}}{}))",
        w.select(len_ms, 0)
    )
}

/// The sources' names in [`newest_samples`]' answers.
pub const KSM: &str = "kube-state-metrics";
pub const CADVISOR: &str = "cadvisor";
pub const DCGM: &str = "dcgm-exporter";
/// Not a source: the store's time for this cluster ([`newest_samples`]).
pub const STORE: &str = "store";
