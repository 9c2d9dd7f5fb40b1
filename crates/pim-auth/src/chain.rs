//! The credential chain: the equivalent of `DefaultAzureCredential`, which `azure_identity` 1.0
//! no longer has.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::imds::ImdsProbe;
use crate::{AuthMethod, AuthSettings, CachedCredential, Error};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureDeveloperCliCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

/// The longest failure reason kept per attempt; Entra error descriptions can run long.
const MAX_REASON_CHARS: usize = 400;

const SP_VARS: [&str; 3] = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"];

/// One method the chain tried (or skipped), why it did not produce a token, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The method tried.
    pub method: AuthMethod,
    /// Human description, e.g. "managed identity (IMDS)".
    pub label: String,
    /// Why it failed or was skipped, on one line (never contains a secret).
    pub reason: String,
    /// What the user can do about it, e.g. "run `az login`".
    pub remedy: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "- {} [{}]: {}; fix: {}",
            self.label, self.method, self.reason, self.remedy
        )
    }
}

/// Builds the credential chain described by `settings`, wrapped in a per-scope token cache.
///
/// Chain order: environment service principal → workload identity → managed identity →
/// Azure CLI → Azure Developer CLI. The first credential that returns a token is remembered and
/// used for every later call. With [`AuthSettings::pinned`] only that method is tried.
///
/// # Errors
/// Only when a method is pinned: [`Error::NotConfigured`] when its variables are missing or
/// incomplete (the message names them), [`Error::Setup`] when `azure_identity` rejects the
/// configuration (e.g. a non-https `AZURE_AUTHORITY_HOST`). Unpinned, such methods become
/// skipped attempts listed in the eventual [`Error::AllFailed`].
pub fn credential(settings: &AuthSettings) -> Result<Arc<ChainCredential>, Error> {
    let methods: Vec<AuthMethod> = match settings.pinned {
        Some(method) => vec![method],
        None => AuthMethod::ALL.to_vec(),
    };
    let mut slots = Vec::with_capacity(methods.len());
    for method in methods {
        match plan(method, settings) {
            Ok(candidate) => slots.push(Slot::Ready(candidate)),
            Err(skip) if settings.pinned.is_some() => return Err(skip.into_error()),
            Err(skip) => slots.push(Slot::Skipped(skip.attempt)),
        }
    }
    let chain = Arc::new(Chain {
        slots,
        pinned: settings.pinned.is_some(),
        selected: OnceLock::new(),
    });
    let cache = CachedCredential::new(chain.clone()).with_name("credential chain");
    Ok(Arc::new(ChainCredential { chain, cache }))
}

/// The credential returned by [`credential`]: tries the configured methods in order, remembers
/// the first that works, and caches tokens per scope. Its `get_token` error, when every method
/// fails, wraps an [`Error::AllFailed`] (reach it with `azure_core::Error::downcast_ref`).
pub struct ChainCredential {
    chain: Arc<Chain>,
    cache: CachedCredential,
}

impl ChainCredential {
    /// What supplies the tokens, for a preflight check: the selected (or pinned) method, e.g.
    /// "managed identity (App Service)", or the list of methods still to be tried.
    pub fn describe(&self) -> String {
        if let Some(candidate) = self.chain.selected_candidate() {
            return candidate.label.clone();
        }
        let ready: Vec<&str> = self
            .chain
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Ready(c) => Some(c.label.as_str()),
                Slot::Skipped(_) => None,
            })
            .collect();
        if self.chain.pinned {
            return ready.join(", ");
        }
        format!("credential chain: {}", ready.join(" → "))
    }

    /// The method that supplied a token, once one has.
    pub fn selected(&self) -> Option<AuthMethod> {
        self.chain.selected_candidate().map(|c| c.method)
    }

    /// The methods skipped at construction because they are not configured, with reasons.
    pub fn skipped(&self) -> Vec<Attempt> {
        self.chain
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Skipped(attempt) => Some(attempt.clone()),
                Slot::Ready(_) => None,
            })
            .collect()
    }
}

