//! Writes a cluster's samples as OpenMetrics text for `promtool tsdb create-blocks-from
//! openmetrics`, with the label conventions of kube-state-metrics v2 and the kubelet's cAdvisor.

use std::io::{self, Write};

use super::model::{Cluster, Phase};

const KSM_JOB: &str = "kube-state-metrics";

/// The scrape target of a replica's pod, after `restarts` restarts: a replaced pod has a new
/// address, and Prometheus gives its series a new `instance`.
fn ksm_instance(replica: usize, restarts: usize) -> String {
    format!("10.128.{restarts}.{}:8080", 11 + replica)
}

/// kube-state-metrics' scrape targets: per replica or shard, and pod after each restart, its
/// `instance`, the times Prometheus scraped it successfully (`answered`), or attempted to,
/// and which entry of `ksm_offsets` it is. A scrape attempt that fails (the target down,
/// `ksm_gaps`, or this target alone, `ksm_target_gaps`) writes `up` 0 and no series; an outage
/// of Prometheus writes nothing at all.
pub struct Targets {
    all: Vec<(String, Vec<i64>, usize)>,
    cluster_sharded: bool,
}

impl Targets {
    /// The targets that write the object keyed `key` (its UID, or a name where the model has
    /// none): every replica, or the one shard it hashes to ([`Cluster::shard_of`]).
    pub fn of<'a>(
        &'a self,
        cluster: &Cluster,
        key: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Vec<i64>)> + 'a {
        let shard = if self.cluster_sharded {
            cluster.shard_of(key)
        } else {
            None
        };
        self.all
            .iter()
            .filter(move |(_, _, r)| shard.is_none_or(|s| s == *r))
            .map(|(instance, times, _)| (instance, times))
    }

    /// Every target, with the entry of `ksm_offsets` it is.
    pub fn all(&self) -> impl Iterator<Item = &(String, Vec<i64>, usize)> {
        self.all.iter()
    }
}

pub fn ksm_targets(cluster: &Cluster, answered: bool) -> Targets {
    let mut ksm: Vec<(String, Vec<i64>, usize)> = Vec::new();
    for (r, off) in cluster.ksm_offsets.iter().enumerate() {
        let mut gaps: Vec<(i64, i64)> = Vec::new();
        if answered {
            gaps.extend(&cluster.ksm_gaps);
            gaps.extend(
                cluster
                    .ksm_target_gaps
                    .iter()
                    .filter(|(target, _, _)| *target == r)
                    .map(|(_, a, b)| (*a, *b)),
            );
        }
        let from = cluster.ksm_replica_from.get(r).copied().unwrap_or(i64::MIN);
        let mut times = cluster.scrape_times(*off, &gaps);
        times.retain(|t| *t >= from);
        let mut edges = cluster.ksm_restarts.clone();
        edges.sort_unstable();
        let mut from = i64::MIN;
        for (i, to) in edges.iter().copied().chain([i64::MAX]).enumerate() {
            let part: Vec<i64> = times
                .iter()
                .copied()
                .filter(|t| (from..to).contains(t))
                .collect();
            if !part.is_empty() {
                ksm.push((ksm_instance(r, i), part, r));
            }
            from = to;
        }
    }
    Targets {
        all: ksm,
        cluster_sharded: cluster.ksm_sharded,
    }
}

