//! The objects of a synthetic cluster and their timelines. Times are Unix seconds; every
//! lifetime is half-open `[from, to)`.

/// Pod phases as kube-state-metrics reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Pending,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }
}

/// A GPU-like extended resource request, with the weight the truth bills it at.
#[derive(Debug, Clone)]
pub struct Extended {
    /// The kube-state-metrics name, e.g. `nvidia_com_mig_1g_5gb`.
    pub resource: String,
    pub count: f64,
    /// GPUs per unit, as the job must bill it (0 for a resource without a weight).
    pub weight: f64,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    /// Cores requested.
    pub cpu_request: f64,
    /// GPUs requested (`nvidia.com/gpu`), 0 for none.
    pub gpu_request: f64,
    /// Other GPU-like extended resources requested: MIG slices, shared and other vendors' GPUs.
    pub extended: Vec<Extended>,
    /// Bytes of memory requested, 0 for none.
    pub memory_request: f64,
    /// Cores used while the pod runs (constant rate).
    pub cpu_rate: f64,
    /// Times at which the container restarts: its usage counter starts again from zero.
    pub restarts: Vec<i64>,
}

/// An init container: an ordinary one runs to completion before the app containers start;
/// a native sidecar (`restartPolicy: Always`, KEP-753) starts in its place in the order and
/// keeps running beside them.
#[derive(Debug, Clone)]
pub struct InitContainer {
    pub container: Container,
    pub sidecar: bool,
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub uid: String,
    pub node: String,
    /// The pod object exists (and kube-state-metrics reports it) in `[created, deleted)`.
    pub created: i64,
    pub deleted: i64,
    /// Phase changes: `(from, phase)`, sorted; the first is at `created`.
    pub phases: Vec<(i64, Phase)>,
    pub containers: Vec<Container>,
    /// `spec.initContainers`, in spec order.
    pub init_containers: Vec<InitContainer>,
    /// `spec.overhead` cores (a RuntimeClass such as Kata's), 0 for none.
    pub overhead_cpu: f64,
    /// `spec.overhead` bytes of memory, 0 for none.
    pub overhead_memory: f64,
    /// `spec.resourceClaims`: `(claim_name, resourceclaim_name)` (DRA).
    pub claims: Vec<(String, String)>,
}

impl Pod {
    /// What Kubernetes reserves for the pod of one resource, `of` reading it from a container:
    /// `PodRequests` in k8s.io/component-helpers/resource (KEP-753, "Exposing Pod Resource
    /// Requirements"): the app containers and native sidecars summed; each ordinary init
    /// container with the sidecars started before it (those earlier in spec order); the larger
    /// of the two; plus the pod overhead (`overhead`, for CPU only here).
    pub fn effective(&self, of: impl Fn(&Container) -> f64, overhead: f64) -> f64 {
        let mut running: f64 = self.containers.iter().map(&of).sum();
        let (mut sidecars, mut init): (f64, f64) = (0.0, 0.0);
        for ic in &self.init_containers {
            let r = of(&ic.container);
            if ic.sidecar {
                running += r;
                sidecars += r;
                init = init.max(sidecars);
            } else {
                init = init.max(r + sidecars);
            }
        }
        running.max(init) + overhead
    }

    /// The pod's effective CPU request, cores.
    pub fn effective_cpu(&self) -> f64 {
        self.effective(|c| c.cpu_request, self.overhead_cpu)
    }

    pub fn phase_at(&self, t: i64) -> Phase {
        self.phases
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map(|(_, p)| *p)
            .unwrap_or(Phase::Pending)
    }

    /// Intervals in which the pod is Running (and exists).
    pub fn running(&self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for (i, (from, phase)) in self.phases.iter().enumerate() {
            if *phase == Phase::Running {
                let to = self
                    .phases
                    .get(i + 1)
                    .map(|(t, _)| *t)
                    .unwrap_or(self.deleted)
                    .min(self.deleted);
                if to > *from {
                    out.push((*from, to));
                }
            }
        }
        out
    }

    /// Times where billing changes: phase changes and deletion.
    pub fn events(&self) -> Vec<i64> {
        let mut e: Vec<i64> = self.phases.iter().map(|(t, _)| *t).collect();
        e.push(self.deleted);
        e
    }
}

#[derive(Debug, Clone)]
pub struct Pvc {
    pub name: String,
    pub storage_class: String,
    /// e.g. `["ReadWriteOnce"]`, `["ReadWriteOnce", "ReadWriteMany"]`.
    pub access_modes: Vec<&'static str>,
    pub created: i64,
    pub deleted: i64,
    /// Requested size changes: `(from, bytes)`, sorted; the first is at `created`.
    pub sizes: Vec<(i64, f64)>,
}

