//! Every documented variable takes effect when it is set only in a `.env` file (issue 11): the
//! real binary runs in a fresh directory holding that `.env`, with an environment cleared of
//! everything but what a test puts there on purpose (the platform's managed identity
//! variables, which are read from the process only).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use pim_testkit::{
    ChatAuth, ChatRoute, LogAnalyticsFake, LogsIngestionFake, ManagedIdentityFake, OpenAiFake,
    WebhookFake, aligned_responder, token_for,
};
use serde_json::Value;

const WORKSPACE: &str = "11111111-2222-4333-8444-555555555555";
const MI_SECRET: &str = "mi-header-secret-dotenv";
const KEY: &str = "oai-key-dotenv-never-logged";
const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
const DEMO: &[&str] = &["--demo", "--format", "json"];

/// Which test proves which variables. A new variable in `pim_core::config::VARIABLES` fails
/// [`every_documented_variable_has_a_dotenv_test`] until a test here (or, for pim-chat's own,
/// in pim-chat's) covers it.
const COVERED: &[(&str, &[&str])] = &[
    (
        "ticket_systems_by_basic_auth_and_jira_cloud",
        &[
            "PIM_SERVICENOW_URL",
            "PIM_SERVICENOW_USER",
            "PIM_SERVICENOW_PASSWORD",
            "PIM_JIRA_URL",
            "PIM_JIRA_EMAIL",
            "PIM_JIRA_API_TOKEN",
            "PIM_JIRA_PROJECTS",
        ],
    ),
    (
        "ticket_systems_by_oauth_and_a_jira_pat",
        &["PIM_SERVICENOW_TOKEN", "PIM_JIRA_PAT"],
    ),
    (
        "scan_defaults_and_the_log_level",
        &[
            "PIM_SCAN_HOURS",
            "PIM_LOOKBACK_HOURS",
            "PIM_MAX_ACTIVITIES",
            "LOG_LEVEL",
        ],
    ),
    ("privileged_patterns", &["PIM_PRIVILEGED_PATTERNS"]),
    ("query_concurrency", &["PIM_QUERY_CONCURRENCY"]),
    ("baseline_days", &["PIM_BASELINE_DAYS"]),
    ("json_logs", &["LOG_FORMAT"]),
    (
        "a_workspace_and_a_pinned_credential",
        &[
            "LOG_ANALYTICS_WORKSPACE_ID",
            "LOG_ANALYTICS_ENDPOINT",
            "PIM_AUTH",
        ],
    ),
    (
        "an_azure_openai_reasoning_deployment",
        &[
            "AZURE_OPENAI_ENDPOINT",
            "AZURE_OPENAI_DEPLOYMENT",
            "AZURE_OPENAI_API_VERSION",
            "AZURE_OPENAI_API_KEY",
            "PIM_MODEL_FAMILY",
            "PIM_MODEL_REASONING_EFFORT",
            "PIM_MODEL_MAX_OUTPUT_TOKENS",
        ],
    ),
    (
        "model_budgets_and_the_deadline",
        &[
            "PIM_MODEL_RPM",
            "PIM_MODEL_TPM",
            "PIM_MODEL_CONCURRENCY",
            "PIM_MODEL_DEADLINE",
        ],
    ),
    (
        "an_openai_compatible_server",
        &["OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"],
    ),
    (
        "both_destinations",
        &[
            "PIM_DCR_ENDPOINT",
            "PIM_DCR_RULE_ID",
            "PIM_DCR_STREAM",
            "PIM_WEBHOOK_URL",
        ],
    ),
    (
        "a_service_principal_and_a_workload_identity",
        &[
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_AUTHORITY_HOST",
            "AZURE_FEDERATED_TOKEN_FILE",
        ],
    ),
    (
        "platform_variables_are_ignored_with_a_warning",
        &["IDENTITY_ENDPOINT", "IDENTITY_HEADER"],
    ),
    // bins/pim-batch/tests/it/state.rs runs three scheduled scans with PIM_STATE from the
    // environment; this one with it from .env.
    ("the_state_store", &["PIM_STATE"]),
    ("a_heartbeat_row_per_run", &["PIM_DCR_RUN_STREAM"]),
    // OpenTelemetry; bins/pim-batch/tests/it/otel.rs checks what is exported in detail.
    (
        "opentelemetry",
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_SERVICE_NAME",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_SDK_DISABLED",
        ],
    ),
    // pim-chat's own settings; bins/pim-chat/tests/it/dotenv.rs runs pim-chat with them.
    ("pim-chat", &["PIM_MAX_REPAIRS", "PIM_ALLOWED_TABLES"]),
    // pim-chat serve's settings: bins/pim-chat/tests/it/serve.rs runs `pim-chat serve` with
    // them in .env (the Entra ones against pim-testkit's OidcFake); PIM_SERVE_IDLE and
    // PIM_SERVE_MAX_SESSIONS are read from .env in pim-core's
    // serve_variables_take_effect_from_a_dotenv_file.
    (
        "pim-chat serve",
        &[
            "PIM_SERVE_AUTH",
            "PIM_SERVE_TENANT_ID",
            "PIM_SERVE_AUTHORITY",
            "PIM_SERVE_AUDIENCE",
            "PIM_SERVE_ROLE",
            "PIM_SERVE_MAX_BODY",
            "PIM_SERVE_SESSIONS_PER_USER",
            "PIM_SERVE_MESSAGES_PER_MINUTE",
            "PIM_SERVE_IDLE",
            "PIM_SERVE_MAX_SESSIONS",
        ],
    ),
];

