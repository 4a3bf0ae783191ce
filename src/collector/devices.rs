//! How the devices source reads an hour of dcgm-exporter's series without returning every
//! sample: a fleet of 10,000 GPUs scraped every 15 s writes about 3.6 million samples in the
//! hour and the `--max-scrape-gap` on either side that the rules need, and a store spends far
//! more on writing them out as JSON than on reading them (measured: 14 times one pass of
//! `count_over_time` over the same samples).
//!
//! So each hour is read as a summary first ([`device_queries::summary`]): per device series, its
//! samples in the read (the hour and `--max-scrape-gap` on either side); per target, the scrapes
//! attempted in the read and on each side of the hour ([`device_queries::target_summary`]). A
//! series is *steady* when its target was scraped on both sides of the hour and the series has a
//! sample at every scrape of its target attempted in the read (a failed scrape writes `up` 0 and no
//! sample): the same pod (or nobody) held its device all hour. A device all of whose series (every
//! series with its UUID: exporter replicas, the copies per pod, its MIG instances) are steady is
//! billed from the summary: its series are stood in for by points across the hour (every half
//! `--max-scrape-gap`), on which [`holders::integrate`] applies the same rules (weights, holders,
//! shares, models) and gives the whole hour, as the samples would. Only the other devices (a pod
//! that started or stopped near the hour, a hole, a target that failed, one UUID on two nodes) are
//! read raw, by their UUIDs, with the `up` of their targets; a fleet at rest costs one pass. The
//! summary is one window over the read, not the hour and each side apart: a store spends about as
//! much on finding a series' chunks as on reading an hour of them (measured at 10,000 GPUs: three
//! windows cost 2.4 times one).
//!
//! Where a device that is not steady cannot be named in a query (a series with its UUID only as
//! `uuid`, or one with other characters than letters, digits and dashes), the hour is read raw as a
//! whole, in parts cut by the last character of the UUID ([`device_queries::parts`]).

use std::collections::{BTreeMap, BTreeSet};

use tracing::debug;

use super::Collector;
use super::error::{CollectError, Result};
use crate::gpu::{dcgm, holders};
use crate::prometheus::{RangeQuery, SampleQuery, Series};
use crate::queries::devices as device_queries;
use crate::window::{HourWindow, rfc3339_millis};

/// The most bytes one part of the devices' answers may take ([`device_queries::parts_for`]): with
/// the answer's parsed copy beside it, what a part costs in memory at once.
const DEVICE_PART_BYTES: usize = 16 << 20;

/// The device series a dcgm-exporter target is taken to write, to size the summary's parts: a
/// node of eight GPUs each cut into seven MIG instances writes 56.
const SERIES_PER_TARGET: f64 = 64.0;

/// UUIDs per raw read of devices that are not steady (about 40 characters each: the query
/// stays a few kilobytes, under VictoriaMetrics' 16 KB limit).
const UUIDS_PER_READ: usize = 64;

/// The spacing of the points that stand in for a steady series' samples: half of
/// `--max-scrape-gap` (`pad_ms`), so that [`holders::integrate`] finds no hole between them, and
/// few: the integration's work is per point. At least 30 s (the shortest gap allowed is a
/// minute).
fn stand_in_spacing(pad_ms: u128) -> i64 {
    i64::try_from(pad_ms / 2).unwrap_or(i64::MAX).max(30_000)
}

