//! Connecting to live Azure services from validated [`Settings`]: the credential chain, the
//! Log Analytics query API, the model, the auditor and the delivery destinations.
//!
//! [`connect`] is the one wiring call both binaries make: it builds the credential chain only
//! when something needs it, opens the chosen source, the model and its assessor, the
//! [`Auditor`], and every `--send` destination, and hands them back as [`Connected`]. The
//! smaller functions ([`credential`], [`log_analytics`], [`chat_model`], [`model_assessor`],
//! [`open_source`]) are its parts, for `--check` and for embedders.
//!
//! Nothing here fetches a token or sends a request: clients are built, and the first scan (or
//! `--check`) uses them.
//!
//! See: issue 11, "The binaries share one wiring call".

use std::sync::Arc;

use azure_core::credentials::Secret;
/// The credential type every live client takes.
pub use azure_core::credentials::TokenCredential;
use pim_auth::ChainCredential;
use pim_deliver::Destination;
use pim_loganalytics::{KqlSource, LogAnalyticsClient, LogAnalyticsOptions};
use pim_model::{ModelAssessor, ModelAssessorOptions};
use pim_openai::{
    ApiVersion, AzureOpenAi, AzureOpenAiOptions, ChatModel, ModelFamily, OpenAiAuth,
    OpenAiCompatible, OpenAiCompatibleOptions,
};
use pim_tickets::TicketVerifier;

use crate::config::{ModelLimits, ModelSettings, Settings};
use crate::{Auditor, Error, Result, RulesConfig, ScanObserver};

