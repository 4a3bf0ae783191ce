//! GPU-hours from the devices themselves (`--gpu-source devices`): each dcgm-exporter sample
//! of a device ([`crate::gpu::dcgm`]) stands for the time around it, and that time is billed to the
//! pods the sample names.
//!
//! The rules, per device (a whole GPU or a MIG instance), over the samples of every series of
//! it (several dcgm-exporter replicas, a restarted exporter and the per-pod copies of a shared
//! device are all series of one device):
//! - **Each sample time stands for the time from the midpoint with the one before to the
//!   midpoint with the one after**, clipped to the hour, as kube-state-metrics' samples do
//!   ([`super::timeline`]): replicas' samples interleave and each stands for its share, a
//!   Prometheus outage is bridged from both sides, a retuned interval changes the share. A
//!   device's first and last sample (a node added or removed, MIG reconfigured) stand for half
//!   the device's typical interval outward, unless the store holds nothing newer than the
//!   device's last round (its next samples are not stored yet): then it stands to the hour's
//!   end, as whether the hour may be billed is the store's time's to say. A hole longer than `--max-scrape-gap` inside the
//!   hour refuses the hour, as a hole of kube-state-metrics does: nobody can tell who held the
//!   device in it.
//! - **The pods a sample time names share the device equally** (time-slicing and MPS copy the
//!   series once per pod; one pod with two containers on it is one pod). A sample time naming
//!   nobody is idle: counted for `check`, never billed.
//! - **A MIG instance weighs its profile's compute slices** (`GPU_I_PROFILE="3g.40gb"` as
//!   `nvidia.com/mig-3g.40gb`, C/7 or `--gpu-resource`); a whole GPU weighs 1. While a GPU
//!   has MIG instances, its own whole-GPU series (if any) is not a device that can be held.
//!
//! So a pod that starts or stops between two samples is billed within half an interval of
//! its time, and a sample is never counted twice.

use std::collections::{BTreeMap, BTreeSet};

use crate::gpu::dcgm::{DeviceKey, DeviceSeries, Holder};
use crate::gpu::{GpuModels, GpuWeights, Weight};

/// One hour `[start, end)` (Unix milliseconds) of device samples, integrated.
#[derive(Debug, Default, PartialEq)]
pub struct DeviceHour {
    /// `(namespace, model key)` → GPU-seconds held; the key is `""` without `--gpu-model`.
    pub held: BTreeMap<(String, String), f64>,
    /// Model name → GPU-seconds of devices nobody held.
    pub idle: BTreeMap<String, f64>,
    /// Model name → devices seen in the hour (MIG instances count as their weight).
    pub seen: BTreeMap<String, f64>,
    /// Pods that held a device through a DRA ResourceClaim in the hour.
    pub dra: BTreeSet<Holder>,
    /// MIG profiles without a weight: billed 0, warned about.
    pub unweighted: BTreeSet<String>,
    /// Models of devices held in the hour that `--gpu-model` does not map (only with models).
    pub unmapped: BTreeSet<String>,
}

/// Why an hour of device samples cannot be billed.
#[derive(Debug, Clone, PartialEq)]
pub struct Hole {
    pub device: DeviceKey,
    pub node: String,
    /// The samples around it, Unix milliseconds.
    pub from: i64,
    pub to: i64,
}

/// One device reported by two nodes at once ([`on_two_nodes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TwoNodes {
    pub device: DeviceKey,
    pub nodes: (String, String),
    /// A time (Unix milliseconds) at which both report it.
    pub at: i64,
}

