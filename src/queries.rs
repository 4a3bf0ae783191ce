//! The PromQL of every dimension, and why it is exact on every engine.
//!
//! Each expression is evaluated by a range query at the *end* `E` of each hour (step 1h) and
//! describes the hour `[E-1h, E)`:
//!
//! * **Windows.** Engines differ at the left edge of a range selector: Prometheus 2.x windows
//!   are closed (`x[1h]` at `T` selects `[T-1h, T]`), Prometheus 3.x and VictoriaMetrics windows
//!   are left-open (`(T-1h, T]`). A run measures which one it talks to (see [`probe`]) and
//!   writes every selector with [`Windows::select`], which selects exactly the samples in
//!   `[E-1h, E)` on either: `[3599999ms] offset 1ms` on closed windows, `[1h] offset 1ms` on
//!   left-open ones. A sample exactly on the hour is counted in one hour, never in two or none.
//! * Gauges (requests, phases, PVC sizes) are integrated as `sum_over_time(x) * w`, where `w`
//!   is the seconds one sample stands for: `3600 / n`, `n` the samples of an object present
//!   all hour (the largest count of `kube_namespace_status_phase{phase="Active"}` over the
//!   namespaces, summed over every series of a namespace). This is exact for objects that
//!   exist the whole hour and within one interval for objects that start or stop inside it.
//!   `avg_over_time` would be wrong for partial hours. The queries return the sums in
//!   samples; the collector multiplies each hour by its [`sample_weight`] (only the `max` CPU
//!   basis, which compares requested with used seconds per container, weighs inside the query).
//! * Requests are constant over a pod's life, so `request × (Running samples × w)` equals the
//!   integral of `request × [phase = Running]` without a subquery (subqueries would fill gaps with
//!   the 5 minute lookback and bill stopped pods for up to 5 more minutes).
//! * Sample counts are **summed over series**, not taken per series: a kube-state-metrics pod
//!   replaced inside the hour (a rollout, an eviction) gives each series a new `instance`, and
//!   its two halves must add up to the hour rather than each pass for a half-hour gap.
//!   Replicas' samples add up the same way, and `n` counts them too, so `w` divides them back
//!   (two replicas at 30 s: 240 samples, 15 s each). Requested values (`avg_over_time`) are
//!   reduced with `max by` their identity, so replicas never add up there.
//! * A scrape gap of kube-state-metrics (all replicas missing scrapes) is compensated per hour
//!   by the same `3600 / n`. One query ([`namespace_samples`]) gives `n`, the scrape interval
//!   and the namespaces of every hour: the sample counts are read once, not once per
//!   dimension. One weight serves every namespace only when the same exporters write each at
//!   the same interval: the collector refuses an hour in which a namespace has more samples
//!   (in one series, or over all its series) than the typical one — a second exporter.
//! * **CPU usage counters** are telescoped from sample values, which mean the same on every
//!   engine, never from `increase()`, whose extrapolation differs between engines (Prometheus
//!   extrapolates to the window's edges, VictoriaMetrics uses the sample before the window).
//!   With `L`, `Lp` the last values in this hour and the hour before, `D` the resets after
//!   `Lp` (`resets` over both hours minus `resets` over the hour before: VictoriaMetrics'
//!   `resets` also counts the pair that straddles the window's start, and that pair cancels in
//!   the difference), and `F` the first value of the hour (a window one scrape interval long at
//!   the hour's start):
//!   - `D = 0`: `L − Lp`. Consecutive hours sum exactly to the span's total.
//!   - `D = 1`, `F < Lp` (the reset fell between the hours): `L`, the counter since the reset.
//!   - `D = 1`, an inner reset: `(max − Lp) + L`, the climb to the value before the reset plus
//!     the counter since it, when the maximum is that pre-reset value (`max > L`).
//!   - no `Lp` (a counter born in the hour or seen for the first time): `L − min`, plus `min`
//!     when the first value is small next to the hour's climb (the counter started from zero
//!     in this hour).
//!   - otherwise (several resets, or a counter that climbed above its pre-reset value within
//!     the hour after an inner reset): `increase()`, the only engine-dependent estimate.
//!     Kubernetes gives a restarted container a new cAdvisor series, so same-series resets
//!     come from cAdvisor or node restarts, and two in one hour are rarer still.
//! * **Counters are read in two parts.** PromQL has no shared sub-expressions: every mention of
//!   a selector reads its samples again, and the case analysis above mentions the hour's
//!   counters 22 hour-reads' worth. Yet a reset inside an hour is rare (see above), and without
//!   one the cases collapse. So one cheap query ([`fallen_counters`], one hour-read) lists the
//!   namespaces with a counter whose `resets` over the hour is non-zero; their CPU is read with
//!   the full case analysis ([`Counters::Exact`], [`Namespaces::Only`]: a label matcher, so
//!   only their series are read; the collector sends them in parts of at most 16,000 bytes,
//!   under VictoriaMetrics' default `-search.maxQueryLen`), every other namespace's with the
//!   steady form ([`Counters::Steady`], five hour-reads): with `m` the hour's minimum, which
//!   is its first value when nothing fell within the hour, `L − Lp` when `m ≥ Lp`, `L` when
//!   `m < Lp` (the reset fell between the hours), and the born case as above, summed per
//!   namespace (per container for the `max` basis) as `Σ L − Σ X`, one expression giving
//!   every series' starting value `X` (`used_seconds_steady`). The steady query covers every
//!   namespace and the collector drops its answer for the listed ones: excluding them in the
//!   query (`namespace!~"a|b|…"`) costs Prometheus more regular-expression matching per
//!   selector than reading their few series (README, Performance). So each
//!   namespace is billed from exactly one part, and the split does not rely on what an engine's
//!   `resets` counts: on VictoriaMetrics, whose `resets` also counts a fall at the window's
//!   start, such a namespace simply takes the exact part. The exact part itself is usually not
//!   PromQL: the listed namespaces' counters are read as raw samples ([`counter_samples`], one
//!   read) and [`crate::counters`] applies these definitions, with every climb counted instead
//!   of `increase()`; [`Counters::Exact`] serves spans whose samples would be too many, and
//!   `--fallen-counters queries`.

use std::time::Duration;

/// How CPU is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuBasis {
    /// Core-hours requested by the containers of Running pods (kube-state-metrics).
    Request,
    /// Core-hours used (cAdvisor `container_cpu_usage_seconds_total`).
    Usage,
    /// Per container, the larger of request and usage (the allocation OpenCost bills).
    Max,
}

/// How the engine's range selectors treat the window's left edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// `x[d]` at `T` selects `[T-d, T]` (Prometheus 2.x).
    Closed,
    /// `x[d]` at `T` selects `(T-d, T]` (Prometheus 3.x, VictoriaMetrics).
    LeftOpen,
}

impl std::fmt::Display for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Windows::Closed => "closed",
            Windows::LeftOpen => "left-open",
        })
    }
}

const HOUR_MS: u128 = 3_600_000;

impl Windows {
    /// A range selector that selects the samples with timestamps in
    /// `[E - offset - len, E - offset)` when evaluated at `E`, on this kind of engine.
    pub fn select(self, len_ms: u128, offset_ms: u128) -> String {
        let len = match self {
            Windows::Closed => len_ms - 1,
            Windows::LeftOpen => len_ms,
        };
        format!("[{len}ms] offset {}ms", offset_ms + 1)
    }

    /// `[E-1h, E)`.
    fn hour(self) -> String {
        self.select(HOUR_MS, 0)
    }

    /// `[E-2h, E-1h)`: the hour before.
    fn previous_hour(self) -> String {
        self.select(HOUR_MS, HOUR_MS)
    }

    /// `[E-2h, E)`.
    fn two_hours(self) -> String {
        self.select(2 * HOUR_MS, 0)
    }

    /// `[E-1h, E-1h+len)`: the start of the hour.
    fn hour_start(self, len: Duration) -> String {
        let len = len.as_millis().clamp(1, HOUR_MS);
        self.select(len, HOUR_MS - len)
    }
}

/// The probe that tells closed from left-open windows without a version string: at an
/// hour-aligned time, a one-hour subquery of a constant at a 1m step has 61 points on closed
/// windows (both ends) and 60 on left-open ones. It reads no data.
pub fn probe() -> &'static str {
    "count_over_time(vector(1)[1h:1m])"
}

