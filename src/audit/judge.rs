//! What was read for an hour, bounded, and the verdict on it.

use std::collections::{BTreeMap, BTreeSet};

use crate::window::{HourWindow, rfc3339};

use super::report::{HourReport, Status};

/// Lines of junk kept per hour (foreign records), copies listed per part, unattributed keys
/// and part counts kept per hour: enough to show what is wrong and where; the rest is counted.
pub const KEEP: usize = 10;

/// The first copy of a part: where it lies, a digest of its payload, and its namespace range.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) digest: [u8; 32],
    pub(super) message_id: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) first: Option<String>,
    pub(super) last: Option<String>,
}

/// Every copy of one part read for an hour.
#[derive(Debug, Clone)]
pub(super) struct Copies {
    pub(super) first: Stored,
    /// Copies read in all, the first included.
    pub(super) count: usize,
    /// Whether any copy's payload differs from the first's.
    pub(super) differs: bool,
    /// `partition@offset` of the first [`KEEP`] copies.
    pub(super) at: Vec<String>,
}

impl Copies {
    pub(super) fn new(first: Stored) -> Self {
        let at = vec![format!("{}@{}", first.partition, first.offset)];
        Copies {
            first,
            count: 1,
            differs: false,
            at,
        }
    }

    pub(super) fn add(&mut self, digest: [u8; 32], partition: i32, offset: i64) {
        self.count += 1;
        self.differs |= digest != self.first.digest;
        if self.at.len() < KEEP {
            self.at.push(format!("{partition}@{offset}"));
        }
    }
}

/// Lines of one kind, the first [`KEEP`] kept and the rest counted.
#[derive(Debug, Default)]
pub(super) struct Bounded {
    pub(super) kept: Vec<String>,
    pub(super) left_out: usize,
}

/// The most bytes of one finding kept: findings quote what a record holds (a header's value,
/// a key), which anyone who can write to the topic chooses, so without a bound ten findings an
/// hour over a month of huge headers would exceed the Job's memory and report nothing.
pub(super) const MAX_FINDING_BYTES: usize = 1024;

/// `line` cut to [`MAX_FINDING_BYTES`] on a character boundary, saying how much was left out.
pub(super) fn bounded(line: String) -> String {
    if line.len() <= MAX_FINDING_BYTES {
        return line;
    }
    let mut cut = MAX_FINDING_BYTES;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… ({} more bytes left out)",
        &line[..cut],
        line.len() - cut
    )
}

impl Bounded {
    pub(super) fn push(&mut self, line: impl FnOnce() -> String) {
        if self.kept.len() < KEEP {
            self.kept.push(bounded(line()));
        } else {
            self.left_out += 1;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// What was read for one hour.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Part number (1-based) → its copies.
    pub(super) parts: BTreeMap<usize, Copies>,
    /// Part counts the messages claimed (more than one is itself a finding), the first
    /// [`KEEP`] distinct ones.
    pub(super) totals: BTreeSet<usize>,
    pub(super) foreign: Bounded,
    /// Records read under the hour's key, ours and foreign.
    pub(super) messages: usize,
    /// Copies of our ids under another key: one line each, with the status it earns.
    pub(super) elsewhere: Vec<(Status, String)>,
}

/// The verdict on one hour from what was read for it.
pub(super) fn judge(window: &HourWindow, seen: Option<&Seen>) -> HourReport {
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
