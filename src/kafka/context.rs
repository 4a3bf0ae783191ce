//! What every client the job creates reports through: librdkafka's own error callback, whose
//! last report the producer's and the audit's errors quote (TLS and connection failures reach
//! only this callback; deliveries and reads just time out).

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use tracing::warn;

/// Keeps librdkafka's last error report. TLS and connection failures reach only this callback;
/// deliveries just time out, so errors quote it.
#[derive(Clone, Default)]
pub struct Context {
    last_error: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(%error, reason, "librdkafka reported an error");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_string());
        }
    }
}

/// The audit's consumer reports through the same context.
impl ConsumerContext for Context {}

impl Context {
    /// librdkafka's last error report, as ` (librdkafka: …)`, or nothing.
    pub(crate) fn reason(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .map(|r| format!(" (librdkafka: {r})"))
            .unwrap_or_default()
    }
}
