//! The adapter against a loopback wiremock server: the real reqwest client, a static
//! credential, and assertions on both the request sent and the outcome.

use std::sync::Mutex;
use std::time::Instant;

use azure_core::credentials::{AccessToken, TokenRequestOptions};
use pim_domain::TimeRange;
use pim_domain::timestamp::parse_timestamp;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::LogTable;

const TOKEN: &str = "eyJ0eXAi.secret-bearer-token.Zm9v";
const WS1: &str = "11111111-2222-3333-4444-555555555555";
const WS2: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// A credential that always returns the same token and records the scopes it was asked for.
/// Its derived `Debug` prints the token on purpose: the client must not print its credential.
#[derive(Debug)]
struct StaticToken {
    token: &'static str,
    scopes: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| (*s).to_owned()));
        Ok(AccessToken::new(
            self.token,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// A credential that cannot sign in.
#[derive(Debug)]
struct NoToken;

#[async_trait::async_trait]
impl TokenCredential for NoToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "az not found on PATH",
        ))
    }
}

fn credential() -> Arc<StaticToken> {
    Arc::new(StaticToken {
        token: TOKEN,
        scopes: Mutex::new(Vec::new()),
    })
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(500),
        max_total: Duration::from_secs(5),
    }
}

fn options(server: &MockServer) -> LogAnalyticsOptions {
    LogAnalyticsOptions {
        endpoint: server.uri(),
        request_timeout: Duration::from_secs(5),
        server_wait: Duration::from_secs(180),
        retry: fast_retry(3),
        client: None,
    }
}

fn client_for(
    server: &MockServer,
    workspaces: &[&str],
    opts: LogAnalyticsOptions,
) -> LogAnalyticsClient {
    let _ = server;
    LogAnalyticsClient::new(
        workspaces.iter().map(|w| (*w).to_owned()).collect(),
        credential(),
        Some(opts),
    )
    .unwrap()
}

fn query() -> LogQuery {
    LogQuery {
        label: "pim-events".into(),
        table: Some(LogTable::AuditLogs),
        kql: "AuditLogs | where OperationName has \"PIM\"".into(),
        timespan: TimeRange::new(
            parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
            parse_timestamp("2026-11-21T00:00:00Z").unwrap(),
        ),
        scope: None,
    }
}

fn query_path() -> String {
    format!("/v1/workspaces/{WS1}/query")
}

/// Starts a server that answers every query with `response`, and a client for `WS1`.
async fn serve(response: ResponseTemplate) -> (MockServer, LogAnalyticsClient) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(query_path()))
        .respond_with(response)
        .mount(&server)
        .await;
    let client = client_for(&server, &[WS1], options(&server));
    (server, client)
}

async fn run(response: ResponseTemplate) -> Result<QueryOutcome> {
    let (_server, client) = serve(response).await;
    client.query(&query()).await
}

fn bad_query_body() -> Value {
    json!({"error": {"message": "The request had some invalid properties",
        "code": "BadArgumentError", "correlationId": "c0ffee",
        "innererror": {"code": "SyntaxError", "message": "A recognition error occurred in the query.",
            "innererror": {"code": "SYN0002",
                "message": "Query could not be parsed at 'string' on line [1,4]",
                "line": 1, "pos": 4, "token": "string"}}}})
}

