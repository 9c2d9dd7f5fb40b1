//! What a server is configured with: the sign-in and the limits. Built from
//! [`pim_core::config::ServeSettings`] (the `PIM_SERVE_*` variables) or by hand.

use std::net::SocketAddr;
use std::time::Duration;

use pim_core::config::{ServeAuth, ServeSettings};

use crate::{Error, Result};

/// How callers sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// No sign-in: every caller is the one local user. Only on a loopback listen address.
    None,
    /// Entra ID tokens (see [`EntraConfig`]).
    Entra(EntraConfig),
}

/// What an Entra ID token must show (reference §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    /// The OIDC authority, e.g. `https://login.microsoftonline.com/{tenant}/v2.0`; its
    /// `/.well-known/openid-configuration` names the issuer and the keys.
    pub authority: String,
    /// The accepted `aud` values (the app's client id, its `api://` URI).
    pub audiences: Vec<String>,
    /// The app role required in `roles`.
    pub role: String,
    /// Shortest time between two key refreshes caused by an unknown key id, so that tokens
    /// with made-up `kid`s cannot make the server hammer the authority.
    pub min_key_refresh: Duration,
    /// Keys older than this are fetched again before use (the reference says daily).
    pub max_key_age: Duration,
}

impl EntraConfig {
    /// A configuration with the default refresh intervals (5 minutes, 24 hours).
    pub fn new(
        authority: impl Into<String>,
        audiences: Vec<String>,
        role: impl Into<String>,
    ) -> Self {
        Self {
            authority: authority.into().trim_end_matches('/').to_owned(),
            audiences,
            role: role.into(),
            min_key_refresh: Duration::from_secs(5 * 60),
            max_key_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Every limit the server enforces; each one is configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Open sessions per user (429 above).
    pub sessions_per_user: usize,
    /// Messages per user in any 60 seconds (429 with `Retry-After` above).
    pub messages_per_minute: usize,
    /// A session unused this long is dropped.
    pub idle: Duration,
    /// Open sessions in all (503 with `Retry-After` above).
    pub max_sessions: usize,
    /// Longest time one request may take before it is answered 408 (a scan with its model
    /// stage included).
    pub request_timeout: Duration,
    /// Messages kept per session for `GET /api/sessions/{id}` (the oldest go first).
    pub transcript_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let s = ServeSettings::default();
        Self {
            max_body_bytes: s.max_body_bytes,
            sessions_per_user: s.sessions_per_user,
            messages_per_minute: s.messages_per_minute,
            idle: s.idle,
            max_sessions: s.max_sessions,
            request_timeout: Duration::from_secs(15 * 60),
            transcript_messages: 400,
        }
    }
}

/// A server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// How callers sign in.
    pub auth: AuthConfig,
    /// The limits.
    pub limits: Limits,
}

impl ServeConfig {
    /// The configuration the `PIM_SERVE_*` settings describe.
    ///
    /// # Errors
    /// [`Error::Config`] for Entra sign-in without an authority (or tenant) or an audience.
    pub fn from_settings(s: &ServeSettings) -> Result<Self> {
        let auth = match s.auth {
            ServeAuth::None => AuthConfig::None,
            ServeAuth::Entra => {
                let authority = s.authority().ok_or_else(|| {
                    Error::Config(
                        "PIM_SERVE_TENANT_ID (or PIM_SERVE_AUTHORITY) is required for Entra sign-in"
                            .to_owned(),
                    )
                })?;
                if s.audiences.is_empty() {
                    return Err(Error::Config(
                        "PIM_SERVE_AUDIENCE is required for Entra sign-in: the app's client id and/or api:// URI"
                            .to_owned(),
                    ));
                }
                AuthConfig::Entra(EntraConfig::new(authority, s.audiences.clone(), &s.role))
            }
        };
        let limits = Limits {
            max_body_bytes: s.max_body_bytes,
            sessions_per_user: s.sessions_per_user,
            messages_per_minute: s.messages_per_minute,
            idle: s.idle,
            max_sessions: s.max_sessions,
            ..Limits::default()
        };
        Ok(Self { auth, limits })
    }

    /// Refuses what is unsafe on `listen`: no sign-in, or a plain-HTTP authority, anywhere but
    /// loopback.
    ///
    /// # Errors
    /// [`Error::Config`] saying which.
    pub fn check(&self, listen: SocketAddr) -> Result<()> {
        match &self.auth {
            AuthConfig::None if !listen.ip().is_loopback() => Err(Error::Config(format!(
                "PIM_SERVE_AUTH=none is refused on {listen}: without sign-in the agent may only listen on a loopback address"
            ))),
            AuthConfig::Entra(entra) => {
                let lower = entra.authority.to_ascii_lowercase();
                if let Some(rest) = lower.strip_prefix("http://") {
                    let host = rest.split('/').next().unwrap_or("");
                    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                    let loopback = host == "localhost"
                        || host
                            .trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    if !loopback || !listen.ip().is_loopback() {
                        return Err(Error::Config(
                            "an http:// authority is accepted only on loopback (tests); use https://"
                                .to_owned(),
                        ));
                    }
                } else if !lower.starts_with("https://") {
                    return Err(Error::Config(
                        "PIM_SERVE_AUTHORITY must be an https:// URL".to_owned(),
                    ));
                }
                Ok(())
            }
            AuthConfig::None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_sign_in_only_on_loopback() {
        let c = ServeConfig {
            auth: AuthConfig::None,
            limits: Limits::default(),
        };
        assert!(c.check(addr("127.0.0.1:8080")).is_ok());
        assert!(c.check(addr("[::1]:8080")).is_ok());
        let e = c.check(addr("0.0.0.0:8080")).unwrap_err().to_string();
        assert!(e.contains("PIM_SERVE_AUTH=none"), "{e}");
    }

    #[test]
    fn plain_http_authority_only_on_loopback() {
        let entra = |a: &str| ServeConfig {
            auth: AuthConfig::Entra(EntraConfig::new(a, vec!["api://x".into()], "PIM.Auditor")),
            limits: Limits::default(),
        };
        assert!(
            entra("http://127.0.0.1:9/t/v2.0")
                .check(addr("127.0.0.1:1"))
                .is_ok()
        );
        assert!(
            entra("http://localhost:9/t")
                .check(addr("127.0.0.1:1"))
                .is_ok()
        );
        assert!(
            entra("http://127.0.0.1:9/t")
                .check(addr("0.0.0.0:1"))
                .is_err()
        );
        assert!(
            entra("http://login.example/t")
                .check(addr("127.0.0.1:1"))
                .is_err()
        );
        assert!(
            entra("ftp://login.example/t")
                .check(addr("127.0.0.1:1"))
                .is_err()
        );
        assert!(
            entra("https://login.microsoftonline.com/t/v2.0")
                .check(addr("0.0.0.0:1"))
                .is_ok()
        );
    }

    #[test]
    fn settings_become_a_configuration() {
        let mut s = ServeSettings::default();
        assert!(ServeConfig::from_settings(&s).is_err(), "no tenant");
        s.tenant_id = Some("t".into());
        assert!(ServeConfig::from_settings(&s).is_err(), "no audience");
        s.audiences = vec!["api://pim".into()];
        s.sessions_per_user = 2;
        let c = ServeConfig::from_settings(&s).unwrap();
        assert_eq!(c.limits.sessions_per_user, 2);
        let AuthConfig::Entra(e) = c.auth else {
            panic!("entra")
        };
        assert_eq!(e.authority, "https://login.microsoftonline.com/t/v2.0");
        assert_eq!(e.role, "PIM.Auditor");
    }
}
