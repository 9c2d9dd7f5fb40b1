use std::sync::Arc;
use std::time::{Duration, Instant};

use pim_domain::{Column, Table};
use pim_testkit::{
    DynamicCells, Failure, LogAnalyticsFake, RowGenerator, RowScope, reads_table, token_for,
};
use serde_json::{Value, json};

fn la_token() -> String {
    token_for("https://api.loganalytics.io")
}

async fn post(fake: &LogAnalyticsFake, kql: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/workspaces/ws-1/query", fake.uri()))
        .bearer_auth(la_token())
        .header("prefer", "wait=600")
        .json(&json!({"query": kql, "timespan": "2026-11-20T00:00:00Z/2026-11-21T00:00:00Z"}))
        .send()
        .await
        .unwrap()
}

fn small_table() -> Table {
    Table {
        name: "AzureActivity".into(),
        columns: vec![
            Column {
                name: "Caller".into(),
                kind: "string".into(),
            },
            Column {
                name: "Properties_d".into(),
                kind: "dynamic".into(),
            },
        ],
        rows: vec![vec![json!("ju@contoso.com"), json!({"statusCode": "OK"})]],
    }
}

async fn fake_with_table() -> LogAnalyticsFake {
    let fake = LogAnalyticsFake::start().await;
    fake.with_table_for(|kql| kql.contains("AzureActivity"), small_table());
    fake
}

#[tokio::test]
async fn happy_path_serves_primary_result_and_records_the_query() {
    let fake = fake_with_table().await;
    let resp = post(&fake, "AzureActivity | take 1").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "Caller", "type": "string"}, {"name": "Properties_d", "type": "dynamic"}],
            "rows": [["ju@contoso.com", "{\"statusCode\":\"OK\"}"]]}]})
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/workspaces/ws-1/query");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {}", la_token()).as_str())
    );
    let q = &fake.queries()[0];
    assert_eq!(q.workspace, "ws-1");
    assert_eq!(q.kql, "AzureActivity | take 1");
    assert_eq!(
        q.timespan.as_deref(),
        Some("2026-11-20T00:00:00Z/2026-11-21T00:00:00Z")
    );
    assert_eq!(q.prefer.as_deref(), Some("wait=600"));
    assert_eq!(fake.received_requests().await.len(), 1);

    fake.set_dynamic_cells(DynamicCells::Nested);
    let body: Value = post(&fake, "AzureActivity").await.json().await.unwrap();
    assert_eq!(body["tables"][0]["rows"][0][1], json!({"statusCode": "OK"}));
}

