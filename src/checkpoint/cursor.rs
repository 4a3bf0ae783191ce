//! The cursor over the checkpoint: which hours a run bills (its [`Plan`] read against the
//! stored value), and, as each hour is acknowledged, moving the checkpoint past it — only where
//! it continues the checkpoint without a gap, never backwards. The Manager asks the cursor;
//! nothing else plans hours or advances the checkpoint.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Checkpoint, Result};
use crate::window::{self, HourWindow, rfc3339};

/// Which hours a run covers; each kind carries only what belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The CronJob: every settled hour after the checkpoint.
    Scheduled {
        /// First run without a checkpoint: start here instead of at the last complete hour.
        start_from: Option<HourWindow>,
    },
    /// An explicit, already validated range of hours.
    Backfill {
        hours: Vec<HourWindow>,
        /// Also advance the checkpoint where the range continues it (--advance-checkpoint).
        advance_checkpoint: bool,
    },
}

impl Plan {
    /// Whether a publishing run of this plan moves the checkpoint.
    pub fn advances_checkpoint(&self) -> bool {
        match self {
            Plan::Scheduled { .. } => true,
            Plan::Backfill {
                advance_checkpoint, ..
            } => *advance_checkpoint,
        }
    }
}

/// How far a scheduled run reaches.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    pub now: DateTime<Utc>,
    /// An hour is billed this long after its end, when late samples have arrived.
    pub settle_delay: Duration,
    pub max_hours_per_run: u32,
}

pub struct Cursor {
    store: Checkpoint,
    plan: Plan,
    reach: Reach,
    /// This run writes the checkpoint: it publishes, and its plan advances the checkpoint.
    writes: bool,
    /// The next hour the checkpoint expects, once read; `None` before, or on a first run.
    next: Option<HourWindow>,
}

impl Cursor {
    /// `publishing`: the run's hours go to Kafka (a dry-run never writes the checkpoint).
    pub fn new(store: Checkpoint, plan: Plan, reach: Reach, publishing: bool) -> Self {
        let writes = publishing && plan.advances_checkpoint();
        Self {
            store,
            plan,
            reach,
            writes,
            next: None,
        }
    }

    /// The hours to bill, oldest first. A scheduled run reads the checkpoint (also a dry-run:
    /// it shows what the next run would send); a backfill reads it only if it may advance it.
    pub async fn hours(&mut self) -> Result<Vec<HourWindow>> {
        let Reach {
            now,
            settle_delay,
            max_hours_per_run,
        } = self.reach;
        match &self.plan {
            Plan::Backfill { hours, .. } => {
                if self.writes {
                    self.next = self.store.load(now).await?;
                }
                Ok(hours.clone())
            }
            Plan::Scheduled { start_from } => {
                let start_from = *start_from;
                if let Some(next) = self.store.load(now).await? {
                    self.next = Some(next);
                    return Ok(window::plan_scheduled(
                        next,
                        now,
                        settle_delay,
                        max_hours_per_run,
                    ));
                }
                let hours = match start_from {
                    Some(first) => {
                        window::plan_scheduled(first, now, settle_delay, max_hours_per_run)
                    }
                    None => window::plan_first_run(now, settle_delay),
                };
                info!(
                    checkpoint = %self.store.describe(),
                    first = hours.first().map(|h| h.to_string()).unwrap_or_default(),
                    "no checkpoint yet: first run (see --start-from)"
                );
                self.next = hours.first().copied();
                Ok(hours)
            }
        }
    }

    /// Before anything is sent: a run that writes the checkpoint proves it can.
    pub async fn prepare(&mut self) -> Result<()> {
        if self.writes {
            self.store.prepare().await?;
        }
        Ok(())
    }

