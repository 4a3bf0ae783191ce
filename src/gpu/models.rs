//! GPU models as billing keys (`--gpu-model MODEL=SUFFIX`, [`GpuModels`]): a model is named as
//! the GPUs name themselves, NVML's product name, which dcgm-exporter writes as `modelName`
//! (`NVIDIA H100 80GB HBM3`) and GPU Feature Discovery as the node label
//! `nvidia.com/gpu.product` with its spaces as dashes (`NVIDIA-H100-80GB-HBM3`); both forms
//! match one entry.

use std::collections::BTreeMap;

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
}
