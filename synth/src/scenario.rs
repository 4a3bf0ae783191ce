//! The standard synthetic cluster: hand-made namespaces that each exercise one hard case,
//! plus any number of seeded random tenant namespaces.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::fleet::{self, Device, Exporter, Fleet, Hold};
use super::model::{Cluster, Container, InitContainer, Namespace, Phase, Pod, Pvc};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const H: i64 = 3600;
const M: i64 = 60;
/// "Forever", as far as the data range is concerned.
const LONG_AGO: i64 = -30 * 24 * H;
const NEVER: i64 = i64::MAX / 4;

/// Settings of [`build`].
#[derive(Debug, Clone)]
pub struct Options {
    /// First sample, Unix seconds; must be hour-aligned.
    pub start: i64,
    /// Hours of data.
    pub hours: i64,
    /// Scrape interval, seconds.
    pub interval: i64,
    /// Extra random tenant namespaces.
    pub random_namespaces: usize,
    pub seed: u64,
    /// Leave out the hand-made namespaces (benchmarks want only the random bulk).
    pub only_random: bool,
    /// Seconds after each interval tick at which each kube-state-metrics replica is scraped.
    pub ksm_offsets: Vec<i64>,
    /// Per replica, the hour after `start` from which it is scraped (missing: from the start):
    /// kube-state-metrics scaled up inside the data.
    pub ksm_replica_from: Vec<f64>,
    /// Seconds after each tick at which cAdvisor is scraped.
    pub cadvisor_offset: i64,
    /// Hours after `start` (fractions allowed, e.g. 2.5) at which every kube-state-metrics
    /// pod is replaced: each series continues under a new `instance`.
    pub ksm_restarts: Vec<f64>,
    /// A second exporter writing one namespace's phase every so many seconds.
    pub second_exporter: Option<(String, i64)>,
    /// Add a pod on a time-sliced GPU (`nvidia.com/gpu.shared`), billed at 1/4: the job must
    /// then run with `--gpu-resource nvidia.com/gpu.shared=1/4`.
    pub shared_gpus: bool,
    /// Labels on every series, as a shared store's external labels add them (Thanos
    /// sidecars, remote write from each cluster's Prometheus): e.g. `cluster="east"`.
    pub external_labels: Vec<(String, String)>,
    /// Whether kube-state-metrics is scraped with `honor_labels: true`. Without it,
    /// Prometheus renames each scraped label that collides with a target label to
    /// `exported_<name>` and keeps the target's ("label conflicts are resolved by renaming
    /// conflicting labels in the scraped data to `exported_<original-label>`", Prometheus
    /// configuration documentation, `honor_labels`); a ServiceMonitor's endpoints give every
    /// target `namespace`, `pod` and `container` labels (prometheus-operator API reference,
    /// `honorLabels`), so kube-state-metrics' own `namespace`, `pod` and `container` become
    /// `exported_namespace`, `exported_pod` and `exported_container`.
    pub honor_labels: bool,
    /// Metrics left out, as a store that lacks them (an exporter not scraped, an old version).
    pub omit_metrics: Vec<String>,
    /// Add the namespace `team-mesh`: native sidecars before and after ordinary init
    /// containers, a heavy init container, pod overhead, a mid-hour start of a pod with a
    /// sidecar, a Pending pod with one, GPUs in an init container (issue "Bill what Kubernetes
    /// reserves").
    pub sidecars: bool,
    /// kube-state-metrics 2.11 or later (`restart_policy` on `kube_pod_init_container_info`).
    pub ksm_restart_policy: bool,
    /// Prometheus outages, `(from, to)` in hours after `start` (fractions allowed): no job is
    /// scraped in them (a restart, an OOM kill, a WAL replay; a real Prometheus also writes
    /// staleness markers when it comes back, which promtool's blocks cannot hold). The first
    /// adds the namespaces `team-resized` and `team-outage`, whose objects change before,
    /// during and after it.
    pub outages: Vec<(f64, f64)>,
    /// `(at, seconds)`: every job's scrape interval from `at` hours after `start` on. Adds the
    /// namespace `team-retuned`, with short-lived pods before, across and after the change.
    pub interval_change: Option<(f64, i64)>,
    /// The store holds the data only up to this many hours after `start` (remote write
    /// lagging); the truth is the cluster's, of every hour.
    pub stored_until: Option<f64>,
    /// Add the namespace `team-late`, created this many hours after `start` with a 4-core
    /// batch job: what a lagging store does not show yet.
    pub late_batch: Option<f64>,
    /// The store holds the series of namespaces other than kube-system and
    /// openshift-monitoring only up to this many hours after `start` (the rest, `up` and the
    /// reference namespaces' series, go on): remote write sends series on parallel shards
    /// (Prometheus `queue_config`, `max_shards`), and one shard can lag behind the others.
    pub others_stored_until: Option<f64>,
    /// Add a GPU fleet as dcgm-exporter reports it ([`crate::fleet`]) and the namespaces
    /// using it: `team-train` (two whole H100s), `team-infer` (MIG 3g.40gb and 1g.10gb),
    /// `team-notebook` and `team-lab` (one time-sliced T4, `nvidia.com/gpu.shared` billed at
    /// 1/2 by requests), `team-dra` (a T4 through a ResourceClaim, no request) and
    /// `team-batch` (an H100 from 01:20:10 to 03:40:50).
    pub gpu_fleet: bool,
    /// dcgm-exporter scraped with `honor_labels: true` (else the pod's labels are
    /// `exported_*`, as the GPU Operator's ServiceMonitor and OpenShift store them).
    pub dcgm_honor_labels: bool,
    /// dcgm-exporter with `--use-old-namespace` ([`crate::fleet::Fleet::old_names`]).
    pub dcgm_old_names: bool,
    /// dcgm-exporter with `KUBERNETES_VIRTUAL_GPUS` ([`crate::fleet::Fleet::virtual_gpus`]):
    /// the shared T4's holders carry `vgpu`, one series per time-slicing replica held.
    pub dcgm_virtual_gpus: bool,
    /// dcgm-exporter's UUID as the label `uuid` ([`crate::fleet::Fleet::lowercase_uuid`]).
    pub dcgm_lowercase_uuid: bool,
    /// A GPU fleet at AI-cluster scale of this many GPUs ([`crate::fleet::scaled`]) instead of
    /// the hand-made one (0: none), held in the random namespaces.
    pub gpu_scale: usize,
    /// Add what tenants write into the same store from their own scrape job
    /// ([`crate::tenant`]): look-alikes of kube-state-metrics' and dcgm-exporter's series.
    pub tenant_series: bool,
    /// kube-state-metrics' scrapes fail from this many hours after `start` on (`up` 0, no
    /// series): an exporter uninstalled or stalled, while the store's time goes on.
    pub ksm_stops_at: Option<f64>,
    /// With the GPU fleet: dcgm-exporter is uninstalled this many hours after `start` (its
    /// targets, their `up` and every device series end there).
    pub dcgm_stops_at: Option<f64>,
    /// `(from, to)` hours after `start` in which kube-state-metrics' scrapes fail (`up` 0, no
    /// series) while everything else is scraped: the exporter stopping and coming back.
    pub ksm_gaps: Vec<(f64, f64)>,
    /// The entries of `ksm_offsets` are kube-state-metrics shards, not replicas: each object
    /// is written by one of them ([`crate::model::Cluster::shard_of`]).
    pub ksm_sharded: bool,
    /// `(target, from, to)`: hours after `start` in which one kube-state-metrics replica or
    /// shard (an index of `ksm_offsets`) fails its scrapes (`up` 0, none of its series) while
    /// the others answer: a stalled shard, a replica that hangs.
    pub ksm_target_gaps: Vec<(usize, f64, f64)>,
    /// With the GPU fleet: `(from, to)` hours after `start` in which every dcgm-exporter
    /// scrape fails (`up` 0, no device series), while Prometheus scrapes everything else.
    pub dcgm_gaps: Vec<(f64, f64)>,
    /// Add the namespaces of Kubernetes 1.34+'s pod resources: `team-podlevel` (pod-level
    /// requests, KEP-2837: one pod with no container request, one whose containers request
    /// less, one with RuntimeClass overhead, one starting mid-hour, one with a GPU) and
    /// `team-resize` (in-place resizes, KEP-1287: one admitted at once, one deferred for 30
    /// minutes, one infeasible).
    pub pod_resources: bool,
    /// Scrape kube-scheduler's `/metrics/resources` (`kube_pod_resource_request`) and write
    /// kube-state-metrics' `kube_pod_status_qos_class`: two scheduler replicas at their own
    /// offsets, one restarted (4 minutes without scrapes) while the other misses 2 of them.
    pub scheduler_metric: bool,
    /// With the scheduler metric: `(from, to)` hours after `start` in which no scheduler
    /// replica is scraped (`up` 0, no series).
    pub scheduler_gaps: Vec<(f64, f64)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            start: 1_793_491_200, // 2026-11-01T00:00:00Z
            hours: 6,
            interval: 30,
            random_namespaces: 20,
            seed: 42,
            only_random: false,
            ksm_offsets: vec![7, 13],
            ksm_replica_from: Vec::new(),
            cadvisor_offset: 11,
            ksm_restarts: Vec::new(),
            second_exporter: None,
            shared_gpus: false,
            external_labels: Vec::new(),
            honor_labels: true,
            omit_metrics: Vec::new(),
            sidecars: false,
            ksm_restart_policy: true,
            outages: Vec::new(),
            interval_change: None,
            stored_until: None,
            late_batch: None,
            others_stored_until: None,
            gpu_fleet: false,
            dcgm_honor_labels: true,
            dcgm_old_names: false,
            dcgm_virtual_gpus: false,
            dcgm_lowercase_uuid: false,
            gpu_scale: 0,
            tenant_series: false,
            ksm_stops_at: None,
            dcgm_stops_at: None,
            dcgm_gaps: Vec::new(),
            ksm_gaps: Vec::new(),
            ksm_sharded: false,
            ksm_target_gaps: Vec::new(),
            pod_resources: false,
            scheduler_metric: false,
            scheduler_gaps: Vec::new(),
        }
    }
}

