//! NVIDIA's dcgm-exporter, as the GPUs report themselves: which series the devices source
//! (`--gpu-source devices`) reads, and what their labels say about who holds each device.
//!
//! Facts, from dcgm-exporter's own sources (github.com/NVIDIA/dcgm-exporter):
//! - **One series per device and field**, labelled `gpu`, `UUID`, `pci_bus_id`, `device`,
//!   `modelName` (NVML's product name, `NVIDIA H100 80GB HBM3`) and `hostname` (`Hostname`
//!   before v4.5); a MIG instance adds `GPU_I_PROFILE` (`1g.10gb`) and `GPU_I_ID`
//!   (`internal/pkg/rendermetrics/render_metrics.go`). On a GPU in MIG mode the memory fields
//!   are reported per GPU instance (`internal/pkg/transformation/kubernetes_mig_test.go`).
//! - **Pod attribution** comes from the kubelet's PodResources API
//!   (`internal/pkg/transformation/kubernetes.go`, `PodMapper.Process`): a device held by a
//!   pod gets `namespace`, `pod` and `container` (`pod_namespace`, `pod_name`,
//!   `container_name` with `--use-old-namespace`); a device no pod holds keeps its series
//!   without them. With GPU sharing (`KubernetesVirtualGPUs`: time-slicing, MPS) the series is
//!   copied once per pod holding the device, and a device nobody holds keeps one series.
//!   With DRA (`KubernetesEnableDRA`, on by default in the GPU Operator) a device allocated
//!   through a ResourceClaim is copied per pod with `dra_claim_name`, `dra_claim_namespace`,
//!   `dra_driver_name`, `dra_pool_name`, `dra_device_name` (`const.go`, `dra.go`).
//! - **The field read** is `DCGM_FI_DEV_FB_USED` (framebuffer used, MiB; only its presence is
//!   read, never its value). It is in every counters file dcgm-exporter 2.x and later ships
//!   (`etc/default-counters.csv`, `etc/dcp-metrics-included.csv`), and unlike
//!   `DCGM_FI_DEV_GPU_UTIL`, which DCGM does not report for MIG instances, it is reported for
//!   every MIG instance; dcgm-exporter's own per-process code keys on it (`metricFBUsed`).
//!   The 1.x names (`dcgm_fb_used`, also written by the 1.x compatibility counters file) are
//!   not read: a store with only them holds no device for the job (refused, naming
//!   `--gpu-source requests`).
//!
//! **How it is scraped.** Without `honor_labels` (the GPU Operator's ServiceMonitor, and
//! OpenShift's monitoring stack), Prometheus renames the pod's labels, which collide with the
//! target's, to `exported_namespace`, `exported_pod` and `exported_container` and keeps the
//! target's own `namespace`/`pod`: the dcgm-exporter pod's (Red Hat's GPU console plugin
//! queries `exported_pod` and `exported_namespace`). With `honor_labels` the pod's labels win,
//! but a device nobody holds still carries the target's `namespace`/`pod`. Either way the
//! exporter's own namespace must never be billed, so each series is compared with the labels
//! of its scrape target, which `up{job, instance}` carries alone (Prometheus writes `up` per
//! target with the target's labels only): a series whose `namespace`/`pod` are its target's
//! is a device nobody holds.

use std::collections::BTreeMap;

use crate::prometheus::Series;

/// The field the devices source reads (module documentation).
pub const METRIC: &str = "DCGM_FI_DEV_FB_USED";

/// The labels [`read`] reads, which a summary keeps ([`summary`]): the device's, the pod's in
/// every form, the replica held, the DRA claim and the scrape target.
pub const READ_LABELS: &str = "UUID, uuid, GPU_I_ID, GPU_I_PROFILE, modelName, hostname, Hostname, \
     namespace, pod, pod_namespace, pod_name, exported_namespace, exported_pod, \
     exported_pod_namespace, exported_pod_name, vgpu, dra_claim_name, job, instance";

/// `instance` → the times its `up` was 0, from a [`target_health`] answer (samples).
pub fn down_times(answer: &[Series]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for s in answer {
        let instance = s.labels.get("instance").cloned().unwrap_or_default();
        let down = out.entry(instance).or_default();
        down.extend(s.points.iter().filter(|(_, v)| *v == 0.0).map(|(t, _)| *t));
        down.sort_unstable();
    }
    out
}

/// One device: a whole GPU, or a MIG instance of one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey {
    pub uuid: String,
    /// `GPU_I_ID` of a MIG instance; empty for a whole GPU.
    pub instance_id: String,
}

impl std::fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.instance_id.is_empty() {
            write!(f, "{}", self.uuid)
        } else {
            write!(f, "{} MIG instance {}", self.uuid, self.instance_id)
        }
    }
}

/// The pod a series attributes its device to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder {
    pub namespace: String,
    pub pod: String,
}

