//! A GPU fleet as dcgm-exporter reports it (`Options::gpu_fleet`): whole GPUs, MIG instances
//! of two profiles, a time-sliced GPU shared by two pods, a GPU allocated through a DRA
//! ResourceClaim to a pod that requests nothing, a pod that starts and stops mid-hour, idle
//! GPUs, two dcgm-exporter replicas on one node and a restarted exporter on the other.
//!
//! The series follow dcgm-exporter's own sources (github.com/NVIDIA/dcgm-exporter):
//! `internal/pkg/rendermetrics/render_metrics.go` for the device labels (`gpu`, `UUID`,
//! `pci_bus_id`, `device`, `modelName`, `GPU_I_PROFILE`, `GPU_I_ID`, `hostname`);
//! `internal/pkg/transformation/kubernetes.go` for the pod labels (`namespace`, `pod`,
//! `container` on a device a pod holds, one copy of the series per pod with GPU sharing, the
//! series left without them on a device nobody holds) and the DRA labels (`dra_claim_name`,
//! `dra_claim_namespace`, `dra_driver_name`, `dra_pool_name`, `dra_device_name`, `const.go`);
//! `kubernetes_mig_test.go` for `DCGM_FI_DEV_FB_USED` reported per MIG instance. Prometheus
//! writes `up` per target with the target's labels; a ServiceMonitor gives each target
//! `namespace`, `pod` and `container` (prometheus-operator API, `honorLabels`), which a device
//! nobody holds keeps, and which without `honor_labels` push the pod's labels to
//! `exported_*` (Prometheus configuration, `honor_labels`).

use std::collections::BTreeMap;
use std::io::{self, Write};

/// One device: a whole GPU or a MIG instance.
#[derive(Debug, Clone)]
pub struct Device {
    pub uuid: String,
    /// GPU index on its node (`gpu`, `device="nvidia<i>"`).
    pub index: usize,
    pub model: String,
    pub node: String,
    /// `(GPU_I_ID, GPU_I_PROFILE)` of a MIG instance.
    pub mig: Option<(String, String)>,
    /// GPUs it is billed as: 1, or a MIG profile's C/7.
    pub weight: f64,
}

/// A pod holding a device in `[from, to)`.
#[derive(Debug, Clone)]
pub struct Hold {
    pub device: usize,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub from: i64,
    pub to: i64,
    /// The ResourceClaim it holds the device through (DRA).
    pub claim: Option<String>,
    /// The time-slicing replicas of the device it holds (the device plugin's `<UUID>::<i>`
    /// device IDs); empty for a whole device.
    pub replicas: Vec<u32>,
}

/// One dcgm-exporter pod (a scrape target) on a node in `[from, to)`.
#[derive(Debug, Clone)]
pub struct Exporter {
    pub node: String,
    pub pod: String,
    pub instance: String,
    /// Seconds after each tick it is scraped at.
    pub offset: i64,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    pub devices: Vec<Device>,
    pub holds: Vec<Hold>,
    pub exporters: Vec<Exporter>,
    /// dcgm-exporter's scrape interval, seconds (its own, not kube-state-metrics').
    pub interval: i64,
    /// Scraped with `honor_labels: true`; without, the pod's labels are `exported_*`.
    pub honor_labels: bool,
    /// dcgm-exporter run with `--use-old-namespace` (`internal/pkg/transformation/
    /// kubernetes.go`: `pod_namespace`, `pod_name`, `container_name` instead of `namespace`,
    /// `pod`, `container`; the 1.x pod exporter's names too). No scrape target carries them,
    /// so with or without `honor_labels` they sit beside the target's own `namespace`/`pod`.
    pub old_names: bool,
    /// dcgm-exporter run with `KUBERNETES_VIRTUAL_GPUS` (`--kubernetes-virtual-gpus`):
    /// `internal/pkg/transformation/kubernetes.go` (`toDeviceToSharingPods`, `getSharedGPU`)
    /// maps a device to every pod holding one of its time-slicing replicas, one entry per
    /// replica ID a container holds, and writes each as a copy of the device's series with the
    /// label `vgpu` (the replica ID after `::`). A pod holding k replicas has k series.
    pub virtual_gpus: bool,
    /// The device's UUID as the label `uuid` instead of `UUID`, which consumption-metrics reads
    /// too: a relabelling that lower-cases label names.
    pub lowercase_uuid: bool,
    /// Stretches `[from, to)` in which every dcgm-exporter's scrape fails (`up` 0, no device
    /// series): the exporter crashlooping, its nodes NotReady.
    pub gaps: Vec<(i64, i64)>,
    /// Each node's GPU model (NVML's name), as GPU Feature Discovery labels the node
    /// `nvidia.com/gpu.product` (spaces as dashes) and kube-state-metrics exports it on
    /// `kube_node_labels` when allowlisted.
    pub products: Vec<(String, String)>,
}