/// Builds the credential chain from the settings ([`Settings::auth`]: the environment's
/// `AZURE_*` / `IDENTITY_*` variables and the method `PIM_AUTH` or `--auth` pins).
///
/// # Errors
/// [`Error::Auth`] for a pinned method that is not configured.
pub fn credential(settings: &Settings) -> Result<Arc<ChainCredential>> {
    pim_auth::credential(&settings.auth).map_err(Error::Auth)
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

/// The ticket verifier of the configured systems (`PIM_SERVICENOW_*`, `PIM_JIRA_*`), or `None`
/// when no ticket system is configured. Builds clients only; nothing is sent.
///
/// # Errors
/// [`Error::Tickets`] naming the variable when a client cannot be built.
pub fn ticket_verifier(settings: &Settings) -> Result<Option<Arc<TicketVerifier>>> {
    let t = &settings.tickets;
    if !t.is_configured() {
        return Ok(None);
    }
    let servicenow = match &t.servicenow {
        Some(sn) => Some(Arc::new(
            pim_tickets::ServiceNow::new(&sn.url, sn.auth.clone(), None).map_err(Error::Tickets)?,
        ) as Arc<dyn pim_tickets::TicketSystem>),
        None => None,
    };
    let (jira, projects) = match &t.jira {
        Some(j) => {
            let probe = j.projects.first().map(String::as_str).unwrap_or("PIM");
            (
                Some(Arc::new(
                    pim_tickets::Jira::new(&j.url, j.auth.clone(), probe, None)
                        .map_err(Error::Tickets)?,
                ) as Arc<dyn pim_tickets::TicketSystem>),
                j.projects.clone(),
            )
        }
        None => (None, Vec::new()),
    };
    Ok(Some(Arc::new(TicketVerifier::new(
        servicenow, jira, projects,
    ))))
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

/// What a binary is connected to: everything [`connect`] built.
#[derive(Debug)]
pub struct Connected {
    /// The log source.
    pub source: Arc<dyn KqlSource>,
    /// The model, when one is configured.
    pub model: Option<Arc<dyn ChatModel>>,
    /// The auditor over the source, with the model-backed assessor when there is a model.
    pub auditor: Arc<Auditor>,
    /// The destinations `--send` named, built and ready (empty when none).
    pub destinations: Vec<Arc<dyn Destination>>,
    /// The credential chain, when something needed it.
    pub credential: Option<Arc<ChainCredential>>,
    /// The ticket verifier, when a ticket system is configured (also held by the auditor).
    pub tickets: Option<Arc<TicketVerifier>>,
}

/// Connects a binary: the credential chain (only when [`Settings::needs_azure_credential`]),
/// the chosen source, the model, the auditor (with [`crate::config::ScanDefaults`]'s privileged
/// patterns and model deadline, the ticket verifier when a ticket system is configured, and
/// `observer` when given) and the destinations of
/// [`Settings::delivery`]. Destinations are built before any scan, so a misconfigured one stops
/// the run first.
///
/// # Errors
/// [`Error::Setup`] naming the step (credentials, the log source, the model), wrapping its
/// error; [`Error::Deliver`] for a destination that cannot be built.
pub fn connect(
    settings: &Settings,
    choice: &SourceChoice,
    observer: Option<Arc<dyn ScanObserver>>,
) -> Result<Connected> {
    let credential = if settings.needs_azure_credential(choice) {
        Some(credential(settings).map_err(|e| Error::setup("credentials", e))?)
    } else {
        None
    };
    let dyn_credential = credential.clone().map(|c| c as Arc<dyn TokenCredential>);
    let destinations = pim_deliver::destinations(&settings.delivery, dyn_credential.clone())
        .map_err(Error::Deliver)?;
    let source = open_source(choice, settings, dyn_credential.clone())
        .map_err(|e| Error::setup("opening the log source", e))?;
    let tickets = ticket_verifier(settings).map_err(|e| Error::setup("ticket verification", e))?;
    let model = match &dyn_credential {
        Some(c) => chat_model(settings, c.clone()).map_err(|e| Error::setup("model", e))?,
        None => None,
    };

    let mut rules = RulesConfig::default();
    if let Some(patterns) = &settings.scan.privileged_patterns {
        rules.privileged_name_patterns = patterns.clone();
    }
    let mut builder = Auditor::builder(source.clone())
        .rules(rules)
        .model_deadline(settings.scan.model_deadline)
        // The query API's concurrency limit is per identity: one bound for every scan of the
        // process (a served agent's sessions share it).
        .query_concurrency(settings.scan.query_concurrency);
    if let Some(observer) = observer {
        builder = builder.observer(observer);
    }
    if let Some(tickets) = &tickets {
        builder = builder.tickets(tickets.clone());
    }
    if let Some(model) = &model {
        tracing::info!(model = %model.describe(), "model-backed assessment on");
        let (assessor, limits) = model_assessor(model.clone(), settings.model_limits);
        builder = builder.assessor(assessor).model_limits(limits);
    }
    Ok(Connected {
        source,
        model,
        auditor: Arc::new(builder.build()),
        destinations,
        credential,
        tickets,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_env(&env).unwrap()
    }

    #[test]
    fn the_demo_needs_no_credential_and_gets_the_configured_rules() {
        let s = settings(&[
            ("PIM_PRIVILEGED_PATTERNS", "crown"),
            ("PIM_MODEL_DEADLINE", "5s"),
        ]);
        let c = connect(&s, &SourceChoice::Demo, None).unwrap();
        assert!(c.credential.is_none());
        assert!(c.model.is_none());
        assert!(c.destinations.is_empty());
        assert_eq!(c.source.info().kind, pim_loganalytics::SourceKind::Demo);
    }

    #[test]
    fn a_webhook_url_mentioning_logs_ingestion_builds_no_credential() {
        let mut s = settings(&[(
            "PIM_WEBHOOK_URL",
            "https://hooks.example/logs-ingestion?sig=x",
        )]);
        s.delivery.targets = pim_deliver::DestinationSpec::parse_list(&["webhook"]).unwrap();
        let c = connect(&s, &SourceChoice::Demo, None).unwrap();
        assert!(
            c.credential.is_none(),
            "no Monitor credential for a webhook"
        );
        assert_eq!(c.destinations.len(), 1);
        assert!(c.destinations[0].token_need().is_none());
    }

    #[test]
    fn logs_ingestion_builds_the_chain_and_each_step_names_itself() {
        let mut s = settings(&[
            (
                "PIM_DCR_ENDPOINT",
                "https://dce.westeurope-1.ingest.monitor.azure.com",
            ),
            ("PIM_DCR_RULE_ID", "dcr-00112233445566778899aabbccddeeff"),
        ]);
        s.delivery.targets = vec![pim_deliver::DestinationSpec::LogsIngestion];
        let c = connect(&s, &SourceChoice::Demo, None).unwrap();
        assert!(c.credential.is_some());
        assert_eq!(
            c.destinations[0].token_need().map(|t| t.scope),
            Some("https://monitor.azure.com/.default".to_owned())
        );

        let s = settings(&[]);
        let e = connect(&s, &SourceChoice::Workspace, None).unwrap_err();
        assert!(e.to_string().starts_with("opening the log source"), "{e}");
        assert!(
            std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("--demo")),
            "{e:?}"
        );
    }
}
