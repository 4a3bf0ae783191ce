//! The checkpoint: the end of the last hour fully published (`lastPublishedTime`).
//!
//! Outside a cluster it lives in a local text file holding one RFC 3339 timestamp. Writes are
//! atomic (temporary file, fsync, rename) and never move the checkpoint backwards.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::window::{HourWindow, rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("could not read the checkpoint file {path}: {source}; check its permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the checkpoint file {path} holds {content:?}, which is not an RFC 3339 time ({reason}); \
         it must hold the end of the last published hour, e.g. 2026-11-22T10:00:00Z. Fix or \
         remove it (removing it bills only the last complete hour)"
    )]
    Malformed {
        path: PathBuf,
        content: String,
        reason: String,
    },
    #[error(
        "the checkpoint file {path} holds {value}, which is not at the start of an hour; \
         it must be the end of the last published hour, e.g. {floor}"
    )]
    NotAligned {
        path: PathBuf,
        value: String,
        floor: String,
    },
    #[error(
        "the checkpoint file {path} holds {value}, which is after now ({now}); nothing was sent. \
         Check the clock (--now) or correct the file"
    )]
    Future {
        path: PathBuf,
        value: String,
        now: String,
    },
    #[error("refusing to move the checkpoint {path} backwards from {current} to {requested}")]
    Backwards {
        path: PathBuf,
        current: String,
        requested: String,
    },
    #[error(
        "could not write the checkpoint file {path}: {source}; check the directory is writable"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// A checkpoint kept in a local file.
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    path: PathBuf,
}

impl FileCheckpoint {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint as the start of the next hour to publish, or `None` on a first run
    /// (no file). Refuses malformed, unaligned and future values.
    pub fn load(&self, now: DateTime<Utc>) -> Result<Option<HourWindow>> {
        let content = match std::fs::read_to_string(&self.path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let value = content.trim();
        let t = DateTime::parse_from_rfc3339(value)
            .map_err(|e| CheckpointError::Malformed {
                path: self.path.clone(),
                content: value.chars().take(80).collect(),
                reason: e.to_string(),
            })?
            .with_timezone(&Utc);
        if t > now {
            return Err(CheckpointError::Future {
                path: self.path.clone(),
                value: rfc3339(t),
                now: rfc3339(now),
            });
        }
        HourWindow::starting_at(t, "checkpoint")
            .map(Some)
            .map_err(|_| CheckpointError::NotAligned {
                path: self.path.clone(),
                value: rfc3339(t),
                floor: rfc3339(crate::window::floor_hour(t)),
            })
    }

    /// Record that every hour before `end` is published. Atomic; never backwards.
    pub fn advance(&self, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        if let Some(current) = self.load(now)?
            && current.start() > end
        {
            return Err(CheckpointError::Backwards {
                path: self.path.clone(),
                current: rfc3339(current.start()),
                requested: rfc3339(end),
            });
        }
        let write_err = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(write_err)?;
        writeln!(tmp, "{}", rfc3339(end)).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(&self.path).map_err(|e| write_err(e.error))?;
        // Make the rename durable too.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn missing_file_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let cp = FileCheckpoint::new(dir.path().join("cp"));
        assert_eq!(cp.load(t("2026-11-22T10:00:00Z")).unwrap(), None);
    }

    #[test]
    fn advance_then_load_round_trips_and_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let cp = FileCheckpoint::new(dir.path().join("cp"));
        let now = t("2026-11-22T12:00:00Z");
        cp.advance(t("2026-11-22T10:00:00Z"), now).unwrap();
        assert_eq!(
            cp.load(now).unwrap().unwrap().start(),
            t("2026-11-22T10:00:00Z")
        );
        let e = cp.advance(t("2026-11-22T09:00:00Z"), now).unwrap_err();
        assert!(matches!(e, CheckpointError::Backwards { .. }));
        assert_eq!(
            std::fs::read_to_string(cp.path()).unwrap(),
            "2026-11-22T10:00:00Z\n"
        );
    }

    #[test]
    fn bad_contents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let cp = FileCheckpoint::new(&path);
        let now = t("2026-11-22T12:00:00Z");
        std::fs::write(&path, "last tuesday").unwrap();
        assert!(matches!(
            cp.load(now),
            Err(CheckpointError::Malformed { .. })
        ));
        std::fs::write(&path, "2026-11-22T10:30:00Z").unwrap();
        assert!(matches!(
            cp.load(now),
            Err(CheckpointError::NotAligned { .. })
        ));
        std::fs::write(&path, "2026-11-23T10:00:00Z").unwrap();
        assert!(matches!(cp.load(now), Err(CheckpointError::Future { .. })));
    }
}
