//! Scripted chat sessions, read as `pim-chat` prints them: the commands on the demo tenant, and
//! free-form questions through the real Log Analytics client against the loopback fake, with a
//! scripted model.

use std::sync::Arc;

use pim_agent::{Answer, BANNER, Confirm, Session, SessionOptions, render_text};
use pim_auth::StaticTokenCredential;
use pim_core::{Auditor, KqlSource, demo_source};
use pim_loganalytics::{LogAnalyticsClient, LogAnalyticsOptions};
use pim_openai::{ChatModel, ScriptedChatModel};
use pim_testkit::{Failure, LogAnalyticsFake};
use time::macros::datetime;

pub(crate) const END: time::OffsetDateTime = datetime!(2026-11-20 18:00 UTC);

fn options() -> SessionOptions {
    SessionOptions {
        end: Some(END),
        ..SessionOptions::default()
    }
}

/// An answer with its text as `pim-chat` prints it, whether it ends the session, and what to
/// confirm: what the tests read.
struct Said {
    text: String,
    exit: bool,
    confirm: Option<Confirm>,
}

fn said(answer: Answer) -> Said {
    Said {
        text: render_text(&answer),
        exit: answer.ends_session(),
        confirm: answer.confirm().cloned(),
    }
}

pub(crate) fn demo_session(model: Option<Arc<dyn ChatModel>>) -> Session {
    let source = demo_source().unwrap();
    let auditor = Arc::new(Auditor::builder(source.clone()).build());
    Session::new(auditor, source, model, options())
}

/// A session whose source is the real Log Analytics client aimed at the fake.
pub(crate) async fn live_session(model: &ScriptedChatModel) -> (Session, LogAnalyticsFake) {
    let fake = LogAnalyticsFake::start().await;
    fake.with_demo_tenant().await.unwrap();
    let credential = Arc::new(StaticTokenCredential::new(
        "test-token",
        datetime!(2099-01-01 00:00 UTC),
    ));
    let client = LogAnalyticsClient::new(
        vec!["00000000-0000-0000-0000-000000000001".into()],
        credential,
        Some(LogAnalyticsOptions {
            endpoint: fake.uri(),
            ..LogAnalyticsOptions::default()
        }),
    )
    .unwrap();
    let source: Arc<dyn KqlSource> = Arc::new(client);
    let auditor = Arc::new(Auditor::builder(source.clone()).build());
    let model: Arc<dyn ChatModel> = Arc::new(model.clone());
    (Session::new(auditor, source, Some(model), options()), fake)
}

pub(crate) fn fenced(kql: &str) -> String {
    format!("Here is the query:\n```kql\n{kql}\n```")
}

pub(crate) const BAD_KQL: &str =
    "AzureActivity\n| where TimeGenerated > ago(1d)\n| summarize deletions = countt() by Caller";
pub(crate) const GOOD_KQL: &str = "AzureActivity\n| where TimeGenerated > ago(1d)\n| project TimeGenerated, Caller, OperationNameValue";

