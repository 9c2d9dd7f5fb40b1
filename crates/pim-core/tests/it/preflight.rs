use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use pim_auth::StaticTokenCredential;
use pim_core::config::{ConfigError, Settings};
use pim_core::live;
use pim_core::preflight::{
    self, CheckResult, CheckStatus, CredentialSource, Destination, PreflightInputs,
};
use pim_testkit::{
    Failure, FakeReply, LogAnalyticsFake, OpenAiFake, Responder, demo_tables, reads_table,
};
use time::OffsetDateTime;
use time::macros::datetime;

const WORKSPACE: &str = "11111111-2222-4333-8444-555555555555";
const TOKEN: &str = "static-preflight-token-9c2e";
const API_KEY: &str = "oai-key-never-print-me-61";
const NOW: OffsetDateTime = datetime!(2026-11-20 12:00 UTC);
const EXPIRY: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);
const DCE: &str = "https://dce-1.westeurope-1.ingest.monitor.azure.com";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn static_credential(expiry: OffsetDateTime) -> CredentialSource {
    CredentialSource::Other {
        credential: Arc::new(StaticTokenCredential::new(TOKEN, expiry)),
        label: "static test token".to_owned(),
    }
}

/// A workspace on `la` and an Azure OpenAI deployment on `oai` (Entra auth unless `key`).
fn settings(la: &LogAnalyticsFake, oai: &OpenAiFake, key: Option<&str>) -> Settings {
    let mut pairs = vec![
        ("LOG_ANALYTICS_WORKSPACE_ID", WORKSPACE.to_owned()),
        ("LOG_ANALYTICS_ENDPOINT", la.uri()),
        ("AZURE_OPENAI_ENDPOINT", oai.uri()),
        ("AZURE_OPENAI_DEPLOYMENT", "pim-gpt".to_owned()),
    ];
    if let Some(key) = key {
        pairs.push(("AZURE_OPENAI_API_KEY", key.to_owned()));
    }
    let map = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Settings::from_env(&map).unwrap()
}

/// Inputs wired the way the binary wires them: the real clients from `live`.
fn live_inputs<'a>(settings: &'a Settings, credential: CredentialSource) -> PreflightInputs<'a> {
    let token = credential.credential().unwrap();
    let mut inputs = PreflightInputs::new(Ok(settings), NOW);
    inputs.source = Some(live::log_analytics(settings, token.clone()).unwrap());
    inputs.model = live::chat_model(settings, token).unwrap();
    inputs.credential = Some(credential);
    inputs.timeout = Duration::from_secs(10);
    inputs
}

/// Both ticket systems of a [`pim_testkit::TicketFake`] at `uri`, ServiceNow with `password`.
fn ticket_settings(uri: &str, password: &str) -> pim_core::config::TicketSettings {
    Settings::from_env(&env(&[
        ("PIM_SERVICENOW_URL", uri),
        ("PIM_SERVICENOW_USER", pim_testkit::SERVICENOW_USER),
        ("PIM_SERVICENOW_PASSWORD", password),
        ("PIM_JIRA_URL", uri),
        ("PIM_JIRA_EMAIL", pim_testkit::JIRA_EMAIL),
        ("PIM_JIRA_API_TOKEN", pim_testkit::JIRA_API_TOKEN),
        ("PIM_JIRA_PROJECTS", "OPS,SEC"),
    ]))
    .unwrap()
    .tickets
}

