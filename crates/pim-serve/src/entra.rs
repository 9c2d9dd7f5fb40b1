//! Entra ID token validation (reference §12): RS256 signatures against the keys the
//! authority's OIDC metadata publishes, the issuer that metadata names, the audience, `exp` and
//! `nbf` with five minutes of skew, and an app role.
//!
//! The keys are fetched on first use, again when they are a day old, and again when a token
//! names a key id they do not hold (key rotation) — but such unknown-kid refreshes are
//! rate-limited ([`EntraConfig::min_key_refresh`]), so tokens with invented key ids cannot
//! make the server hammer the authority.
//!
//! A token that passed every check is remembered (by its exact text) for
//! [`VERIFIED_TTL`] or until it expires, whichever is sooner, so an analyst's next request
//! with the same token costs a lookup rather than an RSA verification. A key withdrawn from
//! the published set therefore stops being accepted within that time, not at once.
//!
//! We use `jsonwebtoken` for the JOSE work (header parsing, RS256 verification, time and
//! audience checks) and keep the Entra-specific rules here: the algorithm allow-list, the
//! issuer (with the `{tenantid}` template of multi-tenant authorities), `tid`/`oid` and
//! `roles`.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::auth::{AuthError, Caller};
use crate::config::EntraConfig;
use crate::{Error, Result};

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(5 * 60);
/// How long a metadata or keys request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a verified token is accepted without checking its signature again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(5 * 60);
/// The most verified tokens remembered; past it, expired ones are forgotten, then all.
const MAX_VERIFIED: usize = 4096;

/// Validates Entra ID tokens for one authority (see the module docs).
#[derive(Debug)]
pub struct EntraValidator {
    config: EntraConfig,
    http: reqwest::Client,
    keys: RwLock<Option<KeySet>>,
    /// When an unknown key id last caused a refresh.
    last_unknown_refresh: Mutex<Option<Instant>>,
    /// Tokens that passed every check, by their text (see the module docs).
    verified: std::sync::Mutex<HashMap<String, Verified>>,
}

/// A token that passed every check.
#[derive(Debug)]
struct Verified {
    caller: Caller,
    /// Its `exp`, in seconds since the Unix epoch.
    exp: u64,
    checked: Instant,
}

