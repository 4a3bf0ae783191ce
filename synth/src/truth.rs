//! Ground truth: the exact integral of what each namespace reserved and used in each hour,
//! computed from the object timelines (not from samples), and how far a sampled measurement
//! may honestly be from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Cluster;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One namespace-hour. Quantities in core-hours, GPU-hours and GiB-hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TruthRow {
    /// Hour start, Unix seconds.
    pub hour: i64,
    pub namespace: String,
    /// The pods' effective request (KEP-753: sidecars, init containers, overhead), the
    /// default `--cpu-request-model pod`.
    pub cpu_request: f64,
    /// The app containers' requests alone (`--cpu-request-model containers`).
    pub cpu_request_containers: f64,
    pub cpu_usage: f64,
    pub cpu_max: f64,
    /// GPU-hours of the pods' effective requests, per resource (the `pod` model).
    pub gpu: f64,
    /// GPU-hours of the app containers' requests alone (the `containers` model).
    pub gpu_containers: f64,
    /// GiB-hours of memory: the pods' effective requests (the `pod` model), and the app
    /// containers' alone (`containers`).
    pub ram: f64,
    pub ram_containers: f64,
    /// GiB-hours by `(storage class, rwx)`, keyed `"class|rwx"` / `"class|rwo"`.
    pub storage: BTreeMap<String, f64>,
    /// Allowed error per dimension: one scrape interval's worth (plus any scrape gap of the
    /// hour) of every object that changed in or next to the hour.
    pub tol_cpu_request: f64,
    pub tol_cpu_usage: f64,
    pub tol_cpu_max: f64,
    pub tol_gpu: f64,
    /// GPU-hours of the requests (`gpu`) per GPU model of the pod's node (NVML's name), with a
    /// GPU fleet: what `--gpu-model` bills with the requests source.
    #[serde(default)]
    pub gpu_models: BTreeMap<String, f64>,
    /// GPU-hours held per dcgm-exporter's devices (`--gpu-source devices`): each device split
    /// equally among the pods holding it, MIG instances at C/7; and per model (`modelName`).
    #[serde(default)]
    pub gpu_devices: f64,
    #[serde(default)]
    pub gpu_devices_models: BTreeMap<String, f64>,
    #[serde(default)]
    pub tol_gpu_devices: f64,
    pub tol_ram: f64,
    pub tol_storage: f64,
}

/// GPUs a container requests, weighted: `nvidia.com/gpu` and every extended resource.
fn gpus_of(c: &super::model::Container) -> f64 {
    c.gpu_request + c.extended.iter().map(|e| e.count * e.weight).sum::<f64>()
}

/// The app containers' GPUs, weighted.
fn containers_gpus(pod: &super::model::Pod) -> f64 {
    pod.containers.iter().map(gpus_of).sum()
}

/// The pod's effective GPUs: Kubernetes' effective request per resource
/// ([`super::model::Pod::effective`]), each weighted.
fn pod_gpus(pod: &super::model::Pod) -> f64 {
    let all = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().map(|i| &i.container));
    let mut resources: Vec<(String, f64)> = Vec::new();
    for c in all {
        if c.gpu_request > 0.0 && !resources.iter().any(|(r, _)| r == "nvidia_com_gpu") {
            resources.push(("nvidia_com_gpu".into(), 1.0));
        }
        for e in &c.extended {
            if !resources.iter().any(|(r, _)| *r == e.resource) {
                resources.push((e.resource.clone(), e.weight));
            }
        }
    }
    resources
        .iter()
        .map(|(r, weight)| {
            let amount = |c: &super::model::Container| {
                if r == "nvidia_com_gpu" {
                    c.gpu_request
                } else {
                    c.extended
                        .iter()
                        .filter(|e| e.resource == *r)
                        .map(|e| e.count)
                        .sum()
                }
            };
            pod.effective(amount, 0.0) * weight
        })
        .sum()
}

fn overlap(a: (i64, i64), b: (i64, i64)) -> f64 {
    (a.1.min(b.1) - a.0.max(b.0)).max(0) as f64
}

