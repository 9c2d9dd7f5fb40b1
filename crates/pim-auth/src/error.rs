//! What can go wrong in the credential chain. No message carries a token or a secret.

use crate::{Attempt, AuthMethod};

/// Errors of the credential chain. None of the messages contains a token or secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--auth` / `PIM_AUTH` names no known method (the value is shortened and escaped).
    #[error(
        "unknown authentication method `{0}`: expected env, workload-identity, managed-identity, cli, azd or auto"
    )]
    UnknownMethod(String),

    /// A pinned method lacks configuration, e.g. a missing variable (named in `reason`).
    #[error(
        "authentication method `{method}` is selected but not configured: {reason}; fix: {remedy}"
    )]
    NotConfigured {
        /// The pinned method.
        method: AuthMethod,
        /// What is missing.
        reason: String,
        /// How to fix it.
        remedy: String,
    },

    /// `azure_identity` rejected the configuration of a pinned method.
    #[error("could not set up the {label} credential: {reason}; fix: {remedy}")]
    Setup {
        /// The pinned method.
        method: AuthMethod,
        /// Human description of the credential.
        label: String,
        /// The `azure_identity` error, on one line.
        reason: String,
        /// How to fix it.
        remedy: String,
    },

    /// The pinned or previously selected method failed to get a token.
    #[error("could not get a token for {scope}: {attempt}")]
    TokenFailed {
        /// The requested scope(s).
        scope: String,
        /// The failed attempt.
        attempt: Attempt,
    },

    /// Every method of the chain failed or was skipped; one line per attempt.
    #[error(
        "no Azure credential could get a token for {scope}; tried:{}",
        list(attempts)
    )]
    AllFailed {
        /// The requested scope(s).
        scope: String,
        /// Every attempt, in chain order.
        attempts: Vec<Attempt>,
    },
}

fn list(attempts: &[Attempt]) -> String {
    attempts.iter().map(|a| format!("\n{a}")).collect()
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