/// A device (UUID, and MIG instance) that two nodes report within one scrape round of each
/// other inside the hour `[start, end)`: a UUID names one GPU, so one of them is wrong, and
/// billing would split the device between their pods as if it were shared. A GPU moved to
/// another node (one node's samples end before the other's begin) is no conflict.
pub fn on_two_nodes(series: &[DeviceSeries], (start, end): (i64, i64)) -> Option<TwoNodes> {
    let mut spans: BTreeMap<&DeviceKey, BTreeMap<&str, (i64, i64)>> = BTreeMap::new();
    for s in series.iter().filter(|s| !s.node.is_empty()) {
        let inside: Vec<i64> = s
            .times
            .iter()
            .copied()
            .filter(|t| (start..end).contains(t))
            .collect();
        let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
            continue;
        };
        let span = spans
            .entry(&s.device)
            .or_default()
            .entry(s.node.as_str())
            .or_insert((first, last));
        span.0 = span.0.min(first);
        span.1 = span.1.max(last);
    }
    for (device, nodes) in spans {
        let nodes: Vec<(&str, (i64, i64))> = nodes.into_iter().collect();
        for (i, (a, (a0, a1))) in nodes.iter().enumerate() {
            for (b, (b0, b1)) in &nodes[i + 1..] {
                if a0 <= b1 && b0 <= a1 {
                    return Some(TwoNodes {
                        device: device.clone(),
                        nodes: (a.to_string(), b.to_string()),
                        at: (*a0).max(*b0),
                    });
                }
            }
        }
    }
    None
}

/// What the store says of dcgm-exporter's targets around an hour: the times each failed its
/// scrapes (`up` 0), and, where some series are stood in for rather than read, the newest
/// answered scrape (else the newest sample read is taken).
#[derive(Debug, Clone, Copy)]
pub struct Exporters<'a> {
    pub down: &'a BTreeMap<String, Vec<i64>>,
    pub frontier: Option<i64>,
}

/// A pod a device's sample names: who, the time-slicing replica it holds (`vgpu`), and
/// whether through DRA.
type Named<'a> = (&'a Holder, Option<&'a str>, bool);

