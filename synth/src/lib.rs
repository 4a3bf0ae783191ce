//! Synthetic clusters with known ground truth, for tests, the demo and benchmarks.
//!
//! [`scenario::build`] makes a cluster whose objects exercise every hard case (pods starting
//! and stopping mid-hour, counter resets, non-running phases, two kube-state-metrics replicas,
//! cAdvisor's pod-level and pause series, namespaces and PVCs coming and going, resizes, GPUs,
//! scrape offsets and a scrape gap); [`openmetrics::write`] renders its samples for promtool;
//! [`truth::compute`] integrates the same timelines exactly.

pub mod fleet;
pub mod model;
pub mod openmetrics;
pub mod scenario;
pub mod tenant;
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
    let plain = opts.external_labels.is_empty()
        && opts.honor_labels
        && opts.omit_metrics.is_empty()
        && opts.stored_until.is_none()
        && opts.others_stored_until.is_none()
        && !opts.tenant_series;
    if plain {
        openmetrics::write(&cluster, &mut out)?;
    } else {
        let mut text = Vec::new();
        openmetrics::write(&cluster, &mut text)?;
        if opts.tenant_series {
            let mut tenants = Vec::new();
            tenant::write(&cluster, &mut tenants)?;
            let mut merged = Vec::new();
            openmetrics::merge(&[text, tenants], &mut merged)?;
            text = merged;
        }
        let mut kept = openmetrics::without(&text, &opts.omit_metrics);
        if let Some(h) = opts.stored_until {
            kept = openmetrics::until(&kept, opts.start + (h * 3600.0) as i64);
        }
        if let Some(h) = opts.others_stored_until {
            kept = openmetrics::until_outside(
                &kept,
                opts.start + (h * 3600.0) as i64,
                &["kube-system", "openshift-monitoring"],
            );
        }
        openmetrics::relabel(&kept, &opts.external_labels, opts.honor_labels, &mut out)?;
    }
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

/// Several clusters in one store, as a central Thanos, Mimir or VictoriaMetrics holds them
/// (give each its `external_labels`): one OpenMetrics file with every family once, and each
/// cluster's own truth. The datasets returned all name the merged file.
pub fn write_store(clusters: &[scenario::Options], dir: &Path) -> std::io::Result<Vec<Dataset>> {
    std::fs::create_dir_all(dir)?;
    let mut datasets = Vec::new();
    let mut texts = Vec::new();
    for (i, opts) in clusters.iter().enumerate() {
        let d = write_dataset(opts, &dir.join(format!("cluster-{i}")))?;
        texts.push(std::fs::read(&d.openmetrics)?);
        std::fs::remove_file(&d.openmetrics)?;
        datasets.push(d);
    }
    let merged = dir.join("metrics.om");
    let mut out = BufWriter::new(std::fs::File::create(&merged)?);
    openmetrics::merge(&texts, &mut out)?;
    for d in &mut datasets {
        d.openmetrics = merged.clone();
    }
    Ok(datasets)
}