#[tokio::test]
async fn a_scripted_investigation_on_the_demo_tenant() {
    assert!(BANNER.starts_with("PIM Activity Audit Agent\n"));
    assert!(BANNER.contains("`scan`") && BANNER.contains("`exit`"));
    let mut s = demo_session(None);

    let scan = said(s.handle_line("scan", END).await);
    assert!(!scan.exit);
    assert!(
        scan.text.contains("15 activations by 14 identities"),
        "{}",
        scan.text
    );
    assert!(
        scan.text.contains(
            " 2. mallory.reed@contoso-demo.com — Owner on Prod-Sub, activated 15h 12m ago, reason: \"INC0051234 routine patching."
        ),
        "{}",
        scan.text
    );
    assert!(
        s.completions()
            .contains(&"mallory.reed@contoso-demo.com".to_owned())
    );
    assert!(s.completions().contains(&"scan".to_owned()));
    assert!(s.last_kql().unwrap().starts_with("AuditLogs\n"));

    let what = said(s.handle_line("What did 2 do?", END).await);
    assert!(
        what.text
            .starts_with("mallory.reed@contoso-demo.com — 1 activation"),
        "{}",
        what.text
    );
    assert!(
        what.text
            .contains("Microsoft.Authorization/roleAssignments/write")
    );
    assert!(what.text.contains("4 operations"));

    let align = said(
        s.handle_line("does their activity align with the reason?", END)
            .await,
    );
    assert!(
        align
            .text
            .starts_with("mallory.reed@contoso-demo.com — Owner on Prod-Sub:"),
        "{}",
        align.text
    );
    assert!(align.text.contains("Verdict: not_aligned · risk: critical"));
    assert!(align.text.contains("prompt_injection_suspected"));
    assert!(align.text.contains("Rationale: "));

    // Another user, by UPN, then a pronoun follows them.
    let li = said(
        s.handle_line("what did LI.WEI@contoso-demo.com do", END)
            .await,
    );
    assert!(
        li.text
            .starts_with("li.wei@contoso-demo.com — 1 activation"),
        "{}",
        li.text
    );
    let assess = said(s.handle_line("assess them", END).await);
    assert!(
        assess
            .text
            .starts_with("li.wei@contoso-demo.com — Global Administrator"),
        "{}",
        assess.text
    );
    let second = said(s.handle_line("what did the second one do", END).await);
    assert!(second.text.starts_with("mallory.reed@"), "{}", second.text);

    let nobody = said(
        s.handle_line("what did nobody@contoso-demo.com do", END)
            .await,
    );
    assert_eq!(
        nobody.text,
        "nobody@contoso-demo.com did not activate a PIM role between 2026-11-19 18:00 UTC and 2026-11-20 18:00 UTC."
    );
    let out_of_range = said(s.handle_line("what did 40 do", END).await);
    assert_eq!(
        out_of_range.text,
        "There is no user 40: the last scan listed users 1 to 14."
    );

    let path = std::env::temp_dir().join(format!("pim-chat-report-{}.md", std::process::id()));
    let report = said(
        s.handle_line(&format!("report {}", path.display()), END)
            .await,
    );
    assert!(
        report
            .text
            .starts_with("Wrote the Markdown report (15 activations, 10 findings)"),
        "{}",
        report.text
    );
    let markdown = std::fs::read_to_string(&path).unwrap();
    // Issue 9: a second `report PATH` does not replace the file; it asks, and `report!` insists.
    std::fs::write(&path, "precious").unwrap();
    let again = said(
        s.handle_line(&format!("report {}", path.display()), END)
            .await,
    );
    assert!(again.text.starts_with("Not written: "), "{}", again.text);
    assert!(again.text.contains("already exists"), "{}", again.text);
    let confirm = again.confirm.clone().unwrap();
    assert_eq!(confirm.line, format!("report! {}", path.display()));
    assert!(confirm.question.ends_with("Overwrite it?"), "{confirm:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    let forced = said(s.handle_line(&confirm.line, END).await);
    assert!(
        forced.text.starts_with("Wrote the Markdown report"),
        "{}",
        forced.text
    );
    assert_eq!(forced.confirm, None);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), markdown);
    let device = said(s.handle_line("report /dev/null", END).await);
    assert!(device.text.contains("is a system path"), "{}", device.text);
    assert_eq!(device.confirm, None);
    std::fs::remove_file(&path).unwrap();
    assert!(markdown.contains("mallory.reed@contoso-demo.com"));
    let printed = said(s.handle_line("report", END).await);
    assert_eq!(printed.text, markdown.trim_end());

    let kql = said(s.handle_line("show kql", END).await);
    assert!(
        kql.text.contains("where LoggedByService =~ \"PIM\""),
        "{}",
        kql.text
    );

    let bye = said(s.handle_line("exit", END).await);
    assert!(bye.exit);
}

#[tokio::test]
async fn any_upn_can_be_asked_about_before_a_scan() {
    let mut s = demo_session(None);
    let they = said(s.handle_line("what did they do", END).await);
    assert!(
        they.text.starts_with("I'm not sure who you mean"),
        "{}",
        they.text
    );
    let what = said(
        s.handle_line("what did jane.doe@contoso-demo.com do", END)
            .await,
    );
    assert!(
        what.text
            .starts_with("jane.doe@contoso-demo.com — 2 activations"),
        "{}",
        what.text
    );
    assert!(
        what.text
            .contains("INC0042900 delete orphaned managed disks")
    );
    assert!(s.last_kql().is_some());
    let report = said(s.handle_line("report", END).await);
    assert!(report.text.contains("jane.doe@contoso-demo.com"));
}

