//! GPUs: what each source would bill, per model, idle devices and DRA claims.

use super::*;

/// GPUs as the devices report them in `hour` (whatever `--gpu-source` is): the devices seen
/// per model, the GPU-hours nobody held, the pods holding DRA claims (which the requests
/// source bills 0), and models `--gpu-model` does not map.
pub(super) async fn gpu_checks(
    collector: &Collector<'_>,
    config: &Config,
    hour: &HourWindow,
    lines: &mut Lines,
) {
    let devices = config.collect.gpu_source == GpuSource::Devices;
    let per_model = |m: &std::collections::BTreeMap<String, f64>, unit: &str| {
        m.iter()
            .map(|(model, q)| format!("{model}: {} {unit}", crate::message::round(*q)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match collector.device_hour(hour).await {
        Ok(d) if d.seen.is_empty() && devices => lines.fail(
            "gpu devices",
            format!(
                "no dcgm-exporter series ({}) in this hour, and --gpu-source devices bills from \
                 them: check that dcgm-exporter is scraped, or bill --gpu-source requests",
                crate::gpu::dcgm::METRIC
            ),
            exit::COLLECT,
        ),
        Ok(d) if d.seen.is_empty() => lines.ok(
            "gpu devices",
            "no dcgm-exporter series in this hour (--gpu-source devices would have nothing to \
             read)"
                .into(),
        ),
        Ok(d) => {
            lines.ok(
                "gpu devices",
                format!(
                    "GPUs seen per model (a MIG instance as its slices): {}",
                    per_model(&d.seen, "GPUs")
                ),
            );
            let idle: std::collections::BTreeMap<String, f64> = d
                .idle
                .iter()
                .map(|(m, s)| (m.clone(), s / 3600.0))
                .collect();
            lines.ok(
                "gpu idle",
                if idle.is_empty() {
                    "every device was held by a pod all hour".into()
                } else {
                    format!(
                        "GPU-hours nobody held (never billed): {}",
                        per_model(&idle, "GPU-hours")
                    )
                },
            );
            if !d.unweighted.is_empty() {
                lines.warn(
                    "gpu mig",
                    format!(
                        "MIG profiles without a weight, billed 0: {}; set --gpu-resource \
                         nvidia.com/mig-<profile>=<GPUs per instance>",
                        d.unweighted.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            if !d.unmapped.is_empty() {
                lines.fail(
                    "gpu models",
                    format!(
                        "pods held GPUs of models --gpu-model does not map: {}; a run refuses \
                         the hour. Add --gpu-model '<model>=<suffix>' for each",
                        d.unmapped
                            .iter()
                            .map(|m| if m.is_empty() {
                                "(no modelName: --gpu-model '=<suffix>')".to_string()
                            } else {
                                without_controls(m)
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    exit::COLLECT,
                );
            } else if !config.collect.gpu_models.is_empty() {
                lines.ok(
                    "gpu models",
                    format!(
                        "every model held is mapped ({})",
                        config.collect.gpu_models.describe()
                    ),
                );
            }
        }
        Err(e) => lines.fail("gpu devices", e.to_string(), exit::COLLECT),
    }
    match collector.dra_unseen(std::slice::from_ref(hour)).await {
        Ok(pods) if pods.is_empty() => lines.ok(
            "gpu dra",
            "no pod holds devices through a ResourceClaim".into(),
        ),
        Ok(pods) if devices => lines.ok(
            "gpu dra",
            format!(
                "{} pods hold devices through ResourceClaims; --gpu-source devices bills them",
                pods.len()
            ),
        ),
        Ok(pods) => lines.warn(
            "gpu dra",
            format!(
                "{} pods hold devices through ResourceClaims (first {}), and --gpu-source \
                 requests bills their GPUs 0: bill --gpu-source devices",
                pods.len(),
                pods.iter()
                    .take(3)
                    .map(|(n, p)| format!("{n}/{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => lines.fail("gpu dra", e.to_string(), exit::COLLECT),
    }
}
