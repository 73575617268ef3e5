//! One announcer per database: an advisory lock on a file next to it.
//!
//! `tickwatch run` and `tickwatch notify` both announce alerts that are stored and not yet marked.
//! Two of them on one database would both find the same pending alerts and both announce them
//! (thousands, after an outage), so each holds [`AnnounceLock`] for as long as it may announce, and
//! a second one fails at once instead of waiting or announcing twice.
//!
//! The lock is the operating system's (`flock` on Unix, `LockFileEx` on Windows): it is released
//! when the process ends, however it ends, so a crash never leaves a stale lock behind. The file
//! itself stays; its presence means nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// Suffix appended to the database's file name to name its lock file.
pub const LOCK_FILE_SUFFIX: &str = ".announce.lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another tickwatch process is announcing from {}; try again when it ends", db.display())]
    Held {
        /// The database, as given.
        db: PathBuf,
    },
    /// The lock file cannot be created or locked.
    #[error("locking {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// The right to announce from one database, held until dropped.
#[derive(Debug)]
pub struct AnnounceLock {
    // Holding the open, locked file is holding the lock (none for a private in-memory database).
    _file: Option<File>,
}

impl AnnounceLock {
    /// Takes the lock of the database at `db` (which need not exist yet), or fails at once with
    /// [`LockError::Held`] if another process (or another handle in this one) holds it.
    pub fn acquire(db: &Path) -> Result<AnnounceLock, LockError> {
        // SQLite opens these as private databases no other process can see: nothing to share.
        if db.as_os_str().is_empty() || db == Path::new(":memory:") {
            return Ok(AnnounceLock { _file: None });
        }
        let path = lock_path(db);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => Ok(AnnounceLock { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held { db: db.to_owned() }),
            Err(TryLockError::Error(e)) => Err(io_error(e)),
        }
    }
}

/// `<db>.announce.lock`, next to the file the path leads to: through symbolic links and `..`, so
/// that every spelling of one database's path names one lock file.
pub fn lock_path(db: &Path) -> PathBuf {
    let real = std::fs::canonicalize(db).ok().or_else(|| {
        // Not created yet: resolve the directory, keep the name.
        let parent = match db.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(db.file_name()?))
    });
    let mut name = real.unwrap_or_else(|| db.to_owned()).into_os_string();
    name.push(LOCK_FILE_SUFFIX);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("t.db");
        let held = AnnounceLock::acquire(&db).expect("free");
        let error = AnnounceLock::acquire(&db).expect_err("held");
        assert!(matches!(error, LockError::Held { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "another tickwatch process is announcing from {}; try again when it ends",
                db.display()
            )
        );
        // Another spelling of the same path is the same lock.
        let other_spelling = dir.path().join(".").join("t.db");
        assert!(AnnounceLock::acquire(&other_spelling).is_err());
        drop(held);
        AnnounceLock::acquire(&db).expect("free again");
        // Another database has its own lock.
        let _other = AnnounceLock::acquire(&dir.path().join("u.db")).expect("free");
    }

    #[test]
    fn the_lock_file_sits_next_to_the_real_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let real = std::fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(
            lock_path(&dir.path().join("a.db")),
            real.join("a.db.announce.lock")
        );
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("b.db"), b"").expect("create");
        assert_eq!(
            lock_path(&dir.path().join("sub").join("..").join("b.db")),
            real.join("b.db.announce.lock")
        );
    }

    #[test]
    fn a_lock_file_that_cannot_be_made_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = AnnounceLock::acquire(&dir.path().join("missing").join("t.db"))
            .expect_err("no such directory");
        assert!(matches!(error, LockError::Io { .. }), "{error}");
    }
}