#[tokio::test]
async fn free_form_questions_need_a_model_and_a_workspace() {
    let mut s = demo_session(None);
    let q = said(
        s.handle_line("which users deleted resources yesterday?", END)
            .await,
    );
    assert!(q.text.contains("needs a model"), "{}", q.text);
    assert!(
        q.text
            .contains("AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT")
    );
    assert!(q.text.contains("OPENAI_BASE_URL and OPENAI_MODEL"));
    assert!(!q.exit);

    let model = ScriptedChatModel::new([fenced(GOOD_KQL)]);
    let mut s = demo_session(Some(Arc::new(model.clone())));
    let q = said(
        s.handle_line("which users deleted resources yesterday?", END)
            .await,
    );
    assert!(
        q.text.contains("needs a Log Analytics workspace"),
        "{}",
        q.text
    );
    assert!(model.requests().is_empty(), "no model call is wasted");
}

#[tokio::test]
async fn a_failed_query_is_repaired_from_the_error() {
    let model = ScriptedChatModel::new([
        fenced(BAD_KQL),
        fenced(GOOD_KQL),
        "Several users changed resources yesterday.".to_owned(),
    ]);
    let (mut s, fake) = live_session(&model).await;
    fake.fail_next_kql_containing(
        1,
        "countt",
        Failure::BadQuery {
            line: 3,
            pos: 25,
            token: "countt".into(),
        },
    );
    let out = said(s.handle_line("who changed resources yesterday?", END).await);

    let queries = fake.queries();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(queries[0].kql.contains("countt()"));
    assert!(queries[1].kql.starts_with(GOOD_KQL), "{}", queries[1].kql);
    // The repair request carried the failed query and where it failed.
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let repair = &requests[1].messages.last().unwrap().content;
    assert!(repair.contains("countt()"), "{repair}");
    assert!(
        repair.contains("line 3") && repair.contains("position 25"),
        "{repair}"
    );
    // The answer in words got the question and the rows as data.
    let answer = &requests[2].messages[1].content;
    assert!(answer.starts_with("Question: who changed resources yesterday"));
    assert!(answer.contains("<<<DATA"));

    let lines: Vec<&str> = out.text.lines().collect();
    // The fake serves the whole demo table whatever the projection: the columns are its own.
    assert!(lines[0].contains("  Caller  "), "{}", out.text);
    assert!(lines[0].contains("OperationNameValue"));
    assert!(lines[1].starts_with("---"));
    assert_eq!(lines.len(), 2 + 20 + 1 + 2, "{}", out.text);
    assert!(lines[22].starts_with("… ") && lines[22].ends_with(" more rows"));
    assert_eq!(
        lines.last().unwrap(),
        &"Several users changed resources yesterday."
    );
    assert_eq!(s.last_kql().unwrap(), queries[1].kql);

    // The exchange goes along with the next question.
    model.push_answer(fenced(GOOD_KQL));
    model.push_answer("Same as before.");
    said(s.handle_line("and the day before?", END).await);
    let requests = model.requests();
    let next = &requests[3];
    let texts: Vec<&str> = next.messages.iter().map(|m| m.content.as_str()).collect();
    assert!(texts.contains(&"who changed resources yesterday"));
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Several users changed resources yesterday."))
    );
}

#[tokio::test]
async fn repairs_that_all_fail_end_with_a_clear_message() {
    let model =
        ScriptedChatModel::new((0..4).map(|i| fenced(&format!("{BAD_KQL} // attempt {i}"))));
    let (mut s, fake) = live_session(&model).await;
    fake.fail_kql_containing(
        "countt",
        Failure::BadQuery {
            line: 3,
            pos: 25,
            token: "countt".into(),
        },
    );
    let out = said(s.handle_line("who changed resources yesterday?", END).await);
    assert_eq!(fake.queries().len(), 4, "one query and 3 repairs");
    assert_eq!(model.requests().len(), 4);
    assert!(
        out.text
            .starts_with("I could not get a working query after 3 repairs"),
        "{}",
        out.text
    );
    assert!(out.text.contains("countt"));
    assert!(!out.text.contains("panicked") && !out.text.contains("RetriesExhausted"));
    assert!(s.last_kql().unwrap().contains("attempt 3"));
}