#[tokio::test]
async fn each_ticket_system_is_probed_and_refusals_come_with_their_fix() {
    let fake = pim_testkit::TicketFake::start().await;
    let mut settings = Settings::from_env(&env(&[])).unwrap();
    settings.tickets = ticket_settings(&fake.uri(), "wrong-sn-password");
    let verifier = live::ticket_verifier(&settings).unwrap().unwrap();
    fake.fail_next(1, Some("/rest/api/"), pim_testkit::TicketFailure::Forbidden);
    let mut inputs = PreflightInputs::new(Ok(&settings), NOW);
    inputs.add_ticket_systems(&verifier);
    let results = preflight::run(inputs).await;

    let sn = find(&results, "ticket servicenow");
    assert_eq!(sn.status, CheckStatus::Fail, "{sn}");
    assert!(sn.detail.contains("401"), "{sn}");
    assert!(
        sn.remedy
            .as_deref()
            .unwrap()
            .contains("PIM_SERVICENOW_PASSWORD"),
        "{sn}"
    );
    let jira = find(&results, "ticket jira");
    assert_eq!(jira.status, CheckStatus::Fail, "{jira}");
    assert!(jira.detail.contains("403"), "{jira}");
    assert!(
        jira.remedy.as_deref().unwrap().contains("Browse Projects"),
        "{jira}"
    );
    assert!(!printed(&results).contains("wrong-sn-password"));
    // The probes read tickets that cannot exist.
    let asked: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| {
            r.query_param("sysparm_query")
                .unwrap_or_else(|| r.path.clone())
        })
        .collect();
    assert_eq!(asked, ["number=INC0000000", "/rest/api/3/issue/OPS-0"]);
    assert!(!preflight::all_passed(&results));
}

fn find<'r>(results: &'r [CheckResult], name: &str) -> &'r CheckResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {results:#?}"))
}

fn names(results: &[CheckResult]) -> Vec<&str> {
    results.iter().map(|r| r.name.as_str()).collect()
}

fn printed(results: &[CheckResult]) -> String {
    results.iter().map(|r| format!("{r}\n{r:?}\n")).collect()
}

async fn demo_workspace() -> LogAnalyticsFake {
    let la = LogAnalyticsFake::start().await;
    la.with_demo_tenant().await.unwrap();
    la.expect_token(TOKEN);
    la
}

#[tokio::test]
async fn everything_configured_and_reachable_passes() {
    let la = demo_workspace().await;
    let oai = OpenAiFake::start().await;
    oai.expect_bearer(TOKEN);
    let tickets = pim_testkit::TicketFake::start().await;
    let mut settings = settings(&la, &oai, None);
    settings.tickets = ticket_settings(&tickets.uri(), pim_testkit::SERVICENOW_PASSWORD);
    let verifier = live::ticket_verifier(&settings).unwrap().unwrap();
    let mut inputs = live_inputs(&settings, static_credential(EXPIRY));
    inputs.add_ticket_systems(&verifier);
    inputs.destination_tokens = vec![pim_deliver::TokenNeed::monitor(DCE)];
    inputs.destinations = vec![Destination::new("logs-ingestion", async {
        Ok("DCR dcr-123 stream Custom-PimAudit_CL accepted an empty batch".to_owned())
    })];

    let results = preflight::run(inputs).await;

    assert_eq!(
        names(&results),
        [
            "configuration",
            "token log-analytics",
            "token azure-openai",
            "token azure-monitor",
            "workspace",
            "table AuditLogs",
            "table AzureActivity",
            "model",
            "ticket servicenow",
            "ticket jira",
            "destination logs-ingestion",
        ],
        "{results:#?}"
    );
    assert!(
        results.iter().all(|r| r.status == CheckStatus::Pass),
        "{results:#?}"
    );
    assert!(preflight::all_passed(&results));

    let config = &find(&results, "configuration").detail;
    assert!(config.contains(WORKSPACE), "{config}");
    assert!(config.contains("deployment pim-gpt"), "{config}");
    assert!(config.contains("Entra token"), "{config}");
    let token = find(&results, "token log-analytics").to_string();
    assert_eq!(
        token,
        "PASS  token log-analytics — https://api.loganalytics.io/.default (host 127.0.0.1 is in no known Azure cloud, public-cloud scope assumed) from static test token, expires 2030-01-01T00:00:00Z"
    );
    assert!(
        find(&results, "token azure-monitor").detail.starts_with(
            "https://monitor.azure.com/.default (public cloud) from static test token"
        )
    );
    assert!(find(&results, "model").detail.contains("pim-gpt"));

    // The workspace got exactly the two table probes, as free-form KQL.
    let kql: Vec<String> = la.queries().into_iter().map(|q| q.kql).collect();
    assert_eq!(
        kql,
        [
            "AuditLogs | take 1 | count",
            "AzureActivity | take 1 | count"
        ]
    );
    // The model got the minimal request: a one-property strict schema, on v1 (the default).
    let calls = oai.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].user_text().contains("connectivity check"));
    assert_eq!(calls[0].route, pim_testkit::ChatRoute::V1);
    assert_eq!(calls[0].max_completion_tokens, Some(20));
    assert_eq!(calls[0].max_tokens, None);
    assert_eq!(calls[0].temperature, Some(0.0));
    assert_eq!(
        calls[0].response_format.as_ref().unwrap()["type"],
        "json_schema"
    );

    assert!(!printed(&results).contains(TOKEN));
}

