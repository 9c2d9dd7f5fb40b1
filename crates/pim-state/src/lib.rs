//! The state store of scheduled runs (issue 13): what `pim-batch --state PATH` remembers
//! between runs, in one embedded SQLite file.
//!
//! - [`Store::open`] creates the file on first use, takes the run lock ([`RunLock`]: a second
//!   run on the same state is refused, naming the holder, unless it waits with
//!   [`LockWait::Wait`]) and migrates the schema forward to [`SCHEMA_VERSION`];
//! - [`Store::begin_run`] / [`Store::finish_run`] record each run; only a successful one moves
//!   the watermark ([`Store::last_success`]) that `--since-last` starts from;
//! - [`Store::record`] stores each activation with its assessment, `provisional` or `final`
//!   ([`Settle`]), with a revision that grows only when the verdict, risk or flags change, and
//!   queues one delivery per destination and revision: the outbox ([`Store::outbox`]), emptied
//!   by [`Store::mark_sent`], so a finding is sent once and a failed send is retried next run;
//! - [`Store::activations_between`] and [`Store::activations_for_identity`] read the history.
//!
//! Every write is a transaction: a run killed at any point leaves the store as of its last
//! commit, and the next run marks it `abandoned` and sends what it had queued.
//!
//! ```
//! use pim_state::{Holder, LockWait, Store};
//! use time::macros::datetime;
//!
//! let dir = std::env::temp_dir().join(format!("pim-state-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("state.db");
//! let holder = Holder { pid: 1, host: "runner".into(), started: datetime!(2026-11-20 18:00 UTC) };
//! let mut store = Store::open(&path, &holder, LockWait::Fail).unwrap();
//! assert_eq!(store.schema_version().unwrap(), pim_state::SCHEMA_VERSION);
//! assert!(store.last_success().unwrap().is_none(), "a new state has no watermark");
//! let run = store
//!     .begin_run(&holder, (datetime!(2026-11-20 12:00 UTC), datetime!(2026-11-20 17:30 UTC)))
//!     .unwrap();
//! store.finish_run(run, datetime!(2026-11-20 18:01 UTC), &pim_state::RunOutcome::Succeeded).unwrap();
//! assert_eq!(store.last_success().unwrap().unwrap().window_end, datetime!(2026-11-20 17:30 UTC));
//! // While the run holds the state, another is refused and told who holds it.
//! let other = Holder { pid: 2, ..holder.clone() };
//! let refused = Store::open(&path, &other, LockWait::Fail).unwrap_err();
//! assert!(refused.to_string().contains("pid 1 on runner"));
//! drop(store);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod error;
mod lock;
mod schema;
mod store;

pub use error::{Error, Result};
pub use lock::{Holder, LockWait, RunLock};
pub use schema::SCHEMA_VERSION;
pub use store::{
    OutboxSummary, Pending, Recorded, RunId, RunOutcome, RunRecord, Settle, Store,
    StoredActivation, Subscriber,
};
