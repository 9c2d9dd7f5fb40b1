//! The client against loopback servers: the real reqwest stack, a static credential, and
//! assertions on both the requests sent and the outcome.

use std::sync::Mutex;
use std::time::Instant;

use azure_core::credentials::{AccessToken, TokenRequestOptions};
use pim_domain::{Risk, Verdict};
use pim_testkit::{IngestionFailure, LogsIngestionFake, token_for};
use serde_json::Value;
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::row::tests::{activation, report};
use crate::{COLUMNS, MONITOR_SCOPE, MONITOR_SCOPE_CHINA, MONITOR_SCOPE_US_GOVERNMENT, rows};

const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
const STREAM: &str = "Custom-PimAudit_CL";

/// Always the same token; records the scopes asked for. Its derived Debug prints the token on
/// purpose: the client must not print its credential.
#[derive(Debug)]
struct StaticToken {
    token: String,
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
            self.token.clone(),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

fn credential(token: &str) -> Arc<StaticToken> {
    Arc::new(StaticToken {
        token: token.to_owned(),
        scopes: Mutex::new(Vec::new()),
    })
}

fn options(max_attempts: u32) -> IngestionOptions {
    IngestionOptions {
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(150),
            max_total: Duration::from_secs(5),
        },
        ..IngestionOptions::default()
    }
}

fn client(endpoint: &str, stream: &str, opts: IngestionOptions) -> LogsIngestionClient {
    LogsIngestionClient::new(
        endpoint,
        DCR,
        stream,
        credential(&token_for("https://monitor.azure.com")),
        Some(opts),
    )
    .unwrap()
}

fn sample_rows(n: usize) -> Vec<AuditRow> {
    let activations = (0..n)
        .map(|i| activation(&format!("act-{i:04}"), Verdict::Partial, Risk::High, &[]))
        .collect();
    rows(&report(activations))
}

fn ids(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| v["ActivationId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sends_the_documented_request_shape() {
    let server = MockServer::start().await;
    let token = "eyJ0eXAi.secret-monitor-token.Zm9v";
    Mock::given(method("POST"))
        .and(path(format!("/dataCollectionRules/{DCR}/streams/{STREAM}")))
        .and(query_param("api-version", "2023-01-01"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .and(header("content-type", "application/json"))
        .and(header_exists("x-ms-client-request-id"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let cred = credential(token);
    let client = LogsIngestionClient::new(
        &format!("{}/", server.uri()),
        DCR,
        STREAM,
        cred.clone(),
        Some(options(1)),
    )
    .unwrap();
    let rows = sample_rows(2);
    let summary = client.send(&rows).await.unwrap();
    assert_eq!(
        summary,
        SendSummary {
            rows: 2,
            batches: 1,
            retries: 0,
            splits: 0
        }
    );
    assert_eq!(*cred.scopes.lock().unwrap(), [MONITOR_SCOPE]);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let array = body.as_array().unwrap();
    assert_eq!(array.len(), 2);
    let mut keys: Vec<&str> = array[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(array[1]["ActivationId"], "act-0001");
    assert_eq!(array[1]["TimeGenerated"], "2026-11-21T06:00:00Z");
    let id = requests[0].headers["x-ms-client-request-id"]
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(
        client.url(),
        format!(
            "{}/dataCollectionRules/{DCR}/streams/{STREAM}?api-version=2023-01-01",
            server.uri()
        )
    );
}

#[tokio::test]
async fn many_rows_are_batched_under_the_limit_once_each_and_in_order() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.set_max_body_bytes(20_000);
    let client = client(
        &fake.endpoint(),
        STREAM,
        IngestionOptions {
            max_body_bytes: 20_000,
            ..options(1)
        },
    );
    let rows = sample_rows(300);
    let summary = client.send(&rows).await.unwrap();
    let batches = fake.batches();
    assert!(batches.len() > 5, "{} batches", batches.len());
    assert_eq!(summary.batches, batches.len());
    assert_eq!(summary.rows, 300);
    assert_eq!((summary.retries, summary.splits), (0, 0));
    let requests = fake.requests();
    for (i, request) in requests.iter().enumerate() {
        assert!(request.body.len() <= 20_000, "{}", request.body.len());
        // Greedy packing: no batch but the last could have taken one more row.
        if i + 1 < requests.len() {
            assert!(
                request.body.len() > 20_000 - 1_000,
                "{}",
                request.body.len()
            );
        }
    }
    let want: Vec<String> = rows.iter().map(|r| r.activation_id.clone()).collect();
    assert_eq!(ids(&fake.rows()), want);
    assert!(client.send(&[]).await.unwrap() == SendSummary::default());
    assert_eq!(fake.requests().len(), batches.len());
}

#[tokio::test]
async fn a_413_splits_the_batch_and_keeps_the_order() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.fail_next(1, IngestionFailure::PayloadTooLarge);
    let client = client(&fake.endpoint(), STREAM, options(1));
    let rows = sample_rows(10);
    let summary = client.send(&rows).await.unwrap();
    assert_eq!(summary.splits, 1);
    assert_eq!(summary.batches, 2);
    let sizes: Vec<usize> = fake.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5]);
    assert_eq!(
        ids(&fake.rows()),
        ids(&serde_json::to_value(&rows)
            .unwrap()
            .as_array()
            .unwrap()
            .clone())
    );

    // A service limit below ours: keep halving until each half fits.
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.set_max_body_bytes(3_000);
    let summary = client_for(&fake).send(&rows).await.unwrap();
    assert_eq!(summary.rows, 10);
    assert!(summary.splits >= 3, "{summary:?}");
    assert_eq!(fake.rows().len(), 10);
}

fn client_for(fake: &LogsIngestionFake) -> LogsIngestionClient {
    client(&fake.endpoint(), STREAM, options(1))
}

#[tokio::test]
async fn a_row_too_large_for_one_call_names_its_activation() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    let small = client(
        &fake.endpoint(),
        STREAM,
        IngestionOptions {
            max_body_bytes: MIN_MAX_BODY_BYTES,
            ..options(1)
        },
    );
    let mut rows = sample_rows(3);
    rows[1].justification = "x".repeat(2_000);
    let err = small.send(&rows).await.unwrap_err();
    assert!(
        matches!(&err, Error::RowTooLarge { activation_id, .. } if activation_id == "act-0001"),
        "{err}"
    );
    assert!(err.to_string().contains("act-0001"));
    assert!(fake.requests().is_empty(), "nothing is sent");

    // The service refusing a single row is the same error, after the earlier rows went in.
    fake.set_max_body_bytes(2_500);
    let err = client_for(&fake).send(&rows).await.unwrap_err();
    let Error::PartlyDelivered {
        delivered,
        rows: total,
        source,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*delivered, *total), (1, 3));
    assert!(
        matches!(&**source, Error::RowTooLarge { activation_id, .. } if activation_id == "act-0001")
    );
}

