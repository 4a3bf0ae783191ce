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

use std::io::{BufWriter, Seek, Write};

use crate::kafka::{KafkaSettings, Publisher};
use crate::message::{KafkaMessage, json_len};
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

    /// Spool `messages` as they will stand in the printed array: pretty, one level in, each
    /// after its separator, so that printing copies the file instead of parsing it back and
    /// serializing it again. Returns their bytes of compact JSON (what publishing sends).
    fn push(&mut self, messages: &[KafkaMessage]) -> Result<u64, StdoutError> {
        let spool = |e: std::io::Error| StdoutError::Spool(e);
        let mut bytes = 0;
        for m in messages {
            bytes += json_len(m).map_err(|e| StdoutError::Spool(e.into()))? as u64;
            let pretty = serde_json::to_vec_pretty(m).map_err(|e| StdoutError::Spool(e.into()))?;
            let separator: &[u8] = if self.messages == 0 {
                b"\n  "
            } else {
                b",\n  "
            };
            self.file.write_all(separator).map_err(spool)?;
            // A newline in pretty JSON is formatting (one in a string is escaped): each
            // starts a line one level deeper inside the array.
            for (i, line) in pretty.split(|b| *b == b'\n').enumerate() {
                if i > 0 {
                    self.file.write_all(b"\n  ").map_err(spool)?;
                }
                self.file.write_all(line).map_err(spool)?;
            }
            self.messages += 1;
        }
        Ok(bytes)
    }

    /// Print every spooled message on `out` as one pretty JSON array, byte for byte what
    /// `serde_json::to_vec_pretty` gives for the whole list (its pretty formatter opens each
    /// element on a new line, indented by two spaces per level), and a newline.
    pub fn print(self, out: &mut dyn Write) -> Result<(), StdoutError> {
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| StdoutError::Spool(e.into_error()))?;
        file.rewind().map_err(StdoutError::Spool)?;
        let mut writer = BufWriter::new(out);
        if self.messages == 0 {
            writer.write_all(b"[]\n").map_err(StdoutError::Write)?;
        } else {
            writer.write_all(b"[").map_err(StdoutError::Write)?;
            std::io::copy(&mut file, &mut writer).map_err(StdoutError::Write)?;
            writer.write_all(b"\n]\n").map_err(StdoutError::Write)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{IdFormat, MessageSettings, shape};
    use crate::usage::{HourUsage, NamespaceUsage};

    /// Messages of `n` namespaces in parts of at most `max` bytes.
    fn messages(n: usize, max: usize) -> Vec<KafkaMessage> {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        let hour = HourUsage {
            window: HourWindow::starting_at(t, "x").unwrap(),
            namespaces: (0..n)
                .map(|i| {
                    let usage = NamespaceUsage {
                        cpu: 0.25 * i as f64,
                        ..Default::default()
                    };
                    (format!("team-{i:03}"), usage)
                })
                .collect(),
        };
        let settings = MessageSettings {
            cluster_name: "c1".into(),
            service_name: "OPENSHIFT".into(),
            service_version: "GA".into(),
            service_location: "X".into(),
            max_message_bytes: max,
            id_format: IdFormat::Uuid,
        };
        shape(&hour, &settings).unwrap()
    }

    /// The spooled array prints byte for byte as the whole list pretty-printed at once, for
    /// no message, one, and several pushed in two hours; the bytes counted are the compact
    /// JSON's.
    #[test]
    fn the_printed_array_is_the_list_pretty_printed() {
        for hours in [
            vec![],
            vec![messages(3, 100_000)],
            vec![messages(40, 1200), messages(7, 600)],
        ] {
            let mut spool = Spool::new().unwrap();
            let mut compact = 0;
            for h in &hours {
                let bytes = spool.push(h).unwrap();
                assert_eq!(
                    bytes,
                    h.iter()
                        .map(|m| serde_json::to_vec(m).unwrap().len() as u64)
                        .sum::<u64>()
                );
                compact += bytes;
            }
            let mut out = Vec::new();
            spool.print(&mut out).unwrap();
            let all: Vec<&KafkaMessage> = hours.iter().flatten().collect();
            let mut expected = serde_json::to_vec_pretty(&all).unwrap();
            expected.push(b'\n');
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(expected).unwrap()
            );
            assert_eq!(compact == 0, all.is_empty());
        }
    }
}
