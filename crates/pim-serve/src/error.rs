//! The crate's error type.

/// What can stop a server from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unsafe or incomplete.
    #[error("{0}")]
    Config(String),
    /// The listener failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client for the sign-in authority could not be built.
    #[error("building the HTTP client for the sign-in authority: {0}")]
    Client(#[source] reqwest::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
