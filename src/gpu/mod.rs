//! GPUs: what a GPU-hour is and who held it.
//!
//! Two sources tell it (`--gpu-source`, [`GpuSource`]): kube-state-metrics' requests of
//! GPU-like extended resources, weighed by [`weights`] and keyed per model by the node's GPU
//! Feature Discovery label ([`crate::queries::gpu`]); or dcgm-exporter's device series
//! ([`dcgm`]: their labels as every exporter version writes them), whose holders over the hour
//! [`holders`] integrates. [`models`] turns model names into billing keys for both. The
//! collector reads the store for them (`collector::devices`); this folder holds no I/O.

pub mod dcgm;
pub mod holders;
pub mod models;
pub mod weights;

pub use models::GpuModels;
pub use weights::{GpuWeights, Weight, ksm_name};

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