#[tokio::test]
async fn the_model_check_reports_the_family_and_whether_structured_output_works() {
    let la = demo_workspace().await;
    for (model, family, structured) in [
        (
            pim_testkit::FakeModel::Gpt41,
            "family standard (from the model name \"gpt-4.1-2025-04-14\" the service returned)",
            "structured output: json_schema works",
        ),
        (
            pim_testkit::FakeModel::O4Mini,
            "family reasoning (from the model name \"o4-mini-2025-04-16\" the service returned)",
            "structured output: json_schema works",
        ),
        (
            pim_testkit::FakeModel::Gpt5Mini,
            "family reasoning (from the model name \"gpt-5-mini-2025-08-07\" the service returned)",
            "structured output: json_schema works",
        ),
        (
            pim_testkit::FakeModel::FoundryLlama,
            "family standard",
            "structured output: json_schema rejected, json_object works (answers validated locally)",
        ),
    ] {
        let oai =
            OpenAiFake::start_with(Responder::fixed(FakeReply::Json(r#"{"ok":true}"#.into())))
                .await;
        // The deployment's name ("pim-gpt") says nothing: the family comes from the service.
        oai.with_deployment("pim-gpt", model);
        let settings = settings(&la, &oai, Some("check-key"));
        let results = preflight::run(live_inputs(&settings, static_credential(EXPIRY))).await;
        let check = find(&results, "model");
        assert_eq!(check.status, CheckStatus::Pass, "{model:?}: {check}");
        assert!(check.detail.contains(family), "{model:?}: {check}");
        assert!(check.detail.contains(structured), "{model:?}: {check}");
        if model == pim_testkit::FakeModel::O4Mini {
            // The name said nothing, so the first request carried a temperature; the service
            // refused it, and the retry carried the reasoning parameters.
            assert_eq!(oai.rejected_calls().len(), 1);
            assert!(check.detail.contains("adjusted: temperature"), "{check}");
            let sent = oai.calls();
            assert_eq!(sent[0].temperature, None);
            assert_eq!(sent[0].reasoning_effort.as_deref(), Some("low"));
            assert_eq!(sent[0].max_completion_tokens, Some(4_000));
        }
    }
}

#[tokio::test]
async fn a_workspace_without_azure_activity_fails_the_table_check_with_the_remedy() {
    let la = LogAnalyticsFake::start().await;
    let (audit, _) = demo_tables().await.unwrap();
    // Only AuditLogs: the fake answers the AzureActivity probe with 400 SEM0100.
    la.with_table_for(reads_table("AuditLogs"), audit);
    let oai = OpenAiFake::start().await;
    let settings = settings(&la, &oai, None);

    let results = preflight::run(live_inputs(&settings, static_credential(EXPIRY))).await;

    assert_eq!(find(&results, "workspace").status, CheckStatus::Pass);
    assert_eq!(find(&results, "table AuditLogs").status, CheckStatus::Pass);
    let activity = find(&results, "table AzureActivity");
    assert_eq!(activity.status, CheckStatus::Fail, "{activity}");
    assert!(
        activity.detail.contains("AzureActivity does not exist"),
        "{activity}"
    );
    let remedy = activity.remedy.as_deref().unwrap();
    assert!(remedy.contains("Activity log"), "{remedy}");
    assert!(remedy.contains("LOG_ANALYTICS_WORKSPACE_ID"), "{remedy}");
    assert!(
        activity
            .to_string()
            .starts_with("FAIL  table AzureActivity — ")
    );
    assert!(
        activity
            .to_string()
            .contains("; fix: send the subscription activity log")
    );
    // The later checks still ran.
    assert_eq!(find(&results, "model").status, CheckStatus::Pass);
    assert!(!preflight::all_passed(&results));
}

#[tokio::test]
async fn access_denied_names_the_role_and_skips_the_table_checks() {
    let la = demo_workspace().await;
    la.fail_always(Failure::Forbidden);
    let oai = OpenAiFake::start().await;
    let settings = settings(&la, &oai, None);

    let results = preflight::run(live_inputs(&settings, static_credential(EXPIRY))).await;

    let workspace = find(&results, "workspace");
    assert_eq!(workspace.status, CheckStatus::Fail, "{workspace}");
    assert!(workspace.detail.contains("403"), "{workspace}");
    assert!(
        workspace
            .remedy
            .as_deref()
            .unwrap()
            .contains("Log Analytics Reader"),
        "{workspace}"
    );
    for table in ["table AuditLogs", "table AzureActivity"] {
        assert_eq!(find(&results, table).status, CheckStatus::Skipped);
    }
    // One query was enough to know.
    assert_eq!(la.queries().len(), 1);
    assert!(!preflight::all_passed(&results));
}

#[tokio::test]
async fn a_slow_workspace_times_out_instead_of_hanging() {
    let la = demo_workspace().await;
    la.set_latency(Duration::from_secs(5));
    let oai = OpenAiFake::start().await;
    let settings = settings(&la, &oai, None);
    let mut inputs = live_inputs(&settings, static_credential(EXPIRY));
    inputs.timeout = Duration::from_millis(200);

    let started = std::time::Instant::now();
    let results = preflight::run(inputs).await;

    assert!(started.elapsed() < Duration::from_secs(4));
    let workspace = find(&results, "workspace");
    assert_eq!(workspace.status, CheckStatus::Fail);
    assert!(workspace.detail.contains("did not answer"), "{workspace}");
}

#[tokio::test]
async fn a_rejected_api_key_fails_the_model_check_without_printing_the_key() {
    let la = demo_workspace().await;
    let oai = OpenAiFake::start().await;
    oai.expect_api_key("the-right-key");
    let settings = settings(&la, &oai, Some(API_KEY));

    let results = preflight::run(live_inputs(&settings, static_credential(EXPIRY))).await;

    // With an api key no Cognitive Services token is needed.
    assert!(!names(&results).contains(&"token azure-openai"));
    let model = find(&results, "model");
    assert_eq!(model.status, CheckStatus::Fail, "{model}");
    assert!(model.detail.contains("401"), "{model}");
    assert!(
        model
            .remedy
            .as_deref()
            .unwrap()
            .contains("AZURE_OPENAI_API_KEY"),
        "{model}"
    );
    assert!(find(&results, "configuration").detail.contains("api key"));
    let all = printed(&results);
    assert!(!all.contains(API_KEY), "{all}");
    assert!(!all.contains(TOKEN), "{all}");
    assert!(!preflight::all_passed(&results));
}

#[tokio::test]
async fn content_filter_and_missing_deployment_fail_the_model_check() {
    let la = demo_workspace().await;
    let cases = [
        (FakeReply::ContentFilterBlocked, "content filter"),
        (
            FakeReply::FinishReason {
                content: String::new(),
                reason: "content_filter".into(),
            },
            "content filter",
        ),
        (
            FakeReply::Raw {
                status: 404,
                body: r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#.into(),
            },
            "AZURE_OPENAI_DEPLOYMENT",
        ),
    ];
    for (reply, remedy_mentions) in cases {
        let oai = OpenAiFake::start_with(Responder::fixed(reply.clone())).await;
        let settings = settings(&la, &oai, Some(API_KEY));
        let results = preflight::run(live_inputs(&settings, static_credential(EXPIRY))).await;
        let model = find(&results, "model");
        assert_eq!(model.status, CheckStatus::Fail, "{reply:?}: {model}");
        let remedy = model.remedy.as_deref().unwrap();
        assert!(remedy.contains(remedy_mentions), "{reply:?}: {model}");
        assert!(!printed(&results).contains(API_KEY));
    }
}

#[tokio::test]
async fn a_failing_destination_probe_fails_with_its_remedy() {
    let la = demo_workspace().await;
    let oai = OpenAiFake::start().await;
    let settings = settings(&la, &oai, None);
    let mut inputs = live_inputs(&settings, static_credential(EXPIRY));
    inputs.destinations = vec![
        Destination::new("webhook", async {
            Ok("https://hooks.example/pim answered 200".to_owned())
        }),
        Destination::new("logs-ingestion", async {
            Err(
                "HTTP 403 from the DCR; fix: grant Monitoring Metrics Publisher on the DCR"
                    .to_owned(),
            )
        }),
        Destination::new("teams", async {
            Err("connection refused\nby 10.0.0.1".to_owned())
        }),
    ];

    let results = preflight::run(inputs).await;

    assert_eq!(
        find(&results, "destination webhook").status,
        CheckStatus::Pass
    );
    let dcr = find(&results, "destination logs-ingestion");
    assert_eq!(
        dcr.to_string(),
        "FAIL  destination logs-ingestion — HTTP 403 from the DCR; fix: grant Monitoring Metrics Publisher on the DCR"
    );
    let teams = find(&results, "destination teams");
    assert_eq!(teams.status, CheckStatus::Fail);
    assert_eq!(teams.detail, "connection refused by 10.0.0.1");
    assert!(teams.remedy.is_some());
    assert!(!preflight::all_passed(&results));
}

#[tokio::test]
async fn a_config_error_names_the_variable_and_skips_the_rest() {
    let error: ConfigError =
        Settings::from_env(&env(&[("LOG_ANALYTICS_WORKSPACE_ID", "my-workspace")])).unwrap_err();
    let mut inputs = PreflightInputs::new(Err(&error), NOW);
    inputs.credential = Some(static_credential(EXPIRY));
    let probed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = probed.clone();
    inputs.destinations = vec![Destination::new("webhook", async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(String::new())
    })];

    let results = preflight::run(inputs).await;

    let config = &results[0];
    assert_eq!(config.name, "configuration");
    assert_eq!(config.status, CheckStatus::Fail);
    assert!(
        config.detail.starts_with("LOG_ANALYTICS_WORKSPACE_ID:"),
        "{config}"
    );
    assert!(
        config
            .remedy
            .as_deref()
            .unwrap()
            .contains("LOG_ANALYTICS_WORKSPACE_ID")
    );
    assert!(results.len() > 1);
    assert!(
        results[1..]
            .iter()
            .all(|r| r.status == CheckStatus::Skipped),
        "{results:#?}"
    );
    assert!(!probed.load(std::sync::atomic::Ordering::SeqCst));
    assert!(!preflight::all_passed(&results));
}

#[tokio::test]
async fn nothing_configured_skips_every_network_check() {
    let settings = Settings::from_env(&env(&[])).unwrap();
    let results = preflight::run(PreflightInputs::new(Ok(&settings), NOW)).await;
    assert_eq!(
        names(&results),
        [
            "configuration",
            "token",
            "workspace",
            "model",
            "ticket",
            "destination"
        ]
    );
    assert_eq!(results[0].status, CheckStatus::Pass);
    assert!(
        results[1..]
            .iter()
            .all(|r| r.status == CheckStatus::Skipped),
        "{results:#?}"
    );
    assert!(results[2].detail.contains("LOG_ANALYTICS_WORKSPACE_ID"));
    assert!(preflight::all_passed(&results));
}

#[tokio::test]
async fn token_problems_fail_the_token_checks() {
    let la = demo_workspace().await;
    let oai = OpenAiFake::start().await;
    let settings = settings(&la, &oai, Some(API_KEY));

    // No credential could be built: the reason and its fix are shown.
    let mut inputs = PreflightInputs::new(Ok(&settings), NOW);
    inputs.credential = Some(CredentialSource::Unavailable(
        "authentication method `managed-identity` is selected but not configured: IDENTITY_ENDPOINT is not set; fix: run on Azure or unset PIM_AUTH".to_owned(),
    ));
    let results = preflight::run(inputs).await;
    let token = find(&results, "token log-analytics");
    assert_eq!(token.status, CheckStatus::Fail);
    assert!(
        token.detail.contains("IDENTITY_ENDPOINT is not set"),
        "{token}"
    );
    assert_eq!(
        token.remedy.as_deref(),
        Some("run on Azure or unset PIM_AUTH")
    );
    // Without a client the workspace check fails rather than passing silently.
    assert_eq!(find(&results, "workspace").status, CheckStatus::Fail);

    // An expired token is a failure too.
    let results = preflight::run(live_inputs(
        &settings,
        static_credential(NOW - time::Duration::hours(1)),
    ))
    .await;
    let token = find(&results, "token log-analytics");
    assert_eq!(token.status, CheckStatus::Fail, "{token}");
    assert!(
        token.detail.contains("expired at 2026-11-20T11:00:00Z"),
        "{token}"
    );
    assert!(!printed(&results).contains(TOKEN));
}

/// A credential whose every attempt fails, with a multi-line message like the chain's.
#[derive(Debug)]
struct Refusing;

#[async_trait::async_trait]
impl TokenCredential for Refusing {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no Azure credential could get a token for {}; tried:\n- Azure CLI [cli]: az not found; fix: install the Azure CLI",
                scopes.join(" ")
            ),
        ))
    }
}