pub const JOB: &str = "nvidia-dcgm-exporter";
pub const NAMESPACE: &str = "gpu-operator";
pub const H100: &str = "NVIDIA H100 80GB HBM3";
pub const T4: &str = "Tesla T4";
pub const A100: &str = "NVIDIA A100-SXM4-80GB";

impl Fleet {
    /// The GPU model of `node`, if it has one.
    pub fn product(&self, node: &str) -> Option<&str> {
        self.products
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, m)| m.as_str())
    }

    /// The pods holding device `d` at `t`.
    pub fn holders(&self, d: usize, t: i64) -> Vec<&Hold> {
        self.holds
            .iter()
            .filter(|h| h.device == d && (h.from..h.to).contains(&t))
            .collect()
    }

    /// Scrape times of `e` in `[start, end)`, minus the `outages`.
    fn times(&self, e: &Exporter, start: i64, end: i64, outages: &[(i64, i64)]) -> Vec<i64> {
        let every = self.interval.max(1);
        let mut t = start - start.rem_euclid(every) + e.offset;
        let mut out = Vec::new();
        while t < end {
            if t >= start.max(e.from)
                && t < e.to
                && !outages.iter().any(|(a, b)| (*a..*b).contains(&t))
            {
                out.push(t);
            }
            t += every;
        }
        out
    }

    /// Write `DCGM_FI_DEV_FB_USED` of every device and `up` of every exporter in
    /// `[start, end)`, with `other_up` (other targets' `up`) in the same family.
    pub fn write(
        &self,
        start: i64,
        end: i64,
        outages: &[(i64, i64)],
        other_up: &[(String, Vec<(i64, u8)>)],
        out: &mut impl Write,
    ) -> io::Result<()> {
        let mut series: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
        let mut up: BTreeMap<String, Vec<(i64, u8)>> = BTreeMap::new();
        let failed = |t: i64| self.gaps.iter().any(|(a, b)| (*a..*b).contains(&t));
        // The holds of each device, and the devices of each node: a fleet of thousands of
        // GPUs is written in one pass over its samples.
        let mut holds_of: Vec<Vec<&Hold>> = vec![Vec::new(); self.devices.len()];
        for h in &self.holds {
            if let Some(v) = holds_of.get_mut(h.device) {
                v.push(h);
            }
        }
        let mut devices_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (d, dev) in self.devices.iter().enumerate() {
            devices_of.entry(dev.node.as_str()).or_default().push(d);
        }
        for e in &self.exporters {
            let target = format!(
                "job=\"{JOB}\",instance=\"{}\",namespace=\"{NAMESPACE}\",pod=\"{}\",container=\"nvidia-dcgm-exporter\"",
                e.instance, e.pod
            );
            let attempts = self.times(e, start, end, outages);
            up.insert(
                target.clone(),
                attempts
                    .iter()
                    .map(|t| (*t, u8::from(!failed(*t))))
                    .collect(),
            );
            let times: Vec<i64> = attempts.into_iter().filter(|t| !failed(*t)).collect();
            for &d in devices_of.get(e.node.as_str()).into_iter().flatten() {
                let dev = &self.devices[d];
                let mut device = format!(
                    "gpu=\"{i}\",{}=\"{}\",pci_bus_id=\"00000000:{:02X}:00.0\",device=\"nvidia{i}\",modelName=\"{}\"",
                    if self.lowercase_uuid { "uuid" } else { "UUID" },
                    dev.uuid,
                    0x1b + dev.index * 0x10,
                    dev.model,
                    i = dev.index
                );
                if let Some((id, profile)) = &dev.mig {
                    device.push_str(&format!(",GPU_I_PROFILE=\"{profile}\",GPU_I_ID=\"{id}\""));
                }
                device.push_str(&format!(",hostname=\"{}\"", dev.node));
                for &t in &times {
                    let holders: Vec<&Hold> = holds_of[d]
                        .iter()
                        .copied()
                        .filter(|h| (h.from..h.to).contains(&t))
                        .collect();
                    if holders.is_empty() {
                        series
                            .entry(format!("{target},{device}"))
                            .or_default()
                            .push((t, 0));
                    }
                    for h in holders {
                        let mut pod = if self.old_names {
                            format!(
                                "{target},pod_namespace=\"{}\",pod_name=\"{}\",container_name=\"{}\"",
                                h.namespace, h.pod, h.container
                            )
                        } else if self.honor_labels {
                            format!(
                                "job=\"{JOB}\",instance=\"{}\",namespace=\"{}\",pod=\"{}\",container=\"{}\"",
                                e.instance, h.namespace, h.pod, h.container
                            )
                        } else {
                            format!(
                                "{target},exported_namespace=\"{}\",exported_pod=\"{}\",exported_container=\"{}\"",
                                h.namespace, h.pod, h.container
                            )
                        };
                        if self.virtual_gpus && !h.replicas.is_empty() {
                            for r in &h.replicas {
                                series
                                    .entry(format!("{pod},vgpu=\"{r}\",{device}"))
                                    .or_default()
                                    .push((t, 4096));
                            }
                            continue;
                        }
                        if let Some(claim) = &h.claim {
                            pod.push_str(&format!(
                                ",dra_claim_name=\"{claim}\",dra_claim_namespace=\"{}\",\
                                 dra_driver_name=\"gpu.nvidia.com\",dra_pool_name=\"{}\",\
                                 dra_device_name=\"gpu-{}\"",
                                h.namespace, dev.node, dev.index
                            ));
                        }
                        series
                            .entry(format!("{pod},{device}"))
                            .or_default()
                            .push((t, 4096));
                    }
                }
            }
        }
        writeln!(out, "# TYPE DCGM_FI_DEV_FB_USED gauge")?;
        for (labels, samples) in &series {
            for (t, v) in samples {
                writeln!(out, "DCGM_FI_DEV_FB_USED{{{labels}}} {v} {t}")?;
            }
        }
        // One `up` family: the exporters' and the other targets' (kube-state-metrics').
        writeln!(out, "# TYPE up gauge")?;
        for (labels, samples) in &up {
            for (t, v) in samples {
                writeln!(out, "up{{{labels}}} {v} {t}")?;
            }
        }
        for (labels, samples) in other_up {
            for (t, v) in samples {
                writeln!(out, "up{{{labels}}} {v} {t}")?;
            }
        }
        Ok(())
    }

    /// How many shares of its device a hold has: the time-slicing replicas it holds where
    /// dcgm-exporter reports them (`vgpu`), else one per pod.
    fn shares(&self, h: &Hold) -> f64 {
        if self.virtual_gpus && !h.replicas.is_empty() {
            h.replicas.len() as f64
        } else {
            1.0
        }
    }

    /// Per namespace, the exact GPU-hours held in `[s, e)` (each device split among the pods
    /// holding it at each moment by their shares, [`Fleet::shares`]), per model; and the allowed error: half an
    /// interval of every device per pod that starts or stops near the hour, doubled for
    /// safety, plus the outages' length for a change inside one.
    pub fn truth(
        &self,
        (s, e): (i64, i64),
        outages: &[(i64, i64)],
    ) -> BTreeMap<String, (BTreeMap<String, f64>, f64)> {
        let mut out: BTreeMap<String, (BTreeMap<String, f64>, f64)> = BTreeMap::new();
        let mut holds_of: Vec<Vec<&Hold>> = vec![Vec::new(); self.devices.len()];
        for h in &self.holds {
            if let Some(v) = holds_of.get_mut(h.device) {
                v.push(h);
            }
        }
        for (d, dev) in self.devices.iter().enumerate() {
            // The moments the holders of this device change.
            let mut cuts: Vec<i64> = vec![s, e];
            for h in &holds_of[d] {
                cuts.extend([h.from.clamp(s, e), h.to.clamp(s, e)]);
            }
            cuts.sort_unstable();
            cuts.dedup();
            for w in cuts.windows(2) {
                let holders: Vec<&Hold> = holds_of[d]
                    .iter()
                    .copied()
                    .filter(|h| (h.from..h.to).contains(&w[0]))
                    .collect();
                let shares: f64 = holders.iter().map(|h| self.shares(h)).sum();
                for h in &holders {
                    let gpu_hours =
                        dev.weight * (w[1] - w[0]) as f64 / 3600.0 * self.shares(h) / shares;
                    *out.entry(h.namespace.clone())
                        .or_default()
                        .0
                        .entry(dev.model.clone())
                        .or_default() += gpu_hours;
                }
            }
            let slack = self.interval;
            for h in &holds_of[d] {
                for edge in [h.from, h.to] {
                    let hole: i64 = outages
                        .iter()
                        .chain(&self.gaps)
                        .filter(|(a, b)| *a <= edge && edge < *b)
                        .map(|(a, b)| b - a)
                        .sum();
                    if (s - slack - hole..e + slack + hole).contains(&edge) {
                        // Everyone sharing the device moves with the change.
                        for other in &holds_of[d] {
                            out.entry(other.namespace.clone()).or_default().1 +=
                                dev.weight * (slack + hole) as f64 / 3600.0;
                        }
                    }
                }
            }
        }
        out
    }
}

