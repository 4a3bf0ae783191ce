//! What is billed: the dimensions of a namespace-hour, the usage they add up to, and the rules
//! every quantity and namespace name must keep before it may leave the job.
//!
//! Why a module of its own: shaping, the collector's validation, the contract check, the
//! audit's comparison and the tests all walk the same six quantities. They iterate
//! [`Dimension::ALL`] and read and write through [`NamespaceUsage::get`] and
//! [`NamespaceUsage::get_mut`], whose matches are exhaustive, so a new dimension is one variant
//! and one field here (plus the query that feeds it), and every place that forgets it fails to
//! compile instead of skipping it. This module imports nothing of the crate: everything else
//! points down to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::window::HourWindow;

/// One billed quantity of a namespace-hour, named as in the MCMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// Core-hours.
    Cpu,
    /// GPU-hours.
    Gpu,
    /// GiB-hours of ReadWriteOnce volumes.
    StorageRwoStandard,
    /// GiB-hours of ReadWriteMany volumes per tier ([`Tier`]).
    StorageRwxStandard,
    StorageRwxBasic,
    StorageRwxPremium,
    /// GiB-hours of memory requested (`--bill-memory`): present in a message only when billed.
    Ram,
}

impl Dimension {
    /// Every dimension, in the message's field order.
    pub const ALL: [Dimension; 7] = [
        Dimension::Cpu,
        Dimension::Gpu,
        Dimension::StorageRwoStandard,
        Dimension::StorageRwxStandard,
        Dimension::StorageRwxBasic,
        Dimension::StorageRwxPremium,
        Dimension::Ram,
    ];

