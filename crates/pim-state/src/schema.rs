//! The versioned schema: one forward migration per version, applied in a transaction.
//!
//! `PRAGMA user_version` holds the version. A migration is only ever appended, never edited:
//! a state file written by version N is brought to the newest version by running migrations
//! N+1.. in order, each in its own transaction with the version bump, so a crash mid-upgrade
//! leaves the file at a whole version.

use rusqlite::Connection;

/// The migrations, in order: `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: runs, activations with their assessment, and the per-destination delivery log.
    "
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned')),
        window_start INTEGER NOT NULL,
        window_end INTEGER NOT NULL,
        holder TEXT NOT NULL,
        note TEXT
    );
    CREATE INDEX runs_by_status ON runs (status, window_end);
    CREATE TABLE activations (
        id TEXT PRIMARY KEY,
        principal_key TEXT NOT NULL,
        principal_upn TEXT,
        principal_object_id TEXT,
        role_name TEXT NOT NULL,
        activated_at INTEGER NOT NULL,
        window_end INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('provisional', 'final')),
        revision INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        is_finding INTEGER NOT NULL,
        report TEXT NOT NULL,
        first_run INTEGER NOT NULL REFERENCES runs (id),
        last_run INTEGER NOT NULL REFERENCES runs (id)
    );
    CREATE INDEX activations_by_identity ON activations (principal_key, activated_at);
    CREATE INDEX activations_by_time ON activations (activated_at);
    CREATE INDEX activations_by_state ON activations (state);
    CREATE TABLE deliveries (
        destination TEXT NOT NULL,
        activation_id TEXT NOT NULL REFERENCES activations (id),
        revision INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'superseded')),
        enqueued_run INTEGER NOT NULL REFERENCES runs (id),
        enqueued_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at INTEGER,
        PRIMARY KEY (destination, activation_id, revision)
    );
    CREATE INDEX deliveries_pending ON deliveries (destination, status);
    ",
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The schema version of an open database.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Runs every migration above the database's version; returns the version reached.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let mut current = version(conn)?;
    while (current as usize) < MIGRATIONS.len() {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[current as usize])?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", current + 1))?;
        tx.commit()?;
        current += 1;
    }
    Ok(current)
}
