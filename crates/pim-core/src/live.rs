//! Connecting to live Azure services from validated [`Settings`]: the credential chain, the
//! Log Analytics query API and the model.
//!
//! Nothing here fetches a token or sends a request: clients are built, and the first scan (or
//! `--check`) uses them.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::Secret;
/// The credential type every live client takes.
pub use azure_core::credentials::TokenCredential;
use pim_auth::{AuthMethod, AuthSettings, ChainCredential};
use pim_loganalytics::{KqlSource, LogAnalyticsClient, LogAnalyticsOptions};
use pim_model::{ModelAssessor, ModelAssessorOptions};
use pim_openai::{
    ApiVersion, AzureOpenAi, AzureOpenAiOptions, ChatModel, ModelFamily, OpenAiAuth,
    OpenAiCompatible, OpenAiCompatibleOptions,
};

use crate::config::{ModelLimits, ModelSettings, Settings};
use crate::{Error, Result};

/// Builds the credential chain from an environment snapshot; `pin` (from `--auth`, overriding
/// `PIM_AUTH`) selects one method.
///
/// # Errors
/// [`Error::Auth`] for an unknown method name or a pinned method that is not configured.
pub fn credential(
    env: &BTreeMap<String, String>,
    pin: Option<&str>,
) -> Result<Arc<ChainCredential>> {
    let mut settings = AuthSettings::from_env_map(env.clone()).map_err(Error::Auth)?;
    if let Some(pin) = pin {
        settings.pinned = AuthMethod::parse_pin(pin).map_err(Error::Auth)?;
    }
    pim_auth::credential(&settings).map_err(Error::Auth)
}

/// The Log Analytics query API client for the configured workspaces.
///
/// # Errors
/// [`Error::Config`] when no workspace is configured; [`Error::Source`] when the client cannot
/// be built from the settings.
pub fn log_analytics(
    settings: &Settings,
    credential: Arc<dyn TokenCredential>,
) -> Result<Arc<dyn KqlSource>> {
    if settings.workspaces.is_empty() {
        return Err(Error::Config(crate::config::ConfigError {
            variable: "LOG_ANALYTICS_WORKSPACE_ID",
            problem: "missing: set it to the workspace id(s) holding AuditLogs and AzureActivity"
                .to_owned(),
        }));
    }
    let options = LogAnalyticsOptions {
        endpoint: settings.log_analytics_endpoint.clone(),
        ..LogAnalyticsOptions::default()
    };
    let client = LogAnalyticsClient::new(settings.workspaces.clone(), credential, Some(options))
        .map_err(Error::Source)?;
    Ok(Arc::new(client))
}

/// The configured chat model, or `None` when no model is configured.
///
/// # Errors
/// [`Error::Model`] when the model client cannot be built from the settings.
pub fn chat_model(
    settings: &Settings,
    credential: Arc<dyn TokenCredential>,
) -> Result<Option<Arc<dyn ChatModel>>> {
    let Some(model) = &settings.model else {
        return Ok(None);
    };
    let model: Arc<dyn ChatModel> = match model {
        ModelSettings::AzureOpenAi {
            endpoint,
            deployment,
            api_version,
            api_key,
        } => {
            let auth = match api_key {
                Some(key) => OpenAiAuth::ApiKey(Secret::new(key.expose().to_owned())),
                None => OpenAiAuth::Entra(credential),
            };
            let options = AzureOpenAiOptions {
                api_version: api_version.parse::<ApiVersion>().map_err(Error::Model)?,
                parameters: settings.model_parameters,
                ..AzureOpenAiOptions::default()
            };
            Arc::new(
                AzureOpenAi::new(endpoint, deployment, auth, Some(options))
                    .map_err(Error::Model)?,
            )
        }
        ModelSettings::OpenAiCompatible {
            base_url,
            api_key,
            model,
        } => Arc::new(
            OpenAiCompatible::new(
                base_url,
                api_key.as_ref().map(|k| Secret::new(k.expose().to_owned())),
                model,
                Some(OpenAiCompatibleOptions {
                    parameters: settings.model_parameters,
                    ..OpenAiCompatibleOptions::default()
                }),
            )
            .map_err(Error::Model)?,
        ),
    };
    Ok(Some(model))
}

/// The model-backed assessor over `model`, and the model limits that match its token budget
/// (each call is charged its prompt budget plus its answer cap; a reasoning model's cap is
/// `max_output_tokens`, since hidden reasoning counts too). A model of unknown family is
/// charged as a reasoning one: the service may turn out to be one.
pub fn model_assessor(
    model: Arc<dyn ChatModel>,
    limits: ModelLimits,
) -> (Arc<ModelAssessor>, ModelLimits) {
    let options = ModelAssessorOptions::default();
    let profile = model.profile();
    let answer_cap = match profile.family {
        Some(ModelFamily::Standard) => options.max_answer_tokens,
        Some(ModelFamily::Reasoning) | None => options
            .max_answer_tokens
            .max(profile.max_output_tokens.unwrap_or(0)),
    };
    let per_call = u32::try_from(options.max_prompt_tokens)
        .unwrap_or(u32::MAX)
        .saturating_add(answer_cap);
    (
        Arc::new(ModelAssessor::new(model, options)),
        ModelLimits {
            estimated_tokens_per_call: per_call,
            ..limits
        },
    )
}

/// Which logs a binary reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// The bundled demo tenant.
    Demo,
    /// Offline exports in a directory.
    Exports(std::path::PathBuf),
    /// The Log Analytics workspace(s) of the settings.
    Workspace,
}

/// Opens the chosen source; `credential` is needed for a workspace.
///
/// # Errors
/// [`Error::Source`] when the demo or the exports cannot be opened; [`Error::Config`] when a
/// workspace is chosen but none is configured (the message lists the three ways to give a
/// source) or there is no credential.
pub fn open_source(
    choice: &SourceChoice,
    settings: &Settings,
    credential: Option<Arc<dyn TokenCredential>>,
) -> Result<Arc<dyn KqlSource>> {
    match choice {
        SourceChoice::Demo => crate::demo_source(),
        SourceChoice::Exports(dir) => crate::export_source(dir.clone()),
        SourceChoice::Workspace => match credential {
            Some(credential) if !settings.workspaces.is_empty() => {
                log_analytics(settings, credential)
            }
            _ => Err(Error::Config(crate::config::ConfigError {
                variable: "LOG_ANALYTICS_WORKSPACE_ID",
                problem: "no data source: pass --demo for the bundled demo tenant, --from-dir DIR for AuditLogs.json and AzureActivity.json exports, or set LOG_ANALYTICS_WORKSPACE_ID to read a workspace".to_owned(),
            })),
        },
    }
}
