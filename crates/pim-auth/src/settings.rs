//! What the chain is allowed to know about the environment: an explicit snapshot.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use pim_http::secret::Redacted;

use crate::{AuthMethod, Error};

/// The environment variables [`AuthSettings::from_env_map`] keeps. Everything else in the map
/// is dropped, so a snapshot of the whole process environment can be passed in.
pub const RELEVANT_VARS: [&str; 12] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    PIM_AUTH_VAR,
];

/// The variable that pins one method (same values as `--auth`).
pub const PIM_AUTH_VAR: &str = "PIM_AUTH";

/// Values that are secrets and must never be printed.
const SECRET_VARS: [&str; 3] = ["AZURE_CLIENT_SECRET", "IDENTITY_HEADER", "MSI_SECRET"];

/// The default for [`AuthSettings::imds_probe_timeout`].
pub const DEFAULT_IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Azure Instance Metadata Service address that the managed-identity probe connects to.
pub const IMDS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80));

/// Configuration of the credential chain. The library never reads the process environment:
/// the binary passes a snapshot in [`AuthSettings::env`].
///
/// One caveat: `azure_identity`'s managed identity credential reads `IDENTITY_ENDPOINT` and
/// `IDENTITY_HEADER` from the real process environment itself, so `env` must be a snapshot of
/// the real environment (not an edited copy) for the managed-identity path to agree with it.
#[derive(Clone)]
pub struct AuthSettings {
    /// Try only this method (from `--auth` / `PIM_AUTH`); `None` tries the whole chain.
    pub pinned: Option<AuthMethod>,
    /// Snapshot of the environment variables in [`RELEVANT_VARS`]. Empty values count as unset.
    pub env: BTreeMap<String, String>,
    /// How long each step of the IMDS probe may take before managed identity is skipped
    /// (default 2 s): the TCP connect, then the answer to a token request without the
    /// `Metadata: true` header, which only Azure IMDS refuses with its 400. Without the probe a
    /// laptop, or a VM of another cloud whose metadata service answers on 169.254.169.254,
    /// would wait about 72 s for `azure_identity`'s IMDS retries.
    pub imds_probe_timeout: Duration,
    /// Where the IMDS probe connects (default [`IMDS_ADDR`]); tests point it at loopback
    /// fakes. `azure_identity` itself always calls 169.254.169.254.
    pub imds_probe_addr: SocketAddr,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            pinned: None,
            env: BTreeMap::new(),
            imds_probe_timeout: DEFAULT_IMDS_PROBE_TIMEOUT,
            imds_probe_addr: IMDS_ADDR,
        }
    }
}

impl AuthSettings {
    /// Builds settings from an environment snapshot such as `std::env::vars()`: keeps the
    /// variables in [`RELEVANT_VARS`] (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`, `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`,
    /// `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `IDENTITY_SERVER_THUMBPRINT`, `MSI_ENDPOINT`,
    /// `MSI_SECRET`, `IMDS_ENDPOINT`, `PIM_AUTH`) and reads the pin from `PIM_AUTH`.
    /// A `--auth` flag should overwrite [`AuthSettings::pinned`] afterwards.
    ///
    /// # Errors
    /// [`Error::UnknownMethod`] when `PIM_AUTH` names no known method.
    pub fn from_env_map<I, K, V>(map: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> = map
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| RELEVANT_VARS.contains(&k.as_str()))
            .collect();
        let pinned = match env.get(PIM_AUTH_VAR) {
            Some(value) => AuthMethod::parse_pin(value)?,
            None => None,
        };
        Ok(Self {
            pinned,
            env,
            ..Self::default()
        })
    }

    /// The value of `name`, if set and not blank.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: BTreeMap<&str, &dyn fmt::Debug> = self
            .env
            .iter()
            .map(|(k, v)| {
                let shown: &dyn fmt::Debug = if SECRET_VARS.contains(&k.as_str()) {
                    &Redacted
                } else {
                    v
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("AuthSettings")
            .field("pinned", &self.pinned)
            .field("env", &env)
            .field("imds_probe_timeout", &self.imds_probe_timeout)
            .field("imds_probe_addr", &self.imds_probe_addr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_map_keeps_only_relevant_variables_and_reads_the_pin() {
        let settings = AuthSettings::from_env_map([
            ("AZURE_TENANT_ID", "t"),
            ("HOME", "/root"),
            ("PIM_AUTH", "msi"),
        ])
        .unwrap();
        assert_eq!(settings.pinned, Some(AuthMethod::ManagedIdentity));
        assert_eq!(settings.var("AZURE_TENANT_ID"), Some("t"));
        assert!(!settings.env.contains_key("HOME"));
        assert_eq!(settings.imds_probe_timeout, Duration::from_secs(2));
        assert_eq!(settings.imds_probe_addr, IMDS_ADDR);
    }

    #[test]
    fn from_env_map_rejects_an_unknown_pin() {
        let err = AuthSettings::from_env_map([("PIM_AUTH", "password")]).unwrap_err();
        assert!(matches!(err, Error::UnknownMethod(_)));
    }

    #[test]
    fn blank_values_count_as_unset() {
        let settings = AuthSettings::from_env_map([("AZURE_CLIENT_ID", "  ")]).unwrap();
        assert_eq!(settings.var("AZURE_CLIENT_ID"), None);
    }

    #[test]
    fn debug_redacts_secret_values() {
        let settings = AuthSettings::from_env_map([
            ("AZURE_CLIENT_SECRET", "sp-secret-value"),
            ("IDENTITY_HEADER", "identity-header-value"),
            ("MSI_SECRET", "msi-secret-value"),
            ("AZURE_CLIENT_ID", "client-id-1"),
        ])
        .unwrap();
        let debug = format!("{settings:?}");
        for secret in [
            "sp-secret-value",
            "identity-header-value",
            "msi-secret-value",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("client-id-1"), "{debug}");
        assert!(
            debug.contains(r#""AZURE_CLIENT_SECRET": [REDACTED]"#),
            "{debug}"
        );
    }
}
