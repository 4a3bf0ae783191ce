//! The producer: a metadata preflight at connect, then one hour at a time, every part sent and
//! every acknowledgement awaited.

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tracing::{debug, info, instrument};

use super::context::Context;
use super::settings::{KafkaSettings, to_rdkafka, to_rdkafka_admin};
use super::{PublishError, cloudevents, tls};
use crate::message::KafkaMessage;
use crate::window::{HourWindow, rfc3339};

/// What the brokers say of the topic's largest accepted record batch (`max.message.bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicLimit {
    Bytes(u64),
    /// The brokers described the topic without the key (a broker that lists only the
    /// settings a topic was created with; Kafka lists every one, defaults included).
    NotReported,
    /// DescribeConfigs failed or was refused (it needs the DescribeConfigs ACL on the topic,
    /// which a producer may lack), with why.
    Unreadable(String),
}

pub struct Publisher {
    producer: FutureProducer<Context>,
    context: Context,
    settings: KafkaSettings,
}

/// What the operator should do about a failed delivery, and whether a rerun may succeed.
fn classify(error: &KafkaError) -> (&'static str, bool) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => (
            "the broker refused the size; lower --max-message-bytes below the topic's \
             max.message.bytes",
            false,
        ),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => (
            "the client certificate may not write to this topic; ask for a producer ACL",
            false,
        ),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            ("check --kafka-topic", false)
        }
        Some(RDKafkaErrorCode::Fatal) => (
            "the producer hit a fatal error (e.g. idempotence denied); check the broker's \
             version and the IDEMPOTENT_WRITE ACL",
            false,
        ),
        _ => (
            "the broker was unreachable or busy; the next run re-sends this hour with the same \
             message ids",
            true,
        ),
    }
}

impl Publisher {
    /// Check the TLS files, create the producer and make sure the brokers answer with the
    /// topic's metadata, so that TLS and address problems fail in seconds.
    #[instrument(skip_all, fields(brokers = %settings.brokers, topic = %settings.topic))]
    pub async fn connect(settings: &KafkaSettings) -> Result<Self, PublishError> {
        if let Some(files) = settings.transport.tls() {
            tls::check(files)?;
        }
        let context = Context::default();
        let producer: FutureProducer<Context> = to_rdkafka(settings)
            .create_with_context(context.clone())
            .map_err(|e| PublishError::Create(settings.scrub(e.to_string())))?;
        let publisher = Self {
            producer,
            context,
            settings: settings.clone(),
        };
        publisher.preflight().await?;
        info!("connected to Kafka");
        Ok(publisher)
    }

    async fn preflight(&self) -> Result<(), PublishError> {
        let deadline = std::time::Instant::now() + self.settings.preflight_timeout;
        let topic_error = |problem: String| PublishError::Topic {
            topic: self.settings.topic.clone(),
            brokers: self.settings.brokers.clone(),
            error: problem,
        };
        // The topic's last problem, once the brokers have answered.
        let mut last_problem: Option<String> = None;
        loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            let producer = self.producer.clone();
            let topic = self.settings.topic.clone();
            let metadata = tokio::task::spawn_blocking(move || {
                producer.client().fetch_metadata(Some(&topic), remaining)
            })
            .await
            .map_err(|e| PublishError::Worker(e.to_string()))?;
            let metadata = match (metadata, last_problem) {
                (Ok(m), _) => m,
                // Reachable before: the topic's state is the news, not the timeout.
                (Err(_), Some(problem)) => return Err(topic_error(problem)),
                (Err(e), None) => {
                    return Err(PublishError::Preflight {
                        brokers: self.settings.brokers.clone(),
                        timeout: self.settings.preflight_timeout,
                        error: e.to_string(),
                        reason: self.context.reason(),
                    });
                }
            };
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == self.settings.topic);
            // A broker that creates topics on first use answers "leader not available" while
            // it does; that settles within the preflight's time.
            let (problem, settling) = match topic.map(|t| (t.error(), t.partitions().is_empty())) {
                Some((None, false)) => return Ok(()),
                Some((None, true)) => ("no partitions".to_string(), true),
                Some((Some(e), _)) => {
                    let code = RDKafkaErrorCode::from(e);
                    (
                        code.to_string(),
                        code == RDKafkaErrorCode::LeaderNotAvailable,
                    )
                }
                None => ("not in the brokers' metadata".to_string(), false),
            };
            if !settling || std::time::Instant::now() >= deadline {
                return Err(topic_error(problem));
            }
            last_problem = Some(problem);
            debug!(topic = %self.settings.topic, "topic has no leader yet; asking again");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The topic's `max.message.bytes`, read with DescribeConfigs within the preflight's time.
    pub async fn topic_limit(&self) -> TopicLimit {
        let admin: AdminClient<Context> =
            match to_rdkafka_admin(&self.settings).create_with_context(self.context.clone()) {
                Ok(admin) => admin,
                Err(e) => return TopicLimit::Unreadable(self.settings.scrub(e.to_string())),
            };
        let options = AdminOptions::new().request_timeout(Some(self.settings.preflight_timeout));
        let topic = ResourceSpecifier::Topic(&self.settings.topic);
        let described = match admin.describe_configs([&topic], &options).await {
            Ok(mut results) if results.len() == 1 => results.remove(0),
            Ok(results) => {
                return TopicLimit::Unreadable(format!(
                    "the brokers answered {} results for one topic",
                    results.len()
                ));
            }
            Err(e) => return TopicLimit::Unreadable(self.settings.scrub(e.to_string())),
        };
        let resource = match described {
            Ok(resource) => resource,
            Err(code) => return TopicLimit::Unreadable(code.to_string()),
        };
        match resource
            .get("max.message.bytes")
            .and_then(|e| e.value.as_deref())
        {
            None => TopicLimit::NotReported,
            Some(value) => match value.trim().parse() {
                Ok(bytes) => TopicLimit::Bytes(bytes),
                Err(_) => TopicLimit::Unreadable(format!(
                    "max.message.bytes is {value:?}, not a number of bytes"
                )),
            },
        }
    }