#[tokio::test]
async fn a_credential_that_gets_no_token_fails_each_needed_scope() {
    let la = demo_workspace().await;
    let oai = OpenAiFake::start().await;
    let settings = settings(&la, &oai, None);
    let mut inputs = live_inputs(
        &settings,
        CredentialSource::Other {
            credential: Arc::new(Refusing),
            label: "refusing".to_owned(),
        },
    );
    inputs.destination_tokens = vec![pim_deliver::TokenNeed::monitor(DCE)];

    let results = preflight::run(inputs).await;

    for (name, scope) in [
        (
            "token log-analytics",
            "https://api.loganalytics.io/.default",
        ),
        (
            "token azure-openai",
            "https://cognitiveservices.azure.com/.default",
        ),
        ("token azure-monitor", "https://monitor.azure.com/.default"),
    ] {
        let token = find(&results, name);
        assert_eq!(token.status, CheckStatus::Fail, "{token}");
        assert!(token.detail.contains(scope), "{token}");
        // The chain's attempt list arrives on one line.
        assert!(!token.detail.contains('\n'), "{token}");
        assert!(token.detail.contains("tried: - Azure CLI [cli]"), "{token}");
        assert!(token.remedy.as_deref().unwrap().contains("az login"));
    }
    assert_eq!(find(&results, "workspace").status, CheckStatus::Fail);
    assert_eq!(find(&results, "model").status, CheckStatus::Fail);
    assert!(
        find(&results, "model")
            .remedy
            .as_deref()
            .unwrap()
            .contains("token check")
    );
    // Nothing was sent without a token.
    assert!(la.queries().is_empty());
    assert!(oai.calls().is_empty());
}

