//! GPU-hours as users buy them: a weight per extended resource, so that a MIG slice, a
//! time-sliced share and another vendor's GPU are billed for the part of a GPU they are.
//!
//! The GPU-hours of a request are `count × weight × hours`. Defaults, needing no configuration:
//!
//! | resource | weight | why |
//! |---|---|---|
//! | `nvidia.com/gpu` | 1 | a whole GPU |
//! | `nvidia.com/mig-<C>g.<M>gb` | C/7 | C compute slices of the 7 of an A100/H100 |
//! | `amd.com/gpu` | 1 | a whole GPU |
//! | `nvidia.com/gpu.shared` | none: refused until configured | 1/replicas of a time-sliced GPU; the replica count is the device plugin's setting, which the metrics do not show |
//!
//! MIG profiles are weighted by compute slices, not memory: a profile's memory share and compute
//! share differ (`mig-1g.10gb` on an 80 GB H100 is 1/8 of its memory but 1/7 of its compute,
//! and `mig-1g.5gb+me` adds media engines), and a tenant holding a slice holds its compute
//! slices exclusively, which is what a GPU-hour bills. GPUs with another slice count (an A30
//! has 4) are configured with `--gpu-resource nvidia.com/mig-1g.6gb=1/4`.
//!
//! kube-state-metrics writes the resource name with every character outside `[a-zA-Z0-9_]` as
//! `_` (`nvidia.com/mig-1g.5gb` → `nvidia_com_mig_1g_5gb`); weights are looked up by that name.
//! The devices source (`--gpu-source devices`, [`crate::dcgm`]) weighs a MIG instance by its
//! profile through the same table: `GPU_I_PROFILE="1g.10gb"` is `nvidia.com/mig-1g.10gb`.
//!
//! GPU models as billing keys (`--gpu-model MODEL=SUFFIX`, [`GpuModels`]): a model is named as
//! the GPUs name themselves, NVML's product name, which dcgm-exporter writes as `modelName`
//! (`NVIDIA H100 80GB HBM3`) and GPU Feature Discovery as the node label
//! `nvidia.com/gpu.product` with its spaces as dashes (`NVIDIA-H100-80GB-HBM3`); both forms
//! match one entry.

use std::collections::BTreeMap;

/// The kube-state-metrics form of an extended resource name.
pub fn ksm_name(resource: &str) -> String {
    resource
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How a resource seen in the data is billed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weight {
    /// GPUs per unit requested.
    Known(f64),
    /// A time-sliced share whose replica count is not configured: the hour cannot be billed.
    SharedUnconfigured,
    /// No weight: billed 0, with a warning naming the resource and the flag.
    Unknown,
}

/// The weights of one run: configured ones over the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuWeights {
    /// kube-state-metrics resource name → weight, from `--gpu-resource`.
    configured: BTreeMap<String, f64>,
}

const SHARED: &str = "nvidia_com_gpu_shared";

/// A weight written as a decimal (`0.25`) or a fraction (`1/4`).
fn parse_weight(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let w = match raw.split_once('/') {
        Some((a, b)) => a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?,
        None => raw.parse::<f64>().ok()?,
    };
    (w.is_finite() && (0.0..=64.0).contains(&w)).then_some(w)
}

