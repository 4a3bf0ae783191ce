//! Why a span could not be collected: each variant names the query, the namespace or hour, and
//! what to check, and says whether the next run may succeed unchanged.

use std::collections::BTreeMap;

use crate::prometheus::PrometheusError;
use crate::queries;
use crate::usage::MAX_QUANTITY;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    #[error(
        "Prometheus holds no kube-state-metrics data (kube_namespace_status_phase) for the hour \
         {hour}; nothing can be billed for it. Check --prometheus-url, that kube-state-metrics \
         is scraped, and that the hour is within Prometheus's retention. Every later run stops \
         here too: if the data is gone for good, move the checkpoint past the hour with \
         `consumption-metrics checkpoint set --to {end}` (docs/operating.md, Runbook)"
    )]
    NoData { hour: String, end: String },
    #[error(
        "the {what} query returned a series without a namespace label: {labels:?}; nothing was \
         billed for these hours. Check the metrics' relabelling: billing needs the namespace of \
         every series"
    )]
    MissingLabel {
        what: &'static str,
        labels: BTreeMap<String, String>,
    },
    #[error(
        "the {what} query returned {value:?} for namespace {namespace} in the hour {hour}, which \
         cannot be billed (negative, not finite, or over {MAX_QUANTITY:e} per hour); check \
         the metrics of that namespace"
    )]
    BadValue {
        what: &'static str,
        namespace: String,
        hour: String,
        value: f64,
    },
    #[error(
        "Running pods request {resource} (time-sliced GPUs), whose weight depends on the \
         device plugin's replica count; nothing was billed. Set --gpu-resource \
         nvidia.com/gpu.shared=1/<replicas> (GPU_RESOURCES)"
    )]
    SharedGpu { resource: String },
    #[error(
        "a pod held a {model} GPU in the hour {hour}, and --gpu-model does not map that model: \
         its GPU-hours have no key to be billed under; nothing was billed for the hour. Add \
         --gpu-model '{model}=<suffix>' (GPU_MODELS)"
    )]
    UnmappedGpuModel { model: String, hour: String },
    #[error(
        "a pod held a GPU in the hour {hour} whose dcgm-exporter series carry no modelName (an \
         exporter before 2.1, dcgmproftester, a relabelling that dropped it): with --gpu-model \
         its GPU-hours have no key to be billed under; nothing was billed for the hour. Bill \
         such devices under a key of their own with --gpu-model '=<suffix>' (an empty model: \
         every device that reports none; GPU_MODELS), or let the exporter report modelName"
    )]
    UnnamedGpuModel { hour: String },
    #[error(
        "pods of namespace {namespace} requested {resource} in the hour {hour} on a node whose \
         GPU model the store does not show (no nvidia.com/gpu.product label on its \
         kube_node_labels, or no kube_pod_info naming the node): with --gpu-model the GPUs \
         cannot be told apart by model; nothing was billed for the hour. Let kube-state-metrics \
         export the label (--metric-labels-allowlist=nodes=[nvidia.com/gpu.product], set by \
         GPU Feature Discovery), or bill --gpu-source devices"
    )]
    GpuModelUnknown {
        namespace: String,
        resource: String,
        hour: String,
    },
    #[error(
        "dcgm-exporter has no sample of the GPU {device} on node {node:?} from {from} to {to} \
         ({minutes:.1} minutes, over --max-scrape-gap {limit}) in the hour {hour}: nobody can \
         tell which pod held it then; nothing was billed for the hour. Check that dcgm-exporter \
         ran on that node; if the stretch is right (a node rebooting), raise --max-scrape-gap, \
         or bill GPUs by requests (--gpu-source requests)"
    )]
    DeviceGap {
        device: String,
        node: String,
        hour: String,
        from: String,
        to: String,
        minutes: f64,
        limit: String,
    },
    #[error(
        "a dcgm-exporter series ({metric}) cannot be read for the hour {hour}: {reason}; nothing \
         was billed for it. {fix}",
        metric = crate::gpu::dcgm::METRIC
    )]
    DeviceSeries {
        hour: String,
        reason: String,
        fix: &'static str,
    },
    #[error(
        "the window probe `{probe}` answered {answer}, neither 61 (closed windows, Prometheus \
         2.x) nor 60 (left-open, Prometheus 3.x, VictoriaMetrics); set --window-semantics to \
         closed or left-open for this engine",
        probe = queries::probe()
    )]
    Probe { answer: String },
    #[error(
        "the {what} query returned two series with the same labels {labels:?}; adding them \
         would bill the namespace twice. A proxy, a federation or a remote-read setup answers \
         twice: query the engine that holds each series once, or deduplicate it there"
    )]
    DuplicateSeries {
        what: &'static str,
        labels: BTreeMap<String, String>,
    },
    #[error(
        "in the hour {hour}, namespace {namespace} has {count} samples of \
         kube_namespace_status_phase{{phase=\"Active\"}} {how} where a namespace has {typical} \
         at most: a second exporter (another kube-state-metrics, a duplicated ServiceMonitor or \
         scrape job) writes it too, and one sample weight cannot bill every namespace right. \
         Nothing was billed for these hours. Find the exporters with `count by (job, instance) \
         (kube_namespace_status_phase{{namespace=\"{namespace}\",phase=\"Active\"}})` and drop \
         the extra scrape"
    )]
    ExportersDisagree {
        hour: String,
        namespace: String,
        count: f64,
        typical: f64,
        how: &'static str,
    },
    #[error(
        "in the hour {hour}, node {node}'s GPU model changed ({models}: GPU Feature Discovery's \
         nvidia.com/gpu.product, label_nvidia_com_gpu_product on kube_node_labels): a MIG \
         reconfiguration or a GPU swap. The requests source reads one model per node and hour, \
         so this hour cannot be billed per model; the hours before it were billed and the \
         checkpoint stays at its start. Bill GPUs as the devices report them \
         (--gpu-source devices: each device carries its own modelName), or without \
         --gpu-model"
    )]
    GpuModelChanged {
        hour: String,
        node: String,
        models: usize,
    },
    #[error(
        "in the hour {hour}, the reference namespace {namespace} has {count} samples of \
         kube_namespace_status_phase{{phase=\"Active\"}}, as in the hour before, while the \
         typical namespace has {typical}, fewer than the {before} of the hour before: the store \
         holds the reference namespaces' series further than the others' (remote write sends \
         series on parallel shards, and one lags). The hour is not billed yet and the \
         checkpoint stays before it; a scheduled run bills it once the others' samples are in. \
         If this persists, check the remote write queue (prometheus_remote_storage_* metrics) \
         and the store's ingestion"
    )]
    AheadOfOthers {
        hour: String,
        /// The hour's end, Unix seconds.
        end: i64,
        namespace: String,
        count: f64,
        typical: f64,
        before: f64,
        /// About how far the typical namespace's samples reach (Unix milliseconds).
        reached: i64,
    },
    #[error(
        "the {what} query, which aggregates by ({grouped_by}), returned a series with the label \
         {label:?} as well: {labels:?}; nothing was billed for these hours, as series that \
         differ by such a label would be added up. A proxy, a federation or a query frontend \
         adds labels to the answer: query the engine directly, or have it drop {label:?}"
    )]
    ExtraLabel {
        what: &'static str,
        label: String,
        labels: BTreeMap<String, String>,
        grouped_by: String,
    },
    #[error(
        "the {what} query returned a point at {at} for namespace {namespace}, which is not one \
         of the evaluation times asked for (the ends of the hours {span}); nothing was billed \
         for these hours. The engine or a proxy in front of it does not answer range queries \
         as Prometheus does: check --prometheus-url"
    )]
    UnexpectedTimestamp {
        what: &'static str,
        namespace: String,
        at: String,
        span: String,
    },
    #[error(
        "the {what} query returned the namespace label {namespace:?}, which is not a Kubernetes \
         namespace name (lowercase letters, digits and '-', at most 63); check the metrics' \
         relabelling"
    )]
    BadNamespace {
        what: &'static str,
        namespace: String,
    },
    #[error(
        "in the hour {hour}, the store holds the data of {count} clusters (label {label}: \
         {values}){scoped}; billing them as one would add their namespaces up and merge pods \
         of the same name. Nothing was billed. Scope every query to this cluster with \
         --prometheus-selector '{label}=\"{first}\"' (PROMETHEUS_SELECTOR), or name the label \
         that tells clusters apart with --cluster-label"
    )]
    MixedClusters {
        hour: String,
        label: String,
        count: usize,
        values: String,
        first: String,
        scoped: &'static str,
    },
    #[error(
        "in the hour {hour}, {series} kube-state-metrics or cAdvisor series carry the label \
         {label} (per scrape job: {jobs}): they were scraped without honor_labels, so their \
         namespace is the exporter's own and every namespace would be billed to it. Nothing was \
         billed. Set `honor_labels: true` in the scrape config of those jobs \
         (`honorLabels: true` in their ServiceMonitor or PodMonitor)"
    )]
    ExportedLabels {
        hour: String,
        label: String,
        series: f64,
        jobs: String,
    },
    #[error(
        "in the hour {hour}, {containers} init containers run all hour, and no init container \
         in the store has restart_policy=\"Always\" on kube_pod_init_container_info: they \
         are native sidecars, and kube-state-metrics older than 2.11 does not say so, so the \
         pods' effective requests cannot be computed. Nothing was billed. Upgrade kube-state-metrics \
         to 2.11 or later, or bill the app containers alone with --cpu-request-model \
         containers (CPU_REQUEST_MODEL; what the Go job bills)"
    )]
    SidecarsUnlabelled { hour: String, containers: f64 },
    #[error(
        "in the hour {hour}, {series} series of kube_pod_overhead_* or \
         kube_pod_init_container_resource_requests hold {what}, which Kubernetes' API \
         validation forbids for a quantity: corrupt data (a relabelling rule, a broken \
         exporter). Billed, it would lower or drop pods' requests; nothing was billed. Find \
         them with `{{__name__=~\"kube_pod_overhead_.*|kube_pod_init_container_resource_requests\"}} \
         < 0` (for NaN: each of those metrics compared with itself, `x != x`) and fix \
         what writes them"
    )]
    ImpossibleRequests {
        hour: String,
        series: f64,
        what: &'static str,
    },
    #[error(
        "in the hour {hour}, kube-state-metrics has no sample from {from} to {to} ({minutes:.1} \
         minutes, longer than --max-scrape-gap {limit}): a Prometheus or kube-state-metrics \
         outage, or failed scrapes. What pods and PVCs did in that stretch is unknown, so the \
         hour was not billed and the checkpoint stays before it. If the store can be refilled \
         (remote write catching up, a backfill), wait and run again; to bill the hour from the \
         samples on both sides of the hole anyway, raise --max-scrape-gap (MAX_SCRAPE_GAP) \
         above {minutes:.0}m for one run"
    )]
    ScrapeGap {
        hour: String,
        from: String,
        to: String,
        minutes: f64,
        limit: String,
    },
    #[error(
        "the store does not hold the hour {hour} in full yet: the newest {exporter} sample is \
         {newest}{lag}. Remote write to a central store lags, and late samples are still \
         accepted, so billing it now would lose what arrives later for good (the billing side \
         drops a re-sent message id). Nothing was billed for it; a scheduled run bills it once \
         the data is in. To bill it as it is anyway, run the backfill again with \
         --bill-incomplete (BILL_INCOMPLETE)"
    )]
    Incomplete {
        hour: String,
        exporter: String,
        newest: String,
        lag: String,
    },
    #[error(
        "--prometheus-selector {selector} matches no data in the store, which holds the \
         namespaces of the clusters {label} = {values} outside it: the selector is wrong (a \
         typo?), not the data lost. Nothing was billed; do not move the checkpoint. Correct \
         --prometheus-selector (PROMETHEUS_SELECTOR) to one of those values"
    )]
    SelectorMatchesNothing {
        selector: String,
        label: String,
        values: String,
    },
    #[error(
        "the store holds kube-state-metrics' namespaces but no {metric} series {whence} from \
         {from} to {to}: a run would bill what it measures as 0 for every namespace, so nothing \
         was billed. {advice}; check that --prometheus-selector and relabelling keep it \
         (`consumption-metrics check` lists every metric)"
    )]
    MissingSource {
        metric: String,
        /// Where it was looked for: the reference namespaces, or every device.
        whence: String,
        /// What to scrape, or which setting bills without it.
        advice: String,
        from: String,
        to: String,
    },
    #[error(
        "the store holds no kube-state-metrics data of the reference namespace \
         (kube_namespace_status_phase{{namespace=~\"{namespace}\"}}) from {from} to {to}, nor \
         after it: either it lags more than that behind (check the remote-write \
         pipeline and the store's ingestion) or kube-state-metrics does not export those \
         namespaces (set --reference-namespace, REFERENCE_NAMESPACE, to namespaces it always \
         exports). The scrape timeline and how far the store holds each hour are read from \
         it; nothing was billed"
    )]
    NoReference {
        namespace: String,
        from: String,
        to: String,
    },
    #[error(
        "{exporter} has stopped: its newest sample ({what}) is {newest}, {behind} behind the store's time for this cluster ({store}, \
         the newest `up` of kube-state-metrics' targets), over --max-source-silence {limit}. \
         This is not remote-write lag, which delays every series alike; nothing was billed from \
         that hour on and the checkpoint stays. Check that the exporter runs and is scraped \
         (`up`, its ServiceMonitor), that the reference namespaces still exist \
         (--reference-namespace, REFERENCE_NAMESPACE), and run `consumption-metrics check`"
    )]
    SourceStopped {
        exporter: String,
        what: String,
        newest: String,
        store: String,
        behind: String,
        limit: String,
    },
    #[error(
        "the store holds no {metric} series of the platform's {exporter} ({{{matchers}}}), but \
         other jobs write it: {jobs}. Nothing was billed: series of a job that is not the \
         platform's exporter are never believed, since anyone (a tenant) can write them. If \
         one of these jobs is the platform's {exporter}, set {flag} ({env}) to label matchers \
         that pick it and that tenants cannot write (docs/trust.md)"
    )]
    NotBelieved {
        exporter: &'static str,
        metric: String,
        matchers: String,
        jobs: String,
        flag: &'static str,
        env: &'static str,
    },
    #[error(
        "kube-state-metrics shows {count} pod(s) Running with requests in the hour {hour} (QoS \
         class other than BestEffort) of which kube-scheduler wrote no kube_pod_resource_request \
         in it ({first}): --request-source scheduler would bill them nothing; nothing was billed \
         from that hour on and the checkpoint stays. Every scheduler replica writes every pod, \
         so /metrics/resources was not scraped while they ran (every replica down longer than \
         their lives), --scheduler-selector (SCHEDULER_SELECTOR) misses the replica that saw \
         them, or it is scraped without honor_labels (the pods' namespace and pod then stored \
         as exported_namespace and exported_pod: set honorLabels on its ServiceMonitor). \
         Check the scheduler's `up`; bill the hour from the containers' requests \
         with --request-source kube-state-metrics (docs/billing.md, Pod-level resources)"
    )]
    SchedulerMissedPods {
        hour: String,
        count: usize,
        first: String,
    },
}

impl CollectError {
    pub fn is_retryable(&self) -> bool {
        match self {
            CollectError::Prometheus(e) => e.is_retryable(),
            // Data may still arrive (a late scrape, a restarted kube-state-metrics).
            CollectError::NoData { .. }
            | CollectError::NoReference { .. }
            | CollectError::AheadOfOthers { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = CollectError> = std::result::Result<T, E>;
