//! `consumption-metrics audit`: reads the topic back and shows, hour by hour, that every hour
//! of a range was published exactly once and right.
//!
//! Why it exists: "no hour lost, none counted twice" is a promise the billing team must be able
//! to check after the fact (an incident, a manual checkpoint move, the migration from the Go
//! job, a disputed invoice), not only trust.
//!
//! How it reads: an rdkafka consumer over the same mutual TLS as publishing, with partitions
//! it assigns itself and no `group.id`, so it never joins a billing consumer's group and never
//! commits an offset. Each partition is positioned with `offsets_for_times` at the hour `since`
//! (a message for an hour is written after that hour ends; starting an hour earlier than that
//! leaves room for a producer clock that is up to an hour behind) and read up to the high
//! watermark it had when the audit started. From there on every record is read whatever its
//! timestamp: the billing side reads by offset, so a copy written later with an old CreateTime
//! (a replay, MirrorMaker keeping original times, a skewed clock) is judged like any other.
//! What lies before the start offset is not read, and the report says so per partition
//! (`not_read`); `--from-earliest` reads it too.
//!
//! What it keeps: for each audited hour, per part, the message id, a SHA-256 digest of the
//! payload, its first and last `external_id` and where the copy lies (partition, offset);
//! never the payloads of the whole range. Junk under our key (records we would not produce)
//! is kept up to [`KEEP`] lines per hour and counted beyond, so a flood of it cannot grow the
//! audit's memory or its report. For records under other keys only a hash of their
//! `message_id` and a digest are kept, to find a copy of one of our ids under another key
//! (the billing side drops duplicates by id, not by key).
//! `--recompute` fetches one hour's first copies again by offset, compares them with a fresh
//! collection from Prometheus, and lets them go: memory is bounded by one hour's messages.
//!
//! How an hour is judged (the worst finding wins, every finding is listed):
//! - **complete**: every part `1..=n` present exactly once, each a message we would produce
//!   (the MCMP contract, this job's header fields, namespaces in order and each once);
//! - **duplicated**: a part present more than once with equal content: harmless, the billing
//!   side drops the copy by its `message_id`;
//! - **conflicting**: a part present more than once with different content: an alarm, the
//!   billing side keeps whichever copy it saw first;
//! - **missing**: no message for the hour, or some of its parts absent;
//! - **foreign**: a message under this cluster's key that we would not produce (wrong id,
//!   header, hour or shape);
//! - **differs** (`--recompute`): the topic's numbers are not what Prometheus gives now.
//!
//! One idea per file: `read` (the pass over the topic), `record` (one record checked against
//! what we would produce), `judge` (what an hour holds, bounded, and its verdict), `recompute`
//! and `report`.

mod config;
mod judge;
mod read;
mod recompute;
mod record;
mod report;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use crate::collector::CollectSettings;
use crate::kafka::KafkaSettings;
use crate::kafka::reader::{ReadError, Reader};
use crate::message::MessageSettings;
use crate::prometheus::PrometheusSettings;
use crate::window::{HourWindow, rfc3339};

use judge::judge;
use read::read_topic;
use recompute::recompute_hours;

pub use config::AuditConfig;
pub use judge::KEEP;
pub use report::{AuditReport, HourReport, Status};

/// Report format on stdout (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    /// A table for people.
    Text,
    /// One JSON document.
    Json,
}

/// What `--recompute` needs: the settings a dry-run over the audited hours would use.
#[derive(Debug, Clone)]
pub struct Recompute {
    pub prometheus: PrometheusSettings,
    pub collect: CollectSettings,
    pub message: MessageSettings,
}

/// What to audit, and where to read it.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// What every message of ours carries: the cluster, the id format (a message with the
    /// other format's id is foreign) and the header fields.
    pub message: MessageSettings,
    /// The hours `[since, until)`, oldest first.
    pub hours: Vec<HourWindow>,
    pub kafka: KafkaSettings,
    /// Read every partition from its first record, not from the offset of `since`.
    pub from_earliest: bool,
}

/// Why the topic could not be read. (What the topic holds is never an error: it is the report.)
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the audit's reading task stopped unexpectedly: {0}; run the audit again")]
    Task(String),
}

/// Read the topic for `settings.hours` and judge each hour; with `recompute`, also compare the
/// numbers with a fresh collection from Prometheus.
pub async fn run(
    settings: &AuditSettings,
    recompute: Option<&Recompute>,
) -> crate::Result<AuditReport> {
    let (Some(first), Some(last)) = (settings.hours.first(), settings.hours.last()) else {
        return Err(crate::Error::Internal(
            "audit: no hours to check (the configuration refuses an empty range)".into(),
        ));
    };
    let (first, last) = (*first, *last);
    info!(
        cluster = %settings.message.cluster_name,
        topic = %settings.kafka.topic,
        since = %rfc3339(first.start()),
        until = %rfc3339(last.end()),
        from_earliest = settings.from_earliest,
        "audit: reading the topic back"
    );
    let reader = Arc::new(Reader::new(&settings.kafka).map_err(AuditError::from)?);
    let scan_reader = reader.clone();
    let scan_settings = settings.clone();
    let read = tokio::task::spawn_blocking(move || read_topic(&scan_reader, &scan_settings))
        .await
        .map_err(|e| crate::Error::Audit(AuditError::Task(e.to_string())))??;

    let mut hours: Vec<HourReport> = settings
        .hours
        .iter()
        .map(|w| judge(w, read.seen.get(w)))
        .collect();
    if let Some(config) = recompute {
        recompute_hours(settings, config, &reader, &read.seen, &mut hours).await?;
    }
    let mut counts = BTreeMap::new();
    for h in &hours {
        *counts.entry(h.status).or_insert(0) += 1;
    }
    let report = AuditReport {
        cluster: settings.message.cluster_name.clone(),
        topic: settings.kafka.topic.clone(),
        since: rfc3339(first.start()),
        until: rfc3339(last.end()),
        recomputed: recompute.is_some(),
        messages_read: read.messages,
        counts,
        hours,
        unattributed: read.unattributed.kept,
        unattributed_left_out: read.unattributed.left_out,
        not_read: read.not_read,
    };
    if report.is_clean() {
        info!(
            hours = report.hours.len(),
            "audit: every hour published exactly once"
        );
    } else {
        warn!(counts = ?report.counts, "audit: not every hour published exactly once and right");
    }
    if !report.not_read.is_empty() {
        warn!(
            partitions = report.not_read.len(),
            "audit: records before --since (by the broker's time index) were not read; \
             --from-earliest reads them"
        );
    }
    Ok(report)
}