/// One series of [`METRIC`], read.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSeries {
    pub device: DeviceKey,
    /// `modelName`.
    pub model: String,
    /// `GPU_I_PROFILE` of a MIG instance.
    pub profile: Option<String>,
    /// `hostname` (or `Hostname`), for messages.
    pub node: String,
    /// The pod holding the device in these samples; `None`: nobody.
    pub holder: Option<Holder>,
    /// The time-slicing replica the holder holds (`vgpu`, written by dcgm-exporter with
    /// `KUBERNETES_VIRTUAL_GPUS`: one copy of the device's series per replica a pod holds).
    pub vgpu: Option<String>,
    /// Attributed through a DRA ResourceClaim (`dra_claim_name`).
    pub dra: bool,
    /// The scrape target that wrote it (`instance`): its `up` says whether a stretch without
    /// samples was the exporter failing (a hole) or the device gone.
    pub target: String,
    /// Sample times, Unix milliseconds.
    pub times: Vec<i64>,
}

/// Why a series cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Unreadable {
    /// No `UUID` label: not dcgm-exporter's shape.
    NoUuid(BTreeMap<String, String>),
    /// The series carries a pod's labels but the store holds no `up` of its target, so the
    /// pod cannot be told from the exporter's own labels.
    NoTarget { job: String, instance: String },
    /// The series names half a pod: a pod name without its namespace (`exported_pod` with an
    /// empty `exported_namespace`), or a namespace without a pod. dcgm-exporter writes both or
    /// neither; billing it as idle, or to the exporter's own namespace, would move money.
    HalfHolder(BTreeMap<String, String>),
}

fn label<'a>(labels: &'a BTreeMap<String, String>, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| labels.get(*n))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// `(job, instance)` → the target's `(namespace, pod)`, from a [`target_health`] answer (the
/// labels Prometheus gives a target's `up`).
pub fn target_labels(answer: &[Series]) -> BTreeMap<(String, String), (String, String)> {
    answer
        .iter()
        .map(|s| {
            let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            (
                (get("job"), get("instance")),
                (get("namespace"), get("pod")),
            )
        })
        .collect()
}

/// Read one series of [`samples`]: its device, and who holds it ([`Holder`]) by its labels
/// and its target's (module documentation, "How it is scraped").
pub fn read(
    s: &Series,
    targets: &BTreeMap<(String, String), (String, String)>,
) -> Result<DeviceSeries, Unreadable> {
    let l = &s.labels;
    let uuid = label(l, &["UUID", "uuid"]).ok_or_else(|| Unreadable::NoUuid(l.clone()))?;
    // The pod's labels as Prometheus stores them, most certain first: renamed because they
    // collided with the target's (`exported_*`, without honor_labels); the old names
    // (`pod_namespace`, `pod_name`: `--use-old-namespace`, and the 1.x pod exporter), which
    // no scrape target carries, so they are the pod's however it is scraped; and the plain
    // names, which are the target's own unless honor_labels kept the pod's.
    let exported = (
        label(l, &["exported_namespace", "exported_pod_namespace"]),
        label(l, &["exported_pod", "exported_pod_name"]),
    );
    let old = (label(l, &["pod_namespace"]), label(l, &["pod_name"]));
    let own = (label(l, &["namespace"]), label(l, &["pod"]));
    for pair in [exported, old] {
        if pair.0.is_some() != pair.1.is_some() {
            return Err(Unreadable::HalfHolder(l.clone()));
        }
    }
    let holder = match (exported, old, own) {
        ((Some(namespace), Some(pod)), _, _) | (_, (Some(namespace), Some(pod)), _) => {
            Some((namespace, pod))
        }
        (_, _, (Some(namespace), Some(pod))) => {
            let job = l.get("job").cloned().unwrap_or_default();
            let instance = l.get("instance").cloned().unwrap_or_default();
            let target = targets
                .get(&(job.clone(), instance.clone()))
                .ok_or(Unreadable::NoTarget { job, instance })?;
            (target.0 != namespace || target.1 != pod).then_some((namespace, pod))
        }
        _ => None,
    };
    Ok(DeviceSeries {
        device: DeviceKey {
            uuid: uuid.to_string(),
            instance_id: label(l, &["GPU_I_ID"]).unwrap_or_default().to_string(),
        },
        model: label(l, &["modelName"]).unwrap_or_default().to_string(),
        profile: label(l, &["GPU_I_PROFILE"]).map(str::to_string),
        node: label(l, &["hostname", "Hostname"])
            .unwrap_or_default()
            .to_string(),
        holder: holder.map(|(namespace, pod)| Holder {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        }),
        vgpu: label(l, &["vgpu"]).map(str::to_string),
        dra: label(l, &["dra_claim_name"]).is_some(),
        target: l.get("instance").cloned().unwrap_or_default(),
        times: s.points.iter().map(|(t, _)| *t).collect(),
    })
}

