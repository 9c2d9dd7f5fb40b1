//! The JSON form of each answer, as a served agent will send it: the data is there as data
//! (activations as objects, the result table as columns and rows), untrusted text unescaped
//! but safely quoted by JSON, and every answer tagged with its `kind`.

use std::sync::Arc;

use pim_agent::{Answer, render_text};
use pim_openai::ScriptedChatModel;
use pim_testkit::Failure;
use serde_json::{Value, json};

use crate::chat::{BAD_KQL, END, GOOD_KQL, demo_session, fenced, live_session};

fn to_json(answer: &Answer) -> Value {
    serde_json::to_value(answer).unwrap()
}

#[tokio::test]
async fn command_answers_carry_their_activations_as_objects() {
    let mut s = demo_session(None);

    let scan = s.handle_line("scan", END).await;
    let j = to_json(&scan);
    assert_eq!(j["kind"], "scan");
    assert_eq!(j["activations"], 15);
    assert_eq!(j["findings"], 10);
    assert_eq!(j["hours"], 24);
    assert_eq!(j["window"]["end"], "2026-11-20T18:00:00Z");
    let identities = j["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 14);
    assert_eq!(identities[1]["number"], 2);
    assert_eq!(identities[1]["label"], "mallory.reed@contoso-demo.com");
    let mallory = &identities[1]["activations"][0];
    assert!(mallory.is_object(), "{mallory}");
    assert_eq!(mallory["principal"]["upn"], "mallory.reed@contoso-demo.com");
    assert_eq!(mallory["role"]["name"], "Owner");
    assert!(
        mallory["justification"]
            .as_str()
            .unwrap()
            .starts_with("INC0051234 routine patching.")
    );
    assert_eq!(mallory["assessment"]["verdict"], "not_aligned");
    // The helper a served agent uses for its `activations` list sees the same objects, which
    // are the JSON report's own.
    let all = scan.activations();
    assert_eq!(all.len(), 15);
    let before = identities[0]["activations"].as_array().unwrap().len();
    assert_eq!(serde_json::to_value(all[before]).unwrap(), *mallory);

    let what = to_json(&s.handle_line("what did 2 do", END).await);
    assert_eq!(what["kind"], "activity");
    assert_eq!(what["user"], "mallory.reed@contoso-demo.com");
    let activities = what["activations"][0]["activities"].as_array().unwrap();
    assert_eq!(activities.len(), 4);
    assert!(activities.iter().all(|a| a["operation"].is_string()));

    let assess = to_json(&s.handle_line("assess them", END).await);
    assert_eq!(assess["kind"], "assessment");
    let assessment = &assess["activations"][0]["assessment"];
    assert_eq!(assessment["risk"], "critical");
    assert!(
        assessment["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("prompt_injection_suspected"))
    );

    let printed = to_json(&s.handle_line("report", END).await);
    assert_eq!(printed["kind"], "report");
    assert_eq!(printed["activations"], 15);
    assert!(
        printed["markdown"]
            .as_str()
            .unwrap()
            .contains("mallory.reed@")
    );

    let path = std::env::temp_dir().join(format!("pim-agent-json-{}.md", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let line = format!("report {}", path.display());
    let saved = to_json(&s.handle_line(&line, END).await);
    assert_eq!(saved["kind"], "report_saved");
    assert_eq!(saved["path"], path.display().to_string());
    assert_eq!(saved["findings"], 10);
    assert_eq!(saved["through_link"], Value::Null);
    let again = s.handle_line(&line, END).await;
    let j = to_json(&again);
    assert_eq!(j["kind"], "needs_confirmation");
    assert!(j["reason"].as_str().unwrap().ends_with("already exists"));
    assert_eq!(j["confirm"]["line"], format!("report! {}", path.display()));
    assert_eq!(
        again.confirm().unwrap().line,
        format!("report! {}", path.display())
    );
    std::fs::remove_file(&path).unwrap();

    let kql = to_json(&s.handle_line("show kql", END).await);
    assert_eq!(kql["kind"], "last_query");
    assert!(kql["kql"].as_str().unwrap().starts_with("AuditLogs\n"));

    let nobody = to_json(&s.handle_line("what did 40 do", END).await);
    assert_eq!(nobody["kind"], "problem");
    assert_eq!(nobody["problem"], "unknown_user");
    assert_eq!(
        nobody["reason"],
        "there is no user 40: the last scan listed users 1 to 14"
    );
    let absent = to_json(
        &s.handle_line("what did nobody@contoso-demo.com do", END)
            .await,
    );
    assert_eq!(absent["problem"], "not_activated");
    assert_eq!(absent["user"], "nobody@contoso-demo.com");
    assert_eq!(absent["window"]["start"], "2026-11-19T18:00:00Z");

    let question = to_json(&s.handle_line("who deleted things?", END).await);
    assert_eq!(question, json!({"kind": "problem", "problem": "no_model"}));
    assert_eq!(
        to_json(&s.handle_line("help", END).await),
        json!({"kind": "help"})
    );
    assert_eq!(
        to_json(&s.handle_line("", END).await),
        json!({"kind": "nothing"})
    );
    let bye = s.handle_line("exit", END).await;
    assert!(bye.ends_session());
    assert_eq!(to_json(&bye), json!({"kind": "exit"}));
}

#[tokio::test]
async fn a_query_answer_carries_the_query_the_table_and_the_repairs() {
    let model = ScriptedChatModel::new([
        fenced(BAD_KQL),
        fenced(GOOD_KQL),
        // Untrusted words: kept as they came in JSON, made printable in the text.
        "Several users\u{1b}[2J changed resources.".to_owned(),
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
    let answer = s.handle_line("who changed resources yesterday?", END).await;
    let Answer::Query(query) = &answer else {
        panic!("{answer:?}");
    };
    assert_eq!(query.kql, fake.queries()[1].kql);
    let j = to_json(&answer);
    assert_eq!(j["kind"], "query");
    assert_eq!(j["question"], "who changed resources yesterday");
    assert_eq!(j["kql"], query.kql.as_str());
    assert!(j["kql"].as_str().unwrap().ends_with("\n| take 1000"));
    assert_eq!(j["row_cap"], 1000);
    assert_eq!(j["added_time_filter"], false);
    assert_eq!(j["max_rows"], 20);
    let columns = j["table"]["columns"].as_array().unwrap();
    assert!(columns.iter().any(|c| c["name"] == "Caller"), "{columns:?}");
    let rows = j["table"]["rows"].as_array().unwrap();
    // Every row returned is data, not only the 20 the text shows.
    assert!(rows.len() > 20, "{}", rows.len());
    assert!(
        rows.iter()
            .all(|r| r.as_array().unwrap().len() == columns.len())
    );
    let repairs = j["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 1);
    let repair = repairs[0].as_str().unwrap();
    assert!(repair.starts_with("the last query failed: "), "{repair}");
    assert!(repair.contains("line 3, position 25"), "{repair}");
    assert_eq!(j["summary"]["status"], "text");
    assert_eq!(
        j["summary"]["text"],
        "Several users\u{1b}[2J changed resources."
    );
    let text = render_text(&answer);
    assert!(
        text.ends_with("Several users [2J changed resources."),
        "{text}"
    );
}

#[tokio::test]
async fn failed_questions_say_why_as_data() {
    let model = ScriptedChatModel::new((0..4).map(|i| fenced(&format!("{BAD_KQL} // {i}"))));
    let (mut s, fake) = live_session(&model).await;
    fake.fail_kql_containing(
        "countt",
        Failure::BadQuery {
            line: 3,
            pos: 25,
            token: "countt".into(),
        },
    );
    let j = to_json(&s.handle_line("who changed resources yesterday?", END).await);
    assert_eq!(j["kind"], "problem");
    assert_eq!(j["problem"], "no_working_query");
    assert_eq!(j["repairs"], 3);
    assert!(
        j["last_problem"]
            .as_str()
            .unwrap()
            .starts_with("the last query failed: ")
    );
    let model: Arc<dyn pim_openai::ChatModel> =
        Arc::new(ScriptedChatModel::new([fenced(GOOD_KQL)]));
    let mut offline = demo_session(Some(model));
    let j = to_json(&offline.handle_line("who changed resources?", END).await);
    assert_eq!(j, json!({"kind": "problem", "problem": "no_workspace"}));
}
