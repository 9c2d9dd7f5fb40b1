//! One scripted session per model family (reference §10): the scan's assessments come from the
//! model, and free-form questions get an answer, whatever the family.

use pim_testkit::{
    FakeModel, FakeReply, LogAnalyticsFake, ManagedIdentityFake, OpenAiFake, Responder,
    assessment_json, token_for,
};

use crate::support::chat_with_env;

const MI_SECRET: &str = "mi-header-secret-chat-families";
const KEY: &str = "oai-key-chat-families-hidden";

/// Judges activations, writes one KQL query, and answers in words.
fn model() -> Responder {
    Responder::new(|call| {
        if call.user_text().contains("<<<DATA pim-assess") {
            FakeReply::Json(assessment_json("aligned", 0.9, "Fits.", &[], &[]))
        } else if call.system_text().contains("Kusto Query Language") {
            FakeReply::Json(
                "```kql\nAzureActivity\n| summarize changes = count() by Caller\n| order by changes desc\n```"
                    .into(),
            )
        } else {
            FakeReply::Json("jane.doe made the most changes.".into())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_assesses_with_the_model_and_answers_questions() {
    for (deployment, family) in [
        ("gpt-4o", FakeModel::Gpt4o),
        ("gpt-4.1", FakeModel::Gpt41),
        ("o4-mini", FakeModel::O4Mini),
        ("gpt-5-mini", FakeModel::Gpt5Mini),
        ("Llama-3.3-70B-Instruct", FakeModel::FoundryLlama),
    ] {
        let la = LogAnalyticsFake::start().await;
        la.with_demo_tenant().await.unwrap();
        la.expect_token(token_for("https://api.loganalytics.io"));
        let mi = ManagedIdentityFake::start(MI_SECRET).await;
        let oai = OpenAiFake::start_with(model()).await;
        oai.expect_api_key(KEY);
        oai.with_deployment(deployment, family);
        let env: Vec<(String, String)> = [
            (
                "LOG_ANALYTICS_WORKSPACE_ID",
                "11111111-2222-4333-8444-555555555555".to_owned(),
            ),
            ("LOG_ANALYTICS_ENDPOINT", la.uri()),
            ("IDENTITY_ENDPOINT", mi.endpoint()),
            ("IDENTITY_HEADER", MI_SECRET.to_owned()),
            ("PIM_AUTH", "managed-identity".to_owned()),
            ("AZURE_OPENAI_ENDPOINT", oai.uri()),
            ("AZURE_OPENAI_DEPLOYMENT", deployment.to_owned()),
            ("AZURE_OPENAI_API_KEY", KEY.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let script = "scan\nreport\nwho changed the most resources?\nexit\n";
        let run = tokio::task::spawn_blocking(move || {
            chat_with_env(&["--end", "2026-11-20T18:00:00Z"], script, &env)
        })
        .await
        .unwrap();
        assert_eq!(run.code, Some(0), "{deployment}: {}", run.stderr);
        let out = &run.stdout;
        assert!(
            !out.contains("model assessment failed"),
            "{deployment}: {out}"
        );

        // The report lists every activation with its assessor: the model judged every one the
        // auditor asks it about (all but no_activity and the unreadable row, where the rules'
        // verdict stands and no model is asked).
        let mut by_model = 0;
        for line in out.lines().filter(|l| l.contains("**Verdict:**")) {
            if line.contains("**assessor:** model+rules") {
                by_model += 1;
            } else {
                assert!(
                    line.contains("**assessor:** rules")
                        && (line.contains("**Verdict:** no_activity")
                            || line.contains("**Verdict:** unknown")),
                    "{deployment}: {line}"
                );
            }
        }
        assert!(
            by_model >= 10,
            "{deployment}: {by_model} by the model\n{out}"
        );

        // The free-form question got its query and its answer.
        assert!(
            out.contains("jane.doe made the most changes."),
            "{deployment}: {out}"
        );
        let calls = oai.calls();
        let kql = calls
            .iter()
            .find(|c| c.system_text().contains("Kusto Query Language"))
            .unwrap();
        if family.is_reasoning() {
            assert_eq!(kql.temperature, None, "{deployment}");
            assert_eq!(kql.max_completion_tokens, Some(4_000));
            assert_eq!(kql.reasoning_effort.as_deref(), Some("low"));
            assert!(oai.rejected_calls().is_empty(), "{deployment}");
        } else {
            assert_eq!(kql.temperature, Some(0.0), "{deployment}");
            assert_eq!(kql.reasoning_effort, None);
        }
        assert!(!out.contains(KEY) && !run.stderr.contains(KEY));
    }
}