#[tokio::test]
async fn unmatched_query_gets_sem0100_and_auth_is_checked() {
    let fake = fake_with_table().await;
    let resp = post(&fake, "SigninLogs | take 1").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadArgumentError");
    assert_eq!(body["error"]["innererror"]["code"], "SemanticError");
    assert_eq!(body["error"]["innererror"]["innererror"]["code"], "SEM0100");
    assert!(
        body["error"]["innererror"]["innererror"]["message"]
            .as_str()
            .unwrap()
            .contains("'SigninLogs'")
    );

    let url = format!("{}/v1/workspaces/ws-1/query", fake.uri());
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&json!({"query": "AzureActivity"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthenticationFailed");

    fake.expect_token(la_token());
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token_for("https://management.azure.com"))
        .json(&json!({"query": "AzureActivity"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(post(&fake, "AzureActivity").await.status(), 200);
    // Without a JSON content type the real API answers an empty 200.
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(la_token())
        .body("query=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().is_empty());
    // Only the well-formed, authenticated queries are parsed; every request is recorded.
    assert_eq!(fake.queries().len(), 2);
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn throttling_and_server_errors_have_the_documented_shape() {
    let fake = fake_with_table().await;
    fake.fail_next(
        2,
        Failure::TooManyRequests {
            retry_after_secs: 7,
        },
    )
    .fail_next(
        1,
        Failure::ServiceUnavailable {
            retry_after_secs: Some(3),
        },
    )
    .fail_next(1, Failure::InternalError)
    .fail_next(1, Failure::GatewayTimeout);
    for _ in 0..2 {
        let resp = post(&fake, "AzureActivity").await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string());
    }
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "3");
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 500);
    assert!(resp.headers().get("retry-after").is_none());
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["innererror"]["message"],
        "Kusto query timed out"
    );
    // The injections are used up.
    assert_eq!(post(&fake, "AzureActivity").await.status(), 200);
}

#[tokio::test]
async fn partial_error_is_200_with_tables_and_error() {
    let fake = fake_with_table().await;
    fake.fail_next(
        1,
        Failure::PartialError {
            message: "Query exceeded limits".into(),
        },
    );
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["tables"][0]["rows"].as_array().unwrap().len(), 1);
    assert_eq!(body["error"]["code"], "PartialError");
    assert!(body["error"]["message"].is_string());
    assert_eq!(
        body["error"]["details"][0]["innererror"]["message"],
        "Query exceeded limits"
    );
}

#[tokio::test]
async fn bad_query_nests_syn0002_with_line_pos_token() {
    let fake = fake_with_table().await;
    fake.fail_kql_containing(
        "strng",
        Failure::BadQuery {
            line: 1,
            pos: 4,
            token: "string".into(),
        },
    );
    let resp = post(&fake, "AzureActivity | where strng").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let e = &body["error"];
    assert_eq!(e["code"], "BadArgumentError");
    assert_eq!(e["message"], "The request had some invalid properties");
    assert_eq!(e["innererror"]["code"], "SyntaxError");
    let inner = &e["innererror"]["innererror"];
    assert_eq!(
        inner,
        &json!({"code": "SYN0002", "message": "Query could not be parsed at 'string' on line [1,4]",
                "line": 1, "pos": 4, "token": "string"})
    );
    // Other queries are untouched; the rule stays for the next matching one.
    assert_eq!(post(&fake, "AzureActivity").await.status(), 200);
    assert_eq!(
        post(&fake, "AzureActivity | where strng").await.status(),
        400
    );
}

#[tokio::test]
async fn auth_no_content_and_malformed_injections() {
    let fake = fake_with_table().await;
    fake.fail_next(1, Failure::Unauthorized)
        .fail_next(1, Failure::Forbidden)
        .fail_next(1, Failure::WrongAudience)
        .fail_next(1, Failure::NoContent)
        .fail_next(1, Failure::Malformed("{\"tables\": [".into()))
        .fail_next(
            1,
            Failure::SemanticError {
                name: "AzureActivity".into(),
            },
        );
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "AuthenticationFailed"
    );
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InsufficientAccessError");
    assert_eq!(body["error"]["innererror"]["code"], "UnauthorizedClient");
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidAuthenticationTokenAudience"
    );
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 204);
    assert!(resp.text().await.unwrap().is_empty());
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), "{\"tables\": [");
    let resp = post(&fake, "AzureActivity").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["innererror"]["innererror"]["code"], "SEM0100");
}

#[tokio::test]
async fn latency_applies_globally_and_per_injection() {
    let fake = fake_with_table().await;
    fake.set_latency(Duration::from_millis(60));
    let t = Instant::now();
    assert_eq!(post(&fake, "AzureActivity").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(60));
    fake.set_latency(Duration::ZERO)
        .fail_always(Failure::Delay(Duration::from_millis(80)));
    let t = Instant::now();
    assert_eq!(post(&fake, "AzureActivity").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(80));
    // Cleared injections no longer delay: a 30 s delay is injected and cleared, and the
    // request must come back long before it (a wide margin, so machine load cannot fail it).
    fake.fail_always(Failure::Delay(Duration::from_secs(30)));
    fake.clear_failures();
    let t = Instant::now();
    post(&fake, "AzureActivity").await;
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn demo_tenant_is_served_by_table() {
    let fake = LogAnalyticsFake::start().await;
    fake.with_demo_tenant().await.unwrap();
    let (audit, activity) = pim_testkit::demo_tables().await.unwrap();
    assert!(!audit.is_empty() && !activity.is_empty());

    // Like the service, the fake filters by the request's timespan (issue 12): exactly the
    // rows of 2026-11-20 come back.
    let body: Value = post(&fake, "AuditLogs\n| where LoggedByService == \"PIM\"")
        .await
        .json()
        .await
        .unwrap();
    let time = audit.column_index("TimeGenerated").unwrap();
    let day = |t: &str| t.starts_with("2026-11-20") || t == "2026-11-21T00:00:00Z";
    let in_day = audit
        .rows
        .iter()
        .filter(|r| r[time].as_str().is_some_and(day))
        .count();
    assert!(in_day < audit.len(), "the demo has rows outside the day");
    assert_eq!(body["tables"][0]["rows"].as_array().unwrap().len(), in_day);
    // Without filtering, the whole table is served.
    fake.set_row_filtering(false);

    let body: Value = post(&fake, "AuditLogs\n| where LoggedByService == \"PIM\"")
        .await
        .json()
        .await
        .unwrap();
    let t = &body["tables"][0];
    assert_eq!(t["name"], "PrimaryResult");
    assert_eq!(t["rows"].as_array().unwrap().len(), audit.len());
    assert!(
        t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "InitiatedBy")
    );
    // Dynamic cells go out as JSON strings.
    let idx = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "InitiatedBy")
        .unwrap();
    assert!(t["rows"][0][idx].is_string());

    let body: Value = post(&fake, "AzureActivity\n| where Caller in (\"x\")")
        .await
        .json()
        .await
        .unwrap();
    let t = &body["tables"][0];
    assert_eq!(t["rows"].as_array().unwrap().len(), activity.len());
    assert!(
        t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "OperationNameValue")
    );
    assert!(reads_table("AuditLogs")("AuditLogs | take 1"));
}

