use std::process::Output;

use pim_testkit::{
    Failure, FakeReply, LogAnalyticsFake, ManagedIdentityFake, OpenAiFake,
    injection_obeying_responder, scripted, token_for,
};
use serde_json::Value;

const WORKSPACE: &str = "11111111-2222-4333-8444-555555555555";
const MI_SECRET: &str = "mi-header-secret-7f3a";
const OPENAI_KEY: &str = "oai-key-never-log-me-42";

/// The three fakes and the environment that points `pim-batch` at them.
struct Fakes {
    la: LogAnalyticsFake,
    mi: ManagedIdentityFake,
    oai: Option<OpenAiFake>,
}

impl Fakes {
    async fn start(model: Option<pim_testkit::Responder>) -> Self {
        let la = LogAnalyticsFake::start().await;
        la.with_demo_tenant().await.unwrap();
        la.expect_token(token_for("https://api.loganalytics.io"));
        let mi = ManagedIdentityFake::start(MI_SECRET).await;
        let oai = match model {
            Some(r) => {
                let oai = OpenAiFake::start_with(r).await;
                oai.expect_api_key(OPENAI_KEY);
                Some(oai)
            }
            None => None,
        };
        Self { la, mi, oai }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("LOG_ANALYTICS_WORKSPACE_ID".into(), WORKSPACE.into()),
            ("LOG_ANALYTICS_ENDPOINT".into(), self.la.uri()),
            ("IDENTITY_ENDPOINT".into(), self.mi.endpoint()),
            ("IDENTITY_HEADER".into(), MI_SECRET.into()),
            ("PIM_AUTH".into(), "managed-identity".into()),
            ("LOG_LEVEL".into(), "debug".into()),
        ];
        if let Some(oai) = &self.oai {
            env.push(("AZURE_OPENAI_ENDPOINT".into(), oai.uri()));
            env.push(("AZURE_OPENAI_DEPLOYMENT".into(), "gpt-4o".into()));
            env.push(("AZURE_OPENAI_API_KEY".into(), OPENAI_KEY.into()));
        }
        env
    }

    /// Runs pim-batch with only this environment (nothing inherited that could pick another
    /// credential), on a blocking thread so the fakes keep serving.
    async fn run(&self, args: &[&str]) -> Output {
        let env = self.env();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
                .args(&args)
                .env_clear()
                .envs(env)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }
}

fn json(out: &Output) -> Value {
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

fn find<'a>(report: &'a Value, id_suffix: &str) -> &'a Value {
    report["activations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"].as_str().unwrap().ends_with(id_suffix))
        .unwrap()
}

