//! The checkpoint: the end of the last hour fully published (`lastPublishedTime`). It lives in
//! a ConfigMap in a cluster ([`configmap`]) or in a local file outside one ([`file`]); both
//! refuse malformed, unaligned and future values and never move backwards.

pub mod configmap;
pub mod file;

use chrono::{DateTime, Utc};

pub use configmap::ConfigMapCheckpoint;
pub use file::FileCheckpoint;

use crate::window::{HourWindow, floor_hour, rfc3339};

/// The ConfigMap key, and the meaning of the file's only line.
pub const KEY: &str = "lastPublishedTime";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("could not read the {location}: {reason}")]
    Read { location: String, reason: String },
    #[error(
        "the {location} holds {content:?}, which is not an RFC 3339 time ({reason}); it must \
         hold the end of the last published hour, e.g. 2026-11-22T10:00:00Z. Correct it, or \
         remove it to start again with the first-run rule"
    )]
    Malformed {
        location: String,
        content: String,
        reason: String,
    },
    #[error(
        "the {location} holds {value}, which is not at the start of an hour; it must be the end \
         of the last published hour, e.g. {floor}"
    )]
    NotAligned {
        location: String,
        value: String,
        floor: String,
    },
    #[error(
        "the {location} holds {value}, which is after now ({now}); nothing was sent. Check the \
         clock (--now) or correct the value"
    )]
    Future {
        location: String,
        value: String,
        now: String,
    },
    #[error("refusing to move the {location} backwards from {current} to {requested}")]
    Backwards {
        location: String,
        current: String,
        requested: String,
    },
    #[error("could not write the {location}: {reason}")]
    Write { location: String, reason: String },
    #[error(
        "the {location} no longer exists (deleted while this run used it); restore it with the \
         last value in the logs (kubectl create configmap {name} -n {namespace} \
         --from-literal=lastPublishedTime=...) before the next run"
    )]
    MissingConfigMap {
        location: String,
        name: String,
        namespace: String,
    },
    #[error(
        "the {location} does not exist and the service account may not create it (HTTP 403: \
         {reason}); nothing was sent. Apply kustomize/base, which ships it, or run kubectl \
         create configmap {name} -n {namespace}"
    )]
    CannotCreate {
        location: String,
        name: String,
        namespace: String,
        reason: String,
    },
    #[error(
        "the service account may not {verb} the {location} (HTTP 403: {reason}); grant get and \
         update on that ConfigMap by name (kustomize/base/role.yaml)"
    )]
    Forbidden {
        location: String,
        verb: &'static str,
        reason: String,
    },
    #[error(
        "the {location} changed since this run read it (HTTP 409 Conflict): another run is \
         probably active. This run stops; the hours it published will be re-sent with the same \
         message ids by the next run, which the billing side drops as duplicates"
    )]
    Conflict { location: String },
    #[error("could not reach the Kubernetes API for the {location}: {reason}")]
    Api { location: String, reason: String },
}

pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// Parse a stored value: an hour-aligned RFC 3339 time not after `now`.
pub fn parse_value(location: &str, content: &str, now: DateTime<Utc>) -> Result<HourWindow> {
    let value = content.trim();
    let t = DateTime::parse_from_rfc3339(value)
        .map_err(|e| CheckpointError::Malformed {
            location: location.to_string(),
            content: value.chars().take(80).collect(),
            reason: e.to_string(),
        })?
        .with_timezone(&Utc);
    if t > now {
        return Err(CheckpointError::Future {
            location: location.to_string(),
            value: rfc3339(t),
            now: rfc3339(now),
        });
    }
    HourWindow::starting_at(t, "checkpoint").map_err(|_| CheckpointError::NotAligned {
        location: location.to_string(),
        value: rfc3339(t),
        floor: rfc3339(floor_hour(t)),
    })
}

/// Where the checkpoint lives.
pub enum Checkpoint {
    File(FileCheckpoint),
    ConfigMap(Box<ConfigMapCheckpoint>),
}

impl Checkpoint {
    /// The start of the next hour to publish; `None` on a first run.
    pub async fn load(&mut self, now: DateTime<Utc>) -> Result<Option<HourWindow>> {
        match self {
            Checkpoint::File(f) => f.load(now),
            Checkpoint::ConfigMap(c) => c.load(now).await,
        }
    }

    /// Make sure the checkpoint can be written before anything is published.
    pub async fn prepare(&mut self) -> Result<()> {
        match self {
            Checkpoint::File(f) => f.prepare(),
            Checkpoint::ConfigMap(c) => c.prepare().await,
        }
    }

    /// Record that every hour before `end` is published.
    pub async fn advance(&mut self, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        match self {
            Checkpoint::File(f) => f.advance(end, now),
            Checkpoint::ConfigMap(c) => c.advance(end, now).await,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Checkpoint::File(f) => format!("file {}", f.path().display()),
            Checkpoint::ConfigMap(c) => c.describe(),
        }
    }
}