#[tokio::test]
async fn throttling_is_retried_after_the_delay_asked_for() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.fail_next(
        1,
        IngestionFailure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    let started = Instant::now();
    let summary = client(&fake.endpoint(), STREAM, options(3))
        .send(&sample_rows(4))
        .await
        .unwrap();
    // Retry-After: 1 is honoured in full (it fits in the 5 s budget; the policy's 150 ms cap is
    // for its own backoff only), without jitter shortening it.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!((summary.rows, summary.batches, summary.retries), (4, 1, 1));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn persistent_unavailability_stops_after_the_allowed_attempts() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.fail_always(IngestionFailure::ServiceUnavailable {
        retry_after_secs: None,
    });
    let err = client(&fake.endpoint(), STREAM, options(3))
        .send(&sample_rows(2))
        .await
        .unwrap_err();
    let Error::RetriesExhausted { attempts, last, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*attempts, 3);
    assert_eq!(last.status(), Some(503));
    assert!(err.to_string().contains("ServiceUnavailable"), "{err}");
    assert_eq!(fake.requests().len(), 3);

    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.fail_next(2, IngestionFailure::InternalError);
    let summary = client(&fake.endpoint(), STREAM, options(3))
        .send(&sample_rows(2))
        .await
        .unwrap();
    assert_eq!(summary.retries, 2);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.fail_next(1, IngestionFailure::Delay(Duration::from_millis(800)));
    let opts = IngestionOptions {
        request_timeout: Duration::from_millis(200),
        ..options(2)
    };
    let summary = client(&fake.endpoint(), STREAM, opts)
        .send(&sample_rows(1))
        .await
        .unwrap();
    assert_eq!(summary.retries, 1);
}