#[tokio::test]
async fn sends_the_documented_request_shape() {
    let server = MockServer::start().await;
    let ok = json!({"tables": [{"name": "PrimaryResult", "columns": [], "rows": []}]});
    Mock::given(method("POST"))
        .and(path(query_path()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(header("prefer", "wait=240"))
        .and(body_json(json!({
            "query": "AuditLogs | where OperationName has \"PIM\"",
            "timespan": "2026-11-20T00:00:00Z/2026-11-21T00:00:00Z",
            "workspaces": [WS2],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok))
        .expect(1)
        .mount(&server)
        .await;
    let cred = credential();
    let client = LogAnalyticsClient::new(
        vec![WS1.into(), format!(" {WS2} "), WS1.to_uppercase()],
        cred.clone(),
        Some(LogAnalyticsOptions {
            server_wait: Duration::from_secs(240),
            ..options(&server)
        }),
    )
    .unwrap();
    assert_eq!(client.workspaces(), [WS1, WS2]);
    let outcome = client.query(&query()).await.unwrap();
    assert_eq!(outcome.tables.len(), 1);
    assert_eq!(outcome.partial_error, None);
    assert_eq!(*cred.scopes.lock().unwrap(), [LOG_ANALYTICS_SCOPE]);
    // One workspace: no `workspaces` key at all.
    let single = client_for(&server, &[WS1], options(&server));
    let _ = single.query(&query()).await;
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body.get("workspaces"), None);
    assert_eq!(requests[1].headers.get("prefer").unwrap(), "wait=180");
    assert_eq!(
        single.info().description,
        format!("Log Analytics workspace {WS1} at {}", server.uri())
    );
    // A workspace runs any KQL, filters on the timespan, and takes 200 identities a query.
    assert_eq!(
        single.capabilities(),
        SourceCapabilities {
            runs_arbitrary_kql: true,
            max_identities_per_query: Some(200),
            splits_by_time: true,
        }
    );
    assert_eq!(single.table_label(LogTable::AuditLogs), "AuditLogs");
}

#[tokio::test]
async fn arm_ids_use_the_resource_path_and_guids_go_first() {
    let arm = format!(
        "/subscriptions/{WS2}/resourceGroups/rg-sec.ops/providers/Microsoft.OperationalInsights/workspaces/law-audit"
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1{arm}/query")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let only_arm = client_for(&server, &[&arm], options(&server));
    only_arm.query(&query()).await.unwrap();
    let mixed = client_for(&server, &[&arm, WS1], options(&server));
    assert_eq!(mixed.workspaces(), [WS1, arm.as_str()]);
}

#[tokio::test]
async fn parses_typed_columns_and_keeps_dynamic_cells_raw() {
    let body = json!({"tables": [{"name": "PrimaryResult",
        "columns": [{"name": "TimeGenerated", "type": "datetime"},
                    {"name": "Count", "type": "long"},
                    {"name": "TargetResources", "type": "dynamic"},
                    {"name": "InitiatedBy", "type": "dynamic"}],
        "rows": [["2026-11-20T09:13:58.1234567Z", 3,
                  "[{\"displayName\":\"Owner\"}]",
                  {"user": {"userPrincipalName": "jane@contoso.com"}}],
                 ["2026-11-20T10:00:00Z"]]}]});
    let outcome = run(ResponseTemplate::new(200).set_body_json(body))
        .await
        .unwrap();
    let table = &outcome.tables[0];
    assert_eq!(table.name, "PrimaryResult");
    let kinds: Vec<&str> = table.columns.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["datetime", "long", "dynamic", "dynamic"]);
    assert_eq!(table.rows[0][1], json!(3));
    assert_eq!(table.rows[0][2], json!("[{\"displayName\":\"Owner\"}]"));
    assert_eq!(
        table.rows[0][3]["user"]["userPrincipalName"],
        json!("jane@contoso.com")
    );
    // A short row is padded so every row has one cell per column.
    assert_eq!(table.rows[1].len(), 4);
    assert!(table.rows[1][3].is_null());
    assert!(outcome.problems.is_empty());
    assert_eq!(outcome.partial_error, None);
}

#[tokio::test]
async fn a_partial_error_keeps_the_tables_and_says_why() {
    let body = json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "Caller", "type": "string"}],
            "rows": [["jane@contoso.com", "extra cell"]]}],
        "error": {"code": "PartialError", "message": "There were some errors when processing your query.",
            "details": [{"code": "EngineError", "message": "Something went wrong processing your query on the server.",
                "innererror": {"code": "-2133196797", "message": "Query result set has exceeded the internal data size limit"}}]}});
    let outcome = run(ResponseTemplate::new(200).set_body_json(body))
        .await
        .unwrap();
    assert_eq!(outcome.tables[0].rows, [[json!("jane@contoso.com")]]);
    assert_eq!(
        outcome.partial_error.as_deref(),
        Some("PartialError: Query result set has exceeded the internal data size limit")
    );
    assert_eq!(outcome.problems.len(), 1, "{:?}", outcome.problems);
}

