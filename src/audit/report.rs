//! The audit's report: the verdict per hour and the whole, as text or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

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