impl fmt::Debug for ChainCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainCredential")
            .field("describe", &self.describe())
            .field("pinned", &self.chain.pinned)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ChainCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.cache.get_token(scopes, options).await
    }
}

enum Slot {
    Ready(Candidate),
    Skipped(Attempt),
}

struct Candidate {
    method: AuthMethod,
    label: String,
    remedy: String,
    credential: Arc<dyn TokenCredential>,
    probe: Option<ImdsProbe>,
}

impl Candidate {
    fn attempt(&self, reason: String) -> Attempt {
        Attempt {
            method: self.method,
            label: self.label.clone(),
            reason,
            remedy: self.remedy.clone(),
        }
    }
}

struct Chain {
    slots: Vec<Slot>,
    pinned: bool,
    selected: OnceLock<usize>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("pinned", &self.pinned)
            .field("selected", &self.selected_candidate().map(|c| &c.label))
            .finish_non_exhaustive()
    }
}

impl Chain {
    fn selected_candidate(&self) -> Option<&Candidate> {
        let index = *self.selected.get()?;
        match self.slots.get(index)? {
            Slot::Ready(candidate) => Some(candidate),
            Slot::Skipped(_) => None,
        }
    }

    async fn try_candidate(
        candidate: &Candidate,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Result<AccessToken, Attempt> {
        if let Some(probe) = &candidate.probe {
            probe
                .check()
                .await
                .map_err(|reason| candidate.attempt(reason))?;
        }
        candidate
            .credential
            .get_token(scopes, options)
            .await
            .map_err(|err| candidate.attempt(one_line(&err.to_string())))
    }

    async fn get_token_detailed(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Result<AccessToken, Error> {
        let scope = one_line(&scopes.join(" "));
        if let Some(candidate) = self.selected_candidate() {
            return Self::try_candidate(candidate, scopes, options)
                .await
                .map_err(|attempt| Error::TokenFailed {
                    scope: scope.clone(),
                    attempt,
                });
        }
        let mut attempts = Vec::with_capacity(self.slots.len());
        for (index, slot) in self.slots.iter().enumerate() {
            let candidate = match slot {
                Slot::Ready(candidate) => candidate,
                Slot::Skipped(attempt) => {
                    attempts.push(attempt.clone());
                    continue;
                }
            };
            match Self::try_candidate(candidate, scopes, options.clone()).await {
                Ok(token) => {
                    // Several scopes may race through the chain on first use; the first winner
                    // stays selected, which is fine since each of them works.
                    let _ = self.selected.set(index);
                    tracing::info!(
                        method = %candidate.label,
                        scope = %scope,
                        expires_on = %token.expires_on,
                        "azure credential selected"
                    );
                    return Ok(token);
                }
                Err(attempt) => {
                    tracing::debug!(
                        method = %attempt.label,
                        reason = %attempt.reason,
                        "azure credential attempt failed"
                    );
                    attempts.push(attempt);
                }
            }
        }
        if self.pinned
            && attempts.len() == 1
            && let Some(attempt) = attempts.pop()
        {
            return Err(Error::TokenFailed { scope, attempt });
        }
        Err(Error::AllFailed { scope, attempts })
    }
}

#[async_trait::async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.get_token_detailed(scopes, options)
            .await
            .map_err(|err| azure_core::Error::new(ErrorKind::Credential, err))
    }
}

/// Why a method cannot even be tried with these settings.
struct Skip {
    attempt: Attempt,
    /// `false` when azure_identity rejected values that are present.
    missing_config: bool,
}

impl Skip {
    fn into_error(self) -> Error {
        let Attempt {
            method,
            label,
            reason,
            remedy,
        } = self.attempt;
        if self.missing_config {
            Error::NotConfigured {
                method,
                reason,
                remedy,
            }
        } else {
            Error::Setup {
                method,
                label,
                reason,
                remedy,
            }
        }
    }
}