impl Verified {
    fn still_good(&self, now_unix: u64) -> bool {
        self.checked.elapsed() < VERIFIED_TTL
            && now_unix < self.exp.saturating_add(LEEWAY.as_secs())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct KeySet {
    issuer: String,
    keys: HashMap<String, DecodingKey>,
    fetched: Instant,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("issuer", &self.issuer)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// The claims we read; `aud`, `exp` and `nbf` are checked by `jsonwebtoken`.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    exp: u64,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl EntraValidator {
    /// A validator for `config`. Nothing is fetched until the first token arrives.
    ///
    /// # Errors
    /// [`Error::Client`] when the HTTP client cannot be built; [`Error::Config`] when no JWT
    /// crypto provider is compiled in.
    pub fn new(config: EntraConfig) -> Result<Self> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(Error::Config(
                "no JWT crypto provider is compiled in (jsonwebtoken's rust_crypto feature)"
                    .to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(Error::Client)?;
        Ok(Self {
            config,
            http,
            keys: RwLock::new(None),
            last_unknown_refresh: Mutex::new(None),
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The caller `token` names.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] naming the failed check, [`AuthError::MissingRole`], or
    /// [`AuthError::Unavailable`] when the keys cannot be fetched.
    pub async fn validate(&self, token: &str) -> Result<Caller, AuthError> {
        if let Some(caller) = self.remembered(token) {
            return Ok(caller);
        }
        let (caller, exp) = self.verify(token).await?;
        self.remember(token, &caller, exp);
        Ok(caller)
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verified>> {
        // Every change is one map operation, so a poisoned lock still holds a usable map.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remembered(&self, token: &str) -> Option<Caller> {
        let mut verified = self.verified();
        let hit = verified.get(token)?;
        if hit.still_good(unix_now()) {
            return Some(hit.caller.clone());
        }
        verified.remove(token);
        None
    }

    fn remember(&self, token: &str, caller: &Caller, exp: u64) {
        let mut verified = self.verified();
        if verified.len() >= MAX_VERIFIED {
            let now = unix_now();
            verified.retain(|_, v| v.still_good(now));
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(
            token.to_owned(),
            Verified {
                caller: caller.clone(),
                exp,
                checked: Instant::now(),
            },
        );
    }

    /// Every check of the module docs, on a token not remembered; the caller and `exp`.
    async fn verify(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        // `alg: none` and unknown algorithms fail here already: jsonwebtoken knows no `none`.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("not a signed JWT".to_owned()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted (RS256 only)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the token names no key id".to_owned()))?;
        let (key, issuer) = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            AuthError::Invalid(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not yet valid",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                    _ => "malformed",
                }
                .to_owned(),
            )
        })?;
        let claims = data.claims;
        let tid = claims
            .tid
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Invalid("no tid claim".to_owned()))?;
        let oid = claims
            .oid
            .filter(|o| !o.is_empty())
            .ok_or_else(|| AuthError::Invalid("no oid claim".to_owned()))?;
        // Multi-tenant authorities publish an issuer template: substitute the token's own
        // tenant, which must be a GUID, and require an exact match (reference §12).
        let expected = if issuer.contains("{tenantid}") {
            if !is_guid(&tid) {
                return Err(AuthError::Invalid("tid is not a GUID".to_owned()));
            }
            issuer.replace("{tenantid}", &tid)
        } else {
            issuer
        };
        if claims.iss != expected {
            return Err(AuthError::Invalid("wrong issuer".to_owned()));
        }
        if !claims.roles.contains(&self.config.role) {
            return Err(AuthError::MissingRole(self.config.role.clone()));
        }
        Ok((
            Caller {
                tenant: tid,
                object: oid,
            },
            claims.exp,
        ))
    }

    /// The key `kid` names and the issuer, refreshing the set when it is old or, rate-limited,
    /// when it lacks `kid`.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, String), AuthError> {
        {
            let keys = self.keys.read().await;
            if let Some(set) = keys.as_ref()
                && set.fetched.elapsed() < self.config.max_key_age
            {
                if let Some(key) = set.keys.get(kid) {
                    return Ok((key.clone(), set.issuer.clone()));
                }
                let mut last = self.last_unknown_refresh.lock().await;
                if last.is_some_and(|t| t.elapsed() < self.config.min_key_refresh) {
                    return Err(AuthError::Invalid("unknown signing key".to_owned()));
                }
                *last = Some(Instant::now());
            }
        }
        let mut keys = self.keys.write().await;
        // Another request may have refreshed while this one waited.
        let fresh = keys.as_ref().is_some_and(|s| {
            s.fetched.elapsed() < Duration::from_secs(1) && s.keys.contains_key(kid)
        });
        if !fresh {
            let set = self.fetch().await.map_err(|e| {
                tracing::warn!(authority = %self.config.authority, error = %e, "fetching the sign-in keys failed");
                AuthError::Unavailable
            })?;
            tracing::info!(authority = %self.config.authority, keys = set.keys.len(), "sign-in keys fetched");
            *keys = Some(set);
        }
        let set = keys.as_ref().ok_or(AuthError::Unavailable)?;
        match set.keys.get(kid) {
            Some(key) => Ok((key.clone(), set.issuer.clone())),
            None => Err(AuthError::Invalid("unknown signing key".to_owned())),
        }
    }

    async fn fetch(&self) -> std::result::Result<KeySet, String> {
        let url = format!("{}/.well-known/openid-configuration", self.config.authority);
        let metadata: Metadata = self.get_json(&url).await?;
        let jwks: JwkSet = self.get_json(&metadata.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            // Keys of other kinds (or unusable ones) are skipped; a token naming them fails as
            // "unknown signing key".
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), key);
            }
        }
        Ok(KeySet {
            issuer: metadata.issuer,
            keys,
            fetched: Instant::now(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> std::result::Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| format!("{url}: unreadable answer: {e}"))
    }
}

/// Whether `s` looks like a GUID (8-4-4-4-12 hex digits).
fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab"));
        assert!(!is_guid("common"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_verified_token_is_remembered_until_it_expires_or_five_minutes_pass() {
        let v = EntraValidator::new(EntraConfig::new(
            "http://127.0.0.1:9",
            vec!["api://pim".into()],
            "PIM.Auditor",
        ))
        .unwrap();
        let alice = Caller {
            tenant: "t".into(),
            object: "alice".into(),
        };
        let now = unix_now();
        v.remember("token-a", &alice, now + 3600);
        // Nothing can be fetched from port 9: the answer comes from memory.
        assert_eq!(v.validate("token-a").await, Ok(alice.clone()));
        assert!(v.remembered("token-b").is_none(), "only the exact text");

        // Past `exp` and its leeway: forgotten, and checked again (which fails here).
        v.remember("token-old", &alice, now - LEEWAY.as_secs() - 1);
        assert!(v.remembered("token-old").is_none());
        assert!(v.validate("token-old").await.is_err());

        tokio::time::advance(VERIFIED_TTL).await;
        assert!(
            v.remembered("token-a").is_none(),
            "re-verified every five minutes"
        );
        assert!(v.verified().is_empty());

        for n in 0..MAX_VERIFIED + 10 {
            v.remember(&format!("t{n}"), &alice, now + 3600);
        }
        assert!(v.verified().len() <= MAX_VERIFIED, "bounded");
    }

    #[tokio::test]
    async fn alg_none_and_hs256_are_refused_before_any_key_is_fetched() {
        let v = EntraValidator::new(EntraConfig::new(
            "http://127.0.0.1:9",
            vec!["api://pim".into()],
            "PIM.Auditor",
        ))
        .unwrap();
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64("{}"));
        assert!(matches!(
            v.validate(&none).await,
            Err(AuthError::Invalid(_))
        ));
        let hs = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"HS256","typ":"JWT","kid":"k"}"#),
            b64("{}")
        );
        let e = v.validate(&hs).await.unwrap_err();
        assert_eq!(
            e,
            AuthError::Invalid("algorithm HS256 is not accepted (RS256 only)".into())
        );
        assert!(v.keys.read().await.is_none(), "nothing fetched");
    }
}
