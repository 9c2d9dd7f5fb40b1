//! Who is calling: the [`Caller`] a request's token names, or why it names nobody.
//!
//! Tokens are read from `Authorization: Bearer …` or from `X-MS-TOKEN-AAD-ID-TOKEN`, which App
//! Service and Container Apps authentication inject after their own sign-in. A token is never
//! logged, never echoed in an error, and never stored.

use axum::http::HeaderMap;

/// The owner of sessions: a user in a tenant (the token's `tid` and `oid`; the reference says
/// `oid` is the stable id, not `upn`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The tenant id (`tid`).
    pub tenant: String,
    /// The user's object id (`oid`).
    pub object: String,
}

impl Caller {
    /// The one user of a server without sign-in.
    pub fn local() -> Self {
        Self {
            tenant: "local".to_owned(),
            object: "local".to_owned(),
        }
    }
}

/// Why a request has no caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in either header (401).
    #[error("sign in: send an Entra ID token as Authorization: Bearer")]
    Missing,
    /// The token is not acceptable (401). The reason names the check, never the token.
    #[error("the token was refused: {0}")]
    Invalid(String),
    /// The token is good but lacks the app role (403).
    #[error("the app role {0} is required; ask an administrator to assign it to you")]
    MissingRole(String),
    /// The authority's keys could not be had (503).
    #[error("the sign-in keys could not be fetched; try again shortly")]
    Unavailable,
}

/// How requests are signed in.
#[derive(Debug)]
pub enum Authenticator {
    /// Everyone is [`Caller::local`].
    None,
    /// Entra ID tokens.
    Entra(Box<crate::entra::EntraValidator>),
}

impl Authenticator {
    /// The caller `headers` name.
    ///
    /// # Errors
    /// [`AuthError`] for a missing or refused token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        match self {
            Self::None => Ok(Caller::local()),
            Self::Entra(validator) => {
                let token = token_of(headers).ok_or(AuthError::Missing)?;
                validator.validate(token).await
            }
        }
    }
}

/// The token a request carries: the bearer token, else the platform's ID token header.
/// (Header names are case-insensitive in `HeaderMap`.)
pub(crate) fn token_of(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    bearer.or_else(|| {
        headers
            .get("x-ms-token-aad-id-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_bearer_or_the_platform_header() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h), None);
        h.insert("X-MS-TOKEN-AAD-ID-TOKEN", "platform".parse().unwrap());
        assert_eq!(token_of(&h), Some("platform"));
        h.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(token_of(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(token_of(&h), Some("platform"));
    }
}