/// Integrate the series of one read around the hour `[start, end)`: the read covers the hour
/// and `--max-scrape-gap` on either side, so a sample's neighbours outside the hour are known.
/// `interval_ms` is the interval a device with a single sample is taken to be scraped at.
///
/// `down` holds, per scrape target, the times its `up` was 0 in the read: a device without
/// samples at a hour's edge while its target failed to be scraped has a hole there (the
/// exporter down, a node NotReady), refused when longer than `max_gap_ms` as one inside the
/// hour is; without failed scrapes the device came or went (a node added or removed, MIG
/// reconfigured), and its first and last samples stand for half an interval outward.
pub fn integrate(
    series: &[DeviceSeries],
    (start, end): (i64, i64),
    max_gap_ms: i64,
    interval_ms: i64,
    weights: &GpuWeights,
    models: &GpuModels,
    Exporters { down, frontier }: Exporters,
) -> Result<DeviceHour, Hole> {
    // Every series of a device together; a GPU's own series dropped while it has instances.
    let with_instances: BTreeSet<&str> = series
        .iter()
        .filter(|s| !s.device.instance_id.is_empty())
        .map(|s| s.device.uuid.as_str())
        .collect();
    let mut devices: BTreeMap<&DeviceKey, Vec<&DeviceSeries>> = BTreeMap::new();
    for s in series {
        if s.device.instance_id.is_empty() && with_instances.contains(s.device.uuid.as_str()) {
            continue;
        }
        devices.entry(&s.device).or_default().push(s);
    }
    // A target down (`up` 0) longer than the limit across the hour, with no device sample in
    // the read at all: its devices are not in the answer, yet someone may have held them.
    for (target, failed) in down {
        if series
            .iter()
            .any(|s| &s.target == target && !s.times.is_empty())
        {
            continue;
        }
        if let (Some(&from), Some(&to)) = (failed.first(), failed.last())
            && to - from > max_gap_ms
            && from < end
            && to >= start
        {
            return Err(Hole {
                device: DeviceKey {
                    uuid: format!("(every device of the dcgm-exporter target {target})"),
                    instance_id: String::new(),
                },
                node: target.clone(),
                from,
                to,
            });
        }
    }
    // The newest sample of the read: how far the store holds the devices. A device seen in
    // the last round before it goes on (its next sample is not stored yet; the store's time
    // says whether the hour may be billed), one last seen earlier stopped (a node removed).
    // (`frontier`, when given: the newest answered scrape of the exporters, where some
    // series are stood in for and their points say nothing of the store.)
    let frontier = frontier.or_else(|| series.iter().flat_map(|s| s.times.last()).copied().max());
    let mut out = DeviceHour::default();
    for (device, series) in devices {
        let Some(first) = series.first() else {
            continue;
        };
        let (model, node) = (&first.model, &first.node);
        let weight = match &first.profile {
            None => 1.0,
            Some(profile) => match weights.weight(&crate::gpu::dcgm::mig_resource(profile)) {
                Weight::Known(w) => w,
                Weight::Unknown | Weight::SharedUnconfigured => {
                    out.unweighted.insert(profile.clone());
                    0.0
                }
            },
        };
        // Sample time → the pods it names (empty: nobody), the time-slicing replica each
        // holds (`vgpu`), and whether through DRA.
        let mut at: BTreeMap<i64, BTreeSet<Named>> = BTreeMap::new();
        for s in &series {
            for t in &s.times {
                let names = at.entry(*t).or_default();
                if let Some(h) = &s.holder {
                    names.insert((h, s.vgpu.as_deref(), s.dra));
                }
            }
        }
        let times: Vec<i64> = at.keys().copied().collect();
        let typical = typical_interval(&times).unwrap_or(interval_ms);
        edge_hole(&series, &times, (start, end), max_gap_ms, down).map_err(|(from, to)| Hole {
            device: device.clone(),
            node: node.clone(),
            from,
            to,
        })?;
        let mut in_hour = false;
        for (i, (t, names)) in at.iter().enumerate() {
            let before = i.checked_sub(1).and_then(|j| times.get(j)).copied();
            let after = times.get(i + 1).copied();
            // Every pair of consecutive samples is some sample's (before, itself).
            if let Some(b) = before
                && t - b > max_gap_ms
                && b < end
                && *t > start
            {
                return Err(Hole {
                    device: device.clone(),
                    node: node.clone(),
                    from: b,
                    to: *t,
                });
            }
            let left = before.map_or(t - typical / 2, |b| b + (t - b) / 2);
            let right = match after {
                Some(a) => t + (a - t) / 2,
                None if frontier.is_some_and(|f| t + typical >= f) => end.max(t + typical / 2),
                None => t + typical / 2,
            };
            let secs = (right.min(end) - left.max(start)).max(0) as f64 / 1000.0;
            if secs <= 0.0 {
                continue;
            }
            in_hour = true;
            let gpu_secs = secs * weight;
            // Each pod's shares: the replicas it holds where dcgm-exporter names them, else
            // one (exporter replicas and a pod's containers write the same names once).
            let mut pods: BTreeMap<&Holder, BTreeSet<Option<&str>>> = BTreeMap::new();
            for (h, vgpu, _) in names {
                pods.entry(*h).or_default().insert(*vgpu);
            }
            if pods.is_empty() {
                *out.idle.entry(model.clone()).or_default() += gpu_secs;
                continue;
            }
            let key = if models.is_empty() {
                String::new()
            } else if let Some(k) = models.key(model) {
                k.to_string()
            } else {
                out.unmapped.insert(model.clone());
                continue;
            };
            let shares: usize = pods.values().map(BTreeSet::len).sum();
            for (pod, held) in pods {
                *out.held
                    .entry((pod.namespace.clone(), key.clone()))
                    .or_default() += gpu_secs * held.len() as f64 / shares as f64;
            }
            for (h, _, dra) in names {
                if *dra {
                    out.dra.insert((*h).clone());
                }
            }
        }
        if in_hour {
            *out.seen.entry(model.clone()).or_default() += weight;
        }
    }
    Ok(out)
}

/// A hole of a device at the read's edges, `(from, to)`: its target failed to be scraped
/// (`up` 0) more than `max_gap_ms` before its first sample of the read, or after its last,
/// where that sample lies inside the hour's edges; or failed from the read's very edge on, so
/// that the hole's length is unknown. The read reaches `max_gap_ms` past the hour on either
/// side, so a shorter hole has its samples on both sides in it and is bridged.
fn edge_hole(
    series: &[&DeviceSeries],
    times: &[i64],
    (start, end): (i64, i64),
    max_gap_ms: i64,
    down: &BTreeMap<String, Vec<i64>>,
) -> Result<(), (i64, i64)> {
    let (read_from, read_to) = (start - max_gap_ms, end + max_gap_ms);
    // A failed scrape within this of the read's edge: the hole may reach past it.
    let edge = max_gap_ms / 10;
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Ok(());
    };
    let failed: Vec<i64> = series
        .iter()
        .filter_map(|s| down.get(&s.target))
        .flatten()
        .copied()
        .collect();
    // Before the first sample: the earliest failed scrape, if the hole reaches past the limit.
    if first > start
        && let Some(&from) = failed.iter().filter(|t| **t < first).min()
        && (first - from > max_gap_ms || from - read_from <= edge)
    {
        return Err((from, first));
    }
    if last < end
        && let Some(&to) = failed.iter().filter(|t| **t > last).max()
        && (to - last > max_gap_ms || read_to - to <= edge)
    {
        return Err((last, to));
    }
    Ok(())
}

