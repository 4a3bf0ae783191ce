//! `consumption-metrics check`: the command an operator runs on day one and after any change
//! to monitoring, with the job's own configuration, so that it runs in the CronJob's pod too.
//! It asks the store whether a run would bill correctly and prints one line per check,
//! `ok`, `warn` or `FAIL`, each failure with what to do.
//!
//! It reads, never writes: the checkpoint is loaded and its write permission proven without
//! storing anything (a `dryRun` create or update of the ConfigMap, a permission check of the
//! file's directory; a real create would turn a deleted checkpoint into a first run);
//! the Kafka side is connected and its topic's metadata read, and nothing is produced. Every
//! failure is a line, not an error: the report is the whole answer, and the exit code is the
//! class of the first failure (the run's own exit codes, docs/operating.md, "Exit codes").

mod checkpoint;
mod config;
mod gpu;
mod kafka;
mod provenance;
mod requests;
mod store;
mod time;
use checkpoint::*;
pub use config::{CheckConfig, CheckFormat};
use gpu::*;
use kafka::*;
use provenance::*;
use requests::*;
use store::*;
use time::*;

use std::time::Duration;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, Plan};
use crate::collector::{self, Collected, Collector};
use crate::config::Config;
use crate::exit;
use crate::gpu::{GpuSource, Weight};
use crate::kafka::{Publisher, TopicLimit};
use crate::prometheus::{Prometheus, RangeQuery, Series};
use crate::queries::{self, CpuBasis, ReadBy, Windows};
use crate::usage::Tier;
use crate::window::{HourWindow, floor_hour, rfc3339};

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Billed, but maybe not as meant (a GPU without a weight, a StorageClass without a tier).
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub check: String,
    pub verdict: Verdict,
    /// What was found; for a failure, also what to do.
    pub detail: String,
    /// The exit code a failure of this check stands for.
    #[serde(skip)]
    class: u8,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub cluster: String,
    /// The hour the data checks read: the newest settled one.
    pub hour: String,
    pub checks: Vec<Line>,
}

impl CheckReport {
    /// 0 when a run would bill correctly, else the class of the first failure.
    pub fn exit_code(&self) -> u8 {
        self.checks
            .iter()
            .find(|l| l.verdict == Verdict::Fail)
            .map_or(exit::OK, |l| l.class)
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "check of cluster {} with the data of the hour {}\n",
            self.cluster, self.hour
        );
        let width = self.checks.iter().map(|l| l.check.len()).max().unwrap_or(0);
        for l in &self.checks {
            let verdict = match l.verdict {
                Verdict::Ok => "ok",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            out.push_str(&format!("{verdict:<5} {:<width$}  {}\n", l.check, l.detail));
        }
        let failed = self
            .checks
            .iter()
            .filter(|l| l.verdict == Verdict::Fail)
            .count();
        out.push_str(&if failed == 0 {
            "a run would bill this cluster correctly\n".to_string()
        } else {
            format!("{failed} checks failed: a run would not bill this cluster correctly\n")
        });
        out
    }
}

/// Collects the lines.
struct Lines(Vec<Line>);

