//! Where an hour's messages go: Kafka (the job's main path) or stdout (a dry-run).
//!
//! Two real implementations behind one enum, so that the Manager's loop reads the same for
//! both: deliver an hour, then (when publishing) advance the checkpoint.
//!
//! The dry-run keeps its promise that stdout holds one JSON array, written only after every hour
//! was collected (empty after an error), without holding the run's messages in memory: each
//! hour's messages are spooled to an unnamed temporary file as they are shaped (one compact
//! JSON document per line) and copied to stdout, pretty-printed, one message at a time when the
//! run succeeds. Memory stays at one hour's messages however many hours a run covers (a
//! 168-hour catch-up of 10,000 namespaces is about 500 MiB of JSON).

use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use serde::Serializer;
use serde::ser::SerializeSeq;

use crate::kafka::{KafkaSettings, Publisher};
use crate::message::KafkaMessage;
use crate::window::HourWindow;

/// Where the messages go.
#[derive(Debug, Clone)]
pub enum Output {
    /// One JSON array on stdout; neither Kafka nor the checkpoint is touched.
    DryRun,
    /// Kafka, then advance the checkpoint.
    Publish(KafkaSettings),
}

/// Why a dry-run could not print its messages.
#[derive(Debug, thiserror::Error)]
pub enum StdoutError {
    #[error(
        "could not spool the dry-run's messages to a temporary file: {0}; set TMPDIR to a \
         writable directory with room for the run's messages"
    )]
    Spool(std::io::Error),
    #[error("could not write the messages to stdout: {0}")]
    Write(std::io::Error),
}

/// Why an hour could not be delivered: stdout's or Kafka's own error, unchanged.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Stdout(#[from] StdoutError),
    #[error(transparent)]
    Publish(#[from] crate::kafka::PublishError),
}

/// The dry-run's messages, spooled until the run is over.
pub struct Spool {
    file: BufWriter<std::fs::File>,
    messages: usize,
}

impl Spool {
    pub fn new() -> Result<Self, StdoutError> {
        let file = tempfile::tempfile().map_err(StdoutError::Spool)?;
        Ok(Self {
            file: BufWriter::new(file),
            messages: 0,
        })
    }

    fn push(&mut self, messages: &[KafkaMessage]) -> Result<u64, StdoutError> {
        let mut bytes = 0;
        for m in messages {
            let line = serde_json::to_vec(m).map_err(|e| StdoutError::Spool(e.into()))?;
            bytes += line.len() as u64;
            self.file.write_all(&line).map_err(StdoutError::Spool)?;
            self.file.write_all(b"\n").map_err(StdoutError::Spool)?;
            self.messages += 1;
        }
        Ok(bytes)
    }

    /// Print every spooled message on `out` as one pretty JSON array (byte for byte what
    /// `serde_json::to_vec_pretty` gives for the whole list), reading one message at a time.
    pub fn print(self, out: &mut dyn Write) -> Result<(), StdoutError> {
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| StdoutError::Spool(e.into_error()))?;
        file.rewind().map_err(StdoutError::Spool)?;
        let mut json = serde_json::Serializer::pretty(BufWriter::new(&mut *out));
        let mut seq = json
            .serialize_seq(Some(self.messages))
            .map_err(|e| StdoutError::Write(e.into()))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(StdoutError::Spool)?;
            let m: KafkaMessage =
                serde_json::from_str(&line).map_err(|e| StdoutError::Spool(e.into()))?;
            seq.serialize_element(&m)
                .map_err(|e| StdoutError::Write(e.into()))?;
        }
        seq.end().map_err(|e| StdoutError::Write(e.into()))?;
        let mut writer = json.into_inner();
        writer.write_all(b"\n").map_err(StdoutError::Write)?;
        writer.flush().map_err(StdoutError::Write)?;
        Ok(())
    }
}

/// Where messages go.
pub enum Sink {
    /// A dry-run: stdout at the end of the run.
    Stdout(Spool),
    /// Kafka over mutual TLS; every part acknowledged before `deliver` returns.
    Kafka(Box<Publisher>),
}

/// What delivering one hour did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivered {
    pub messages: usize,
    /// Bytes of JSON payload.
    pub bytes: u64,
}

impl Sink {
    /// Whether this sink acknowledges hours durably (so that the checkpoint may follow).
    pub fn is_durable(&self) -> bool {
        matches!(self, Sink::Kafka(_))
    }

    /// Hand over one hour's messages. For Kafka, returns only once the brokers hold them all.
    pub async fn deliver(
        &mut self,
        cluster: &str,
        window: &HourWindow,
        messages: &[KafkaMessage],
    ) -> Result<Delivered, SinkError> {
        let bytes = match self {
            Sink::Stdout(spool) => spool.push(messages)?,
            Sink::Kafka(publisher) => publisher.publish_hour(cluster, window, messages).await?,
        };
        Ok(Delivered {
            messages: messages.len(),
            bytes,
        })
    }

    /// End the run: a dry-run prints its messages on `out`; Kafka waits for anything queued.
    pub fn finish(self, out: &mut dyn Write) -> Result<(), SinkError> {
        match self {
            Sink::Stdout(spool) => spool.print(out)?,
            Sink::Kafka(publisher) => publisher.flush(),
        }
        Ok(())
    }
}
