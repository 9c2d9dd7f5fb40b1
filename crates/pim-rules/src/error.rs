//! The crate's error type: why an [`Assessor`](crate::Assessor) could not produce an answer.

use std::time::Duration;

/// Why an assessor failed. The rules engine itself never fails; these come from model-backed
/// assessors. [`Error::is_retryable`] says whether the same request may succeed later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The assessor's backend could not be reached or broke the connection. Retryable.
    #[error("assessor backend unreachable: {message}")]
    Transport {
        /// What went wrong, in words.
        message: String,
        /// The underlying transport error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend asked us to slow down (HTTP 429). Retryable, after `retry_after` if given.
    #[error(
        "assessor backend is rate limiting{}",
        pim_domain::retry::wait_hint(*retry_after)
    )]
    RateLimited {
        /// How long the backend asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The backend did not answer in time. Retryable.
    #[error("assessor timed out after {0:?}")]
    Timeout(Duration),
    /// The backend failed on its side (HTTP 5xx). Retryable.
    #[error("assessor backend failed with status {status}: {body}")]
    Backend {
        /// The HTTP status.
        status: u16,
        /// The raw response body (possibly cut short).
        body: String,
    },
    /// The backend answered, but the answer is not a usable assessment (not JSON, unknown
    /// verdict, missing fields). Not retryable as is: the same prompt tends to give the same
    /// shape of answer.
    #[error("assessor answer is unusable: {reason}")]
    InvalidAnswer {
        /// What was wrong with it.
        reason: String,
    },
    /// The backend refused the request (content filter, policy). Not retryable.
    #[error("assessor refused the request: {reason}")]
    Refused {
        /// The backend's reason.
        reason: String,
    },
    /// The request can never succeed as configured (authentication, unknown deployment, bad
    /// endpoint, HTTP 4xx other than 429). Not retryable.
    #[error("assessor is misconfigured: {reason}")]
    Configuration {
        /// What is wrong.
        reason: String,
    },
}

/// The error type of [`Assessor::assess`](crate::Assessor::assess).
pub type AssessError = Error;

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying the same request again may succeed: transport failures, rate limiting,
    /// timeouts and backend (5xx) failures are; unusable answers, refusals and configuration
    /// errors are not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. }
                | Self::RateLimited { .. }
                | Self::Timeout(_)
                | Self::Backend { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        assert!(
            Error::Transport {
                message: "reset".into(),
                source: None
            }
            .is_retryable()
        );
        assert!(
            Error::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
            .is_retryable()
        );
        assert!(Error::Timeout(Duration::from_secs(30)).is_retryable());
        assert!(
            Error::Backend {
                status: 503,
                body: String::new()
            }
            .is_retryable()
        );
        assert!(
            !Error::InvalidAnswer {
                reason: "not json".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::Refused {
                reason: "filtered".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::Configuration {
                reason: "401".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn messages_are_lower_case() {
        let e = Error::Backend {
            status: 500,
            body: "boom".into(),
        };
        assert_eq!(
            e.to_string(),
            "assessor backend failed with status 500: boom"
        );
    }
}