    /// The field name in the message's `consumption` object.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Cpu => "cpu",
            Dimension::Gpu => "gpu",
            Dimension::StorageRwoStandard => "storage_rwo_standard",
            Dimension::StorageRwxStandard => "storage_rwx_standard",
            Dimension::StorageRwxBasic => "storage_rwx_basic",
            Dimension::StorageRwxPremium => "storage_rwx_premium",
            Dimension::Ram => "ram",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Storage tier of an RWX volume (`--storage-tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Standard,
    Basic,
    Premium,
}

impl Tier {
    /// The dimension an RWX volume of this tier is billed in.
    pub fn dimension(self) -> Dimension {
        match self {
            Tier::Standard => Dimension::StorageRwxStandard,
            Tier::Basic => Dimension::StorageRwxBasic,
            Tier::Premium => Dimension::StorageRwxPremium,
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standard" => Ok(Tier::Standard),
            "basic" => Ok(Tier::Basic),
            "premium" => Ok(Tier::Premium),
            _ => Err(()),
        }
    }
}

/// What one namespace held in one hour. Unrounded as collected; a message's `consumption` is
/// the same quantities rounded ([`NamespaceUsage::rounded`]), hence the serde field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceUsage {
    /// Core-hours.
    pub cpu: f64,
    /// GPU-hours.
    pub gpu: f64,
    /// GiB-hours of ReadWriteOnce volumes.
    pub storage_rwo_standard: f64,
    /// GiB-hours of ReadWriteMany volumes per tier.
    pub storage_rwx_standard: f64,
    pub storage_rwx_basic: f64,
    pub storage_rwx_premium: f64,
    /// GiB-hours of memory requested; `None` (and absent from the message) unless
    /// `--bill-memory`, so that the default messages are what they always were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<f64>,
    /// GPU-hours per GPU model, keyed `gpu_<suffix>` (`--gpu-model`): part of `gpu`, and
    /// empty (absent from the message) unless models are billing keys; then every entry
    /// carries every configured key.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_models: BTreeMap<String, f64>,
}

impl NamespaceUsage {
    /// The quantity of `d`; 0 for memory when it is not billed.
    pub fn get(&self, d: Dimension) -> f64 {
        match d {
            Dimension::Cpu => self.cpu,
            Dimension::Gpu => self.gpu,
            Dimension::StorageRwoStandard => self.storage_rwo_standard,
            Dimension::StorageRwxStandard => self.storage_rwx_standard,
            Dimension::StorageRwxBasic => self.storage_rwx_basic,
            Dimension::StorageRwxPremium => self.storage_rwx_premium,
            Dimension::Ram => self.ram.unwrap_or(0.0),
        }
    }

    /// The quantity of `d`, to add to; memory becomes billed (0 until added to).
    pub fn get_mut(&mut self, d: Dimension) -> &mut f64 {
        match d {
            Dimension::Cpu => &mut self.cpu,
            Dimension::Gpu => &mut self.gpu,
            Dimension::StorageRwoStandard => &mut self.storage_rwo_standard,
            Dimension::StorageRwxStandard => &mut self.storage_rwx_standard,
            Dimension::StorageRwxBasic => &mut self.storage_rwx_basic,
            Dimension::StorageRwxPremium => &mut self.storage_rwx_premium,
            Dimension::Ram => self.ram.get_or_insert(0.0),
        }
    }

    /// Whether `d` is billed here (memory only with `--bill-memory`).
    pub fn has(&self, d: Dimension) -> bool {
        d != Dimension::Ram || self.ram.is_some()
    }

    /// Every billed quantity with its dimension, in the message's order.
    pub fn quantities(&self) -> impl Iterator<Item = (Dimension, f64)> + '_ {
        Dimension::ALL
            .into_iter()
            .filter(|d| self.has(*d))
            .map(|d| (d, self.get(d)))
    }

    /// Every quantity by its message key: the dimensions', then the GPU models'.
    pub fn named_quantities(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.quantities()
            .map(|(d, q)| (d.name(), q))
            .chain(self.gpu_models.iter().map(|(k, q)| (k.as_str(), *q)))
    }

    /// Every billed quantity rounded by `round`.
    pub fn rounded(&self, round: impl Fn(f64) -> f64) -> Self {
        let mut r = self.clone();
        for (d, q) in self.quantities() {
            *r.get_mut(d) = round(q);
        }
        for q in r.gpu_models.values_mut() {
            *q = round(*q);
        }
        r
    }
}

/// Every billed namespace of one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourUsage {
    pub window: HourWindow,
    pub namespaces: BTreeMap<String, NamespaceUsage>,
}

/// More than this in one namespace-hour (a billion core-, GPU- or GiB-hours) is a broken
/// metric, not consumption: it fails the hour instead of overflowing the rounding.
pub const MAX_QUANTITY: f64 = 1e9;

/// Whether `q` may be billed: finite, not negative, at most [`MAX_QUANTITY`].
pub fn is_billable(q: f64) -> bool {
    q.is_finite() && (0.0..=MAX_QUANTITY).contains(&q)
}

/// The longest suffix of a per-model key (`gpu_<suffix>`).
pub const MAX_MODEL_SUFFIX: usize = 32;

/// Whether `key` is a per-model GPU key as `--gpu-model` writes them: `gpu_` and a suffix of
/// `a-z`, `0-9` and inner `_`.
pub fn is_model_key(key: &str) -> bool {
    key.strip_prefix("gpu_").is_some_and(|s| {
        !s.is_empty()
            && s.len() <= MAX_MODEL_SUFFIX
            && !s.starts_with('_')
            && !s.ends_with('_')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

/// Whether `name` is a Kubernetes namespace name (an RFC 1123 label).
pub fn is_namespace_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each dimension reads and writes its own field, and the names are the message's.
    #[test]
    fn every_dimension_has_its_own_field() {
        let mut u = NamespaceUsage::default();
        for (i, d) in Dimension::ALL.into_iter().enumerate() {
            *u.get_mut(d) = i as f64 + 1.0;
        }
        let json = serde_json::to_value(&u).unwrap();
        for (i, d) in Dimension::ALL.into_iter().enumerate() {
            assert_eq!(json[d.name()], i as f64 + 1.0, "{d}");
        }
        assert_eq!(json.as_object().unwrap().len(), Dimension::ALL.len());
        assert_eq!(u.rounded(|q| q * 2.0).get(Dimension::Gpu), 4.0);
        // Memory is absent unless billed: the default messages keep their six keys.
        let without = NamespaceUsage::default();
        let json = serde_json::to_value(&without).unwrap();
        assert_eq!(json.as_object().unwrap().len(), Dimension::ALL.len() - 1);
        assert!(json.get("ram").is_none());
        assert_eq!(without.quantities().count(), 6);
    }

    #[test]
    fn namespace_names_and_quantities() {
        assert!(is_namespace_name("team-a1"));
        for bad in ["", "Team", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(!is_namespace_name(bad), "{bad}");
        }
        assert!(is_billable(0.0) && is_billable(MAX_QUANTITY));
        assert!(!is_billable(-1e-12) && !is_billable(f64::NAN) && !is_billable(1e300));
    }
}
