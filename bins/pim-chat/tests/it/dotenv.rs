//! pim-chat's own variables take effect when set only in a `.env` file (issue 11): the real
//! binary runs in a directory holding that `.env`, with only the platform's managed identity
//! variables in its environment (they are read from the process only).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use pim_testkit::{
    FakeReply, LogAnalyticsFake, ManagedIdentityFake, OpenAiFake, Responder, assessment_json,
    token_for,
};

const MI_SECRET: &str = "mi-header-secret-chat-dotenv";
const KEY: &str = "oai-key-chat-dotenv";

/// A model that always writes a query of `AzureActivity`, answers questions in words, and
/// judges activations `aligned`.
fn model() -> Responder {
    Responder::new(move |call| {
        if call.user_text().contains("<<<DATA pim-assess") {
            FakeReply::Json(assessment_json("aligned", 0.9, "Fits.", &[], &[]))
        } else if call.system_text().contains("Kusto Query Language") {
            FakeReply::Json(
                "```kql\nAzureActivity\n| summarize changes = count() by Caller\n```".into(),
            )
        } else {
            FakeReply::Json("jane.doe made the most changes.".into())
        }
    })
}

/// Runs pim-chat in a fresh directory whose `.env` holds `dotenv`, with `process` as its
/// whole environment (and `HOME`), `input` on stdin; returns (exit code, stdout, stderr).
fn chat_in(
    dotenv: &[(&str, String)],
    process: &[(&str, String)],
    input: &str,
) -> (Option<i32>, String, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pim-chat-dotenv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = dotenv.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(dir.join(".env"), text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pim-chat"))
        .args(["--end", "2026-11-20T18:00:00Z"])
        .env_clear()
        .envs(process.iter().map(|(k, v)| (*k, v.as_str())))
        .env("HOME", &dir)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_tables_and_max_repairs_come_from_dotenv() {
    let la = LogAnalyticsFake::start().await;
    la.with_demo_tenant().await.unwrap();
    la.expect_token(token_for("https://api.loganalytics.io"));
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let oai = OpenAiFake::start_with(model()).await;
    oai.expect_api_key(KEY);
    let dotenv = vec![
        (
            "LOG_ANALYTICS_WORKSPACE_ID",
            "11111111-2222-4333-8444-555555555555".to_owned(),
        ),
        ("LOG_ANALYTICS_ENDPOINT", la.uri()),
        ("PIM_AUTH", "managed-identity".to_owned()),
        ("AZURE_OPENAI_ENDPOINT", oai.uri()),
        ("AZURE_OPENAI_DEPLOYMENT", "gpt-4o".to_owned()),
        ("AZURE_OPENAI_API_KEY", KEY.to_owned()),
        // Only AuditLogs may be read, and one repair is asked for.
        ("PIM_ALLOWED_TABLES", "AuditLogs".to_owned()),
        ("PIM_MAX_REPAIRS", "1".to_owned()),
    ];
    let process = vec![
        ("IDENTITY_ENDPOINT", mi.endpoint()),
        ("IDENTITY_HEADER", MI_SECRET.to_owned()),
    ];
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        chat_in(&dotenv, &process, "who changed the most resources?\nexit\n")
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "stderr: {err}");
    // The model's AzureActivity query is refused before it runs, repaired once, refused again.
    assert!(out.contains("after 1 repair:"), "{out}");
    assert!(out.contains("AzureActivity"), "{out}");
    assert!(!out.contains("jane.doe made the most changes."), "{out}");
    assert!(
        la.queries()
            .iter()
            .all(|q| !q.kql.contains("count() by Caller")),
        "a query of a table outside PIM_ALLOWED_TABLES ran"
    );
}
