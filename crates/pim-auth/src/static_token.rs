//! A credential that always returns the same token: for tests and loopback fakes.

use std::fmt;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use pim_http::secret::Redacted;
use time::OffsetDateTime;

/// Returns a fixed token and expiry for every scope. Its [`fmt::Debug`] output redacts the token.
#[derive(Clone)]
pub struct StaticTokenCredential {
    token: Secret,
    expires_on: OffsetDateTime,
}

impl StaticTokenCredential {
    /// A credential that hands out `token`, valid until `expires_on`.
    pub fn new(token: impl Into<String>, expires_on: OffsetDateTime) -> Self {
        Self {
            token: Secret::new(token.into()),
            expires_on,
        }
    }

    /// The expiry reported with the token.
    pub fn expires_on(&self) -> OffsetDateTime {
        self.expires_on
    }
}

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokenCredential")
            .field("token", &Redacted)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(self.token.clone(), self.expires_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn returns_the_fixed_token_and_expiry() {
        let expiry = datetime!(2030-01-01 0:00 UTC);
        let credential = StaticTokenCredential::new("static-token-value", expiry);
        let token = credential
            .get_token(&["scope/.default"], None)
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "static-token-value");
        assert_eq!(token.expires_on, expiry);
        assert_eq!(credential.expires_on(), expiry);
    }

    #[test]
    fn debug_redacts_the_token() {
        let credential =
            StaticTokenCredential::new("static-token-value", datetime!(2030-01-01 0:00 UTC));
        let debug = format!("{credential:?}");
        assert!(!debug.contains("static-token-value"), "{debug}");
        assert!(debug.contains("token: [REDACTED]"), "{debug}");
    }
}