/// A 200 body with one `Caller` column of `rows` rows and, when given, `error` next to it.
fn partial_body(rows: usize, error: Option<serde_json::Value>) -> serde_json::Value {
    let mut body = json!({"tables": [{"name": "PrimaryResult",
        "columns": [{"name": "Caller", "type": "string"}],
        "rows": (0..rows).map(|i| json!([format!("u{i}")])).collect::<Vec<_>>()}]});
    if let Some(error) = error {
        body["error"] = error;
    }
    body
}

/// The PartialError wrapper of reference §9.2 around one `innererror`.
fn engine_error(inner: serde_json::Value) -> serde_json::Value {
    json!({"code": "PartialError", "message": "There were some errors when processing your query.",
        "details": [{"code": "EngineError",
            "message": "Something went wrong processing your query on the server.",
            "innererror": inner}]})
}

#[tokio::test]
async fn a_cut_at_a_service_limit_is_a_typed_truncation() {
    // The recorded response of reference §9.2, verbatim innererror.
    let recorded = engine_error(json!({"code": "-2133196797",
        "message": "Query result set has exceeded the internal data size limit 64000000 (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)",
        "severity": 2, "severityName": "Error"}));
    let outcome = run(ResponseTemplate::new(200).set_body_json(partial_body(3, Some(recorded))))
        .await
        .unwrap();
    assert_eq!(outcome.tables[0].len(), 3);
    assert!(outcome.partial_error.is_some());
    assert!(
        matches!(&outcome.truncation, Some(crate::Truncation::LimitExceeded { message }) if message.contains("64000000")),
        "{:?}",
        outcome.truncation
    );

    // The code alone, with another wording (grafana's "set limit of N records").
    let by_code = engine_error(json!({"code": "-2133196797",
        "message": "The results of this query exceed the set limit of 500000 records."}));
    let outcome = run(ResponseTemplate::new(200).set_body_json(partial_body(1, Some(by_code))))
        .await
        .unwrap();
    assert!(outcome.truncation.is_some());

    // The name alone, in a second `details` entry, under another code.
    let by_name = json!({"code": "PartialError", "message": "There were some errors",
        "details": [{"code": "Warning", "message": "unrelated"},
                    {"code": "EngineError", "message": "x",
                     "innererror": {"code": "LimitsExceeded",
                       "message": "...exceed the set limit of 64000000 bytes, so not all records were returned (E_QUERY_RESULT_SET_TOO_LARGE, 0x80DA0003)"}}]});
    let outcome = run(ResponseTemplate::new(200).set_body_json(partial_body(1, Some(by_name))))
        .await
        .unwrap();
    assert!(outcome.truncation.is_some());
}

#[tokio::test]
async fn exactly_the_row_limit_is_presumed_cut_and_one_less_is_not() {
    let outcome = run(
        ResponseTemplate::new(200).set_body_json(partial_body(crate::MAX_ROWS_PER_QUERY, None))
    )
    .await
    .unwrap();
    assert_eq!(
        outcome.truncation,
        Some(crate::Truncation::RowLimit {
            rows: crate::MAX_ROWS_PER_QUERY
        })
    );
    assert_eq!(outcome.partial_error, None);
    let outcome =
        run(ResponseTemplate::new(200)
            .set_body_json(partial_body(crate::MAX_ROWS_PER_QUERY - 1, None)))
        .await
        .unwrap();
    assert_eq!(outcome.truncation, None);
}

#[tokio::test]
async fn a_semantic_warning_is_a_partial_error_but_no_truncation() {
    // Same wrapper, severity 3 "Warning" (reference §9.2): surfaced, not split.
    let warning = engine_error(
        json!({"code": "SEM0100", "severity": 3, "severityName": "Warning",
        "message": "Failed to resolve tabular function named 'MyFunc'"}),
    );
    let outcome = run(ResponseTemplate::new(200).set_body_json(partial_body(2, Some(warning))))
        .await
        .unwrap();
    assert_eq!(outcome.truncation, None);
    assert!(
        outcome
            .partial_error
            .as_deref()
            .is_some_and(|p| p.contains("Failed to resolve")),
        "{:?}",
        outcome.partial_error
    );
}

