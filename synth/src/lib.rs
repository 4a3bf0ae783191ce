//! Synthetic clusters with known ground truth, for tests, the demo and benchmarks.
//!
//! [`scenario::build`] makes a cluster whose objects exercise every hard case (pods starting
//! and stopping mid-hour, counter resets, non-running phases, two kube-state-metrics replicas,
//! cAdvisor's pod-level and pause series, namespaces and PVCs coming and going, resizes, GPUs,
//! scrape offsets and a scrape gap); [`openmetrics::write`] renders its samples for promtool;
//! [`truth::compute`] integrates the same timelines exactly.

pub mod model;
pub mod openmetrics;
pub mod scenario;
pub mod truth;

use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Files written by [`write_dataset`].
#[derive(Debug, Clone)]
pub struct Dataset {
    pub openmetrics: PathBuf,
    pub truth: PathBuf,
    /// Hours with truth: `[first_truth_hour, data_end)`.
    pub first_truth_hour: i64,
    pub data_end: i64,
}

/// Write `metrics.om` (OpenMetrics) and `truth.json` (one [`truth::TruthRow`] per
/// namespace-hour, all hours but the first, which has no hour before it) into `dir`.
pub fn write_dataset(opts: &scenario::Options, dir: &Path) -> std::io::Result<Dataset> {
    std::fs::create_dir_all(dir)?;
    let cluster = scenario::build(opts);
    let openmetrics = dir.join("metrics.om");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&openmetrics)?);
    openmetrics::write(&cluster, &mut out)?;
    let first_truth_hour = cluster.data_start + 3600;
    let rows = truth::compute(&cluster, first_truth_hour, cluster.data_end);
    let truth = dir.join("truth.json");
    std::fs::write(
        &truth,
        serde_json::to_vec_pretty(&rows).map_err(std::io::Error::other)?,
    )?;
    Ok(Dataset {
        openmetrics,
        truth,
        first_truth_hour,
        data_end: cluster.data_end,
    })
}
