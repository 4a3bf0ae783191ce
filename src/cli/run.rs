//! A run's flags ([`Args`]): every setting of the scheduled run, a backfill and a dry-run,
//! each with its environment variable; `check` and `audit` take the same ones.

use std::path::PathBuf;

use clap::Parser;

use super::{Flavor, LogFormat, RequestModelArg, RequestSourceArg, WindowSemantics};
use crate::collector::FallenCounters;
use crate::gpu::GpuSource;
use crate::message::IdFormat;
use crate::queries::CpuBasis;

/// Bill every tenant namespace of a Kubernetes cluster for the CPU, GPU and storage it held
/// each hour, and publish one MCMP message per cluster-hour.
///
/// Scheduled run (the hourly CronJob): publishes every complete hour after the checkpoint.
/// Backfill: `--since/--until` publishes an explicit range of hours.
/// `--dry-run` prints the messages as one JSON array on stdout; it sends nothing to Kafka and
/// writes no checkpoint (a scheduled dry-run reads the checkpoint to plan its hours).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "consumption-metrics",
    version,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Args {
    /// Base URL of the Prometheus HTTP API (without /api/v1); needed by every mode but a plain
    /// audit. Example: http://prometheus-k8s.openshift-monitoring.svc:9090
    #[arg(long, env = "PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,

    /// Label matchers in PromQL syntax added to every selector of every query, for a store
    /// that holds several clusters (Thanos, Mimir, VictoriaMetrics). Example: cluster="east"
    #[arg(long, env = "PROMETHEUS_SELECTOR", value_name = "MATCHERS")]
    pub prometheus_selector: Option<String>,

    /// The label that tells clusters apart in the store: a run refuses data with more than one
    /// value of it (set --prometheus-selector to pick one).
    #[arg(
        long,
        env = "CLUSTER_LABEL",
        value_name = "LABEL",
        default_value = "cluster"
    )]
    pub cluster_label: String,

    /// File holding a bearer token for Prometheus, re-read on every run.
    /// Example: /var/run/secrets/kubernetes.io/serviceaccount/token
    #[arg(long, env = "PROMETHEUS_BEARER_TOKEN_FILE", value_name = "PATH")]
    pub prometheus_bearer_token_file: Option<PathBuf>,

    /// PEM file of the CA that signed Prometheus's server certificate (added to the system roots).
    #[arg(long, env = "PROMETHEUS_CA", value_name = "PATH")]
    pub prometheus_ca: Option<PathBuf>,

    /// PEM client certificate for Prometheus (needs --prometheus-key).
    #[arg(
        long,
        env = "PROMETHEUS_CERT",
        value_name = "PATH",
        requires = "prometheus_key"
    )]
    pub prometheus_cert: Option<PathBuf>,

    /// PEM (PKCS#8) private key of --prometheus-cert.
    #[arg(
        long,
        env = "PROMETHEUS_KEY",
        value_name = "PATH",
        requires = "prometheus_cert"
    )]
    pub prometheus_key: Option<PathBuf>,

    /// The query engine behind --prometheus-url. Thanos (and auto) queries carry dedup=true,
    /// partial_response=false and max_source_resolution=0s, so that replicas are deduplicated,
    /// a missing store fails the hour and downsampled data is never billed; mimir requires
    /// --prometheus-header X-Scope-OrgID=<tenant>.
    #[arg(long, env = "PROMETHEUS_FLAVOR", value_enum, default_value_t = Flavor::Auto)]
    pub prometheus_flavor: Flavor,

    /// Extra HTTP header sent to Prometheus, repeatable; comma-separated in the environment.
    /// Mimir/Cortex: X-Scope-OrgID=tenant-a (several: tenant-a|tenant-b); Thanos with tenancy:
    /// THANOS-TENANT=tenant-a. Example: X-Scope-OrgID=tenant-a
    #[arg(
        long = "prometheus-header",
        env = "PROMETHEUS_HEADERS",
        value_name = "NAME=VALUE",
        value_delimiter = ','
    )]
    pub prometheus_headers: Vec<String>,

    /// Extra HTTP header whose value is read from a file (a mounted Secret: a tenant id, a
    /// token), repeatable; never printed or logged. Example:
    /// X-Scope-OrgID=/var/run/secrets/tenant/org-id
    #[arg(
        long = "prometheus-header-file",
        env = "PROMETHEUS_HEADER_FILES",
        value_name = "NAME=PATH",
        value_delimiter = ','
    )]
    pub prometheus_header_files: Vec<String>,

    /// Timeout of one Prometheus query. Example: 90s
    #[arg(
        long,
        env = "PROMETHEUS_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s"
    )]
    pub prometheus_timeout: String,

    /// Retries of a query that failed with a timeout, 429 or 5xx (exponential backoff from 1s).
    #[arg(
        long,
        env = "PROMETHEUS_RETRIES",
        value_name = "N",
        default_value_t = 3
    )]
    pub prometheus_retries: u32,

    /// Largest Prometheus answer read, in MiB; a larger one fails the run with advice instead of
    /// exhausting the pod's memory (an answer takes about 6 times its size while parsed).
    #[arg(
        long,
        env = "PROMETHEUS_MAX_RESPONSE_MIB",
        value_name = "MIB",
        default_value_t = 64
    )]
    pub prometheus_max_response_mib: u32,

    /// Accept answers that Prometheus marks with warnings (partial data). Off by default: a
    /// partial answer fails the hour so that nothing is billed short.
    #[arg(long, env = "ALLOW_PARTIAL_DATA")]
    pub allow_partial_data: bool,

    /// Hours fetched by one range query (1-24). Fewer hours mean smaller answers.
    #[arg(long, env = "HOURS_PER_QUERY", value_name = "N", default_value_t = 24)]
    pub hours_per_query: u32,

    /// Scrape interval of kube-state-metrics, used to integrate gauges over time; `auto`
    /// derives it from the sample count of kube_namespace_status_phase. Example: 30s
    #[arg(
        long,
        env = "SCRAPE_INTERVAL",
        value_name = "DURATION|auto",
        default_value = "auto"
    )]
    pub scrape_interval: String,

    /// The longest stretch without a kube-state-metrics sample (a Prometheus restart, failed
    /// scrapes) an hour is billed across, bridged from the samples on both sides; an hour
    /// with a longer hole is refused (exit 4), since what happened in it is unknown.
    #[arg(
        long,
        env = "MAX_SCRAPE_GAP",
        value_name = "DURATION",
        default_value = "15m"
    )]
    pub max_scrape_gap: String,

    /// How long a source (kube-state-metrics of the reference namespaces, one of its
    /// families, cAdvisor, dcgm-exporter) may stay behind the store's own time (the newest
    /// `up` of kube-state-metrics' targets) before it counts as stopped: exit 4 for every mode,
    /// naming the source. Less than that is remote-write lag, waited for. From 3h (the waiting
    /// alert fires first) to 6h (the newest samples are looked for that far back).
    #[arg(
        long,
        env = "MAX_SOURCE_SILENCE",
        value_name = "DURATION",
        default_value = "4h"
    )]
    pub max_source_silence: String,

    /// With --since/--until: bill hours the store does not hold in full yet (its newest
    /// sample lies before the hour's end), with a warning. What arrives later is then never
    /// billed. Without it such an hour is refused (exit 7); a scheduled run waits for it.
    #[arg(long, env = "BILL_INCOMPLETE", requires = "since")]
    pub bill_incomplete: bool,

    /// Namespaces (comma-separated) that always exist with running pods, whose series give
    /// kube-state-metrics' scrape timeline (holes, interval changes) and how far the store
    /// holds each source: kube-system in every Kubernetes cluster, openshift-monitoring on
    /// OpenShift (whose kube-system holds no pods). Set others where kube-state-metrics is
    /// limited to some namespaces.
    #[arg(
        long,
        env = "REFERENCE_NAMESPACE",
        value_name = "NAMESPACES",
        default_value = "kube-system,openshift-monitoring"
    )]
    pub reference_namespace: String,

    /// Label matchers (PromQL) that pick the platform's own kube-state-metrics: its series
    /// alone are believed, any other job's with the same names changes no bill. Empty:
    /// every job (warned). OpenShift: prometheus="openshift-monitoring/k8s"
    #[arg(
        long,
        env = "KUBE_STATE_METRICS_SELECTOR",
        value_name = "MATCHERS",
        default_value = r#"job="kube-state-metrics""#
    )]
    pub kube_state_metrics_selector: String,

    /// Label matchers (PromQL) that pick the kubelets' cAdvisor (the usage and max bases).
    /// Empty: every job (warned).
    #[arg(
        long,
        env = "CADVISOR_SELECTOR",
        value_name = "MATCHERS",
        default_value = r#"job="kubelet", metrics_path="/metrics/cadvisor""#
    )]
    pub cadvisor_selector: String,

    /// Label matchers (PromQL) that pick the platform's dcgm-exporter (--gpu-source devices):
    /// the GPU Operator's nvidia-dcgm-exporter or the dcgm-exporter chart's. Empty: every job
    /// (warned).
    #[arg(
        long,
        env = "DCGM_EXPORTER_SELECTOR",
        value_name = "MATCHERS",
        default_value = r#"job=~"nvidia-dcgm-exporter|dcgm-exporter""#
    )]
    pub dcgm_exporter_selector: String,

    /// Label matchers (PromQL) that pick kube-scheduler's /metrics/resources
    /// (--request-source scheduler; check compares it with kube-state-metrics' when both are
    /// in the store). Empty: every job (warned).
    #[arg(
        long,
        env = "SCHEDULER_SELECTOR",
        value_name = "MATCHERS",
        default_value = r#"job=~"kube-scheduler|scheduler""#
    )]
    pub scheduler_selector: String,

    /// Name of this cluster (required); external_id is <cluster>_<namespace>.
    /// Example: prod-alln-01
    #[arg(long, env = "CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// service_name of the message header.
    #[arg(
        long,
        env = "SERVICE_NAME",
        value_name = "NAME",
        default_value = "OPENSHIFT"
    )]
    pub service_name: String,

    /// service_version of the message header.
    #[arg(
        long,
        env = "SERVICE_VERSION",
        value_name = "VERSION",
        default_value = "GA"
    )]
    pub service_version: String,

    /// service_location of the message header. Example: ALLN
    #[arg(
        long,
        env = "SERVICE_LOCATION",
        value_name = "LOCATION",
        default_value = "UNSPECIFIED"
    )]
    pub service_location: String,

    /// First hour of a backfill (RFC 3339, hour-aligned, inclusive). Needs --until.
    /// Example: 2026-11-21T00:00:00Z
    #[arg(long, env = "SINCE", value_name = "TIME", requires = "until")]
    pub since: Option<String>,

    /// End of a backfill (RFC 3339, hour-aligned, exclusive). Needs --since.
    /// Example: 2026-11-22T00:00:00Z
    #[arg(long, env = "UNTIL", value_name = "TIME", requires = "since")]
    pub until: Option<String>,

    /// Print the messages as one JSON array on stdout; send nothing to Kafka and write no
    /// checkpoint (a scheduled dry-run still reads it to plan its hours).
    #[arg(long, env = "DRY_RUN")]
    pub dry_run: bool,

    /// The clock (RFC 3339), for replays and tests. Default: the system clock.
    #[arg(long, env = "NOW", value_name = "TIME")]
    pub now: Option<String>,

    /// How long after an hour ends before it is billed, so that its data is complete.
    #[arg(
        long,
        env = "SETTLE_DELAY",
        value_name = "DURATION",
        default_value = "10m"
    )]
    pub settle_delay: String,

    /// Most hours published by one run, oldest first; a backfill over this is refused.
    #[arg(
        long,
        env = "MAX_HOURS_PER_RUN",
        value_name = "N",
        default_value_t = 168
    )]
    pub max_hours_per_run: u32,

    /// Range-window semantics of the query engine. `auto` measures them with one probe query
    /// per run; force them only for an engine whose probe answer is neither 60 nor 61.
    #[arg(long, env = "WINDOW_SEMANTICS", value_enum, default_value_t = WindowSemantics::Auto)]
    pub window_semantics: WindowSemantics,

    /// CPU billing basis.
    #[arg(long, env = "CPU_BASIS", value_enum, default_value_t = CpuBasis::Request)]
    pub cpu_basis: CpuBasis,

    /// What a pod's request is, for the request basis and GPUs: `pod`, what Kubernetes
    /// reserves (app containers, native sidecars, init containers, pod overhead; KEP-753), or
    /// `containers`, the app containers' requests alone (the Go job, OpenCost).
    #[arg(long, env = "CPU_REQUEST_MODEL", value_enum, default_value_t = RequestModelArg::Pod)]
    pub cpu_request_model: RequestModelArg,

    /// Where pods' requests are read, for the request basis, memory and GPUs:
    /// `kube-state-metrics` (the containers' specs; every platform), or `scheduler`,
    /// kube-scheduler's kube_pod_resource_request (what it reserves: pod-level requests of
    /// Kubernetes 1.34+ and pending in-place resizes included; needs /metrics/resources
    /// scraped, which managed control planes do not offer).
    #[arg(long, env = "REQUEST_SOURCE", value_enum, default_value_t = RequestSourceArg::KubeStateMetrics)]
    pub request_source: RequestSourceArg,

    /// Also bill memory: `ram`, GiB-hours of the memory requested (the same request model as
    /// CPU, `resource="memory"`, pod overhead included), in every entry. Without it the
    /// messages carry no `ram` key.
    #[arg(long, env = "BILL_MEMORY")]
    pub bill_memory: bool,

    /// How the CPU of namespaces whose usage counters fell within an hour is read (usage and
    /// max bases): `samples` computes it from the counters' raw samples (one read, exact),
    /// `queries` with PromQL alone (22 reads, for an engine or proxy that refuses instant
    /// queries of raw samples).
    #[arg(long, env = "FALLEN_COUNTERS", value_enum, default_value_t = FallenCounters::Samples)]
    pub fallen_counters: FallenCounters,

    /// GPU weight of an extended resource, repeatable; comma-separated in the environment.
    /// GPU-hours = count × weight × hours. Defaults: nvidia.com/gpu=1, amd.com/gpu=1,
    /// nvidia.com/mig-<C>g.<M>gb=C/7; nvidia.com/gpu.shared must be set (1/replicas).
    /// Example: --gpu-resource nvidia.com/gpu.shared=1/4
    #[arg(
        long = "gpu-resource",
        env = "GPU_RESOURCES",
        value_name = "RESOURCE=WEIGHT",
        value_delimiter = ','
    )]
    pub gpu_resources: Vec<String>,

    /// Where GPU-hours are read from: `requests` (kube-state-metrics' container requests; blind
    /// to GPUs allocated through DRA, which it warns about) or `devices` (dcgm-exporter's
    /// per-device series attributed to pods: whole GPUs, MIG instances, shared GPUs split
    /// equally between their pods, DRA allocations). docs/gpus.md.
    #[arg(long, env = "GPU_SOURCE", value_enum, default_value_t = GpuSource::Requests)]
    pub gpu_source: GpuSource,

    /// Bill GPU-hours per model as well, repeatable; comma-separated in the environment: each
    /// entry carries `gpu_<SUFFIX>` for every configured model beside the total `gpu`. MODEL is
    /// NVML's product name, as dcgm-exporter's `modelName` (devices source) or the node label
    /// nvidia.com/gpu.product on kube_node_labels (requests source) write it (spaces or
    /// dashes). A GPU of an unmapped or unknown model held in an hour refuses the hour.
    /// Example: --gpu-model 'NVIDIA H100 80GB HBM3=h100'
    #[arg(
        long = "gpu-model",
        env = "GPU_MODELS",
        value_name = "MODEL=SUFFIX",
        value_delimiter = ','
    )]
    pub gpu_models: Vec<String>,

    /// StorageClass to tier mapping for RWX volumes, repeatable; comma-separated in the
    /// environment. Tiers: standard, basic, premium. Unmapped classes are standard.
    /// Example: --storage-tier gold=premium --storage-tier nfs=basic
    #[arg(
        long = "storage-tier",
        env = "STORAGE_TIERS",
        value_name = "CLASS=TIER",
        value_delimiter = ','
    )]
    pub storage_tiers: Vec<String>,

    /// Namespaces never billed: glob patterns, comma-separated.
    #[arg(
        long,
        env = "EXCLUDE_NAMESPACES",
        value_name = "GLOBS",
        value_delimiter = ',',
        default_value = "kube-*,openshift-*"
    )]
    pub exclude_namespaces: Vec<String>,

    /// Largest message in bytes; an hour with more namespaces is split into several parts.
    #[arg(
        long,
        env = "MAX_MESSAGE_BYTES",
        value_name = "BYTES",
        default_value_t = 900_000
    )]
    pub max_message_bytes: usize,

    /// Shape of message_id: uuid (a v5 UUID), or legacy, the Go CronJob's
    /// `2026-11-22-10:00:<digits>` for a billing side that parses it. Both are derived from
    /// cluster, hour and part, so a re-publish keeps its id. Changing it makes re-published
    /// hours look new to the billing side: see docs/migrating.md.
    #[arg(
        long,
        env = "MESSAGE_ID_FORMAT",
        value_enum,
        default_value_t = IdFormat::Uuid
    )]
    pub message_id_format: IdFormat,

    /// Kafka bootstrap brokers, comma-separated. Example: kafka-1:9093,kafka-2:9093
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    pub kafka_brokers: Option<String>,

    /// Kafka topic of the MCMP messages.
    #[arg(long, env = "KAFKA_TOPIC", value_name = "TOPIC")]
    pub kafka_topic: Option<String>,

    /// PEM file of the CA that signed the brokers' certificates.
    #[arg(long, env = "KAFKA_CA", value_name = "PATH")]
    pub kafka_ca: Option<PathBuf>,

    /// PEM client certificate for mutual TLS with Kafka.
    #[arg(long, env = "KAFKA_CERT", value_name = "PATH")]
    pub kafka_cert: Option<PathBuf>,

    /// PEM private key of --kafka-cert.
    #[arg(long, env = "KAFKA_KEY", value_name = "PATH")]
    pub kafka_key: Option<PathBuf>,

    /// Write CloudEvents 1.0 attributes as `ce_` headers on every record (Kafka binding,
    /// binary mode: the body and the other headers are unchanged). `false` leaves them out.
    #[arg(
        long,
        env = "KAFKA_CLOUDEVENTS",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub kafka_cloudevents: bool,

    /// Extra librdkafka producer setting, repeatable; comma-separated in the environment.
    /// Settings that would weaken delivery (acks other than all, idempotence off, ...) and
    /// those owned by other flags are refused. Example: linger.ms=50
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub kafka_properties: Vec<String>,

    /// How long one message may wait for the brokers' acknowledgement before the run stops.
    #[arg(
        long,
        env = "KAFKA_DELIVERY_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s"
    )]
    pub kafka_delivery_timeout: String,

    /// ConfigMap holding the checkpoint key lastPublishedTime (in a cluster).
    #[arg(long, env = "CHECKPOINT_CONFIGMAP", value_name = "NAME")]
    pub checkpoint_configmap: Option<String>,

    /// Namespace of --checkpoint-configmap. Default: the pod's own namespace.
    #[arg(long, env = "CHECKPOINT_NAMESPACE", value_name = "NAMESPACE")]
    pub checkpoint_namespace: Option<String>,

    /// Local checkpoint file (outside a cluster): one RFC 3339 timestamp, the end of the last
    /// hour fully published. A missing file means a first run: only the last complete hour.
    #[arg(
        long,
        env = "CHECKPOINT_FILE",
        value_name = "PATH",
        default_value = "consumption-metrics.checkpoint"
    )]
    pub checkpoint_file: PathBuf,

    /// First run only (no checkpoint yet): the first hour to publish, instead of only the last
    /// complete hour. Example: 2026-11-01T00:00:00Z
    #[arg(long, env = "START_FROM", value_name = "TIME")]
    pub start_from: Option<String>,

    /// With --since/--until: also advance the checkpoint over the backfilled hours, where they
    /// continue it without a gap. Without it, a backfill never moves the checkpoint.
    #[arg(long, env = "ADVANCE_CHECKPOINT", requires = "since")]
    pub advance_checkpoint: bool,

    /// Prometheus Pushgateway for the job's own metrics, pushed at the end of every run (a
    /// failed push is logged and changes nothing else). Example: http://pushgateway:9091
    #[arg(long, env = "PUSHGATEWAY_URL", value_name = "URL")]
    pub pushgateway_url: Option<String>,

    /// Validate the configuration (flags and environment), print what the run would do, and
    /// exit without contacting anything. Exit 0 when valid, 2 otherwise.
    #[arg(long)]
    pub check_config: bool,

    /// Log format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}
