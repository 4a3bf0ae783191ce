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
//! watermark it had when the audit started. Records written before `since` (by their
//! timestamp) are skipped even when the broker positions earlier than asked.
//!
//! What it keeps: for each audited hour, per part, the message id, a SHA-256 digest of the
//! payload and where the copy lies (partition, offset); never the payloads of the whole range.
//! `--recompute` fetches one hour's first copies again by offset, compares them with a fresh
//! collection from Prometheus, and lets them go: memory is bounded by one hour's messages.
//!
//! How an hour is judged (the worst finding wins, every finding is listed):
//! - **complete**: every part `1..=n` present exactly once, each a message we would produce;
//! - **duplicated**: a part present more than once with equal content: harmless, the billing
//!   side drops the copy by its `message_id`;
//! - **conflicting**: a part present more than once with different content: an alarm, the
//!   billing side keeps whichever copy it saw first;
//! - **missing**: no message for the hour, or some of its parts absent;
//! - **foreign**: a message under this cluster's key that we would not produce (wrong id,
//!   header, hour or shape);
//! - **differs** (`--recompute`): the topic's numbers are not what Prometheus gives now.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::collector::{CollectConfig, Collector};
use crate::kafka::publisher::Context;
use crate::kafka::settings::to_rdkafka_consumer;
use crate::kafka::{KafkaSettings, tls};
use crate::message::{self, Consumption, IdFormat, KafkaMessage, MessageConfig};
use crate::prometheus::{Prometheus, PrometheusConfig};
use crate::window::{self, HourWindow, rfc3339};

/// Report format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// A table for people.
    Text,
    /// One JSON document.
    Json,
}

/// What `--recompute` needs: the settings a dry-run over the audited hours would use.
#[derive(Debug, Clone)]
pub struct Recompute {
    pub prometheus: PrometheusConfig,
    pub collect: CollectConfig,
    pub message: MessageConfig,
}

/// What to audit, and where to read it.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub cluster: String,
    /// The ids we would produce: a message with the other format's id is foreign.
    pub id_format: IdFormat,
    /// The hours `[since, until)`, oldest first.
    pub hours: Vec<HourWindow>,
    pub kafka: KafkaSettings,
}

/// Why the topic could not be read. (What the topic holds is never an error: it is the report.)
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("could not create the Kafka consumer of the audit: {0}")]
    Create(String),
    #[error(
        "could not read the metadata of topic {topic} at {brokers}: {error}{reason}; check \
         --kafka-brokers, --kafka-topic and the TLS files (the audit reads with the same \
         certificate as publishing, which needs read access to the topic)"
    )]
    Metadata {
        topic: String,
        brokers: String,
        error: String,
        reason: String,
    },
    #[error(
        "could not look up the offsets of {time} in topic {topic}: {error}{reason}; the \
         brokers must support ListOffsets by timestamp (Kafka 0.10.1 or later)"
    )]
    Offsets {
        topic: String,
        time: String,
        error: String,
        reason: String,
    },
    #[error(
        "reading partition {partition} of topic {topic} failed at offset {offset}: \
         {error}{reason}; check the brokers and the topic's read ACL for the client certificate"
    )]
    Read {
        topic: String,
        partition: i32,
        offset: i64,
        error: String,
        reason: String,
    },
    #[error(
        "no message arrived from topic {topic} for {idle:?} while partitions {partitions:?} \
         were not read to their end{reason}; the brokers may be overloaded or unreachable, run \
         the audit again"
    )]
    Stalled {
        topic: String,
        partitions: Vec<i32>,
        idle: Duration,
        reason: String,
    },
}

/// One hour's verdict, worst first when sorted descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Complete,
    Duplicated,
    Differs,
    Missing,
    Foreign,
    Conflicting,
}

impl Status {
    /// Whether the hour is billed exactly once and right (a duplicate of equal content is
    /// dropped by its id on the billing side).
    pub fn is_good(self) -> bool {
        matches!(self, Status::Complete | Status::Duplicated)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Complete => "complete",
            Status::Duplicated => "duplicated",
            Status::Differs => "differs",
            Status::Missing => "missing",
            Status::Foreign => "foreign",
            Status::Conflicting => "conflicting",
        })
    }
}