/// A fleet at AI-cluster scale (`Options::gpu_scale`): `gpus` GPUs on nodes of eight, each
/// node's own dcgm-exporter at its own offset, scraped every 15 s. Seven nodes in ten have
/// whole GPUs (seven held, one idle); two in ten are in MIG mode, each GPU cut into a 3g.40gb
/// instance held and two 1g.10gb ones, one held; one in ten time-slices its GPUs, each shared
/// by two pods holding three and one of its replicas (`vgpu`). Holders are spread over
/// `namespaces`, every pod all hours. UUIDs are random hexadecimal, as NVML's are.
pub fn scaled(gpus: usize, namespaces: &[String], seed: u64) -> Fleet {
    const LONG_AGO: i64 = i64::MIN / 4;
    const NEVER: i64 = i64::MAX / 4;
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut hex = |n: usize| {
        let mut out = String::with_capacity(n);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(char::from_digit((x % 16) as u32, 16).unwrap_or('0'));
        }
        out
    };
    let (mut devices, mut holds, mut exporters) = (Vec::new(), Vec::new(), Vec::new());
    let mut products = Vec::new();
    let ns = |k: usize| {
        namespaces
            .get(k % namespaces.len().max(1))
            .cloned()
            .unwrap_or_else(|| "team-gpu".into())
    };
    let mut pods = 0usize;
    for n in 0..gpus.div_ceil(8) {
        let node = format!("gpu-{n:05}");
        let kind = n % 10;
        let model = if kind == 9 { T4 } else { H100 };
        products.push((node.clone(), model.to_string()));
        exporters.push(Exporter {
            node: node.clone(),
            pod: format!("nvidia-dcgm-exporter-{n:05}"),
            instance: format!(
                "10.{}.{}.{}:9400",
                200 + n / 62_500,
                (n / 250) % 250,
                n % 250 + 1
            ),
            offset: (n % 15) as i64,
            from: LONG_AGO,
            to: NEVER,
        });
        for i in 0..8.min(gpus - n * 8) {
            let uuid = format!(
                "GPU-{}-{}-{}-{}-{}",
                hex(8),
                hex(4),
                hex(4),
                hex(4),
                hex(12)
            );
            let mut hold = |device: usize, replicas: Vec<u32>| {
                pods += 1;
                holds.push(Hold {
                    device,
                    namespace: ns(pods),
                    pod: format!("gpu-pod-{pods:06}"),
                    container: "main".into(),
                    from: LONG_AGO,
                    to: NEVER,
                    claim: None,
                    replicas,
                });
            };
            let whole = |uuid: &str| Device {
                uuid: uuid.to_string(),
                index: i,
                model: model.into(),
                node: node.clone(),
                mig: None,
                weight: 1.0,
            };
            match kind {
                7 | 8 => {
                    for (id, profile, weight, held) in [
                        ("1", "3g.40gb", 3.0 / 7.0, true),
                        ("2", "1g.10gb", 1.0 / 7.0, true),
                        ("3", "1g.10gb", 1.0 / 7.0, false),
                    ] {
                        devices.push(Device {
                            mig: Some((id.into(), profile.into())),
                            weight,
                            ..whole(&uuid)
                        });
                        if held {
                            hold(devices.len() - 1, Vec::new());
                        }
                    }
                }
                9 => {
                    devices.push(whole(&uuid));
                    hold(devices.len() - 1, vec![0, 1, 2]);
                    hold(devices.len() - 1, vec![3]);
                }
                _ => {
                    devices.push(whole(&uuid));
                    if i != 7 {
                        hold(devices.len() - 1, Vec::new());
                    }
                }
            }
        }
    }
    Fleet {
        devices,
        holds,
        exporters,
        interval: 15,
        honor_labels: true,
        old_names: false,
        virtual_gpus: true,
        lowercase_uuid: false,
        gaps: Vec::new(),
        products,
    }
}