fn skip(method: AuthMethod, label: &str, reason: String, remedy: String, missing: bool) -> Skip {
    Skip {
        attempt: Attempt {
            method,
            label: label.to_owned(),
            reason,
            remedy,
        },
        missing_config: missing,
    }
}

fn plan(method: AuthMethod, settings: &AuthSettings) -> Result<Candidate, Skip> {
    match method {
        AuthMethod::Environment => plan_service_principal(settings),
        AuthMethod::WorkloadIdentity => plan_workload_identity(settings),
        AuthMethod::ManagedIdentity => plan_managed_identity(settings),
        AuthMethod::AzureCli => {
            let label = AuthMethod::AzureCli.label();
            let remedy = "install the Azure CLI and run `az login`";
            let credential = AzureCliCredential::new(None).map_err(|err| {
                skip(
                    method,
                    label,
                    one_line(&err.to_string()),
                    remedy.into(),
                    false,
                )
            })?;
            Ok(ready(method, label, remedy, credential))
        }
        AuthMethod::AzureDeveloperCli => {
            let label = AuthMethod::AzureDeveloperCli.label();
            let remedy = "install the Azure Developer CLI and run `azd auth login`";
            let credential = AzureDeveloperCliCredential::new(None).map_err(|err| {
                skip(
                    method,
                    label,
                    one_line(&err.to_string()),
                    remedy.into(),
                    false,
                )
            })?;
            Ok(ready(method, label, remedy, credential))
        }
    }
}

fn ready(
    method: AuthMethod,
    label: &str,
    remedy: &str,
    credential: Arc<dyn TokenCredential>,
) -> Candidate {
    Candidate {
        method,
        label: label.to_owned(),
        remedy: remedy.to_owned(),
        credential,
        probe: None,
    }
}

/// "A, B and C" for messages naming variables.
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn not_set(names: &[&str]) -> String {
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb} not set", join_names(names))
}

/// Client options that pin the authority host from the snapshot, so azure_identity does not
/// read `AZURE_AUTHORITY_HOST` from the process environment on its own.
fn client_options(settings: &AuthSettings) -> ClientOptions {
    let cloud = match settings.var("AZURE_AUTHORITY_HOST") {
        Some(host) => {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = if host.contains("://") {
                host.to_owned()
            } else {
                format!("https://{host}")
            };
            CloudConfiguration::Custom(custom)
        }
        None => CloudConfiguration::AzurePublic,
    };
    ClientOptions {
        cloud: Some(Arc::new(cloud)),
        ..ClientOptions::default()
    }
}

fn plan_service_principal(settings: &AuthSettings) -> Result<Candidate, Skip> {
    let method = AuthMethod::Environment;
    let label = method.label();
    let missing: Vec<&str> = SP_VARS
        .iter()
        .copied()
        .filter(|name| settings.var(name).is_none())
        .collect();
    let (Some(tenant), Some(client), Some(secret)) = (
        settings.var("AZURE_TENANT_ID"),
        settings.var("AZURE_CLIENT_ID"),
        settings.var("AZURE_CLIENT_SECRET"),
    ) else {
        let reason = if missing.len() == SP_VARS.len() {
            format!("not configured: {}", not_set(&missing))
        } else {
            format!("incomplete: {}", not_set(&missing))
        };
        let remedy = format!("set {} for a service principal", join_names(&missing));
        return Err(skip(method, label, reason, remedy, true));
    };
    let remedy = "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET \
                  (an expired or wrong secret is the usual cause)";
    let options = ClientSecretCredentialOptions {
        client_options: client_options(settings),
    };
    let credential = ClientSecretCredential::new(
        tenant,
        client.to_owned(),
        Secret::new(secret.to_owned()),
        Some(options),
    )
    .map_err(|err| {
        let remedy = "check AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and \
                      AZURE_AUTHORITY_HOST (an https URL)";
        skip(
            method,
            label,
            one_line(&err.to_string()),
            remedy.into(),
            false,
        )
    })?;
    Ok(ready(method, label, remedy, credential))
}

