//! One live scan per model family (reference §10): every assessment must come from the model.

use std::process::Output;

use pim_testkit::{
    FakeModel, LogAnalyticsFake, ManagedIdentityFake, OpenAiFake, aligned_responder, token_for,
};
use serde_json::Value;

const WORKSPACE: &str = "11111111-2222-4333-8444-555555555555";
const MI_SECRET: &str = "mi-header-secret-families";
const KEY: &str = "oai-key-families-never-logged";
const END: &[&str] = &["--end", "2026-11-20T18:00:00Z", "--format", "json"];

/// The demo tenant on a Log Analytics fake, and a model fake whose `deployment` is `model`.
struct Deployment {
    la: LogAnalyticsFake,
    mi: ManagedIdentityFake,
    oai: OpenAiFake,
    deployment: &'static str,
    extra: Vec<(String, String)>,
    /// A Foundry project to call through (`…/api/projects/<project>`), with Entra auth.
    project: Option<&'static str>,
}

impl Deployment {
    async fn start(deployment: &'static str, model: FakeModel) -> Self {
        let la = LogAnalyticsFake::start().await;
        la.with_demo_tenant().await.unwrap();
        la.expect_token(token_for("https://api.loganalytics.io"));
        let mi = ManagedIdentityFake::start(MI_SECRET).await;
        let oai = OpenAiFake::start_with(aligned_responder()).await;
        oai.expect_api_key(KEY);
        oai.with_deployment(deployment, model);
        Self {
            la,
            mi,
            oai,
            deployment,
            extra: Vec::new(),
            project: None,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("LOG_ANALYTICS_WORKSPACE_ID", WORKSPACE.to_owned()),
            ("LOG_ANALYTICS_ENDPOINT", self.la.uri()),
            ("IDENTITY_ENDPOINT", self.mi.endpoint()),
            ("IDENTITY_HEADER", MI_SECRET.to_owned()),
            ("PIM_AUTH", "managed-identity".to_owned()),
            ("AZURE_OPENAI_DEPLOYMENT", self.deployment.to_owned()),
            ("LOG_LEVEL", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        match self.project {
            Some(project) => env.push((
                "AZURE_OPENAI_ENDPOINT".into(),
                format!("{}/api/projects/{project}", self.oai.uri()),
            )),
            None => {
                env.push(("AZURE_OPENAI_ENDPOINT".into(), self.oai.uri()));
                env.push(("AZURE_OPENAI_API_KEY".into(), KEY.into()));
            }
        }
        env.extend(self.extra.iter().cloned());
        env
    }

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

    /// Scans and checks that every activation was assessed by the model (with the rules).
    async fn scan_all_by_model(&self) -> (Value, String) {
        let out = self.run(END).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        pim_testkit::report_schema::assert_valid_report(&report);
        let activations = report["activations"].as_array().unwrap();
        assert!(activations.len() >= 12, "{}", activations.len());
        let asked: Vec<String> = self.oai.calls().iter().map(|c| c.user_text()).collect();
        let mut by_model = 0;
        for a in activations {
            let id = a["id"].as_str().unwrap();
            let assessment = &a["assessment"];
            let sent = asked.iter().any(|t| t.contains(id));
            if assessment["verdict"] == "no_activity"
                || assessment["rationale"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("Could not assess:"))
            {
                // Nothing to judge (no operations in the window), or a deliberately broken row
                // (no user): the rules' verdict stands whatever a model says, so the auditor
                // never asks (pim_core::Auditor::with_model).
                assert!(!sent, "{id} was sent to the model");
                assert_eq!(assessment["assessor"], "rules");
                continue;
            }
            assert!(sent, "{id} was never sent to the model");
            assert_eq!(
                assessment["assessor"], "model+rules",
                "{}: {id}: {assessment}",
                self.deployment
            );
            assert!(assessment["error"].is_null(), "{assessment}");
            by_model += 1;
        }
        assert!(by_model >= 10, "{by_model} assessed by the model");
        assert!(!stderr.contains(KEY), "the key reached the log");
        (report, stderr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpt_4o_on_a_dated_version_and_gpt_4_1_on_v1_get_temperature_0_and_a_token_cap() {
    let mut gpt4o = Deployment::start("gpt-4o", FakeModel::Gpt4o).await;
    // Dated versions keep working.
    gpt4o
        .extra
        .push(("AZURE_OPENAI_API_VERSION".into(), "2024-10-21".into()));
    gpt4o.scan_all_by_model().await;
    let gpt41 = Deployment::start("gpt-4.1", FakeModel::Gpt41).await;
    gpt41.scan_all_by_model().await;
    for (d, route) in [
        (&gpt4o, pim_testkit::ChatRoute::Deployment),
        (&gpt41, pim_testkit::ChatRoute::V1),
    ] {
        let calls = d.oai.calls();
        assert!(!calls.is_empty());
        assert!(
            d.oai.rejected_calls().is_empty(),
            "{:?}",
            d.oai.rejected_calls()
        );
        for c in &calls {
            assert_eq!(c.route, route);
            assert_eq!(c.temperature, Some(0.0));
            assert_eq!(c.max_completion_tokens, Some(600));
            assert_eq!(c.max_tokens, None);
            assert_eq!(c.reasoning_effort, None);
            assert_eq!(c.response_format.as_ref().unwrap()["type"], "json_schema");
        }
    }
    let v1 = &gpt41.oai.calls()[0];
    assert_eq!(v1.model.as_deref(), Some("gpt-4.1"));
    assert_eq!(v1.api_version, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o4_mini_and_gpt_5_mini_get_reasoning_parameters_with_room_to_reason() {
    for (deployment, model) in [
        ("o4-mini", FakeModel::O4Mini),
        ("gpt-5-mini", FakeModel::Gpt5Mini),
    ] {
        let d = Deployment::start(deployment, model).await;
        d.scan_all_by_model().await;
        assert!(d.oai.rejected_calls().is_empty(), "{deployment}");
        for c in d.oai.calls() {
            assert_eq!(c.route, pim_testkit::ChatRoute::V1);
            assert_eq!(c.temperature, None, "{deployment}");
            assert!(c.body.get("top_p").is_none());
            assert_eq!(c.max_tokens, None);
            assert_eq!(c.max_completion_tokens, Some(4_000));
            assert_eq!(c.reasoning_effort.as_deref(), Some("low"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_whose_name_says_nothing_is_recovered_from_the_service_answer() {
    // "pim-assessor" is an o4-mini: the first calls carry temperature 0 and are refused with
    // the documented 400; every one is retried with the reasoning parameters, none is unknown.
    let mut d = Deployment::start("pim-assessor", FakeModel::O4Mini).await;
    d.extra
        .push(("PIM_MODEL_REASONING_EFFORT".into(), "medium".into()));
    d.extra
        .push(("PIM_MODEL_MAX_OUTPUT_TOKENS".into(), "6000".into()));
    let (_, stderr) = d.scan_all_by_model().await;
    let rejected = d.oai.rejected_calls();
    assert!(
        (1..=8).contains(&rejected.len()),
        "at most one refusal per call in flight: {}",
        rejected.len()
    );
    assert!(rejected.iter().all(|c| c.temperature == Some(0.0)));
    for c in d.oai.calls() {
        assert_eq!(c.temperature, None);
        assert_eq!(c.max_completion_tokens, Some(6_000));
        assert_eq!(c.reasoning_effort.as_deref(), Some("medium"));
    }
    assert!(
        stderr.contains("the model rejected a request parameter"),
        "logged at info: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foundry_model_without_json_schema_falls_back_to_validated_json_mode() {
    let d = Deployment::start("Llama-3.3-70B-Instruct", FakeModel::FoundryLlama).await;
    d.scan_all_by_model().await;
    let rejected = d.oai.rejected_calls();
    assert!((1..=8).contains(&rejected.len()), "{}", rejected.len());
    for c in d.oai.calls() {
        assert_eq!(c.response_format.as_ref().unwrap()["type"], "json_object");
        assert!(c.system_text().contains("JSON Schema exactly"));
        assert_eq!(c.temperature, Some(0.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foundry_project_endpoint_takes_an_entra_token_for_the_foundry_scope() {
    let mut d = Deployment::start("gpt-5-mini", FakeModel::Gpt5Mini).await;
    d.project = Some("audit");
    d.oai.expect_bearer(token_for("https://ai.azure.com"));
    d.scan_all_by_model().await;
    let calls = d.oai.calls();
    assert!(calls.iter().all(|c| c.project.as_deref() == Some("audit")
        && c.auth == pim_testkit::ChatAuth::Bearer
        && c.route == pim_testkit::ChatRoute::V1));
    // One token for the Foundry scope (cached), none for Cognitive Services.
    assert_eq!(d.mi.requests_for("https://ai.azure.com"), 1);
    assert_eq!(d.mi.requests_for("https://cognitiveservices.azure.com"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_family_and_structured_output() {
    let d = Deployment::start("gpt-5-mini", FakeModel::Gpt5Mini).await;
    d.oai
        .set_responder(pim_testkit::Responder::fixed(pim_testkit::FakeReply::Json(
            r#"{"ok":true}"#.into(),
        )));
    let out = d.run(&["--check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("PASS  model"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("family reasoning"), "{line}");
    assert!(
        line.contains("structured output: json_schema works"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasoning_budget_too_small_for_the_hidden_reasoning_is_reported_not_hidden() {
    // The fake's o4-mini spends 1,536 hidden tokens at medium effort: a 600-token cap (what
    // every call sent before) leaves no answer, and the report says why.
    let mut d = Deployment::start("o4-mini", FakeModel::O4Mini).await;
    d.extra
        .push(("PIM_MODEL_REASONING_EFFORT".into(), "medium".into()));
    d.extra
        .push(("PIM_MODEL_MAX_OUTPUT_TOKENS".into(), "600".into()));
    let out = d.run(END).await;
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    pim_testkit::report_schema::assert_valid_report(&report);
    let failed: Vec<&Value> = report["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["assessment"]["assessor"] == "model+rules")
        .collect();
    assert!(failed.len() >= 10, "{}", failed.len());
    for a in failed {
        assert_eq!(a["assessment"]["verdict"], "unknown");
        let error = a["assessment"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("cut off at the token limit")
                && error.contains("PIM_MODEL_MAX_OUTPUT_TOKENS"),
            "{error}"
        );
    }
}