/// The verdict on one hour.
#[derive(Debug, Clone, Serialize)]
pub struct HourReport {
    /// Start of the hour, RFC 3339.
    pub hour: String,
    pub status: Status,
    /// Parts the hour was split into, as the messages say (`None`: no message).
    pub parts: Option<usize>,
    /// Messages read for the hour, copies included.
    pub messages: usize,
    /// What is wrong, one line each; empty when complete.
    pub findings: Vec<String>,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub cluster: String,
    pub topic: String,
    pub since: String,
    pub until: String,
    pub recomputed: bool,
    /// Messages read from the topic in all (every cluster's, every hour's).
    pub messages_read: usize,
    /// Hours by status.
    pub counts: BTreeMap<Status, usize>,
    pub hours: Vec<HourReport>,
    /// Messages under this cluster's key prefix whose key names no hour.
    pub unattributed: Vec<String>,
}

impl AuditReport {
    /// Every hour complete (or harmlessly duplicated) and nothing foreign under our key.
    pub fn is_clean(&self) -> bool {
        self.unattributed.is_empty() && self.hours.iter().all(|h| h.status.is_good())
    }

    /// The table for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "audit of cluster {} on topic {}, hours [{}, {}){}: {} messages read\n",
            self.cluster,
            self.topic,
            self.since,
            self.until,
            if self.recomputed {
                ", recomputed from Prometheus"
            } else {
                ""
            },
            self.messages_read
        );
        out.push_str(&format!(
            "{:<22} {:<12} {:>5} {:>8}  findings\n",
            "hour", "status", "parts", "messages"
        ));
        for h in &self.hours {
            let parts = h.parts.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            let first = h.findings.first().map(String::as_str).unwrap_or("");
            out.push_str(&format!(
                "{:<22} {:<12} {:>5} {:>8}  {first}\n",
                h.hour,
                h.status.to_string(),
                parts,
                h.messages
            ));
            for more in h.findings.iter().skip(1) {
                out.push_str(&format!("{:<51}  {more}\n", ""));
            }
        }
        for u in &self.unattributed {
            out.push_str(&format!("unattributed: {u}\n"));
        }
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        out.push_str(&format!(
            "{} hours: {}; {}\n",
            self.hours.len(),
            counts.join(", "),
            if self.is_clean() {
                "every hour published exactly once"
            } else {
                "NOT every hour published exactly once and right"
            }
        ));
        out
    }
}

/// Where one copy of a part lies, and a digest of its payload.
#[derive(Debug, Clone)]
struct Stored {
    digest: [u8; 32],
    message_id: String,
    partition: i32,
    offset: i64,
}

/// What was read for one hour.
#[derive(Debug, Default)]
struct Seen {
    /// Part number (1-based) → its copies, in reading order.
    parts: BTreeMap<usize, Vec<Stored>>,
    /// Part counts the messages claimed (more than one is itself a finding).
    totals: BTreeSet<usize>,
    foreign: Vec<String>,
}

/// The most parts an hour of ours has: one namespace per part at the smallest
/// `--max-message-bytes` is far fewer. A record claiming more (our key and id are public and
/// deterministic, so anyone can write one) is not ours, and its count is never allocated.
const MAX_PARTS: usize = 1_000_000;