impl Pvc {
    pub fn rwx(&self) -> bool {
        self.access_modes.contains(&"ReadWriteMany")
    }
    pub fn size_at(&self, t: i64) -> f64 {
        self.sizes
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map(|(_, b)| *b)
            .unwrap_or(0.0)
    }
    pub fn events(&self) -> Vec<i64> {
        let mut e: Vec<i64> = self.sizes.iter().map(|(t, _)| *t).collect();
        e.push(self.deleted);
        e
    }
}

#[derive(Debug, Clone)]
pub struct Namespace {
    pub name: String,
    pub created: i64,
    pub deleted: i64,
    pub pods: Vec<Pod>,
    pub pvcs: Vec<Pvc>,
}

/// A synthetic cluster and how it is scraped.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Samples are generated in `[data_start, data_end)`.
    pub data_start: i64,
    pub data_end: i64,
    /// Scrape interval of every job, seconds.
    pub interval: i64,
    /// Offsets (seconds after each interval tick) of the kube-state-metrics replicas; one
    /// entry per replica.
    pub ksm_offsets: Vec<i64>,
    /// When each replica is first scraped (Unix seconds; none: from the start): a replica
    /// added later (kube-state-metrics scaled from one to two).
    pub ksm_replica_from: Vec<i64>,
    /// Offset of the kubelet's cAdvisor scrapes.
    pub cadvisor_offset: i64,
    /// Periods `[from, to)` in which no kube-state-metrics replica was scraped.
    pub ksm_gaps: Vec<(i64, i64)>,
    /// Periods `[from, to)` in which Prometheus scraped nothing (a restart, an OOM kill, a
    /// long WAL replay): no job, kube-state-metrics nor cAdvisor, has a sample in them.
    pub outages: Vec<(i64, i64)>,
    /// `(from, seconds)`: the scrape interval of every job from then on (someone retuned
    /// it). Prometheus scrapes a target at a fixed offset within each interval, so the
    /// offsets are kept modulo the new interval.
    pub interval_changes: Vec<(i64, i64)>,
    /// Times at which every kube-state-metrics replica's pod is replaced (a rollout, an
    /// eviction): no scrape is missed, but the new pod is a new scrape target, so every
    /// series continues under a new `instance` label from then on.
    pub ksm_restarts: Vec<i64>,
    /// A second exporter (a tenant's own kube-state-metrics, a duplicated ServiceMonitor)
    /// writing `kube_namespace_status_phase` of one namespace every this many seconds.
    pub second_exporter: Option<(String, i64)>,
    /// kube-state-metrics 2.11 or later: `kube_pod_init_container_info` carries
    /// `restart_policy` (kube-state-metrics commit b948807b, first released in v2.11.0).
    pub ksm_restart_policy: bool,
    pub namespaces: Vec<Namespace>,
    /// A GPU fleet reported by dcgm-exporter (`Options::gpu_fleet`).
    pub fleet: Option<crate::fleet::Fleet>,
}

impl Cluster {
    /// The scrape interval at `t`.
    pub fn interval_at(&self, t: i64) -> i64 {
        self.interval_changes
            .iter()
            .filter(|(from, _)| *from <= t)
            .max_by_key(|(from, _)| *from)
            .map_or(self.interval, |(_, i)| *i)
    }

    /// The longest scrape interval of the data.
    pub fn max_interval(&self) -> i64 {
        self.interval_changes
            .iter()
            .map(|(_, i)| *i)
            .fold(self.interval, i64::max)
    }

    /// Scrape times of a job with `offset` in the data range, minus `gaps` and the outages:
    /// the ticks of each interval in force, at the offset modulo it.
    pub fn scrape_times(&self, offset: i64, gaps: &[(i64, i64)]) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = self.data_start + offset % self.interval.max(1);
        while t < self.data_end {
            let missed = gaps
                .iter()
                .chain(&self.outages)
                .any(|(a, b)| (*a..*b).contains(&t));
            if !missed {
                out.push(t);
            }
            let every = self.interval_at(t).max(1);
            let mut next = t + every;
            // A change between two scrapes: the first tick of the new interval after it.
            if let Some((from, i)) = self
                .interval_changes
                .iter()
                .find(|(from, _)| (t + 1..=next).contains(from))
            {
                let i = (*i).max(1);
                let base = from - from.rem_euclid(i) + offset % i;
                next = if base >= *from { base } else { base + i };
            }
            t = next;
        }
        out
    }
}
