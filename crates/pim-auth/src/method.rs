//! The authentication methods of the chain and their textual names (`--auth` / `PIM_AUTH`).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// One way of getting an Entra ID token, in the order the chain tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// Service principal with a client secret from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`. Name: `env`.
    Environment,
    /// Kubernetes workload identity (federated token file). Name: `workload-identity`.
    WorkloadIdentity,
    /// Managed identity on App Service or an Azure VM (IMDS). Name: `managed-identity`.
    ManagedIdentity,
    /// The signed-in Azure CLI (`az login`). Name: `cli`.
    AzureCli,
    /// The signed-in Azure Developer CLI (`azd auth login`). Name: `azd`.
    AzureDeveloperCli,
}

impl AuthMethod {
    /// Every method, in chain order.
    pub const ALL: [AuthMethod; 5] = [
        AuthMethod::Environment,
        AuthMethod::WorkloadIdentity,
        AuthMethod::ManagedIdentity,
        AuthMethod::AzureCli,
        AuthMethod::AzureDeveloperCli,
    ];

    /// The canonical name accepted by `--auth` / `PIM_AUTH` (what [`fmt::Display`] prints).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Environment => "env",
            AuthMethod::WorkloadIdentity => "workload-identity",
            AuthMethod::ManagedIdentity => "managed-identity",
            AuthMethod::AzureCli => "cli",
            AuthMethod::AzureDeveloperCli => "azd",
        }
    }

    /// A human description for messages, e.g. "environment service principal".
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::Environment => "environment service principal",
            AuthMethod::WorkloadIdentity => "workload identity",
            AuthMethod::ManagedIdentity => "managed identity",
            AuthMethod::AzureCli => "Azure CLI",
            AuthMethod::AzureDeveloperCli => "Azure Developer CLI",
        }
    }

    /// Parses a pin from `--auth` / `PIM_AUTH`, where `auto`, `default`, `chain` or an empty
    /// value mean "no pin, try the whole chain".
    ///
    /// # Errors
    /// [`Error::UnknownMethod`] for anything that is neither a method name nor an alias.
    pub fn parse_pin(value: &str) -> Result<Option<AuthMethod>, Error> {
        match normalise(value).as_str() {
            "" | "auto" | "default" | "chain" => Ok(None),
            _ => value.parse().map(Some),
        }
    }
}

/// Lower-cases, trims and maps `_` and spaces to `-`, so `Managed_Identity` parses too.
fn normalise(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| match c {
            '_' | ' ' => '-',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

impl FromStr for AuthMethod {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let method = match normalise(value).as_str() {
            "env" | "environment" | "service-principal" | "sp" | "client-secret" | "secret" => {
                AuthMethod::Environment
            }
            "workload-identity" | "workload" | "wi" | "federated" | "aks" => {
                AuthMethod::WorkloadIdentity
            }
            "managed-identity" | "managed" | "mi" | "msi" | "imds" => AuthMethod::ManagedIdentity,
            "cli" | "az" | "azure-cli" | "azcli" | "az-cli" => AuthMethod::AzureCli,
            "azd" | "azure-developer-cli" | "developer-cli" | "azd-cli" => {
                AuthMethod::AzureDeveloperCli
            }
            _ => {
                return Err(Error::UnknownMethod(
                    // Shown as typed, control and bidi characters made visible, at most 40 chars.
                    pim_domain::text::terminal_line(value, 40),
                ));
            }
        };
        Ok(method)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_round_trip() {
        for method in AuthMethod::ALL {
            assert_eq!(method.to_string().parse::<AuthMethod>().unwrap(), method);
        }
        assert_eq!(AuthMethod::Environment.to_string(), "env");
        assert_eq!(
            AuthMethod::WorkloadIdentity.to_string(),
            "workload-identity"
        );
        assert_eq!(AuthMethod::ManagedIdentity.to_string(), "managed-identity");
        assert_eq!(AuthMethod::AzureCli.to_string(), "cli");
        assert_eq!(AuthMethod::AzureDeveloperCli.to_string(), "azd");
    }

    #[test]
    fn aliases_and_spelling_variants_parse() {
        let cases = [
            ("ENV", AuthMethod::Environment),
            ("service_principal", AuthMethod::Environment),
            (" Workload ", AuthMethod::WorkloadIdentity),
            ("msi", AuthMethod::ManagedIdentity),
            ("Managed_Identity", AuthMethod::ManagedIdentity),
            ("az", AuthMethod::AzureCli),
            ("azure-cli", AuthMethod::AzureCli),
            ("Azure Developer CLI", AuthMethod::AzureDeveloperCli),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<AuthMethod>().unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn unknown_names_are_rejected_with_a_short_clean_message() {
        let err = "kerberos".parse::<AuthMethod>().unwrap_err();
        assert!(matches!(err, Error::UnknownMethod(ref v) if v == "kerberos"));
        assert!(err.to_string().contains("managed-identity"), "{err}");

        let hostile = format!("\u{1b}[31m{}", "x".repeat(10_000));
        let message = hostile.parse::<AuthMethod>().unwrap_err().to_string();
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(message.len() < 400, "{}", message.len());
    }

    #[test]
    fn parse_pin_treats_auto_as_no_pin() {
        assert_eq!(AuthMethod::parse_pin("auto").unwrap(), None);
        assert_eq!(AuthMethod::parse_pin("  ").unwrap(), None);
        assert_eq!(
            AuthMethod::parse_pin("cli").unwrap(),
            Some(AuthMethod::AzureCli)
        );
        assert!(AuthMethod::parse_pin("nope").is_err());
    }
}