impl GpuWeights {
    /// Parse `--gpu-resource RESOURCE=WEIGHT` items.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut configured = BTreeMap::new();
        for item in items.iter().filter(|s| !s.trim().is_empty()) {
            let (resource, weight) = item.split_once('=').ok_or_else(|| {
                format!("{item:?}: expected RESOURCE=WEIGHT, e.g. nvidia.com/gpu.shared=1/4")
            })?;
            let resource = resource.trim();
            if resource.is_empty() {
                return Err(format!("{item:?}: the resource name is empty"));
            }
            let weight = parse_weight(weight).ok_or_else(|| {
                format!(
                    "{item:?}: the weight must be a number or a fraction between 0 and 64, e.g. \
                     1, 0.25 or 3/7"
                )
            })?;
            if configured.insert(ksm_name(resource), weight).is_some() {
                return Err(format!("{resource} is given twice"));
            }
        }
        Ok(Self { configured })
    }

    /// The default weight of a kube-state-metrics resource name, if it has one.
    fn default_weight(name: &str) -> Option<f64> {
        match name {
            "nvidia_com_gpu" | "amd_com_gpu" => Some(1.0),
            _ => {
                // nvidia_com_mig_<C>g_<M>gb[_me...]
                let rest = name.strip_prefix("nvidia_com_mig_")?;
                let (slices, _) = rest.split_once("g_")?;
                let c: u32 = slices.parse().ok()?;
                (1..=7).contains(&c).then(|| f64::from(c) / 7.0)
            }
        }
    }

    /// How the resource `name` (kube-state-metrics form) is billed.
    pub fn weight(&self, name: &str) -> Weight {
        if let Some(w) = self.configured.get(name) {
            return Weight::Known(*w);
        }
        if name == SHARED {
            return Weight::SharedUnconfigured;
        }
        Self::default_weight(name).map_or(Weight::Unknown, Weight::Known)
    }

    /// The effective weights for `--check-config`.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            "nvidia_com_gpu=1".to_string(),
            "amd_com_gpu=1".to_string(),
            "nvidia_com_mig_<C>g_<M>gb=C/7".to_string(),
        ];
        for (name, w) in &self.configured {
            parts.push(format!("{name}={w} (configured)"));
        }
        if !self.configured.contains_key(SHARED) {
            parts.push(format!("{SHARED}: refused until configured"));
        }
        parts.join(", ")
    }
}

/// Where GPU-hours are read from (`--gpu-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GpuSource {
    /// kube-state-metrics' container requests of GPU-like extended resources: blind to GPUs
    /// allocated through Dynamic Resource Allocation (warned about)
    Requests,
    /// dcgm-exporter's per-device series attributed to pods (`DCGM_FI_DEV_FB_USED`): every
    /// allocation, device plugin, DRA, MIG and shared GPUs alike
    Devices,
}

impl std::fmt::Display for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GpuSource::Requests => "requests",
            GpuSource::Devices => "devices",
        })
    }
}

/// `--gpu-model MODEL=SUFFIX`: each model's GPU-hours as `gpu_<SUFFIX>` beside the total. The
/// model is the device's own `modelName` (devices source) or its node's GPU Feature Discovery
/// product (requests source); `=SUFFIX`, an empty model, keys the devices that report no
/// `modelName` (older dcgm-exporters, dcgmproftester).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuModels {
    /// Normalised model name ([`GpuModels::normalise`]) → message key (`gpu_<suffix>`).
    by_model: BTreeMap<String, String>,
}

