use std::time::{SystemTime, UNIX_EPOCH};

use pim_testkit::{ManagedIdentityFake, MsiFailure, token_for};
use serde_json::Value;

const LA: &str = "https://api.loganalytics.io";

async fn get(fake: &ManagedIdentityFake, secret: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{}?{query}", fake.endpoint()))
        .header("metadata", "true");
    if let Some(secret) = secret {
        req = req.header("x-identity-header", secret);
    }
    req.send().await.unwrap()
}

const QUERY: &str = "api-version=2019-08-01&resource=https%3A%2F%2Fapi.loganalytics.io";

#[tokio::test]
async fn issues_token_with_string_expires_on_and_counts_per_resource() {
    let fake = ManagedIdentityFake::start("s3cr3t").await;
    assert!(
        fake.endpoint().starts_with("http://127.0.0.1:") && fake.endpoint().ends_with("/msi/token")
    );
    let resp = get(&fake, Some("s3cr3t"), QUERY).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["access_token"], token_for(LA));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], LA);
    let expires: u64 = body["expires_on"]
        .as_str()
        .expect("expires_on must be a string")
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expires > now + 3000 && expires <= now + 3601,
        "{expires} vs {now}"
    );

    get(
        &fake,
        Some("s3cr3t"),
        "api-version=2019-08-01&resource=https%3A%2F%2Fcognitiveservices.azure.com",
    )
    .await;
    assert_eq!(fake.requests_for(LA), 1);
    assert_eq!(fake.requests_for("https://api.loganalytics.io/.default"), 1);
    assert_eq!(fake.requests_for("https://cognitiveservices.azure.com"), 1);
    assert_eq!(fake.request_count(), 2);
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/msi/token");
    assert_eq!(r.query_param("resource").as_deref(), Some(LA));
    assert_eq!(r.header("metadata"), Some("true"));
}

#[tokio::test]
async fn rejects_missing_or_wrong_header_and_missing_params() {
    let fake = ManagedIdentityFake::start("s3cr3t").await;
    assert_eq!(get(&fake, None, QUERY).await.status(), 401);
    assert_eq!(get(&fake, Some("wrong"), QUERY).await.status(), 401);
    assert_eq!(get(&fake, Some("s3cr3t"), "resource=x").await.status(), 400);
    assert_eq!(
        get(&fake, Some("s3cr3t"), "api-version=2019-08-01")
            .await
            .status(),
        400
    );
    assert_eq!(fake.requests_for(LA), 0);
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn injected_failures_then_recovery() {
    let fake = ManagedIdentityFake::start("s3cr3t").await;
    fake.fail_next(1, MsiFailure::ServerError)
        .fail_next(1, MsiFailure::IdentityNotAssigned);
    let resp = get(&fake, Some("s3cr3t"), QUERY).await;
    assert_eq!(resp.status(), 500);
    let resp = get(&fake, Some("s3cr3t"), QUERY).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("managed identity")
    );
    assert_eq!(get(&fake, Some("s3cr3t"), QUERY).await.status(), 200);
    fake.fail_always(MsiFailure::ServerError);
    assert_eq!(get(&fake, Some("s3cr3t"), QUERY).await.status(), 500);
    assert_eq!(get(&fake, Some("s3cr3t"), QUERY).await.status(), 500);
    fake.clear_failures();
    assert_eq!(get(&fake, Some("s3cr3t"), QUERY).await.status(), 200);
    assert_eq!(fake.requests_for(LA), 6);
}

#[tokio::test]
async fn debug_never_shows_the_header_secret() {
    let fake = ManagedIdentityFake::start("very-secret-header").await;
    let text = format!("{fake:?}");
    assert!(!text.contains("very-secret-header"), "{text}");
    assert!(text.contains("REDACTED"));
}