#[tokio::test]
async fn management_commands_from_the_model_never_reach_the_workspace() {
    let model = ScriptedChatModel::new([
        fenced(".drop table AuditLogs"),
        fenced(GOOD_KQL),
        "Done.".to_owned(),
    ]);
    let (mut s, fake) = live_session(&model).await;
    let out = said(s.handle_line("clean up the audit logs", END).await);
    let queries = fake.queries();
    assert_eq!(queries.len(), 1);
    assert!(queries.iter().all(|q| !q.kql.contains(".drop")));
    let refusal = model.requests()[1].messages.last().unwrap().content.clone();
    assert!(refusal.contains("was not run"), "{refusal}");
    assert!(refusal.contains(".drop table AuditLogs"));
    assert!(out.text.ends_with("Done."), "{}", out.text);
}

/// Issue 9, "KQL row cap": one row can hold a whole table, so the chat measures the result.
/// Every free-form query carries the API `timespan`, the time control (the KQL filter is a hint).
#[tokio::test]
async fn one_row_holding_everything_is_refused_and_every_query_has_a_timespan() {
    const EVERYTHING: &str =
        "AzureActivity | where TimeGenerated > ago(1d) | summarize make_list(pack_all())";
    let model = ScriptedChatModel::new([
        fenced(EVERYTHING),
        fenced(GOOD_KQL),
        "Several users changed resources.".to_owned(),
    ]);
    let fake = LogAnalyticsFake::start().await;
    // 9 MB in one cell, over the default 8 MiB: served before the demo tables match.
    let secret = "s3cr3t-row-".repeat(9_000_000 / 11);
    fake.with_table_for(
        |kql| kql.contains("pack_all"),
        pim_domain::Table {
            name: "PrimaryResult".into(),
            columns: vec![pim_domain::Column {
                name: "list_".into(),
                kind: "dynamic".into(),
            }],
            rows: vec![vec![serde_json::json!(secret)]],
        },
    );
    fake.with_demo_tenant().await.unwrap();
    let credential = Arc::new(StaticTokenCredential::new(
        "test-token",
        datetime!(2099-01-01 00:00 UTC),
    ));
    let client = LogAnalyticsClient::new(
        vec!["00000000-0000-0000-0000-000000000001".into()],
        credential,
        Some(LogAnalyticsOptions {
            endpoint: fake.uri(),
            ..LogAnalyticsOptions::default()
        }),
    )
    .unwrap();
    let source: Arc<dyn KqlSource> = Arc::new(client);
    let auditor = Arc::new(Auditor::builder(source.clone()).build());
    let shared: Arc<dyn ChatModel> = Arc::new(model.clone());
    let mut s = Session::new(auditor, source, Some(shared), options());

    let out = said(s.handle_line("dump every activity row", END).await);
    let queries = fake.queries();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!(queries[0].kql, format!("{EVERYTHING}\n| take 1000"));
    for q in &queries {
        assert_eq!(
            q.timespan.as_deref(),
            Some("2026-08-22T18:00:00Z/2026-11-20T18:00:00Z"),
            "{}",
            q.kql
        );
    }
    // The model was told why and asked for a smaller result; the row went nowhere.
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let refusal = &requests[1].messages.last().unwrap().content;
    assert!(refusal.contains("its result was not used"), "{refusal}");
    assert!(
        refusal.contains("in 1 row(s), over the limit of 8388608 bytes"),
        "{refusal}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.messages.iter().all(|m| !m.content.contains("s3cr3t")))
    );
    assert!(
        !out.text.contains("s3cr3t"),
        "{}",
        &out.text[..out.text.len().min(500)]
    );
    assert!(out.text.ends_with("Several users changed resources."));
}

#[test]
fn sessions_and_their_turns_can_move_between_threads() {
    fn is_send<T: Send>(_: &T) {}
    let mut s = demo_session(None);
    is_send(&s);
    let turn = s.handle_line("scan", END);
    is_send(&turn);
}
