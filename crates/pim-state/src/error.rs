//! The one error type of the state store.

use std::path::PathBuf;

/// What can go wrong with the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another run holds the state's lock; `holder` is what that run wrote into the lock file
    /// (pid, host, start time).
    #[error(
        "the state {path} is in use by another run ({holder}); wait for it to finish, or pass --wait-lock to queue behind it"
    )]
    Locked {
        /// The state file.
        path: PathBuf,
        /// Who holds the lock, as the holder described itself.
        holder: String,
    },
    /// The lock file could not be created, locked or written.
    #[error("locking the state {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// The state file does not exist (for commands that only read it).
    #[error("no state at {path}: a scan with --state creates it")]
    Missing {
        /// The state file.
        path: PathBuf,
    },
    /// The state was written by a newer version of this tool.
    #[error(
        "the state {path} has schema version {found}, newer than this build's {supported}; upgrade pim-batch"
    )]
    TooNew {
        /// The state file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// SQLite failed (the file is not a database, the disk is full, ...).
    #[error("state database {path}: {context}")]
    Sqlite {
        /// The state file.
        path: PathBuf,
        /// What the store was doing.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// The state store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