/// `up` of kube-state-metrics' targets, as Prometheus writes it at every scrape it attempts
/// (1 answered, 0 failed; Prometheus documentation, "Jobs and instances"): the store's own
/// time for the cluster, which goes on while kube-state-metrics is down.
pub fn ksm_up(cluster: &Cluster) -> Vec<(String, Vec<(i64, u8)>)> {
    ksm_targets(cluster, false)
        .all()
        .map(|(instance, times, r)| {
            let labels = format!("job=\"{KSM_JOB}\",instance=\"{instance}\"");
            let samples = times
                .iter()
                .map(|t| {
                    let down = cluster.ksm_gaps.iter().any(|(a, b)| (*a..*b).contains(t))
                        || cluster
                            .ksm_target_gaps
                            .iter()
                            .any(|(target, a, b)| target == r && (*a..*b).contains(t));
                    (*t, u8::from(!down))
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

/// Write every family. Samples of one series are in time order; timestamps are in seconds.
pub fn write(cluster: &Cluster, out: &mut impl Write) -> io::Result<()> {
    // Per replica and pod (one more after each restart), its instance and scrape times.
    let ksm = ksm_targets(cluster, true);
    let cadvisor = cluster.scrape_times(cluster.cadvisor_offset, &[]);

    // kube_namespace_status_phase
    writeln!(out, "# TYPE kube_namespace_status_phase gauge")?;
    for ns in &cluster.namespaces {
        for phase in ["Active", "Terminating"] {
            for (instance, times) in ksm.of(cluster, &ns.name) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",phase=\"{phase}\"",
                    ns.name
                );
                for &t in times
                    .iter()
                    .filter(|t| (ns.created..ns.deleted).contains(*t))
                {
                    let v = u8::from(phase == "Active");
                    writeln!(out, "kube_namespace_status_phase{{{labels}}} {v} {t}")?;
                }
            }
        }
    }
    if let Some((name, every)) = &cluster.second_exporter
        && let Some(ns) = cluster.namespaces.iter().find(|n| &n.name == name)
    {
        let labels = format!(
            "job=\"tenant-kube-state-metrics\",instance=\"10.129.0.5:8080\",namespace=\"{name}\",phase=\"Active\""
        );
        let mut t = cluster.data_start.max(ns.created);
        while t < cluster.data_end.min(ns.deleted) {
            writeln!(out, "kube_namespace_status_phase{{{labels}}} 1 {t}")?;
            t += every.max(&1);
        }
    }

    // kube_pod_status_phase
    writeln!(out, "# TYPE kube_pod_status_phase gauge")?;
    for ns in &cluster.namespaces {
        for pod in &ns.pods {
            for phase in Phase::ALL {
                for (instance, times) in ksm.of(cluster, &pod.uid) {
                    let labels = format!(
                        "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",phase=\"{}\"",
                        ns.name,
                        pod.name,
                        pod.uid,
                        phase.as_str()
                    );
                    for &t in times
                        .iter()
                        .filter(|t| (pod.created..pod.deleted).contains(*t))
                    {
                        let v = u8::from(pod.phase_at(t) == phase);
                        writeln!(out, "kube_pod_status_phase{{{labels}}} {v} {t}")?;
                    }
                }
            }
        }
    }

    // kube_pod_container_resource_requests
    writeln!(out, "# TYPE kube_pod_container_resource_requests gauge")?;
    for ns in &cluster.namespaces {
        for pod in &ns.pods {
            for c in &pod.containers {
                // kube-state-metrics writes the requests a container sets, nothing for one it
                // does not (internal/store/pod.go iterates `Resources.Requests`).
                let mut resources = Vec::new();
                if c.cpu_request > 0.0 || c.resize.is_some() {
                    resources.push(("cpu", "core", c.cpu_request));
                }
                if c.gpu_request > 0.0 {
                    resources.push(("nvidia_com_gpu", "integer", c.gpu_request));
                }
                if c.memory_request > 0.0 {
                    resources.push(("memory", "byte", c.memory_request));
                }
                for e in &c.extended {
                    resources.push((e.resource.as_str(), "integer", e.count));
                }
                for (resource, unit, value) in resources {
                    for (instance, times) in ksm.of(cluster, &pod.uid) {
                        let labels = format!(
                            "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{}\",node=\"{}\",resource=\"{resource}\",unit=\"{unit}\"",
                            ns.name, pod.name, pod.uid, c.name, pod.node
                        );
                        for &t in times
                            .iter()
                            .filter(|t| (pod.created..pod.deleted).contains(*t))
                        {
                            // The spec: an in-place resize shows from the moment it is asked.
                            let value = if resource == "cpu" {
                                c.spec_cpu(t)
                            } else {
                                value
                            };
                            writeln!(
                                out,
                                "kube_pod_container_resource_requests{{{labels}}} {value} {t}"
                            )?;
                        }
                    }
                }
            }
        }
    }

    write_init_containers(cluster, &ksm, out)?;
    if cluster.scheduler.is_some() {
        write_qos_class(cluster, &ksm, out)?;
        write_scheduler(cluster, out)?;
    }

    // container_cpu_usage_seconds_total: containers, the pause container ("POD") and the
    // pod-level cgroup (container=""), only while the pod runs.
    writeln!(out, "# TYPE container_cpu_usage_seconds counter")?;
    for ns in &cluster.namespaces {
        for pod in &ns.pods {
            let running = pod.running();
            let is_running = |t: i64| running.iter().any(|(a, b)| (*a..*b).contains(&t));
            let base = format!(
                "job=\"kubelet\",metrics_path=\"/metrics/cadvisor\",instance=\"{}\",namespace=\"{}\",pod=\"{}\"",
                pod.node, ns.name, pod.name
            );
            let counter = |rate: f64, restarts: &[i64], t: i64| -> f64 {
                // Usage since the latest (re)start, counting only running time.
                let since = restarts.iter().copied().filter(|r| *r <= t).max();
                running
                    .iter()
                    .map(|(a, b)| {
                        let from = since.map_or(*a, |s| s.max(*a));
                        let to = (*b).min(t);
                        (to - from).max(0) as f64
                    })
                    .sum::<f64>()
                    * rate
            };
            for c in &pod.containers {
                let labels = format!(
                    "{base},container=\"{}\",id=\"/kubepods/pod{}/{}\",image=\"registry.example/{}:1\"",
                    c.name, pod.uid, c.name, c.name
                );
                for &t in cadvisor.iter().filter(|t| is_running(**t)) {
                    let v = counter(c.cpu_rate, &c.restarts, t);
                    writeln!(out, "container_cpu_usage_seconds_total{{{labels}}} {v} {t}")?;
                }
            }
            let pause = format!(
                "{base},container=\"POD\",id=\"/kubepods/pod{}/pause\",image=\"registry.example/pause:3.9\"",
                pod.uid
            );
            let pod_level = format!(
                "{base},container=\"\",id=\"/kubepods/pod{}\",image=\"\"",
                pod.uid
            );
            for &t in cadvisor.iter().filter(|t| is_running(**t)) {
                let pause_v = counter(0.001, &[], t);
                let total: f64 = pod
                    .containers
                    .iter()
                    .map(|c| counter(c.cpu_rate, &[], t))
                    .sum::<f64>()
                    + pause_v;
                writeln!(
                    out,
                    "container_cpu_usage_seconds_total{{{pause}}} {pause_v} {t}"
                )?;
                writeln!(
                    out,
                    "container_cpu_usage_seconds_total{{{pod_level}}} {total} {t}"
                )?;
            }
        }
    }

    // PVCs
    writeln!(out, "# TYPE kube_persistentvolumeclaim_info gauge")?;
    for ns in &cluster.namespaces {
        for pvc in &ns.pvcs {
            for (instance, times) in ksm.of(cluster, &format!("{}/{}", ns.name, pvc.name)) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",persistentvolumeclaim=\"{}\",storageclass=\"{}\",volumename=\"pvc-{}-{}\"",
                    ns.name, pvc.name, pvc.storage_class, ns.name, pvc.name
                );
                for &t in times
                    .iter()
                    .filter(|t| (pvc.created..pvc.deleted).contains(*t))
                {
                    writeln!(out, "kube_persistentvolumeclaim_info{{{labels}}} 1 {t}")?;
                }
            }
        }
    }
    writeln!(
        out,
        "# TYPE kube_persistentvolumeclaim_resource_requests_storage_bytes gauge"
    )?;
    for ns in &cluster.namespaces {
        for pvc in &ns.pvcs {
            for (instance, times) in ksm.of(cluster, &format!("{}/{}", ns.name, pvc.name)) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",persistentvolumeclaim=\"{}\"",
                    ns.name, pvc.name
                );
                for &t in times
                    .iter()
                    .filter(|t| (pvc.created..pvc.deleted).contains(*t))
                {
                    let v = pvc.size_at(t);
                    writeln!(
                        out,
                        "kube_persistentvolumeclaim_resource_requests_storage_bytes{{{labels}}} {v} {t}"
                    )?;
                }
            }
        }
    }
    writeln!(out, "# TYPE kube_persistentvolumeclaim_access_mode gauge")?;
    for ns in &cluster.namespaces {
        for pvc in &ns.pvcs {
            for mode in &pvc.access_modes {
                for (instance, times) in ksm.of(cluster, &format!("{}/{}", ns.name, pvc.name)) {
                    let labels = format!(
                        "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",persistentvolumeclaim=\"{}\",access_mode=\"{mode}\"",
                        ns.name, pvc.name
                    );
                    for &t in times
                        .iter()
                        .filter(|t| (pvc.created..pvc.deleted).contains(*t))
                    {
                        writeln!(
                            out,
                            "kube_persistentvolumeclaim_access_mode{{{labels}}} 1 {t}"
                        )?;
                    }
                }
            }
        }
    }
    // kube_pod_resourceclaim_info (kube-state-metrics v2.20, EXPERIMENTAL): one series per
    // pod.spec.resourceClaims entry, `claim_name` the pod-local name and `resourceclaim_name`
    // the resolved ResourceClaim (docs/metrics/workload/pod-metrics.md). Written only when
    // some pod has a claim, so that other datasets are unchanged.
    let claims: Vec<(&str, &super::model::Pod)> = cluster
        .namespaces
        .iter()
        .flat_map(|ns| ns.pods.iter().map(move |p| (ns.name.as_str(), p)))
        .filter(|(_, p)| !p.claims.is_empty())
        .collect();
    if !claims.is_empty() {
        writeln!(out, "# TYPE kube_pod_resourceclaim_info gauge")?;
        for (ns, pod) in claims {
            for (claim, resolved) in &pod.claims {
                for (instance, times) in ksm.of(cluster, &pod.uid) {
                    let labels = format!(
                        "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{ns}\",pod=\"{}\",uid=\"{}\",claim_name=\"{claim}\",resourceclaim_name=\"{resolved}\",resourceclaim_template_name=\"gpu-template\"",
                        pod.name, pod.uid
                    );
                    for &t in times
                        .iter()
                        .filter(|t| (pod.created..pod.deleted).contains(*t))
                    {
                        writeln!(out, "kube_pod_resourceclaim_info{{{labels}}} 1 {t}")?;
                    }
                }
            }
        }
    }
    if let Some(fleet) = &cluster.fleet {
        // kube_pod_info (STABLE: `namespace`, `pod`, `uid`, `node`, …) and kube_node_labels
        // with GFD's `nvidia.com/gpu.product` allowlisted (`label_nvidia_com_gpu_product`):
        // docs/metrics/workload/pod-metrics.md, docs/metrics/cluster/node-metrics.md.
        writeln!(out, "# TYPE kube_pod_info gauge")?;
        for ns in &cluster.namespaces {
            for pod in &ns.pods {
                for (instance, times) in ksm.of(cluster, &pod.uid) {
                    let labels = format!(
                        "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",node=\"{}\",created_by_kind=\"ReplicaSet\"",
                        ns.name, pod.name, pod.uid, pod.node
                    );
                    for &t in times
                        .iter()
                        .filter(|t| (pod.created..pod.deleted).contains(*t))
                    {
                        writeln!(out, "kube_pod_info{{{labels}}} 1 {t}")?;
                    }
                }
            }
        }
        writeln!(out, "# TYPE kube_node_labels gauge")?;
        for (node, product) in &fleet.products {
            for (instance, times) in ksm.of(cluster, node) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",node=\"{node}\",label_nvidia_com_gpu_product=\"{}\"",
                    product.replace(' ', "-")
                );
                for t in times {
                    writeln!(out, "kube_node_labels{{{labels}}} 1 {t}")?;
                }
            }
        }
        let mut up = ksm_up(cluster);
        up.extend(scheduler_up(cluster));
        fleet.write(
            cluster.data_start,
            cluster.data_end,
            &cluster.outages,
            &up,
            out,
        )?;
    } else {
        writeln!(out, "# TYPE up gauge")?;
        for (labels, samples) in ksm_up(cluster).into_iter().chain(scheduler_up(cluster)) {
            for (t, v) in samples {
                writeln!(out, "up{{{labels}}} {v} {t}")?;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()
}

/// Rewrite the sample lines of `text` (as [`write`] writes them): `external` labels first on
/// every series, and without `honor_labels`, kube-state-metrics' `namespace`, `pod` and
/// `container` as `exported_*` beside the scrape target's own (the pod of kube-state-metrics in
/// `monitoring`), as Prometheus stores such a scrape (the `Options::honor_labels` sources).
pub fn relabel(
    text: &[u8],
    external: &[(String, String)],
    honor_labels: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let prefix: String = external
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\","))
        .collect();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = std::str::from_utf8(line).map_err(io::Error::other)?;
        let (Some(open), Some(close)) = (line.find('{'), line.find('}')) else {
            writeln!(out, "{line}")?;
            continue;
        };
        let (name, labels, rest) = (&line[..open], &line[open + 1..close], &line[close + 1..]);
        let mut labels = labels.to_string();
        if !honor_labels && name.starts_with("kube_") {
            for key in ["namespace", "pod", "container"] {
                labels = labels
                    .split(',')
                    .map(|pair| match pair.strip_prefix(&format!("{key}=")) {
                        Some(value) => format!("exported_{key}={value}"),
                        None => pair.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
            }
            labels.push_str(
                ",namespace=\"monitoring\",pod=\"kube-state-metrics-7d9f8b6c5-x2x4q\",\
                 container=\"kube-state-metrics\"",
            );
        }
        writeln!(out, "{name}{{{prefix}{labels}}}{rest}")?;
    }
    Ok(())
}

/// Several files written by [`write`] as one: each family's header once, followed by every
/// file's samples of it, in the order families first appear; one `# EOF`.
pub fn merge(texts: &[Vec<u8>], out: &mut impl Write) -> io::Result<()> {
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, Vec<&[u8]>> = Default::default();
    for text in texts {
        let mut current = String::new();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if line.starts_with(b"# EOF") {
                continue;
            }
            if line.starts_with(b"# TYPE ") {
                current = String::from_utf8_lossy(line).into_owned();
                if !families.contains_key(&current) {
                    order.push(current.clone());
                    families.insert(current.clone(), Vec::new());
                }
                continue;
            }
            families.entry(current.clone()).or_default().push(line);
        }
    }
    for header in &order {
        writeln!(out, "{header}")?;
        for line in &families[header] {
            out.write_all(line)?;
            out.write_all(b"\n")?;
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()
}

/// `text` without the families named in `omit` (their `# TYPE` line and samples).
/// The samples of `text` before `end` (Unix seconds), as a store that lags holds them: a
/// remote-write pipeline delivers samples in time order, so what it has not delivered yet is
/// everything after some time.
pub fn until(text: &[u8], end: i64) -> Vec<u8> {
    retain(text, |_, t| t.is_none_or(|t| t < end))
}

/// [`until`] for the series of namespaces other than `kept`: a remote-write shard that lags
/// holds back some series while the others (series without a namespace, such as `up`, and
/// the namespaces `kept`) reach the store.
pub fn until_outside(text: &[u8], end: i64, kept: &[&str]) -> Vec<u8> {
    retain(text, |l, t| {
        let namespace = l.split_once("namespace=\"").and_then(|(before, rest)| {
            // `namespace`, not `exported_namespace` or `pod_namespace`.
            let whole = before.ends_with('{') || before.ends_with(',');
            whole.then(|| rest.split('"').next().unwrap_or_default())
        });
        namespace.is_none_or(|n| kept.contains(&n)) || t.is_none_or(|t| t < end)
    })
}

/// The comment lines of `text`, and the sample lines `keep` keeps, given the line and its
/// timestamp.
fn retain(text: &[u8], keep: impl Fn(&str, Option<i64>) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let l = String::from_utf8_lossy(line);
        let time = l.rsplit_once(' ').and_then(|(_, t)| t.parse::<i64>().ok());
        if l.starts_with('#') || keep(&l, time) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out
}

pub fn without(text: &[u8], omit: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let s = String::from_utf8_lossy(line);
        let name = s
            .strip_prefix("# TYPE ")
            .unwrap_or(&s)
            .split(['{', ' '])
            .next()
            .unwrap_or_default();
        if !omit.iter().any(|o| o == name) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out
}

/// The init containers' and pod overhead's families, as kube-state-metrics v2 writes them
/// (`docs/metrics/workload/pod-metrics.md` and `internal/store/pod.go`, `pod_test.go`):
/// `kube_pod_init_container_resource_requests` with the labels of the app containers'
/// requests; `kube_pod_init_container_info` (value 1) with `restart_policy="Always"` for a
/// native sidecar, and an empty one (absent in Prometheus) for an ordinary init container,
/// from kube-state-metrics 2.11 on, no such label before; `kube_pod_init_container_status_running`
/// (1 while the container runs: a sidecar while the pod runs); `kube_pod_overhead_cpu_cores`
/// with `namespace`, `pod`, `uid`. Written only when some pod has init containers or overhead,
/// so that other clusters' data stays as it was.
fn write_init_containers(cluster: &Cluster, ksm: &Targets, out: &mut impl Write) -> io::Result<()> {
    let pods = || {
        cluster
            .namespaces
            .iter()
            .flat_map(|ns| ns.pods.iter().map(move |p| (ns, p)))
    };
    if !pods().any(|(_, p)| !p.init_containers.is_empty() || p.overhead_cpu > 0.0) {
        return Ok(());
    }
    let exists = |p: &super::model::Pod, t: i64| (p.created..p.deleted).contains(&t);
    writeln!(
        out,
        "# TYPE kube_pod_init_container_resource_requests gauge"
    )?;
    for (ns, pod) in pods() {
        for ic in &pod.init_containers {
            let c = &ic.container;
            let mut resources = vec![("cpu", "core", c.cpu_request)];
            if c.gpu_request > 0.0 {
                resources.push(("nvidia_com_gpu", "integer", c.gpu_request));
            }
            if c.memory_request > 0.0 {
                resources.push(("memory", "byte", c.memory_request));
            }
            for (resource, unit, value) in resources {
                for (instance, times) in ksm.of(cluster, &pod.uid) {
                    let labels = format!(
                        "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{}\",node=\"{}\",resource=\"{resource}\",unit=\"{unit}\"",
                        ns.name, pod.name, pod.uid, c.name, pod.node
                    );
                    for &t in times.iter().filter(|t| exists(pod, **t)) {
                        writeln!(
                            out,
                            "kube_pod_init_container_resource_requests{{{labels}}} {value} {t}"
                        )?;
                    }
                }
            }
        }
    }
    writeln!(out, "# TYPE kube_pod_init_container_info gauge")?;
    for (ns, pod) in pods() {
        for ic in &pod.init_containers {
            let c = &ic.container;
            let policy = match (cluster.ksm_restart_policy, ic.sidecar) {
                (true, true) => ",restart_policy=\"Always\"",
                _ => "",
            };
            for (instance, times) in ksm.of(cluster, &pod.uid) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{}\",image=\"registry.example/{}:1\",image_spec=\"registry.example/{}:1\",image_id=\"\",container_id=\"\"{policy}",
                    ns.name, pod.name, pod.uid, c.name, c.name, c.name
                );
                for &t in times.iter().filter(|t| exists(pod, **t)) {
                    writeln!(out, "kube_pod_init_container_info{{{labels}}} 1 {t}")?;
                }
            }
        }
    }
    writeln!(out, "# TYPE kube_pod_init_container_status_running gauge")?;
    for (ns, pod) in pods() {
        let running = pod.running();
        for ic in &pod.init_containers {
            for (instance, times) in ksm.of(cluster, &pod.uid) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{}\"",
                    ns.name, pod.name, pod.uid, ic.container.name
                );
                for &t in times.iter().filter(|t| exists(pod, **t)) {
                    let on = ic.sidecar && running.iter().any(|(a, b)| (*a..*b).contains(&t));
                    writeln!(
                        out,
                        "kube_pod_init_container_status_running{{{labels}}} {} {t}",
                        u8::from(on)
                    )?;
                }
            }
        }
    }
    for (family, of) in [
        (
            "kube_pod_overhead_cpu_cores",
            (|p: &super::model::Pod| p.overhead_cpu) as fn(&_) -> f64,
        ),
        ("kube_pod_overhead_memory_bytes", |p| p.overhead_memory),
    ] {
        writeln!(out, "# TYPE {family} gauge")?;
        for (ns, pod) in pods().filter(|(_, p)| of(p) > 0.0) {
            for (instance, times) in ksm.of(cluster, &pod.uid) {
                let labels = format!(
                    "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\"",
                    ns.name, pod.name, pod.uid
                );
                for &t in times.iter().filter(|t| exists(pod, **t)) {
                    writeln!(out, "{family}{{{labels}}} {} {t}", of(pod))?;
                }
            }
        }
    }
    Ok(())
}

