//! One pass over the topic: records sorted by hour, and our ids looked up under other keys.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use rdkafka::Message;
use rdkafka::message::Headers;

use crate::kafka::reader::{Reader, header};
use crate::message::MessageSettings;
use crate::window::HourWindow;

use super::judge::{Bounded, Copies, KEEP, Seen, Stored};
use super::record::{check_identity_headers, check_record, shown};
use super::report::Status;
use super::{AuditError, AuditSettings};

/// Where a record under another key with a message id lies (for finding our ids there).
#[derive(Debug, Clone)]
pub(super) struct Elsewhere {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) digest: [u8; 32],
}

/// The hash under which a message id is remembered: 8 bytes per record under other keys
/// instead of the id; a hit is confirmed by reading the record again.
pub(super) fn id_hash(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// What one pass over the topic found.
pub(super) struct TopicRead {
    pub(super) seen: BTreeMap<HourWindow, Seen>,
    pub(super) unattributed: Bounded,
    pub(super) messages: usize,
    pub(super) not_read: Vec<String>,
}

/// Read the topic once and sort what is under our key by hour; remember where records under
/// other keys carry a message id, then look our ids up among them.
pub(super) fn read_topic(
    reader: &Reader,
    settings: &AuditSettings,
) -> Result<TopicRead, AuditError> {
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
        let raw: Vec<(&str, Option<&[u8]>)> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        let headers: Vec<(&str, &str)> = raw
            .iter()
            .filter_map(|(k, v)| Some((*k, std::str::from_utf8((*v)?).ok()?)))
            .collect();
        let checked = check_identity_headers(&raw).and_then(|()| {
            check_record(
                expected,
                &window,
                key.unwrap_or_default(),
                &headers,
                payload,
            )
        });
        match checked {
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
pub(super) fn find_elsewhere(
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
