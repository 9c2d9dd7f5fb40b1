//! [`Store`]: the runs, the activations with their settled assessments, and the outbox.

use std::path::{Path, PathBuf};

use pim_domain::{ActivationReport, EndReason, VerdictState};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use time::{Duration, OffsetDateTime};

use crate::lock::{Holder, LockWait, RunLock};
use crate::schema::{self, SCHEMA_VERSION};
use crate::{Error, Result};

/// The id of one run in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunId(pub i64);

/// One finished (or abandoned) run, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it ended, if it did.
    pub ended_at: Option<OffsetDateTime>,
    /// `running`, `succeeded`, `failed` or `abandoned` (a run that ended without saying how:
    /// killed, crashed, out of memory).
    pub status: String,
    /// Start of the window it scanned.
    pub window_start: OffsetDateTime,
    /// End of the window it scanned: for the last successful run, the watermark.
    pub window_end: OffsetDateTime,
}

/// How a run ended, for [`Store::finish_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The scan completed and its assessments are recorded: the watermark moves to the end of
    /// its window. (Deliveries that failed stay in the outbox; they do not fail the run.)
    Succeeded,
    /// The scan failed; the watermark stays where it was.
    Failed {
        /// One line saying why.
        reason: String,
    },
}

/// When an activation counts as settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle {
    /// The time of the run (the scan's reference time).
    pub now: OffsetDateTime,
    /// How long after a window ends its activity may still arrive (`--settle`).
    pub settle: Duration,
}

impl Settle {
    /// `provisional` while the window is open (cut at the scan end) or ended less than the
    /// settle time before `now`; `final` after that.
    ///
    /// ```
    /// # use pim_state::Settle;
    /// # use pim_domain::{ElevationWindow, EndReason, VerdictState};
    /// # use time::{Duration, macros::datetime};
    /// let settle = Settle { now: datetime!(2026-11-20 18:00 UTC), settle: Duration::minutes(30) };
    /// let window = |end, end_reason| ElevationWindow {
    ///     start: datetime!(2026-11-20 09:00 UTC), end, end_reason, scheduled_end: None, assumed: false,
    /// };
    /// assert_eq!(settle.state(&window(datetime!(2026-11-20 17:40 UTC), EndReason::Expired)), VerdictState::Provisional);
    /// assert_eq!(settle.state(&window(datetime!(2026-11-20 17:30 UTC), EndReason::Expired)), VerdictState::Final);
    /// assert_eq!(settle.state(&window(datetime!(2026-11-20 12:00 UTC), EndReason::StillActive)), VerdictState::Provisional);
    /// ```
    pub fn state(&self, window: &pim_domain::ElevationWindow) -> VerdictState {
        if window.end_reason == EndReason::StillActive || window.end + self.settle > self.now {
            VerdictState::Provisional
        } else {
            VerdictState::Final
        }
    }
}

/// A destination as [`Store::record`] sees it: its stable key (its name) and its threshold.
pub struct Subscriber<'a> {
    /// The destination's name (never a secret); deliveries are kept per name.
    pub key: String,
    /// Whether the destination takes an activation at all.
    pub selects: &'a (dyn Fn(&ActivationReport) -> bool + Sync),
}

impl std::fmt::Debug for Subscriber<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("key", &self.key)
            .finish()
    }
}

/// What [`Store::record`] did with a run's activations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Activations seen for the first time (revision 1).
    pub new: usize,
    /// Provisional activations whose verdict, risk or flags changed (a new revision).
    pub revised: usize,
    /// Activations whose stored assessment stands unchanged (provisional and the same, or
    /// final, in which case the report carries the stored assessment).
    pub unchanged: usize,
    /// Activations that became final in this run.
    pub settled: usize,
    /// Deliveries added to the outbox, over all destinations.
    pub enqueued: usize,
    /// Stored rows that could not be read back (replaced by the new assessment, as a new
    /// revision).
    pub unreadable: usize,
}