impl GpuModels {
    /// Parse `--gpu-model MODEL=SUFFIX` items. Several models may share a suffix (two
    /// variants priced alike).
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut by_model = BTreeMap::new();
        for item in items.iter().filter(|s| !s.trim().is_empty()) {
            let (model, suffix) = item.rsplit_once('=').ok_or_else(|| {
                format!("{item:?}: expected MODEL=SUFFIX, e.g. 'NVIDIA H100 80GB HBM3=h100'")
            })?;
            // An empty model is the devices that report none (dcgm-exporter series without
            // `modelName`): they are billed under this key, not refused.
            let (model, suffix) = (model.trim(), suffix.trim());
            if !crate::usage::is_model_key(&format!("gpu_{suffix}")) {
                return Err(format!(
                    "{item:?}: the suffix must be 1 to {} characters of a-z, 0-9 and _ (not \
                     first or last), e.g. h100 or a100_80gb: it becomes the message key \
                     gpu_<suffix>",
                    crate::usage::MAX_MODEL_SUFFIX
                ));
            }
            if by_model
                .insert(Self::normalise(model), format!("gpu_{suffix}"))
                .is_some()
            {
                return Err(format!("the model {model:?} is given twice"));
            }
        }
        Ok(Self { by_model })
    }

    /// The form models are compared in: GPU Feature Discovery's (spaces as dashes), ASCII
    /// case folded, so `NVIDIA H100 80GB HBM3` and `NVIDIA-H100-80GB-HBM3` are one model.
    /// GFD's `single` MIG strategy appends the profile to the node's product
    /// (`<product>-MIG-<profile>`, k8s-device-plugin's MIG labeler), which is cut: a slice is
    /// billed as the model it is a slice of.
    pub fn normalise(model: &str) -> String {
        let m = model.trim().replace(' ', "-").to_ascii_lowercase();
        match m.find("-mig-") {
            Some(at) => m[..at].to_string(),
            None => m,
        }
    }

    /// Whether models are billing keys in this run.
    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty()
    }

    /// The message key of `model` (`gpu_<suffix>`), if it is mapped.
    pub fn key(&self, model: &str) -> Option<&str> {
        self.by_model
            .get(&Self::normalise(model))
            .map(String::as_str)
    }

    /// Every message key, each once, sorted: every entry carries them all.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.by_model.values().cloned().collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The mapping for `--check-config`.
    pub fn describe(&self) -> String {
        if self.by_model.is_empty() {
            return "(none: one gpu total, no per-model keys)".into();
        }
        self.by_model
            .iter()
            .map(|(m, k)| format!("{m}={k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_both_spellings_to_one_key() {
        let m = GpuModels::parse(&[
            "NVIDIA H100 80GB HBM3=h100".into(),
            "Tesla T4=t4".into(),
            "NVIDIA A100-SXM4-80GB=a100_80gb".into(),
        ])
        .unwrap();
        assert_eq!(m.key("NVIDIA H100 80GB HBM3"), Some("gpu_h100"));
        assert_eq!(m.key("NVIDIA-H100-80GB-HBM3"), Some("gpu_h100"));
        assert_eq!(m.key("Tesla-T4"), Some("gpu_t4"));
        assert_eq!(m.key("NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"), Some("gpu_h100"));
        assert_eq!(m.key("NVIDIA A100-SXM4-80GB"), Some("gpu_a100_80gb"));
        assert_eq!(m.key("NVIDIA L4"), None);
        assert_eq!(m.keys(), ["gpu_a100_80gb", "gpu_h100", "gpu_t4"]);
        for key in m.keys() {
            assert!(crate::usage::is_model_key(&key), "{key}");
        }
        for bad in ["gpu", "gpu_", "gpu_H100", "gpu__x", "cpu_h100", "gpu_a-b"] {
            assert!(!crate::usage::is_model_key(bad), "{bad}");
        }
        // The empty model: devices that report none.
        let unnamed = GpuModels::parse(&["=other".into()]).unwrap();
        assert_eq!(unnamed.key(""), Some("gpu_other"));
        assert_eq!(unnamed.key("Tesla T4"), None);
        for bad in [
            "h100",
            "X=",
            "X=H100",
            "X=_h",
            "X=a-b",
            &format!("X={}", "a".repeat(33)),
        ] {
            assert!(GpuModels::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(GpuModels::parse(&["A B=a".into(), "A-B=b".into()]).is_err());
    }

    #[test]
    fn defaults_and_configured_weights() {
        let w = GpuWeights::parse(&[
            "nvidia.com/gpu.shared=1/4".into(),
            "gpu.intel.com/i915=0.5".into(),
        ])
        .unwrap();
        assert_eq!(w.weight("nvidia_com_gpu"), Weight::Known(1.0));
        assert_eq!(w.weight("amd_com_gpu"), Weight::Known(1.0));
        assert_eq!(w.weight("nvidia_com_mig_1g_5gb"), Weight::Known(1.0 / 7.0));
        assert_eq!(w.weight("nvidia_com_mig_3g_20gb"), Weight::Known(3.0 / 7.0));
        assert_eq!(
            w.weight("nvidia_com_mig_1g_5gb_me"),
            Weight::Known(1.0 / 7.0)
        );
        assert_eq!(w.weight("nvidia_com_gpu_shared"), Weight::Known(0.25));
        assert_eq!(w.weight("gpu_intel_com_i915"), Weight::Known(0.5));
        assert_eq!(w.weight("example_com_gpu"), Weight::Unknown);
        let none = GpuWeights::default();
        assert_eq!(
            none.weight("nvidia_com_gpu_shared"),
            Weight::SharedUnconfigured
        );
        // A configured MIG weight wins over C/7 (an A30 has 4 slices).
        let a30 = GpuWeights::parse(&["nvidia.com/mig-1g.6gb=1/4".into()]).unwrap();
        assert_eq!(a30.weight("nvidia_com_mig_1g_6gb"), Weight::Known(0.25));
    }

    #[test]
    fn bad_weights_are_refused() {
        for bad in ["nvidia.com/gpu", "=1", "x=-1", "x=1/0", "x=abc", "x=100"] {
            assert!(GpuWeights::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(GpuWeights::parse(&["a.b/c=1".into(), "a_b_c=2".into()]).is_err());
    }
}
