//! The crate's errors: only set-up can fail. A lookup never returns an error; it returns a
//! [`TicketLookup`](crate::TicketLookup) that says what went wrong, so no reference is ever
//! dropped.

/// Why a ticket-system client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed; `variable` names it.
    #[error("{variable}: {problem}")]
    Config {
        /// The variable at fault, e.g. `PIM_SERVICENOW_URL`.
        variable: &'static str,
        /// What is wrong with it, and the fix.
        problem: String,
    },
    /// The HTTP client could not be built (TLS back end unavailable, ...).
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