/// Hands out a token for any scope and records the scopes it was asked for.
#[derive(Debug, Default)]
struct RecordingCredential(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl TokenCredential for RecordingCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.0
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| (*s).to_owned()));
        Ok(AccessToken::new(TOKEN, EXPIRY))
    }
}

#[tokio::test]
async fn every_token_check_names_and_requests_the_scope_of_its_endpoints_cloud() {
    let clouds = [
        (
            "public",
            "https://api.loganalytics.azure.com",
            "https://res.openai.azure.com",
            "https://dce-1.westeurope-1.ingest.monitor.azure.com",
            [
                "https://api.loganalytics.io/.default",
                "https://cognitiveservices.azure.com/.default",
                "https://monitor.azure.com/.default",
            ],
        ),
        (
            "China",
            "https://api.loganalytics.azure.cn",
            "https://res.openai.azure.cn",
            "https://dce-1.chinaeast2-1.ingest.monitor.azure.cn",
            [
                "https://api.loganalytics.azure.cn/.default",
                "https://cognitiveservices.azure.cn/.default",
                "https://monitor.azure.cn/.default",
            ],
        ),
        (
            "US Government",
            "https://api.loganalytics.us",
            "https://res.openai.azure.us",
            "https://dce-1.usgovvirginia-1.ingest.monitor.azure.us",
            [
                "https://api.loganalytics.us/.default",
                "https://cognitiveservices.azure.us/.default",
                "https://monitor.azure.us/.default",
            ],
        ),
    ];
    for (cloud, la, oai, dce, scopes) in clouds {
        let settings = Settings::from_env(&env(&[
            ("LOG_ANALYTICS_WORKSPACE_ID", WORKSPACE),
            ("LOG_ANALYTICS_ENDPOINT", la),
            ("AZURE_OPENAI_ENDPOINT", oai),
            ("AZURE_OPENAI_DEPLOYMENT", "pim-gpt"),
        ]))
        .unwrap();
        // The adapters derive their scopes with the same functions.
        assert_eq!(
            [
                pim_loganalytics::log_analytics_scope(&settings.log_analytics_endpoint),
                pim_openai::entra_scope_for(oai),
                pim_domain::cloud::monitor_scope(dce),
            ],
            scopes,
            "{cloud}"
        );
        let recorder = Arc::new(RecordingCredential::default());
        let mut inputs = PreflightInputs::new(Ok(&settings), NOW);
        inputs.credential = Some(CredentialSource::Other {
            credential: recorder.clone(),
            label: "recorder".to_owned(),
        });
        inputs.destination_tokens = vec![pim_deliver::TokenNeed::monitor(dce)];
        let results = preflight::run(inputs).await;
        assert_eq!(*recorder.0.lock().unwrap(), scopes, "{cloud}");
        for (name, scope) in [
            "token log-analytics",
            "token azure-openai",
            "token azure-monitor",
        ]
        .into_iter()
        .zip(scopes)
        {
            let check = find(&results, name);
            assert_eq!(check.status, CheckStatus::Pass, "{check}");
            assert!(
                check
                    .detail
                    .starts_with(&format!("{scope} ({cloud} cloud) from recorder")),
                "{check}"
            );
        }
    }
}

#[tokio::test]
async fn a_host_of_no_known_cloud_gets_the_public_scope_and_says_so() {
    let settings = Settings::from_env(&env(&[
        ("LOG_ANALYTICS_WORKSPACE_ID", WORKSPACE),
        ("LOG_ANALYTICS_ENDPOINT", "https://la-proxy.corp.example"),
    ]))
    .unwrap();
    let recorder = Arc::new(RecordingCredential::default());
    let mut inputs = PreflightInputs::new(Ok(&settings), NOW);
    inputs.credential = Some(CredentialSource::Other {
        credential: recorder.clone(),
        label: "recorder".to_owned(),
    });
    let results = preflight::run(inputs).await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        ["https://api.loganalytics.io/.default"]
    );
    assert_eq!(
        find(&results, "token log-analytics").detail,
        "https://api.loganalytics.io/.default (host la-proxy.corp.example is in no known Azure cloud, public-cloud scope assumed) from recorder, expires 2030-01-01T00:00:00Z"
    );
}
