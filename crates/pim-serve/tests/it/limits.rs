use std::time::Duration;

use pim_serve::{AuthConfig, Limits};
use pim_testkit::OidcFake;
use serde_json::Value;

use crate::support::{TENANT, entra_server, start, token};

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let server = start(
        AuthConfig::None,
        Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        },
    )
    .await;
    let id = server.session("").await;
    let big = "x".repeat(2000);
    assert_eq!(server.say("", &id, &big).await.status(), 413);
    // Without a Content-Length too (a streamed body).
    let chunks = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(format!("{{\"text\": \"{big}")),
        Ok("\"}".to_owned()),
    ]);
    let r = server
        .http
        .post(format!("{}/api/sessions/{id}/messages", server.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(server.say("", &id, "help").await.status(), 200);
    // A body that is not the message shape is a client error, not a crash.
    let r = server
        .http
        .post(format!("{}/api/sessions/{id}/messages", server.url))
        .header("content-type", "application/json")
        .body("{\"txt\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn sessions_per_user_and_in_all() {
    let fake = OidcFake::start(TENANT).await;
    let limits = Limits {
        sessions_per_user: 2,
        max_sessions: 3,
        ..Limits::default()
    };
    let server = entra_server(&fake, limits).await;
    let (alice, bob, carol) = (
        token(&fake, "alice"),
        token(&fake, "bob"),
        token(&fake, "carol"),
    );
    let first = server.session(&alice).await;
    server.session(&alice).await;
    let r = server.create(&alice).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("2 sessions"),
        "{body}"
    );
    server.session(&bob).await;
    let r = server.create(&carol).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "60");
    // Closing one makes room.
    let r = server
        .http
        .delete(format!("{}/api/sessions/{first}", server.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(server.create(&carol).await.status(), 201);
}

#[tokio::test]
async fn messages_per_user_per_minute_get_429_with_retry_after() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(
        &fake,
        Limits {
            messages_per_minute: 3,
            ..Limits::default()
        },
    )
    .await;
    let alice = token(&fake, "alice");
    let bob = token(&fake, "bob");
    let a1 = server.session(&alice).await;
    let a2 = server.session(&alice).await;
    for id in [&a1, &a2, &a1] {
        assert_eq!(server.say(&alice, id, "help").await.status(), 200);
    }
    // The limit is the user's, across sessions.
    let r = server.say(&alice, &a2, "help").await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let b = server.session(&bob).await;
    assert_eq!(server.say(&bob, &b, "help").await.status(), 200);
    // A refused message is not recorded.
    let t: Value = server
        .get(&alice, &format!("/api/sessions/{a2}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_idle_session_expires() {
    let server = start(
        AuthConfig::None,
        Limits {
            idle: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await;
    let kept = server.session("").await;
    let dropped = server.session("").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(server.say("", &kept, "help").await.status(), 200);
    }
    assert_eq!(
        server
            .get("", &format!("/api/sessions/{dropped}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        server
            .get("", &format!("/api/sessions/{kept}"))
            .await
            .status(),
        200
    );
}
