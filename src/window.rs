//! Billing hours: UTC hour-aligned, half-open windows `[start, start + 1h)`, and the plans
//! that choose which of them a run publishes.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// One billing hour, `[start, start + 1h)`. Only hour-aligned starts can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourWindow {
    start: DateTime<Utc>,
}

pub const HOUR: TimeDelta = TimeDelta::hours(1);

/// Why a time or range was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("{what} {time} is not at the start of an hour; use a time like {floor}")]
    NotAligned {
        what: &'static str,
        time: String,
        floor: String,
    },
    #[error("--since {since} is not before --until {until}; the range is half-open [since, until)")]
    EmptyRange { since: String, until: String },
    #[error(
        "--until {until} is not yet billable: hours end plus the settle delay must be at or \
         before now ({now}); use --until {latest} or earlier"
    )]
    Future {
        until: String,
        now: String,
        latest: String,
    },
    #[error(
        "the range [{since}, {until}) holds {hours} hours, over the cap of {cap} per run; \
         split it into several runs or raise --max-hours-per-run"
    )]
    OverCap {
        since: String,
        until: String,
        hours: i64,
        cap: u32,
    },
}

impl HourWindow {
    /// The window starting at `start`, which must be on the hour.
    pub fn starting_at(start: DateTime<Utc>, what: &'static str) -> Result<Self, WindowError> {
        let floor = floor_hour(start);
        if floor != start {
            return Err(WindowError::NotAligned {
                what,
                time: rfc3339(start),
                floor: rfc3339(floor),
            });
        }
        Ok(Self { start })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.start + HOUR
    }

    pub fn next(&self) -> Self {
        Self { start: self.end() }
    }
}

impl fmt::Display for HourWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", rfc3339(self.start), rfc3339(self.end()))
    }
}

/// `t` rounded down to the hour, for every time chrono can represent.
///
/// Not `duration_trunc`: it works in nanoseconds and fails outside 1677-2262, and a fallback
/// to `t` there once made any such time (e.g. `1554-03-25T22:35:35.1Z`) count as an hour's
/// start (found by the checkpoint fuzz target).
pub fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let floored = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(floored, 0).unwrap_or(t)
}

