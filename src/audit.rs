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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use rdkafka::Message;
use rdkafka::message::Headers;
use serde::Serialize;
use tracing::{info, warn};

use crate::collector::{CollectSettings, Collector};
use crate::kafka::reader::{ReadError, Reader, header};
use crate::kafka::{KafkaSettings, cloudevents};
use crate::message::{self, Consumption, IdFormat, KafkaMessage, MessageSettings};
use crate::prometheus::{Prometheus, PrometheusSettings};
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
    /// Findings beyond the first [`KEEP`] foreign records of the hour, counted, not listed.
    pub findings_left_out: usize,
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
    /// Messages under this cluster's key prefix whose key names no hour (the first [`KEEP`]).
    pub unattributed: Vec<String>,
    /// Unattributed messages beyond those listed.
    pub unattributed_left_out: usize,
    /// Offsets the audit did not read, per partition (before the offset of `since`): a copy
    /// written there with an older record time is not checked. Empty with `--from-earliest`.
    pub not_read: Vec<String>,
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
            if h.findings_left_out > 0 {
                out.push_str(&format!(
                    "{:<51}  and {} more foreign records, not listed\n",
                    "", h.findings_left_out
                ));
            }
        }
        for u in &self.unattributed {
            out.push_str(&format!("unattributed: {u}\n"));
        }
        if self.unattributed_left_out > 0 {
            out.push_str(&format!(
                "unattributed: and {} more, not listed\n",
                self.unattributed_left_out
            ));
        }
        for n in &self.not_read {
            out.push_str(&format!("not read: {n}\n"));
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

/// Lines of junk kept per hour (foreign records), copies listed per part, unattributed keys
/// and part counts kept per hour: enough to show what is wrong and where; the rest is counted.
pub const KEEP: usize = 10;

/// The most parts an hour of ours has: one namespace per part at the smallest
/// `--max-message-bytes` is far fewer. A record claiming more (our key and id are public and
/// deterministic, so anyone can write one) is not ours, and its count is never allocated.
const MAX_PARTS: usize = 1_000_000;

/// What a record of ours says about itself, once checked.
#[derive(Debug, Clone, PartialEq)]
struct Checked {
    part: usize,
    parts: usize,
    /// The first and last `external_id` of its payload (`None`: an empty payload).
    first: Option<String>,
    last: Option<String>,
}

/// The first copy of a part: where it lies, a digest of its payload, and its namespace range.
#[derive(Debug, Clone)]
struct Stored {
    digest: [u8; 32],
    message_id: String,
    partition: i32,
    offset: i64,
    first: Option<String>,
    last: Option<String>,
}

/// Every copy of one part read for an hour.
#[derive(Debug, Clone)]
struct Copies {
    first: Stored,
    /// Copies read in all, the first included.
    count: usize,
    /// Whether any copy's payload differs from the first's.
    differs: bool,
    /// `partition@offset` of the first [`KEEP`] copies.
    at: Vec<String>,
}

impl Copies {
    fn new(first: Stored) -> Self {
        let at = vec![format!("{}@{}", first.partition, first.offset)];
        Copies {
            first,
            count: 1,
            differs: false,
            at,
        }
    }

    fn add(&mut self, digest: [u8; 32], partition: i32, offset: i64) {
        self.count += 1;
        self.differs |= digest != self.first.digest;
        if self.at.len() < KEEP {
            self.at.push(format!("{partition}@{offset}"));
        }
    }
}

/// Lines of one kind, the first [`KEEP`] kept and the rest counted.
#[derive(Debug, Default)]
struct Bounded {
    kept: Vec<String>,
    left_out: usize,
}

impl Bounded {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.kept.len() < KEEP {
            self.kept.push(line());
        } else {
            self.left_out += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// What was read for one hour.
#[derive(Debug, Default)]
struct Seen {
    /// Part number (1-based) → its copies.
    parts: BTreeMap<usize, Copies>,
    /// Part counts the messages claimed (more than one is itself a finding), the first
    /// [`KEEP`] distinct ones.
    totals: BTreeSet<usize>,
    foreign: Bounded,
    /// Records read under the hour's key, ours and foreign.
    messages: usize,
    /// Copies of our ids under another key: one line each, with the status it earns.
    elsewhere: Vec<(Status, String)>,
}

/// Where a record under another key with a message id lies (for finding our ids there).
#[derive(Debug, Clone)]
struct Elsewhere {
    partition: i32,
    offset: i64,
    digest: [u8; 32],
}

/// The hash under which a message id is remembered: 8 bytes per record under other keys
/// instead of the id; a hit is confirmed by reading the record again.
fn id_hash(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// One record under this cluster's key prefix, checked against what we would produce: the
/// `part` and `message_id` headers, the MCMP contract ([`message::validate`], the same check a
/// run makes before sending), the CloudEvents headers when it has any ([`cloudevents::check`]),
/// this job's header fields, and namespaces in order, each once, with quantities rounded as we
/// round them. `Ok`, or why it is not ours.
fn check_record(
    expected: &MessageSettings,
    window: &HourWindow,
    key: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Result<Checked, String> {
    let (cluster, id_format) = (expected.cluster_name.as_str(), expected.id_format);
    let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let (message_id, part) = (header("message_id"), header("part"));
    let part_header = part.ok_or("no `part` header")?;
    let (k, n) = part_header
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| *k >= 1 && k <= n && *n <= MAX_PARTS)
        .ok_or_else(|| {
            format!("`part` header {part_header:?} is not k/n with 1 <= k <= n <= {MAX_PARTS}")
        })?;
    let id = message_id.ok_or("no `message_id` header")?;
    let expected_id = id_format.id(cluster, window, k - 1);
    if id != expected_id {
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
            "`message_id` header {id} is not the id of part {k} of this hour ({expected_id}){hint}"
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
    message::validate(&body, cluster, id_format)
        .map_err(|reason| format!("part {k}: breaks the MCMP contract: {reason}"))?;
    cloudevents::check(
        headers.iter().map(|(k, _)| *k),
        header,
        cluster,
        window,
        key,
        id,
    )
    .map_err(|reason| format!("part {k}: {reason}"))?;
    for (field, flag, got, want) in [
        (
            "service_name",
            "--service-name",
            &body.header.service_name,
            &expected.service_name,
        ),
        (
            "service_version",
            "--service-version",
            &body.header.service_version,
            &expected.service_version,
        ),
        (
            "service_location",
            "--service-location",
            &body.header.service_location,
            &expected.service_location,
        ),
    ] {
        if got != want {
            return Err(format!(
                "part {k}: {field} {got:?} is not this job's {want:?} ({flag})"
            ));
        }
    }
    // We shape namespaces in order (a sorted map), so each message's are ascending and each
    // part's come after the previous part's (checked across parts by `judge`).
    if let Some(pair) = body
        .payload
        .windows(2)
        .find(|w| w[0].external_id >= w[1].external_id)
    {
        return Err(format!(
            "part {k}: external_id {} comes after {}: not in the order we write (a namespace \
             listed twice, or entries rearranged)",
            pair[1].external_id, pair[0].external_id
        ));
    }
    for e in &body.payload {
        if let Some((dim, q)) = e
            .consumption
            .quantities()
            .find(|(_, q)| message::round(*q) != *q)
        {
            return Err(format!(
                "part {k}: {} {dim} is {q}, with more than {} decimals: not rounded as we round",
                e.external_id,
                message::DECIMALS
            ));
        }
    }
    Ok(Checked {
        part: k,
        parts: n,
        first: body.payload.first().map(|e| e.external_id.clone()),
        last: body.payload.last().map(|e| e.external_id.clone()),
    })
}

/// The verdict on one hour from what was read for it.
fn judge(window: &HourWindow, seen: Option<&Seen>) -> HourReport {
    let mut report = HourReport {
        hour: rfc3339(window.start()),
        status: Status::Complete,
        parts: None,
        messages: 0,
        findings: Vec::new(),
        findings_left_out: 0,
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
    report.messages = seen.messages;
    for f in &seen.foreign.kept {
        worst(Status::Foreign, f.clone(), &mut report);
    }
    report.findings_left_out = seen.foreign.left_out;
    report.parts = seen.totals.iter().max().copied();
    if seen.totals.len() > 1 {
        worst(
            Status::Conflicting,
            format!(
                "the messages disagree on the number of parts: {:?}{}",
                seen.totals,
                if seen.totals.len() >= KEEP {
                    " (and maybe more)"
                } else {
                    ""
                }
            ),
            &mut report,
        );
    }
    match report.parts {
        None if seen.foreign.is_empty() && seen.elsewhere.is_empty() => worst(
            Status::Missing,
            "no message for this hour".into(),
            &mut report,
        ),
        None => {}
        Some(n) => {
            let absent: Vec<usize> = (1..=n).filter(|k| !seen.parts.contains_key(k)).collect();
            if !absent.is_empty() {
                let shown = &absent[..absent.len().min(KEEP)];
                let more = if absent.len() > shown.len() {
                    format!(" and {} more", absent.len() - shown.len())
                } else {
                    String::new()
                };
                worst(
                    Status::Missing,
                    format!("parts {shown:?}{more} of {n} missing"),
                    &mut report,
                );
            }
        }
    }
    // Our parts hold consecutive runs of the sorted namespaces: a namespace in two parts (or
    // parts out of order) is a message we would not produce, and billed twice.
    let mut previous: Option<(usize, &str)> = None;
    for (k, copies) in &seen.parts {
        let (Some(first), Some(last)) = (&copies.first.first, &copies.first.last) else {
            continue;
        };
        if let Some((j, before)) = previous
            && before >= first.as_str()
        {
            worst(
                Status::Foreign,
                format!(
                    "parts {j} and {k} overlap: part {j} ends with {before}, part {k} begins \
                     with {first}; we write each namespace once, in order"
                ),
                &mut report,
            );
        }
        previous = Some((*k, last));
    }
    for (k, copies) in &seen.parts {
        if copies.count < 2 {
            continue;
        }
        let more = if copies.count > copies.at.len() {
            format!(" and {} more", copies.count - copies.at.len())
        } else {
            String::new()
        };
        if !copies.differs {
            worst(
                Status::Duplicated,
                format!(
                    "part {k} ({}) sent {} times with equal content (partition@offset {}{more}); \
                     harmless: the billing side drops copies by message_id",
                    copies.first.message_id,
                    copies.count,
                    copies.at.join(", ")
                ),
                &mut report,
            );
        } else {
            worst(
                Status::Conflicting,
                format!(
                    "part {k} ({}) sent {} times with DIFFERENT content (partition@offset \
                     {}{more}); the billing side keeps the copy it saw first",
                    copies.first.message_id,
                    copies.count,
                    copies.at.join(", ")
                ),
                &mut report,
            );
        }
    }
    for (status, finding) in &seen.elsewhere {
        worst(*status, finding.clone(), &mut report);
    }
    report
}

/// A key someone else wrote, for the report: at most 120 characters, quoted with control
/// characters escaped (it must not forge report lines or reach a terminal raw).
fn shown(key: &str) -> String {
    let cut: String = key.chars().take(120).collect();
    format!("{cut:?}")
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

/// What one pass over the topic found.
struct TopicRead {
    seen: BTreeMap<HourWindow, Seen>,
    unattributed: Bounded,
    messages: usize,
    not_read: Vec<String>,
}

/// Read the topic once and sort what is under our key by hour; remember where records under
/// other keys carry a message id, then look our ids up among them.
fn read_topic(reader: &Reader, settings: &AuditSettings) -> Result<TopicRead, AuditError> {
    let (first, last) = match (settings.hours.first(), settings.hours.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Err(AuditError::Task("no hours to audit".into())),
    };
    let expected = &settings.message;
    let cluster = expected.cluster_name.as_str();
    let prefix = format!("{cluster}/");
    let mut seen: BTreeMap<HourWindow, Seen> = BTreeMap::new();
    let mut unattributed = Bounded::default();
    let mut elsewhere: HashMap<u64, Vec<Elsewhere>> = HashMap::new();
    // A message for an hour is written after the hour ends: starting at the hour's start
    // leaves an hour for a producer clock that runs behind.
    let from = (!settings.from_earliest).then(|| first.start());
    let (messages, not_read) = reader.scan(from, |key, m| {
        let Some(hour) = key.and_then(|k| k.strip_prefix(&prefix)) else {
            if let Some(id) = header(m, "message_id")
                && expected.id_format.accepts(id)
            {
                elsewhere.entry(id_hash(id)).or_default().push(Elsewhere {
                    partition: m.partition(),
                    offset: m.offset(),
                    digest: openssl::sha::sha256(m.payload().unwrap_or_default()),
                });
            }
            return;
        };
        let at = || format!("partition {} offset {}", m.partition(), m.offset());
        let window = chrono::DateTime::parse_from_rfc3339(hour)
            .ok()
            .and_then(|t| HourWindow::starting_at(t.to_utc(), "key").ok());
        let Some(window) = window else {
            unattributed.push(|| {
                format!(
                    "{}: key {:?} names no hour",
                    at(),
                    shown(key.unwrap_or_default())
                )
            });
            return;
        };
        if window < first || window > last {
            return;
        }
        let entry = seen.entry(window).or_default();
        entry.messages += 1;
        let payload = m.payload().unwrap_or_default();
        let headers: Vec<(&str, &str)> = m
            .headers()
            .map(|h| {
                h.iter()
                    .filter_map(|h| Some((h.key, std::str::from_utf8(h.value?).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        match check_record(
            expected,
            &window,
            key.unwrap_or_default(),
            &headers,
            payload,
        ) {
            Ok(checked) => {
                if entry.totals.len() < KEEP {
                    entry.totals.insert(checked.parts);
                }
                let digest = openssl::sha::sha256(payload);
                match entry.parts.get_mut(&checked.part) {
                    Some(copies) => copies.add(digest, m.partition(), m.offset()),
                    None => {
                        entry.parts.insert(
                            checked.part,
                            Copies::new(Stored {
                                digest,
                                message_id: header(m, "message_id").unwrap_or_default().to_string(),
                                partition: m.partition(),
                                offset: m.offset(),
                                first: checked.first,
                                last: checked.last,
                            }),
                        );
                    }
                }
            }
            Err(why) => entry.foreign.push(|| format!("{}: {why}", at())),
        }
    })?;
    if !elsewhere.is_empty() {
        for window in &settings.hours {
            find_elsewhere(reader, expected, window, &elsewhere, &mut seen)?;
        }
    }
    Ok(TopicRead {
        seen,
        unattributed,
        messages,
        not_read,
    })
}

/// Our ids of `window`'s parts found under another key: each copy is read again to confirm the
/// id (the hash only points at it) and reported with its key. Equal content is a duplicate; a
/// copy that differs, or of a part we have no copy of, may be the one the billing side keeps.
fn find_elsewhere(
    reader: &Reader,
    expected: &MessageSettings,
    window: &HourWindow,
    elsewhere: &HashMap<u64, Vec<Elsewhere>>,
    seen: &mut BTreeMap<HourWindow, Seen>,
) -> Result<(), AuditError> {
    let parts = seen
        .get(window)
        .and_then(|s| s.totals.iter().max().copied())
        .unwrap_or(1);
    let mut found = Vec::new();
    for k in 1..=parts {
        let id = expected.id_format.id(&expected.cluster_name, window, k - 1);
        for at in elsewhere.get(&id_hash(&id)).into_iter().flatten() {
            if found.len() >= KEEP {
                break;
            }
            let record = reader.fetch(at.partition, at.offset)?;
            if record.message_id.as_deref() != Some(id.as_str()) {
                continue; // Another id with the same hash.
            }
            let ours = seen
                .get(window)
                .and_then(|s| s.parts.get(&k))
                .map(|c| c.first.digest);
            let (status, how) = match ours {
                Some(d) if d == at.digest => (
                    Status::Duplicated,
                    "with equal content; harmless: the billing side drops copies by message_id",
                ),
                Some(_) => (
                    Status::Conflicting,
                    "with DIFFERENT content; the billing side keeps whichever copy it saw first",
                ),
                None => (
                    Status::Conflicting,
                    "and no copy under this hour's key; the billing side may bill this one",
                ),
            };
            found.push((
                status,
                format!(
                    "part {k}'s message_id {id} is also at partition {} offset {} under another \
                     key {} {how}",
                    at.partition,
                    at.offset,
                    shown(&record.key),
                ),
            ));
        }
    }
    if !found.is_empty() {
        seen.entry(*window).or_default().elsewhere = found;
    }
    Ok(())
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

    fn expected(cluster: &str, id_format: IdFormat) -> MessageSettings {
        MessageSettings {
            cluster_name: cluster.into(),
            service_name: "OPENSHIFT".into(),
            service_version: "GA".into(),
            service_location: "X".into(),
            max_message_bytes: 1_000_000,
            id_format,
        }
    }

    /// Part `part` of `window` as we write it, with one entry per (namespace, cpu).
    fn message(
        cluster: &str,
        window: &HourWindow,
        part: usize,
        cpu: &[(&str, f64)],
    ) -> KafkaMessage {
        KafkaMessage {
            header: message::Header {
                consumption_period_type: message::PeriodType::Hour,
                consumption_start_ts: message::start_ts(window),
                message_id: message::message_id(cluster, window, part - 1),
                service_name: "OPENSHIFT".into(),
                service_version: "GA".into(),
                service_location: "X".into(),
            },
            payload: cpu
                .iter()
                .map(|(ns, cpu)| message::Entry {
                    external_id: format!("{cluster}_{ns}"),
                    consumption: Consumption {
                        cpu: *cpu,
                        gpu: 0.0,
                        storage_rwo_standard: 0.0,
                        storage_rwx_standard: 0.0,
                        storage_rwx_basic: 0.0,
                        storage_rwx_premium: 0.0,
                        ram: None,
                    },
                })
                .collect(),
        }
    }

    /// A record's `message_id` and `part` headers, those given.
    fn headers<'a>(id: Option<&'a str>, part: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        [("message_id", id), ("part", part)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
    }

    fn body(cluster: &str, window: &HourWindow, part: usize, ns: &str, cpu: f64) -> Vec<u8> {
        serde_json::to_vec(&message(cluster, window, part, &[(ns, cpu)])).unwrap()
    }

    #[test]
    fn our_own_message_passes_the_record_check() {
        let w = hour();
        let id = message::message_id("c1", &w, 1);
        let key = "c1/2026-11-01T03:00:00Z";
        let got = check_record(
            &expected("c1", IdFormat::Uuid),
            &w,
            key,
            &headers(Some(&id), Some("2/3")),
            &body("c1", &w, 2, "a", 1.0),
        );
        assert_eq!(
            got,
            Ok(Checked {
                part: 2,
                parts: 3,
                first: Some("c1_a".into()),
                last: Some("c1_a".into())
            })
        );
        // Audited with the other format, it is foreign, and the reason names the flag.
        let e = check_record(
            &expected("c1", IdFormat::Legacy),
            &w,
            key,
            &headers(Some(&id), Some("2/3")),
            &body("c1", &w, 2, "a", 1.0),
        )
        .unwrap_err();
        assert!(e.contains("--message-id-format uuid"), "{e}");
        // With the CloudEvents attributes as a run writes them; then with one wrong.
        let mut with_ce: Vec<(String, String)> = cloudevents::headers("c1", &w, key, &id)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        with_ce.push(("content-type".into(), cloudevents::CONTENT_TYPE.into()));
        let all = |extra: &[(String, String)]| {
            let mut h = headers(Some(&id), Some("2/3"));
            h.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            check_record(
                &expected("c1", IdFormat::Uuid),
                &w,
                key,
                &h,
                &body("c1", &w, 2, "a", 1.0),
            )
        };
        assert!(all(&with_ce).is_ok());
        with_ce[2].1 = "/consumption-metrics/c2".into();
        assert!(all(&with_ce).unwrap_err().contains("ce_source"));
    }

    #[test]
    fn records_we_would_not_produce_are_foreign() {
        let w = hour();
        let id1 = message::message_id("c1", &w, 0);
        let good = body("c1", &w, 1, "a", 1.0);
        let altered = |change: &dyn Fn(&mut KafkaMessage)| {
            let mut m = message("c1", &w, 1, &[("a", 1.0), ("b", 2.0)]);
            change(&mut m);
            serde_json::to_vec(&m).unwrap()
        };
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
            // Everything right but the numbers or names: the contract, as a run checks it.
            (
                Some(&id1),
                Some("1/1"),
                body("c1", &w, 1, "a", -1.0),
                "c1_a cpu is -1",
            ),
            (
                Some(&id1),
                Some("1/1"),
                body("c1", &w, 1, "Not_A_Namespace", 1.0),
                "is not <cluster>_<namespace>",
            ),
            (
                Some(&id1),
                Some("1/1"),
                altered(&|m| m.payload[1].consumption.gpu = 1e300),
                "c1_b gpu is 1e300",
            ),
            (
                Some(&id1),
                Some("1/1"),
                altered(&|m| m.header.service_name = "OPENSTACK".into()),
                "service_name \"OPENSTACK\" is not this job's \"OPENSHIFT\" (--service-name)",
            ),
            (
                Some(&id1),
                Some("1/1"),
                altered(&|m| m.payload[1].external_id = "c1_a".into()),
                "listed twice",
            ),
            (
                Some(&id1),
                Some("1/1"),
                altered(&|m| m.payload.reverse()),
                "comes after c1_b: not in the order we write",
            ),
            (
                Some(&id1),
                Some("1/1"),
                altered(&|m| m.payload[0].consumption.storage_rwx_basic = 0.1234567),
                "storage_rwx_basic is 0.1234567, with more than 6 decimals",
            ),
        ];
        for (id, part, payload, expect) in cases {
            let e = check_record(
                &expected("c1", IdFormat::Uuid),
                &w,
                "c1/2026-11-01T03:00:00Z",
                &headers(id, part),
                &payload,
            )
            .unwrap_err();
            assert!(e.contains(expect), "{e:?} should say {expect:?}");
        }
    }

    fn copy(digest: u8, offset: i64) -> Stored {
        Stored {
            digest: [digest; 32],
            message_id: "id".into(),
            partition: 0,
            offset,
            first: None,
            last: None,
        }
    }

    fn seen(parts: &[(usize, Vec<Stored>)], total: usize) -> Seen {
        let mut s = Seen {
            totals: [total].into(),
            ..Seen::default()
        };
        for (k, copies) in parts {
            let mut c = Copies::new(copies[0].clone());
            for more in &copies[1..] {
                c.add(more.digest, more.partition, more.offset);
            }
            s.messages += copies.len();
            s.parts.insert(*k, c);
        }
        s
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
        s.messages += 1;
        s.foreign
            .push(|| "partition 0 offset 3: no `part` header".into());
        let r = judge(&w, Some(&s));
        assert_eq!(r.status, Status::Foreign);
        assert_eq!(r.messages, 2);
        let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
        s.totals.insert(2);
        assert_eq!(status(Some(&s)), Status::Conflicting);
    }

    /// Each message in order is not enough: a namespace at the end of one part and again at the
    /// start of the next would be billed twice.
    #[test]
    fn parts_that_overlap_are_foreign() {
        let w = hour();
        let ranged = |offset: i64, first: &str, last: &str| Stored {
            first: Some(first.into()),
            last: Some(last.into()),
            ..copy(offset as u8, offset)
        };
        let ok = seen(
            &[
                (1, vec![ranged(0, "c1_a", "c1_m")]),
                (2, vec![ranged(1, "c1_n", "c1_z")]),
            ],
            2,
        );
        assert_eq!(judge(&w, Some(&ok)).status, Status::Complete);
        let overlap = seen(
            &[
                (1, vec![ranged(0, "c1_a", "c1_m")]),
                (2, vec![ranged(1, "c1_m", "c1_z")]),
            ],
            2,
        );
        let r = judge(&w, Some(&overlap));
        assert_eq!(r.status, Status::Foreign);
        assert!(r.findings[0].contains("parts 1 and 2 overlap"), "{r:?}");
    }

    /// A flood of junk keeps [`KEEP`] lines and counts the rest, and copies of one part list
    /// [`KEEP`] positions.
    #[test]
    fn junk_is_kept_up_to_a_bound_and_counted() {
        let w = hour();
        let mut s = seen(&[(1, vec![copy(1, 0)])], 1);
        for i in 0..1000 {
            s.foreign.push(|| format!("offset {i}: junk"));
            s.parts.get_mut(&1).unwrap().add([1; 32], 0, i + 1);
        }
        let r = judge(&w, Some(&s));
        assert_eq!(r.status, Status::Foreign);
        assert_eq!(r.findings_left_out, 1000 - KEEP);
        let duplicates = r
            .findings
            .iter()
            .find(|f| f.contains("1001 times"))
            .unwrap();
        assert!(
            duplicates.contains(&format!("and {} more", 1001 - KEEP)),
            "{duplicates}"
        );
        assert!(duplicates.len() < 400, "{duplicates}");
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
