//! `--recompute`: the hours collected again and compared with what the topic holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::collector::Collector;
use crate::kafka::reader::{ReadError, Reader};
use crate::message::{self, Consumption, KafkaMessage};
use crate::prometheus::Prometheus;
use crate::window::{self, HourWindow};

use super::judge::Seen;
use super::report::{HourReport, Status};
use super::{AuditError, AuditSettings, Recompute};

/// Collect the hours again and compare them, hour by hour, with the first copy of each part.
pub(super) async fn recompute_hours(
    settings: &AuditSettings,
    config: &Recompute,
    reader: &Arc<Reader>,
    seen: &BTreeMap<HourWindow, Seen>,
    hours: &mut [HourReport],
) -> crate::Result<()> {
    let prometheus = Prometheus::new(&config.prometheus)?;
    let first = settings.hours.first().map(|h| h.end()).unwrap_or_default();
    let collector = Collector::connect(&prometheus, &config.collect, first).await?;
    let mut index = 0;
    for span in window::spans(&settings.hours, config.collect.hours_per_query) {
        let collected = collector.collect_span(&span).await?;
        if let Some(w) = collected.waiting {
            return Err(w.refusal().into());
        }
        for usage in collected.usage.hours() {
            let report = &mut hours[index];
            index += 1;
            let Some(seen) = seen.get(&usage.window) else {
                continue;
            };
            if !report.status.is_good() {
                continue; // Already wrong on the topic; a comparison would add noise.
            }
            let now = message::shape(&usage, &config.message)?;
            // One hour's first copies, read again by offset and dropped after the comparison.
            let mut published = Vec::new();
            for copies in seen.parts.values() {
                let (partition, offset) = (copies.first.partition, copies.first.offset);
                let r = reader.clone();
                let bytes = tokio::task::spawn_blocking(move || r.fetch(partition, offset))
                    .await
                    .map_err(|e| crate::Error::Audit(AuditError::Task(e.to_string())))?
                    .map_err(AuditError::from)?
                    .payload;
                let m: KafkaMessage = serde_json::from_slice(&bytes).map_err(|e| {
                    crate::Error::Audit(AuditError::Read(ReadError::Read {
                        topic: settings.kafka.topic.clone(),
                        partition,
                        offset,
                        error: format!("the payload changed since it was read: {e}"),
                        reason: String::new(),
                    }))
                })?;
                published.push(m);
            }
            let findings = compare(&published, &now);
            if !findings.is_empty() {
                report.status = report.status.max(Status::Differs);
                report.findings.extend(findings);
            }
        }
        // The hours before are compared; the one a run would refuse now is refused here too.
        if let Some(refusal) = collected.refused {
            return Err(refusal.into());
        }
    }
    Ok(())
}

/// Differences between the published messages of an hour and the ones shaped now, per
/// namespace and dimension.
pub(super) fn compare(published: &[KafkaMessage], now: &[KafkaMessage]) -> Vec<String> {
    let mut findings = Vec::new();
    let header_of = |ms: &[KafkaMessage]| {
        ms.first().map(|m| {
            (
                m.header.service_name.clone(),
                m.header.service_version.clone(),
                m.header.service_location.clone(),
            )
        })
    };
    if header_of(published) != header_of(now) {
        findings.push(format!(
            "header (service_name, service_version, service_location): topic {:?}, now {:?}",
            header_of(published),
            header_of(now)
        ));
    }
    let entries = |ms: &[KafkaMessage]| -> BTreeMap<String, Consumption> {
        ms.iter()
            .flat_map(|m| &m.payload)
            .map(|e| (e.external_id.clone(), e.consumption.clone()))
            .collect()
    };
    let (before, after) = (entries(published), entries(now));
    for (id, b) in &before {
        let Some(a) = after.get(id) else {
            findings.push(format!("{id}: on the topic, not in Prometheus now"));
            continue;
        };
        for dim in crate::usage::Dimension::ALL {
            let shown = |u: &Consumption| {
                if u.has(dim) {
                    u.get(dim).to_string()
                } else {
                    "absent".to_string()
                }
            };
            let (x, y) = (shown(b), shown(a));
            if x != y {
                findings.push(format!("{id} {dim}: topic {x}, now {y}"));
            }
        }
        // GPU models (`--gpu-model`): a key on one side only is a difference too.
        let models: std::collections::BTreeSet<&String> =
            b.gpu_models.keys().chain(a.gpu_models.keys()).collect();
        for key in models {
            let shown = |u: &Consumption| {
                u.gpu_models
                    .get(key)
                    .map_or_else(|| "absent".to_string(), f64::to_string)
            };
            let (x, y) = (shown(b), shown(a));
            if x != y {
                findings.push(format!("{id} {key}: topic {x}, now {y}"));
            }
        }
    }
    for id in after.keys().filter(|id| !before.contains_key(*id)) {
        findings.push(format!("{id}: in Prometheus now, not on the topic"));
    }
    findings
}
