use pim_serve::{AuthConfig, Limits, ServeConfig};
use pim_testkit::OidcFake;
use serde_json::Value;

use crate::support::{TENANT, agent, entra_server, start, token};

#[tokio::test]
async fn a_conversation_scan_then_ask_with_the_shapes_of_the_issue() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let alice = token(&fake, "alice");
    let id = server.session(&alice).await;

    let r = server.say(&alice, &id, "scan").await;
    assert_eq!(r.status(), 200);
    let scan: Value = r.json().await.unwrap();
    assert!(
        scan["reply"].as_str().unwrap().starts_with("Scanned"),
        "{scan}"
    );
    assert!(scan["kql"].as_str().unwrap().contains("AuditLogs"));
    let activations = scan["activations"].as_array().unwrap();
    assert!(!activations.is_empty());
    // As in the JSON report.
    assert!(activations[0]["principal"].is_object());
    assert!(activations[0]["assessment"]["verdict"].is_string());

    let r: Value = server
        .say(&alice, &id, "what did 2 do")
        .await
        .json()
        .await
        .unwrap();
    assert!(r["reply"].as_str().unwrap().contains("activation"), "{r}");
    assert!(r["activations"].as_array().is_some_and(|a| !a.is_empty()));

    // No activations on an answer that is not about any.
    let help: Value = server.say(&alice, &id, "help").await.json().await.unwrap();
    assert!(help.get("activations").is_none(), "{help}");

    let t: Value = server
        .get(&alice, &format!("/api/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["id"], id.as_str());
    let messages = t["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["text"], "scan");
    assert_eq!(messages[1]["role"], "agent");
    assert_eq!(messages[1]["text"], scan["reply"]);

    // Reports download; writing one on the server's disk is refused.
    let md = server
        .get(&alice, &format!("/api/sessions/{id}/report.md"))
        .await;
    assert_eq!(md.status(), 200);
    assert!(
        md.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("pim-report.md")
    );
    assert!(md.text().await.unwrap().contains('#'));
    let json: Value = server
        .get(&alice, &format!("/api/sessions/{id}/report.json"))
        .await
        .json()
        .await
        .unwrap();
    assert!(json["activations"].is_array());
    let path = std::env::temp_dir().join(format!("pim-serve-{}.md", std::process::id()));
    let r: Value = server
        .say(&alice, &id, &format!("report {}", path.display()))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        r["reply"]
            .as_str()
            .unwrap()
            .contains("does not write files"),
        "{r}"
    );
    assert!(!path.exists());

    let r = server
        .http
        .delete(format!("{}/api/sessions/{id}", server.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        server
            .get(&alice, &format!("/api/sessions/{id}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn two_users_cannot_see_each_others_sessions() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let alice = token(&fake, "alice");
    let bob = token(&fake, "bob");
    let id = server.session(&alice).await;
    assert_eq!(server.say(&alice, &id, "scan").await.status(), 200);

    for path in [
        format!("/api/sessions/{id}"),
        format!("/api/sessions/{id}/report.md"),
        format!("/api/sessions/{id}/report.json"),
    ] {
        assert_eq!(server.get(&bob, &path).await.status(), 404, "{path}");
    }
    assert_eq!(server.say(&bob, &id, "what did 1 do").await.status(), 404);
    let r = server
        .http
        .delete(format!("{}/api/sessions/{id}", server.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Bob's refusals changed nothing for Alice.
    let t: Value = server
        .get(&alice, &format!("/api/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["messages"].as_array().unwrap().len(), 2);
    // The same oid in another tenant is another user.
    let mut other = fake.claims(crate::support::AUDIENCE, "alice", crate::support::ROLE);
    other["tid"] = "00000000-0000-0000-0000-000000000000".into();
    assert_eq!(
        server
            .get(&fake.mint(&other), &format!("/api/sessions/{id}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn the_answer_as_server_sent_events() {
    let server = start(AuthConfig::None, Limits::default()).await;
    let id = server.session("unused").await;
    let r = server
        .http
        .post(format!("{}/api/sessions/{id}/messages", server.url))
        .header("Accept", "text/event-stream")
        .json(&serde_json::json!({ "text": "scan" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["working", "answer", "done"], "{text}");
    let data = text
        .split("event: answer\n")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|l| l.strip_prefix("data: "))
        .unwrap();
    let answer: Value = serde_json::from_str(data).unwrap();
    assert!(answer["reply"].as_str().unwrap().starts_with("Scanned"));
    assert!(answer["activations"].is_array());
}

#[tokio::test]
async fn health_and_readiness_need_no_sign_in_the_page_has_a_strict_csp() {
    let fake = OidcFake::start(TENANT).await;
    let server = entra_server(&fake, Limits::default()).await;
    let r = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model"], "not configured");
    assert_eq!(fake.jwks_requests(), 0, "no token was looked at");

    for (path, kind) in [
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/icon.svg", "image/svg+xml"),
    ] {
        let r = server
            .http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(r.headers()["content-security-policy"], pim_serve::CSP);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    // The API is not cached.
    let r = server.create(&token(&fake, "alice")).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn no_sign_in_is_refused_off_loopback() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let config = ServeConfig {
        auth: AuthConfig::None,
        limits: Limits::default(),
    };
    let e = pim_serve::serve(listener, config, agent(), async {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[tokio::test]
async fn readiness_fails_when_the_model_does_not_answer() {
    use std::sync::Arc;
    let mut a = agent();
    // A model endpoint that refuses the connection.
    let model =
        pim_openai::OpenAiCompatible::new("http://127.0.0.1:9/v1", None, "m", None).unwrap();
    a.model = Some(Arc::new(model));
    let server = crate::support::start_with(AuthConfig::None, Limits::default(), a).await;
    let r = server
        .http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["model"], "failing");
    assert_eq!(body["source"], "ok");
}
