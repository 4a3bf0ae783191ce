//! The checkpoint: the end of the last hour fully published (`lastPublishedTime`). It lives in
//! a ConfigMap in a cluster ([`configmap`]) or in a local file outside one ([`file`]); both
//! refuse malformed, unaligned and future values and never move backwards.

pub mod configmap;
pub mod cursor;
pub mod file;

use std::path::PathBuf;

use chrono::{DateTime, Datelike, Utc};

pub use configmap::ConfigMapCheckpoint;
pub use cursor::{Cursor, Plan, Reach};
pub use file::FileCheckpoint;

use crate::window::{HourWindow, floor_hour, rfc3339};

/// Where the checkpoint lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSettings {
    File(PathBuf),
    ConfigMap {
        name: String,
        /// `None`: the pod's own namespace.
        namespace: Option<String>,
    },
}

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
        "the {location} holds {value}, which is after now ({now}); nothing was sent. Check the \
         clock (--now) or correct the value"
    )]
    Future {
        location: String,
        value: String,
        now: String,
    },
    #[error(
        "the {location} holds {value:?}, which reads as {time}: a wall-clock time such as the Go \
         CronJob wrote (\"when a message was last published\"), not the end of an hour. Which \
         hour it means cannot be known from the value, so nothing was sent. If the Go job had \
         published every hour before {floor}, run `consumption-metrics checkpoint set --to \
         {floor}` with this job's checkpoint settings; if only those before {before}, use \
         `--to {before}`. Compare with the billing side's last hour first"
    )]
    Legacy {
        location: String,
        value: String,
        time: String,
        floor: String,
        before: String,
    },
    #[error(
        "refusing to move the {location} backwards from {current} to {requested}; hours after \
         {requested} would be billed again (with the same message ids). If that is what you \
         want, repeat with --force"
    )]
    Backwards {
        location: String,
        current: String,
        requested: String,
    },
    #[error(
        "the {location} is already at {current}, past {requested} that this run published up \
         to: another run (or a backfill) advanced it meanwhile. This run stops and leaves it \
         there; nothing is lost, and hours sent by both carry the same message ids, which the \
         billing side drops as duplicates. Check that only one CronJob bills this cluster"
    )]
    Overtaken {
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
    #[error(
        "could not configure a Kubernetes client for the {location}: {reason}; run in a pod \
         with a service account, or set KUBECONFIG"
    )]
    Client { location: String, reason: String },
    #[error("could not reach the Kubernetes API for the {location}: {reason}")]
    Api { location: String, reason: String },
}

pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// A time in a format other jobs write: Unix epoch seconds (with a fraction or not), or Go's
/// `time.Time.String()` (`2019-06-04 17:00:12.123 +0000 UTC`).
fn parse_legacy(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs > 0.0
    {
        // Milliseconds would land tens of thousands of years ahead; refuse those.
        return DateTime::from_timestamp(secs.trunc() as i64, 0).filter(|t| t.year() < 3000);
    }
    let go = value
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .trim_end();
    DateTime::parse_from_str(go, "%Y-%m-%d %H:%M:%S%.f %z")
        .ok()
        .map(|t| t.to_utc())
}

/// Parse a stored value: an hour-aligned RFC 3339 time not after `now`.
pub fn parse_value(location: &str, content: &str, now: DateTime<Utc>) -> Result<HourWindow> {
    let value = content.trim();
    let legacy = |t: DateTime<Utc>| {
        let floor = floor_hour(t);
        CheckpointError::Legacy {
            location: location.to_string(),
            value: value.chars().take(80).collect(),
            time: rfc3339(t),
            floor: rfc3339(floor),
            before: rfc3339(floor - chrono::TimeDelta::hours(1)),
        }
    };
    let t = match DateTime::parse_from_rfc3339(value) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => {
            return Err(match parse_legacy(value) {
                Some(t) => legacy(t),
                None => CheckpointError::Malformed {
                    location: location.to_string(),
                    content: value.chars().take(80).collect(),
                    reason: e.to_string(),
                },
            });
        }
    };
    if t > now {
        return Err(CheckpointError::Future {
            location: location.to_string(),
            value: rfc3339(t),
            now: rfc3339(now),
        });
    }
    // RFC 3339 off the hour: a wall-clock time (the Go job's), not an hour's end.
    HourWindow::starting_at(t, "checkpoint").map_err(|_| legacy(t))
}

/// Where the checkpoint lives.
pub enum Checkpoint {
    File(FileCheckpoint),
    ConfigMap(Box<ConfigMapCheckpoint>),
}

impl Checkpoint {
    /// The store `config` names: a file, or a ConfigMap through the pod's service account (or
    /// KUBECONFIG).
    pub async fn open(config: &CheckpointSettings) -> Result<Self> {
        Ok(match config {
            CheckpointSettings::File(path) => Checkpoint::File(FileCheckpoint::new(path)),
            CheckpointSettings::ConfigMap { name, namespace } => {
                let client =
                    kube::Client::try_default()
                        .await
                        .map_err(|e| CheckpointError::Client {
                            location: format!("checkpoint ConfigMap {name}"),
                            reason: e.to_string(),
                        })?;
                let namespace = namespace
                    .clone()
                    .or_else(configmap::pod_namespace)
                    .unwrap_or_else(|| client.default_namespace().to_string());
                Checkpoint::ConfigMap(Box::new(ConfigMapCheckpoint::new(client, &namespace, name)))
            }
        })
    }

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

    /// Prove that [`Self::prepare`] and the first write would succeed, writing nothing
    /// (`consumption-metrics check`): a dry-run create or update of the ConfigMap, a
    /// permission check of the file's directory.
    pub async fn verify_writable(&self) -> Result<()> {
        match self {
            Checkpoint::File(f) => f.verify_writable(),
            Checkpoint::ConfigMap(c) => c.verify_writable().await,
        }
    }

    /// Record that every hour before `end` is published; never backwards. A run finding the
    /// checkpoint already past `end` was overtaken by another run: told so, not told to force
    /// it (a flag only `checkpoint set` has).
    pub async fn advance(&mut self, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        match self.set(end, now, false).await {
            Err(CheckpointError::Backwards {
                location,
                current,
                requested,
            }) => Err(CheckpointError::Overtaken {
                location,
                current,
                requested,
            }),
            other => other,
        }
    }

    /// Write `end`; backwards only with `allow_backwards` (an operator's deliberate move). The
    /// one place of the never-backwards rule: a readable value after `end` stops the write; a
    /// malformed one (e.g. the Go job's) may be replaced.
    pub async fn set(
        &mut self,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        allow_backwards: bool,
    ) -> Result<()> {
        let current = match self {
            Checkpoint::File(f) => f.load(now),
            Checkpoint::ConfigMap(c) => {
                c.ensure_read(now).await?;
                c.stored(now)
            }
        };
        if let Ok(Some(current)) = current
            && current.start() > end
            && !allow_backwards
        {
            return Err(CheckpointError::Backwards {
                location: self.describe(),
                current: rfc3339(current.start()),
                requested: rfc3339(end),
            });
        }
        match self {
            Checkpoint::File(f) => f.write(end),
            Checkpoint::ConfigMap(c) => c.write(end).await,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Checkpoint::File(f) => format!("file {}", f.path().display()),
            Checkpoint::ConfigMap(c) => c.describe(),
        }
    }
}