/// One pending delivery in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The activation as it will be sent (its stored report, with state and revision).
    pub activation: ActivationReport,
    /// The revision to send.
    pub revision: u32,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The outbox of one destination, for `--check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxSummary {
    /// The destination's name.
    pub destination: String,
    /// Deliveries waiting.
    pub pending: usize,
    /// When the oldest of them was enqueued.
    pub oldest: Option<OffsetDateTime>,
    /// The last error of a failed attempt, if any.
    pub last_error: Option<String>,
}

/// An activation as the store keeps it, for history and for later readers (issue 14's
/// behaviour baseline).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredActivation {
    /// The activation with its latest assessment, `state` and `revision`.
    pub report: ActivationReport,
    /// `provisional` or `final`.
    pub state: VerdictState,
    /// The assessment's revision.
    pub revision: u32,
    /// Whether it needs a human look.
    pub is_finding: bool,
}

/// The state store of scheduled runs, in one SQLite file.
///
/// Opened for a run with [`Store::open`] (created on first use, migrated forward, locked for
/// the life of the value); opened to read with [`Store::open_read_only`].
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    _lock: Option<RunLock>,
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_unix(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The key history and [`Store::activations_for_identity`] match on: the UPN (lower case),
/// else the object id, else the display name.
fn principal_key(a: &ActivationReport) -> String {
    a.principal
        .upn
        .as_deref()
        .or(a.principal.object_id.as_deref())
        .or(a.principal.display_name.as_deref())
        .unwrap_or("")
        .to_lowercase()
}

/// What a new revision is decided on: verdict, risk and flags. `still_active` is left out: it
/// is informational (not a finding) and says what the `provisional` state already says, so
/// an activation that merely ends is not sent again.
fn fingerprint(a: &ActivationReport) -> String {
    let flags: Vec<&str> = a
        .assessment
        .flags
        .iter()
        .filter(|f| **f != pim_domain::Flag::StillActive)
        .map(|f| f.as_str())
        .collect();
    format!(
        "{}|{}|{}",
        a.assessment.verdict.as_str(),
        a.assessment.risk.as_str(),
        flags.join(",")
    )
}

fn state_name(s: VerdictState) -> &'static str {
    s.as_str()
}

fn parse_state(s: &str) -> VerdictState {
    if s == "final" {
        VerdictState::Final
    } else {
        VerdictState::Provisional
    }
}

impl Store {
    /// Opens (creating it and its lock file on first use) the state at `path` for one run:
    /// takes the run lock for `holder`, then brings the schema to [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`Error::Locked`] when another run holds the state; [`Error::TooNew`] when a newer build
    /// wrote it; [`Error::Sqlite`] when it is not a database or cannot be written.
    pub fn open(path: &Path, holder: &Holder, wait: LockWait) -> Result<Self> {
        let lock = RunLock::acquire(path, holder, wait)?;
        let sqlite = |context| {
            move |source| Error::Sqlite {
                path: path.to_path_buf(),
                context,
                source,
            }
        };
        let mut conn = Connection::open(path).map_err(sqlite("opening"))?;
        // The rollback journal, not WAL: WAL needs shared memory that network file systems
        // (an Azure Files share holding a Container Apps job's state) do not provide. FULL sync
        // makes every committed transaction survive a power cut, not just a crash; readers
        // (history, --check) wait briefly for a writer instead of failing.
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(sqlite("setting the journal mode"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite("setting the journal mode"))?;
        let found = schema::version(&conn).map_err(sqlite("reading the schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        schema::migrate(&mut conn).map_err(sqlite("migrating the schema"))?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// Opens an existing state to read it (history, `--check`), without the run lock and
    /// without changing it.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no file; [`Error::TooNew`]; [`Error::Sqlite`].
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| Error::Sqlite {
            path: path.to_path_buf(),
            context: "opening",
            source,
        })?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
        let store = Self {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        };
        let found = store.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            // Only a run migrates; a reader of an older file would query tables that are not
            // there yet.
            return Err(store.sqlite_error("reading", rusqlite::Error::InvalidQuery));
        }
        Ok(store)
    }

    fn sqlite_error(&self, context: &'static str, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.path.clone(),
            context,
            source,
        }
    }

    fn err(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| self.sqlite_error(context, source)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the file.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn schema_version(&self) -> Result<u32> {
        schema::version(&self.conn).map_err(self.err("reading the schema version"))
    }

    /// Starts a run over `window`: any run still marked `running` (the lock proves it is not)
    /// is marked `abandoned`.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn begin_run(
        &mut self,
        holder: &Holder,
        window: (OffsetDateTime, OffsetDateTime),
    ) -> Result<RunId> {
        let path = self.path.clone();
        let e = move |context| {
            let path = path.clone();
            move |source| Error::Sqlite {
                path: path.clone(),
                context,
                source,
            }
        };
        let tx = self.conn.transaction().map_err(e("starting a run"))?;
        tx.execute(
            "UPDATE runs SET status = 'abandoned', note = 'ended without finishing (killed or crashed); its watermark was not kept' WHERE status = 'running'",
            [],
        )
        .map_err(e("closing abandoned runs"))?;
        tx.execute(
            "INSERT INTO runs (started_at, status, window_start, window_end, holder) VALUES (?1, 'running', ?2, ?3, ?4)",
            params![unix(holder.started), unix(window.0), unix(window.1), holder.to_string()],
        )
        .map_err(e("starting a run"))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(e("starting a run"))?;
        Ok(RunId(id))
    }

    /// Ends a run; only [`RunOutcome::Succeeded`] moves the watermark.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn finish_run(
        &mut self,
        run: RunId,
        ended_at: OffsetDateTime,
        outcome: &RunOutcome,
    ) -> Result<()> {
        let (status, note) = match outcome {
            RunOutcome::Succeeded => ("succeeded", None),
            RunOutcome::Failed { reason } => {
                ("failed", Some(reason.chars().take(500).collect::<String>()))
            }
        };
        self.conn
            .execute(
                "UPDATE runs SET status = ?1, ended_at = ?2, note = ?3 WHERE id = ?4",
                params![status, unix(ended_at), note, run.0],
            )
            .map_err(self.err("finishing a run"))?;
        Ok(())
    }

    /// The last successful run: its window's end is the watermark `--since-last` starts from.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn last_success(&self) -> Result<Option<RunRecord>> {
        self.conn
            .query_row(
                "SELECT id, started_at, ended_at, status, window_start, window_end FROM runs WHERE status = 'succeeded' ORDER BY window_end DESC, id DESC LIMIT 1",
                [],
                |r| {
                    Ok(RunRecord {
                        id: RunId(r.get(0)?),
                        started_at: from_unix(r.get(1)?),
                        ended_at: r.get::<_, Option<i64>>(2)?.map(from_unix),
                        status: r.get(3)?,
                        window_start: from_unix(r.get(4)?),
                        window_end: from_unix(r.get(5)?),
                    })
                },
            )
            .optional()
            .map_err(self.err("reading the last successful run"))
    }

    /// The window start of the earliest successful run: from then on the store has recorded
    /// every activation its runs scanned, so the behaviour baseline (issue 14) can count
    /// activations from the store over a period that starts no earlier. `None` before the
    /// first successful run.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn recorded_since(&self) -> Result<Option<OffsetDateTime>> {
        self.conn
            .query_row(
                "SELECT min(window_start) FROM runs WHERE status = 'succeeded'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(from_unix))
            .map_err(self.err("reading the earliest successful run"))
    }

    /// When the earliest provisional activation started, so the next window covers it.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn earliest_provisional(&self) -> Result<Option<OffsetDateTime>> {
        let t: Option<i64> = self
            .conn
            .query_row(
                "SELECT MIN(activated_at) FROM activations WHERE state = 'provisional'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err("reading provisional activations"))?;
        Ok(t.map(from_unix))
    }

    /// Records a run's assessments and queues their deliveries, in one transaction: a crash
    /// after it loses nothing, and the next run sends what this one queued.
    ///
    /// For each activation: new ones get revision 1; a stored `provisional` one is re-assessed
    /// (a new revision when its verdict, risk or flags changed); a stored `final` one keeps its
    /// stored assessment, which replaces the entry in `activations`. Every entry leaves with its
    /// `state` and `revision` set. Each subscriber that selects an activation gets one pending
    /// delivery per revision it has not had yet; a pending older revision is superseded.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; nothing is recorded then.
    pub fn record(
        &mut self,
        run: RunId,
        activations: &mut [ActivationReport],
        settle: Settle,
        subscribers: &[Subscriber<'_>],
    ) -> Result<Recorded> {
        let path = self.path.clone();
        let e = |context: &'static str| {
            let path = path.clone();
            move |source| Error::Sqlite {
                path,
                context,
                source,
            }
        };
        let mut done = Recorded::default();
        let tx = self.conn.transaction().map_err(e("recording"))?;
        for a in activations.iter_mut() {
            let stored: Option<(String, u32, String, String)> = tx
                .query_row(
                    "SELECT state, revision, fingerprint, report FROM activations WHERE id = ?1",
                    params![a.id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(e("reading an activation"))?;
            let now_state = settle.state(&a.window);
            let revision = match stored {
                None => {
                    done.new += 1;
                    Some(1)
                }
                Some((state, revision, _, report))
                    if parse_state(&state) == VerdictState::Final =>
                {
                    match serde_json::from_str::<ActivationReport>(&report) {
                        Ok(mut kept) => {
                            // Settled: the stored judgement stands, late rows or not.
                            kept.state = Some(VerdictState::Final);
                            kept.revision = Some(revision);
                            *a = kept;
                            done.unchanged += 1;
                            tx.execute(
                                "UPDATE activations SET last_run = ?1 WHERE id = ?2",
                                params![run.0, a.id],
                            )
                            .map_err(e("updating an activation"))?;
                            None
                        }
                        Err(_) => {
                            done.unreadable += 1;
                            Some(revision + 1)
                        }
                    }
                }
                Some((_, revision, old, _)) => {
                    if old == fingerprint(a) {
                        done.unchanged += 1;
                        Some(revision)
                    } else {
                        done.revised += 1;
                        Some(revision + 1)
                    }
                }
            };
            // `None`: a final activation kept as stored; it is still offered to destinations
            // below, so one added to --send later gets each finding once too.
            if let Some(revision) = revision {
                if now_state == VerdictState::Final {
                    done.settled += 1;
                }
                a.state = Some(now_state);
                a.revision = Some(revision);
                let report = serde_json::to_string(&*a).map_err(|err| {
                    e("storing an activation")(rusqlite::Error::ToSqlConversionFailure(Box::new(
                        err,
                    )))
                })?;
                tx.execute(
                    "INSERT INTO activations (id, principal_key, principal_upn, principal_object_id, role_name, activated_at, window_end, state, revision, fingerprint, is_finding, report, first_run, last_run)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
                     ON CONFLICT (id) DO UPDATE SET principal_key = excluded.principal_key, principal_upn = excluded.principal_upn,
                       principal_object_id = excluded.principal_object_id, role_name = excluded.role_name,
                       activated_at = excluded.activated_at, window_end = excluded.window_end, state = excluded.state,
                       revision = excluded.revision, fingerprint = excluded.fingerprint, is_finding = excluded.is_finding,
                       report = excluded.report, last_run = excluded.last_run",
                    params![
                        a.id,
                        principal_key(a),
                        a.principal.upn,
                        a.principal.object_id,
                        a.role.name,
                        unix(a.activated_at),
                        unix(a.window.end),
                        state_name(now_state),
                        revision,
                        fingerprint(a),
                        a.is_finding(),
                        report,
                        run.0,
                    ],
                )
                .map_err(e("storing an activation"))?;
            }
            let revision = a.revision.unwrap_or(1);
            for s in subscribers {
                if !(s.selects)(a) {
                    continue;
                }
                tx.execute(
                    "UPDATE deliveries SET status = 'superseded' WHERE destination = ?1 AND activation_id = ?2 AND status = 'pending' AND revision < ?3",
                    params![s.key, a.id, revision],
                )
                .map_err(e("superseding a delivery"))?;
                let added = tx
                    .execute(
                        "INSERT OR IGNORE INTO deliveries (destination, activation_id, revision, status, enqueued_run, enqueued_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
                        params![s.key, a.id, revision, run.0, unix(settle.now)],
                    )
                    .map_err(e("queueing a delivery"))?;
                done.enqueued += added;
            }
        }
        tx.commit().map_err(e("recording"))?;
        Ok(done)
    }

    /// The deliveries waiting for `destination`, oldest activation first: this run's and those
    /// earlier runs could not send.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn outbox(&self, destination: &str) -> Result<Vec<Pending>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.report, d.revision, d.attempts FROM deliveries d JOIN activations a ON a.id = d.activation_id
                 WHERE d.destination = ?1 AND d.status = 'pending' AND a.revision = d.revision
                 ORDER BY a.activated_at, a.id",
            )
            .map_err(self.err("reading the outbox"))?;
        let rows = stmt
            .query_map(params![destination], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })
            .map_err(self.err("reading the outbox"))?;
        let mut out = Vec::new();
        for row in rows {
            let (report, revision, attempts) = row.map_err(self.err("reading the outbox"))?;
            // A row this build cannot read is left pending (and counted by --check), not sent
            // half-made.
            if let Ok(activation) = serde_json::from_str::<ActivationReport>(&report) {
                out.push(Pending {
                    activation,
                    revision,
                    attempts,
                });
            }
        }
        Ok(out)
    }

    /// Marks deliveries to `destination` as sent.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn mark_sent(
        &mut self,
        destination: &str,
        sent: &[(String, u32)],
        at: OffsetDateTime,
    ) -> Result<()> {
        let path = self.path.clone();
        let e = move |source| Error::Sqlite {
            path: path.clone(),
            context: "marking deliveries sent",
            source,
        };
        let tx = self.conn.transaction().map_err(&e)?;
        for (id, revision) in sent {
            tx.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?1, last_error = NULL WHERE destination = ?2 AND activation_id = ?3 AND revision = ?4",
                params![unix(at), destination, id, revision],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// Records a failed attempt for deliveries to `destination`; they stay pending.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn mark_failed(
        &mut self,
        destination: &str,
        failed: &[(String, u32)],
        error: &str,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        let path = self.path.clone();
        let e = move |source| Error::Sqlite {
            path: path.clone(),
            context: "recording a failed delivery",
            source,
        };
        let tx = self.conn.transaction().map_err(&e)?;
        for (id, revision) in failed {
            tx.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?1 WHERE destination = ?2 AND activation_id = ?3 AND revision = ?4",
                params![error, destination, id, revision],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// Every destination with pending deliveries.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn outbox_summary(&self) -> Result<Vec<OutboxSummary>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT destination, COUNT(*), MIN(enqueued_at),
                   (SELECT last_error FROM deliveries e WHERE e.destination = d.destination AND e.status = 'pending' AND e.last_error IS NOT NULL ORDER BY e.enqueued_at DESC LIMIT 1)
                 FROM deliveries d WHERE status = 'pending' GROUP BY destination ORDER BY destination",
            )
            .map_err(self.err("reading the outbox"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OutboxSummary {
                    destination: r.get(0)?,
                    pending: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    oldest: r.get::<_, Option<i64>>(2)?.map(from_unix),
                    last_error: r.get(3)?,
                })
            })
            .map_err(self.err("reading the outbox"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading the outbox"))
    }

    /// Every activation that started in `[since, until)`, optionally only those of one
    /// identity (UPN or object id, case-insensitive), in time order.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn activations_between(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        identity: Option<&str>,
    ) -> Result<Vec<StoredActivation>> {
        let identity = identity.map(str::to_lowercase);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT report, state, revision, is_finding FROM activations
                 WHERE activated_at >= ?1 AND activated_at < ?2
                   AND (?3 IS NULL OR principal_key = ?3 OR lower(principal_object_id) = ?3)
                 ORDER BY activated_at, id",
            )
            .map_err(self.err("reading activations"))?;
        let rows = stmt
            .query_map(params![unix(since), unix(until), identity], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })
            .map_err(self.err("reading activations"))?;
        let mut out = Vec::new();
        for row in rows {
            let (report, state, revision, is_finding) =
                row.map_err(self.err("reading activations"))?;
            if let Ok(report) = serde_json::from_str::<ActivationReport>(&report) {
                out.push(StoredActivation {
                    report,
                    state: parse_state(&state),
                    revision,
                    is_finding,
                });
            }
        }
        Ok(out)
    }

    /// The activations of one identity (UPN or object id) over the `days` before `now`: the
    /// small read API for a behaviour baseline (issue 14).
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn activations_for_identity(
        &self,
        identity: &str,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<StoredActivation>> {
        self.activations_between(
            now - Duration::days(i64::from(days)),
            now + Duration::seconds(1),
            Some(identity),
        )
    }
}

#[cfg(test)]
mod tests {
    use pim_domain::{
        Activation, Assessment, AssessorKind, ElevationWindow, Evidence, Flag, Principal, Risk,
        Role, RoleKind, Scope, ScopeKind, Verdict,
    };
    use time::macros::datetime;

    use super::*;

    struct TempState(PathBuf);
    impl Drop for TempState {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp(name: &str) -> (TempState, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pim-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        (TempState(dir), path)
    }

    fn holder() -> Holder {
        Holder {
            pid: 7,
            host: "test".into(),
            started: datetime!(2026-11-20 18:00 UTC),
        }
    }

    fn activation(
        id: &str,
        end: OffsetDateTime,
        end_reason: EndReason,
        verdict: Verdict,
    ) -> ActivationReport {
        let a = Activation {
            id: id.into(),
            activated_at: datetime!(2026-11-20 09:00 UTC),
            principal: Principal {
                upn: Some("Jane@Contoso.com".into()),
                object_id: Some("oid-jane".into()),
                display_name: None,
            },
            role: Role {
                name: "Owner".into(),
                id: None,
                kind: RoleKind::AzureResource,
            },
            scope: Scope {
                kind: ScopeKind::Subscription,
                id: None,
                display_name: None,
            },
            justification: "INC1".into(),
            tickets: vec![],
            ticket_info: None,
            ticket_checks: Vec::new(),
            window: ElevationWindow {
                start: datetime!(2026-11-20 09:00 UTC),
                end,
                end_reason,
                scheduled_end: None,
                assumed: false,
            },
            request_id: None,
            correlation_id: None,
            problems: vec![],
        };
        let assessment = Assessment {
            verdict,
            risk: Risk::Medium,
            rationale: "r".into(),
            flags: vec![],
            assessor: AssessorKind::Rules,
            error: None,
            confidence: None,
            disagreements: vec![],
            evidence: Evidence::default(),
        };
        ActivationReport::new(a, vec![], 0, assessment)
    }

    fn all(_: &ActivationReport) -> bool {
        true
    }

    #[test]
    fn revisions_grow_only_on_change_and_each_is_queued_once_per_destination() {
        let (_t, path) = temp("revisions");
        let mut store = Store::open(&path, &holder(), LockWait::Fail).unwrap();
        let subs = [Subscriber {
            key: "webhook".into(),
            selects: &all,
        }];
        let settle = Settle {
            now: datetime!(2026-11-20 12:00 UTC),
            settle: Duration::minutes(30),
        };
        let window = (datetime!(2026-11-20 00:00 UTC), settle.now);
        let open = |v| activation("a1", settle.now, EndReason::StillActive, v);

        let run = store.begin_run(&holder(), window).unwrap();
        let mut first = vec![open(Verdict::Partial)];
        let r = store.record(run, &mut first, settle, &subs).unwrap();
        assert_eq!((r.new, r.enqueued), (1, 1));
        assert_eq!(first[0].state, Some(VerdictState::Provisional));
        assert_eq!(first[0].revision, Some(1));

        // The same assessment again: nothing new to send.
        let mut again = vec![open(Verdict::Partial)];
        let r = store.record(run, &mut again, settle, &subs).unwrap();
        assert_eq!((r.unchanged, r.enqueued), (1, 0));
        assert_eq!(store.outbox("webhook").unwrap().len(), 1);

        // Late data changes the verdict: revision 2 replaces the unsent revision 1.
        let mut changed = vec![open(Verdict::NotAligned)];
        let r = store.record(run, &mut changed, settle, &subs).unwrap();
        assert_eq!((r.revised, r.enqueued), (1, 1));
        let pending = store.outbox("webhook").unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].revision, 2);
        assert_eq!(pending[0].activation.revision, Some(2));
        store
            .mark_sent("webhook", &[("a1".into(), 2)], settle.now)
            .unwrap();
        assert!(store.outbox("webhook").unwrap().is_empty());
        assert!(store.outbox_summary().unwrap().is_empty());

        // The window closes and settles: final, with the stored judgement kept from then on.
        let later = Settle {
            now: datetime!(2026-11-20 14:00 UTC),
            settle: Duration::minutes(30),
        };
        let closed = |v| activation("a1", datetime!(2026-11-20 13:00 UTC), EndReason::Expired, v);
        let mut settled = vec![closed(Verdict::NotAligned)];
        let r = store.record(run, &mut settled, later, &subs).unwrap();
        assert_eq!((r.settled, r.enqueued), (1, 0));
        assert_eq!(settled[0].state, Some(VerdictState::Final));
        let mut after_final = vec![closed(Verdict::Aligned)];
        store.record(run, &mut after_final, later, &subs).unwrap();
        assert_eq!(after_final[0].assessment.verdict, Verdict::NotAligned);
        assert_eq!(after_final[0].revision, Some(2));
        assert!(store.earliest_provisional().unwrap().is_none());
    }

    #[test]
    fn a_failed_send_stays_in_the_outbox_and_a_failed_run_keeps_the_watermark() {
        let (_t, path) = temp("outbox");
        let mut store = Store::open(&path, &holder(), LockWait::Fail).unwrap();
        let findings = |a: &ActivationReport| a.is_finding();
        let subs = [
            Subscriber {
                key: "logs-ingestion".into(),
                selects: &all,
            },
            Subscriber {
                key: "webhook".into(),
                selects: &findings,
            },
        ];
        let settle = Settle {
            now: datetime!(2026-11-20 18:00 UTC),
            settle: Duration::minutes(30),
        };
        let w1 = (
            datetime!(2026-11-20 00:00 UTC),
            datetime!(2026-11-20 17:30 UTC),
        );
        let run = store.begin_run(&holder(), w1).unwrap();
        let end = datetime!(2026-11-20 10:00 UTC);
        let mut acts = vec![
            activation("ok", end, EndReason::Expired, Verdict::Aligned),
            activation("bad", end, EndReason::Expired, Verdict::NotAligned),
        ];
        let r = store.record(run, &mut acts, settle, &subs).unwrap();
        assert_eq!(
            r.enqueued, 3,
            "both rows to logs ingestion, the finding to the webhook"
        );
        store
            .mark_failed("webhook", &[("bad".into(), 1)], "503 from the webhook")
            .unwrap();
        store
            .finish_run(run, settle.now, &RunOutcome::Succeeded)
            .unwrap();
        let summary = store.outbox_summary().unwrap();
        assert_eq!(summary.len(), 2);
        let hook = summary.iter().find(|s| s.destination == "webhook").unwrap();
        assert_eq!(hook.pending, 1);
        assert_eq!(hook.last_error.as_deref(), Some("503 from the webhook"));
        assert_eq!(store.outbox("webhook").unwrap()[0].attempts, 1);

        let failed = store
            .begin_run(&holder(), (w1.1, datetime!(2026-11-20 19:00 UTC)))
            .unwrap();
        store
            .finish_run(
                failed,
                settle.now,
                &RunOutcome::Failed {
                    reason: "scan failed".into(),
                },
            )
            .unwrap();
        assert_eq!(store.last_success().unwrap().unwrap().window_end, w1.1);

        // A run left `running` (killed) is abandoned by the next one.
        let killed = store.begin_run(&holder(), w1).unwrap();
        let _next = store.begin_run(&holder(), w1).unwrap();
        let status: String = store
            .conn
            .query_row("SELECT status FROM runs WHERE id = ?1", [killed.0], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "abandoned");

        // History and the identity read API match the UPN case-insensitively, or the object id.
        let all_of_jane = store
            .activations_for_identity("jane@contoso.com", 90, settle.now)
            .unwrap();
        assert_eq!(all_of_jane.len(), 2);
        assert_eq!(
            store
                .activations_between(end, settle.now, Some("OID-JANE"))
                .unwrap()
                .len(),
            0,
            "activated at 09:00, before the period"
        );
        assert_eq!(
            store
                .activations_for_identity("oid-jane", 1, settle.now)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn the_schema_is_created_migrated_and_a_newer_one_refused() {
        let (_t, path) = temp("schema");
        let store = Store::open(&path, &holder(), LockWait::Fail).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        // Reopening migrates nothing and keeps the version.
        let store = Store::open(&path, &holder(), LockWait::Fail).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        store
            .conn
            .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .unwrap();
        drop(store);
        let e = Store::open(&path, &holder(), LockWait::Fail).unwrap_err();
        assert!(matches!(e, Error::TooNew { .. }), "{e}");
        assert!(matches!(
            Store::open_read_only(&path).unwrap_err(),
            Error::TooNew { .. }
        ));
        let missing = path.with_file_name("none.db");
        assert!(matches!(
            Store::open_read_only(&missing).unwrap_err(),
            Error::Missing { .. }
        ));
        // Not a database: an error, not a panic.
        let junk = path.with_file_name("junk.db");
        std::fs::write(
            &junk,
            "this is not sqlite, just text that is long enough to matter",
        )
        .unwrap();
        assert!(Store::open(&junk, &holder(), LockWait::Fail).is_err());
    }

    #[test]
    fn flags_are_part_of_the_fingerprint() {
        let mut a = activation(
            "x",
            datetime!(2026-11-20 10:00 UTC),
            EndReason::Expired,
            Verdict::Aligned,
        );
        let before = fingerprint(&a);
        a.assessment.add_flag(Flag::HighRiskOperation);
        assert_ne!(before, fingerprint(&a));
    }
}
