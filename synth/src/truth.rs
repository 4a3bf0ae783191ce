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
    /// What the kube-state-metrics source can see of `cpu_request`: the containers' specs,
    /// without pod-level requests (KEP-2837) and with an in-place resize counted from the
    /// moment the spec changes (KEP-1287). `cpu_request` is `PodRequests`, what Kubernetes
    /// reserves and kube-scheduler publishes; the two differ only for such pods.
    #[serde(default)]
    pub cpu_request_spec: f64,
    /// The same for memory (`ram`): the containers' specs, pod-level requests unseen.
    #[serde(default)]
    pub ram_spec: f64,
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
    /// The part of `tol_cpu_usage` that moves usage between this hour and its neighbour (a
    /// hole across the hour's edge ends a counter's climb early): it cancels when consecutive
    /// hours are summed (a retuned interval's shift does not, and is not in it).
    #[serde(default)]
    pub edge_cpu_usage: f64,
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
/// ([`super::model::Pod::extended_requests`]), each weighted.
fn pod_gpus(pod: &super::model::Pod) -> f64 {
    let weight = |r: &str| -> f64 {
        if r == super::model::GPU {
            return 1.0;
        }
        pod.containers
            .iter()
            .chain(pod.init_containers.iter().map(|i| &i.container))
            .flat_map(|c| &c.extended)
            .find(|e| e.resource == r)
            .map_or(0.0, |e| e.weight)
    };
    pod.extended_requests()
        .iter()
        .map(|(r, count)| count * weight(r))
        .sum()
}