#[tokio::test]
async fn no_content_is_one_empty_table() {
    let outcome = run(ResponseTemplate::new(204)).await.unwrap();
    assert_eq!(outcome.tables.len(), 1);
    assert!(outcome.tables[0].is_empty());
    assert_eq!(outcome.partial_error, None);
}

#[tokio::test]
async fn a_bad_query_carries_the_innermost_error() {
    let (server, client) = serve(ResponseTemplate::new(400).set_body_json(bad_query_body())).await;
    let err = client.query(&query()).await.unwrap_err();
    let Error::BadQuery {
        code,
        message,
        line,
        pos,
        token,
        semantic,
    } = &err
    else {
        panic!("expected BadQuery, got {err:?}");
    };
    assert_eq!(code.as_deref(), Some("SYN0002"));
    assert_eq!(
        message,
        "Query could not be parsed at 'string' on line [1,4]"
    );
    assert_eq!((*line, *pos), (Some(1), Some(4)));
    assert_eq!(token.as_deref(), Some("string"));
    assert!(!semantic);
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "the query was rejected at line 1, position 4 near 'string': Query could not be parsed at 'string' on line [1,4]"
    );
    // Not retried.
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_semantic_error_says_the_table_may_be_missing() {
    let body = json!({"error": {"code": "BadArgumentError", "message": "The request had some invalid properties",
        "innerError": {"code": "SemanticError", "message": "A semantic error occurred.",
            "innerError": {"code": "SEM0100",
                "message": "'where' operator: Failed to resolve table or column expression named 'AzureActivity'"}}}});
    let err = run(ResponseTemplate::new(400).set_body_json(body))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BadQuery { semantic: true, code: Some(c), .. } if c == "SEM0100")
    );
    let text = err.to_string();
    assert!(text.contains("named 'AzureActivity'"), "{text}");
    assert!(text.contains("may not exist in this workspace"), "{text}");
}

#[tokio::test]
async fn unauthorized_and_forbidden_say_what_to_grant() {
    let denied = |status, code: &str, message: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"error": {"code": code, "message": message}}))
    };
    let err = run(denied(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::AccessDenied { status: 401, .. }));
    let text = err.to_string();
    assert!(text.contains("HTTP 401 AuthenticationFailed"), "{text}");
    assert!(
        text.contains("https://api.loganalytics.io/.default"),
        "{text}"
    );
    assert!(!err.is_retryable());

    let insufficient = json!({"error": {"code": "InsufficientAccessError",
        "message": "The provided credentials have insufficient access to perform the requested operation",
        "innererror": {"code": "UnauthorizedClient", "message": "The client 'x' does not have read access to workspace"}}});
    let err = run(ResponseTemplate::new(403).set_body_json(insufficient))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Log Analytics Reader (or Reader)"), "{text}");
    assert!(text.contains(WS1), "{text}");
    assert!(text.contains("InsufficientAccessError"), "{text}");
    assert!(text.contains("does not have read access"), "{text}");
    assert!(!err.is_retryable());

    let err = run(denied(
        403,
        "InvalidAuthenticationTokenAudience",
        "The access token is from the wrong audience or resource.",
    ))
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("wrong resource"), "{text}");
    assert!(
        text.contains("InvalidAuthenticationTokenAudience"),
        "{text}"
    );
}

