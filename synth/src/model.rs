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

/// kube-state-metrics' name of `nvidia.com/gpu`.
pub const GPU: &str = "nvidia_com_gpu";

/// The Kubernetes name of an extended resource from kube-state-metrics' (which writes every
/// character outside `[a-zA-Z0-9_]` as `_`), for the synthetic resources: `nvidia_com_gpu` →
/// `nvidia.com/gpu`, `nvidia_com_mig_1g_5gb` → `nvidia.com/mig-1g.5gb`,
/// `nvidia_com_gpu_shared` → `nvidia.com/gpu.shared`. kube-scheduler writes this form.
pub fn resource_name(ksm: &str) -> String {
    let Some((vendor, rest)) = ksm.split_once("_com_") else {
        return ksm.to_string();
    };
    let rest = match rest.strip_prefix("mig_") {
        Some(profile) => format!("mig-{}", profile.replace('_', ".")),
        None => rest.replace('_', "."),
    };
    format!("{vendor}.com/{rest}")
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
    /// An in-place resize of its CPU request (KEP-1287, GA in Kubernetes 1.35), if any.
    pub resize: Option<Resize>,
}

/// An in-place resize of a container's CPU request: `spec` changes at `at`; the kubelet
/// admits it (allocated and actual follow) at `admitted`, or never (`None`: the
/// `PodResizePending` condition with reason `Infeasible`). Between the two the resize is
/// pending (`Deferred`, or `InProgress` while the runtime applies it).
#[derive(Debug, Clone, Copy)]
pub struct Resize {
    pub at: i64,
    pub cpu: f64,
    pub admitted: Option<i64>,
}

impl Container {
    /// `spec.containers[].resources.requests.cpu` at `t`: what kube-state-metrics exports
    /// (`kube_pod_container_resource_requests` reads the spec).
    pub fn spec_cpu(&self, t: i64) -> f64 {
        match self.resize {
            Some(r) if t >= r.at => r.cpu,
            _ => self.cpu_request,
        }
    }

    /// The CPU request Kubernetes counts at `t` (`determineContainerReqs` in
    /// k8s.io/component-helpers/resource/helpers.go, with `UseStatusResources` as
    /// kube-scheduler and ResourceQuota call it): `max(spec, allocated, actual)`, or
    /// `max(allocated, actual)` while the resize is infeasible. Allocated and actual are
    /// the old request until the resize is admitted.
    pub fn counted_cpu(&self, t: i64) -> f64 {
        match self.resize {
            Some(r) if t >= r.at => match r.admitted {
                Some(a) if t >= a => r.cpu,
                Some(_) => r.cpu.max(self.cpu_request),
                None => self.cpu_request,
            },
            _ => self.cpu_request,
        }
    }

    /// The times its CPU request changes, for either view.
    pub fn resize_events(&self) -> Vec<i64> {
        self.resize
            .iter()
            .flat_map(|r| [Some(r.at), r.admitted].into_iter().flatten())
            .collect()
    }
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
    /// Pod-level `spec.resources.requests` (KEP-2837, beta and on by default from Kubernetes
    /// 1.34): cores and bytes, `None` where the pod sets none of that resource.
    pub pod_cpu: Option<f64>,
    pub pod_memory: Option<f64>,
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

    /// Per GPU-like extended resource (kube-state-metrics' name), the pod's effective request
    /// ([`Pod::effective`], unweighted): extended resources always come from the containers.
    pub fn extended_requests(&self) -> Vec<(String, f64)> {
        let all = self
            .containers
            .iter()
            .chain(self.init_containers.iter().map(|i| &i.container));
        let mut names: Vec<String> = Vec::new();
        for c in all {
            if c.gpu_request > 0.0 && !names.iter().any(|r| r == GPU) {
                names.push(GPU.into());
            }
            for e in &c.extended {
                if !names.contains(&e.resource) {
                    names.push(e.resource.clone());
                }
            }
        }
        names
            .into_iter()
            .map(|r| {
                let amount = |c: &Container| {
                    if r == GPU {
                        c.gpu_request
                    } else {
                        c.extended
                            .iter()
                            .filter(|e| e.resource == r)
                            .map(|e| e.count)
                            .sum()
                    }
                };
                let v = self.effective(amount, 0.0);
                (r, v)
            })
            .collect()
    }

    /// The pod's effective CPU request from its containers' specs, cores: what the
    /// kube-state-metrics source can see.
    pub fn effective_cpu(&self) -> f64 {
        self.effective(|c| c.cpu_request, self.overhead_cpu)
    }