#[tokio::test]
async fn unauthorized_and_forbidden_say_which_role_to_grant_on_which_rule() {
    for (failure, status, code) in [
        (IngestionFailure::Unauthorized, 401, "InvalidToken"),
        (IngestionFailure::Forbidden, 403, "OperationFailed"),
    ] {
        let fake = LogsIngestionFake::start(DCR, STREAM).await;
        fake.fail_always(failure);
        let err = client(&fake.endpoint(), STREAM, options(3))
            .send(&sample_rows(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AccessDenied { .. }), "{err}");
        assert_eq!(err.status(), Some(status));
        let text = err.to_string();
        assert!(text.contains("Monitoring Metrics Publisher"), "{text}");
        assert!(text.contains(DCR) && text.contains(code), "{text}");
        assert_eq!(fake.requests().len(), 1, "not retried");
    }
}

#[tokio::test]
async fn a_wrong_stream_or_rule_says_what_to_check() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    let err = client(&fake.endpoint(), "Custom-PimAudit", options(3))
        .send(&sample_rows(1))
        .await
        .unwrap_err();
    let Error::Rejected {
        status, code, hint, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*status, code.as_deref()), (400, Some("InvalidStream")));
    assert!(hint.as_deref().unwrap().contains("Custom-PimAudit"));
    assert!(err.to_string().contains("not declared"), "{err}");
    assert_eq!(fake.requests().len(), 1);

    let other = LogsIngestionClient::new(
        &fake.endpoint(),
        "dcr-ffffffffffffffffffffffffffffffff",
        STREAM,
        credential(&token_for("https://monitor.azure.com")),
        Some(options(3)),
    )
    .unwrap();
    let err = other.send(&sample_rows(1)).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("immutable id dcr-ffff"), "{err}");
}

#[tokio::test]
async fn a_failure_after_accepted_batches_says_how_many_rows_went_in() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403).insert_header("x-ms-error-code", "OperationFailed"),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let opts = IngestionOptions {
        max_body_bytes: 5_000,
        ..options(1)
    };
    let rows = sample_rows(20);
    let err = client(&server.uri(), STREAM, opts)
        .send(&rows)
        .await
        .unwrap_err();
    let Error::PartlyDelivered {
        delivered,
        rows: total,
        source,
    } = &err
    else {
        panic!("{err}");
    };
    assert!(*delivered > 0 && *delivered < 20, "{delivered}");
    assert_eq!(*total, 20);
    assert!(matches!(**source, Error::AccessDenied { .. }));
    assert_eq!(err.status(), Some(403));
}

#[tokio::test]
async fn the_token_never_appears_in_debug_or_error_text() {
    let token = "eyJ0eXAi.very-secret-token.Zm9v";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!(
            "{{\"error\":{{\"code\":\"Bad\",\"message\":\"token {token} rejected\"}}}}"
        )))
        .mount(&server)
        .await;
    let client = LogsIngestionClient::new(
        &server.uri(),
        DCR,
        STREAM,
        credential(token),
        Some(options(1)),
    )
    .unwrap();
    let err = client.send(&sample_rows(1)).await.unwrap_err();
    let text = format!("{err} {err:?} {client:?} {:?}", options(1));
    assert!(!text.contains(token), "{text}");
    assert!(text.contains("[REDACTED]"));
}

#[test]
fn settings_are_validated() {
    let cred = || -> Arc<dyn TokenCredential> { credential("t") };
    let ok = "https://my-dcr-abcd.westeurope-1.ingest.monitor.azure.com";
    assert!(LogsIngestionClient::new(ok, DCR, STREAM, cred(), None).is_ok());
    let bad = [
        ("http://my-dcr.ingest.monitor.azure.com", DCR, STREAM),
        ("https://x.example?a=b", DCR, STREAM),
        ("not a url", DCR, STREAM),
        (ok, "PimAuditRule", STREAM),
        (ok, "dcr-", STREAM),
        (ok, "dcr-abc/../x", STREAM),
        (ok, DCR, "PimAudit_CL"),
        (ok, DCR, "Custom-"),
        (ok, DCR, "Custom-Pim Audit"),
        (ok, DCR, "Custom-1abc"),
    ];
    for (endpoint, dcr, stream) in bad {
        let err = LogsIngestionClient::new(endpoint, dcr, stream, cred(), None).unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig { .. }),
            "{endpoint} {dcr} {stream}"
        );
    }
    let tiny = IngestionOptions {
        max_body_bytes: 10,
        ..IngestionOptions::default()
    };
    assert!(LogsIngestionClient::new(ok, DCR, STREAM, cred(), Some(tiny)).is_err());
    let huge = IngestionOptions {
        max_body_bytes: 2_000_000,
        ..IngestionOptions::default()
    };
    assert!(LogsIngestionClient::new(ok, DCR, STREAM, cred(), Some(huge)).is_err());
    let msg = LogsIngestionClient::new(ok, "my-rule", STREAM, cred(), None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("immutableId"), "{msg}");
}