    /// `hour` was delivered: move the checkpoint past it if this run writes the checkpoint
    /// and `hour` continues it without a gap. A scheduled run always continues it; a backfill
    /// over a checkpoint with no value starts it, and one that only overlaps leaves it alone.
    pub async fn advance_past(&mut self, hour: HourWindow) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        let scheduled = matches!(self.plan, Plan::Scheduled { .. });
        match self.next {
            None if !scheduled => {}
            Some(n) if n == hour => {}
            Some(n) if n > hour => return Ok(()),
            _ => {
                warn!(
                    hour = %hour,
                    checkpoint = self.next.map(|n| rfc3339(n.start())).unwrap_or_default(),
                    "not advancing the checkpoint: this hour does not continue it"
                );
                return Ok(());
            }
        }
        self.store.advance(hour.end(), self.reach.now).await?;
        info!(checkpoint = %rfc3339(hour.end()), store = %self.store.describe(), "checkpoint advanced");
        self.next = Some(hour.next());
        Ok(())
    }

    /// The checkpoint's value as far as this run knows (read, or written by it).
    pub fn value(&self) -> Option<DateTime<Utc>> {
        self.next.map(|n| n.start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{CheckpointError, FileCheckpoint};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn hour(s: &str) -> HourWindow {
        HourWindow::starting_at(t(s), "test").unwrap()
    }

    fn reach() -> Reach {
        Reach {
            now: t("2026-11-22T12:30:00Z"),
            settle_delay: Duration::from_secs(600),
            max_hours_per_run: 24,
        }
    }

    fn cursor(path: &std::path::Path, plan: Plan, publishing: bool) -> Cursor {
        Cursor::new(
            Checkpoint::File(FileCheckpoint::new(path)),
            plan,
            reach(),
            publishing,
        )
    }

    fn stored(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_scheduled_run_bills_after_the_checkpoint_and_advances_hour_by_hour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, "2026-11-22T09:00:00Z\n").unwrap();
        let mut c = cursor(&path, Plan::Scheduled { start_from: None }, true);
        let hours = c.hours().await.unwrap();
        assert_eq!(
            hours,
            [
                hour("2026-11-22T09:00:00Z"),
                hour("2026-11-22T10:00:00Z"),
                hour("2026-11-22T11:00:00Z")
            ]
        );
        c.prepare().await.unwrap();
        for h in hours {
            c.advance_past(h).await.unwrap();
            assert_eq!(c.value(), Some(h.end()));
            assert_eq!(stored(&path), format!("{}\n", rfc3339(h.end())));
        }
    }

    #[tokio::test]
    async fn a_first_run_starts_at_the_last_hour_or_at_start_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut c = cursor(&path, Plan::Scheduled { start_from: None }, true);
        assert_eq!(c.hours().await.unwrap(), [hour("2026-11-22T11:00:00Z")]);
        let from = Some(hour("2026-11-22T10:00:00Z"));
        let mut c = cursor(&path, Plan::Scheduled { start_from: from }, true);
        assert_eq!(c.hours().await.unwrap().len(), 2);
        c.advance_past(hour("2026-11-22T10:00:00Z")).await.unwrap();
        assert_eq!(stored(&path), "2026-11-22T11:00:00Z\n");
    }

    #[tokio::test]
    async fn a_dry_run_and_a_plain_backfill_never_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, "2026-11-22T09:00:00Z\n").unwrap();
        let h = hour("2026-11-22T09:00:00Z");
        let backfill = |advance_checkpoint| Plan::Backfill {
            hours: vec![h],
            advance_checkpoint,
        };
        for (plan, publishing) in [
            (Plan::Scheduled { start_from: None }, false),
            (backfill(false), true),
            (backfill(true), false),
        ] {
            let mut c = cursor(&path, plan, publishing);
            c.hours().await.unwrap();
            c.prepare().await.unwrap();
            c.advance_past(h).await.unwrap();
            assert_eq!(stored(&path), "2026-11-22T09:00:00Z\n");
        }
        // --advance-checkpoint: where the range continues the checkpoint.
        let mut c = cursor(&path, backfill(true), true);
        c.hours().await.unwrap();
        c.advance_past(h).await.unwrap();
        assert_eq!(stored(&path), "2026-11-22T10:00:00Z\n");
    }

    /// A backfill that overlaps or leaves a gap never moves the checkpoint, in either
    /// direction.
    #[tokio::test]
    async fn a_backfill_advances_only_where_it_continues_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, "2026-11-22T10:00:00Z\n").unwrap();
        let plan = Plan::Backfill {
            hours: vec![],
            advance_checkpoint: true,
        };
        let mut c = cursor(&path, plan, true);
        c.hours().await.unwrap();
        c.advance_past(hour("2026-11-22T08:00:00Z")).await.unwrap();
        c.advance_past(hour("2026-11-22T11:00:00Z")).await.unwrap();
        assert_eq!(stored(&path), "2026-11-22T10:00:00Z\n");
        assert_eq!(c.value(), Some(t("2026-11-22T10:00:00Z")));
    }

    /// The never-backwards rule lives in [`Checkpoint::set`]: the same for every store.
    #[tokio::test]
    async fn the_checkpoint_never_moves_backwards_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut store = Checkpoint::File(FileCheckpoint::new(&path));
        let now = t("2026-11-22T12:00:00Z");
        store.advance(t("2026-11-22T10:00:00Z"), now).await.unwrap();
        let e = store
            .advance(t("2026-11-22T09:00:00Z"), now)
            .await
            .unwrap_err();
        // A run is overtaken, and not told to use a flag only `checkpoint set` has.
        assert!(matches!(e, CheckpointError::Overtaken { .. }), "{e}");
        assert!(!e.to_string().contains("--force"), "{e}");
        let e = store
            .set(t("2026-11-22T09:00:00Z"), now, false)
            .await
            .unwrap_err();
        assert!(matches!(e, CheckpointError::Backwards { .. }), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(stored(&path), "2026-11-22T10:00:00Z\n");
        store
            .set(t("2026-11-22T09:00:00Z"), now, true)
            .await
            .unwrap();
        assert_eq!(stored(&path), "2026-11-22T09:00:00Z\n");
        // A value that is not ours (the Go job's) may be replaced without --force.
        std::fs::write(&path, "2026-11-22T10:17:12Z").unwrap();
        store
            .set(t("2026-11-22T08:00:00Z"), now, false)
            .await
            .unwrap();
        assert_eq!(stored(&path), "2026-11-22T08:00:00Z\n");
    }
}