/// Truth for every hour starting at `first_hour` (inclusive) up to `end` (exclusive) and
/// every namespace that existed in it, system namespaces included.
pub fn compute(cluster: &Cluster, first_hour: i64, end: i64) -> Vec<TruthRow> {
    let mut rows = Vec::new();
    let mut s = first_hour;
    while s + 3600 <= end {
        let e = s + 3600;
        let hour = (s, e);
        // A hole is bridged from both sides: an object that changed in it is billed within
        // the hole's length (the whole hole, also the part outside the hour).
        let gap: i64 = cluster
            .ksm_gaps
            .iter()
            .chain(&cluster.outages)
            .filter(|g| overlap(**g, hour) > 0.0)
            .map(|g| g.1 - g.0)
            .sum();
        // Usage counters across a Prometheus outage at the hour's start or end: the usage in
        // the hole is billed to the hour after it (the last sample before the hole ends the
        // hour's climb), so each container may be off by the hole's part on either side; the
        // hours still add up. cAdvisor misses outages only, not kube-state-metrics' own gaps.
        // (An outage that ends within an interval before an hour's edge also moves the last
        // sample before it.)
        let interval = cluster.max_interval();
        let at_edge = |t: i64, g: &(i64, i64)| g.0 < t && t - interval < g.1;
        let edge_hole: i64 = cluster
            .outages
            .iter()
            .filter(|g| at_edge(s, g) || at_edge(e, g))
            .map(|g| g.1 - g.0 + 2 * interval)
            .sum();
        // A changed interval moves the scrape times, so a counter's last sample in the hour
        // (which ends the hour's climb) moves by up to one interval.
        let retuned = cluster
            .interval_changes
            .iter()
            .any(|(t, _)| (s - interval..e + interval).contains(t));
        let edge_slack = (edge_hole + if retuned { interval } else { 0 }) as f64 / 3600.0;
        let slack = (interval + gap) as f64 / 3600.0;
        let changed = |events: &[i64]| {
            events
                .iter()
                .any(|t| (s - interval - gap..e + interval + gap).contains(t))
        };
        let devices = cluster
            .fleet
            .as_ref()
            .map(|f| f.truth(hour, &cluster.outages))
            .unwrap_or_default();
        for ns in &cluster.namespaces {
            if overlap((ns.created, ns.deleted), hour) <= 0.0 {
                continue;
            }
            let mut row = TruthRow {
                hour: s,
                namespace: ns.name.clone(),
                ..Default::default()
            };
            for pod in &ns.pods {
                let running = pod.running();
                let run_secs: f64 = running.iter().map(|r| overlap(*r, hour)).sum();
                let pod_changed = changed(&pod.events());
                let effective = pod.effective_cpu();
                row.cpu_request += effective * run_secs / 3600.0;
                let effective_gpus = pod_gpus(pod);
                row.gpu += effective_gpus * run_secs / 3600.0;
                if let Some(model) = cluster.fleet.as_ref().and_then(|f| f.product(&pod.node))
                    && effective_gpus > 0.0
                {
                    *row.gpu_models.entry(model.to_string()).or_default() +=
                        effective_gpus * run_secs / 3600.0;
                }
                let memory = pod.effective(|c| c.memory_request, pod.overhead_memory) / GIB;
                row.ram += memory * run_secs / 3600.0;
                row.ram_containers +=
                    pod.containers.iter().map(|c| c.memory_request).sum::<f64>() / GIB * run_secs
                        / 3600.0;
                if pod_changed {
                    row.tol_cpu_request += effective * slack;
                    row.tol_gpu += effective_gpus.max(containers_gpus(pod)) * slack;
                    row.tol_ram += memory * slack;
                }
                for c in &pod.containers {
                    let req = c.cpu_request * run_secs / 3600.0;
                    let used = c.cpu_rate * run_secs / 3600.0;
                    row.cpu_request_containers += req;
                    row.cpu_usage += used;
                    row.cpu_max += req.max(used);
                    row.gpu_containers += gpus_of(c) * run_secs / 3600.0;
                    let restarted = changed(&c.restarts);
                    // A counter reset loses the unobservable usage between the last sample
                    // before it and the restart (up to one interval), and the hour falls back to
                    // `increase`, whose extrapolation may be off by up to one more.
                    let intervals = if restarted { 2.0 } else { 1.0 };
                    if pod_changed || restarted {
                        row.tol_cpu_usage += c.cpu_rate * slack * intervals;
                        row.tol_cpu_max += c.cpu_request.max(c.cpu_rate) * slack * intervals;
                    }
                    if run_secs > 0.0 {
                        row.tol_cpu_usage += c.cpu_rate * edge_slack;
                        row.tol_cpu_max += c.cpu_rate * edge_slack;
                    }
                }
            }
            if let Some((models, tol)) = devices.get(&ns.name) {
                row.gpu_devices = models.values().sum();
                row.gpu_devices_models = models.clone();
                row.tol_gpu_devices = *tol;
            }
            for pvc in &ns.pvcs {
                let mut bounds: Vec<i64> = pvc.sizes.iter().map(|(t, _)| *t).collect();
                bounds.push(pvc.deleted);
                let mut gib_hours = 0.0;
                for w in pvc.sizes.iter().zip(bounds.iter().skip(1)) {
                    let ((from, bytes), to) = w;
                    gib_hours += bytes / GIB * overlap((*from, *to), hour) / 3600.0;
                }
                let key = format!(
                    "{}|{}",
                    pvc.storage_class,
                    if pvc.rwx() { "rwx" } else { "rwo" }
                );
                *row.storage.entry(key).or_default() += gib_hours;
                if changed(&pvc.events()) {
                    let max = pvc.sizes.iter().map(|(_, b)| *b).fold(0.0, f64::max);
                    row.tol_storage += max / GIB * slack;
                }
            }
            rows.push(row);
        }
        s = e;
    }
    rows
}