#[tokio::test]
async fn probe_reports_reachability_without_sending_credentials_or_rows() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server.uri(), STREAM, options(1));
    let ok = c.probe().await.unwrap();
    assert!(ok.contains("answered HTTP 404"), "{ok}");
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| !r.headers.contains_key("authorization"))
    );

    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{closed}"), STREAM, options(1));
    let err = c.probe().await.unwrap_err();
    assert!(err.starts_with("cannot reach http://127.0.0.1:"), "{err}");
    assert!(err.contains("; fix: check PIM_DCR_ENDPOINT"), "{err}");
}

// Issue 9: a Retry-After longer than what is left of the call's budget (5 s) fails at once,
// naming the server's wait, instead of being cut short and retried into the same throttle.
#[tokio::test]
async fn a_retry_after_past_the_budget_fails_at_once_naming_the_wait() {
    let fake = LogsIngestionFake::start(DCR, STREAM).await;
    fake.fail_always(IngestionFailure::TooManyRequests {
        retry_after_secs: 300,
    });
    let err = client(&fake.endpoint(), STREAM, options(3))
        .send(&sample_rows(2))
        .await
        .unwrap_err();
    assert_eq!(fake.requests().len(), 1, "{err}");
    assert!(
        err.to_string()
            .contains("(the service asked to wait 300 s)"),
        "{err}"
    );
}

#[tokio::test]
async fn every_cloud_gets_the_scope_of_its_data_collection_endpoint() {
    // A loopback listener stands in for each cloud's host (the client resolves the host to
    // it): it counts connections and closes them, so each send ends in a transport error
    // after the token was requested.
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
    let clouds = [
        ("dce-1.westeurope-1.ingest.monitor.azure.com", MONITOR_SCOPE),
        (
            "dce-1.chinaeast2-1.ingest.monitor.azure.cn",
            MONITOR_SCOPE_CHINA,
        ),
        (
            "dce-1.usgovvirginia-1.ingest.monitor.azure.us",
            MONITOR_SCOPE_US_GOVERNMENT,
        ),
    ];
    for (n, (host, scope)) in clouds.into_iter().enumerate() {
        let http = reqwest::Client::builder()
            .resolve(host, addr)
            .build()
            .unwrap();
        let cred = credential("t");
        let client = LogsIngestionClient::new(
            &format!("https://{host}:{}", addr.port()),
            DCR,
            STREAM,
            cred.clone(),
            Some(IngestionOptions {
                retry: RetryPolicy::none(),
                client: Some(http),
                ..IngestionOptions::default()
            }),
        )
        .unwrap();
        assert_eq!(client.scope(), scope, "{host}");
        assert_eq!(monitor_scope(&format!("https://{host}")), scope);
        let err = client.send(&sample_rows(1)).await.unwrap_err();
        assert!(!matches!(err, Error::Credential { .. }), "{host}: {err}");
        assert_eq!(*cred.scopes.lock().unwrap(), [scope], "{host}");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            n + 1,
            "{host}: the call did not reach the endpoint"
        );
    }
}

#[test]
fn an_explicit_scope_wins_and_an_empty_one_is_refused() {
    let endpoint = "https://dce-1.chinaeast2-1.ingest.monitor.azure.cn";
    let build = |scope: Option<&str>| {
        LogsIngestionClient::new(
            endpoint,
            DCR,
            STREAM,
            credential("t"),
            Some(IngestionOptions {
                scope: scope.map(str::to_owned),
                ..IngestionOptions::default()
            }),
        )
    };
    assert_eq!(build(None).unwrap().scope(), MONITOR_SCOPE_CHINA);
    assert_eq!(
        build(Some(" https://monitor.example/.default "))
            .unwrap()
            .scope(),
        "https://monitor.example/.default"
    );
    assert!(
        build(Some("  "))
            .unwrap_err()
            .to_string()
            .contains("scope is empty")
    );
}

#[test]
fn options_debug_never_prints_a_callers_client() {
    let options = |client| IngestionOptions {
        client: Some(client),
        ..Default::default()
    };
    pim_http::secret::check_debug_hides_client(options).unwrap();
}