/// One record under this cluster's key prefix, checked against what we would produce.
/// `Ok((part, parts))`, or why it is not ours.
fn check_record(
    cluster: &str,
    id_format: IdFormat,
    window: &HourWindow,
    message_id: Option<&str>,
    part: Option<&str>,
    payload: &[u8],
) -> Result<(usize, usize), String> {
    let part_header = part.ok_or("no `part` header")?;
    let (k, n) = part_header
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| *k >= 1 && k <= n && *n <= MAX_PARTS)
        .ok_or_else(|| {
            format!("`part` header {part_header:?} is not k/n with 1 <= k <= n <= {MAX_PARTS}")
        })?;
    let id = message_id.ok_or("no `message_id` header")?;
    let expected = id_format.id(cluster, window, k - 1);
    if id != expected {
        let other = match id_format {
            IdFormat::Uuid => IdFormat::Legacy,
            IdFormat::Legacy => IdFormat::Uuid,
        };
        let hint = if id == other.id(cluster, window, k - 1) {
            format!(
                " (it is the {other} id of that part: audit with --message-id-format {other} \
                 the hours published so)"
            )
        } else {
            String::new()
        };
        return Err(format!(
            "`message_id` header {id} is not the id of part {k} of this hour ({expected}){hint}"
        ));
    }
    let body: KafkaMessage = serde_json::from_slice(payload)
        .map_err(|e| format!("part {k}: the payload is not an MCMP message: {e}"))?;
    if body.header.message_id != id {
        return Err(format!(
            "part {k}: the payload's message_id {} differs from its header's {id}",
            body.header.message_id
        ));
    }
    let start = message::start_ts(window);
    if body.header.consumption_start_ts != start {
        return Err(format!(
            "part {k}: consumption_start_ts {} is not the key's hour {start}",
            body.header.consumption_start_ts
        ));
    }
    let prefix = format!("{cluster}_");
    if let Some(e) = body
        .payload
        .iter()
        .find(|e| !e.external_id.starts_with(&prefix))
    {
        return Err(format!(
            "part {k}: external_id {} is not of cluster {cluster}",
            e.external_id
        ));
    }
    Ok((k, n))
}

/// The verdict on one hour from what was read for it.
fn judge(window: &HourWindow, seen: Option<&Seen>) -> HourReport {
    let mut report = HourReport {
        hour: rfc3339(window.start()),
        status: Status::Complete,
        parts: None,
        messages: 0,
        findings: Vec::new(),
    };
    let worst = |status: Status, finding: String, report: &mut HourReport| {
        report.status = report.status.max(status);
        report.findings.push(finding);
    };
    let Some(seen) = seen else {
        worst(
            Status::Missing,
            "no message for this hour".into(),
            &mut report,
        );
        return report;
    };
    report.messages = seen.parts.values().map(Vec::len).sum::<usize>() + seen.foreign.len();
    for f in &seen.foreign {
        worst(Status::Foreign, f.clone(), &mut report);
    }
    report.parts = seen.totals.iter().max().copied();
    if seen.totals.len() > 1 {
        worst(
            Status::Conflicting,
            format!(
                "the messages disagree on the number of parts: {:?}",
                seen.totals
            ),
            &mut report,
        );
    }
    match report.parts {
        None if seen.foreign.is_empty() => worst(
            Status::Missing,
            "no message for this hour".into(),
            &mut report,
        ),
        None => {}
        Some(n) => {
            let absent: Vec<usize> = (1..=n).filter(|k| !seen.parts.contains_key(k)).collect();
            if !absent.is_empty() {
                worst(
                    Status::Missing,
                    format!("parts {absent:?} of {n} missing"),
                    &mut report,
                );
            }
        }
    }
    for (k, copies) in &seen.parts {
        if copies.len() < 2 {
            continue;
        }
        let at: Vec<String> = copies
            .iter()
            .map(|c| format!("{}@{}", c.partition, c.offset))
            .collect();
        if copies.iter().all(|c| c.digest == copies[0].digest) {
            worst(
                Status::Duplicated,
                format!(
                    "part {k} ({}) sent {} times with equal content (partition@offset {}); \
                     harmless: the billing side drops copies by message_id",
                    copies[0].message_id,
                    copies.len(),
                    at.join(", ")
                ),
                &mut report,
            );
        } else {
            worst(
                Status::Conflicting,
                format!(
                    "part {k} ({}) sent {} times with DIFFERENT content (partition@offset {}); \
                     the billing side keeps the copy it saw first",
                    copies[0].message_id,
                    copies.len(),
                    at.join(", ")
                ),
                &mut report,
            );
        }
    }
    report
}

fn header<'a>(m: &'a BorrowedMessage<'a>, name: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Reads the topic for one audit.
struct Reader {
    consumer: Arc<BaseConsumer<Context>>,
    context: Context,
    settings: KafkaSettings,
}