fn uid(ns: &str, pod: &str) -> String {
    // Stable, unique, uuid-shaped.
    let h = |salt: u64| {
        let mut x: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in ns.bytes().chain([b'/']).chain(pod.bytes()) {
            x ^= u64::from(b);
            x = x.wrapping_mul(0x0100_0000_01b3);
        }
        x
    };
    let (a, b) = (h(1), h(2));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn container(name: &str, cpu: f64, rate: f64) -> Container {
    Container {
        name: name.into(),
        cpu_request: cpu,
        gpu_request: 0.0,
        extended: Vec::new(),
        memory_request: 0.0,
        cpu_rate: rate,
        restarts: Vec::new(),
        resize: None,
    }
}

fn pod(
    ns: &str,
    name: &str,
    created: i64,
    deleted: i64,
    phases: Vec<(i64, Phase)>,
    containers: Vec<Container>,
) -> Pod {
    Pod {
        name: name.into(),
        uid: uid(ns, name),
        node: format!("node-{}", name.len() % 3 + 1),
        created,
        deleted,
        phases,
        containers,
        init_containers: Vec::new(),
        overhead_cpu: 0.0,
        overhead_memory: 0.0,
        claims: Vec::new(),
        pod_cpu: None,
        pod_memory: None,
    }
}

/// A pod that runs from `from` (Pending before, from `created`) until `to`, then ends in
/// `end` and exists until `deleted`.
#[allow(clippy::too_many_arguments)]
fn job(
    ns: &str,
    name: &str,
    created: i64,
    from: i64,
    to: i64,
    end: Phase,
    deleted: i64,
    containers: Vec<Container>,
) -> Pod {
    let mut phases = vec![(created, Phase::Pending)];
    if from > created {
        phases.push((from, Phase::Running));
    } else {
        phases[0].1 = Phase::Running;
    }
    if to < deleted {
        phases.push((to, end));
    }
    pod(ns, name, created, deleted, phases, containers)
}

fn steady(ns: &str, name: &str, containers: Vec<Container>) -> Pod {
    job(
        ns,
        name,
        LONG_AGO,
        LONG_AGO,
        NEVER,
        Phase::Succeeded,
        NEVER,
        containers,
    )
}

fn pvc(
    name: &str,
    class: &str,
    modes: &[&'static str],
    created: i64,
    deleted: i64,
    sizes: Vec<(i64, f64)>,
) -> Pvc {
    Pvc {
        name: name.into(),
        storage_class: class.into(),
        access_modes: modes.to_vec(),
        created,
        deleted,
        sizes,
    }
}

fn namespace(name: &str, created: i64, deleted: i64, pods: Vec<Pod>, pvcs: Vec<Pvc>) -> Namespace {
    Namespace {
        name: name.into(),
        created,
        deleted,
        pods,
        pvcs,
    }
}

const RWO: &[&str] = &["ReadWriteOnce"];
const RWX: &[&str] = &["ReadWriteMany"];
const RWO_RWX: &[&str] = &["ReadWriteOnce", "ReadWriteMany"];

/// kube-system with its DNS pod: every cluster has it, excluded from billing by default.
fn kube_system() -> Namespace {
    namespace(
        "kube-system",
        LONG_AGO,
        NEVER,
        vec![steady(
            "kube-system",
            "coredns-0",
            vec![container("coredns", 0.1, 0.02)],
        )],
        vec![],
    )
}

/// The hand-made namespaces; times are offsets from the data start `t0`.
fn hand_made(t0: i64) -> Vec<Namespace> {
    let at = |h: i64, m: i64, s: i64| t0 + h * H + m * M + s;
    let mut crashy = container("app", 1.0, 0.8);
    crashy.restarts = vec![at(2, 20, 10), at(4, 5, 0)];
    let mut trainer = container("trainer", 8.0, 6.5);
    trainer.gpu_request = 2.0;
    let mut infer = container("infer", 1.0, 0.4);
    infer.gpu_request = 1.0;
    vec![
        namespace(
            "team-steady",
            LONG_AGO,
            NEVER,
            vec![steady(
                "team-steady",
                "web-0",
                vec![container("web", 0.5, 0.3), container("sidecar", 0.25, 0.05)],
            )],
            vec![pvc(
                "data",
                "standard-rwo",
                RWO,
                LONG_AGO,
                NEVER,
                vec![(LONG_AGO, 10.0 * GIB)],
            )],
        ),
        namespace(
            "team-churn",
            LONG_AGO,
            NEVER,
            vec![
                // Starts mid-hour, succeeds mid-hour, lingers as Succeeded (still has requests).
                job(
                    "team-churn",
                    "batch-1",
                    at(1, 15, 0),
                    at(1, 15, 30),
                    at(2, 45, 0),
                    Phase::Succeeded,
                    at(3, 0, 0),
                    vec![container("batch", 2.0, 1.7)],
                ),
                // Restarts twice: its usage counter resets.
                steady("team-churn", "crashy-0", vec![crashy]),
                // Pending for its whole life: requests exist, nothing is billed.
                job(
                    "team-churn",
                    "pending-0",
                    LONG_AGO,
                    NEVER,
                    NEVER,
                    Phase::Pending,
                    NEVER,
                    vec![container("big", 4.0, 0.0)],
                ),
                // Fails mid-hour and stays Failed.
                job(
                    "team-churn",
                    "failing-0",
                    at(3, 8, 0),
                    at(3, 10, 0),
                    at(3, 40, 0),
                    Phase::Failed,
                    NEVER,
                    vec![container("job", 1.5, 1.5)],
                ),
            ],
            vec![],
        ),
        namespace(
            "team-gpu",
            LONG_AGO,
            NEVER,
            vec![
                job(
                    "team-gpu",
                    "trainer-0",
                    at(1, 29, 0),
                    at(1, 30, 0),
                    at(4, 20, 0),
                    Phase::Succeeded,
                    at(4, 30, 0),
                    vec![trainer],
                ),
                steady("team-gpu", "infer-0", vec![infer]),
            ],
            vec![],
        ),
        namespace(
            "team-storage",
            LONG_AGO,
            NEVER,
            vec![],
            vec![
                // Resized from 5 to 20 GiB mid-hour; no pod mounts any of these.
                pvc(
                    "resized",
                    "gp3",
                    RWO,
                    LONG_AGO,
                    NEVER,
                    vec![(LONG_AGO, 5.0 * GIB), (at(2, 30, 0), 20.0 * GIB)],
                ),
                // Two access modes: RWX wins.
                pvc(
                    "shared",
                    "gold",
                    RWO_RWX,
                    LONG_AGO,
                    NEVER,
                    vec![(LONG_AGO, 100.0 * GIB)],
                ),
                // Deleted mid-hour.
                pvc(
                    "nfs-share",
                    "nfs",
                    RWX,
                    LONG_AGO,
                    at(3, 20, 0),
                    vec![(LONG_AGO, 50.0 * GIB)],
                ),
                // A StorageClass no --storage-tier maps: standard.
                pvc(
                    "mystery",
                    "mystery-class",
                    RWX,
                    LONG_AGO,
                    NEVER,
                    vec![(LONG_AGO, 1.0 * GIB)],
                ),
                pvc(
                    "basic-share",
                    "cephfs",
                    RWX,
                    at(1, 40, 0),
                    NEVER,
                    vec![(at(1, 40, 0), 3.0 * GIB)],
                ),
            ],
        ),
        // Created mid-hour, with a pod and a PVC shortly after.
        namespace(
            "team-new",
            at(2, 40, 0),
            NEVER,
            vec![job(
                "team-new",
                "api-0",
                at(2, 41, 0),
                at(2, 42, 0),
                NEVER,
                Phase::Succeeded,
                NEVER,
                vec![container("api", 0.75, 0.5)],
            )],
            vec![pvc(
                "db",
                "standard-rwo",
                RWO,
                at(2, 45, 0),
                NEVER,
                vec![(at(2, 45, 0), 8.0 * GIB)],
            )],
        ),
        // Deleted mid-hour: pod stops, PVC goes, namespace goes.
        namespace(
            "team-gone",
            LONG_AGO,
            at(3, 25, 0),
            vec![job(
                "team-gone",
                "old-0",
                LONG_AGO,
                LONG_AGO,
                at(3, 20, 0),
                Phase::Succeeded,
                at(3, 21, 0),
                vec![container("old", 3.0, 2.0)],
            )],
            vec![pvc(
                "old-data",
                "gold",
                RWX,
                LONG_AGO,
                at(3, 22, 0),
                vec![(LONG_AGO, 30.0 * GIB)],
            )],
        ),
        // Exists, holds nothing: billed with zeros.
        namespace("team-idle", LONG_AGO, NEVER, vec![], vec![]),
        // System namespaces: excluded by the default pattern.
        kube_system(),
        namespace(
            "openshift-monitoring",
            LONG_AGO,
            NEVER,
            vec![steady(
                "openshift-monitoring",
                "prometheus-0",
                vec![container("prometheus", 2.0, 1.2)],
            )],
            vec![pvc(
                "tsdb",
                "gp3",
                RWO,
                LONG_AGO,
                NEVER,
                vec![(LONG_AGO, 200.0 * GIB)],
            )],
        ),
    ]
}

/// The namespaces of pod-level resources and in-place resizes ([`Options::pod_resources`]).
/// Every container requests 1 GiB of memory per core unless said otherwise.
fn pod_resources(t0: i64) -> Vec<Namespace> {
    let at = |h: i64, m: i64, s: i64| t0 + h * H + m * M + s;
    let sized = |name: &str, cpu: f64, rate: f64| {
        let mut c = container(name, cpu, rate);
        c.memory_request = cpu * GIB;
        c
    };
    let level = |mut p: Pod, cpu: f64, memory: f64| {
        p.pod_cpu = Some(cpu);
        p.pod_memory = Some(memory);
        p
    };
    let ns = "team-podlevel";
    // A GPU pod with pod-level CPU and memory: its GPU still comes from the container
    // (pod-level resources cover cpu, memory and hugepages only).
    let mut gpu = container("cuda", 0.0, 0.3);
    gpu.gpu_request = 1.0;
    let mut kata = level(
        steady(ns, "pl-kata", vec![container("app", 0.0, 0.4)]),
        1.0,
        2.0 * GIB,
    );
    kata.overhead_cpu = 0.25;
    kata.overhead_memory = 160.0 * 1024.0 * 1024.0;
    let podlevel = namespace(
        ns,
        LONG_AGO,
        NEVER,
        vec![
            // No container requests: kube-state-metrics sees nothing, Kubernetes reserves 2.
            level(
                steady(
                    ns,
                    "pl-only",
                    vec![container("app", 0.0, 0.9), container("log", 0.0, 0.05)],
                ),
                2.0,
                4.0 * GIB,
            ),
            // Containers request 0.5 of the pod's 3.
            level(
                steady(ns, "pl-less", vec![sized("app", 0.5, 1.1)]),
                3.0,
                6.0 * GIB,
            ),
            kata,
            // Created at 02:15, bound and running from 02:20, succeeds at 04:40.
            level(
                job(
                    ns,
                    "pl-late",
                    at(2, 15, 0),
                    at(2, 20, 0),
                    at(4, 40, 0),
                    Phase::Succeeded,
                    at(4, 50, 0),
                    vec![container("batch", 0.0, 1.2)],
                ),
                1.5,
                3.0 * GIB,
            ),
            level(steady(ns, "pl-gpu", vec![gpu]), 1.0, 8.0 * GIB),
        ],
        vec![],
    );
    let ns = "team-resize";
    let resized = |name: &str, from: f64, to: f64, when: i64, admitted: Option<i64>| {
        let mut c = container(name, from, from.min(to) * 0.8);
        c.memory_request = GIB;
        c.resize = Some(crate::model::Resize {
            at: when,
            cpu: to,
            admitted,
        });
        steady(ns, &format!("{name}-0"), vec![c])
    };
    let resize = namespace(
        ns,
        LONG_AGO,
        NEVER,
        vec![
            // Up from 1 to 2 at 01:20, admitted 40 seconds later.
            resized("up", 1.0, 2.0, at(1, 20, 0), Some(at(1, 20, 40))),
            // Down from 2 to 0.5 at 02:10, deferred until 02:40: Kubernetes counts 2 until
            // then, kube-state-metrics shows 0.5 from 02:10.
            resized("down", 2.0, 0.5, at(2, 10, 0), Some(at(2, 40, 0))),
            // Up from 1 to 8 at 03:15, infeasible: Kubernetes counts 1, kube-state-metrics 8.
            resized("infeasible", 1.0, 8.0, at(3, 15, 0), None),
        ],
        vec![],
    );
    vec![podlevel, resize]
}

/// Objects around the outage `[a, b)` (Unix seconds). `team-resized`: a pod replaced by a
/// smaller one 10 minutes before the outage (a resize), nothing changing in it: billed exactly
/// (within a scrape interval) when the hole is bridged, off when its minutes are spread over
/// the hour. `team-outage`: a pod that starts and one that stops inside it, a PVC resized
/// inside it (each billed within the hole's length), and a pod that starts 8 minutes after it.
fn outage_namespaces(a: i64, b: i64) -> Vec<Namespace> {
    let mid = a + (b - a) / 2;
    let (r, o) = ("team-resized", "team-outage");
    vec![
        namespace(
            r,
            LONG_AGO,
            NEVER,
            vec![
                job(
                    r,
                    "big-0",
                    LONG_AGO,
                    LONG_AGO,
                    a - 10 * M,
                    Phase::Succeeded,
                    a - 10 * M + 30,
                    vec![container("app", 2.5, 2.0)],
                ),
                job(
                    r,
                    "small-0",
                    a - 10 * M,
                    a - 10 * M,
                    NEVER,
                    Phase::Succeeded,
                    NEVER,
                    vec![container("app", 0.75, 0.5)],
                ),
            ],
            vec![],
        ),
        namespace(
            o,
            LONG_AGO,
            NEVER,
            vec![
                job(
                    o,
                    "in-0",
                    mid,
                    mid,
                    NEVER,
                    Phase::Succeeded,
                    NEVER,
                    vec![container("worker", 1.0, 0.9)],
                ),
                job(
                    o,
                    "out-0",
                    LONG_AGO,
                    LONG_AGO,
                    mid,
                    Phase::Succeeded,
                    mid + 30,
                    vec![container("worker", 1.5, 1.0)],
                ),
                job(
                    o,
                    "late-0",
                    b + 8 * M,
                    b + 8 * M,
                    NEVER,
                    Phase::Succeeded,
                    NEVER,
                    vec![container("late", 4.0, 3.0)],
                ),
            ],
            vec![pvc(
                "grows",
                "gp3",
                RWO,
                LONG_AGO,
                NEVER,
                vec![(LONG_AGO, 10.0 * GIB), (mid, 30.0 * GIB)],
            )],
        ),
    ]
}

/// Short-lived pods around an interval change at `c` (Unix seconds): a 12-minute job that
/// ends before it, a 16-minute one across it, a 20-minute one after it.
fn retuned_namespace(c: i64) -> Namespace {
    let ns = "team-retuned";
    let short = |name: &str, from: i64, minutes: i64, cpu: f64| {
        job(
            ns,
            name,
            from,
            from,
            from + minutes * M,
            Phase::Succeeded,
            from + minutes * M + 60,
            vec![container("job", cpu, cpu * 0.8)],
        )
    };
    namespace(
        ns,
        LONG_AGO,
        NEVER,
        vec![
            short("before-0", c - 17 * M, 12, 3.0),
            short("across-0", c - 8 * M, 16, 2.0),
            short("after-0", c + 10 * M, 20, 4.0),
        ],
        vec![],
    )
}

/// Seeded random tenants: 1-4 pods each, some short-lived, some with GPUs and PVCs.
fn random(opts: &Options) -> Vec<Namespace> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let t0 = opts.start;
    let span = opts.hours * H;
    let classes = ["gp3", "gold", "nfs", "cephfs", "standard-rwo"];
    (0..opts.random_namespaces)
        .map(|i| {
            let name = format!("tenant-{i:05}");
            let pods = (0..rng.random_range(1..=4))
                .map(|p| {
                    let pname = format!("pod-{p}");
                    let containers = (0..rng.random_range(1..=2))
                        .map(|c| {
                            let mut ct = container(
                                &format!("c{c}"),
                                f64::from(rng.random_range(1..=16u32)) * 0.125,
                                f64::from(rng.random_range(0..=100u32)) * 0.01,
                            );
                            if rng.random_bool(0.05) {
                                ct.gpu_request = f64::from(rng.random_range(1..=4u32));
                            }
                            if rng.random_bool(0.05) {
                                ct.restarts = vec![t0 + rng.random_range(0..span)];
                            }
                            ct
                        })
                        .collect();
                    if rng.random_bool(0.7) {
                        steady(&name, &pname, containers)
                    } else {
                        // Starts and stops at random seconds inside the data range.
                        let from = t0 + rng.random_range(0..span);
                        let to = (from + rng.random_range(10 * M..3 * H)).min(t0 + span + H);
                        let end = if rng.random_bool(0.5) {
                            Phase::Succeeded
                        } else {
                            Phase::Failed
                        };
                        job(
                            &name,
                            &pname,
                            from - rng.random_range(0..120),
                            from,
                            to,
                            end,
                            to + rng.random_range(0..30 * M),
                            containers,
                        )
                    }
                })
                .collect();
            let pvcs = (0..rng.random_range(0..=2))
                .map(|v| {
                    let class = classes[rng.random_range(0..classes.len())];
                    let modes = if rng.random_bool(0.3) { RWX } else { RWO };
                    let size = f64::from(rng.random_range(1..=500u32)) * GIB;
                    pvc(
                        &format!("vol-{v}"),
                        class,
                        modes,
                        LONG_AGO,
                        NEVER,
                        vec![(LONG_AGO, size)],
                    )
                })
                .collect();
            namespace(&name, LONG_AGO, NEVER, pods, pvcs)
        })
        .collect()
}

/// GPUs as users buy them: MIG slices of two profiles (one pod starting and ending mid-hour),
/// an AMD GPU, an Intel GPU without a weight (billed 0), and optionally a time-sliced share.
/// Pods whose reservation is not the sum of their app containers' requests (the values of
/// the table): native sidecars (Istio's `istio-proxy` as an init container with
/// `restartPolicy: Always`), ordinary init containers light and heavy, before and after a
/// sidecar, a Kata RuntimeClass' overhead, GPUs requested by an init container.
fn mesh(t0: i64) -> Namespace {
    let at = |h: i64, m: i64, s: i64| t0 + h * H + m * M + s;
    // Memory in every container: 1 GiB per core requested (the `ram` dimension's truth).
    let sized = |name: &str, cpu: f64, rate: f64| {
        let mut c = container(name, cpu, rate);
        c.memory_request = cpu * GIB;
        c
    };
    let init = |name: &str, cpu: f64, sidecar: bool| InitContainer {
        container: sized(name, cpu, if sidecar { cpu / 2.0 } else { 0.0 }),
        sidecar,
    };
    let with = |mut p: Pod, inits: Vec<InitContainer>, overhead: f64| {
        p.init_containers = inits;
        p.overhead_cpu = overhead;
        // Kata's RuntimeClass overhead: 160 MiB with its 0.25 core.
        p.overhead_memory = if overhead > 0.0 {
            160.0 * 1024.0 * 1024.0
        } else {
            0.0
        };
        p
    };
    let ns = "team-mesh";
    let app = |cpu: f64| vec![sized("app", cpu, cpu / 2.0)];
    let mut gpu_init = sized("warmup", 0.1, 0.0);
    gpu_init.gpu_request = 2.0;
    let mut gpu_app = sized("serve", 1.0, 0.5);
    gpu_app.gpu_request = 1.0;
    Namespace {
        name: ns.into(),
        created: t0,
        deleted: NEVER,
        pods: vec![
            // 1.0 + a 0.5 sidecar, twice: 3.0 cores for the two.
            with(
                steady(ns, "mesh-a", app(1.0)),
                vec![init("istio-proxy", 0.5, true)],
                0.0,
            ),
            with(
                steady(ns, "mesh-b", app(1.0)),
                vec![init("istio-proxy", 0.5, true)],
                0.0,
            ),
            // 0.5 + a heavy ordinary init container of 3.0: 3.0.
            with(
                steady(ns, "migrate", app(0.5)),
                vec![init("db-migrate", 3.0, false)],
                0.0,
            ),
            // 1.0 in a Kata RuntimeClass with 0.25 overhead: 1.25.
            with(steady(ns, "kata", app(1.0)), vec![], 0.25),
            // 1.0 and a light init container: 1.0.
            with(
                steady(ns, "light-init", app(1.0)),
                vec![init("setup", 0.2, false)],
                0.0,
            ),
            // A sidecar before a heavy init container: max(1.0 + 0.5, 3.0 + 0.5) = 3.5.
            with(
                steady(ns, "sidecar-first", app(1.0)),
                vec![init("proxy", 0.5, true), init("migrate", 3.0, false)],
                0.0,
            ),
            // A light init container before a sidecar: max(1.0 + 0.5, 0.1) = 1.5.
            with(
                steady(ns, "init-first", app(1.0)),
                vec![
                    init("istio-init", 0.1, false),
                    init("istio-proxy", 0.5, true),
                ],
                0.0,
            ),
            // Starts at 02:20, runs from 02:25: 1.5 from then on.
            with(
                job(
                    ns,
                    "late",
                    at(2, 20, 0),
                    at(2, 25, 0),
                    NEVER,
                    Phase::Succeeded,
                    NEVER,
                    app(1.0),
                ),
                vec![init("istio-proxy", 0.5, true)],
                0.0,
            ),
            // Pending all along: nothing.
            with(
                pod(
                    ns,
                    "pending",
                    t0,
                    NEVER,
                    vec![(t0, Phase::Pending)],
                    app(1.0),
                ),
                vec![init("istio-proxy", 0.5, true)],
                0.0,
            ),
            // GPUs: an init container warming 2, the app serving on 1: 2 GPUs reserved.
            with(
                steady(ns, "gpu-warm", vec![gpu_app]),
                vec![InitContainer {
                    container: gpu_init,
                    sidecar: false,
                }],
                0.0,
            ),
        ],
        pvcs: Vec::new(),
    }
}

fn gpus(t0: i64, shared: bool) -> Namespace {
    let at = |h: i64, m: i64, s: i64| t0 + h * H + m * M + s;
    let with = |name: &str, resource: &str, count: f64, weight: f64| {
        let mut c = container(name, 0.5, 0.25);
        c.extended.push(crate::model::Extended {
            resource: resource.into(),
            count,
            weight,
        });
        c
    };
    let mut pods = vec![
        steady(
            "team-mig",
            "mig-small-0",
            vec![with("infer", "nvidia_com_mig_1g_5gb", 2.0, 1.0 / 7.0)],
        ),
        job(
            "team-mig",
            "mig-big-0",
            at(1, 40, 0),
            at(1, 40, 30),
            at(3, 10, 0),
            Phase::Succeeded,
            at(3, 20, 0),
            vec![with("train", "nvidia_com_mig_3g_20gb", 1.0, 3.0 / 7.0)],
        ),
        steady(
            "team-mig",
            "amd-0",
            vec![with("render", "amd_com_gpu", 1.0, 1.0)],
        ),
        // No default weight: billed 0 (with a warning).
        steady(
            "team-mig",
            "intel-0",
            vec![with("encode", "gpu_intel_com_i915", 1.0, 0.0)],
        ),
    ];
    if shared {
        pods.push(steady(
            "team-mig",
            "shared-0",
            vec![with("notebook", "nvidia_com_gpu_shared", 1.0, 0.25)],
        ));
    }
    namespace("team-mig", LONG_AGO, NEVER, pods, vec![])
}

/// The GPU fleet ([`Options::gpu_fleet`]) and its tenants' namespaces. Node `gpu-node-a` has
/// four H100s (two for `team-train`, one in MIG mode, one for `team-batch` and idle around
/// it) and two dcgm-exporter replicas; `gpu-node-b` has three T4s (one time-sliced, one
/// through DRA, one idle) and one exporter, restarted at 02:30.
fn gpu_fleet(t0: i64, honor_labels: bool) -> (Fleet, Vec<Namespace>) {
    let at = |h: i64, m: i64, s: i64| t0 + h * H + m * M + s;
    let device = |i: usize, model: &str, node: &str, mig: Option<(&str, &str)>| {
        let weight = mig.map_or(1.0, |(_, p): (&str, &str)| {
            f64::from(p.as_bytes()[0] - b'0') / 7.0
        });
        Device {
            uuid: format!("GPU-{:08x}-{node}-{i}", 0x5eed_0000_u32 + i as u32),
            index: i,
            model: model.into(),
            node: node.into(),
            mig: mig.map(|(id, p)| (id.to_string(), p.to_string())),
            weight,
        }
    };
    let (a, b) = ("gpu-node-a", "gpu-node-b");
    let devices = vec![
        device(0, fleet::H100, a, None),                   // 0: team-train
        device(1, fleet::H100, a, None),                   // 1: team-train
        device(2, fleet::H100, a, Some(("1", "3g.40gb"))), // 2: team-infer big
        device(2, fleet::H100, a, Some(("2", "1g.10gb"))), // 3: team-infer small
        device(2, fleet::H100, a, Some(("3", "1g.10gb"))), // 4: idle instance
        device(3, fleet::H100, a, None),                   // 5: team-batch
        device(0, fleet::T4, b, None),                     // 6: shared
        device(1, fleet::T4, b, None),                     // 7: DRA
        device(2, fleet::T4, b, None),                     // 8: idle
    ];
    let hold = |device: usize, ns: &str, pod: &str, from: i64, to: i64, claim: Option<&str>| Hold {
        device,
        namespace: ns.into(),
        pod: pod.into(),
        container: "main".into(),
        from,
        to,
        claim: claim.map(str::to_string),
        replicas: Vec::new(),
    };
    // The shared T4's time-slicing replicas: nb-0 holds two, lab-0 one (of four).
    let sliced = |mut h: Hold, replicas: &[u32]| {
        h.replicas = replicas.to_vec();
        h
    };
    let (batch_from, batch_to) = (at(1, 20, 10), at(3, 40, 50));
    let (lab_from, dra_from) = (at(2, 10, 0), at(0, 40, 20));
    let holds = vec![
        hold(0, "team-train", "train-0", LONG_AGO, NEVER, None),
        hold(1, "team-train", "train-0", LONG_AGO, NEVER, None),
        hold(2, "team-infer", "infer-big-0", LONG_AGO, NEVER, None),
        hold(3, "team-infer", "infer-small-0", LONG_AGO, NEVER, None),
        hold(5, "team-batch", "batch-0", batch_from, batch_to, None),
        sliced(
            hold(6, "team-notebook", "nb-0", LONG_AGO, NEVER, None),
            &[0, 1],
        ),
        sliced(hold(6, "team-lab", "lab-0", lab_from, NEVER, None), &[2]),
        hold(7, "team-dra", "dra-0", dra_from, NEVER, Some("gpu-claim")),
    ];
    let exporter = |node: &str, pod: &str, ip: &str, offset: i64, from: i64, to: i64| Exporter {
        node: node.into(),
        pod: pod.into(),
        instance: format!("{ip}:9400"),
        offset,
        from,
        to,
    };
    let exporters = vec![
        exporter(
            a,
            "nvidia-dcgm-exporter-a1",
            "10.129.1.10",
            3,
            LONG_AGO,
            NEVER,
        ),
        exporter(
            a,
            "nvidia-dcgm-exporter-a2",
            "10.129.1.11",
            9,
            LONG_AGO,
            NEVER,
        ),
        exporter(
            b,
            "nvidia-dcgm-exporter-b1",
            "10.129.2.10",
            5,
            LONG_AGO,
            at(2, 30, 0),
        ),
        exporter(
            b,
            "nvidia-dcgm-exporter-b2",
            "10.129.2.11",
            5,
            at(2, 30, 0),
            NEVER,
        ),
    ];
    let gpus = |n: f64| {
        let mut c = container("main", 1.0, 0.5);
        c.gpu_request = n;
        c
    };
    let extended = |resource: &str, weight: f64| {
        let mut c = container("main", 1.0, 0.5);
        c.extended.push(crate::model::Extended {
            resource: resource.into(),
            count: 1.0,
            weight,
        });
        c
    };
    let on = |mut p: Pod, node: &str| {
        p.node = node.into();
        p
    };
    let mut dra = job(
        "team-dra",
        "dra-0",
        dra_from - 30,
        dra_from,
        NEVER,
        Phase::Succeeded,
        NEVER,
        vec![container("main", 1.0, 0.5)],
    );
    dra.node = b.into();
    dra.claims = vec![("gpu".into(), "dra-0-gpu-claim".into())];
    let one = |name: &str, pods: Vec<Pod>| namespace(name, LONG_AGO, NEVER, pods, vec![]);
    let namespaces = vec![
        one(
            "team-train",
            vec![on(steady("team-train", "train-0", vec![gpus(2.0)]), a)],
        ),
        one(
            "team-infer",
            vec![
                on(
                    steady(
                        "team-infer",
                        "infer-big-0",
                        vec![extended("nvidia_com_mig_3g_40gb", 3.0 / 7.0)],
                    ),
                    a,
                ),
                on(
                    steady(
                        "team-infer",
                        "infer-small-0",
                        vec![extended("nvidia_com_mig_1g_10gb", 1.0 / 7.0)],
                    ),
                    a,
                ),
            ],
        ),
        one(
            "team-batch",
            vec![on(
                job(
                    "team-batch",
                    "batch-0",
                    batch_from - 30,
                    batch_from,
                    batch_to,
                    Phase::Succeeded,
                    batch_to + 10 * M,
                    vec![gpus(1.0)],
                ),
                a,
            )],
        ),
        one(
            "team-notebook",
            vec![on(
                steady(
                    "team-notebook",
                    "nb-0",
                    vec![extended("nvidia_com_gpu_shared", 0.5)],
                ),
                b,
            )],
        ),
        one(
            "team-lab",
            vec![on(
                job(
                    "team-lab",
                    "lab-0",
                    lab_from - 30,
                    lab_from,
                    NEVER,
                    Phase::Succeeded,
                    NEVER,
                    vec![extended("nvidia_com_gpu_shared", 0.5)],
                ),
                b,
            )],
        ),
        one("team-dra", vec![dra]),
    ];
    let fleet = Fleet {
        devices,
        holds,
        exporters,
        interval: 15,
        honor_labels,
        old_names: false,
        virtual_gpus: false,
        lowercase_uuid: false,
        gaps: Vec::new(),
        // The nodes of the hand-made and random pods (`node-1` to `node-3`) have A100s.
        products: [
            (a, fleet::H100),
            (b, fleet::T4),
            ("node-1", fleet::A100),
            ("node-2", fleet::A100),
            ("node-3", fleet::A100),
        ]
        .into_iter()
        .map(|(n, m)| (n.to_string(), m.to_string()))
        .collect(),
    };
    (fleet, namespaces)
}

/// Build the cluster: by default two kube-state-metrics replicas scraped 7 s and 13 s after each
/// tick, cAdvisor 11 s after, and one 2-minute kube-state-metrics outage in the fourth hour.
pub fn build(opts: &Options) -> Cluster {
    let t0 = opts.start;
    let mut namespaces = if opts.only_random {
        Vec::new()
    } else {
        let mut hand = hand_made(t0);
        hand.push(gpus(t0, opts.shared_gpus));
        if opts.sidecars {
            hand.push(mesh(t0));
        }
        hand
    };
    let fleet = opts.gpu_fleet.then(|| {
        let (mut fleet, tenants) = gpu_fleet(t0, opts.dcgm_honor_labels);
        fleet.old_names = opts.dcgm_old_names;
        fleet.virtual_gpus = opts.dcgm_virtual_gpus;
        fleet.lowercase_uuid = opts.dcgm_lowercase_uuid;
        namespaces.extend(tenants);
        fleet.gaps = opts
            .dcgm_gaps
            .iter()
            .map(|(a, b)| (t0 + (a * H as f64) as i64, t0 + (b * H as f64) as i64))
            .collect();
        if let Some(h) = opts.dcgm_stops_at {
            let end = t0 + (h * H as f64) as i64;
            for e in &mut fleet.exporters {
                e.to = e.to.min(end);
            }
        }
        fleet
    });
    namespaces.extend(random(opts));
    // A fleet at scale holds its GPUs in the namespaces there are (the benchmark's).
    let fleet = fleet.or_else(|| {
        (opts.gpu_scale > 0).then(|| {
            let names: Vec<String> = namespaces
                .iter()
                .map(|n| n.name.clone())
                .filter(|n| !n.starts_with("kube-") && !n.starts_with("openshift-"))
                .collect();
            fleet::scaled(opts.gpu_scale, &names, opts.seed)
        })
    });
    let at = |h: f64| t0 + (h * H as f64) as i64;
    let outages: Vec<(i64, i64)> = opts.outages.iter().map(|(a, b)| (at(*a), at(*b))).collect();
    if let Some((a, b)) = outages.first() {
        namespaces.extend(outage_namespaces(*a, *b));
    }
    let interval_changes: Vec<(i64, i64)> = opts
        .interval_change
        .iter()
        .map(|(h, i)| (at(*h), *i))
        .collect();
    if let Some((c, _)) = interval_changes.first() {
        namespaces.push(retuned_namespace(*c));
    }
    if opts.pod_resources && !opts.only_random {
        namespaces.extend(pod_resources(t0));
    }
    if let Some(h) = opts.late_batch {
        let (ns, from) = ("team-late", at(h));
        namespaces.push(namespace(
            ns,
            from,
            NEVER,
            vec![job(
                ns,
                "batch-0",
                from,
                from + 30,
                NEVER,
                Phase::Succeeded,
                NEVER,
                vec![container("batch", 4.0, 3.5)],
            )],
            vec![],
        ));
    }
    // Every cluster has kube-system (the API server creates it and refuses to delete it),
    // and the job reads its scrape timeline from it.
    if !namespaces.iter().any(|n| n.name == "kube-system") {
        namespaces.push(kube_system());
    }
    let mut ksm_gaps = if opts.only_random || opts.hours < 5 {
        Vec::new()
    } else {
        vec![(t0 + 3 * H + 50 * M, t0 + 3 * H + 52 * M)]
    };
    if let Some(h) = opts.ksm_stops_at {
        ksm_gaps.push((at(h), t0 + opts.hours * H));
    }
    ksm_gaps.extend(opts.ksm_gaps.iter().map(|(a, b)| (at(*a), at(*b))));
    let offset = |s: i64| s % opts.interval.max(1);
    Cluster {
        data_start: t0,
        data_end: t0 + opts.hours * H,
        interval: opts.interval,
        ksm_offsets: opts.ksm_offsets.iter().map(|o| offset(*o)).collect(),
        ksm_replica_from: opts.ksm_replica_from.iter().map(|h| at(*h)).collect(),
        cadvisor_offset: offset(opts.cadvisor_offset),
        ksm_gaps,
        ksm_sharded: opts.ksm_sharded,
        ksm_target_gaps: opts
            .ksm_target_gaps
            .iter()
            .map(|(r, a, b)| (*r, at(*a), at(*b)))
            .collect(),
        outages,
        interval_changes,
        ksm_restarts: opts
            .ksm_restarts
            .iter()
            .map(|h| t0 + (h * H as f64) as i64)
            .collect(),
        second_exporter: opts.second_exporter.clone(),
        ksm_restart_policy: opts.ksm_restart_policy,
        scheduler: opts.scheduler_metric.then(|| crate::model::Scheduler {
            offsets: vec![offset(3), offset(19)],
            gaps: {
                let mut gaps = if opts.hours >= 5 {
                    vec![
                        (0, t0 + 4 * H + 5 * M, t0 + 4 * H + 9 * M),
                        (1, t0 + 4 * H + 6 * M, t0 + 4 * H + 8 * M),
                    ]
                } else {
                    Vec::new()
                };
                for (a, b) in &opts.scheduler_gaps {
                    gaps.extend([0, 1].map(|r| (r, at(*a), at(*b))));
                }
                gaps
            },
        }),
        namespaces,
        fleet,
    }
}
