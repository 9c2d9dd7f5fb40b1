//! The run lock: one writer per state, and a refusal that names the holder.
//!
//! SQLite's own locking serialises *transactions*, not *runs*: two overlapping scheduled runs
//! would both scan, both decide a finding is new and both send it. So a run takes an exclusive
//! advisory lock on a sidecar file (`<state>.lock`) for its whole life, and writes who it is
//! into that file, so the run that is refused can say who holds it. The lock is released by
//! the operating system when the process ends, however it ends (a crash or `kill -9` never
//! leaves a stale lock behind; the lock file's text may stay, and is only read while the lock
//! is held).

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, Result};

/// Who runs: written into the lock file, and into each run's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The process id.
    pub pid: u32,
    /// The host name (or container name).
    pub host: String,
    /// When the run started.
    pub started: OffsetDateTime,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let started = self
            .started
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.started.unix_timestamp().to_string());
        // The host name comes from the environment: keep it one short, printable line.
        let host: String = self
            .host
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(100)
            .collect();
        write!(f, "pid {} on {host}, started {started}", self.pid)
    }
}

/// What to do when another run holds the lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockWait {
    /// Refuse at once with [`Error::Locked`] (the default: a scheduled run that finds the
    /// previous one still running should not pile up behind it).
    #[default]
    Fail,
    /// Block until the holder ends (`--wait-lock`).
    Wait,
}

/// A held run lock; dropping it (or ending the process) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// The lock file beside a state file.
    pub fn path_for(state: &Path) -> PathBuf {
        let mut name = state.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the state at `state` for `holder`.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder when another run has it (and `wait` is
    /// [`LockWait::Fail`]); [`Error::Lock`] when the file cannot be created or locked.
    pub fn acquire(state: &Path, holder: &Holder, wait: LockWait) -> Result<Self> {
        let path = Self::path_for(state);
        let io = |source| Error::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match wait {
            LockWait::Wait => file.lock().map_err(io)?,
            LockWait::Fail => match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    // The holder writes its line right after locking; an empty read means it
                    // has not yet.
                    let _ = file.read_to_string(&mut text);
                    let holder = text.lines().next().unwrap_or("").trim();
                    let holder: String = holder
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .take(200)
                        .collect();
                    return Err(Error::Locked {
                        path: state.to_path_buf(),
                        holder: if holder.is_empty() {
                            "holder unknown".to_owned()
                        } else {
                            holder
                        },
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            },
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{holder}").map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn holder(pid: u32) -> Holder {
        Holder {
            pid,
            host: "runner-1\n".into(),
            started: datetime!(2026-11-20 18:00 UTC),
        }
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("pim-state-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("state.db");
        let first = RunLock::acquire(&state, &holder(41), LockWait::Fail).unwrap();
        let e = RunLock::acquire(&state, &holder(42), LockWait::Fail).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("pid 41 on runner-1 , started 2026-11-20T18:00:00Z"),
            "{text}"
        );
        assert!(text.contains("--wait-lock"), "{text}");
        drop(first);
        let again = RunLock::acquire(&state, &holder(43), LockWait::Fail).unwrap();
        let written = std::fs::read_to_string(again.path()).unwrap();
        assert!(written.starts_with("pid 43 "), "{written}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
