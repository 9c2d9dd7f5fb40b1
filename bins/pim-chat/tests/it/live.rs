use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use pim_testkit::{
    Failure, FakeReply, LogAnalyticsFake, ManagedIdentityFake, OpenAiFake, Responder,
    assessment_json, token_for,
};

use crate::support::chat_with_env;

const MI_SECRET: &str = "mi-header-secret-chat";
const KEY: &str = "oai-key-chat-never-shown";

/// A model that writes the queried KQL answers in turn, answers questions in words, and gives a
/// plain assessment when the scan asks it to judge an activation.
fn model(kql_answers: Vec<&str>) -> Responder {
    let queue = Arc::new(Mutex::new(
        kql_answers
            .into_iter()
            .map(str::to_owned)
            .collect::<VecDeque<_>>(),
    ));
    Responder::new(move |call| {
        let system = call.system_text();
        if call.user_text().contains("<<<DATA pim-assess") {
            FakeReply::Json(assessment_json("aligned", 0.9, "Fits.", &[], &[]))
        } else if system.contains("Kusto Query Language") {
            let next = queue
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| "AuditLogs | bogus".into());
            FakeReply::Json(format!("```kql\n{next}\n```"))
        } else {
            FakeReply::Json("jane.doe made the most changes.".into())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_repairs_a_failed_query_and_gives_up_clearly() {
    let la = LogAnalyticsFake::start().await;
    la.with_demo_tenant().await.unwrap();
    la.expect_token(token_for("https://api.loganalytics.io"));
    // The first free-form query fails to parse; its repair runs. The second question's queries
    // all fail.
    la.fail_next_kql_containing(
        1,
        "count() by Caller",
        Failure::BadQuery {
            line: 2,
            pos: 3,
            token: "summarize".into(),
        },
    );
    la.fail_kql_containing(
        "bogus",
        Failure::BadQuery {
            line: 1,
            pos: 12,
            token: "bogus".into(),
        },
    );
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let oai = OpenAiFake::start_with(model(vec![
        "AzureActivity\n| summarize changes = count() by Caller",
        "AzureActivity\n| summarize changes = count() by Caller\n| order by changes desc",
    ]))
    .await;
    oai.expect_api_key(KEY);
    let env: Vec<(String, String)> = vec![
        (
            "LOG_ANALYTICS_WORKSPACE_ID".into(),
            "11111111-2222-4333-8444-555555555555".into(),
        ),
        ("LOG_ANALYTICS_ENDPOINT".into(), la.uri()),
        ("IDENTITY_ENDPOINT".into(), mi.endpoint()),
        ("IDENTITY_HEADER".into(), MI_SECRET.into()),
        ("PIM_AUTH".into(), "managed-identity".into()),
        ("AZURE_OPENAI_ENDPOINT".into(), oai.uri()),
        ("AZURE_OPENAI_DEPLOYMENT".into(), "gpt-4o".into()),
        ("AZURE_OPENAI_API_KEY".into(), KEY.into()),
        ("LOG_LEVEL".into(), "debug".into()),
    ];
    let script = "scan\nwhat did 2 do\ndoes their activity align with the reason?\n\
                  who changed the most resources?\nwhich users broke things?\nshow kql\nexit\n";
    let run = tokio::task::spawn_blocking(move || {
        chat_with_env(&["--end", "2026-11-20T18:00:00Z"], script, &env)
    })
    .await
    .unwrap();
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let out = &run.stdout;
    // scan → what did 2 do → align.
    assert!(out.contains("mallory.reed@contoso-demo.com"), "{out}");
    assert!(out.contains("Verdict"), "{out}");
    // The scan's model assessments got valid answers (none failed).
    assert!(!out.contains("model assessment failed"), "{out}");
    // The repaired question: a table, then the answer in words.
    assert!(out.contains("jane.doe made the most changes."), "{out}");
    // The question whose repairs all fail ends with a clear message, not a trace.
    assert!(out.contains("after 3 repairs"), "{out}");
    assert!(!out.contains("panicked"));
    // The failed query was sent once, the repaired one after it.
    let kqls: Vec<String> = la.queries().into_iter().map(|q| q.kql).collect();
    assert!(
        kqls.iter().any(|k| k.contains("order by changes desc")),
        "{kqls:?}"
    );
    assert_eq!(kqls.iter().filter(|k| k.contains("bogus")).count(), 4);
    // No secret reaches the transcript or the debug log.
    for secret in [
        KEY,
        MI_SECRET,
        token_for("https://api.loganalytics.io").as_str(),
    ] {
        assert!(
            !out.contains(secret) && !run.stderr.contains(secret),
            "a secret leaked"
        );
    }
}
