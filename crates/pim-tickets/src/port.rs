//! The port every ticket system implements.

use async_trait::async_trait;
use pim_domain::{TicketEvidence, TicketSystemKind};

/// What one lookup came to. A lookup never fails as a Rust error: every outcome, the failed
/// ones included, is a value the verifier records against the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketLookup {
    /// The system returned the ticket (boxed: the evidence is large beside a reason).
    Found(Box<TicketEvidence>),
    /// The system answered that no such ticket exists; the text says how it answered.
    NotFound(String),
    /// The lookup failed (authentication, permission, throttling past the retry budget, server
    /// errors, a timeout, an unreadable answer, a system that cannot tell "missing" from "not
    /// visible"); the text says why, with no secret in it.
    Failed(String),
}

/// One ticket system: ServiceNow, Jira, or a test double.
///
/// Held as `Arc<dyn TicketSystem>` by the [`TicketVerifier`](crate::TicketVerifier).
#[async_trait]
pub trait TicketSystem: Send + Sync + std::fmt::Debug {
    /// Which system this is.
    fn kind(&self) -> TicketSystemKind;

    /// Looks up one number or key, already routed to this system and checked for shape
    /// ([`route`](crate::route)). Adapters retry 429 and 5xx under the shared retry policy
    /// (`pim_http::retry`) before they give up with [`TicketLookup::Failed`].
    async fn lookup(&self, number: &str) -> TicketLookup;

    /// `--check`: reads one ticket that does not exist. `Ok` describes what answered;
    /// `Err` is `"<problem>; fix: <remedy>"`, naming the settings to change for authentication
    /// and permission errors. Never holds a secret.
    ///
    /// # Errors
    ///
    /// The problem and its fix, as one line of text.
    async fn probe(&self) -> Result<String, String>;
}