impl Collector<'_> {
    /// The devices' hour ([`holders::integrate`]): dcgm-exporter's series from
    /// `--max-scrape-gap` before the hour to as long after it, summarised, and the devices
    /// that did not stay as they were read raw (module documentation).
    pub async fn device_hour(&self, hour: &HourWindow) -> Result<holders::DeviceHour> {
        let pad = self.config.max_scrape_gap;
        let at = hour.end() + chrono::TimeDelta::from_std(pad).unwrap_or_default();
        let len = 3_600_000 + 2 * pad.as_millis();
        let matchers = self
            .prometheus
            .provenance()
            .targets(crate::provenance::Source::DcgmExporter);
        let targets_q =
            device_queries::target_summary(self.windows, &matchers, pad.as_millis(), len);
        let targets = self
            .prometheus
            .query_range(&RangeQuery::at("gpu device targets", &targets_q, at))
            .await?;
        let budget = (self.prometheus.max_response_bytes() / 4).min(DEVICE_PART_BYTES);
        // Each target's own `namespace` and `pod` (what a series naming them was scraped as),
        // its attempts in the hour and its failures in the read.
        let owners = dcgm::target_labels(&targets);
        let per_target = |window: &str| -> BTreeMap<String, f64> {
            targets
                .iter()
                .filter(|s| s.labels.get("window").is_some_and(|w| w == window))
                .filter_map(|s| {
                    let instance = s.labels.get("instance")?.clone();
                    Some((instance, s.points.last().map_or(0.0, |(_, v)| *v)))
                })
                .collect()
        };
        let attempts = per_target("attempts");
        let (before, after) = (per_target("before"), per_target("after"));
        // A target scraped on both sides of the hour. Whether its scrapes all answered needs
        // no row of its own: a failed scrape writes `up` 0 and no device sample, so each of
        // its series falls short of its attempts.
        let across = |t: &str| {
            before.get(t).is_some_and(|n| *n > 0.0) && after.get(t).is_some_and(|n| *n > 0.0)
        };

        // The summary, in parts sized for its rows: up to a row per device series of each
        // target, which counting them would cost half the summary's own read.
        let rows = SERIES_PER_TARGET * attempts.len() as f64;
        let summarised = self.summary(hour, at, len, rows, budget).await?;

        // Steady devices, by UUID: every series of the UUID steady, on one node.
        let (start, end) = (
            hour.start().timestamp_millis(),
            hour.end().timestamp_millis(),
        );
        let mut read: Vec<dcgm::DeviceSeries> = Vec::with_capacity(summarised.len());
        let mut by_uuid: BTreeMap<String, (bool, BTreeSet<String>, Vec<dcgm::DeviceSeries>)> =
            BTreeMap::new();
        // Devices a series of which names its UUID only as `uuid`: a raw read by `UUID` would
        // not find it.
        let mut unnamed: BTreeSet<String> = BTreeSet::new();
        for (labels, n) in &summarised {
            let s = Series {
                labels: labels.clone(),
                points: Vec::new(),
            };
            let device = read_device(&s, &owners, hour)?;
            let target = device.target.clone();
            let steady =
                across(&target) && attempts.get(&target).is_some_and(|a| *a > 0.0 && n == a);
            if !labels.contains_key("UUID") {
                unnamed.insert(device.device.uuid.clone());
            }
            let entry = by_uuid
                .entry(device.device.uuid.clone())
                .or_insert_with(|| (true, BTreeSet::new(), Vec::new()));
            entry.0 &= steady;
            entry.1.insert(device.node.clone());
            entry.2.push(device);
        }
        let spacing = stand_in_spacing(pad.as_millis());
        let stand_in: Vec<i64> = (start - spacing..=end + spacing)
            .step_by(usize::try_from(spacing).unwrap_or(usize::MAX))
            .collect();
        let mut unsteady: Vec<String> = Vec::new();
        for (uuid, (steady, nodes, series)) in by_uuid {
            if steady && nodes.len() == 1 {
                for mut s in series {
                    s.times = stand_in.clone();
                    read.push(s);
                }
            } else {
                unsteady.push(uuid);
            }
        }
        // The targets of the devices read raw: their `up` tells holes from a device's end.
        let mut raw_targets: BTreeSet<String> = BTreeSet::new();
        let series = summarised.len() as f64;
        debug!(
            hour = %hour,
            series = summarised.len(),
            steady = read.len(),
            unsteady_devices = unsteady.len(),
            "GPU devices summarised"
        );
        drop(summarised);

        // How far the store holds the devices: only a device read raw may need it (one whose
        // last sample is near the hour's end).
        let frontier = if unsteady.is_empty() {
            None
        } else {
            let newest_q = device_queries::newest_scrape(&matchers, len);
            self.prometheus
                .query_range(&RangeQuery::at("gpu devices' newest scrape", &newest_q, at))
                .await?
                .iter()
                .flat_map(|s| s.points.last())
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite())
                .map(|v| (v * 1000.0).round() as i64)
                .max()
        };
        let nameable = |u: &String| device_queries::plain_uuid(u) && !unnamed.contains(u);
        let (raw, down) = if unsteady.iter().all(nameable) {
            let raw = self
                .devices_by_uuid(hour, at, len, &unsteady, &owners)
                .await?;
            raw_targets.extend(raw.iter().map(|s| s.target.clone()));
            let down = self.targets_up(at, len, &matchers, &raw_targets).await?;
            (raw, down)
        } else {
            // A device that is not steady and cannot be named by `UUID`: the hour read raw,
            // whole (its parts hold every series, with a `UUID` or without).
            read.clear();
            // A sample per 15 s (the GPU Operator's interval) of each series summarised.
            let bytes = series * (len as f64 / 15_000.0) * device_queries::SAMPLE_BYTES;
            self.devices_raw(hour, at, len, &matchers, &owners, bytes, budget)
                .await?
        };
        read.extend(raw);
        self.integrate_devices(hour, &read, &down, frontier)
    }

    /// Per device series (its labels), its samples in the read ([`device_queries::summary`]),
    /// in parts sized for about `rows` rows, two at a time.
    async fn summary(
        &self,
        hour: &HourWindow,
        at: chrono::DateTime<chrono::Utc>,
        len: u128,
        rows: f64,
        budget: usize,
    ) -> Result<BTreeMap<BTreeMap<String, String>, f64>> {
        let parts = device_queries::parts(device_queries::parts_for(
            rows * device_queries::SUMMARY_ROW_BYTES,
            budget,
        ));
        if parts.len() > 1 {
            debug!(hour = %hour, parts = parts.len(), "reading the GPU devices' summary in parts");
        }
        let exprs: Vec<String> = parts
            .iter()
            .map(|part| device_queries::summary(self.windows, part, len))
            .collect();
        let reads: Vec<RangeQuery> = exprs
            .iter()
            .map(|expr| RangeQuery::at("gpu devices' summary", expr, at))
            .collect();
        // Per series (its labels), its samples in the read.
        let mut summarised: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
        for pair in reads.chunks(2) {
            let (a, b) = tokio::try_join!(self.prometheus.query_range(&pair[0]), async {
                match pair.get(1) {
                    Some(q) => self.prometheus.query_range(q).await,
                    None => Ok(Vec::new()),
                }
            })?;
            for s in a.into_iter().chain(b) {
                summarised.insert(s.labels, s.points.last().map_or(0.0, |(_, v)| *v));
            }
        }
        Ok(summarised)
    }

    /// The raw samples of the devices `uuids`, a few dozen per query.
    async fn devices_by_uuid(
        &self,
        hour: &HourWindow,
        at: chrono::DateTime<chrono::Utc>,
        len: u128,
        uuids: &[String],
        labels: &BTreeMap<(String, String), (String, String)>,
    ) -> Result<Vec<dcgm::DeviceSeries>> {
        let mut out = Vec::new();
        for chunk in uuids.chunks(UUIDS_PER_READ) {
            let uuids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let expr = device_queries::samples_of_devices(self.windows, len, &uuids);
            let answer = self
                .prometheus
                .query_device_samples(&SampleQuery {
                    what: "gpu devices that changed",
                    expr: &expr,
                    at,
                })
                .await?;
            for s in &answer {
                out.push(read_device(s, labels, hour)?);
            }
        }
        Ok(out)
    }

    /// The times each of `targets` failed its scrapes (`up` 0) in the read.
    async fn targets_up(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        len: u128,
        matchers: &str,
        targets: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Vec<i64>>> {
        let mut down = BTreeMap::new();
        let targets: Vec<&String> = targets.iter().collect();
        for chunk in targets.chunks(UUIDS_PER_READ) {
            let instances: Vec<String> = chunk.iter().map(|t| t.replace('.', "\\\\.")).collect();
            let expr = device_queries::target_health(
                self.windows,
                &format!("{matchers}, instance=~\"{}\"", instances.join("|")),
                len,
            );
            let answer = self
                .prometheus
                .query_device_samples(&SampleQuery {
                    what: "gpu device targets' up",
                    expr: &expr,
                    at,
                })
                .await?;
            down.extend(dcgm::down_times(&answer));
        }
        Ok(down)
    }

    /// Every device sample of the hour, raw, in parts by the last character of the UUID, and
    /// the failures of every target.
    #[allow(clippy::too_many_arguments)]
    async fn devices_raw(
        &self,
        hour: &HourWindow,
        at: chrono::DateTime<chrono::Utc>,
        len: u128,
        matchers: &str,
        labels: &BTreeMap<(String, String), (String, String)>,
        bytes: f64,
        budget: usize,
    ) -> Result<(Vec<dcgm::DeviceSeries>, BTreeMap<String, Vec<i64>>)> {
        let parts = device_queries::parts(device_queries::parts_for(bytes, budget));
        debug!(hour = %hour, parts = parts.len(), "reading the GPU devices' samples in parts");
        let exprs: Vec<String> = parts
            .iter()
            .map(|part| device_queries::samples_of(self.windows, len, part))
            .chain([device_queries::target_health(self.windows, matchers, len)])
            .collect();
        let mut read = Vec::new();
        let mut down = BTreeMap::new();
        let last = exprs.len() - 1;
        for (i, expr) in exprs.iter().enumerate() {
            let answer = self
                .prometheus
                .query_device_samples(&SampleQuery {
                    what: if i == last {
                        "gpu device targets' up"
                    } else {
                        "gpu devices"
                    },
                    expr,
                    at,
                })
                .await?;
            if i == last {
                down = dcgm::down_times(&answer);
            } else {
                for s in &answer {
                    read.push(read_device(s, labels, hour)?);
                }
            }
        }
        Ok((read, down))
    }

    /// The devices' series of `hour` integrated ([`holders::integrate`]), or its refusal.
    fn integrate_devices(
        &self,
        hour: &HourWindow,
        read: &[dcgm::DeviceSeries],
        down: &BTreeMap<String, Vec<i64>>,
        frontier: Option<i64>,
    ) -> Result<holders::DeviceHour> {
        let pad = self.config.max_scrape_gap;
        let pad_ms = i64::try_from(pad.as_millis()).unwrap_or(i64::MAX);
        let interval = self
            .config
            .scrape_interval
            .map_or(30_000, |i| i64::try_from(i.as_millis()).unwrap_or(30_000));
        let (start, end) = (
            hour.start().timestamp_millis(),
            hour.end().timestamp_millis(),
        );
        if let Some(twice) = holders::on_two_nodes(read, (start, end)) {
            return Err(CollectError::DeviceSeries {
                hour: hour.to_string(),
                reason: format!(
                    "the device {} is reported by the nodes {:?} and {:?} at once (around {}): \
                     a GPU's UUID is unique, so one of them is not that GPU",
                    twice.device,
                    twice.nodes.0,
                    twice.nodes.1,
                    rfc3339_millis(twice.at)
                ),
                fix: "Check the nodes' dcgm-exporter and their `hostname` label (a cloned \
                      node image, a relabelling that copies series), or bill --gpu-source \
                      requests",
            });
        }
        holders::integrate(
            read,
            (start, end),
            pad_ms,
            interval,
            &self.config.gpu_weights,
            &self.config.gpu_models,
            holders::Exporters { down, frontier },
        )
        .map_err(|hole| CollectError::DeviceGap {
            device: hole.device.to_string(),
            node: hole.node,
            hour: hour.to_string(),
            from: rfc3339_millis(hole.from),
            to: rfc3339_millis(hole.to),
            minutes: (hole.to - hole.from) as f64 / 60_000.0,
            limit: humantime::format_duration(pad).to_string(),
        })
    }
}