#[test]
fn every_documented_variable_has_a_dotenv_test() {
    let covered: BTreeSet<&str> = COVERED
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    let documented: BTreeSet<&str> = pim_core::config::VARIABLES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(covered, documented);
}

/// A fresh directory holding `.env` with `vars` (single-quoted, so nothing is expanded).
fn dir_with_dotenv(vars: &[(&str, String)]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pim-batch-dotenv-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(dir.join(".env"), text).unwrap();
    dir
}

/// Runs pim-batch in a directory whose `.env` holds `dotenv`, with only `process` in its
/// environment, on a blocking thread so the fakes keep serving.
async fn run(dotenv: &[(&str, String)], process: &[(&str, String)], args: &[&str]) -> Output {
    let dir = dir_with_dotenv(dotenv);
    let process: Vec<(String, String)> = process
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
            .args(&args)
            .current_dir(&dir)
            .env_clear()
            .envs(process)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn report(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&out.stdout).unwrap();
    pim_testkit::report_schema::assert_valid_report(&report);
    report
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_defaults_and_the_log_level() {
    let out = run(
        &[
            ("PIM_SCAN_HOURS", s("6")),
            ("PIM_LOOKBACK_HOURS", s("48")),
            ("PIM_MAX_ACTIVITIES", s("1")),
            ("LOG_LEVEL", s("warn")),
        ],
        &[],
        DEMO,
    )
    .await;
    let r = report(&out);
    assert_eq!(r["settings"]["hours"], 6);
    assert_eq!(r["settings"]["lookback_hours"], 48);
    assert_eq!(r["settings"]["max_activities_per_activation"], 1);
    assert!(r["activations"].as_array().unwrap().iter().any(|a| {
        a["assessment"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "activity_truncated")
    }));
    assert!(!stderr(&out).contains("INFO"), "{}", stderr(&out));

    // The process environment wins over .env, and a flag over both.
    let process = run(
        &[("PIM_SCAN_HOURS", s("6"))],
        &[("PIM_SCAN_HOURS", s("3"))],
        DEMO,
    )
    .await;
    assert_eq!(report(&process)["settings"]["hours"], 3);
    let mut args = DEMO.to_vec();
    args.extend(["--hours", "2"]);
    let flag = run(
        &[("PIM_SCAN_HOURS", s("6"))],
        &[("PIM_SCAN_HOURS", s("3"))],
        &args,
    )
    .await;
    assert_eq!(report(&flag)["settings"]["hours"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_days() {
    let default = report(&run(&[], &[], DEMO).await);
    assert_eq!(default["settings"]["baseline_days"], 30);
    // The demo's tables reach back a day, not 30: each activation says so.
    let first = &default["activations"][0]["baseline"];
    assert_eq!(first["status"], "unavailable", "{first}");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("exports cover only "),
        "{first}"
    );
    let off = report(&run(&[("PIM_BASELINE_DAYS", s("0"))], &[], DEMO).await);
    assert_eq!(off["settings"]["baseline_days"], 0);
    assert!(
        off["activations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.get("baseline").is_none())
    );
    // A flag wins over the variable.
    let mut args = DEMO.to_vec();
    args.extend(["--baseline-days", "1"]);
    let flag = report(&run(&[("PIM_BASELINE_DAYS", s("0"))], &[], &args).await);
    assert_eq!(flag["settings"]["baseline_days"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_patterns() {
    let default = report(&run(&[], &[], DEMO).await);
    let none_privileged = report(
        &run(
            &[("PIM_PRIVILEGED_PATTERNS", s("no-role-is-named-this"))],
            &[],
            DEMO,
        )
        .await,
    );
    // With no role name privileged, the role assignment in the demo is an ordinary one.
    let rule = "privileged directory role assigned";
    assert!(default["activations"].to_string().contains(rule));
    assert!(!none_privileged["activations"].to_string().contains(rule));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_systems_by_basic_auth_and_jira_cloud() {
    let fake = pim_testkit::TicketFake::start().await;
    let vars = [
        ("PIM_SERVICENOW_URL", fake.uri()),
        ("PIM_SERVICENOW_USER", s(pim_testkit::SERVICENOW_USER)),
        (
            "PIM_SERVICENOW_PASSWORD",
            s(pim_testkit::SERVICENOW_PASSWORD),
        ),
        ("PIM_JIRA_URL", fake.uri()),
        ("PIM_JIRA_EMAIL", s(pim_testkit::JIRA_EMAIL)),
        ("PIM_JIRA_API_TOKEN", s(pim_testkit::JIRA_API_TOKEN)),
        ("PIM_JIRA_PROJECTS", s("ops")),
    ];
    let out = run(&vars, &[], &["--check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("PASS  ticket servicenow"), "{stdout}");
    assert!(stdout.contains("PASS  ticket jira"), "{stdout}");
    assert!(
        !stdout.contains(pim_testkit::SERVICENOW_PASSWORD),
        "{stdout}"
    );
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&s("/rest/api/3/issue/OPS-0")), "{paths:?}");

    // A demo scan verifies the demo's ServiceNow numbers; the fake holds none of them.
    let scan = report(&run(&vars, &[], DEMO).await);
    let checks: Vec<Value> = scan["activations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["ticket_checks"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(!checks.is_empty());
    assert!(
        checks.iter().any(|c| c["status"] == "not_found"),
        "{checks:?}"
    );
    assert!(scan["activations"].to_string().contains("ticket_not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_systems_by_oauth_and_a_jira_pat() {
    let fake = pim_testkit::TicketFake::start().await;
    fake.servicenow_auth(pim_testkit::FakeAuth::Bearer(s("sn-oauth-dotenv")))
        .jira_auth(pim_testkit::FakeAuth::Bearer(s("jira-pat-dotenv")));
    let out = run(
        &[
            ("PIM_SERVICENOW_URL", fake.uri()),
            ("PIM_SERVICENOW_TOKEN", s("sn-oauth-dotenv")),
            ("PIM_JIRA_URL", fake.uri()),
            ("PIM_JIRA_PAT", s("jira-pat-dotenv")),
            ("PIM_JIRA_PROJECTS", s("SEC")),
        ],
        &[],
        &["--check"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("PASS  ticket servicenow"), "{stdout}");
    assert!(stdout.contains("PASS  ticket jira"), "{stdout}");
    assert!(!stdout.contains("jira-pat-dotenv") && !stdout.contains("sn-oauth-dotenv"));
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&s("/rest/api/2/issue/SEC-0")), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs() {
    let out = run(&[("LOG_FORMAT", s("json"))], &[], DEMO).await;
    report(&out);
    let lines: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let parsed: Result<Value, _> = serde_json::from_str(&line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_and_a_pinned_credential() {
    let la = LogAnalyticsFake::start().await;
    la.with_demo_tenant().await.unwrap();
    la.expect_token(token_for("https://api.loganalytics.io"));
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let out = run(
        &[
            ("LOG_ANALYTICS_WORKSPACE_ID", s(WORKSPACE)),
            ("LOG_ANALYTICS_ENDPOINT", la.uri()),
            ("PIM_AUTH", s("managed-identity")),
        ],
        // The platform sets these; azure_identity reads them from the process only.
        &[
            ("IDENTITY_ENDPOINT", mi.endpoint()),
            ("IDENTITY_HEADER", s(MI_SECRET)),
        ],
        &["--end", "2026-11-20T18:00:00Z", "--format", "json"],
    )
    .await;
    let r = report(&out);
    assert_eq!(r["source"]["kind"], "log_analytics");
    assert!(!la.requests().is_empty());
    assert_eq!(mi.requests_for("https://api.loganalytics.io"), 1);

    // PIM_AUTH from .env pins the method: `env` is not configured, and --check says so.
    let out = run(
        &[
            ("LOG_ANALYTICS_WORKSPACE_ID", s(WORKSPACE)),
            ("LOG_ANALYTICS_ENDPOINT", la.uri()),
            ("PIM_AUTH", s("env")),
        ],
        &[
            ("IDENTITY_ENDPOINT", mi.endpoint()),
            ("IDENTITY_HEADER", s(MI_SECRET)),
        ],
        &["--check"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("auth: env"), "{stdout}");
    // The configuration line names the variables set and which came from .env, never a value.
    assert!(stdout.contains("PIM_AUTH (.env)"), "{stdout}");
    assert!(stdout.contains("IDENTITY_HEADER"), "{stdout}");
    assert!(!stdout.contains("IDENTITY_HEADER (.env)"), "{stdout}");
    assert!(!stdout.contains(MI_SECRET), "{stdout}");
    assert!(
        stdout.contains("`env` is selected but not configured"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_concurrency() {
    // Slow answers, so that queries sent together are in flight together.
    let scan = |dotenv: &'static [(&'static str, &'static str)]| async move {
        let la = LogAnalyticsFake::start().await;
        la.with_demo_tenant().await.unwrap();
        la.set_latency(std::time::Duration::from_millis(300));
        let mi = ManagedIdentityFake::start(MI_SECRET).await;
        let mut vars = vec![
            ("LOG_ANALYTICS_WORKSPACE_ID", s(WORKSPACE)),
            ("LOG_ANALYTICS_ENDPOINT", la.uri()),
            ("PIM_AUTH", s("managed-identity")),
        ];
        vars.extend(dotenv.iter().map(|(k, v)| (*k, s(v))));
        let out = run(
            &vars,
            &[
                ("IDENTITY_ENDPOINT", mi.endpoint()),
                ("IDENTITY_HEADER", s(MI_SECRET)),
            ],
            &["--end", "2026-11-20T18:00:00Z", "--format", "json"],
        )
        .await;
        report(&out);
        la.max_in_flight()
    };
    // The two PIM-events queries run at once by default; one at a time with the bound at 1.
    assert!(scan(&[]).await >= 2);
    assert_eq!(scan(&[("PIM_QUERY_CONCURRENCY", "1")]).await, 1);
}

/// A model fake that answers `aligned`, requiring [`KEY`].
async fn model_fake() -> OpenAiFake {
    let oai = OpenAiFake::start_with(aligned_responder()).await;
    oai.expect_api_key(KEY);
    oai
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_openai_reasoning_deployment() {
    let oai = model_fake().await;
    let out = run(
        &[
            ("AZURE_OPENAI_ENDPOINT", oai.uri()),
            ("AZURE_OPENAI_DEPLOYMENT", s("pim-prod")),
            ("AZURE_OPENAI_API_VERSION", s("2024-12-01-preview")),
            ("AZURE_OPENAI_API_KEY", s(KEY)),
            ("PIM_MODEL_FAMILY", s("reasoning")),
            ("PIM_MODEL_REASONING_EFFORT", s("high")),
            ("PIM_MODEL_MAX_OUTPUT_TOKENS", s("7000")),
        ],
        &[],
        DEMO,
    )
    .await;
    let r = report(&out);
    assert!(
        r["activations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["assessment"]["assessor"] == "model+rules")
    );
    let calls = oai.calls();
    assert!(!calls.is_empty());
    for call in &calls {
        assert_eq!(call.route, ChatRoute::Deployment);
        assert_eq!(call.deployment.as_deref(), Some("pim-prod"));
        assert_eq!(call.api_version.as_deref(), Some("2024-12-01-preview"));
        assert_eq!(call.auth, ChatAuth::ApiKey);
        assert_eq!(call.reasoning_effort.as_deref(), Some("high"));
        assert_eq!(call.max_completion_tokens, Some(7000));
        assert_eq!(call.temperature, None);
    }
    assert!(!stderr(&out).contains(KEY));
}

/// Runs the demo with the model fake and `extra` in `.env`; returns the model calls made and
/// the report's warnings.
async fn model_run(oai: &OpenAiFake, extra: &[(&str, String)]) -> (usize, String) {
    let mut dotenv = vec![
        ("AZURE_OPENAI_ENDPOINT", oai.uri()),
        ("AZURE_OPENAI_DEPLOYMENT", s("gpt-4o")),
        ("AZURE_OPENAI_API_KEY", s(KEY)),
    ];
    dotenv.extend(extra.iter().cloned());
    let before = oai.calls().len();
    let r = report(&run(&dotenv, &[], DEMO).await);
    (oai.calls().len() - before, r["warnings"].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_budgets_and_the_deadline() {
    let oai = model_fake().await;
    let (unbounded, warnings) = model_run(&oai, &[]).await;
    assert!(unbounded >= 8, "{unbounded} calls");
    assert!(!warnings.contains("deadline"), "{warnings}");

    // One request a minute: one call, then the deadline (from .env too) ends the stage.
    let deadline = ("PIM_MODEL_DEADLINE", s("8s"));
    let (calls, warnings) = model_run(&oai, &[deadline.clone(), ("PIM_MODEL_RPM", s("1"))]).await;
    assert_eq!(calls, 1);
    assert!(warnings.contains("deadline (8s) was reached"), "{warnings}");

    // A token budget of about one call a minute does the same.
    let (calls, warnings) =
        model_run(&oai, &[deadline.clone(), ("PIM_MODEL_TPM", s("4000"))]).await;
    assert_eq!(calls, 1);
    assert!(warnings.contains("deadline"), "{warnings}");

    // One call in flight at a time, each answered after 3 s: at most three reach the model
    // before the deadline, where the default eight in flight reach it many more times.
    oai.set_latency(Duration::from_secs(3));
    let (parallel, _) = model_run(&oai, std::slice::from_ref(&deadline)).await;
    assert!(parallel >= 6, "{parallel} calls");
    let (calls, warnings) = model_run(&oai, &[deadline, ("PIM_MODEL_CONCURRENCY", s("1"))]).await;
    assert!((1..=3).contains(&calls), "{calls} calls");
    assert!(warnings.contains("deadline"), "{warnings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_server() {
    let oai = OpenAiFake::start_with(aligned_responder()).await;
    let out = run(
        &[
            ("OPENAI_BASE_URL", format!("{}/openai/v1", oai.uri())),
            ("OPENAI_MODEL", s("llama-3.3-70b")),
            ("OPENAI_API_KEY", s(KEY)),
        ],
        &[],
        DEMO,
    )
    .await;
    report(&out);
    let calls = oai.calls();
    assert!(!calls.is_empty());
    for call in &calls {
        assert_eq!(call.route, ChatRoute::V1);
        assert_eq!(call.model.as_deref(), Some("llama-3.3-70b"));
        assert_eq!(call.auth, ChatAuth::Bearer);
    }
    assert!(
        oai.requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {KEY}").as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_destinations() {
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let ingestion = LogsIngestionFake::start(DCR, "Custom-Other_CL").await;
    let webhook = WebhookFake::start("sig-dotenv-5e6f").await;
    let mut args = DEMO.to_vec();
    args.extend(["--send", "logs-ingestion", "--send", "webhook"]);
    let out = run(
        &[
            ("PIM_AUTH", s("managed-identity")),
            ("PIM_DCR_ENDPOINT", ingestion.endpoint()),
            ("PIM_DCR_RULE_ID", s(DCR)),
            ("PIM_DCR_STREAM", s("Custom-Other_CL")),
            ("PIM_WEBHOOK_URL", webhook.url()),
        ],
        &[
            ("IDENTITY_ENDPOINT", mi.endpoint()),
            ("IDENTITY_HEADER", s(MI_SECRET)),
        ],
        &args,
    )
    .await;
    let r = report(&out);
    assert_eq!(
        ingestion.rows().len(),
        r["activations"].as_array().unwrap().len()
    );
    assert_eq!(webhook.payloads().len(), 1);
    assert!(!stderr(&out).contains("sig-dotenv-5e6f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_principal_and_a_workload_identity() {
    // A service principal whose authority does not answer: the token check fails reaching
    // the authority from .env, not for want of configuration.
    let out = run(
        &[
            ("LOG_ANALYTICS_WORKSPACE_ID", s(WORKSPACE)),
            ("PIM_AUTH", s("env")),
            ("AZURE_TENANT_ID", s("00000000-0000-0000-0000-000000000000")),
            ("AZURE_CLIENT_ID", s("client-dotenv")),
            ("AZURE_CLIENT_SECRET", s("sp-secret-dotenv-xyz")),
            ("AZURE_AUTHORITY_HOST", s("http://127.0.0.1:9")),
        ],
        &[],
        &["--check"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let token = stdout
        .lines()
        .find(|l| l.contains("token log-analytics"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(token.starts_with("FAIL"), "{token}");
    assert!(!token.contains("not configured"), "{token}");
    assert!(token.contains("127.0.0.1:9"), "{token}");
    assert!(!stdout.contains("sp-secret-dotenv-xyz"));

    // A workload identity: the token file named in .env is the one read.
    let out = run(
        &[
            ("LOG_ANALYTICS_WORKSPACE_ID", s(WORKSPACE)),
            ("PIM_AUTH", s("workload-identity")),
            ("AZURE_TENANT_ID", s("00000000-0000-0000-0000-000000000000")),
            ("AZURE_CLIENT_ID", s("client-dotenv")),
            ("AZURE_FEDERATED_TOKEN_FILE", s("/nonexistent/dotenv-token")),
        ],
        &[],
        &["--check"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .find(|l| l.contains("token log-analytics"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(token.starts_with("FAIL"), "{token}");
    assert!(!token.contains("not configured"), "{token}");
    assert!(token.contains("/nonexistent/dotenv-token"), "{token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_variables_are_ignored_with_a_warning() {
    let out = run(
        &[
            ("IDENTITY_ENDPOINT", s("http://127.0.0.1:9/msi/token")),
            ("IDENTITY_HEADER", s("header-from-dotenv")),
        ],
        &[],
        DEMO,
    )
    .await;
    report(&out);
    let err = stderr(&out);
    for name in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
        assert!(err.contains(&format!(".env: {name} is ignored")), "{err}");
    }
    assert!(!err.contains("header-from-dotenv"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_dotenv_names_the_line_not_its_text() {
    let dir = dir_with_dotenv(&[]);
    std::fs::write(
        dir.join(".env"),
        "PIM_SCAN_HOURS=6\nAZURE_CLIENT_SECRET secret-value-on-a-bad-line\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
            .args(DEMO)
            .current_dir(&dir)
            .env_clear()
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(".env: lines 2 are not KEY=VALUE assignments"),
        "{err}"
    );
    assert!(!err.contains("secret-value-on-a-bad-line"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_url_naming_logs_ingestion_asks_for_no_monitor_token() {
    // The bug of issue 11: "logs-ingestion" anywhere in --send asked for Azure Monitor.
    let webhook = WebhookFake::start("sig-dotenv-li").await;
    let url = format!(
        "{}/logs-ingestion/hook?sig=sig-dotenv-li",
        webhook.url_without_query()
    );
    let send = format!("webhook={url}");
    let out = run(&[], &[], &["--check", "--send", &send]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("azure-monitor"), "{stdout}");
    assert!(stdout.contains("destination"), "{stdout}");
    assert!(!stdout.contains("sig-dotenv-li"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store() {
    let dir = dir_with_dotenv(&[("PIM_STATE", s("state/pim.db"))]);
    let out = tokio::task::spawn_blocking(move || {
        let run = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
                .args(DEMO)
                .current_dir(&dir)
                .env_clear()
                .output()
                .unwrap()
        };
        let first = run();
        assert!(
            dir.join("state/pim.db").exists(),
            "PIM_STATE from .env names the store"
        );
        (first, run())
    })
    .await
    .unwrap();
    let first = report(&out.0);
    assert!(first["activations"][0]["revision"] == 1, "{first:#}");
    assert!(first["activations"][0]["state"].is_string());
    report(&out.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_row_per_run() {
    // Issue 16: with Logs Ingestion configured (no --send needed), every run leaves one row on
    // the run stream, a failed one too, without changing the run's exit code.
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let ingestion = LogsIngestionFake::start(DCR, "Custom-Beat_CL").await;
    let dotenv = [
        ("PIM_AUTH", s("managed-identity")),
        ("PIM_DCR_ENDPOINT", ingestion.endpoint()),
        ("PIM_DCR_RULE_ID", s(DCR)),
        ("PIM_DCR_RUN_STREAM", s("Custom-Beat_CL")),
    ];
    let platform = [
        ("IDENTITY_ENDPOINT", mi.endpoint()),
        ("IDENTITY_HEADER", s(MI_SECRET)),
    ];
    let out = run(&dotenv, &platform, DEMO).await;
    let r = report(&out);
    let rows = ingestion.rows();
    assert_eq!(rows.len(), 1, "{}", stderr(&out));
    let row = &rows[0];
    let columns: BTreeSet<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let documented: BTreeSet<&str> = pim_deliver::RUN_COLUMNS.iter().map(|(n, _)| *n).collect();
    assert_eq!(columns, documented);
    assert_eq!(row["RunId"], r["report_id"]);
    assert_eq!(row["Status"], "succeeded");
    assert_eq!(row["Activations"], r["summary"]["activations"]);
    assert_eq!(row["Findings"], r["summary"]["findings"]);
    assert_eq!(row["InputProblems"], r["summary"]["problems"]);
    assert_eq!(row["Queries"], r["run"]["queries"]);
    assert_eq!(row["ModelCalls"], 0);
    assert_eq!(row["Version"], env!("CARGO_PKG_VERSION"));
    assert!(!row["Host"].as_str().unwrap().is_empty());
    assert_eq!(row["TimeGenerated"], row["EndedAt"]);

    // A run that fails still writes its row, and still exits 1.
    let mut args = DEMO.to_vec();
    args.extend(["--end", "tomorrow"]);
    let out = run(&dotenv, &platform, &args).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = ingestion.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["Status"], "failed");
    assert_eq!(rows[1]["Activations"], 0);
    assert!(rows[1]["RunId"].as_str().unwrap().starts_with("run-"));

    // A refused heartbeat is a warning: the run's own exit code stands.
    ingestion.fail_always(pim_testkit::IngestionFailure::Forbidden);
    let out = run(&dotenv, &platform, DEMO).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("heartbeat row was not written"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry() {
    let rx = pim_testkit::OtlpReceiver::start().await;
    // The per-signal endpoints win over the base one, which points nowhere.
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", s("http://127.0.0.1:9")),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/v1/traces", rx.endpoint()),
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/v1/metrics", rx.endpoint()),
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", s("x-otel-key=dotenv%2Dkey")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", s("http/protobuf")),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", s("5000")),
        ("OTEL_METRIC_EXPORT_INTERVAL", s("600000")),
        ("OTEL_SERVICE_NAME", s("pim-from-dotenv")),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            s("deployment.environment.name=dotenv"),
        ),
    ];
    report(&run(&vars, &[], DEMO).await);
    let spans = rx.spans();
    let scan = spans.iter().find(|s| s.name == "pim.scan").unwrap();
    assert_eq!(scan.service_name.as_deref(), Some("pim-from-dotenv"));
    assert_eq!(scan.resource["deployment.environment.name"], "dotenv");
    assert_eq!(rx.counter("pim.activations", &[]), 15.0);
    for r in rx.requests() {
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "x-otel-key" && v == "dotenv-key"),
            "{}",
            r.path
        );
    }
    let sent = rx.requests().len();
    // OTEL_SDK_DISABLED in .env turns it all off.
    let mut off = vars.to_vec();
    off.push(("OTEL_SDK_DISABLED", s("true")));
    report(&run(&off, &[], DEMO).await);
    assert_eq!(rx.requests().len(), sent);
}
