//! Reading a topic back over the same mutual TLS as publishing, for `consumption-metrics
//! audit`: partitions assigned by the reader itself (no group is joined, no offset committed),
//! positioned by time or at the first record, read to the high watermark each had at the
//! start, and single records read again by their position.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{debug, info};

use super::context::Context;
use super::settings::{KafkaSettings, to_rdkafka_consumer};
use super::tls;
use crate::window::rfc3339;

/// Why the topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("could not create the Kafka consumer of the audit: {0}")]
    Client(String),
    #[error(
        "could not assign the partitions of topic {topic} to the audit's consumer: {error}; \
         check that the topic's metadata is readable with this certificate, and run the audit \
         again"
    )]
    Assign { topic: String, error: String },
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

/// The value of the header `name` of a record, when it is UTF-8.
pub fn header<'a>(m: &'a BorrowedMessage<'a>, name: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// What is left unread of a partition positioned by time, and how to read it.
pub fn unread(partition: i32, low: i64, start: i64, from: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "partition {partition} offsets {low}..{start}: written before {} by the broker's time \
         index; a copy written there with an older record time is not checked (audit with \
         --from-earliest to read them)",
        rfc3339(from)
    )
}

/// Partition → (first offset to read, the high watermark to read up to).
pub type ReadPlan = BTreeMap<i32, (i64, i64)>;

/// One record read again by its position.
pub struct Fetched {
    pub key: String,
    pub message_id: Option<String>,
    pub payload: Vec<u8>,
}

/// Reads the topic for one audit.
pub struct Reader {
    consumer: Arc<BaseConsumer<Context>>,
    context: Context,
    settings: KafkaSettings,
}

impl Reader {
    pub fn new(settings: &KafkaSettings) -> Result<Self, ReadError> {
        if let Some(files) = settings.transport.tls() {
            tls::check(files)?;
        }
        let context = Context::default();
        let consumer: BaseConsumer<Context> = to_rdkafka_consumer(settings)
            .create_with_context(context.clone())
            .map_err(|e| ReadError::Client(settings.scrub(e.to_string())))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            context,
            settings: settings.clone(),
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.preflight_timeout
    }

    fn partitions(&self) -> Result<Vec<i32>, ReadError> {
        let topic = &self.settings.topic;
        let err = |error: String| ReadError::Metadata {
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

    /// Where each partition's reading starts and ends: from the first offset at or after
    /// `from` by the broker's time index (or the first record with `from` = `None`) to the high
    /// watermark at the start. Returns the partitions to read (start, high) and a line per
    /// partition whose earlier offsets are left unread.
    fn plan(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(ReadPlan, Vec<String>), ReadError> {
        let topic = self.settings.topic.as_str();
        let partitions = self.partitions()?;
        let mut by_time: BTreeMap<i32, Offset> = BTreeMap::new();
        if let Some(from) = from {
            let mut tpl = TopicPartitionList::new();
            for &p in &partitions {
                tpl.add_partition_offset(topic, p, Offset::Offset(from.timestamp_millis()))
                    .map_err(|e| ReadError::Assign {
                        topic: topic.to_string(),
                        error: e.to_string(),
                    })?;
            }
            let offsets = self
                .consumer
                .offsets_for_times(tpl, self.timeout())
                .map_err(|e| ReadError::Offsets {
                    topic: topic.to_string(),
                    time: rfc3339(from),
                    error: e.to_string(),
                    reason: self.context.reason(),
                })?;
            for e in offsets.elements() {
                by_time.insert(e.partition(), e.offset());
            }
        }
        let mut read = BTreeMap::new();
        let mut not_read = Vec::new();
        for &p in &partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, p, self.timeout())
                .map_err(|err| ReadError::Read {
                    topic: topic.to_string(),
                    partition: p,
                    offset: -1,
                    error: err.to_string(),
                    reason: self.context.reason(),
                })?;
            let start = match (from, by_time.get(&p)) {
                (None, _) => low,
                (Some(_), Some(Offset::Offset(o))) => (*o).clamp(low, high),
                // End (or no answer): every record there is older than `from`.
                (Some(_), _) => high,
            };
            if let Some(from) = from
                && start > low
            {
                not_read.push(unread(p, low, start, from));
            }
            if start < high {
                read.insert(p, (start, high));
            }
        }
        Ok((read, not_read))
    }

    /// Read every partition as [`Reader::plan`] says, handing each record to `visit`, whatever
    /// its timestamp (the billing side reads by offset). Returns the messages read and what was
    /// left unread.
    pub fn scan(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        mut visit: impl FnMut(Option<&str>, &BorrowedMessage<'_>),
    ) -> Result<(usize, Vec<String>), ReadError> {
        let topic = self.settings.topic.as_str();
        let (plan, not_read) = self.plan(from)?;
        let mut assign = TopicPartitionList::new();
        // Partition → the high watermark to read up to.
        let mut pending: BTreeMap<i32, i64> = BTreeMap::new();
        for (&p, &(start, high)) in &plan {
            assign
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|err| ReadError::Assign {
                    topic: topic.to_string(),
                    error: err.to_string(),
                })?;
            pending.insert(p, high);
        }
        debug!(?plan, "partitions to read, from..to");
        if pending.is_empty() {
            return Ok((0, not_read));
        }
        self.consumer
            .assign(&assign)
            .map_err(|e| ReadError::Assign {
                topic: topic.to_string(),
                error: e.to_string(),
            })?;
        let idle = self.settings.delivery_timeout;
        let (mut read, mut last_message, mut last_progress) =
            (0usize, Instant::now(), Instant::now());
        while !pending.is_empty() {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    last_message = Instant::now();
                    if pending.contains_key(&m.partition()) {
                        read += 1;
                        visit(m.key().and_then(|k| std::str::from_utf8(k).ok()), &m);
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
                    return Err(ReadError::Read {
                        topic: topic.to_string(),
                        partition,
                        offset: -1,
                        error: e.to_string(),
                        reason: self.context.reason(),
                    });
                }
                None if last_message.elapsed() > idle => {
                    return Err(ReadError::Stalled {
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
        Ok((read, not_read))
    }

    /// The record at `partition`/`offset`, read again (for `--recompute`, and to confirm a copy
    /// of our id under another key).
    pub fn fetch(&self, partition: i32, offset: i64) -> Result<Fetched, ReadError> {
        let topic = self.settings.topic.as_str();
        let read_err = |error: String| ReadError::Read {
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
                    return Ok(Fetched {
                        key: m
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default(),
                        message_id: header(&m, "message_id").map(str::to_string),
                        payload: m.payload().unwrap_or_default().to_vec(),
                    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_not_read_says_where_and_how_to_read_it() {
        let from = "2026-11-01T03:00:00Z".parse().unwrap();
        assert_eq!(
            unread(2, 0, 17, from),
            "partition 2 offsets 0..17: written before 2026-11-01T03:00:00Z by the broker's \
             time index; a copy written there with an older record time is not checked (audit \
             with --from-earliest to read them)"
        );
    }
}