/// The `--gpu-resource` name of a MIG profile (`1g.10gb` → `nvidia.com/mig-1g.10gb`), whose
/// weight ([`crate::gpu::GpuWeights`]) a MIG instance is billed at.
pub fn mig_resource(profile: &str) -> String {
    crate::gpu::ksm_name(&format!("nvidia.com/mig-{profile}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: vec![(1000, 3.0), (31_000, 3.0)],
        }
    }

    fn targets() -> BTreeMap<(String, String), (String, String)> {
        BTreeMap::from([(
            ("dcgm".to_string(), "10.0.0.5:9400".to_string()),
            ("gpu-operator".to_string(), "dcgm-exporter-x".to_string()),
        )])
    }

    const DEVICE: [(&str, &str); 5] = [
        ("UUID", "GPU-1"),
        ("modelName", "NVIDIA H100 80GB HBM3"),
        ("hostname", "node-a"),
        ("job", "dcgm"),
        ("instance", "10.0.0.5:9400"),
    ];

    #[test]
    fn honor_labels_a_pod_and_a_device_nobody_holds() {
        let held = [&DEVICE[..], &[("namespace", "team-a"), ("pod", "train-0")]].concat();
        let d = read(&series(&held), &targets()).unwrap();
        assert_eq!(
            d.holder,
            Some(Holder {
                namespace: "team-a".into(),
                pod: "train-0".into()
            })
        );
        assert_eq!(d.times, [1000, 31_000]);
        assert_eq!(d.model, "NVIDIA H100 80GB HBM3");
        // Nobody holds it: the target's own labels, never a bill for gpu-operator.
        let idle = [
            &DEVICE[..],
            &[("namespace", "gpu-operator"), ("pod", "dcgm-exporter-x")],
        ]
        .concat();
        assert_eq!(read(&series(&idle), &targets()).unwrap().holder, None);
        assert_eq!(read(&series(&DEVICE), &targets()).unwrap().holder, None);
    }

    #[test]
    fn without_honor_labels_the_exported_labels_name_the_pod() {
        let held = [
            &DEVICE[..],
            &[
                ("namespace", "gpu-operator"),
                ("pod", "dcgm-exporter-x"),
                ("exported_namespace", "team-a"),
                ("exported_pod", "train-0"),
                ("dra_claim_name", "gpu-claim"),
            ],
        ]
        .concat();
        let d = read(&series(&held), &targets()).unwrap();
        assert_eq!(d.holder.unwrap().namespace, "team-a");
        assert!(d.dra);
    }

    #[test]
    fn a_pod_without_its_target_and_a_series_without_uuid_are_refused() {
        let held = [
            &DEVICE[..3],
            &[
                ("job", "other"),
                ("instance", "x"),
                ("namespace", "team-a"),
                ("pod", "p"),
            ],
        ]
        .concat();
        assert_eq!(
            read(&series(&held), &targets()),
            Err(Unreadable::NoTarget {
                job: "other".into(),
                instance: "x".into()
            })
        );
        assert!(matches!(
            read(&series(&DEVICE[1..]), &targets()),
            Err(Unreadable::NoUuid(_))
        ));
    }

    /// `--use-old-namespace` (and the 1.x pod exporter) write `pod_namespace`/`pod_name`,
    /// which no scrape target carries: scraped without honor_labels they sit beside the
    /// target's own `namespace`/`pod` (dcgm-exporter's `internal/pkg/transformation/
    /// kubernetes.go`, `oldPodAttribute`/`oldNamespaceAttribute`), and they are the pod's.
    #[test]
    fn the_old_label_names_are_the_pods_however_it_is_scraped() {
        for target in [
            &[("namespace", "gpu-operator"), ("pod", "dcgm-exporter-x")][..],
            &[][..],
        ] {
            let held = [
                &DEVICE[..],
                target,
                &[
                    ("pod_namespace", "team-a"),
                    ("pod_name", "train-0"),
                    ("container_name", "cuda"),
                ],
            ]
            .concat();
            let d = read(&series(&held), &targets()).unwrap();
            assert_eq!(
                d.holder,
                Some(Holder {
                    namespace: "team-a".into(),
                    pod: "train-0".into()
                }),
                "{target:?}"
            );
        }
    }

    /// A pod name without its namespace (or the reverse) is refused naming the series, never
    /// billed as idle or to the exporter's namespace.
    #[test]
    fn half_a_pod_is_refused() {
        for half in [
            &[("exported_namespace", ""), ("exported_pod", "train-0")][..],
            &[("exported_namespace", "team-a")][..],
            &[("pod_name", "train-0")][..],
        ] {
            let labels = [
                &DEVICE[..],
                &[("namespace", "gpu-operator"), ("pod", "dcgm-exporter-x")],
                half,
            ]
            .concat();
            assert!(
                matches!(
                    read(&series(&labels), &targets()),
                    Err(Unreadable::HalfHolder(_))
                ),
                "{half:?}"
            );
        }
    }

    #[test]
    fn mig_profiles_name_their_resource() {
        assert_eq!(mig_resource("1g.10gb"), "nvidia_com_mig_1g_10gb");
        assert_eq!(mig_resource("1g.5gb+me"), "nvidia_com_mig_1g_5gb_me");
        let mig = [
            &DEVICE[..],
            &[("GPU_I_ID", "11"), ("GPU_I_PROFILE", "3g.40gb")],
        ]
        .concat();
        let d = read(&series(&mig), &targets()).unwrap();
        assert_eq!(d.device.instance_id, "11");
        assert_eq!(d.profile.as_deref(), Some("3g.40gb"));
    }
}