#[tokio::test]
async fn not_found_names_the_workspace_and_endpoint() {
    let body = json!({"error": {"code": "PathNotFoundError", "message": "The requested path does not exist"}});
    let err = run(ResponseTemplate::new(404).set_body_json(body))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WorkspaceNotFound { .. }));
    let text = err.to_string();
    assert!(
        text.contains(WS1) && text.contains("http://127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("check the workspace id"), "{text}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn throttling_is_retried_after_the_delay_the_service_asks_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "0.3")
                .set_body_json(
                    json!({"error": {"code": "ThrottledError", "message": "too many requests"}}),
                ),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tables": []})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server, &[WS1], options(&server));
    let started = Instant::now();
    let outcome = client.query(&query()).await.unwrap();
    assert!(outcome.tables.is_empty());
    // The policy alone would wait about a millisecond; the 300 ms come from Retry-After.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn persistent_unavailability_stops_after_the_allowed_attempts() {
    let (server, client) =
        serve(ResponseTemplate::new(503).set_body_json(
            json!({"error": {"code": "ServiceUnavailable", "message": "try later"}}),
        ))
        .await;
    let err = client.query(&query()).await.unwrap_err();
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    let Error::RetriesExhausted { attempts, last, .. } = &err else {
        panic!("expected RetriesExhausted, got {err:?}");
    };
    assert_eq!(*attempts, 3);
    assert!(matches!(**last, Error::Http { status: 503, .. }));
    let text = err.to_string();
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(
        text.contains("HTTP 503 ServiceUnavailable: try later"),
        "{text}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_timeout_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"tables": []}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let client = client_for(
        &server,
        &[WS1],
        LogAnalyticsOptions {
            request_timeout: Duration::from_millis(200),
            retry: fast_retry(2),
            ..options(&server)
        },
    );
    let started = Instant::now();
    let err = client.query(&query()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Error::RetriesExhausted {
        attempts: 2, last, ..
    } = &err
    else {
        panic!("expected two timed-out attempts, got {err:?}");
    };
    assert!(matches!(**last, Error::Timeout { after } if after == Duration::from_millis(200)));
    assert!(last.is_retryable() && err.is_retryable());
    assert!(
        err.to_string().contains("did not answer within 200 ms"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_transport_error() {
    // Bind and release a port so that nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = LogAnalyticsClient::new(
        vec![WS1.into()],
        credential(),
        Some(LogAnalyticsOptions {
            endpoint: format!("http://127.0.0.1:{port}/"),
            retry: fast_retry(2),
            ..LogAnalyticsOptions::default()
        }),
    )
    .unwrap();
    let err = client.query(&query()).await.unwrap_err();
    let Error::RetriesExhausted {
        attempts: 2, last, ..
    } = &err
    else {
        panic!("expected two failed attempts, got {err:?}");
    };
    assert!(matches!(**last, Error::Transport { .. }));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unreadable_success_bodies_are_clear_errors() {
    let cases = [
        (
            ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"),
            "expected {\"tables\"",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"tables": "nope"})),
            "expected {\"tables\"",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"tables": [{"name": "T", "columns": [], "rows": [1]}]})),
            "invalid type",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"other": 1})),
            "no \"tables\"",
        ),
        (ResponseTemplate::new(200), "the body is empty"),
    ];
    for (response, expected) in cases {
        let err = run(response).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidResponse { status: 200, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn a_credential_failure_sends_nothing_and_is_not_retried() {
    let server = MockServer::start().await;
    let client =
        LogAnalyticsClient::new(vec![WS1.into()], Arc::new(NoToken), Some(options(&server)))
            .unwrap();
    let err = client.query(&query()).await.unwrap_err();
    assert!(matches!(err, Error::Credential { .. }), "{err:?}");
    assert!(err.to_string().contains("az not found on PATH"), "{err}");
    assert!(!err.is_retryable());
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_token_never_appears_in_debug_or_error_text() {
    let server = MockServer::start().await;
    let client = client_for(&server, &[WS1], options(&server));
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(TOKEN) && !debug.contains("secret-bearer"),
        "{debug}"
    );
    assert!(debug.contains(WS1), "{debug}");
    let opts = format!("{:?}", options(&server));
    assert!(opts.contains("custom_client: false"), "{opts}");

    // A proxy that echoes the request's Authorization header back in its error body.
    let echo = format!("invalid header Authorization: Bearer {TOKEN}");
    let responses = [
        ResponseTemplate::new(401)
            .set_body_json(json!({"error": {"code": "AuthenticationFailed", "message": echo}})),
        ResponseTemplate::new(403).set_body_string(echo.clone()),
        ResponseTemplate::new(400)
            .set_body_json(json!({"error": {"code": "BadArgumentError", "message": "x",
            "innererror": {"code": "SYN0002", "message": echo, "token": TOKEN}}})),
        ResponseTemplate::new(404).set_body_string(echo.clone()),
        ResponseTemplate::new(502).set_body_string(echo.clone()),
        ResponseTemplate::new(200).set_body_json(json!({"error": {"code": "X", "message": echo}})),
        ResponseTemplate::new(200).set_body_string(format!("{TOKEN} not json")),
        ResponseTemplate::new(400).set_body_json(bad_query_body()),
        ResponseTemplate::new(200).set_body_json(
            json!({"tables": [], "error": {"code": "PartialError", "message": echo}}),
        ),
    ];
    for response in responses {
        let (text, debug) = match run(response).await {
            Ok(outcome) => (outcome.partial_error.unwrap_or_default(), String::new()),
            Err(err) => (err.to_string(), format!("{err:?}")),
        };
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(!text.is_empty());
    }
}

#[test]
fn settings_are_validated() {
    let new = |ids: Vec<&str>, opts: LogAnalyticsOptions| {
        LogAnalyticsClient::new(
            ids.into_iter().map(str::to_owned).collect(),
            credential(),
            Some(opts),
        )
    };
    let msg = |r: Result<LogAnalyticsClient>| match r {
        Err(e @ Error::InvalidConfig { .. }) => e.to_string(),
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let d = LogAnalyticsOptions::default;
    assert!(msg(new(vec![], d())).contains("no workspace id"));
    assert!(msg(new(vec!["  "], d())).contains("empty"));
    assert!(msg(new(vec!["my-workspace"], d())).contains("neither a GUID"));
    assert!(msg(new(vec!["11111111-2222-3333-4444-55555555555g"], d())).contains("neither a GUID"));
    assert!(
        msg(new(
            vec!["/subscriptions/x/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"],
            d()
        ))
        .contains("neither a GUID")
    );
    let with = |endpoint: &str| LogAnalyticsOptions {
        endpoint: endpoint.into(),
        ..d()
    };
    assert!(msg(new(vec![WS1], with("http://api.loganalytics.azure.com"))).contains("https"));
    assert!(msg(new(vec![WS1], with("not a url"))).contains("not a URL"));
    assert!(msg(new(vec![WS1], with("https://h/?a=1"))).contains("without user, query"));
    assert!(
        msg(new(
            vec![WS1],
            LogAnalyticsOptions {
                server_wait: Duration::from_secs(601),
                ..d()
            }
        ))
        .contains("600 s")
    );
    assert!(
        msg(new(
            vec![WS1],
            LogAnalyticsOptions {
                request_timeout: Duration::ZERO,
                ..d()
            }
        ))
        .contains("request_timeout")
    );
    let ok = new(vec![WS1], with("https://api.loganalytics.azure.cn/")).unwrap();
    assert_eq!(ok.endpoint(), "https://api.loganalytics.azure.cn");
    assert_eq!(
        ok.url,
        format!("https://api.loganalytics.azure.cn/v1/workspaces/{WS1}/query")
    );
    assert!(new(vec![WS1], with("http://localhost:8080")).is_ok());
    assert!(new(vec![WS1], with("http://[::1]:8080")).is_ok());
    let rounded = new(
        vec![WS1],
        LogAnalyticsOptions {
            server_wait: Duration::from_millis(1500),
            ..d()
        },
    )
    .unwrap();
    assert_eq!(rounded.prefer, "wait=2");
}

#[test]
fn error_chains_are_read_defensively() {
    let weird = json!({"code": 5, "message": ["x"], "innererror": {"line": "7", "pos": -1,
        "innererror": "not an object"}});
    let e = ApiError::read(&weird);
    assert_eq!(e.code, None);
    assert_eq!(e.line, Some(7));
    assert_eq!(e.pos, None);
    // A deep chain is cut off without harm.
    let mut deep = json!({"code": "Leaf", "message": "deepest"});
    for _ in 0..100 {
        deep = json!({"code": "Wrap", "message": "outer", "innererror": deep});
    }
    assert_eq!(ApiError::read(&deep).message, "outer");
    assert!(is_semantic_code("SEM0100") && is_semantic_code("SemanticError"));
    assert!(!is_semantic_code("SEM") && !is_semantic_code("SYN0002") && !is_semantic_code("SEMx1"));
}

/// A workspace that answers one 429 `ThrottledError` asking to wait `retry_after`.
async fn throttling_once(retry_after: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after)
                .set_body_json(
                    json!({"error": {"code": "ThrottledError", "message": "too many requests"}}),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    server
}

// Issue 9: a Retry-After longer than what is left of the call's budget (5 s here) fails the
// call at once, and the message names the server's wait; it used to be cut to `max_delay` and
// retried into the same throttle.
#[tokio::test]
async fn a_retry_after_past_the_budget_fails_at_once_naming_the_wait() {
    let server = throttling_once("300").await;
    let client = client_for(&server, &[WS1], options(&server));
    let err = client.query(&query()).await.unwrap_err();
    let Error::ServerWaitTooLong {
        attempts, asked, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*attempts, 1);
    assert_eq!(*asked, Duration::from_secs(300));
    let text = err.to_string();
    assert!(text.contains("asked to wait 300.0 s"), "{text}");
    assert!(text.contains("HTTP 429 ThrottledError"), "{text}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_wait_beyond_the_budget_fails_at_once_naming_the_wait() {
    let server = throttling_once("Fri, 01 Jan 2100 00:00:00 GMT").await;
    let client = client_for(&server, &[WS1], options(&server));
    let started = Instant::now();
    let err = client.query(&query()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait"
    );
    let Error::ServerWaitTooLong {
        attempts,
        asked,
        remaining,
        last,
    } = &err
    else {
        panic!("expected ServerWaitTooLong, got {err:?}");
    };
    assert_eq!(*attempts, 1);
    // An HTTP-date decades away reads as the one-day ceiling, far past the 5 s budget.
    assert_eq!(*asked, Duration::from_secs(86_400));
    assert!(*remaining <= Duration::from_secs(5));
    assert!(matches!(**last, Error::Http { status: 429, .. }));
    let text = err.to_string();
    assert!(text.contains("asked to wait 86400.0 s"), "{text}");
    assert!(text.contains("ThrottledError"), "{text}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(86_400)));
}

/// A loopback listener that stands in for a cloud's host (the client resolves the host to it):
/// it counts the connections and closes them, so each call ends in a transport error after the
/// token was requested.
async fn cloud_host_stand_in() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn every_cloud_gets_the_scope_of_its_endpoint_host() {
    let (addr, accepted) = cloud_host_stand_in().await;
    let clouds = [
        ("api.loganalytics.azure.com", LOG_ANALYTICS_SCOPE),
        ("api.loganalytics.io", LOG_ANALYTICS_SCOPE),
        ("api.loganalytics.azure.cn", LOG_ANALYTICS_SCOPE_CHINA),
        ("api.loganalytics.us", LOG_ANALYTICS_SCOPE_US_GOVERNMENT),
    ];
    for (n, (host, scope)) in clouds.into_iter().enumerate() {
        let http = reqwest::Client::builder()
            .resolve(host, addr)
            .build()
            .unwrap();
        let cred = credential();
        let client = LogAnalyticsClient::new(
            vec![WS1.into()],
            cred.clone(),
            Some(LogAnalyticsOptions {
                endpoint: format!("https://{host}:{}", addr.port()),
                retry: RetryPolicy::none(),
                client: Some(http),
                ..LogAnalyticsOptions::default()
            }),
        )
        .unwrap();
        assert_eq!(client.scope(), scope, "{host}");
        assert_eq!(log_analytics_scope(client.endpoint()), scope, "{host}");
        let err = client.query(&query()).await.unwrap_err();
        assert!(!matches!(err, Error::Credential { .. }), "{host}: {err}");
        assert_eq!(*cred.scopes.lock().unwrap(), [scope], "{host}");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            n + 1,
            "{host}: the call did not reach the endpoint"
        );
    }
}

#[tokio::test]
async fn an_unknown_host_gets_the_public_scope_and_a_credential_error_names_it() {
    let server = MockServer::start().await;
    let client =
        LogAnalyticsClient::new(vec![WS1.into()], Arc::new(NoToken), Some(options(&server)))
            .unwrap();
    assert_eq!(client.scope(), LOG_ANALYTICS_SCOPE);
    let err = client.query(&query()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Credential { scope, .. } if scope == LOG_ANALYTICS_SCOPE),
        "{err}"
    );
}

#[test]
fn options_debug_never_prints_a_callers_client() {
    let options = |client| LogAnalyticsOptions {
        client: Some(client),
        ..Default::default()
    };
    pim_http::secret::check_debug_hides_client(options).unwrap();
}
