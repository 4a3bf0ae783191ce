//! The checkpoint in a local text file holding one RFC 3339 timestamp (outside a cluster).
//! Writes are atomic (temporary file, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::window::{HourWindow, rfc3339};

use super::{CheckpointError, Result, parse_value};

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
        // Only a regular file (through links): reading a FIFO or a device would block the run
        // or read without end.
        match std::fs::metadata(&self.path) {
            Ok(m) if !m.is_file() => {
                return Err(CheckpointError::Read {
                    location: self.location(),
                    reason: "it is not a regular file (a FIFO, a device or a directory); point \
                             --checkpoint-file at a file on a volume"
                        .into(),
                });
            }
            _ => {}
        }
        let content = match std::fs::read_to_string(&self.path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    location: self.location(),
                    reason: source.to_string(),
                });
            }
        };
        parse_value(&self.location(), &content, now).map(Some)
    }

    fn location(&self) -> String {
        format!("checkpoint file {}", self.path.display())
    }

    /// The file actually written: a symlinked checkpoint (e.g. onto a mounted volume) is
    /// written through the link, so the link stays and its target gets the new value.
    fn target(&self) -> PathBuf {
        if let Ok(real) = std::fs::canonicalize(&self.path) {
            return real;
        }
        // A dangling link: its target does not exist yet (a first run); create that.
        match std::fs::read_link(&self.path) {
            Ok(link) if link.is_absolute() => link,
            Ok(link) => self.dir().join(link),
            Err(_) => self.path.clone(),
        }
    }

    /// The directory the temporary file is created in: the target's, so that the rename
    /// stays on one file system and replaces the target, not the link.
    fn target_dir(&self) -> PathBuf {
        match self.target().parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Make sure the checkpoint can be written before anything is published: a temporary file
    /// is created and removed in its directory.
    pub fn prepare(&self) -> Result<()> {
        tempfile::NamedTempFile::new_in(self.target_dir())
            .map(drop)
            .map_err(|source| CheckpointError::Write {
                location: self.location(),
                reason: format!(
                    "{source} (in {}); nothing was sent. Create the directory or choose another \
                     --checkpoint-file",
                    self.target_dir().display()
                ),
            })
    }

    /// Prove, without creating anything, that [`Self::prepare`] and a write would succeed:
    /// the directory the temporary file goes in exists and this process may create files in
    /// it (`access(2)` with `W_OK | X_OK`), and an existing checkpoint is a regular file.
    /// For `consumption-metrics check`, which never writes.
    pub fn verify_writable(&self) -> Result<()> {
        let dir = self.target_dir();
        let refused = |reason: String| CheckpointError::Write {
            location: self.location(),
            reason,
        };
        let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| refused(format!("{} holds a NUL byte", dir.display())))?;
        // SAFETY: `c_dir` is a valid NUL-terminated string that outlives the call; access(2)
        // only reads it.
        if unsafe { libc::access(c_dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let source = std::io::Error::last_os_error();
            return Err(refused(format!(
                "{source} (in {}); a run would stop before sending anything. Create the \
                 directory, make it writable for this user, or choose another --checkpoint-file",
                dir.display()
            )));
        }
        Ok(())
    }

    /// Write `end`: atomic (temporary file, fsync, rename). The never-backwards rule is
    /// [`super::Checkpoint::set`]'s.
    pub fn write(&self, end: DateTime<Utc>) -> Result<()> {
        let write_err = |source: std::io::Error| CheckpointError::Write {
            location: self.location(),
            reason: source.to_string(),
        };
        let dir = self.target_dir();
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(write_err)?;
        writeln!(tmp, "{}", rfc3339(end)).map_err(write_err)?;
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(self.target()).map_err(|e| write_err(e.error))?;
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

    /// A FIFO as the checkpoint once blocked the run in its first read.
    #[test]
    fn a_fifo_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("cp");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = FileCheckpoint::new(&fifo)
            .load(t("2026-11-22T10:00:00Z"))
            .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = FileCheckpoint::new(dir.path())
            .load(t("2026-11-22T10:00:00Z"))
            .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn missing_file_is_a_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let cp = FileCheckpoint::new(dir.path().join("cp"));
        assert_eq!(cp.load(t("2026-11-22T10:00:00Z")).unwrap(), None);
    }

    #[test]
    fn prepare_finds_an_unwritable_place_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        FileCheckpoint::new(dir.path().join("cp"))
            .prepare()
            .unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("no-such-dir").join("cp");
        let e = FileCheckpoint::new(&missing).prepare().unwrap_err();
        assert!(matches!(e, CheckpointError::Write { .. }), "{e}");
        assert!(e.to_string().contains("no-such-dir"), "{e}");
        assert!(e.to_string().contains("nothing was sent"), "{e}");
    }

    /// A symlinked checkpoint keeps its link; the target gets the value (it once got replaced
    /// by a regular file while the target kept the old value).
    #[test]
    fn a_symlinked_checkpoint_is_written_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("volume");
        std::fs::create_dir(&volume).unwrap();
        let target = volume.join("checkpoint");
        std::fs::write(&target, "2026-11-01T00:00:00Z\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let store = FileCheckpoint::new(&link);
        store.prepare().unwrap();
        store
            .write("2026-11-01T01:00:00Z".parse().unwrap())
            .unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "2026-11-01T01:00:00Z\n"
        );
        // A dangling link (first run on a fresh volume) creates its target.
        let fresh = dir.path().join("fresh-link");
        std::os::unix::fs::symlink(volume.join("new"), &fresh).unwrap();
        FileCheckpoint::new(&fresh)
            .write("2026-11-01T01:00:00Z".parse().unwrap())
            .unwrap();
        assert!(
            std::fs::symlink_metadata(&fresh)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(volume.join("new").exists());
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
        // The Go job's formats: a wall-clock time off the hour, epoch seconds, Go's String().
        for legacy in [
            "2026-11-22T10:30:00Z",
            "2026-11-22T10:30:12.345+01:00",
            "1795343412",
            "2026-11-22 10:30:12.123456789 +0000 UTC",
        ] {
            std::fs::write(&path, legacy).unwrap();
            let e = cp.load(now).unwrap_err();
            assert!(matches!(e, CheckpointError::Legacy { .. }), "{legacy}: {e}");
            assert!(e.to_string().contains("checkpoint set --to"), "{e}");
        }
        std::fs::write(&path, "2026-11-22T10:30:00Z").unwrap();
        let e = cp.load(now).unwrap_err().to_string();
        assert!(
            e.contains("--to 2026-11-22T10:00:00Z") && e.contains("--to 2026-11-22T09:00:00Z"),
            "both candidate hours: {e}"
        );
        std::fs::write(&path, "2026-11-23T10:00:00Z").unwrap();
        assert!(matches!(cp.load(now), Err(CheckpointError::Future { .. })));
    }
}