/// The window semantics a [`probe`] result means, if it means one.
pub fn windows_from_probe(points: f64) -> Option<Windows> {
    match points {
        61.0 => Some(Windows::Closed),
        60.0 => Some(Windows::LeftOpen),
        _ => None,
    }
}

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
fn namespace_phase_samples(w: Windows) -> String {
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
/// dcgm-exporter's time is also its targets' `up` (`dcgm_targets`, its provenance matchers):
/// an exporter whose scrapes fail writes `up` 0 and no device series, which is not lag but a
/// hole of every device, judged by the devices' rules (refused past `--max-scrape-gap`).
pub fn newest_samples(
    reference: &str,
    sources: Sources,
    ksm_targets: &str,
    dcgm_targets: &str,
) -> String {
    let Sources {
        usage,
        devices,
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
    if devices {
        // dcgm-exporter's time is its targets' `up`: Prometheus stamps a scrape's `up` and its
        // samples alike, so the newest `up` is at least the newest device sample, and reading
        // `up` (a series per target) costs a small part of reading every device series.
        parts.push("or".to_string());
        parts.push(format!(
            "label_replace(max(timestamp(up{{{dcgm_targets}}})), \"source\", \"{DCGM}\", \"\", \"\")"
        ));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    block("max by (source) (", &parts, ")")
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
    /// dcgm-exporter's devices (`--gpu-source devices`).
    pub devices: bool,
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
        DCGM => crate::dcgm::METRIC,
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
const POD_PARTS: [&str; 3] = [
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
const KSM_FAMILIES: &str = "kube_namespace_status_phase|kube_pod_status_phase|kube_pod_info\
|kube_pod_container_resource_requests|kube_pod_init_container_resource_requests\
|kube_pod_init_container_info|kube_pod_init_container_status_running\
|kube_pod_overhead_cpu_cores|kube_pod_overhead_memory_bytes|kube_pod_resourceclaim_info\
|kube_persistentvolumeclaim_info|kube_persistentvolumeclaim_resource_requests_storage_bytes\
|kube_persistentvolumeclaim_access_mode|kube_node_labels";
const CADVISOR_METRIC: &str = "container_cpu_usage_seconds_total";

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

/// Seconds one gauge sample stands for in an hour whose object present all hour has
/// `observed` samples summed over every exporter's series: `3600 / n` (module documentation).
/// It compensates a scrape gap (fewer samples stand for more seconds), a kube-state-metrics
/// restart (two half series sum to a whole hour) and replicas (each sample stands for its
/// share) alike. The same arithmetic as [`sample_seconds`].
pub fn sample_weight(observed: f64) -> f64 {
    3600.0 / observed.max(1.0)
}

/// `open`, then each part on lines of its own indented two spaces (a part's own lines
/// included, so nested blocks indent further), then `close`: the PromQL we send reads like the
/// source that builds it.
fn block(open: &str, parts: &[&str], close: &str) -> String {
    let mut s = String::from(open);
    for line in parts.iter().flat_map(|p| p.lines()) {
        s.push_str("\n  ");
        s.push_str(line);
    }
    s.push('\n');
    s.push_str(close);
    s
}

/// How a query weighs gauge samples inside itself: the seconds one kube-state-metrics sample
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleWeight<'a> {
    /// The same in every hour of the span, computed by the collector with [`sample_weight`]
    /// from the sample counts it has read already: a constant in the query.
    Constant(f64),
    /// Computed for each hour inside the query from the sample counts (the hours of the span
    /// differ: a scrape gap), the same arithmetic as [`sample_weight`].
    PerHour,
    /// One hour scraped unevenly (an outage, a changed scrape interval): per [`Segment`] of
    /// it, its samples times the seconds one of them stands for there. A span of one hour.
    Segments(&'a [Segment]),
}

/// A stretch of one hour in which every kube-state-metrics sample stands for the same time:
/// the samples with timestamps in `[E - offset - len, E - offset)` (`E` the hour's end) each
/// stand for `seconds`. The segments of an hour partition it, so each sample is weighed once
/// (the collector's timeline module cuts them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub len_ms: u128,
    pub offset_ms: u128,
    pub seconds: f64,
}

/// Seconds one sample stands for in the hour, with the scrape-gap compensation (the
/// single-weight forms; [`gauge_sum`] writes the segmented one).
fn sample_seconds(w: Windows, weight: SampleWeight) -> String {
    match weight {
        SampleWeight::Constant(secs) => format!("{secs}"),
        SampleWeight::PerHour | SampleWeight::Segments(_) => {
            let observed = format!("max(sum by (namespace) ({}))", namespace_phase_samples(w));
            format!("scalar(3600 / clamp_min({observed}, 1))")
        }
    }
}

/// Per `by`, the samples of the gauge `selector` in the hour: summed as they are (`None`: the
/// collector weighs each hour), times one weight, or per segment times its own weight (the
/// segments' sums told apart by a `segment` label under `or`, which would otherwise keep only
/// one of a series' segments).
fn gauge_sum(w: Windows, selector: &str, by: &str, weigh: Option<SampleWeight>) -> String {
    let h = w.hour();
    match weigh {
        None => format!("sum by ({by}) (sum_over_time({selector}{h}))"),
        Some(SampleWeight::Segments(segments)) if !segments.is_empty() => {
            let mut parts = Vec::new();
            for (i, s) in segments.iter().enumerate() {
                if i > 0 {
                    parts.push("or".to_string());
                }
                parts.push(format!(
                    "label_replace(sum_over_time({selector}{}) * {}, \"segment\", \"{i}\", \"\", \"\")",
                    w.select(s.len_ms, s.offset_ms),
                    s.seconds
                ));
            }
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            block(&format!("sum by ({by}) ("), &parts, ")")
        }
        Some(weight) => format!(
            "(sum by ({by}) (sum_over_time({selector}{h})) * {})",
            sample_seconds(w, weight)
        ),
    }
}

/// Per container: the resource requested times the pod's Running samples, labels
/// `namespace, pod, uid, container` and those in `keep`, for the resources `matcher` selects.
/// `scope` narrows the pods' phases alike (a [`Namespaces`] matcher, or nothing). With
/// `weigh` ([`gauge_sum`]), in resource-seconds; without, the collector weighs each hour.
fn requested(
    w: Windows,
    matcher: &str,
    scope: &str,
    keep: &str,
    weigh: Option<SampleWeight>,
) -> String {
    let request = |h: &str| {
        format!(
            "max by (namespace, pod, uid, container{keep}) \
             (avg_over_time(kube_pod_container_resource_requests{{{matcher}}}{h}))"
        )
    };
    request_times_running(
        w,
        weigh,
        scope,
        "namespace, pod, uid",
        &format!("namespace, pod, uid, container{keep}"),
        request,
    )
}

/// A pod's request (`request` of a window, labels `id` and more) times its Running samples in
/// the hour, weighed as `weigh` says ([`gauge_sum`]); `scope` narrows the phase's selector.
///
/// The request is the average of its samples, which is its average over time when every
/// sample stands for the same time: an in-place resize (KEP-1287) inside the hour is billed
/// for the time at each request. In an hour scraped unevenly ([`SampleWeight::Segments`])
/// the samples of different segments stand for different times, so each segment takes its
/// own request average and its own Running samples times its seconds, and the segments are
/// summed `by` (a resize before a hole would otherwise be weighed by the hole). The phase is
/// summed over every series of the pod, not `max`: the halves of a series split by a
/// kube-state-metrics restart add up, and replicas' samples add up to what the weight
/// (`3600 / n` over every series) divides back. Weighed per pod, before the join: pods are
/// fewer than their containers' requests (those of pods that did not run included), and the
/// scalar product costs per series.
/// The most segments one query averages requests over ([`request_times_running`]): each
/// segment repeats the request expression (about 3 KB for the pod model), and
/// VictoriaMetrics refuses a query over 16 KB (`-search.maxQueryLen`). An hour with more (two
/// holes, a hole and a retuned interval) is sent as several queries of at most this many
/// segments each ([`segment_parts`]), whose answers the collector adds up: each gives its
/// segments' part of the hour, and the queries that take this path sum over pods linearly.
pub const MAX_REQUEST_SEGMENTS: usize = 4;

/// `weigh` in parts of at most [`MAX_REQUEST_SEGMENTS`] segments, for the queries whose
/// answers add up over the hour's segments (the request basis, memory, GPUs): itself when it
/// is not segmented or is short enough.
pub fn segment_parts(weigh: Option<SampleWeight<'_>>) -> Vec<Option<SampleWeight<'_>>> {
    match weigh {
        Some(SampleWeight::Segments(s)) if s.len() > MAX_REQUEST_SEGMENTS => s
            .chunks(MAX_REQUEST_SEGMENTS)
            .map(|c| Some(SampleWeight::Segments(c)))
            .collect(),
        other => vec![other],
    }
}

fn request_times_running(
    w: Windows,
    weigh: Option<SampleWeight>,
    scope: &str,
    id: &str,
    by: &str,
    request: impl Fn(&str) -> String,
) -> String {
    let phase = format!("kube_pod_status_phase{{phase=\"Running\"{scope}}}");
    match weigh {
        Some(SampleWeight::Segments(segments)) if !segments.is_empty() => {
            let mut parts = Vec::new();
            for (i, s) in segments.iter().enumerate() {
                if i > 0 {
                    parts.push("or".to_string());
                }
                let window = w.select(s.len_ms, s.offset_ms);
                parts.push(block(
                    "label_replace(",
                    &[
                        &request(&window),
                        &format!("* on ({id}) group_left ()"),
                        &format!(
                            "sum by ({id}) (sum_over_time({phase}{window})) * {}, \
                             \"segment\", \"{i}\", \"\", \"\")",
                            s.seconds
                        ),
                    ],
                    "",
                ));
            }
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            // In parentheses, like the other form: callers aggregate it as it is.
            block(
                "(",
                &[&block(&format!("sum by ({by}) ("), &parts, ")")],
                ")",
            )
        }
        _ => {
            let running = gauge_sum(w, &phase, id, weigh);
            block(
                "(",
                &[
                    &request(&w.hour()),
                    &format!("* on ({id}) group_left ()"),
                    &running,
                ],
                ")",
            )
        }
    }
}

/// A pod overhead metric of kube-state-metrics and the resource it is of.
#[derive(Debug, Clone, Copy)]
struct Overhead {
    metric: &'static str,
    resource: &'static str,
}

const CPU_OVERHEAD: Overhead = Overhead {
    metric: "kube_pod_overhead_cpu_cores",
    resource: "cpu",
};

const MEMORY_OVERHEAD: Overhead = Overhead {
    metric: "kube_pod_overhead_memory_bytes",
    resource: "memory",
};

/// GiB-hours of memory requested per namespace (`--bill-memory`), by the request model, per
/// second a sample stands for: the same model as CPU, `resource="memory"` (bytes, kube-state-
/// metrics' `unit="byte"`) and `kube_pod_overhead_memory_bytes`.
/// `weigh` as for [`gpu`].
pub fn memory(w: Windows, model: RequestModel, weigh: Option<SampleWeight>) -> String {
    let matcher = "resource=\"memory\"";
    let requested = match model {
        RequestModel::Containers => requested(w, matcher, "", "", weigh),
        RequestModel::Pod => effective_requested(w, matcher, "", Some(MEMORY_OVERHEAD), weigh),
        RequestModel::Scheduler => scheduler_requested(w, matcher, "", weigh),
    };
    format!("sum by (namespace) {requested} / 3600 / 1073741824")
}

/// What a pod's request is and where it is read (`--cpu-request-model`, `--request-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestModel {
    /// What Kubernetes reserves, from kube-state-metrics: the pod's effective request from
    /// its containers' specs ([`effective_requested`]).
    Pod,
    /// The app containers' requests alone (the Go job, OpenCost).
    Containers,
    /// What Kubernetes reserves, as kube-scheduler publishes it (`--request-source
    /// scheduler`, [`scheduler_requested`]): `PodRequests` itself, pod-level requests and
    /// in-place resizes included.
    Scheduler,
}

/// kube-scheduler's per-pod request (`/metrics/resources`, STABLE since Kubernetes 1.29).
pub const SCHEDULER_METRIC: &str = "kube_pod_resource_request";

/// How long before an hour a pod's request is still taken from, when kube-scheduler wrote no
/// sample of it in the hour: a pod that ran at kube-state-metrics' first scrape of the hour
/// and ended before the scheduler's (which drops terminal pods), or one the scheduler's
/// restart hid. Prometheus's default lookback (`--query.lookback-delta`, 5 minutes), which
/// covers any scrape interval a control plane is scraped at.
const SCHEDULER_CARRY_MS: u128 = 300_000;

/// Per pod (and `resource`, Kubernetes' own name: `nvidia.com/gpu`): the request
/// kube-scheduler publishes for the resources `matcher` selects, times the pod's Running
/// samples from kube-state-metrics (weighed as [`gauge_sum`] says), labels `namespace, pod,
/// resource`. `scope` narrows the selectors alike (a [`Namespaces`] matcher, or nothing).
///
/// What the metric is (pkg/scheduler/metrics/resources/resources.go, Kubernetes 1.35):
/// - every scheduler replica serves it from its own informer cache, leader or not, and a
///   second scheduler (another profile's binary) serves every pod too: the series of one pod
///   are copies, taken with `max by` the pod's identity, never summed;
/// - no `uid` label: the identity is `namespace, pod`, so the join with the phase (which has
///   `uid`) sums the Running samples of every pod of that name in the hour (a StatefulSet
///   pod replaced inside it: both halves, at the request of either, equal unless the new pod
///   asks for another);
/// - `node` is `spec.nodeName`, empty until the pod is bound: a pod's series changes at
///   binding, and `max by` joins the two;
/// - terminal pods (Succeeded, Failed) are left out, unscheduled ones are not: the join with
///   the Running phase bills neither;
/// - the value is `PodRequests` (k8s.io/component-helpers/resource, `UseStatusResources` with
///   in-place resize): pod-level requests replace the containers' (cpu, memory, hugepages),
///   sidecars and init containers as KEP-753 says, the overhead added, and a pending resize
///   counted as `max(spec, allocated, actual)`;
/// - zero quantities are not written: a BestEffort pod has no series.
///
/// The value is the average of the pod's samples in the hour (the request over the hour, for
/// a pod resized inside it), or the last one in the [`SCHEDULER_CARRY_MS`] before the hour
/// when the hour has none (a scheduler restart; a pod that ended early in the hour).
pub fn scheduler_requested(
    w: Windows,
    matcher: &str,
    scope: &str,
    weigh: Option<SampleWeight>,
) -> String {
    let id = "namespace, pod";
    let average = |h: &str| {
        format!("max by ({id}, resource) (avg_over_time({SCHEDULER_METRIC}{{{matcher}}}{h}))")
    };
    let before = format!(
        "max by ({id}, resource) (last_over_time({SCHEDULER_METRIC}{{{matcher}}}{}))",
        w.select(SCHEDULER_CARRY_MS, HOUR_MS)
    );
    let hour = block("(", &[&average(&w.hour()), "or", &before], ")");
    // A segment of an unevenly scraped hour without a scheduler sample takes the hour's.
    let request = |h: &str| {
        if h == w.hour() {
            hour.clone()
        } else {
            block("(", &[&average(h), "or", &hour], ")")
        }
    };
    request_times_running(w, weigh, scope, id, &format!("{id}, resource"), request)
}

/// Per pod (and `resource`): what Kubernetes reserves of the resources `matcher` selects,
/// times the pod's Running samples, labels `namespace, pod, uid, resource`. `scope` narrows
/// every selector alike (a [`Namespaces`] matcher, or nothing); with `overhead`, the pod
/// overhead is added (CPU: `kube_pod_overhead_cpu_cores`).
///
/// The effective request is `PodRequests` of k8s.io/component-helpers/resource (KEP-753,
/// "Exposing Pod Resource Requirements"): the larger of the app containers plus the native
/// sidecars (init containers with `restartPolicy: Always`, `restart_policy="Always"` on
/// `kube_pod_init_container_info` from kube-state-metrics 2.11), and of each ordinary init
/// container plus the sidecars started before it; plus the overhead. kube-state-metrics does
/// not give the init containers' order, so every sidecar is taken to start before every
/// ordinary init container, KEP-753's motivating order (a mesh proxy that the init containers
/// after it can use): exact then, and otherwise an overstatement only for a pod whose ordinary
/// init container, started before some sidecar, requests more than its app containers
/// (README, "What is billed"). Names are unique across a pod's containers and init
/// containers, so the union of app containers and sidecars adds no request twice.
fn effective_requested(
    w: Windows,
    matcher: &str,
    scope: &str,
    overhead: Option<Overhead>,
    weigh: Option<SampleWeight>,
) -> String {
    let id = "namespace, pod, uid";
    request_times_running(
        w,
        weigh,
        scope,
        id,
        &format!("{id}, resource"),
        |h: &str| effective_request(h, matcher, scope, overhead),
    )
}

/// Per pod and `resource`, its effective request over the window `h` (a range selector's
/// brackets and offset), labels `namespace, pod, uid, resource`: [`effective_requested`]'s
/// arithmetic, without the phase.
fn effective_request(h: &str, matcher: &str, scope: &str, overhead: Option<Overhead>) -> String {
    let id = "namespace, pod, uid";
    let request = |metric: &str| {
        format!("max by ({id}, container, resource) (avg_over_time({metric}{{{matcher}}}{h}))")
    };
    let (app, init) = (
        request("kube_pod_container_resource_requests"),
        request("kube_pod_init_container_resource_requests"),
    );
    let sidecar_info = format!(
        "max by ({id}, container) (max_over_time(\
         kube_pod_init_container_info{{restart_policy=\"Always\"{scope}}}{h}))"
    );
    let sidecars = block(
        "(",
        &[
            &init,
            &format!("* on ({id}, container) group_left ()"),
            &sidecar_info,
        ],
        ")",
    );
    let ordinary = block(
        "(",
        &[
            &init,
            &format!("unless on ({id}, container)"),
            &sidecar_info,
        ],
        ")",
    );
    let main = block(
        &format!("sum by ({id}, resource) ("),
        &[&app, "or", &sidecars],
        ")",
    );
    // Each ordinary init container with every sidecar of its pod (or alone, in a pod without).
    let all_sidecars = block(&format!("sum by ({id}, resource) ("), &[&sidecars], ")");
    let during_init = block(
        "(",
        &[
            &ordinary,
            &format!("+ on ({id}, resource) group_left ()"),
            &all_sidecars,
            "or",
            &ordinary,
        ],
        ")",
    );
    let mut effective = block(
        &format!("max by ({id}, resource) ("),
        &[&main, "or", &during_init],
        ")",
    );
    if let Some(Overhead { metric, resource }) = overhead {
        // Added as one more part of the pod (labelled apart, so that `or` keeps it beside the
        // containers' part), not with `+ … or …`, which would read the requests twice.
        let selector = match scope.trim_start_matches(", ") {
            "" => metric.to_string(),
            m => format!("{metric}{{{m}}}"),
        };
        let overhead = format!(
            "label_replace(label_replace(max by ({id}) (avg_over_time({selector}{h})), \
             \"resource\", \"{resource}\", \"\", \"\"), \"part\", \"overhead\", \"\", \"\")"
        );
        effective = block(
            &format!("sum by ({id}, resource) ("),
            &[&effective, "or", &overhead],
            ")",
        );
    }
    effective
}

/// The Running pods whose requests the kube-state-metrics source does not see (pod-level
/// `spec.resources`, KEP-2837, which kube-state-metrics through v2.20 does not export), at
/// the instant before the hour's end (the newest sample of every series in the 5 minutes
/// before it), labels `namespace, pod` and `via`, by the cheapest evidence the store holds:
///
/// - `via="scheduler"`, with `scheduler` (kube-scheduler's `kube_pod_resource_request` is in
///   the store): its CPU request exceeds everything the pod's containers request together
///   (app and init containers summed, plus the overhead), which no container-level
///   arithmetic reaches: a pod-level request larger than the containers' (a pod whose
///   containers request nothing included), or a pending in-place resize down (counted at the
///   old request until the kubelet admits it). CPU alone: reading memory too costs as much
///   again, and a pod-level memory request without a CPU one is rare; `check` compares both.
///   Pods the scheduler counts are not terminal; a pending one is included (it holds its
///   node's resources, though it is not billed).
/// - `via="qos"`, without it: Kubernetes gave the pod a QoS class other than BestEffort
///   (`kube_pod_status_qos_class`), which takes a cpu or memory request or limit somewhere in
///   the pod (`GetPodQOS`), and no container or init container requests either: the request
///   is the pod's own.
///
/// Reading a family costs Prometheus about the same per series whether the window is 5
/// minutes or an hour (README, Performance), so each form reads each family once and the
/// bound is a sum, not the effective request's arithmetic.
pub fn unseen_requests(scheduler: bool) -> String {
    let now = "[5m] offset 1ms";
    let id = "namespace, pod";
    let requests = |by: &str, resources: &str| {
        format!(
            "max by ({by}) (last_over_time({{__name__=~\"kube_pod_container_resource_requests|kube_pod_init_container_resource_requests\", resource=~\"{resources}\"}}{now}))"
        )
    };
    let evidence = if scheduler {
        let scheduled = format!(
            "max by ({id}, resource) (last_over_time({SCHEDULER_METRIC}{{resource=\"cpu\"}}{now}))"
        );
        let overhead = format!(
            "label_replace(max by ({id}) (last_over_time({}{now})), \"part\", \"overhead\", \"\", \"\")",
            CPU_OVERHEAD.metric
        );
        // Every container's CPU request (replicas' copies taken once), summed per pod with
        // the overhead, and 0 for every pod the scheduler counts (so a pod whose containers
        // request nothing compares with 0).
        let bound = block(
            &format!("sum by ({id}) ("),
            &[
                &requests(&format!("{id}, container"), "cpu"),
                "or",
                &overhead,
                "or",
                &format!("{scheduled} * 0"),
            ],
            ")",
        );
        block(
            "label_replace(",
            &[
                &scheduled,
                &format!("> on ({id}) group_left ()"),
                "(",
                &bound,
                "* 1.001 + 0.001",
                ")",
                ", \"via\", \"scheduler\", \"\", \"\")",
            ],
            "",
        )
    } else {
        block(
            "label_replace(",
            &[
                &format!(
                    "max by ({id}) (last_over_time(kube_pod_status_qos_class{{qos_class!=\"BestEffort\"}}{now})) > 0"
                ),
                &format!("unless on ({id})"),
                &format!("{} > 0", requests(id, "cpu|memory")),
                ", \"via\", \"qos\", \"\", \"\")",
            ],
            "",
        )
    };
    if scheduler {
        // The scheduler counts no terminal pod; a pending one it counts holds its node's
        // resources too, and the phase is not read again for it.
        return block(&format!("group by ({id}, via) ("), &[&evidence], ")");
    }
    let running = format!(
        "max by ({id}) (last_over_time(kube_pod_status_phase{{phase=\"Running\"}}{now})) > 0"
    );
    block(
        &format!("group by ({id}, via) ("),
        &[&evidence, &format!("and on ({id})"), &running],
        ")",
    )
}

/// Per hour, the pods kube-state-metrics shows Running with a request (a QoS class other than
/// BestEffort) of which kube-scheduler wrote no sample in the hour nor in the
/// [`SCHEDULER_CARRY_MS`] before it: [`scheduler_requested`] would bill them nothing. Every
/// scheduler replica writes every pod of its cache until the pod is terminal, so such a pod
/// was hidden by a hole in every replica's scrapes for its whole life in the hour, or belongs
/// to a cache nobody scrapes. Labels `namespace, pod`.
pub fn unseen_by_scheduler(w: Windows) -> String {
    let h = w.hour();
    let with_carry = w.select(HOUR_MS + SCHEDULER_CARRY_MS, 0);
    block(
        "group by (namespace, pod) (",
        &[
            &format!(
                "max by (namespace, pod) (max_over_time(kube_pod_status_phase{{phase=\"Running\"}}{h})) > 0"
            ),
            "and on (namespace, pod)",
            &format!(
                "max by (namespace, pod) (max_over_time(kube_pod_status_qos_class{{qos_class!=\"BestEffort\"}}{h})) > 0"
            ),
            "unless on (namespace, pod)",
            &format!("group by (namespace, pod) (count_over_time({SCHEDULER_METRIC}{with_carry}))"),
        ],
        ")",
    )
}

/// How usage counters are read (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counters {
    /// Only for namespaces none of whose counters fell within the hour ([`fallen_counters`]):
    /// the climb since the hour before, the counter since a reset between the hours, or a
    /// counter born in the hour.
    Steady,
    /// Every case, resets within the hour included. The scrape interval places the window of a
    /// counter's first value in the hour ([`Windows::hour_start`]).
    Exact { interval: Duration },
}

/// What a CPU query reads, by basis: each variant carries only what its query uses, so no
/// caller passes a value the query ignores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuRead<'a> {
    /// The `request` basis: requests by the model given, per second a sample stands for (the
    /// collector weighs each hour with [`sample_weight`]), or weighed inside the query with
    /// the weight given (an unevenly scraped hour).
    Requested(RequestModel, Option<SampleWeight<'a>>),
    /// The `usage` basis: the usage counters, read as given.
    Used(Counters),
    /// The `max` basis: per container, the larger of its requests, weighed inside the query
    /// with the weight given, and its usage, read as given.
    Larger(SampleWeight<'a>, Counters),
}

/// The namespaces a CPU query covers, by label matcher. The names are namespace names
/// (the collector checks them), so they need no escaping in a regular expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespaces<'a> {
    All,
    Only(&'a [String]),
    /// One of two halves of every namespace, by the last character of its name (`0`–`4`,
    /// `a`–`m`, or any other): a regular expression and its negation, so each namespace is in
    /// exactly one half on every engine.
    Half(Half),
}

/// A half of the namespaces ([`Namespaces::Half`]).
///
/// Why halves: Prometheus evaluates one query on about one core, so the largest CPU query is
/// the run's critical path; its two halves, sent side by side, take about two thirds of its
/// wall time for about the same CPU (README, Performance). Every operation
/// of a CPU query stays within a namespace (joins on pods, sums by namespace), so a half's
/// answer is its namespaces' part of the whole one. Matching the expression costs little: it
/// runs once per label value, not per series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    First,
    Second,
}

impl Half {
    pub const BOTH: [Half; 2] = [Half::First, Half::Second];
}

/// The namespaces of [`Half::First`]: about half of typical names (a digit or a letter), and
/// of the synthetic clusters' `tenant-NNNNN`.
const FIRST_HALF: &str = ".*[0-4a-m]";

impl Namespaces<'_> {
    /// The matcher to add to a selector's braces (with its leading comma), or nothing.
    fn matcher(self) -> String {
        match self {
            Namespaces::All => String::new(),
            Namespaces::Only(n) => format!(", namespace=~\"{}\"", n.join("|")),
            Namespaces::Half(Half::First) => format!(", namespace=~\"{FIRST_HALF}\""),
            Namespaces::Half(Half::Second) => format!(", namespace!~\"{FIRST_HALF}\""),
        }
    }
}

/// The usage counter of every container, in the namespaces `scope` matcher selects.
fn usage_counter(scope: &str) -> String {
    format!(r#"container_cpu_usage_seconds_total{{container!="", container!="POD"{scope}}}"#)
}

/// The namespaces with a usage counter that fell within an hour (`resets` over the hour is
/// non-zero): their CPU takes [`Counters::Exact`], everyone else's [`Counters::Steady`].
pub fn fallen_counters(w: Windows) -> String {
    format!(
        "group by (namespace) (resets({}{}) > 0)",
        usage_counter(""),
        w.hour()
    )
}

/// CPU-seconds used in the hour, per `by` (`namespace`, or `namespace, pod, container` for the
/// `max` basis), for namespaces none of whose counters fell within the hour
/// ([`Counters::Steady`]): the per-series steady form as two sums, `Σ L − Σ X`, where `X` is
/// what a series' climb starts from: `Lp` when the counter did not fall between the hours
/// (`Lp ≤ m`), `m` for a born counter that did not start from zero (`2m > L`), else nothing.
/// One expression gives `X` for both: `(Lp or m > L / 2) <= m` (a born counter's `m` passes
/// `<= m` always, a counter with `Lp` never takes the born branch, and `m > L / 2` is `2m > L`
/// exactly: halving a float is exact).
///
/// Prometheus's cost is about one pass per selector mention (whatever the window's length),
/// and about as much per operation between two per-series vectors and per `label_replace` of
/// one (README, Performance). The per-series form (`L − (Lp·[m ≥ Lp] or m·[2m > L])`)
/// takes 7 mentions and 6 operations; this one 5 and 3. The two sums meet in one `sum by`, so
/// they must stay apart under `or`: the first is labelled `part`, the second keeps the
/// series' `id`. Each is deduplicated (a series scraped by two jobs) with `max` after the
/// operations between its own series, not before each mention: about a third less CPU than
/// three sums each labelled and deduplicated mention by mention.
fn used_seconds_steady(w: Windows, scope: &str, by: &str) -> String {
    let c = usage_counter(scope);
    let (h, p) = (w.hour(), w.previous_hour());
    let each = "max by (namespace, pod, container, id)";
    let last = format!("last_over_time({c}{h})");
    let last_prev = format!("last_over_time({c}{p})");
    let min = format!("min_over_time({c}{h})");
    let parts = [
        format!("label_replace(sum by ({by}) ({each} ({last})), \"part\", \"last\", \"\", \"\")"),
        "or".to_string(),
        format!("-{each} (({last_prev} or {min} > {last} / 2) <= {min})"),
    ];
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    block(&format!("sum by ({by}) ("), &parts, ")")
}

/// Per container series: CPU-seconds used in the hour with every case of the module
/// documentation ([`Counters::Exact`]), labels `namespace, pod, container, id`.
fn used_seconds_exact(w: Windows, interval: Duration, scope: &str) -> String {
    let c = usage_counter(scope);
    let (h, p, two, start) = (
        w.hour(),
        w.previous_hour(),
        w.two_hours(),
        w.hour_start(interval),
    );
    let last = format!("last_over_time({c}{h})");
    let last_prev = format!("last_over_time({c}{p})");
    let min = format!("min_over_time({c}{h})");
    // No hour before: the climb in the hour (L − m), plus the first value m if it started from
    // zero (m ≤ L − m): L, or L − m when 2m > L.
    let born_start = format!("{min} * (2 * {min} > bool {last})");
    let resets_after_prev = format!("(resets({c}{two}) - resets({c}{p}))");
    let max = format!("max_over_time({c}{h})");
    let first = format!("min_over_time({c}{start})");
    // D = 0: the climb since the hour before.
    let no_reset = format!("(({last} - {last_prev}) and ({resets_after_prev} == 0))");
    // D = 1: the counter since the reset, plus, when the reset was inside the hour (F ≥ Lp) and
    // the maximum is the value before it (M > L), the climb to that value. Both cases in one
    // expression, so that D, the costliest part (three hours of samples), is read once for them.
    let one_reset = format!(
        "(({last} + ({max} - {last_prev}) * ({first} >= bool {last_prev})) \
         and ({resets_after_prev} == 1) and (({first} < {last_prev}) or ({max} > {last})))"
    );
    let born = format!(
        "(({last} - {born_start}) \
         unless {last_prev} and (resets({c}{h}) == 0))"
    );
    let otherwise = format!("increase({c}{h})");
    block(
        "max by (namespace, pod, container, id) (",
        &[&no_reset, "or", &one_reset, "or", &born, "or", &otherwise],
        ")",
    )
}

/// Core-hours per namespace of the namespaces in `namespaces`, read as `read` says (the
/// `request` basis per second a sample stands for).
pub fn cpu(w: Windows, read: CpuRead, namespaces: Namespaces) -> String {
    let scope = namespaces.matcher();
    // Per `by`: the whole case analysis per series, summed, or the steady form.
    let used = |counters: Counters, by: &str| match counters {
        Counters::Steady => used_seconds_steady(w, &scope, by),
        Counters::Exact { interval } => block(
            &format!("sum by ({by}) ("),
            &[&used_seconds_exact(w, interval, &scope)],
            ")",
        ),
    };
    match read {
        CpuRead::Requested(RequestModel::Pod, weigh) => cpu_requested_by_pods(w, namespaces, weigh),
        CpuRead::Requested(RequestModel::Scheduler, weigh) => format!(
            "sum by (namespace) {} / 3600",
            scheduler_requested(w, &format!("resource=\"cpu\"{scope}"), &scope, weigh)
        ),
        CpuRead::Requested(RequestModel::Containers, weigh) => format!(
            "sum by (namespace) {} / 3600",
            requested(w, &format!("resource=\"cpu\"{scope}"), &scope, "", weigh)
        ),
        CpuRead::Used(counters) => format!("{} / 3600", used(counters, "namespace")),
        CpuRead::Larger(weight, counters) => {
            // Requests keep `uid` and `resource` (always there: the selector names it), usage
            // has neither, so `or` keeps both sides of every container without relabelling
            // either (each a pass over every container), and `max by` takes
            // the larger. A pod name reused within the hour (a new uid) counts its larger
            // request, as before.
            let request = requested_cpu_weighed(w, weight, &scope);
            let usage = used(counters, "namespace, pod, container");
            let larger = block(
                "max by (namespace, pod, container) (",
                &[&request, "or", &usage],
                ")",
            );
            block("sum by (namespace) (", &[&larger], ") / 3600")
        }
    }
}

/// The CPU query of the namespaces `namespaces` that reads nothing the sample counts give (the
/// scrape interval, the weight, the namespaces whose counters fell), so that it can be sent
/// beside them: the request basis', and the usage basis' steady form. `None` for the `max`
/// basis, which weighs requests inside its query.
pub fn cpu_before_counts(
    w: Windows,
    basis: CpuBasis,
    model: RequestModel,
    weigh: Option<SampleWeight>,
    namespaces: Namespaces,
) -> Option<String> {
    let read = match basis {
        CpuBasis::Request => CpuRead::Requested(model, weigh),
        CpuBasis::Usage => CpuRead::Used(Counters::Steady),
        CpuBasis::Max => return None,
    };
    Some(cpu(w, read, namespaces))
}

/// The request basis with [`RequestModel::Pod`]: core-hours per namespace of the pods'
/// effective CPU requests ([`effective_requested`]), per second a sample stands for.
fn cpu_requested_by_pods(
    w: Windows,
    namespaces: Namespaces,
    weigh: Option<SampleWeight>,
) -> String {
    let scope = namespaces.matcher();
    let pods = effective_requested(
        w,
        &format!("resource=\"cpu\"{scope}"),
        &scope,
        Some(CPU_OVERHEAD),
        weigh,
    );
    format!("sum by (namespace) {pods} / 3600")
}

/// The raw samples of the usage counters of the namespaces `namespaces` in the `hours` hours
/// ending at the evaluation time and the hour before them, for [`crate::counters`]: one read,
/// evaluated once at the last hour's end by an instant query.
pub fn counter_samples(w: Windows, hours: usize, namespaces: Namespaces) -> String {
    let hours = u128::try_from(hours).unwrap_or(u128::MAX).saturating_add(1);
    format!(
        "{}{}",
        usage_counter(&namespaces.matcher()),
        w.select(hours.saturating_mul(HOUR_MS), 0)
    )
}

/// Per container (`namespace, pod, container`) of the namespaces `namespaces`, the CPU-seconds
/// requested in the hour, weighed inside the query as the `max` basis does: the request side
/// of that basis, for the containers whose usage [`crate::counters`] computes.
pub fn requested_cpu_seconds(w: Windows, weight: SampleWeight, namespaces: Namespaces) -> String {
    let requested = requested_cpu_weighed(w, weight, &namespaces.matcher());
    format!("max by (namespace, pod, container) {requested}")
}

/// The `max` basis' request side: per container (and `uid`, `resource`), CPU-seconds requested,
/// weighed inside the query, in the namespaces `scope` selects.
fn requested_cpu_weighed(w: Windows, weight: SampleWeight, scope: &str) -> String {
    requested(
        w,
        &format!("resource=\"cpu\"{scope}"),
        scope,
        ", resource",
        Some(weight),
    )
}

/// Hours of every GPU-like extended resource requested, per namespace and resource (the
/// kube-state-metrics name), per second a sample stands for; the collector weights each
/// resource into GPU-hours ([`crate::gpu`]), so that one query serves every MIG profile and
/// vendor. With `weigh` (an unevenly scraped hour's [`SampleWeight::Segments`]), in hours
/// already.
pub fn gpu(w: Windows, model: RequestModel, weigh: Option<SampleWeight>, by_model: bool) -> String {
    let matcher = format!("resource=~\"{GPU_RESOURCES}\"");
    let (requested, id) = match model {
        RequestModel::Containers => (
            requested(w, &matcher, "", ", resource", weigh),
            "namespace, pod, uid",
        ),
        RequestModel::Pod => (
            effective_requested(w, &matcher, "", None, weigh),
            "namespace, pod, uid",
        ),
        RequestModel::Scheduler => (
            scheduler_requested(w, &matcher, "", weigh),
            "namespace, pod",
        ),
    };
    if !by_model {
        return format!("sum by (namespace, resource) {requested} / 3600");
    }
    let models = match model {
        // The scheduler's pods have no `uid`: one model per pod name.
        RequestModel::Scheduler => format!("max by ({id}, model) ({})", pod_gpu_model(w)),
        _ => pod_gpu_model(w),
    };
    block(
        "sum by (namespace, resource, model) (",
        &[
            &requested,
            &format!("* on ({id}) group_left (model)"),
            &models,
        ],
        ") / 3600",
    )
}

/// The label kube-state-metrics writes for GPU Feature Discovery's node label
/// `nvidia.com/gpu.product` when `--metric-labels-allowlist=nodes=[nvidia.com/gpu.product]`
/// allows it on `kube_node_labels` (every character outside `[a-zA-Z0-9_]` as `_`, prefixed
/// `label_`).
pub const GPU_PRODUCT_LABEL: &str = "label_nvidia_com_gpu_product";

/// Per node whose GPU model label took more than one value in the hour (GPU Feature Discovery
/// relabels a node after a MIG reconfiguration or a GPU swap): how many, at each hour's end.
/// [`pod_gpu_model`] joins one model per node and hour; such an hour cannot be billed per model
/// by the requests source.
pub fn gpu_model_changes(w: Windows) -> String {
    let h = w.hour();
    format!(
        "count by (node) (max by (node, {GPU_PRODUCT_LABEL}) \
         (last_over_time(kube_node_labels{{{GPU_PRODUCT_LABEL}=~\".+\"}}{h}))) > 1"
    )
}

/// Per pod (`namespace, pod, uid`), the GPU model of its node as `model`: the node from
/// `kube_pod_info{node}`, the model from the node's [`GPU_PRODUCT_LABEL`] on
/// `kube_node_labels`. A pod whose node has no such label (or no `kube_node_labels`) keeps
/// `model=""`, which the collector refuses for a pod holding GPUs: models cannot be told apart.
fn pod_gpu_model(w: Windows) -> String {
    let h = w.hour();
    let id = "namespace, pod, uid";
    let pod_node = format!("max by ({id}, node) (last_over_time(kube_pod_info{{node!=\"\"}}{h}))");
    let node_model =
        format!("max by (node, {GPU_PRODUCT_LABEL}) (last_over_time(kube_node_labels{h}))");
    let labelled = block(
        "(",
        &[
            &pod_node,
            &format!("* on (node) group_left ({GPU_PRODUCT_LABEL})"),
            &node_model,
        ],
        ")",
    );
    let per_pod = block(
        &format!("max by ({id}, {GPU_PRODUCT_LABEL}) ("),
        &[&labelled, &format!("or on ({id})"), &pod_node],
        ")",
    );
    format!("label_replace({per_pod}, \"model\", \"$1\", \"{GPU_PRODUCT_LABEL}\", \"(.*)\")")
}

/// Extended resources that may be GPUs: anything with `gpu` or `mig` in its name. One without
/// a weight is billed 0 with a warning, so a new kind is seen rather than silently ignored.
const GPU_RESOURCES: &str = ".*(gpu|mig).*";

/// Per hour, the pods that may hold devices through Dynamic Resource Allocation: those with
/// a ResourceClaim (`via="claim"`; kube-state-metrics v2.20's `kube_pod_resourceclaim_info`,
/// one series per `pod.spec.resourceClaims` entry), and those dcgm-exporter attributes a
/// device to through its `dra_claim_name` label (`via="dcgm"`, with `exported_*` when scraped
/// without `honor_labels`). Both families are absent where DRA is not used: the read is an
/// index lookup there.
pub fn dra_claims(w: Windows) -> String {
    let h = w.hour();
    let claims = format!(
        "label_replace(group by (namespace, pod) (last_over_time(kube_pod_resourceclaim_info{h})),          \"via\", \"claim\", \"\", \"\")"
    );
    let devices = format!(
        "label_replace(group by (namespace, pod, exported_namespace, exported_pod)          (last_over_time({}{{dra_claim_name=~\".+\"}}{h})), \"via\", \"dcgm\", \"\", \"\")",
        crate::dcgm::METRIC
    );
    block("(", &[&claims, "or", &devices], ")")
}

/// Per hour, the pods of the namespaces `namespaces` (a regular-expression alternation of
/// checked names) that ran in it.
pub fn running_pods(w: Windows, namespaces: &str) -> String {
    format!(
        "group by (namespace, pod) (max_over_time(kube_pod_status_phase{{phase=\"Running\", \
         namespace=~\"{namespaces}\"}}{}) > 0)",
        w.hour()
    )
}

/// GiB-hours of PVC requests per namespace, StorageClass and access (`rwx="true"|"false"`), per
/// second a sample stands for (`weigh` as for [`gpu`]).
pub fn storage(w: Windows, weigh: Option<SampleWeight>) -> String {
    let h = w.hour();
    let pvc = "namespace, persistentvolumeclaim";
    // Summed over series like the pods' Running samples ([`requested`]).
    let requested = gauge_sum(
        w,
        "kube_persistentvolumeclaim_resource_requests_storage_bytes",
        pvc,
        weigh,
    );
    let class =
        format!("max by ({pvc}, storageclass) (max_over_time(kube_persistentvolumeclaim_info{h}))");
    let rwx = format!(
        "label_replace(max by ({pvc}) (max_over_time(\
         kube_persistentvolumeclaim_access_mode{{access_mode=\"ReadWriteMany\"}}{h})), \
         \"rwx\", \"true\", \"\", \"\")"
    );
    let rwo = format!(
        "label_replace(max by ({pvc}) (max_over_time(kube_persistentvolumeclaim_info{h})), \
         \"rwx\", \"false\", \"\", \"\")"
    );
    let access = block("(", &[&rwx, &format!("or on ({pvc})"), &rwo], ")");
    block(
        "sum by (namespace, storageclass, rwx) (",
        &[
            &requested,
            &format!("* on ({pvc}) group_left (storageclass)"),
            &class,
            &format!("* on ({pvc}) group_left (rwx)"),
            &access,
        ],
        ") / 3600 / 1073741824",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIRTY: Duration = Duration::from_secs(30);

    /// What we send to Prometheus is reviewed like code: any change shows in the snapshot.
    #[test]
    fn queries_snapshot() {
        let w = Windows::Closed;
        let per_hour = SampleWeight::PerHour;
        let (all, steady) = (Namespaces::All, Counters::Steady);
        let exact = Counters::Exact { interval: THIRTY };
        let fallen = ["team-a".to_string(), "team-b".to_string()];
        let containers = CpuRead::Requested(RequestModel::Containers, None);
        insta::assert_snapshot!("cpu_request", cpu(w, containers, all));
        insta::assert_snapshot!("cpu_usage", cpu(w, CpuRead::Used(exact), all));
        insta::assert_snapshot!("cpu_max", cpu(w, CpuRead::Larger(per_hour, exact), all));
        insta::assert_snapshot!("cpu_usage_steady", cpu(w, CpuRead::Used(steady), all));
        let constant = SampleWeight::Constant(37.5);
        insta::assert_snapshot!(
            "cpu_max_steady",
            cpu(w, CpuRead::Larger(constant, steady), all)
        );
        insta::assert_snapshot!(
            "cpu_max_fallen",
            cpu(
                w,
                CpuRead::Larger(per_hour, exact),
                Namespaces::Only(&fallen)
            )
        );
        insta::assert_snapshot!("fallen_counters", fallen_counters(w));
        insta::assert_snapshot!("gpu", gpu(w, RequestModel::Containers, None, false));
        insta::assert_snapshot!("gpu_pod", gpu(w, RequestModel::Pod, None, false));
        insta::assert_snapshot!("gpu_by_model", gpu(w, RequestModel::Pod, None, true));
        let pod = CpuRead::Requested(RequestModel::Pod, None);
        insta::assert_snapshot!("cpu_request_pod", cpu(w, pod, all));
        insta::assert_snapshot!("storage", storage(w, None));
        insta::assert_snapshot!("namespaces", namespace_samples(w));
        insta::assert_snapshot!(
            "cpu_usage_left_open",
            cpu(Windows::LeftOpen, CpuRead::Used(exact), all)
        );
        let segments = SampleWeight::Segments(&SEGMENTS);
        insta::assert_snapshot!(
            "cpu_request_pod_segments",
            cpu(
                w,
                CpuRead::Requested(RequestModel::Pod, Some(segments)),
                all
            )
        );
        insta::assert_snapshot!("storage_segments", storage(w, Some(segments)));
        insta::assert_snapshot!(
            "cpu_max_segments",
            cpu(w, CpuRead::Larger(segments, steady), all)
        );
        insta::assert_snapshot!("scrape_times", scrape_times(w, "kube-system", 5_400_000));
        insta::assert_snapshot!(
            "newest_samples",
            newest_samples(
                "kube-system",
                Sources {
                    usage: true,
                    ..Sources::default()
                },
                r#"job="kube-state-metrics""#,
                r#"job="nvidia-dcgm-exporter""#
            )
        );
        insta::assert_snapshot!(
            "target_times",
            target_times(r#"job="kube-state-metrics""#, "")
        );
    }

    /// An hour cut in three by a hole: before, the two samples beside it, after.
    const SEGMENTS: [Segment; 3] = [
        Segment {
            len_ms: 1_215_000,
            offset_ms: 2_385_000,
            seconds: 30.0,
        },
        Segment {
            len_ms: 780_000,
            offset_ms: 1_605_000,
            seconds: 390.0,
        },
        Segment {
            len_ms: 1_605_000,
            offset_ms: 0,
            seconds: 30.0,
        },
    ];

    /// The segments of an hour partition it: each weighed sum reads each sample once, and the
    /// whole hour is covered, on either kind of engine.
    #[test]
    fn segments_partition_the_hour() {
        let total: u128 = SEGMENTS.iter().map(|s| s.len_ms).sum();
        assert_eq!(total, HOUR_MS);
        for w in [Windows::Closed, Windows::LeftOpen] {
            let q = storage(w, Some(SampleWeight::Segments(&SEGMENTS)));
            for s in SEGMENTS {
                assert!(q.contains(&w.select(s.len_ms, s.offset_ms)), "{q}");
            }
            assert_eq!(q.matches("\"segment\"").count(), 3, "{q}");
        }
    }

    /// Every query the job sends, one of each shape (the counts' weight and the namespaces'
    /// scope vary only constants and matchers).
    fn every_query() -> Vec<(&'static str, String)> {
        let mut all = Vec::new();
        let fallen = ["team-a".to_string()];
        let exact = Counters::Exact { interval: THIRTY };
        let mut reads = vec![
            CpuRead::Requested(RequestModel::Containers, None),
            CpuRead::Requested(RequestModel::Pod, None),
        ];
        for counters in [Counters::Steady, exact] {
            reads.push(CpuRead::Used(counters));
            reads.push(CpuRead::Larger(SampleWeight::PerHour, counters));
        }
        for w in [Windows::Closed, Windows::LeftOpen] {
            for read in &reads {
                for namespaces in [
                    Namespaces::All,
                    Namespaces::Only(&fallen),
                    Namespaces::Half(Half::First),
                ] {
                    all.push(("cpu", cpu(w, *read, namespaces)));
                }
            }
            for basis in [CpuBasis::Request, CpuBasis::Usage, CpuBasis::Max] {
                if let Some(q) = cpu_before_counts(
                    w,
                    basis,
                    RequestModel::Containers,
                    None,
                    Namespaces::Half(Half::Second),
                ) {
                    all.push(("cpu before counts", q));
                }
            }
            all.push(("fallen counters", fallen_counters(w)));
            all.push((
                "counter samples",
                counter_samples(w, 2, Namespaces::Only(&fallen)),
            ));
            all.push((
                "requested cpu seconds",
                requested_cpu_seconds(w, SampleWeight::PerHour, Namespaces::Only(&fallen)),
            ));
            all.push(("gpu", gpu(w, RequestModel::Containers, None, false)));
            all.push(("gpu (pod)", gpu(w, RequestModel::Pod, None, false)));
            all.push((
                "gpu (by model)",
                gpu(w, RequestModel::Containers, None, true),
            ));
            all.push(("memory (pod)", memory(w, RequestModel::Pod, None)));
            all.push((
                "memory (scheduler)",
                memory(w, RequestModel::Scheduler, Some(SampleWeight::PerHour)),
            ));
            all.push((
                "cpu (scheduler)",
                cpu(
                    w,
                    CpuRead::Requested(RequestModel::Scheduler, None),
                    Namespaces::Half(Half::First),
                ),
            ));
            all.push((
                "gpu (scheduler)",
                gpu(w, RequestModel::Scheduler, None, true),
            ));
            all.push(("pods unseen by the scheduler", unseen_by_scheduler(w)));
            all.push((
                "memory (containers)",
                memory(w, RequestModel::Containers, None),
            ));
            all.push(("storage", storage(w, None)));
            all.push(("namespaces", namespace_samples(w)));
            all.push(("data labels", data_labels(w, true)));
            let segments = SampleWeight::Segments(&SEGMENTS);
            all.push(("storage (segments)", storage(w, Some(segments))));
            all.push((
                "gpu (segments)",
                gpu(w, RequestModel::Pod, Some(segments), false),
            ));
            all.push((
                "cpu (segments)",
                cpu(
                    w,
                    CpuRead::Requested(RequestModel::Containers, Some(segments)),
                    Namespaces::All,
                ),
            ));
            all.push(("scrape times", scrape_times(w, "kube-system", HOUR_MS)));
        }
        all.push((
            "newest samples",
            newest_samples(
                "kube-system",
                Sources {
                    usage: true,
                    devices: true,
                    gpu_models: true,
                    scheduler: true,
                },
                r#"job="kube-state-metrics""#,
                r#"job="nvidia-dcgm-exporter""#,
            ),
        ));
        for w in [Windows::Closed, Windows::LeftOpen] {
            all.push(("gpu devices", crate::dcgm::samples(w, HOUR_MS)));
            all.push(("dra claims", dra_claims(w)));
            all.push(("dra claims (running)", running_pods(w, "a|b")));
        }
        all.push(("gpu model changes", gpu_model_changes(Windows::Closed)));
        all.push((
            "kube-state-metrics targets' times",
            target_times(r#"job="kube-state-metrics""#, "10\\.0\\.0\\.1:8080"),
        ));
        all.push((
            "kube-state-metrics targets before",
            targets_before(Windows::Closed),
        ));
        all.push(("probe", probe().to_string()));
        all.push((
            "requests kube-state-metrics cannot see",
            unseen_requests(false),
        ));
        all.push((
            "requests kube-state-metrics cannot see (scheduler)",
            unseen_requests(true),
        ));
        all
    }

    /// The longest queries of an unevenly scraped hour (each segment's own request average,
    /// [`MAX_REQUEST_SEGMENTS`] of them), scoped to a cluster and with every source's
    /// provenance, fit VictoriaMetrics' default `-search.maxQueryLen` (16 KB); an hour of more
    /// segments goes in parts that partition them.
    #[test]
    fn segmented_requests_fit_victoria_metrics_query_length() {
        let scope = crate::scope::Scope::parse(r#"cluster="prod-alln-01""#).unwrap();
        let p = crate::provenance::Provenance::default();
        let four: Vec<Segment> = SEGMENTS.iter().chain(&SEGMENTS[..1]).copied().collect();
        for w in [Windows::Closed, Windows::LeftOpen] {
            let weigh = Some(SampleWeight::Segments(&four));
            for model in [
                RequestModel::Pod,
                RequestModel::Scheduler,
                RequestModel::Containers,
            ] {
                for q in [
                    cpu(
                        w,
                        CpuRead::Requested(model, weigh),
                        Namespaces::Half(Half::First),
                    ),
                    memory(w, model, weigh),
                    gpu(w, model, weigh, true),
                ] {
                    let len = scope.apply_with(&q, &p).len();
                    assert!(len < 16_384, "{model:?}: {len} bytes");
                }
            }
        }
        let nine: Vec<Segment> = (0..9).map(|i| SEGMENTS[i % 3]).collect();
        let parts = segment_parts(Some(SampleWeight::Segments(&nine)));
        let lens: Vec<usize> = parts
            .iter()
            .map(|p| match p {
                Some(SampleWeight::Segments(s)) => s.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(lens, [4, 4, 1]);
        assert_eq!(segment_parts(None), [None]);
    }

    /// Every selector of a source's metric carries that source's provenance matchers, and a
    /// selector by `__name__` names one source only (the client picks the matchers by the
    /// name's literal start, so an alternation across sources would read one of them from the
    /// other's job and miss it).
    #[test]
    fn every_selector_of_a_source_carries_its_provenance() {
        use crate::provenance::{Provenance, Source};
        let p = Provenance::default();
        let selector = regex::Regex::new(r#"([A-Za-z_:][A-Za-z0-9_:]*)?\{([^}]*)\}"#).unwrap();
        let named = regex::Regex::new(r#"__name__=~?"([^"]*)""#).unwrap();
        for (what, q) in every_query() {
            let scoped = crate::scope::Scope::default().apply_with(&q, &p);
            for c in selector.captures_iter(&scoped) {
                let inside = &c[2];
                let metric = match (c.get(1), named.captures(inside)) {
                    (Some(m), _) => vec![m.as_str().to_string()],
                    (None, Some(n)) => n[1].split('|').map(str::to_string).collect(),
                    (None, None) => continue,
                };
                let sources: std::collections::BTreeSet<Option<Source>> =
                    metric.iter().map(|m| Source::of_metric(m)).collect();
                assert_eq!(
                    sources.len(),
                    1,
                    "{what}: one selector of two sources: {inside}"
                );
                if let Some(Some(source)) = sources.into_iter().next() {
                    let matchers = p.of(source).to_string();
                    assert!(
                        inside.contains(&matchers),
                        "{what}: {source}'s selector without {matchers}: {inside}"
                    );
                }
            }
        }
    }

    /// `--prometheus-selector` reaches every selector of every query: each `{` opens with its
    /// matchers, and no metric is read without braces.
    #[test]
    fn the_scope_is_in_every_selector_of_every_query() {
        let scope =
            crate::scope::Scope::parse(r#"cluster="east",prometheus_replica=~".+""#).unwrap();
        let matchers = r#"{cluster="east", prometheus_replica=~".+""#;
        let bare = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*\[").unwrap();
        for (what, q) in every_query() {
            let scoped = scope.apply(&q);
            let opened = scoped.matches('{').count();
            assert_eq!(
                scoped.matches(matchers).count(),
                opened,
                "{what}: a selector without the scope in\n{scoped}"
            );
            // And no metric is left without braces (`name[...]`).
            assert!(
                !bare.is_match(&scoped),
                "{what}: a bare selector in\n{scoped}"
            );
            assert!(opened >= q.matches('{').count(), "{what}");
            // Scoping never names a namespace or a time (the time reference names the ones
            // it reads, and nothing else).
            let reference = ["scrape times", "newest samples"].contains(&what);
            assert!(!scoped.contains("namespace=\""), "{what}: {scoped}");
            assert_eq!(
                scoped.contains("namespace=~\"kube-system"),
                reference,
                "{what}: {scoped}"
            );
            assert!(!scoped.contains('@'), "{scoped}");
        }
        insta::assert_snapshot!(
            "storage_scoped",
            scope.apply(&storage(Windows::Closed, None))
        );
        insta::assert_snapshot!(
            "data_labels_scoped",
            scope.apply(&data_labels(Windows::Closed, false))
        );
    }

    #[test]
    fn no_query_names_a_namespace_or_a_time() {
        let w = Windows::LeftOpen;
        for q in [
            cpu(
                w,
                CpuRead::Larger(SampleWeight::PerHour, Counters::Exact { interval: THIRTY }),
                Namespaces::All,
            ),
            cpu(
                w,
                CpuRead::Larger(SampleWeight::Constant(30.0), Counters::Steady),
                Namespaces::All,
            ),
            fallen_counters(w),
            gpu(w, RequestModel::Containers, None, false),
            gpu(w, RequestModel::Pod, None, false),
            cpu(
                w,
                CpuRead::Requested(RequestModel::Pod, None),
                Namespaces::All,
            ),
            storage(w, None),
            namespace_samples(w),
            data_labels(w, true),
        ] {
            assert!(!q.contains("namespace=\""), "{q}");
            assert!(!q.contains("namespace!~"), "{q}");
            assert!(!q.contains('@'), "{q}");
        }
    }

    /// The exact part of a split CPU query narrows every selector of per-namespace data (the
    /// `max` basis' requests too, or they would be read for every namespace), and never the
    /// sample count behind the scrape-gap weight, which is global.
    #[test]
    fn the_exact_part_narrows_every_per_namespace_selector() {
        let fallen = ["team-a".to_string(), "team-b".to_string()];
        let only = Namespaces::Only(&fallen);
        let exact = Counters::Exact { interval: THIRTY };
        let max = CpuRead::Larger(SampleWeight::PerHour, exact);
        for read in [CpuRead::Used(exact), max] {
            let q = cpu(Windows::Closed, read, only);
            for (at, _) in q.match_indices('{') {
                // The weight's sample count is the hour's over the whole cluster.
                if q[..at].ends_with("kube_namespace_status_phase") {
                    continue;
                }
                let braces = q[at + 1..].split('}').next().unwrap_or_default();
                assert!(
                    braces.contains("namespace=~\"team-a|team-b\""),
                    "{braces} in {q}"
                );
            }
        }
        let max = cpu(Windows::Closed, max, only);
        assert!(max.contains(
            "max(sum by (namespace) (count_over_time(kube_namespace_status_phase{phase=\"Active\"}["
        ));
    }

    /// The query sent before the sample counts are known: the request basis' by its model,
    /// the usage basis' steady form, and none for the `max` basis, which needs their weight.
    #[test]
    fn the_cpu_query_before_the_counts() {
        let w = Windows::LeftOpen;
        let half = Namespaces::Half(Half::Second);
        for model in [RequestModel::Containers, RequestModel::Pod] {
            assert_eq!(
                cpu_before_counts(w, CpuBasis::Request, model, None, half),
                Some(cpu(w, CpuRead::Requested(model, None), half))
            );
            assert_eq!(
                cpu_before_counts(w, CpuBasis::Usage, model, None, half),
                Some(cpu(w, CpuRead::Used(Counters::Steady), half))
            );
            assert_eq!(cpu_before_counts(w, CpuBasis::Max, model, None, half), None);
        }
    }

    /// Each half's query narrows every per-namespace selector to its half (and the weight's
    /// count to none), with a regular expression and its negation.
    #[test]
    fn halves_narrow_every_per_namespace_selector() {
        for read in [
            CpuRead::Requested(RequestModel::Containers, None),
            CpuRead::Requested(RequestModel::Pod, None),
            CpuRead::Used(Counters::Steady),
            CpuRead::Larger(SampleWeight::PerHour, Counters::Steady),
        ] {
            for (half, matcher) in [
                (Half::First, "namespace=~\".*[0-4a-m]\""),
                (Half::Second, "namespace!~\".*[0-4a-m]\""),
            ] {
                let q = cpu(Windows::Closed, read, Namespaces::Half(half));
                let mut selectors = 0;
                for (at, _) in q.match_indices('{') {
                    if q[..at].ends_with("kube_namespace_status_phase") {
                        continue;
                    }
                    let braces = q[at + 1..].split('}').next().unwrap_or_default();
                    assert!(braces.contains(matcher), "{braces} in {q}");
                    selectors += 1;
                }
                assert!(selectors >= 2, "{q}");
            }
        }
    }

    /// The weight the collector applies is the one the `max` basis computes in the query.
    #[test]
    fn sample_weight_compensates_scrape_gaps() {
        assert_eq!(sample_weight(120.0), 30.0);
        // A gap: fewer samples stand for more seconds.
        assert_eq!(sample_weight(96.0), 37.5);
        // Two replicas, or a restart's halves summed: the same hour.
        assert_eq!(sample_weight(240.0), 15.0);
        assert_eq!(sample_weight(0.0), 3600.0);
    }

    #[test]
    fn sample_weight_in_the_query_divides_the_hour() {
        let w = Windows::Closed;
        let per_hour = sample_seconds(w, SampleWeight::PerHour);
        assert!(
            per_hour
                .starts_with("scalar(3600 / clamp_min(max(sum by (namespace) (count_over_time("),
            "{per_hour}"
        );
        // A weight the collector knows for every hour of the span is sent as it is.
        assert_eq!(sample_seconds(w, SampleWeight::Constant(37.5)), "37.5");
    }

    /// Both forms select `[E - offset - len, E - offset)`: closed windows include their left
    /// edge, so they are one millisecond shorter.
    #[test]
    fn selectors_cover_the_same_half_open_interval() {
        assert_eq!(Windows::Closed.hour(), "[3599999ms] offset 1ms");
        assert_eq!(Windows::LeftOpen.hour(), "[3600000ms] offset 1ms");
        assert_eq!(
            Windows::Closed.previous_hour(),
            "[3599999ms] offset 3600001ms"
        );
        assert_eq!(Windows::LeftOpen.two_hours(), "[7200000ms] offset 1ms");
        assert_eq!(
            Windows::LeftOpen.hour_start(THIRTY),
            "[30000ms] offset 3570001ms"
        );
        assert_eq!(windows_from_probe(61.0), Some(Windows::Closed));
        assert_eq!(windows_from_probe(60.0), Some(Windows::LeftOpen));
        assert_eq!(windows_from_probe(59.0), None);
    }
}
