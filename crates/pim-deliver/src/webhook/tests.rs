//! The webhook client against a loopback fake, the threshold, and the summary.

use std::time::Instant;

use pim_domain::{Flag, Risk, Verdict};
use pim_testkit::{WebhookFailure, WebhookFake};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::Error;
use crate::row::tests::{activation, report};

const SIG: &str = "Zm9vYmFyc2VjcmV0c2lnbmF0dXJl";

fn fast(max_attempts: u32) -> WebhookOptions {
    WebhookOptions {
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(100),
            max_total: Duration::from_secs(5),
        },
        client: None,
    }
}

fn sample() -> Report {
    report(vec![
        activation("ok", Verdict::Aligned, Risk::Low, &[]),
        activation("still", Verdict::Aligned, Risk::Low, &[Flag::StillActive]),
        activation("part", Verdict::Partial, Risk::Medium, &[]),
        activation(
            "bad",
            Verdict::NotAligned,
            Risk::Critical,
            &[Flag::HighRiskOperation],
        ),
        activation("hi", Verdict::Aligned, Risk::High, &[]),
        activation("unk", Verdict::Unknown, Risk::Medium, &[]),
    ])
}

fn listed(summary: &FindingsSummary) -> Vec<&str> {
    summary
        .findings
        .iter()
        .map(|f| f.activation_id.as_str())
        .collect()
}

#[test]
fn thresholds_filter_like_fail_on() {
    let r = sample();
    let s = findings_summary(&r, Threshold::default());
    assert_eq!(listed(&s), ["part", "bad", "hi", "unk"]);
    assert_eq!(
        s.counts,
        SummaryCounts {
            activations: 6,
            findings: 4,
            matching: 4
        }
    );
    let by = |t: &str| listed(&findings_summary(&r, t.parse().unwrap())).join(",");
    assert_eq!(by("high"), "bad,hi");
    assert_eq!(by("critical"), "bad");
    assert_eq!(by("low"), "ok,still,part,bad,hi,unk");
    assert_eq!(by("not_aligned"), "bad");
    assert_eq!(by("NOT_ALIGNED, unknown"), "bad,unk");
    assert_eq!(by("partial,partial"), "part");
    assert_eq!(by("findings"), "part,bad,hi,unk");
    assert!("".parse::<Threshold>().is_err());
    let err = "high,sometimes".parse::<Threshold>().unwrap_err();
    assert_eq!(err.value, "sometimes");
    assert_eq!(
        "not_aligned,high".parse::<Threshold>().unwrap().to_string(),
        "not_aligned,high"
    );
}

#[test]
fn the_summary_holds_report_window_counts_and_each_finding() {
    let mut r = sample();
    r.activations[3].assessment.rationale = format!("a\u{0}b{}", "x".repeat(1000));
    let s = findings_summary(&r, "critical".parse().unwrap());
    assert_eq!(s.schema, "pim-audit.findings.v1");
    assert_eq!(s.report_id, "rep-2026-11-20");
    assert_eq!(s.generated_at, "2026-11-21T06:00:00Z");
    assert_eq!(s.window.start, "2026-11-20T06:00:00Z");
    assert_eq!(s.threshold, "critical");
    assert_eq!(
        s.title,
        "PIM audit: 1 of 6 activations need review (critical)"
    );
    let f = &s.findings[0];
    assert_eq!(f.principal, "bad@contoso.com");
    assert_eq!(f.role, "Contributor");
    assert_eq!(f.scope, "resource_group rg-prod-web");
    assert_eq!(
        (f.verdict.as_str(), f.risk.as_str()),
        ("not_aligned", "critical")
    );
    assert_eq!(f.flags, ["high_risk_operation"]);
    assert_eq!(f.rationale.chars().count(), 300);
    assert!(f.rationale.starts_with("a b"));
    assert_eq!(f.activated_at, "2026-11-20T09:00:00Z");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["counts"]["matching"], 1);
    assert_eq!(json["findings"][0]["activationId"], "bad");
    assert!(!s.is_empty());
    assert!(findings_summary(&report(Vec::new()), Threshold::AnyFinding).is_empty());

    let many = report(
        (0..MAX_LISTED + 5)
            .map(|i| activation(&format!("a{i}"), Verdict::Partial, Risk::Low, &[]))
            .collect(),
    );
    let s = findings_summary(&many, Threshold::AnyFinding);
    assert_eq!(
        (s.findings.len(), s.omitted, s.counts.matching),
        (MAX_LISTED, 5, MAX_LISTED + 5)
    );
}