/// One series of dcgm-exporter's samples, read ([`dcgm::read`]), or the refusal of `hour`.
fn read_device(
    s: &Series,
    targets: &BTreeMap<(String, String), (String, String)>,
    hour: &HourWindow,
) -> Result<dcgm::DeviceSeries> {
    dcgm::read(s, targets).map_err(|e| match e {
        dcgm::Unreadable::NoUuid(labels) => CollectError::DeviceSeries {
            hour: hour.to_string(),
            reason: format!("it has no UUID label: {labels:?}"),
            fix: "Check the relabelling of dcgm-exporter's series: each device is \
                  told apart by its UUID",
        },
        dcgm::Unreadable::HalfHolder(labels) => CollectError::DeviceSeries {
            hour: hour.to_string(),
            reason: format!(
                "it names half a pod (a pod without its namespace, or a namespace \
                 without a pod): {labels:?}"
            ),
            fix: "Check the relabelling of dcgm-exporter's series (both the pod's \
                  namespace and name must be kept, as exported_namespace and \
                  exported_pod or as namespace and pod), or bill --gpu-source requests",
        },
        dcgm::Unreadable::NoTarget { job, instance } => CollectError::DeviceSeries {
            hour: hour.to_string(),
            reason: format!(
                "it names a pod, but the store holds no `up` of its target (job \
                 {job:?}, instance {instance:?}), so the pod cannot be told from the \
                 exporter's own labels"
            ),
            fix: "Keep `up` in what reaches the store (remote write's \
                  write_relabel_configs, a metric allowlist)",
        },
    })
}
