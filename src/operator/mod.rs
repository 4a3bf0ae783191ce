//! The operator's commands on the checkpoint (docs/operating.md, "Runbook"): `checkpoint show` says where
//! it lives, its value, the lag and what the next scheduled run would bill; `checkpoint set`
//! moves it deliberately, never backwards unless forced, and logs the old and new values.

mod config;

pub use config::{CheckpointCommandConfig, checkpoint_target};

use tracing::warn;

use crate::checkpoint::Checkpoint;
use crate::checkpoint::CheckpointError;
use crate::window::{self, HourWindow, rfc3339};

type Result<T> = std::result::Result<T, CheckpointError>;

/// `checkpoint show`: a few lines for a person.
pub async fn show(config: &CheckpointCommandConfig, store: &mut Checkpoint) -> Result<String> {
    let now = config.now;
    let mut out = format!("checkpoint:  {}\n", store.describe());
    match store.load(now).await? {
        None => out.push_str(
            "value:       none yet: the next scheduled run is a first run (it bills the last \
             complete hour, or from --start-from)\n",
        ),
        Some(next) => {
            let lag = now - next.start();
            out.push_str(&format!(
                "value:       {} (every hour before it is published)\n\
                 lag:         {}h {:02}m behind now ({})\n",
                rfc3339(next.start()),
                lag.num_hours(),
                lag.num_minutes() % 60,
                rfc3339(now)
            ));
            let hours =
                window::plan_scheduled(next, now, config.settle_delay, config.max_hours_per_run);
            match (hours.first(), hours.last()) {
                (Some(f), Some(l)) => out.push_str(&format!(
                    "next run:    would bill {} hours, [{}, {})\n",
                    hours.len(),
                    rfc3339(f.start()),
                    rfc3339(l.end())
                )),
                _ => out.push_str(&format!(
                    "next run:    nothing to bill yet (the hour {} settles {:?} after its end)\n",
                    next, config.settle_delay
                )),
            }
        }
    }
    Ok(out)
}

/// `checkpoint set --to HOUR` (validated by [`checkpoint_target`]): returns the
/// line to print.
pub async fn set(
    config: &CheckpointCommandConfig,
    store: &mut Checkpoint,
    hour: HourWindow,
    force: bool,
) -> Result<String> {
    let now = config.now;
    // The old value as written, even if it is not ours (the Go job's).
    let before = match store.load(now).await {
        Ok(Some(h)) => rfc3339(h.start()),
        Ok(None) => "none".to_string(),
        Err(e) => format!("unreadable ({e})"),
    };
    store.set(hour.start(), now, force).await?;
    warn!(
        checkpoint = %store.describe(),
        from = %before,
        to = %rfc3339(hour.start()),
        forced = force,
        "checkpoint moved by hand"
    );
    Ok(format!(
        "checkpoint {} moved from {before} to {}; the next scheduled run bills from {}\n",
        store.describe(),
        rfc3339(hour.start()),
        hour
    ))
}
