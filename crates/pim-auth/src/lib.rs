//! Azure credential chain for the PIM Activity Audit Agent: environment service principal,
//! workload identity, managed identity, Azure CLI, Azure Developer CLI, with a per-scope token
//! cache.
//!
//! `azure_identity` 1.0 has no `DefaultAzureCredential` (nor `EnvironmentCredential`), so
//! [`credential`] builds the equivalent from an explicit [`AuthSettings`] snapshot of the
//! environment and returns a [`ChainCredential`]. Every token goes through a
//! [`CachedCredential`] (the CLI credentials have no cache of their own).
//! [`StaticTokenCredential`] serves tests and loopback fakes.
//!
//! Main types:
//! - [`AuthMethod`]: the five methods and their `--auth` / `PIM_AUTH` names.
//! - [`AuthSettings`]: pin, environment snapshot, IMDS probe address and timeout. Before
//!   managed identity is asked, a probe checks that the address is Azure IMDS (it refuses a
//!   token request without `Metadata: true` with its own 400), so a laptop or another cloud's
//!   VM fails over in milliseconds rather than after `azure_identity`'s ~72 s of retries.
//! - [`ChainCredential`], [`CachedCredential`], [`StaticTokenCredential`]: implementations of
//!   `azure_core::credentials::TokenCredential`.
//! - [`Error`], with [`Attempt`] describing each method tried.
//!
//! Tokens never appear in logs, `Debug` or `Display` output: logs carry only the method, scope
//! and expiry.
//!
//! ```no_run
//! use azure_core::credentials::TokenCredential;
//! use pim_auth::{credential, AuthSettings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = AuthSettings::from_env_map(std::env::vars())?;
//! let cred = credential(&settings)?;
//! let token = cred
//!     .get_token(&["https://api.loganalytics.io/.default"], None)
//!     .await?;
//! println!("token from {}, expires {}", cred.describe(), token.expires_on);
//! # Ok(())
//! # }
//! ```

mod cache;
mod chain;
mod imds;
mod method;
mod settings;
mod static_token;

pub use cache::{CachedCredential, Clock, REFRESH_MARGIN};
pub use chain::{Attempt, ChainCredential, credential};
pub use method::AuthMethod;
pub use settings::{
    AuthSettings, DEFAULT_IMDS_PROBE_TIMEOUT, IMDS_ADDR, PIM_AUTH_VAR, RELEVANT_VARS,
};
pub use static_token::StaticTokenCredential;

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