impl Lines {
    /// Every line passes here: control characters in it are escaped, since names in it come
    /// from the data (StorageClasses, GPU resources, label values) and must not forge further
    /// report lines or send escape codes to an operator's terminal.
    /// Each line is also logged (stderr) as it is decided, so that an operator watching a
    /// slow store sees how far `check` got; the report on stdout comes at the end.
    fn push(&mut self, check: impl Into<String>, verdict: Verdict, detail: String, class: u8) {
        let line = Line {
            check: without_controls(&check.into()),
            verdict,
            detail: without_controls(&detail),
            class,
        };
        tracing::info!(check = %line.check, verdict = ?line.verdict, "{}", line.detail);
        self.0.push(line);
    }
    fn ok(&mut self, check: impl Into<String>, detail: String) {
        self.push(check, Verdict::Ok, detail, exit::OK);
    }
    fn warn(&mut self, check: impl Into<String>, detail: String) {
        self.push(check, Verdict::Warn, detail, exit::OK);
    }
    fn fail(&mut self, check: impl Into<String>, detail: String, class: u8) {
        self.push(check, Verdict::Fail, detail, class);
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`).
fn without_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The newest hour a scheduled run would bill now: settled, and complete.
fn newest_settled(config: &Config) -> Option<HourWindow> {
    let settle = chrono::TimeDelta::from_std(config.settle_delay).ok()?;
    let end = floor_hour(config.now - settle);
    HourWindow::starting_at(end - chrono::TimeDelta::hours(1), "check").ok()
}

/// One range query evaluated at the end of `hour`.
async fn at_end(
    prometheus: &Prometheus,
    what: &str,
    expr: &str,
    hour: &HourWindow,
) -> Result<Vec<Series>, String> {
    prometheus
        .query_range(&RangeQuery::at(what, expr, hour.end()))
        .await
        .map_err(|e| e.to_string())
}

/// The single value of a `count(...)` answer (0 when empty).
fn count(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .sum()
}

/// The values of `label` in a `group by (label)` answer, sorted.
fn values<'a>(series: impl IntoIterator<Item = &'a Series>, label: &str) -> Vec<String> {
    let mut v: Vec<String> = series
        .into_iter()
        .map(|s| s.labels.get(label).cloned().unwrap_or_default())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Run every check. Never fails: a check that cannot run is a failed line.
pub async fn run(check: &CheckConfig) -> CheckReport {
    let store = Checkpoint::open(&check.config.checkpoint).await;
    run_with_checkpoint(check, store).await
}

/// [`run`] with the checkpoint store given (tests use a Kubernetes API double that records
/// every request, to prove `check` writes nothing).
pub async fn run_with_checkpoint(
    check: &CheckConfig,
    store: crate::checkpoint::Result<Checkpoint>,
) -> CheckReport {
    let config = &check.config;
    let mut lines = Lines(Vec::new());
    let hour = newest_settled(config);
    let report = |lines: Lines| CheckReport {
        cluster: config.message.cluster_name.clone(),
        hour: hour.map(|h| h.to_string()).unwrap_or_default(),
        checks: lines.0,
    };
    let Some(hour) = hour else {
        lines.fail(
            "clock",
            format!("no settled hour before {}", rfc3339(config.now)),
            exit::USAGE,
        );
        return report(lines);
    };
    // Read once: the retention check needs the value, the checkpoint line says whether it
    // is readable and writable (listed after the data's checks).
    let (next, checkpoint) = read_checkpoint(config, store).await;
    // One deadline for every query to the store: the lines decided before it are kept.
    let deadline = check.deadline;
    if tokio::time::timeout(deadline, prometheus_checks(config, &hour, next, &mut lines))
        .await
        .is_err()
    {
        lines.fail(
            "deadline",
            format!(
                "the store's checks did not finish within {} (--deadline): Prometheus answers \
                 too slowly or hangs, and a run would wait as long for its queries. Check the \
                 store's load and --prometheus-timeout; the lines above were decided before it",
                humantime::format_duration(deadline)
            ),
            exit::COLLECT,
        );
    }
    lines.0.push(checkpoint);
    match &check.kafka {
        Some(settings) => match Publisher::connect(settings).await {
            Ok(publisher) => {
                lines.ok(
                    "kafka",
                    format!(
                        "brokers {} answer over mutual TLS with this certificate and topic {} \
                         exists; write permission is proven by the first publish (check never \
                         writes)",
                        settings.brokers, settings.topic
                    ),
                );
                message_size(
                    &mut lines,
                    settings.max_message_bytes,
                    publisher.topic_limit().await,
                );
            }
            Err(e) => lines.fail("kafka", e.to_string(), exit::OUTPUT),
        },
        None => lines.ok(
            "kafka",
            "not configured (no --kafka-brokers): not checked".into(),
        ),
    }
    report(lines)
}

#[cfg(test)]
mod tests;