fn plan_workload_identity(settings: &AuthSettings) -> Result<Candidate, Skip> {
    let method = AuthMethod::WorkloadIdentity;
    let label = method.label();
    let remedy = "enable Entra workload identity for the pod's service account \
                  (it sets AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID and AZURE_CLIENT_ID)";
    let Some(token_file) = settings.var("AZURE_FEDERATED_TOKEN_FILE") else {
        let reason = format!(
            "not configured: {}",
            not_set(&["AZURE_FEDERATED_TOKEN_FILE"])
        );
        return Err(skip(method, label, reason, remedy.into(), true));
    };
    let (Some(tenant), Some(client)) = (
        settings.var("AZURE_TENANT_ID"),
        settings.var("AZURE_CLIENT_ID"),
    ) else {
        let missing: Vec<&str> = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"]
            .into_iter()
            .filter(|name| settings.var(name).is_none())
            .collect();
        let reason = format!("incomplete: {}", not_set(&missing));
        let remedy = format!("set {}", join_names(&missing));
        return Err(skip(method, label, reason, remedy, true));
    };
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options(settings),
        },
        client_id: Some(client.to_owned()),
        tenant_id: Some(tenant.to_owned()),
        token_file_path: Some(PathBuf::from(token_file)),
    };
    let credential = WorkloadIdentityCredential::new(Some(options)).map_err(|err| {
        skip(
            method,
            label,
            one_line(&err.to_string()),
            remedy.into(),
            false,
        )
    })?;
    Ok(ready(method, label, remedy, credential))
}

/// Mirrors azure_identity 1.0's own source selection (`get_source`), so that what the chain
/// describes and probes is what azure_identity will actually call.
fn plan_managed_identity(settings: &AuthSettings) -> Result<Candidate, Skip> {
    let method = AuthMethod::ManagedIdentity;
    let has = |name: &str| settings.var(name).is_some();
    let unsupported = if has("IDENTITY_ENDPOINT") && has("IDENTITY_HEADER") {
        has("IDENTITY_SERVER_THUMBPRINT").then_some("Service Fabric")
    } else if has("IDENTITY_ENDPOINT") && has("IMDS_ENDPOINT") {
        Some("Azure Arc")
    } else if !has("IDENTITY_ENDPOINT") && has("MSI_ENDPOINT") {
        Some(if has("MSI_SECRET") {
            "Azure ML"
        } else {
            "Cloud Shell"
        })
    } else {
        None
    };
    if let Some(source) = unsupported {
        let label = format!("managed identity ({source})");
        let reason = format!("{source} managed identity is not supported by azure_identity 1.0");
        let remedy = "use another method (e.g. a service principal or `az login`)";
        return Err(skip(method, &label, reason, remedy.into(), true));
    }
    let app_service = has("IDENTITY_ENDPOINT") && has("IDENTITY_HEADER");
    let source = if app_service { "App Service" } else { "IMDS" };
    let user_assigned = settings.var("AZURE_CLIENT_ID");
    let label = match user_assigned {
        Some(_) => format!("managed identity ({source}, user-assigned)"),
        None => format!("managed identity ({source})"),
    };
    let remedy = if app_service {
        "assign a managed identity to the App Service and grant it access"
    } else {
        "assign a managed identity to the Azure VM running this tool, or choose another method"
    };
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: user_assigned.map(|id| UserAssignedId::ClientId(id.to_owned())),
        ..ManagedIdentityCredentialOptions::default()
    };
    let credential = ManagedIdentityCredential::new(Some(options)).map_err(|err| {
        skip(
            method,
            &label,
            one_line(&err.to_string()),
            remedy.into(),
            false,
        )
    })?;
    let probe = (!app_service)
        .then(|| ImdsProbe::new(settings.imds_probe_addr, settings.imds_probe_timeout));
    Ok(Candidate {
        method,
        label,
        remedy: remedy.to_owned(),
        credential,
        probe,
    })
}