/// Seconds-precision RFC 3339 with `Z`, the form used in logs and errors.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A sample's time (Unix milliseconds, as the store has it) as RFC 3339 with milliseconds.
pub fn rfc3339_millis(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The end of the newest hour that may be billed at `now`: its end plus the settle delay is
/// not after `now`.
pub fn latest_billable_end(now: DateTime<Utc>, settle: Duration) -> DateTime<Utc> {
    let settle = TimeDelta::from_std(settle).unwrap_or(TimeDelta::MAX);
    floor_hour(
        now.checked_sub_signed(settle)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// Hours `[from, until)` one after another, at most `cap`: a run plans only the hours it can
/// bill, so a checkpoint in year 0001 (or `--now` in year 9999) costs no more memory than a
/// fresh one.
fn hours_between(from: HourWindow, until: DateTime<Utc>, cap: u32) -> Vec<HourWindow> {
    let cap = cap as usize;
    let mut out = Vec::new();
    let mut w = from;
    while w.end() <= until && out.len() < cap {
        out.push(w);
        w = w.next();
    }
    out
}

/// A scheduled run: every complete, settled hour after the checkpoint, oldest first, at most
/// `cap`. `checkpoint` is the end of the last hour fully published (hour-aligned).
pub fn plan_scheduled(
    checkpoint: HourWindow,
    now: DateTime<Utc>,
    settle: Duration,
    cap: u32,
) -> Vec<HourWindow> {
    hours_between(checkpoint, latest_billable_end(now, settle), cap)
}

/// A first run without a checkpoint: only the newest billable hour.
pub fn plan_first_run(now: DateTime<Utc>, settle: Duration) -> Vec<HourWindow> {
    let end = latest_billable_end(now, settle);
    vec![HourWindow { start: end - HOUR }]
}

/// A backfill of `[since, until)`, validated against the clock and the cap.
pub fn plan_backfill(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    settle: Duration,
    cap: u32,
) -> Result<Vec<HourWindow>, WindowError> {
    let first = HourWindow::starting_at(since, "--since")?;
    HourWindow::starting_at(until, "--until")?;
    if since >= until {
        return Err(WindowError::EmptyRange {
            since: rfc3339(since),
            until: rfc3339(until),
        });
    }
    let latest = latest_billable_end(now, settle);
    if until > latest {
        return Err(WindowError::Future {
            until: rfc3339(until),
            now: rfc3339(now),
            latest: rfc3339(latest),
        });
    }
    let hours = (until - since).num_hours();
    if hours > i64::from(cap) {
        return Err(WindowError::OverCap {
            since: rfc3339(since),
            until: rfc3339(until),
            hours,
            cap,
        });
    }
    Ok(hours_between(first, until, cap))
}

/// Consecutive runs of hours, each at most `max_hours` long: one range query per dimension
/// covers one span.
pub fn spans(hours: &[HourWindow], max_hours: usize) -> Vec<Vec<HourWindow>> {
    let mut out: Vec<Vec<HourWindow>> = Vec::new();
    for &h in hours {
        match out.last_mut() {
            Some(span)
                if span.len() < max_hours.max(1)
                    && span.last().is_some_and(|last| last.end() == h.start()) =>
            {
                span.push(h)
            }
            _ => out.push(vec![h]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    const TEN_MIN: Duration = Duration::from_secs(600);

    /// A checkpoint in year 0001 and a clock in year 9999: the plan holds the run's cap of
    /// hours, and never held the 70 million between (its capacity shows what was allocated).
    #[test]
    fn planning_holds_only_the_hours_a_run_bills() {
        let first = HourWindow::starting_at(t("0001-01-01T00:00:00Z"), "x").unwrap();
        let hours = plan_scheduled(first, t("9999-12-31T23:59:59Z"), TEN_MIN, 168);
        assert_eq!(hours.len(), 168);
        assert_eq!(hours[0], first);
        assert!(hours.capacity() < 2 * 168, "{}", hours.capacity());
    }

    #[test]
    fn windows_are_half_open_and_hour_aligned() {
        let w = HourWindow::starting_at(t("2026-11-22T10:00:00Z"), "x").unwrap();
        assert_eq!(w.end(), t("2026-11-22T11:00:00Z"));
        assert_eq!(w.next().start(), w.end());
        assert_eq!(
            w.to_string(),
            "[2026-11-22T10:00:00Z, 2026-11-22T11:00:00Z)"
        );
        let err = HourWindow::starting_at(t("2026-11-22T10:00:01Z"), "--since").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--since 2026-11-22T10:00:01Z is not at the start of an hour; use a time like \
             2026-11-22T10:00:00Z"
        );
    }

    /// Times outside chrono's nanosecond range (1677-2262) and with fractions are floored too,
    /// so they are never taken for an hour's start.
    #[test]
    fn floor_holds_for_every_representable_time() {
        for raw in [
            "1554-03-25T22:35:35.1Z",
            "2500-01-01T00:00:00.5Z",
            "2026-11-22T10:00:00.000001Z",
        ] {
            let t: DateTime<Utc> = raw.parse().unwrap();
            assert!(HourWindow::starting_at(t, "t").is_err(), "{raw}");
        }
        let t: DateTime<Utc> = "1554-03-25T22:00:00Z".parse().unwrap();
        assert_eq!(floor_hour("1554-03-25T22:35:35.1Z".parse().unwrap()), t);
        assert!(HourWindow::starting_at(t, "t").is_ok());
    }

    #[test]
    fn scheduled_plan_waits_for_the_settle_delay() {
        let cp = HourWindow::starting_at(t("2026-11-22T07:00:00Z"), "x").unwrap();
        // 10:09: the hour 09-10 has not settled yet.
        let plan = plan_scheduled(cp, t("2026-11-22T10:09:59Z"), TEN_MIN, 168);
        let starts: Vec<_> = plan.iter().map(|w| w.start()).collect();
        assert_eq!(
            starts,
            vec![t("2026-11-22T07:00:00Z"), t("2026-11-22T08:00:00Z")]
        );
        // 10:10 exactly: it has.
        assert_eq!(
            plan_scheduled(cp, t("2026-11-22T10:10:00Z"), TEN_MIN, 168).len(),
            3
        );
    }

    #[test]
    fn scheduled_plan_is_capped_oldest_first() {
        let cp = HourWindow::starting_at(t("2026-11-01T00:00:00Z"), "x").unwrap();
        let plan = plan_scheduled(cp, t("2026-11-22T10:30:00Z"), TEN_MIN, 5);
        assert_eq!(plan.len(), 5);
        assert_eq!(plan[0].start(), t("2026-11-01T00:00:00Z"));
        assert_eq!(plan[4].start(), t("2026-11-01T04:00:00Z"));
    }

    #[test]
    fn scheduled_plan_is_empty_when_up_to_date() {
        let cp = HourWindow::starting_at(t("2026-11-22T10:00:00Z"), "x").unwrap();
        assert!(plan_scheduled(cp, t("2026-11-22T10:55:00Z"), TEN_MIN, 168).is_empty());
    }

    #[test]
    fn first_run_bills_the_last_settled_hour() {
        let plan = plan_first_run(t("2026-11-22T10:05:00Z"), TEN_MIN);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].start(), t("2026-11-22T08:00:00Z"));
    }

    #[test]
    fn backfill_is_validated() {
        let now = t("2026-11-22T12:00:00Z");
        let ok = plan_backfill(
            t("2026-11-22T08:00:00Z"),
            t("2026-11-22T11:00:00Z"),
            now,
            TEN_MIN,
            168,
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        let empty = plan_backfill(
            t("2026-11-22T08:00:00Z"),
            t("2026-11-22T08:00:00Z"),
            now,
            TEN_MIN,
            168,
        );
        assert!(matches!(empty, Err(WindowError::EmptyRange { .. })));
        let future = plan_backfill(
            t("2026-11-22T08:00:00Z"),
            t("2026-11-22T12:00:00Z"),
            now,
            TEN_MIN,
            168,
        );
        assert!(matches!(future, Err(WindowError::Future { .. })));
        let over = plan_backfill(
            t("2026-11-01T00:00:00Z"),
            t("2026-11-22T00:00:00Z"),
            now,
            TEN_MIN,
            168,
        );
        assert!(matches!(over, Err(WindowError::OverCap { hours: 504, .. })));
        let unaligned = plan_backfill(
            t("2026-11-22T08:30:00Z"),
            t("2026-11-22T10:00:00Z"),
            now,
            TEN_MIN,
            168,
        );
        assert!(matches!(unaligned, Err(WindowError::NotAligned { .. })));
    }

    #[test]
    fn spans_split_at_gaps_and_length() {
        let h = |s: &str| HourWindow::starting_at(t(s), "x").unwrap();
        let hours = vec![
            h("2026-11-22T00:00:00Z"),
            h("2026-11-22T01:00:00Z"),
            h("2026-11-22T02:00:00Z"),
            h("2026-11-22T05:00:00Z"),
        ];
        let s = spans(&hours, 2);
        let lens: Vec<_> = s.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![2, 1, 1]);
    }
}