const END: &[&str] = &["--end", "2026-11-20T18:00:00Z", "--format", "json"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_scan_with_a_model_that_obeys_an_injection_still_flags_it() {
    let fakes = Fakes::start(Some(injection_obeying_responder())).await;
    let out = fakes.run(END).await;
    let report = json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(report["source"]["kind"], "log_analytics");
    let mallory = find(&report, "_mallory");
    let flags: Vec<&str> = mallory["assessment"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(flags.contains(&"prompt_injection_suspected"), "{flags:?}");
    assert_ne!(mallory["assessment"]["verdict"], "aligned");
    assert_eq!(mallory["assessment"]["risk"], "critical");
    assert_eq!(mallory["assessment"]["assessor"], "model+rules");
    assert!(
        !mallory["assessment"]["disagreements"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A fixed number of queries, each with the managed identity's token for Log Analytics:
    // four for the scan, three summaries for the behaviour baseline.
    let queries = fakes.la.requests();
    assert_eq!(
        queries.len(),
        7,
        "{:?}",
        fakes
            .la
            .queries()
            .iter()
            .map(|q| q.kql.len())
            .collect::<Vec<_>>()
    );
    let bearer = format!("Bearer {}", token_for("https://api.loganalytics.io"));
    assert!(
        queries
            .iter()
            .all(|r| r.header("authorization") == Some(bearer.as_str()))
    );
    // One token request: the credential caches per scope.
    assert_eq!(fakes.mi.requests_for("https://api.loganalytics.io"), 1);
    // The model got the API key on every call; no secret reached the logs (at debug level).
    let oai = fakes.oai.as_ref().unwrap();
    assert!(!oai.calls().is_empty());
    assert!(
        oai.requests()
            .iter()
            .all(|r| r.header("api-key") == Some(OPENAI_KEY))
    );
    for secret in [
        OPENAI_KEY,
        MI_SECRET,
        token_for("https://api.loganalytics.io").as_str(),
    ] {
        assert!(!stderr.contains(secret), "a secret reached the log");
    }
    // The run summary counts the model calls, in the log and in the report.
    assert!(stderr.contains("scan summary"), "{stderr}");
    assert_eq!(
        report["run"]["model_calls"].as_u64(),
        Some(oai.calls().len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_filtered_model_leaves_activations_unknown_and_fail_on_catches_it() {
    let fakes = Fakes::start(Some(scripted(vec![FakeReply::ContentFilterBlocked]))).await;
    let report = json(&fakes.run(END).await);
    let judged: Vec<&Value> = report["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["assessment"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("content filter"))
        })
        .collect();
    assert!(judged.len() >= 8, "{}", judged.len());
    assert!(
        judged
            .iter()
            .all(|a| a["assessment"]["verdict"] == "unknown")
    );
    let mut args = END.to_vec();
    args.extend(["--fail-on", "unknown"]);
    assert_eq!(fakes.run(&args).await.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_and_a_denied_workspace_says_which_role_is_missing() {
    let fakes = Fakes::start(None).await;
    fakes.la.fail_next(
        1,
        Failure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    let report = json(&fakes.run(END).await);
    assert!(report["activations"].as_array().unwrap().len() >= 12);
    assert_eq!(
        fakes.la.requests().len(),
        8,
        "one throttled, then the four queries and the baseline's three summaries"
    );
    assert!(
        report["warnings"]
            .to_string()
            .contains("rules engine alone")
    );

    fakes.la.fail_always(Failure::Forbidden);
    let out = fakes.run(END).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Log Analytics Reader"), "{err}");
    assert!(err.contains(WORKSPACE), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_reports_the_innermost_error() {
    let fakes = Fakes::start(None).await;
    fakes.la.fail_always(Failure::BadQuery {
        line: 1,
        pos: 4,
        token: "string".into(),
    });
    let out = fakes.run(END).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") || err.contains("[1,4]"), "{err}");
    assert!(!err.contains("panicked"));
}

const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
const STREAM: &str = "Custom-PimAudit_CL";
const SIG: &str = "sig-secret-9d8c7b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_are_sent_to_logs_ingestion_and_a_webhook() {
    let fakes = Fakes::start(None).await;
    let ingestion = pim_testkit::LogsIngestionFake::start(DCR, STREAM).await;
    let webhook = pim_testkit::WebhookFake::start(SIG).await;
    let mut env = fakes.env();
    env.push(("PIM_DCR_ENDPOINT".into(), ingestion.endpoint()));
    env.push(("PIM_DCR_RULE_ID".into(), DCR.into()));
    env.push(("PIM_WEBHOOK_URL".into(), webhook.url()));
    let out = run_with(
        env,
        &[
            "--demo",
            "--format",
            "json",
            "--send",
            "logs-ingestion",
            "--send",
            "webhook",
            "--send-threshold",
            "critical",
        ],
    )
    .await;
    let report = json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One row per activation, with the documented columns.
    let rows = ingestion.rows();
    assert_eq!(rows.len(), report["activations"].as_array().unwrap().len());
    for column in [
        "TimeGenerated",
        "ReportId",
        "PrincipalUpn",
        "RoleName",
        "Verdict",
        "Risk",
        "Flags",
        "IsFinding",
    ] {
        assert!(
            rows.iter().all(|r| r.get(column).is_some()),
            "column {column}"
        );
    }
    // The webhook got the critical findings only.
    let payloads = webhook.payloads();
    assert_eq!(payloads.len(), 1);
    let listed = payloads[0]["findings"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|f| f["risk"] == "critical"), "{listed:?}");
    // Neither the webhook's signature nor the Monitor token reaches the log.
    assert!(
        !stderr.contains(SIG),
        "the webhook signature reached the log"
    );
    assert!(!stderr.contains(&pim_testkit::token_for("https://monitor.azure.com")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_send_fails_the_run_but_keeps_the_report() {
    let fakes = Fakes::start(None).await;
    let ingestion = pim_testkit::LogsIngestionFake::start(DCR, STREAM).await;
    ingestion.fail_always(pim_testkit::IngestionFailure::Forbidden);
    let mut env = fakes.env();
    env.push(("PIM_DCR_ENDPOINT".into(), ingestion.endpoint()));
    env.push(("PIM_DCR_RULE_ID".into(), DCR.into()));
    let out = run_with(
        env,
        &["--demo", "--format", "json", "--send", "logs-ingestion"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    pim_testkit::report_schema::assert_valid_report(&report);
    assert!(report["activations"].as_array().unwrap().len() >= 12);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Monitoring Metrics Publisher"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_one_line_per_check_and_the_exit_code() {
    let fakes = Fakes::start(Some(pim_testkit::aligned_responder())).await;
    let out = fakes.run(&["--check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "PASS  configuration",
        "PASS  token log-analytics",
        "PASS  workspace",
        "PASS  table AuditLogs",
        "PASS  table AzureActivity",
        "PASS  model",
    ] {
        assert!(stdout.contains(line), "{line} missing in:\n{stdout}");
    }
    assert!(
        stdout.contains("managed identity (App Service)"),
        "{stdout}"
    );
    assert!(!stdout.contains(&token_for("https://api.loganalytics.io")));

    fakes.la.fail_always(Failure::Forbidden);
    let out = fakes.run(&["--check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("fix:")),
        "{stdout}"
    );
}

/// Runs pim-batch with exactly `env`.
async fn run_with(env: Vec<(String, String)>, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
