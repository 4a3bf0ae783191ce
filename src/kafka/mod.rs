//! Kafka over mutual TLS: [`settings`] writes every librdkafka key in one place, [`tls`]
//! checks the PEM files before connecting, [`publisher`] sends one hour's messages and waits
//! for every acknowledgement, [`reader`] reads a topic back for the audit, [`context`] keeps
//! librdkafka's last error for both, [`cloudevents`] writes and checks the records' attributes.

pub mod cloudevents;
pub mod context;
pub mod publisher;
pub mod reader;
pub mod settings;
pub mod tls;

use std::time::Duration;

pub use publisher::{Publisher, TopicLimit};
pub use settings::{KafkaSettings, TlsFiles, Transport};

/// Why an hour could not be published. The checkpoint never moves past such an hour.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("could not create the Kafka producer: {0}; check --kafka-property")]
    Create(String),
    #[error("could not serialize part {part} of the hour {hour}: {reason}")]
    Serialize {
        hour: String,
        part: usize,
        reason: String,
    },
    #[error("the metadata preflight's worker thread failed: {0}; please report it with the logs")]
    Worker(String),
    #[error(
        "could not reach Kafka at {brokers} within {timeout:?}: {error}{reason}; check \
         --kafka-brokers, the network policy, and the TLS files (--kafka-ca must be the CA of \
         the brokers' certificates; the brokers must trust --kafka-cert)"
    )]
    Preflight {
        brokers: String,
        timeout: Duration,
        error: String,
        /// librdkafka's own explanation (e.g. a TLS alert), when it gave one.
        reason: String,
    },
    #[error(
        "Kafka topic {topic} is not available at {brokers}: {error}; create it or check \
         --kafka-topic and the ACLs"
    )]
    Topic {
        topic: String,
        brokers: String,
        error: String,
    },
    #[error(
        "Kafka did not acknowledge part {part} of {parts} of the hour {hour} (message id \
         {message_id}): {error}{reason}; {advice}"
    )]
    Delivery {
        hour: String,
        part: usize,
        parts: usize,
        message_id: String,
        error: String,
        reason: String,
        advice: &'static str,
        retryable: bool,
    },
}

/// Whether librdkafka's account of a failed connection is a TLS verification or handshake
/// refusal (ours of the broker's certificate, or the broker's of ours).
fn is_tls_refusal(error: &str, reason: &str) -> bool {
    let text = format!("{error} {reason}").to_ascii_lowercase();
    [
        "certificate verify failed",
        "ssl handshake failed",
        "unknown ca",
        "bad certificate",
        "certificate required",
        "certificate expired",
        "certificate revoked",
        "unsupported certificate",
        "handshake failure",
    ]
    .iter()
    .any(|n| text.contains(n))
}

impl PublishError {
    /// Whether the next run may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A broker that is down may come back; a certificate that does not verify will
            // not, unchanged: retrying it only hides the cause.
            PublishError::Preflight { error, reason, .. } => !is_tls_refusal(error, reason),
            PublishError::Delivery { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
