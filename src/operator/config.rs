//! The `checkpoint` commands' configuration.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::checkpoint::CheckpointSettings;
use crate::cli::Args;
use crate::config::{
    ConfigError, Result, checkpoint_config, max_hours_per_run, now, parse_time, settle_delay,
};
use crate::window::{self, HourWindow};

/// What the `checkpoint` commands need: the store, the clock and the scheduling rules.
#[derive(Debug, Clone)]
pub struct CheckpointCommandConfig {
    pub checkpoint: CheckpointSettings,
    pub now: DateTime<Utc>,
    pub settle_delay: Duration,
    pub max_hours_per_run: u32,
}

/// `checkpoint set --to`: an hour start that is over (the newest settled hour's end at the
/// latest): the checkpoint may only say that hours which are over were published.
pub fn checkpoint_target(to: &str, config: &CheckpointCommandConfig) -> Result<HourWindow> {
    let hour = HourWindow::starting_at(parse_time("--to", to)?, "--to")?;
    let latest = window::latest_billable_end(config.now, config.settle_delay);
    if hour.start() > latest {
        return Err(ConfigError::Usage(format!(
            "--to {} is after the newest settled hour's end ({}): the checkpoint may only say \
             that hours which are over were published",
            window::rfc3339(hour.start()),
            window::rfc3339(latest)
        )));
    }
    Ok(hour)
}

impl CheckpointCommandConfig {
    pub fn from_args(args: &Args, system_now: DateTime<Utc>) -> Result<Self> {
        Ok(Self {
            checkpoint: checkpoint_config(args),
            now: now(args, system_now)?,
            settle_delay: settle_delay(args)?,
            max_hours_per_run: max_hours_per_run(args)?,
        })
    }
}
