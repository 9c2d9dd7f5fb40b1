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
mod error;
mod imds;
mod method;
mod settings;
mod static_token;

pub use cache::{CachedCredential, Clock, REFRESH_MARGIN};
pub use chain::{Attempt, ChainCredential, credential};
pub use error::{Error, Result};
pub use method::AuthMethod;
pub use settings::{
    AuthSettings, DEFAULT_IMDS_PROBE_TIMEOUT, IMDS_ADDR, PIM_AUTH_VAR, RELEVANT_VARS,
};
pub use static_token::StaticTokenCredential;