#[tokio::test]
async fn posts_the_summary_as_json() {
    let fake = WebhookFake::start(SIG).await;
    let client = WebhookClient::new(&fake.url(), Some(fast(1))).unwrap();
    let summary = findings_summary(&sample(), Threshold::AnyFinding);
    client.send(&summary).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[0].query_param("sig").as_deref(), Some(SIG));
    let sent: FindingsSummary = serde_json::from_value(fake.payloads()[0].clone()).unwrap();
    assert_eq!(sent, summary);

    fake.set_success_status(200);
    client.send(&summary).await.unwrap();
    assert_eq!(fake.payloads().len(), 2);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_given_up() {
    let fake = WebhookFake::start(SIG).await;
    fake.fail_next(
        1,
        WebhookFailure::TooManyRequests {
            retry_after_secs: 1,
        },
    )
    .fail_next(1, WebhookFailure::InternalError);
    let client = WebhookClient::new(&fake.url(), Some(fast(3))).unwrap();
    let summary = findings_summary(&sample(), Threshold::AnyFinding);
    let started = Instant::now();
    client.send(&summary).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "Retry-After honoured up to the cap"
    );
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.payloads().len(), 1);

    fake.fail_always(WebhookFailure::ServiceUnavailable);
    let err = client.send(&summary).await.unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(err.status(), Some(503));
}

#[tokio::test]
async fn the_signature_never_appears_in_errors_or_debug() {
    let fake = WebhookFake::start(SIG).await;
    let client = WebhookClient::new(&fake.url(), Some(fast(2))).unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains(SIG), "{debug}");
    assert!(debug.contains(&fake.url_without_query()), "{debug}");
    assert_eq!(
        client.display_url(),
        format!("{}?[REDACTED]", fake.url_without_query())
    );
    let summary = findings_summary(&sample(), Threshold::AnyFinding);

    // A final 4xx: not retried, says what to check, no signature.
    fake.fail_always(WebhookFailure::Status(404));
    let err = client.send(&summary).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Rejected { status: 404, .. }), "{text}");
    assert!(!text.contains(SIG), "{text}");
    assert_eq!(fake.requests().len(), 1);

    // A receiver that echoes the URL back.
    let echo = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!(
            "{{\"error\":{{\"code\":\"Unauthorized\",\"message\":\"bad signature sig={SIG} for {}/hook?sig={SIG}\"}}}}",
            echo.uri()
        )))
        .mount(&echo)
        .await;
    let url = format!("{}/hook?api-version=1&sig={SIG}", echo.uri());
    let err = WebhookClient::new(&url, Some(fast(2)))
        .unwrap()
        .send(&summary)
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SIG), "{text}");
    assert!(text.contains("copy the trigger URL again"), "{text}");

    // Transport failure to a closed port: reqwest would print the URL; we remove it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/hook?sig={SIG}");
    let err = WebhookClient::new(&url, Some(fast(2)))
        .unwrap()
        .send(&summary)
        .await
        .unwrap_err();
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(matches!(err, Error::RetriesExhausted { .. }), "{text}");
    assert!(!text.contains(SIG), "{text}");

    // Configuration errors never quote the query either.
    for bad in [
        format!("http://example.com/hook?sig={SIG}"),
        format!("https://user:pw@example.com/hook?sig={SIG}"),
        format!("::not a url?sig={SIG}"),
    ] {
        let err = WebhookClient::new(&bad, None).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, Error::InvalidConfig { .. }), "{text}");
        assert!(!text.contains(SIG), "{text}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", "https://elsewhere.example/"),
        )
        .mount(&server)
        .await;
    let client = WebhookClient::new(&format!("{}/hook", server.uri()), Some(fast(3))).unwrap();
    let err = client
        .send(&findings_summary(&sample(), Threshold::AnyFinding))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { status: 307, .. }), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_wait_beyond_the_budget_fails_at_once_naming_the_wait() {
    let fake = WebhookFake::start(SIG).await;
    fake.fail_next(
        1,
        WebhookFailure::TooManyRequests {
            retry_after_secs: 3600,
        },
    );
    let client = WebhookClient::new(&fake.url(), Some(fast(3))).unwrap();
    let summary = findings_summary(&sample(), Threshold::AnyFinding);
    let started = Instant::now();
    let err = client.send(&summary).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait"
    );
    assert!(
        matches!(&err, Error::ServerWaitTooLong { attempts: 1, asked, .. } if *asked == Duration::from_secs(3600)),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("asked to wait 3600 s"), "{text}");
    assert!(!text.contains(SIG), "{text}");
    assert_eq!(err.status(), Some(429));
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn options_debug_never_prints_a_callers_client() {
    let options = |client| WebhookOptions {
        client: Some(client),
        ..Default::default()
    };
    pim_http::secret::check_debug_hides_client(options).unwrap();
}