impl Reader {
    fn new(settings: &KafkaSettings) -> Result<Self, AuditError> {
        if let Some(files) = settings.transport.tls() {
            tls::check(files)?;
        }
        let context = Context::default();
        let consumer: BaseConsumer<Context> = to_rdkafka_consumer(settings)
            .create_with_context(context.clone())
            .map_err(|e| AuditError::Create(settings.scrub(e.to_string())))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            context,
            settings: settings.clone(),
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.preflight_timeout
    }

    fn partitions(&self) -> Result<Vec<i32>, AuditError> {
        let topic = &self.settings.topic;
        let err = |error: String| AuditError::Metadata {
            topic: topic.clone(),
            brokers: self.settings.brokers.clone(),
            error,
            reason: self.context.reason(),
        };
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), self.timeout())
            .map_err(|e| err(e.to_string()))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| err("the topic is not in the brokers' metadata".into()))?;
        if let Some(e) = t.error() {
            return Err(err(rdkafka::error::RDKafkaErrorCode::from(e).to_string()));
        }
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    }

    /// Read every partition from the first offset at or after `from` to its high watermark at
    /// the start, handing each record under `prefix` to `visit`. Returns the messages read.
    fn scan(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        prefix: &str,
        mut visit: impl FnMut(&str, &BorrowedMessage<'_>),
    ) -> Result<usize, AuditError> {
        let topic = self.settings.topic.as_str();
        let mut by_time = TopicPartitionList::new();
        let partitions = self.partitions()?;
        for &p in &partitions {
            by_time
                .add_partition_offset(topic, p, Offset::Offset(from.timestamp_millis()))
                .map_err(|e| AuditError::Create(e.to_string()))?;
        }
        let offsets = self
            .consumer
            .offsets_for_times(by_time, self.timeout())
            .map_err(|e| AuditError::Offsets {
                topic: topic.to_string(),
                time: rfc3339(from),
                error: e.to_string(),
                reason: self.context.reason(),
            })?;
        let mut assign = TopicPartitionList::new();
        // Partition → the high watermark to read up to.
        let mut pending: BTreeMap<i32, i64> = BTreeMap::new();
        for e in offsets.elements() {
            let Offset::Offset(start) = e.offset() else {
                continue; // End: nothing written at or after `from`.
            };
            let (_, high) = self
                .consumer
                .fetch_watermarks(topic, e.partition(), self.timeout())
                .map_err(|err| AuditError::Read {
                    topic: topic.to_string(),
                    partition: e.partition(),
                    offset: start,
                    error: err.to_string(),
                    reason: self.context.reason(),
                })?;
            if start < high {
                assign
                    .add_partition_offset(topic, e.partition(), Offset::Offset(start))
                    .map_err(|err| AuditError::Create(err.to_string()))?;
                pending.insert(e.partition(), high);
            }
        }
        debug!(?pending, "partitions to read up to their high watermarks");
        if pending.is_empty() {
            return Ok(0);
        }
        self.consumer
            .assign(&assign)
            .map_err(|e| AuditError::Create(e.to_string()))?;
        let idle = self.settings.delivery_timeout;
        let (mut read, mut last_message, mut last_progress) =
            (0usize, Instant::now(), Instant::now());
        while !pending.is_empty() {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    last_message = Instant::now();
                    read += 1;
                    // Positioning is an optimisation: a broker may answer ListOffsets with an
                    // earlier offset than asked (tansu answers 0), so the time is checked here
                    // too, and the result does not depend on the broker's answer.
                    let written_before = m
                        .timestamp()
                        .to_millis()
                        .is_some_and(|t| t < from.timestamp_millis());
                    if !written_before
                        && let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok())
                        && let Some(hour) = key.strip_prefix(prefix)
                    {
                        visit(hour, &m);
                    }
                    if pending
                        .get(&m.partition())
                        .is_some_and(|high| m.offset() + 1 >= *high)
                    {
                        pending.remove(&m.partition());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    pending.remove(&p);
                }
                Some(Err(e)) => {
                    let partition = *pending.keys().next().unwrap_or(&-1);
                    return Err(AuditError::Read {
                        topic: topic.to_string(),
                        partition,
                        offset: -1,
                        error: e.to_string(),
                        reason: self.context.reason(),
                    });
                }
                None if last_message.elapsed() > idle => {
                    return Err(AuditError::Stalled {
                        topic: topic.to_string(),
                        partitions: pending.keys().copied().collect(),
                        idle,
                        reason: self.context.reason(),
                    });
                }
                None => {}
            }
            if last_progress.elapsed() > Duration::from_secs(5) {
                last_progress = Instant::now();
                info!(
                    read,
                    partitions_left = pending.len(),
                    "audit progress: reading the topic"
                );
            }
        }
        Ok(read)
    }

    /// The payload at `partition`/`offset`, read again (for `--recompute`).
    fn fetch(&self, partition: i32, offset: i64) -> Result<Vec<u8>, AuditError> {
        let topic = self.settings.topic.as_str();
        let read_err = |error: String| AuditError::Read {
            topic: topic.to_string(),
            partition,
            offset,
            error,
            reason: self.context.reason(),
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(|e| read_err(e.to_string()))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| read_err(e.to_string()))?;
        let deadline = Instant::now() + self.settings.delivery_timeout;
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if m.partition() == partition && m.offset() == offset => {
                    return Ok(m.payload().unwrap_or_default().to_vec());
                }
                Some(Ok(_)) | None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    return Err(read_err("the message is no longer there".into()));
                }
                Some(Err(e)) => return Err(read_err(e.to_string())),
            }
        }
        Err(read_err(format!(
            "the message did not arrive within {:?}",
            self.settings.delivery_timeout
        )))
    }
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
        cluster = %settings.cluster,
        topic = %settings.kafka.topic,
        since = %rfc3339(first.start()),
        until = %rfc3339(last.end()),
        "audit: reading the topic back"
    );
    let reader = Arc::new(Reader::new(&settings.kafka)?);
    let scan_reader = reader.clone();
    let cluster = settings.cluster.clone();
    let id_format = settings.id_format;
    let (seen, read) = tokio::task::spawn_blocking(move || {
        let prefix = format!("{cluster}/");
        let mut seen: BTreeMap<HourWindow, Seen> = BTreeMap::new();
        let mut unattributed = Vec::new();
        // A message for an hour is written after the hour ends: starting at the hour's start
        // leaves an hour for a producer clock that runs behind.
        let read = scan_reader.scan(first.start(), &prefix, |hour, m| {
            let at = format!("partition {} offset {}", m.partition(), m.offset());
            let window = chrono::DateTime::parse_from_rfc3339(hour)
                .ok()
                .and_then(|t| HourWindow::starting_at(t.to_utc(), "key").ok());
            let Some(window) = window else {
                unattributed.push(format!("{at}: key {cluster}/{hour} names no hour"));
                return;
            };
            if window < first || window > last {
                return;
            }
            let entry = seen.entry(window).or_default();
            let payload = m.payload().unwrap_or_default();
            match check_record(
                &cluster,
                id_format,
                &window,
                header(m, "message_id"),
                header(m, "part"),
                payload,
            ) {
                Ok((k, n)) => {
                    entry.totals.insert(n);
                    entry.parts.entry(k).or_default().push(Stored {
                        digest: openssl::sha::sha256(payload),
                        message_id: header(m, "message_id").unwrap_or_default().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                    });
                }
                Err(why) => entry.foreign.push(format!("{at}: {why}")),
            }
        })?;
        Ok::<_, AuditError>(((seen, unattributed), read))
    })
    .await
    .map_err(|e| crate::Error::Audit(AuditError::Create(e.to_string())))??;
    let (seen, unattributed) = seen;

    let mut hours: Vec<HourReport> = settings
        .hours
        .iter()
        .map(|w| judge(w, seen.get(w)))
        .collect();
    if let Some(config) = recompute {
        recompute_hours(settings, config, &reader, &seen, &mut hours).await?;
    }
    let mut counts = BTreeMap::new();
    for h in &hours {
        *counts.entry(h.status).or_insert(0) += 1;
    }
    let report = AuditReport {
        cluster: settings.cluster.clone(),
        topic: settings.kafka.topic.clone(),
        since: rfc3339(first.start()),
        until: rfc3339(last.end()),
        recomputed: recompute.is_some(),
        messages_read: read,
        counts,
        hours,
        unattributed,
    };
    if report.is_clean() {
        info!(
            hours = report.hours.len(),
            "audit: every hour published exactly once"
        );
    } else {
        warn!(counts = ?report.counts, "audit: not every hour published exactly once and right");
    }
    Ok(report)
}