/// kube-state-metrics' `kube_pod_status_qos_class`: three series per pod (`qos_class`
/// `BestEffort`, `Burstable`, `Guaranteed`), 1 for the pod's class and 0 for the others
/// (internal/store/pod.go, `createPodStatusQosClassFamilyGenerator`).
fn write_qos_class(cluster: &Cluster, ksm: &Targets, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# TYPE kube_pod_status_qos_class gauge")?;
    for ns in &cluster.namespaces {
        for pod in &ns.pods {
            let class = pod.qos_class();
            for qos in ["BestEffort", "Burstable", "Guaranteed"] {
                for (instance, times) in ksm.of(cluster, &pod.uid) {
                    let labels = format!(
                        "job=\"{KSM_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",uid=\"{}\",qos_class=\"{qos}\"",
                        ns.name, pod.name, pod.uid
                    );
                    let v = u8::from(qos == class);
                    for &t in times
                        .iter()
                        .filter(|t| (pod.created..pod.deleted).contains(*t))
                    {
                        writeln!(out, "kube_pod_status_qos_class{{{labels}}} {v} {t}")?;
                    }
                }
            }
        }
    }
    Ok(())
}

const SCHEDULER_JOB: &str = "kube-scheduler";

/// A scheduler replica's scrape target: a static pod on a control-plane node, on the host's
/// network, so a restarted replica keeps its address (and its series their `instance`).
fn scheduler_instance(replica: usize) -> String {
    format!("10.0.0.{}:10259", 11 + replica)
}

