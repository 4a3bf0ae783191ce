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
//! The devices source (`--gpu-source devices`, [`crate::gpu::dcgm`]) weighs a MIG instance by its
//! profile through the same table: `GPU_I_PROFILE="1g.10gb"` is `nvidia.com/mig-1g.10gb`.
//!

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

#[cfg(test)]
mod tests {
    use super::*;

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