    /// Send every part of one hour and wait for every acknowledgement. Returns only when the
    /// brokers hold all parts, with the bytes of payload sent; the message key is
    /// `<cluster>/<hour start>`.
    #[instrument(skip_all, fields(hour = %window, parts = messages.len()))]
    pub async fn publish_hour(
        &self,
        cluster: &str,
        window: &HourWindow,
        messages: &[KafkaMessage],
    ) -> Result<u64, PublishError> {
        let key = format!("{cluster}/{}", rfc3339(window.start()));
        let mut bytes = 0u64;
        let parts = messages.len();
        let mut pending = Vec::with_capacity(parts);
        for (i, message) in messages.iter().enumerate() {
            let id = message.header.message_id.as_str();
            let owned_id = id.to_string();
            let delivery_error = move |error: &KafkaError| {
                let (advice, retryable) = classify(error);
                PublishError::Delivery {
                    hour: window.to_string(),
                    part: i + 1,
                    parts,
                    message_id: owned_id.clone(),
                    error: error.to_string(),
                    reason: self.context.reason(),
                    advice,
                    retryable,
                }
            };
            let payload = serde_json::to_vec(message).map_err(|e| PublishError::Serialize {
                hour: window.to_string(),
                part: i + 1,
                reason: e.to_string(),
            })?;
            bytes += payload.len() as u64;
            let part = format!("{}/{parts}", i + 1);
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "message_id",
                    value: Some(id),
                })
                .insert(Header {
                    key: "part",
                    value: Some(part.as_str()),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some(cloudevents::CONTENT_TYPE),
                });
            if self.settings.cloudevents {
                for (key, value) in cloudevents::headers(cluster, window, &key, id) {
                    headers = headers.insert(Header {
                        key,
                        value: Some(value.as_str()),
                    });
                }
            }
            let record = FutureRecord::to(&self.settings.topic)
                .key(&key)
                .payload(&payload)
                .headers(headers);
            let future = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| delivery_error(&e))?;
            pending.push((future, delivery_error));
        }
        for (future, delivery_error) in pending {
            let failed = match future.await {
                Ok(Ok(delivery)) => {
                    debug!(
                        partition = delivery.partition,
                        offset = delivery.offset,
                        "acknowledged"
                    );
                    continue;
                }
                Ok(Err((e, _))) => delivery_error(&e),
                Err(_) => delivery_error(&KafkaError::Canceled),
            };
            // A fatal producer error (e.g. idempotence denied) purges the queue; report the
            // cause, not the purge.
            return Err(self.fatal(window, parts).unwrap_or(failed));
        }
        match self.fatal(window, parts) {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }

    fn fatal(&self, window: &HourWindow, parts: usize) -> Option<PublishError> {
        let (code, reason) = self.producer.client().fatal_error()?;
        Some(PublishError::Delivery {
            hour: window.to_string(),
            part: 1,
            parts,
            message_id: "(all parts)".into(),
            error: format!("fatal producer error {code}: {reason}"),
            reason: self.context.reason(),
            advice: "the producer cannot continue (e.g. idempotence denied); check the broker's \
                     version and the IDEMPOTENT_WRITE ACL of the client certificate",
            retryable: false,
        })
    }

    /// Wait for anything still queued (nothing is, after `publish_hour`).
    pub fn flush(&self) {
        let _ = self.producer.flush(self.settings.delivery_timeout);
    }
}