/// Collapses an error message to one bounded line: attempts are listed one per line and the
/// text may come from a remote server.
fn one_line(text: &str) -> String {
    pim_domain::text::log_field(text, MAX_REASON_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};
    use tokio::net::TcpStream;

    const SCOPE: &str = "https://api.loganalytics.io/.default";

    /// TEST-NET-1 (RFC 5737): never routed, so a connect either hangs or fails at once; either
    /// way it exercises the probe without touching a real metadata service.
    const BLACKHOLE: &str = "192.0.2.1:80";

    fn settings(pairs: &[(&str, &str)], pinned: Option<AuthMethod>) -> AuthSettings {
        AuthSettings {
            pinned,
            env: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            imds_probe_timeout: Duration::from_millis(300),
            imds_probe_addr: BLACKHOLE.parse().unwrap(),
        }
    }

    fn chain_error(err: &azure_core::Error) -> &Error {
        err.downcast_ref::<Error>()
            .unwrap_or_else(|| panic!("not a pim_auth error: {err}"))
    }

    #[tokio::test]
    async fn nothing_configured_lists_every_attempt_with_a_remedy_quickly() {
        let cred = credential(&settings(&[], None)).unwrap();
        assert_eq!(
            cred.describe(),
            "credential chain: managed identity (IMDS) → Azure CLI → Azure Developer CLI"
        );
        let started = Instant::now();
        let err = cred.get_token(&[SCOPE], None).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

        let Error::AllFailed { scope, attempts } = chain_error(&err) else {
            panic!("expected AllFailed, got {err}");
        };
        assert_eq!(scope, SCOPE);
        let methods: Vec<AuthMethod> = attempts.iter().map(|a| a.method).collect();
        assert_eq!(methods, AuthMethod::ALL.to_vec());
        assert!(attempts[0].reason.contains("AZURE_CLIENT_SECRET"));
        assert!(attempts[0].remedy.contains("AZURE_CLIENT_SECRET"));
        assert!(attempts[1].reason.contains("AZURE_FEDERATED_TOKEN_FILE"));
        assert!(
            attempts[2].reason.contains("192.0.2.1:80"),
            "{}",
            attempts[2]
        );
        assert!(attempts[2].remedy.contains("assign a managed identity"));
        assert!(attempts[3].remedy.contains("`az login`"));
        assert!(attempts[4].remedy.contains("`azd auth login`"));
        assert!(cred.selected().is_none());

        // One header line plus exactly one line per attempt.
        let message = err.to_string();
        println!("{message}");
        assert_eq!(
            message.lines().count(),
            1 + AuthMethod::ALL.len(),
            "{message}"
        );
        assert!(message.starts_with("no Azure credential could get a token"));
        for line in message.lines().skip(1) {
            assert!(line.starts_with("- ") && line.contains("; fix: "), "{line}");
        }
    }

    #[tokio::test]
    async fn partial_service_principal_is_a_skipped_attempt_naming_the_missing_variable() {
        let cred = credential(&settings(
            &[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")],
            None,
        ))
        .unwrap();
        let skipped = cred.skipped();
        assert_eq!(skipped[0].method, AuthMethod::Environment);
        assert_eq!(
            skipped[0].reason,
            "incomplete: AZURE_CLIENT_SECRET is not set"
        );
        assert_eq!(
            skipped[0].remedy,
            "set AZURE_CLIENT_SECRET for a service principal"
        );
        // AZURE_CLIENT_ID alone also makes the managed identity user-assigned.
        assert!(
            cred.describe()
                .contains("managed identity (IMDS, user-assigned)")
        );
    }

    #[test]
    fn pinned_partial_service_principal_is_a_configuration_error() {
        let err = credential(&settings(
            &[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_SECRET", "sp-secret-xyz"),
            ],
            Some(AuthMethod::Environment),
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            Error::NotConfigured {
                method: AuthMethod::Environment,
                ..
            }
        ));
        let message = err.to_string();
        assert!(message.contains("AZURE_CLIENT_ID is not set"), "{message}");
        assert!(message.contains("set AZURE_CLIENT_ID"), "{message}");
        assert!(!message.contains("sp-secret-xyz"), "{message}");
    }

    #[test]
    fn pinned_workload_identity_without_token_file_is_a_configuration_error() {
        let err = credential(&settings(&[], Some(AuthMethod::WorkloadIdentity))).unwrap_err();
        assert!(
            err.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"),
            "{err}"
        );
    }

    #[test]
    fn pinned_unsupported_managed_identity_source_is_a_configuration_error() {
        let err = credential(&settings(
            &[("MSI_ENDPOINT", "http://127.0.0.1:9/")],
            Some(AuthMethod::ManagedIdentity),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("Cloud Shell"), "{err}");
    }

    #[test]
    fn pinned_service_principal_rejected_by_azure_identity_is_a_setup_error_without_secret() {
        let err = credential(&settings(
            &[
                ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000"),
                ("AZURE_CLIENT_ID", "client-1"),
                ("AZURE_CLIENT_SECRET", "sp-secret-xyz"),
                ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9"),
            ],
            Some(AuthMethod::Environment),
        ))
        .unwrap_err();
        assert!(matches!(err, Error::Setup { .. }), "{err:?}");
        let display = err.to_string();
        let debug = format!("{err:?}");
        assert!(display.contains("HTTPS"), "{display}");
        assert!(display.contains("AZURE_AUTHORITY_HOST"), "{display}");
        assert!(!display.contains("sp-secret-xyz") && !debug.contains("sp-secret-xyz"));
    }

    #[tokio::test]
    async fn pinned_cli_fails_with_its_remedy_only() {
        let cred = credential(&settings(&[], Some(AuthMethod::AzureCli))).unwrap();
        assert_eq!(cred.describe(), "Azure CLI");
        let err = cred.get_token(&[SCOPE], None).await.unwrap_err();
        let Error::TokenFailed { attempt, .. } = chain_error(&err) else {
            panic!("expected TokenFailed, got {err}");
        };
        assert_eq!(attempt.method, AuthMethod::AzureCli);
        assert!(err.to_string().contains("run `az login`"), "{err}");
        assert!(!err.to_string().contains("azd"), "{err}");
    }

    #[tokio::test]
    async fn pinned_imds_is_skipped_by_the_probe() {
        let cred = credential(&settings(&[], Some(AuthMethod::ManagedIdentity))).unwrap();
        let started = Instant::now();
        let err = cred.get_token(&[SCOPE], None).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.to_string().contains("IMDS endpoint 192.0.2.1:80"),
            "{err}"
        );
        assert!(
            err.to_string().contains("assign a managed identity"),
            "{err}"
        );
    }

    /// A loopback address whose connects hang: a listener with a full accept queue drops
    /// further SYNs on Linux. Returns the listener and the clients that keep the queue full.
    async fn hanging_addr() -> (tokio::net::TcpListener, Vec<TcpStream>, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => fillers.push(stream),
                _ => return (listener, fillers, addr),
            }
        }
        panic!("could not fill the accept queue of {addr}");
    }

    #[tokio::test]
    async fn imds_probe_gives_up_after_its_timeout() {
        let (_listener, _fillers, addr) = hanging_addr().await;
        let mut settings = settings(&[], Some(AuthMethod::ManagedIdentity));
        settings.imds_probe_addr = addr;
        settings.imds_probe_timeout = Duration::from_millis(250);
        let cred = credential(&settings).unwrap();
        let started = Instant::now();
        let err = cred.get_token(&[SCOPE], None).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert!(
            err.to_string()
                .contains("did not accept a connection within 250 ms"),
            "{err}"
        );
    }

    /// A loopback imitation of Google Cloud's metadata server on the IMDS address: it answers
    /// every request without `Metadata-Flavor: Google` with 403 and an HTML page, as GCE does.
    async fn other_clouds_metadata_service() -> wiremock::MockServer {
        use wiremock::matchers::any;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(403)
                    .insert_header("Metadata-Flavor", "Google")
                    .insert_header("Server", "Metadata Server for VM")
                    .set_body_raw(
                        "<html><body>Your client does not have permission to get URL. Missing Metadata-Flavor:Google header.</body></html>",
                        "text/html; charset=UTF-8",
                    ),
            )
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn another_clouds_metadata_service_is_not_imds_and_the_chain_fails_over_in_seconds() {
        let server = other_clouds_metadata_service().await;
        let mut settings = settings(&[], None);
        settings.imds_probe_addr = *server.address();
        settings.imds_probe_timeout = Duration::from_secs(2);
        let cred = credential(&settings).unwrap();
        let started = Instant::now();
        let err = cred.get_token(&[SCOPE], None).await.unwrap_err();
        let elapsed = started.elapsed();
        println!("failover past another cloud's metadata service took {elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
        let Error::AllFailed { attempts, .. } = chain_error(&err) else {
            panic!("expected AllFailed, got {err}");
        };
        let methods: Vec<AuthMethod> = attempts.iter().map(|a| a.method).collect();
        assert_eq!(methods, AuthMethod::ALL.to_vec(), "the chain went on");
        let imds = &attempts[2];
        assert_eq!(imds.method, AuthMethod::ManagedIdentity);
        for part in [
            "not Azure IMDS",
            "HTTP 403",
            "metadata-flavor Google",
            "Required metadata header not specified",
        ] {
            assert!(imds.reason.contains(part), "{part:?} missing in {imds}");
        }
        // Exactly one probe request, without the Metadata header.
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        assert!(
            requests[0]
                .url
                .path()
                .ends_with("/metadata/identity/oauth2/token")
        );
        assert!(!requests[0].headers.contains_key("metadata"));
        // A second scope reuses the probe's verdict.
        let _ = cred
            .get_token(&["https://cognitiveservices.azure.com/.default"], None)
            .await
            .unwrap_err();
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_silent_listener_on_the_imds_address_is_not_imds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let mut settings = settings(&[], Some(AuthMethod::ManagedIdentity));
        settings.imds_probe_addr = addr;
        settings.imds_probe_timeout = Duration::from_millis(300);
        let cred = credential(&settings).unwrap();
        let started = Instant::now();
        let err = cred.get_token(&[SCOPE], None).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        assert!(
            err.to_string().contains(
                "accepted a connection but sent no HTTP answer within 300 ms: not Azure IMDS"
            ),
            "{err}"
        );
        held.abort();
    }

    #[tokio::test]
    async fn an_azure_like_imds_passes_the_probe() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/metadata/identity/oauth2/token"))
            .respond_with(ResponseTemplate::new(400).set_body_raw(
                r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#,
                "application/json; charset=utf-8",
            ))
            .expect(1)
            .mount(&server)
            .await;
        let probe = ImdsProbe::new(*server.address(), Duration::from_secs(2));
        assert_eq!(probe.check().await, Ok(()));
        assert_eq!(probe.check().await, Ok(()));
    }

    #[test]
    fn debug_and_describe_never_show_secrets() {
        let cred = credential(&settings(
            &[
                ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000"),
                ("AZURE_CLIENT_ID", "client-1"),
                ("AZURE_CLIENT_SECRET", "sp-secret-xyz"),
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
                ("IDENTITY_HEADER", "identity-header-xyz"),
            ],
            None,
        ))
        .unwrap();
        let shown = format!("{cred:?} {}", cred.describe());
        assert!(shown.contains("environment service principal"), "{shown}");
        assert!(
            shown.contains("managed identity (App Service, user-assigned)"),
            "{shown}"
        );
        for secret in ["sp-secret-xyz", "identity-header-xyz"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn one_line_flattens_and_bounds_messages() {
        let text = format!("first\nsecond\t\u{7}third {}", "y ".repeat(1_000));
        let line = one_line(&text);
        assert!(!line.contains('\n') && !line.contains('\u{7}'));
        assert!(line.starts_with("first second third"));
        assert!(line.chars().count() < MAX_REASON_CHARS + 50);
    }

    // --- App Service managed identity against a loopback fake -----------------------------
    //
    // azure_identity 1.0 reads IDENTITY_ENDPOINT / IDENTITY_HEADER from the real process
    // environment (its in-memory Env is test-only inside that crate), and setting variables in
    // this process would need `unsafe` (edition 2024), which the workspace forbids. So the
    // parent test starts the wiremock server and re-runs this same test in a child process
    // (`current_exe()`), with the variables set on the child only; the child does the token
    // calls and the parent asserts on what the server received.

    const CHILD_FLAG: &str = "PIM_AUTH_APP_SERVICE_CHILD";
    const FAKE_HEADER: &str = "x-identity-header-value";
    const FAKE_TOKEN: &str = "fake-managed-identity-token";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn app_service_managed_identity_against_loopback_fake() {
        if std::env::var_os(CHILD_FLAG).is_some() {
            return app_service_child().await;
        }
        use wiremock::matchers::{header, method, path, query_param};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        let server = MockServer::start().await;
        let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        // expires_on must be a JSON string: azure_identity rejects a number.
        let body = format!(
            r#"{{"access_token":"{FAKE_TOKEN}","expires_on":"{expires_on}","token_type":"Bearer","resource":"https://api.loganalytics.io"}}"#
        );
        Mock::given(method("GET"))
            .and(path("/msi/token"))
            .and(query_param("api-version", "2019-08-01"))
            .and(query_param("resource", "https://api.loganalytics.io"))
            .and(header("metadata", "true"))
            .and(header("x-identity-header", FAKE_HEADER))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .expect(1)
            .mount(&server)
            .await;

        let endpoint = format!("{}/msi/token", server.uri());
        let test_name = format!(
            "{}::app_service_managed_identity_against_loopback_fake",
            module_path!().trim_start_matches("pim_auth::")
        );
        let exe = std::env::current_exe().unwrap();
        let output = tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(exe);
            command
                .args([
                    test_name.as_str(),
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_FLAG, "1")
                .env("IDENTITY_ENDPOINT", &endpoint)
                .env("IDENTITY_HEADER", FAKE_HEADER)
                .env("PIM_AUTH_EXPECTED_EXPIRY", expires_on.to_string());
            for name in crate::RELEVANT_VARS {
                if name != "IDENTITY_ENDPOINT" && name != "IDENTITY_HEADER" {
                    command.env_remove(name);
                }
            }
            command.output()
        })
        .await
        .unwrap()
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
        // Guard against a filter that silently ran nothing.
        assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
        assert!(stdout.contains("child ok"), "{stdout}");
        assert!(!stdout.contains(FAKE_TOKEN) && !stderr.contains(FAKE_TOKEN));

        // expect(1) plus the matchers: exactly one well-formed request, the second call was
        // served from the cache.
        server.verify().await;
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
    }

    async fn app_service_child() {
        let settings = AuthSettings::from_env_map(std::env::vars()).unwrap();
        assert!(settings.pinned.is_none());
        let expected_expiry: i64 = std::env::var("PIM_AUTH_EXPECTED_EXPIRY")
            .unwrap()
            .parse()
            .unwrap();
        let cred = credential(&settings).unwrap();
        let token = cred.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), FAKE_TOKEN);
        assert_eq!(token.expires_on.unix_timestamp(), expected_expiry);
        assert_eq!(cred.selected(), Some(AuthMethod::ManagedIdentity));
        assert_eq!(cred.describe(), "managed identity (App Service)");
        let again = cred.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(again.token.secret(), FAKE_TOKEN);
        println!("child ok");
    }
}
