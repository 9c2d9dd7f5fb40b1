//! The sessions a server hosts: who owns each, when it was last used, and how many messages
//! each user sent in the last minute.
//!
//! One `std::sync::Mutex` guards the table and is never held across an `.await`; each
//! session has its own `tokio::sync::Mutex`, held while a line runs, so two messages to one
//! session take turns and messages to different sessions run side by side.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pim_agent::Session;
use serde::Serialize;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::config::Limits;

/// The window of the per-user message limit.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One line of a conversation, as `GET /api/sessions/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `user` or `agent`.
    pub role: &'static str,
    /// What was said.
    pub text: String,
}

/// A hosted session and its transcript.
#[derive(Debug)]
pub struct Hosted {
    /// The agent session.
    pub session: Session,
    /// What was said, oldest first, at most [`Limits::transcript_messages`].
    pub messages: VecDeque<Message>,
}

#[derive(Debug)]
struct Entry {
    owner: Caller,
    last_used: Instant,
    hosted: Arc<tokio::sync::Mutex<Hosted>>,
}

/// Why a session or message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user holds [`Limits::sessions_per_user`] sessions.
    SessionsPerUser(usize),
    /// The server holds [`Limits::max_sessions`] sessions.
    ServerFull,
    /// The user sent [`Limits::messages_per_minute`] messages; retry after this long.
    RateLimited(Duration),
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Entry>,
    recent: HashMap<Caller, VecDeque<Instant>>,
}

/// Every session of one server (see the module docs).
#[derive(Debug)]
pub struct Sessions {
    limits: Limits,
    table: Mutex<Table>,
}

impl Sessions {
    /// An empty table enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while the lock was held leaves the table consistent (every change is one
        // map operation), so a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `owner`, after dropping idle ones.
    ///
    /// # Errors
    /// [`Refusal::SessionsPerUser`] or [`Refusal::ServerFull`].
    pub fn create(&self, owner: &Caller, session: Session) -> Result<String, Refusal> {
        let mut t = self.lock();
        self.sweep_locked(&mut t);
        let mine = t.by_id.values().filter(|e| e.owner == *owner).count();
        if mine >= self.limits.sessions_per_user {
            return Err(Refusal::SessionsPerUser(self.limits.sessions_per_user));
        }
        if t.by_id.len() >= self.limits.max_sessions {
            return Err(Refusal::ServerFull);
        }
        let id = new_id();
        t.by_id.insert(
            id.clone(),
            Entry {
                owner: owner.clone(),
                last_used: Instant::now(),
                hosted: Arc::new(tokio::sync::Mutex::new(Hosted {
                    session,
                    messages: VecDeque::new(),
                })),
            },
        );
        Ok(id)
    }

    /// `owner`'s session `id`, marked as used; `None` for another user's, an expired or an
    /// unknown one (the caller cannot tell which).
    pub fn get(&self, owner: &Caller, id: &str) -> Option<Arc<tokio::sync::Mutex<Hosted>>> {
        let mut t = self.lock();
        let idle = self.limits.idle;
        let entry = t.by_id.get_mut(id)?;
        if entry.owner != *owner {
            return None;
        }
        if entry.last_used.elapsed() >= idle {
            t.by_id.remove(id);
            return None;
        }
        entry.last_used = Instant::now();
        Some(entry.hosted.clone())
    }

    /// Closes `owner`'s session `id`; `false` when there is none.
    pub fn remove(&self, owner: &Caller, id: &str) -> bool {
        let mut t = self.lock();
        if t.by_id.get(id).is_some_and(|e| e.owner == *owner) {
            t.by_id.remove(id);
            true
        } else {
            false
        }
    }

    /// Counts one message of `owner` against the per-minute limit.
    ///
    /// # Errors
    /// [`Refusal::RateLimited`] with the time until the oldest message leaves the window.
    pub fn admit_message(&self, owner: &Caller) -> Result<(), Refusal> {
        let mut t = self.lock();
        let now = Instant::now();
        let recent = t.recent.entry(owner.clone()).or_default();
        while recent
            .front()
            .is_some_and(|sent| now.duration_since(*sent) >= RATE_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= self.limits.messages_per_minute {
            let wait = recent.front().map_or(RATE_WINDOW, |oldest| {
                RATE_WINDOW.saturating_sub(now.duration_since(*oldest))
            });
            return Err(Refusal::RateLimited(wait));
        }
        recent.push_back(now);
        Ok(())
    }

    /// Drops idle sessions and forgotten rate windows; returns how many sessions are left.
    pub fn sweep(&self) -> usize {
        let mut t = self.lock();
        self.sweep_locked(&mut t);
        t.by_id.len()
    }

    fn sweep_locked(&self, t: &mut Table) {
        let idle = self.limits.idle;
        t.by_id.retain(|_, e| e.last_used.elapsed() < idle);
        t.recent
            .retain(|_, r| r.back().is_some_and(|last| last.elapsed() < RATE_WINDOW));
    }
}

/// An opaque, unguessable session id: 128 random bits as hex. Knowing another user's id is
/// not enough anyway (ownership is checked), but ids must not be enumerable.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS generator failing is not recoverable in any useful way; fall back to a value
    // that is still unique (time and a counter), never a fixed one.
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes[8..].copy_from_slice(&(t as u64).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_agent::SessionOptions;
    use pim_core::Auditor;

    fn session() -> Session {
        let source = pim_core::demo_source().unwrap();
        let auditor = Arc::new(Auditor::builder(source.clone()).build());
        Session::new(auditor, source, None, SessionOptions::default())
    }

    fn user(n: &str) -> Caller {
        Caller {
            tenant: "t".into(),
            object: n.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_per_user_in_all_and_idle() {
        let s = Sessions::new(Limits {
            sessions_per_user: 2,
            max_sessions: 3,
            idle: Duration::from_secs(60),
            ..Limits::default()
        });
        let a = s.create(&user("a"), session()).unwrap();
        s.create(&user("a"), session()).unwrap();
        assert_eq!(
            s.create(&user("a"), session()),
            Err(Refusal::SessionsPerUser(2))
        );
        s.create(&user("b"), session()).unwrap();
        assert_eq!(s.create(&user("c"), session()), Err(Refusal::ServerFull));
        assert!(s.get(&user("b"), &a).is_none(), "not b's");
        assert!(s.get(&user("a"), &a).is_some());
        assert!(!s.remove(&user("b"), &a));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(s.get(&user("a"), &a).is_none(), "expired");
        assert_eq!(s.sweep(), 0);
        assert_ne!(new_id(), new_id());
        assert_eq!(new_id().len(), 32);
    }

    #[tokio::test(start_paused = true)]
    async fn messages_per_minute_with_the_wait() {
        let s = Sessions::new(Limits {
            messages_per_minute: 2,
            ..Limits::default()
        });
        s.admit_message(&user("a")).unwrap();
        tokio::time::advance(Duration::from_secs(20)).await;
        s.admit_message(&user("a")).unwrap();
        assert_eq!(
            s.admit_message(&user("a")),
            Err(Refusal::RateLimited(Duration::from_secs(40)))
        );
        s.admit_message(&user("b")).unwrap();
        tokio::time::advance(Duration::from_secs(40)).await;
        s.admit_message(&user("a")).unwrap();
    }
}