/// The median spacing of a device's distinct sample times, if it has two.
fn typical_interval(times: &[i64]) -> Option<i64> {
    let mut d: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    d.sort_unstable();
    d.get(d.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 3_600_000;
    const E: i64 = 2 * S;
    const GAP: i64 = 15 * 60_000;

    fn holder(ns: &str, pod: &str) -> Option<Holder> {
        Some(Holder {
            namespace: ns.into(),
            pod: pod.into(),
        })
    }

    fn device(uuid: &str, holder: Option<Holder>, times: Vec<i64>) -> DeviceSeries {
        DeviceSeries {
            target: "10.0.0.5:9400".into(),
            device: DeviceKey {
                uuid: uuid.into(),
                instance_id: String::new(),
            },
            model: "Tesla T4".into(),
            profile: None,
            node: "n1".into(),
            holder,
            vgpu: None,
            dra: false,
            times,
        }
    }

    /// Samples every `every` ms with `offset`, in `[from, to)`.
    fn ticks(from: i64, to: i64, every: i64, offset: i64) -> Vec<i64> {
        (0..)
            .map(|k| from - from.rem_euclid(every) + offset + k * every)
            .filter(|t| *t >= from)
            .take_while(|t| *t < to)
            .collect()
    }

    fn run(series: &[DeviceSeries], models: &GpuModels) -> DeviceHour {
        integrate(
            series,
            (S, E),
            GAP,
            30_000,
            &GpuWeights::default(),
            models,
            Exporters {
                down: &BTreeMap::new(),
                frontier: None,
            },
        )
        .unwrap()
    }

    fn held(h: &DeviceHour, ns: &str) -> f64 {
        h.held
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, s)| s / 3600.0)
            .sum()
    }

    #[test]
    fn a_pod_starting_mid_hour_is_billed_from_the_midpoint() {
        let start = S + 20 * 60_000 + 10_000; // 20:10 into the hour
        let before = ticks(S - GAP, start, 30_000, 7_000);
        let after = ticks(start, E + GAP, 30_000, 7_000);
        let h = run(
            &[
                device("GPU-1", None, before),
                device("GPU-1", holder("a", "p"), after),
            ],
            &GpuModels::default(),
        );
        let truth = (E - start) as f64 / 3_600_000.0;
        assert!((held(&h, "a") - truth).abs() <= 30.0 / 3600.0, "{h:?}");
        let idle = h.idle["Tesla T4"] / 3600.0;
        assert!((idle + held(&h, "a") - 1.0).abs() < 1e-9, "{h:?}");
        assert_eq!(h.seen["Tesla T4"], 1.0);
    }

    #[test]
    fn replicas_interleave_and_shared_devices_split() {
        // Two exporter replicas at 7 s and 19 s, both naming two pods: each pod half a GPU.
        let mut series = Vec::new();
        for off in [7_000, 19_000] {
            for pod in ["p", "q"] {
                let mut s = device(
                    "GPU-1",
                    holder("a", pod),
                    ticks(S - GAP, E + GAP, 30_000, off),
                );
                if pod == "q" {
                    s.holder = holder("b", pod);
                }
                series.push(s);
            }
        }
        let h = run(&series, &GpuModels::default());
        assert!((held(&h, "a") - 0.5).abs() < 1e-9, "{h:?}");
        assert!((held(&h, "b") - 0.5).abs() < 1e-9, "{h:?}");
    }

    /// dcgm-exporter with KUBERNETES_VIRTUAL_GPUS writes one series per time-slicing replica
    /// a pod holds (`vgpu`): a pod holding two replicas and one holding one share the device
    /// 2/3 and 1/3, with two exporter replicas and a pod's two containers counted once.
    #[test]
    fn time_slicing_replicas_are_shares() {
        let mut series = Vec::new();
        for off in [7_000, 19_000] {
            for (ns, pod, vgpu) in [("a", "p", "0"), ("a", "p", "1"), ("b", "q", "2")] {
                for _container in 0..2 {
                    let mut s = device(
                        "GPU-1",
                        holder(ns, pod),
                        ticks(S - GAP, E + GAP, 30_000, off),
                    );
                    s.vgpu = Some(vgpu.into());
                    series.push(s);
                }
            }
        }
        let h = run(&series, &GpuModels::default());
        assert!((held(&h, "a") - 2.0 / 3.0).abs() < 1e-9, "{h:?}");
        assert!((held(&h, "b") - 1.0 / 3.0).abs() < 1e-9, "{h:?}");
    }

    #[test]
    fn mig_instances_weigh_their_slices_and_hide_their_gpu() {
        let mut parent = device(
            "GPU-1",
            holder("x", "x"),
            ticks(S - GAP, E + GAP, 30_000, 0),
        );
        parent.model = "NVIDIA H100 80GB HBM3".into();
        let mig = |id: &str, profile: &str, ns: &str| {
            let mut s = parent.clone();
            s.device.instance_id = id.into();
            s.profile = Some(profile.into());
            s.holder = holder(ns, "p");
            s
        };
        let h = run(
            &[
                parent.clone(),
                mig("1", "3g.40gb", "a"),
                mig("2", "1g.10gb", "b"),
                mig("3", "1g.10gb", "b"),
            ],
            &GpuModels::default(),
        );
        assert!((held(&h, "a") - 3.0 / 7.0).abs() < 1e-9);
        assert!((held(&h, "b") - 2.0 / 7.0).abs() < 1e-9);
        assert_eq!(held(&h, "x"), 0.0);
    }

    #[test]
    fn holes_are_bridged_up_to_the_limit_and_refused_over_it() {
        let mut times = ticks(S - GAP, E + GAP, 30_000, 0);
        times.retain(|t| !(S + 600_000..S + 600_000 + 14 * 60_000).contains(t));
        let h = run(
            &[device("GPU-1", holder("a", "p"), times)],
            &GpuModels::default(),
        );
        assert!((held(&h, "a") - 1.0).abs() < 1e-9);
        let mut times = ticks(S - GAP, E + GAP, 30_000, 0);
        times.retain(|t| !(S + 600_000..S + 600_000 + 16 * 60_000).contains(t));
        let err = integrate(
            &[device("GPU-1", holder("a", "p"), times)],
            (S, E),
            GAP,
            30_000,
            &GpuWeights::default(),
            &GpuModels::default(),
            Exporters {
                down: &BTreeMap::new(),
                frontier: None,
            },
        )
        .unwrap_err();
        assert_eq!(err.device.uuid, "GPU-1");
        assert!(err.to - err.from > GAP);
    }

    /// Holes across the hour's edges (the exporter failing, `up` 0): 50 minutes from :40 to
    /// the next hour's :30, and 100 minutes from :20, are refused on both hours they touch,
    /// however the read cuts them; a 10-minute one across the edge is bridged exactly; a device
    /// that goes while its target answers (a node drained, MIG reconfigured) is not a hole.
    #[test]
    fn holes_across_the_hours_edges_are_refused_and_short_ones_bridged() {
        let target = "10.0.0.5:9400";
        let hour_of = |s: i64, from: i64, to: i64| {
            // The device's samples and the target's failed scrapes, read around `[s, s+1h)`.
            let all = ticks(S - 2 * 3_600_000, E + 3_600_000, 30_000, 0);
            let (read_from, read_to) = (s - GAP, s + 3_600_000 + GAP);
            let times: Vec<i64> = all
                .iter()
                .copied()
                .filter(|t| (read_from..read_to).contains(t) && !(from..to).contains(t))
                .collect();
            let down: Vec<i64> = all
                .iter()
                .copied()
                .filter(|t| (read_from..read_to).contains(t) && (from..to).contains(t))
                .collect();
            integrate(
                &[device("GPU-1", holder("a", "p"), times)],
                (s, s + 3_600_000),
                GAP,
                30_000,
                &GpuWeights::default(),
                &GpuModels::default(),
                Exporters {
                    down: &BTreeMap::from([(target.to_string(), down)]),
                    frontier: None,
                },
            )
        };
        let m = 60_000;
        for (from, to) in [(S + 40 * m, E + 30 * m), (S + 20 * m, E + 60 * m)] {
            for s in [S, E] {
                let err = hour_of(s, from, to).unwrap_err();
                assert!(err.to - err.from > GAP, "{s}: {err:?}");
            }
        }
        for s in [S, E] {
            let h = hour_of(s, E - 5 * m, E + 5 * m).unwrap();
            assert!((held(&h, "a") - 1.0).abs() < 1e-9, "{s}: {h:?}");
        }
        // Gone after its sample at :39:30 while the target answers (its other GPU goes on):
        // billed to that sample and half an interval.
        let times = ticks(S - GAP, S + 40 * m, 30_000, 0);
        let h = integrate(
            &[
                device("GPU-1", holder("a", "p"), times),
                device(
                    "GPU-2",
                    holder("b", "q"),
                    ticks(S - GAP, E + GAP, 30_000, 0),
                ),
            ],
            (S, E),
            GAP,
            30_000,
            &GpuWeights::default(),
            &GpuModels::default(),
            Exporters {
                down: &BTreeMap::from([(target.to_string(), Vec::new())]),
                frontier: None,
            },
        )
        .unwrap();
        assert!(
            (held(&h, "a") - (39.5 * 60.0 + 15.0) / 3600.0).abs() < 1e-9,
            "{h:?}"
        );
    }

    #[test]
    fn models_are_keys_and_an_unmapped_held_model_is_named() {
        let models = GpuModels::parse(&["Tesla T4=t4".into()]).unwrap();
        let all = ticks(S - GAP, E + GAP, 30_000, 0);
        let mut h100 = device("GPU-2", holder("a", "q"), all.clone());
        h100.model = "NVIDIA H100 80GB HBM3".into();
        let h = run(&[device("GPU-1", holder("a", "p"), all), h100], &models);
        assert!((h.held[&("a".to_string(), "gpu_t4".to_string())] / 3600.0 - 1.0).abs() < 1e-9);
        assert_eq!(
            h.unmapped.iter().collect::<Vec<_>>(),
            ["NVIDIA H100 80GB HBM3"]
        );
    }

    /// One UUID from two nodes at once is a conflict; a GPU moved from one node to another
    /// (one's samples end before the other's begin) is not.
    #[test]
    fn one_device_on_two_nodes_at_once_is_named() {
        let mut a = device(
            "GPU-9",
            holder("a", "p"),
            ticks(S, S + 1_800_000, 30_000, 0),
        );
        a.node = "n1".into();
        let mut b = device(
            "GPU-9",
            holder("b", "q"),
            ticks(S + 900_000, E, 30_000, 15_000),
        );
        b.node = "n2".into();
        let twice = on_two_nodes(&[a.clone(), b.clone()], (S, E)).unwrap();
        assert_eq!(twice.nodes, ("n1".to_string(), "n2".to_string()));
        assert_eq!(twice.at, S + 900_000 + 15_000);
        let mut moved = b;
        moved.times = ticks(S + 1_800_000, E, 30_000, 15_000);
        assert_eq!(on_two_nodes(&[a, moved], (S, E)), None);
    }

    /// A device without `modelName` (an older dcgm-exporter, dcgmproftester) is named as the
    /// empty model when unmapped, and `--gpu-model '=<suffix>'` bills it under that key.
    #[test]
    fn a_device_without_a_model_is_billed_under_the_empty_models_key() {
        let all = ticks(S - GAP, E + GAP, 30_000, 0);
        let mut unnamed = device("GPU-3", holder("b", "r"), all);
        unnamed.model = String::new();
        let only_t4 = GpuModels::parse(&["Tesla T4=t4".into()]).unwrap();
        let h = run(std::slice::from_ref(&unnamed), &only_t4);
        assert_eq!(h.unmapped.iter().collect::<Vec<_>>(), [""]);
        let with_empty = GpuModels::parse(&["Tesla T4=t4".into(), "=other".into()]).unwrap();
        let h = run(&[unnamed], &with_empty);
        assert!(h.unmapped.is_empty(), "{h:?}");
        assert!((h.held[&("b".to_string(), "gpu_other".to_string())] / 3600.0 - 1.0).abs() < 1e-9);
    }
}
