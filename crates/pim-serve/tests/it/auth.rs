use pim_serve::Limits;
use pim_testkit::{OidcFake, unix_now};
use serde_json::{Value, json};

use crate::support::{AUDIENCE, ROLE, TENANT, entra_server, token};

async fn status_of(server: &crate::support::Server, token: &str) -> (u16, Option<String>, Value) {
    let r = server.create(token).await;
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, r.json().await.unwrap_or(Value::Null))
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[tokio::test]
async fn a_good_token_opens_a_session_by_bearer_or_the_platform_header() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let good = token(&fake, "alice");
    assert_eq!(server.create(&good).await.status(), 201);
    let r = server
        .http
        .post(format!("{}/api/sessions", server.url))
        .header("X-MS-TOKEN-AAD-ID-TOKEN", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(fake.metadata_requests(), 1, "keys are cached");
    assert_eq!(fake.jwks_requests(), 1);
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_bearer_challenge() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let good = fake.claims(AUDIENCE, "alice", ROLE);
    let now = unix_now();
    let cases = [
        (
            "expired",
            with(
                with(good.clone(), "exp", json!(now - 400)),
                "nbf",
                json!(now - 4000),
            ),
        ),
        ("not yet valid", with(good.clone(), "nbf", json!(now + 400))),
        (
            "wrong audience",
            with(good.clone(), "aud", json!("api://someone-else")),
        ),
        (
            "wrong issuer",
            with(
                good.clone(),
                "iss",
                json!("https://login.microsoftonline.com/other/v2.0"),
            ),
        ),
        ("no oid claim", with(good.clone(), "oid", Value::Null)),
    ];
    for (reason, claims) in cases {
        let (status, challenge, body) = status_of(&server, &fake.mint(&claims)).await;
        assert_eq!(status, 401, "{reason}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer error=\"invalid_token\""),
            "{reason}"
        );
        let error = body["error"].as_str().unwrap();
        assert!(error.ends_with(reason), "{reason}: {error}");
    }
    // Inside the five minutes of skew, both ends are accepted.
    let skewed = with(
        with(good.clone(), "exp", json!(now - 200)),
        "nbf",
        json!(now + 200),
    );
    assert_eq!(status_of(&server, &fake.mint(&skewed)).await.0, 201);

    // No token at all: a plain challenge.
    let r = server
        .http
        .post(format!("{}/api/sessions", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn tampered_signatures_alg_none_and_hs256_are_refused() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let good = token(&fake, "alice");
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();

    // The payload changed (another user), the signature kept.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    claims["oid"] = json!("mallory");
    let forged = format!("{head}.{}.{signature}", b64.encode(claims.to_string()));
    let (status, _, body) = status_of(&server, &forged).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("the token was refused: bad signature"))
    );

    // One signature byte flipped.
    let mut sig = b64.decode(signature).unwrap();
    sig[10] ^= 0x01;
    let flipped = format!("{head}.{payload}.{}", b64.encode(sig));
    assert_eq!(status_of(&server, &flipped).await.0, 401);

    // alg: none, no signature.
    let none_head = b64.encode(r#"{"alg":"none","typ":"JWT","kid":"test-key-1"}"#);
    let none = format!("{none_head}.{payload}.");
    assert_eq!(status_of(&server, &none).await.0, 401);

    // HS256 "signed" with the public key's text (the classic key-confusion attack).
    let hs_head = b64.encode(r#"{"alg":"HS256","typ":"JWT","kid":"test-key-1"}"#);
    let hs = format!("{hs_head}.{payload}.{signature}");
    let (status, _, body) = status_of(&server, &hs).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("RS256 only"));

    assert_eq!(status_of(&server, "not-a-jwt").await.0, 401);
}

#[tokio::test]
async fn a_missing_role_gets_403_naming_it() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let claims = fake.claims(AUDIENCE, "alice", "PIM.Reader");
    let (status, challenge, body) = status_of(&server, &fake.mint(&claims)).await;
    assert_eq!(status, 403);
    assert_eq!(challenge, None);
    assert!(
        body["error"].as_str().unwrap().contains("PIM.Auditor"),
        "{body}"
    );
    let no_roles = with(fake.claims(AUDIENCE, "alice", ROLE), "roles", json!([]));
    assert_eq!(status_of(&server, &fake.mint(&no_roles)).await.0, 403);
}

#[tokio::test]
async fn an_unknown_key_id_refreshes_the_keys_once_then_is_rate_limited() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    assert_eq!(server.create(&token(&fake, "alice")).await.status(), 201);
    assert_eq!(fake.jwks_requests(), 1);

    // The authority rotates its keys: the new kid is unknown, the keys are fetched again.
    fake.rotate();
    assert_eq!(server.create(&token(&fake, "alice")).await.status(), 201);
    assert_eq!(fake.jwks_requests(), 2);

    // A made-up kid right after: refused without another fetch.
    let claims = fake.claims(AUDIENCE, "alice", ROLE);
    let (status, _, body) = status_of(&server, &fake.mint_with_kid("made-up", &claims)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "the token was refused: unknown signing key");
    assert_eq!(fake.jwks_requests(), 2);
}

#[tokio::test]
async fn tokens_never_reach_the_answers() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let claims = with(
        fake.claims(AUDIENCE, "alice", ROLE),
        "aud",
        json!("api://x"),
    );
    let bad = fake.mint(&claims);
    let (_, _, body) = status_of(&server, &bad).await;
    let text = body.to_string();
    let signature = bad.rsplit('.').next().unwrap();
    assert!(
        !text.contains(signature) && !text.contains(&bad[..20]),
        "{text}"
    );
}