/// Collect the hours again and compare them, hour by hour, with the first copy of each part.
async fn recompute_hours(
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
        for usage in collector.collect_span(&span).await?.hours() {
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
                let (partition, offset) = (copies[0].partition, copies[0].offset);
                let r = reader.clone();
                let bytes = tokio::task::spawn_blocking(move || r.fetch(partition, offset))
                    .await
                    .map_err(|e| crate::Error::Audit(AuditError::Create(e.to_string())))??;
                let m: KafkaMessage = serde_json::from_slice(&bytes).map_err(|e| {
                    crate::Error::Audit(AuditError::Read {
                        topic: settings.kafka.topic.clone(),
                        partition,
                        offset,
                        error: format!("the payload changed since it was read: {e}"),
                        reason: String::new(),
                    })
                })?;
                published.push(m);
            }
            let findings = compare(&published, &now);
            if !findings.is_empty() {
                report.status = report.status.max(Status::Differs);
                report.findings.extend(findings);
            }
        }
    }
    Ok(())
}

/// Differences between the published messages of an hour and the ones shaped now, per
/// namespace and dimension.
fn compare(published: &[KafkaMessage], now: &[KafkaMessage]) -> Vec<String> {
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
            .map(|e| (e.external_id.clone(), e.consumption))
            .collect()
    };
    let (before, after) = (entries(published), entries(now));
    for (id, b) in &before {
        let Some(a) = after.get(id) else {
            findings.push(format!("{id}: on the topic, not in Prometheus now"));
            continue;
        };
        for (dim, x, y) in [
            ("cpu", b.cpu, a.cpu),
            ("gpu", b.gpu, a.gpu),
            (
                "storage_rwo_standard",
                b.storage_rwo_standard,
                a.storage_rwo_standard,
            ),
            (
                "storage_rwx_standard",
                b.storage_rwx_standard,
                a.storage_rwx_standard,
            ),
            (
                "storage_rwx_basic",
                b.storage_rwx_basic,
                a.storage_rwx_basic,
            ),
            (
                "storage_rwx_premium",
                b.storage_rwx_premium,
                a.storage_rwx_premium,
            ),
        ] {
            if x != y {
                findings.push(format!("{id} {dim}: topic {x}, now {y}"));
            }
        }
    }
    for id in after.keys().filter(|id| !before.contains_key(*id)) {
        findings.push(format!("{id}: in Prometheus now, not on the topic"));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hour() -> HourWindow {
        HourWindow::starting_at(
            chrono::Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap(),
            "t",
        )
        .unwrap()
    }

    fn body(cluster: &str, window: &HourWindow, part: usize, ns: &str, cpu: f64) -> Vec<u8> {
        serde_json::to_vec(&KafkaMessage {
            header: message::Header {
                consumption_period_type: message::PeriodType::Hour,
                consumption_start_ts: message::start_ts(window),
                message_id: message::message_id(cluster, window, part - 1),
                service_name: "OPENSHIFT".into(),
                service_version: "GA".into(),
                service_location: "X".into(),
            },
            payload: vec![message::Entry {
                external_id: format!("{cluster}_{ns}"),
                consumption: Consumption {
                    cpu,
                    gpu: 0.0,
                    storage_rwo_standard: 0.0,
                    storage_rwx_standard: 0.0,
                    storage_rwx_basic: 0.0,
                    storage_rwx_premium: 0.0,
                },
            }],
        })
        .unwrap()
    }

    #[test]
    fn our_own_message_passes_the_record_check() {
        let w = hour();
        let id = message::message_id("c1", &w, 1);
        let got = check_record(
            "c1",
            IdFormat::Uuid,
            &w,
            Some(&id),
            Some("2/3"),
            &body("c1", &w, 2, "a", 1.0),
        );
        assert_eq!(got, Ok((2, 3)));
        // Audited with the other format, it is foreign, and the reason names the flag.
        let e = check_record(
            "c1",
            IdFormat::Legacy,
            &w,
            Some(&id),
            Some("2/3"),
            &body("c1", &w, 2, "a", 1.0),
        )
        .unwrap_err();
        assert!(e.contains("--message-id-format uuid"), "{e}");
    }

    #[test]
    fn records_we_would_not_produce_are_foreign() {
        let w = hour();
        let id1 = message::message_id("c1", &w, 0);
        let good = body("c1", &w, 1, "a", 1.0);
        // (message_id header, part header, payload, what the reason says)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<u8>, &'a str);
        let cases: Vec<Case> = vec![
            (Some(&id1), None, good.clone(), "no `part`"),
            (Some(&id1), Some("0/1"), good.clone(), "not k/n"),
            (Some(&id1), Some("2/1"), good.clone(), "not k/n"),
            (None, Some("1/1"), good.clone(), "no `message_id`"),
            (Some("x"), Some("1/1"), good.clone(), "is not the id"),
            (Some(&id1), Some("1/1"), b"{}".to_vec(), "not an MCMP"),
            // Another cluster's payload under our key.
            (
                Some(&id1),
                Some("1/1"),
                body("c2", &w, 1, "a", 1.0),
                "differs from its header",
            ),
            // The right id in the header, a payload of another hour.
            (
                Some(&id1),
                Some("1/1"),
                body("c1", &w.next(), 1, "a", 1.0),
                "differs",
            ),
        ];
        for (id, part, payload, expect) in cases {
            let e = check_record("c1", IdFormat::Uuid, &w, id, part, &payload).unwrap_err();
            assert!(e.contains(expect), "{e:?} should say {expect:?}");
        }
    }

    fn copy(digest: u8, offset: i64) -> Stored {
        Stored {
            digest: [digest; 32],
            message_id: "id".into(),
            partition: 0,
            offset,
        }
    }

    fn seen(parts: &[(usize, Vec<Stored>)], total: usize) -> Seen {
        Seen {
            parts: parts.iter().cloned().collect(),
            totals: [total].into(),
            foreign: vec![],
        }
    }

    #[test]
    fn verdicts() {
        let w = hour();
        let status = |s: Option<&Seen>| judge(&w, s).status;
        assert_eq!(status(None), Status::Missing);
        assert_eq!(
            status(Some(&seen(
                &[(1, vec![copy(1, 0)]), (2, vec![copy(2, 1)])],
                2
            ))),
            Status::Complete
        );
        assert_eq!(
            status(Some(&seen(&[(1, vec![copy(1, 0)])], 2))),
            Status::Missing
        );
        assert_eq!(
            status(Some(&seen(&[(1, vec![copy(1, 0), copy(1, 5)])], 1))),
            Status::Duplicated
        );
        assert!(Status::Duplicated.is_good());
        assert_eq!(
            status(Some(&seen(&[(1, vec![copy(1, 0), copy(9, 5)])], 1))),
            Status::Conflicting
        );
        let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
        s.foreign
            .push("partition 0 offset 3: no `part` header".into());
        let r = judge(&w, Some(&s));
        assert_eq!(r.status, Status::Foreign);
        assert_eq!(r.messages, 2);
        let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
        s.totals.insert(2);
        assert_eq!(status(Some(&s)), Status::Conflicting);
    }

    #[test]
    fn comparison_names_namespace_and_dimension() {
        let w = hour();
        let m = |ns: &str, cpu: f64| -> KafkaMessage {
            serde_json::from_slice(&body("c1", &w, 1, ns, cpu)).unwrap()
        };
        assert!(compare(&[m("a", 1.0)], &[m("a", 1.0)]).is_empty());
        assert_eq!(
            compare(&[m("a", 1.0)], &[m("a", 1.25)]),
            vec!["c1_a cpu: topic 1, now 1.25".to_string()]
        );
        let f = compare(&[m("a", 1.0)], &[m("b", 1.0)]);
        assert_eq!(f.len(), 2, "{f:?}");
    }
}