/// Per scheduler replica, its instance and the times its scrape was attempted, and whether
/// it answered (a restart: `up` 0, no series).
fn scheduler_targets(cluster: &Cluster) -> Vec<(String, Vec<(i64, bool)>)> {
    let Some(s) = &cluster.scheduler else {
        return Vec::new();
    };
    s.offsets
        .iter()
        .enumerate()
        .map(|(r, off)| {
            let times = cluster
                .scrape_times(*off, &[])
                .into_iter()
                .map(|t| {
                    let down = s
                        .gaps
                        .iter()
                        .any(|(g, a, b)| *g == r && (*a..*b).contains(&t));
                    (t, !down)
                })
                .collect();
            (scheduler_instance(r), times)
        })
        .collect()
}

/// `up` of the scheduler's targets.
fn scheduler_up(cluster: &Cluster) -> Vec<(String, Vec<(i64, u8)>)> {
    scheduler_targets(cluster)
        .into_iter()
        .map(|(instance, times)| {
            let labels = format!("job=\"{SCHEDULER_JOB}\",instance=\"{instance}\"");
            let samples = times.into_iter().map(|(t, ok)| (t, u8::from(ok))).collect();
            (labels, samples)
        })
        .collect()
}

/// kube-scheduler's `kube_pod_resource_request` (`/metrics/resources`, STABLE), as
/// pkg/scheduler/metrics/resources/resources.go writes it: every pod of the replica's cache
/// but terminal ones (Succeeded, Failed: `podRequestsAndLimitsByLifecycle`), labels
/// `namespace`, `pod`, `node` (`spec.nodeName`, empty until the pod is bound), `scheduler`
/// (`spec.schedulerName`), `priority`, `resource` (Kubernetes' own name: `nvidia.com/gpu`)
/// and `unit` (`cores`, `bytes`, empty for an extended resource); the value `PodRequests`
/// (pod-level requests, sidecars, overhead, resizes as [`super::model::Pod::requested_cpu_at`]);
/// zero quantities left out (`recordMetricWithUnit`). Each replica writes every pod.
fn write_scheduler(cluster: &Cluster, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# TYPE kube_pod_resource_request gauge")?;
    let targets = scheduler_targets(cluster);
    for ns in &cluster.namespaces {
        for pod in &ns.pods {
            let bound = pod.bound_at();
            let extended = pod.extended_requests();
            for (instance, times) in &targets {
                // Per series (labels), its samples in time order: binding changes `node`.
                let mut series: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
                for &(t, ok) in times {
                    if !ok || !(pod.created..pod.deleted).contains(&t) || pod.terminal_at(t) {
                        continue;
                    }
                    let node = if t >= bound { pod.node.as_str() } else { "" };
                    let mut values = vec![
                        ("cpu".to_string(), "cores", pod.requested_cpu_at(t)),
                        ("memory".to_string(), "bytes", pod.requested_memory()),
                    ];
                    for (r, count) in &extended {
                        values.push((super::model::resource_name(r), "", *count));
                    }
                    for (resource, unit, v) in values {
                        if v == 0.0 {
                            continue;
                        }
                        let labels = format!(
                            "job=\"{SCHEDULER_JOB}\",instance=\"{instance}\",namespace=\"{}\",pod=\"{}\",node=\"{node}\",scheduler=\"default-scheduler\",priority=\"0\",resource=\"{resource}\",unit=\"{unit}\"",
                            ns.name, pod.name
                        );
                        match series.iter_mut().find(|(l, _)| *l == labels) {
                            Some((_, samples)) => samples.push((t, v)),
                            None => series.push((labels, vec![(t, v)])),
                        }
                    }
                }
                for (labels, samples) in series {
                    for (t, v) in samples {
                        writeln!(out, "kube_pod_resource_request{{{labels}}} {v} {t}")?;
                    }
                }
            }
        }
    }
    Ok(())
}