    /// The containers' effective CPU request from their specs at `t` (resizes applied as
    /// soon as the spec changes), pod-level requests unseen: what kube-state-metrics shows.
    pub fn spec_cpu_at(&self, t: i64) -> f64 {
        self.effective(|c| c.spec_cpu(t), self.overhead_cpu)
    }

    /// `PodRequests` (k8s.io/component-helpers/resource/helpers.go) for CPU at `t`, as
    /// kube-scheduler publishes it in `kube_pod_resource_request`: the containers' aggregate
    /// with in-place resizes counted as [`Container::counted_cpu`], replaced by the
    /// pod-level request where the pod sets one (`IsSupportedPodLevelResource`: cpu, memory,
    /// hugepages), plus the overhead.
    pub fn requested_cpu_at(&self, t: i64) -> f64 {
        match self.pod_cpu {
            Some(cpu) => cpu + self.overhead_cpu,
            None => self.effective(|c| c.counted_cpu(t), self.overhead_cpu),
        }
    }

    /// `PodRequests` for memory, bytes: pod-level where set, else the containers'.
    pub fn requested_memory(&self) -> f64 {
        match self.pod_memory {
            Some(m) => m + self.overhead_memory,
            None => self.effective(|c| c.memory_request, self.overhead_memory),
        }
    }

    /// The QoS class Kubernetes gives the pod (`GetPodQOS`, pkg/apis/core/v1/helper/qos):
    /// `BestEffort` without any cpu or memory request or limit in its containers or at pod
    /// level; here `Burstable` otherwise (the synthetic pods set no limits).
    pub fn qos_class(&self) -> &'static str {
        let containers = self
            .containers
            .iter()
            .chain(self.init_containers.iter().map(|i| &i.container));
        let any = containers
            .clone()
            .any(|c| c.cpu_request > 0.0 || c.memory_request > 0.0)
            || self.pod_cpu.is_some()
            || self.pod_memory.is_some();
        if any { "Burstable" } else { "BestEffort" }
    }

    /// The first time the pod runs: kube-scheduler has bound it to its node by then; before,
    /// `spec.nodeName` is empty.
    pub fn bound_at(&self) -> i64 {
        self.running().first().map_or(i64::MAX, |r| r.0)
    }

    /// Whether the pod is terminal (Succeeded or Failed) at `t`: kube-scheduler no longer
    /// counts it.
    pub fn terminal_at(&self, t: i64) -> bool {
        matches!(self.phase_at(t), Phase::Succeeded | Phase::Failed)
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

    /// Times where billing changes: phase changes, in-place resizes and deletion.
    pub fn events(&self) -> Vec<i64> {
        let mut e: Vec<i64> = self.phases.iter().map(|(t, _)| *t).collect();
        e.extend(self.containers.iter().flat_map(Container::resize_events));
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

/// kube-scheduler's replicas as Prometheus scrapes their `/metrics/resources`. Every replica
/// serves `kube_pod_resource_request` from its own informer cache, leader or not
/// (pkg/scheduler/metrics/resources/resources.go: the collector lists every pod of the
/// cache), so each pod's series is written once per replica.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// Offsets of the replicas' scrapes within each interval.
    pub offsets: Vec<i64>,
    /// `(replica, from, to)`: its scrapes fail (a restart): `up` 0, no series.
    pub gaps: Vec<(usize, i64, i64)>,
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
    /// The entries of `ksm_offsets` are shards, not replicas (kube-state-metrics `--shard`,
    /// `--total-shards`): each object is written by the one shard its key hashes to
    /// ([`Cluster::shard_of`]).
    pub ksm_sharded: bool,
    /// `(target, from, to)`: periods in which one kube-state-metrics replica or shard fails its
    /// scrapes (`up` 0, none of its series) while the others are scraped: a stalled shard.
    pub ksm_target_gaps: Vec<(usize, i64, i64)>,
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
    /// kube-scheduler's `/metrics/resources`, scraped, if it is.
    pub scheduler: Option<Scheduler>,
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
    /// The kube-state-metrics target that writes an object: every replica writes every
    /// object (`None`); with shards, the one shard the object's key hashes to. kube-state-metrics
    /// keeps an object on a shard when the FNV-32a hash of its UID modulo `--total-shards` is
    /// that shard's number (`pkg/sharding`, "Horizontal sharding" in its README), so a pod and
    /// its namespace may be written by different shards.
    pub fn shard_of(&self, key: &str) -> Option<usize> {
        if !self.ksm_sharded || self.ksm_offsets.is_empty() {
            return None;
        }
        let mut h: u32 = 0x811c_9dc5;
        for b in key.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        Some(h as usize % self.ksm_offsets.len())
    }

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