/// A generator whose answer is made only once the test says so: it blocks the thread making
/// it, as a 100 MB answer does.
struct Gated {
    open: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl RowGenerator for Gated {
    fn columns(&self) -> Vec<Column> {
        vec![Column {
            name: "Caller".into(),
            kind: "string".into(),
        }]
    }

    fn generate(&self, _scope: &RowScope, emit: &mut dyn FnMut(Vec<Value>) -> bool) {
        if let Ok(open) = self.open.lock() {
            // Waits for the test (or for it to end).
            let _ = open.recv();
        }
        emit(vec![json!("slow@contoso.com")]);
    }
}

#[tokio::test]
async fn an_answer_being_made_delays_no_other_and_timings_are_recorded() {
    let (open, gate) = std::sync::mpsc::channel();
    let fake = Arc::new(fake_with_table().await);
    fake.with_generator_for(
        |kql| kql.starts_with("Slow"),
        Arc::new(Gated {
            open: std::sync::Mutex::new(gate),
        }),
    );
    fake.set_latency(Duration::from_millis(20));
    let slow = tokio::spawn({
        let fake = Arc::clone(&fake);
        async move { post(&fake, "Slow | take 1").await.json::<Value>().await }
    });
    // Wait until the slow query is being made.
    while fake.queries().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The other query is answered while the slow one is still held: with one server thread
    // (or the state lock held while making it) this would wait for the gate, which opens only
    // after this answer, and the timeout would fail the test.
    let fast = tokio::time::timeout(Duration::from_secs(60), post(&fake, "AzureActivity"))
        .await
        .expect("the fast query waited for the slow one");
    assert_eq!(fast.status(), 200);
    open.send(()).unwrap();
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow["tables"][0]["rows"][0][0], "slow@contoso.com");
    assert_eq!(fake.max_in_flight(), 2);

    let timings = fake.answer_timings();
    assert_eq!(timings.len(), 2);
    let (s, f) = (&timings[0], &timings[1]);
    assert_eq!(
        (s.kql.as_str(), f.kql.as_str()),
        ("Slow | take 1", "AzureActivity")
    );
    // The fast answer was due before the slow one was made; each is due no earlier than its
    // latency after arrival, nor before it was made.
    assert!(f.due < s.built);
    for t in [s, f] {
        assert!(t.built >= t.arrived && t.due >= t.built);
        assert!(t.due >= t.arrived + Duration::from_millis(20));
        assert_eq!((t.status, t.cut), (200, false));
        assert!(t.bytes > 0);
    }
    // A path outside the query route is a 404, as wiremock answers it, and is recorded.
    let other = reqwest::Client::new()
        .get(format!("{}/v1/other", fake.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(fake.received_requests().await.len(), 3);
    assert_eq!(fake.answer_timings().len(), 2);
}