/// The integral over `hour` of `f` while the pod runs, in hours, cut at the in-place resizes
/// (where `f` may change).
fn running_integral(pod: &super::model::Pod, hour: (i64, i64), f: impl Fn(i64) -> f64) -> f64 {
    let mut cuts: Vec<i64> = pod
        .containers
        .iter()
        .flat_map(super::model::Container::resize_events)
        .collect();
    cuts.sort_unstable();
    let mut total = 0.0;
    for (a, b) in pod.running() {
        let (a, b) = (a.max(hour.0), b.min(hour.1));
        let mut from = a;
        for to in cuts
            .iter()
            .copied()
            .filter(|t| (a + 1..b).contains(t))
            .chain([b])
        {
            if to > from {
                total += f(from) * (to - from) as f64;
            }
            from = to;
        }
    }
    total / 3600.0
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
        // The holes touching the hour: kube-state-metrics' own and Prometheus outages.
        let interval = cluster.max_interval();
        let holes: Vec<(i64, i64)> = cluster
            .ksm_gaps
            .iter()
            .chain(&cluster.outages)
            .filter(|g| g.0 < e + interval && s - interval < g.1)
            .copied()
            .collect();
        // Usage counters across a hole at the hour's start or end: the last sample before the
        // edge ends the hour's climb, so the usage from it to the edge moves into the next
        // hour (the hours still add up). That sample lies at most one interval before the
        // hole, which covers the edge or ends within an interval before it. cAdvisor misses
        // outages only, not kube-state-metrics' own gaps.
        let at_edge = |t: i64| -> i64 {
            cluster
                .outages
                .iter()
                .filter(|g| g.0 < t && t - interval < g.1)
                .map(|g| t - g.0 + interval)
                .sum()
        };
        let edge_hole = at_edge(s) + at_edge(e);
        // A changed interval moves the scrape times, so a counter's last sample in the hour
        // (which ends the hour's climb) moves by up to one interval.
        let retuned = cluster
            .interval_changes
            .iter()
            .any(|(t, _)| (s - interval..e + interval).contains(t));
        let edge_slack = (edge_hole + if retuned { interval } else { 0 }) as f64 / 3600.0;
        // What an object that changed at some of `events` may be off by, in hours: one scrape
        // interval when one of them is in or next to the hour (a start or stop is known to
        // within one), plus the length of each hole one of them falls in or beside (bridged
        // from both sides, what happened in it is unknown). Zero for an object that did not
        // change: a hole elsewhere in the hour is bridged exactly for it.
        let slack_of = |events: &[i64]| -> f64 {
            if !events
                .iter()
                .any(|t| (s - interval..e + interval).contains(t))
            {
                return 0.0;
            }
            let hole: i64 = holes
                .iter()
                .filter(|g| {
                    events
                        .iter()
                        .any(|t| (g.0 - interval..=g.1 + interval).contains(t))
                })
                .map(|g| g.1 - g.0)
                .sum();
            (interval + hole) as f64 / 3600.0
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
                let pod_slack = slack_of(&pod.events());
                // The largest request the pod has in or next to the hour, by either view.
                let effective = pod
                    .events()
                    .into_iter()
                    .chain([s, e - 1])
                    .filter(|t| (s - interval..e + interval).contains(t))
                    .map(|t| pod.requested_cpu_at(t).max(pod.spec_cpu_at(t)))
                    .fold(0.0, f64::max);
                row.cpu_request += running_integral(pod, hour, |t| pod.requested_cpu_at(t));
                row.cpu_request_spec += running_integral(pod, hour, |t| pod.spec_cpu_at(t));
                let effective_gpus = pod_gpus(pod);
                row.gpu += effective_gpus * run_secs / 3600.0;
                if let Some(model) = cluster.fleet.as_ref().and_then(|f| f.product(&pod.node))
                    && effective_gpus > 0.0
                {
                    *row.gpu_models.entry(model.to_string()).or_default() +=
                        effective_gpus * run_secs / 3600.0;
                }
                let memory = pod.requested_memory() / GIB;
                let memory_spec = pod.effective(|c| c.memory_request, pod.overhead_memory) / GIB;
                row.ram += memory * run_secs / 3600.0;
                row.ram_spec += memory_spec * run_secs / 3600.0;
                row.ram_containers +=
                    pod.containers.iter().map(|c| c.memory_request).sum::<f64>() / GIB * run_secs
                        / 3600.0;
                row.tol_cpu_request += effective * pod_slack;
                row.tol_gpu += effective_gpus.max(containers_gpus(pod)) * pod_slack;
                row.tol_ram += memory.max(memory_spec) * pod_slack;
                for c in &pod.containers {
                    let req = running_integral(pod, hour, |t| c.spec_cpu(t));
                    let used = c.cpu_rate * run_secs / 3600.0;
                    row.cpu_request_containers += req;
                    row.cpu_usage += used;
                    row.cpu_max += req.max(used);
                    row.gpu_containers += gpus_of(c) * run_secs / 3600.0;
                    // A counter reset loses the unobservable usage between the last sample
                    // before it and the restart (up to one interval), and the hour falls back to
                    // `increase`, whose extrapolation may be off by up to one more.
                    // A counter born with its pod in the hour's last interval has one sample
                    // there and no value before: its first value (up to one interval of usage)
                    // is not counted (the born rule counts it only when it is at most half the
                    // hour's last; README, Known limits), so a start costs usage up to two.
                    let restart_slack = slack_of(&c.restarts) * 2.0;
                    let slack = (pod_slack * 2.0).max(restart_slack);
                    row.tol_cpu_usage += c.cpu_rate * slack;
                    row.tol_cpu_max += c.cpu_request.max(c.cpu_rate) * slack;
                    if run_secs > 0.0 {
                        row.tol_cpu_usage += c.cpu_rate * edge_slack;
                        row.tol_cpu_max += c.cpu_rate * edge_slack;
                        // A retuned interval shifts the scrapes' phase for good: that part
                        // does not cancel in a sum of hours; a hole's does.
                        row.edge_cpu_usage += c.cpu_rate * edge_hole as f64 / 3600.0;
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
                let max = pvc.sizes.iter().map(|(_, b)| *b).fold(0.0, f64::max);
                row.tol_storage += max / GIB * slack_of(&pvc.events());
            }
            rows.push(row);
        }
        s = e;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Options, build};

    const H: i64 = 3600;

    fn rows(opts: &Options) -> Vec<TruthRow> {
        let c = build(opts);
        compute(&c, c.data_start + H, c.data_end)
    }

    fn row<'a>(rows: &'a [TruthRow], hour: i64, ns: &str) -> &'a TruthRow {
        rows.iter()
            .find(|r| r.hour == hour && r.namespace == ns)
            .unwrap_or_else(|| panic!("no {ns} in {hour}"))
    }

    /// The tolerances are no looser than the rule they check: nothing for an object that did
    /// not change, also in an hour with a hole; one interval for one that changed away from
    /// the hole; the hole's length more only for one that changed in or beside it.
    #[test]
    fn tolerances_are_pinned() {
        let opts = Options {
            hours: 5,
            random_namespaces: 0,
            outages: vec![(2.0 + 20.0 / 60.0, 2.0 + 32.0 / 60.0)],
            ..Options::default()
        };
        let t0 = opts.start;
        let rows = rows(&opts);
        let outage_hour = t0 + 2 * H;
        // team-steady: one pod all along, no change: exact, hole or not.
        for hour in [t0 + H, outage_hour, t0 + 3 * H] {
            let r = row(&rows, hour, "team-steady");
            assert_eq!(
                (r.tol_cpu_request, r.tol_cpu_usage, r.tol_storage, r.tol_ram),
                (0.0, 0.0, 0.0, 0.0),
                "{hour}: {r:?}"
            );
        }
        // team-resized: its pod of 2.5 cores replaced by one of 0.75 ten minutes before the
        // outage (nothing in it): one interval of each pod's request, the hole not added.
        let r = row(&rows, outage_hour, "team-resized");
        let interval = 30.0 / 3600.0;
        assert!(
            (r.tol_cpu_request - (2.5 + 0.75) * interval).abs() < 1e-12,
            "the hole widened the tolerance of a change 10 minutes before it: {r:?}"
        );
        // team-outage: objects changing inside the outage carry its 12 minutes.
        let r = row(&rows, outage_hour, "team-outage");
        assert!(r.tol_cpu_request >= 12.0 / 60.0 * 0.5, "{r:?}");
    }

    /// A hole across the hour's end moves a counter's usage from the edge back to the last
    /// sample before the hole into the next hour: both hours allow exactly that (plus an
    /// interval), and it is the part that cancels in a sum of hours.
    #[test]
    fn the_edge_slack_is_the_holes_part_before_the_edge() {
        let opts = Options {
            hours: 5,
            random_namespaces: 0,
            outages: vec![(2.0 + 54.0 / 60.0, 3.0 + 6.0 / 60.0)],
            ..Options::default()
        };
        let rows = rows(&opts);
        let steady = |hour: i64| row(&rows, opts.start + hour * H, "team-steady").clone();
        let (before, after) = (steady(2), steady(3));
        let rate: f64 = build(&opts)
            .namespaces
            .iter()
            .find(|n| n.name == "team-steady")
            .unwrap()
            .pods
            .iter()
            .flat_map(|p| &p.containers)
            .map(|c| c.cpu_rate)
            .sum();
        let want = rate * (6.0 * 60.0 + 30.0) / 3600.0;
        for r in [&before, &after] {
            assert!((r.edge_cpu_usage - want).abs() < 1e-12, "{r:?} vs {want}");
            assert!((r.tol_cpu_usage - want).abs() < 1e-12, "{r:?}");
            assert_eq!(r.tol_cpu_request, 0.0);
        }
    }

    /// `PodRequests` against the containers' specs, worked by hand: pod-level requests
    /// replace the containers' (overhead added), a deferred downsize counts the old request
    /// until it is admitted, an infeasible upsize never counts.
    #[test]
    fn pod_level_requests_and_resizes_follow_pod_requests() {
        let opts = Options {
            random_namespaces: 0,
            pod_resources: true,
            ..Options::default()
        };
        let t0 = opts.start;
        let rows = rows(&opts);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let r = row(&rows, t0 + H, "team-podlevel");
        // pl-only 2 + pl-less 3 + pl-kata 1 + 0.25 + pl-gpu 1; the specs: 0.5 and the overhead.
        assert!(close(r.cpu_request, 7.25), "{r:?}");
        assert!(close(r.cpu_request_spec, 0.75), "{r:?}");
        // Memory: 4 + 6 + 2 GiB + 160 MiB + 8 against pl-less's 0.5 GiB and the overhead.
        assert!(close(r.ram, 20.0 + 160.0 / 1024.0), "{r:?}");
        assert!(close(r.ram_spec, 0.5 + 160.0 / 1024.0), "{r:?}");
        assert!(close(r.gpu, 1.0), "{r:?}");
        // 02:00-03:00: up 2; down 2 until 02:40 then 0.5 (the spec: 0.5 from 02:10);
        // infeasible 1 (the spec 1, its resize at 03:15).
        let r = row(&rows, t0 + 2 * H, "team-resize");
        let down = 2.0 * 40.0 / 60.0 + 0.5 * 20.0 / 60.0;
        let down_spec = 2.0 * 10.0 / 60.0 + 0.5 * 50.0 / 60.0;
        assert!(close(r.cpu_request, 2.0 + down + 1.0), "{r:?}");
        assert!(close(r.cpu_request_spec, 2.0 + down_spec + 1.0), "{r:?}");
        // 03:00-04:00: the infeasible resize: 1 counted, 8 in the spec from 03:15.
        let r = row(&rows, t0 + 3 * H, "team-resize");
        assert!(close(r.cpu_request, 2.0 + 0.5 + 1.0), "{r:?}");
        assert!(
            close(r.cpu_request_spec, 2.0 + 0.5 + 0.25 + 8.0 * 0.75),
            "{r:?}"
        );
        assert!(
            r.tol_cpu_request > 0.0 && r.tol_cpu_request < 8.0 * 31.0 / 3600.0,
            "{r:?}"
        );
    }
}
