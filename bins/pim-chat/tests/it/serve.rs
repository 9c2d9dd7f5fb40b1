//! `pim-chat serve` as a process: its `PIM_SERVE_*` settings come from a `.env` file alone.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn dir_with_env(name: &str, dotenv: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("serve-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), dotenv).unwrap();
    dir
}

fn serve(dir: &PathBuf, listen: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pim-chat"))
        .args(["--demo", "serve", "--listen", listen])
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn serves_the_demo_tenant_without_sign_in_on_loopback() {
    let dir = dir_with_env(
        "ok",
        "PIM_SERVE_AUTH=none\nPIM_SERVE_SESSIONS_PER_USER=1\nPIM_SERVE_MAX_BODY=512\nPIM_SERVE_MESSAGES_PER_MINUTE=2\n",
    );
    let mut child = serve(&dir, "127.0.0.1:0");
    // The first line says where it listens (port 0 picks a free one).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = http
        .post(format!("{url}/api/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // PIM_SERVE_SESSIONS_PER_USER=1 from .env took effect.
    assert_eq!(
        http.post(format!("{url}/api/sessions"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
    let answer: serde_json::Value = http
        .post(format!("{url}/api/sessions/{id}/messages"))
        .json(&serde_json::json!({"text": "scan"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["reply"].as_str().unwrap().starts_with("Scanned"),
        "{answer}"
    );
    assert!(
        answer["activations"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    // PIM_SERVE_MAX_BODY=512: a larger body is refused.
    let big = http
        .post(format!("{url}/api/sessions/{id}/messages"))
        .json(&serde_json::json!({"text": "x".repeat(600)}))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    // PIM_SERVE_MESSAGES_PER_MINUTE=2: the scan was the first, this the second, then 429.
    let say = || {
        http.post(format!("{url}/api/sessions/{id}/messages"))
            .json(&serde_json::json!({"text": "help"}))
            .send()
    };
    assert_eq!(say().await.unwrap().status(), 200);
    let r = say().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_sign_in_off_loopback_and_entra_without_a_tenant_are_refused() {
    let dir = dir_with_env("refused", "PIM_SERVE_AUTH=none\n");
    let out = serve(&dir, "0.0.0.0:0").wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PIM_SERVE_AUTH=none is refused"), "{err}");

    std::fs::write(dir.join(".env"), "PIM_SERVE_AUDIENCE=api://pim\n").unwrap();
    let out = serve(&dir, "127.0.0.1:0").wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PIM_SERVE_TENANT_ID"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The address from the server's first stderr line.
fn listening_url(child: &mut std::process::Child) -> String {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    line.trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned()
}

#[tokio::test]
async fn entra_sign_in_from_dotenv() {
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let fake = pim_testkit::OidcFake::start(tenant).await;
    let dir = dir_with_env(
        "entra",
        &format!(
            "PIM_SERVE_TENANT_ID={tenant}\nPIM_SERVE_AUTHORITY={}\nPIM_SERVE_AUDIENCE=api://pim-dotenv\nPIM_SERVE_ROLE=PIM.Dotenv\n",
            fake.authority()
        ),
    );
    let mut child = serve(&dir, "127.0.0.1:0");
    let url = listening_url(&mut child);
    let http = reqwest::Client::new();
    let create = |token: String| {
        http.post(format!("{url}/api/sessions"))
            .bearer_auth(token)
            .send()
    };
    let good = fake.mint(&fake.claims("api://pim-dotenv", "alice", "PIM.Dotenv"));
    assert_eq!(create(good).await.unwrap().status(), 201);
    // The default role is not the one configured.
    let other_role = fake.mint(&fake.claims("api://pim-dotenv", "alice", "PIM.Auditor"));
    let r = create(other_role).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("PIM.Dotenv"));
    let other_audience = fake.mint(&fake.claims("api://pim", "alice", "PIM.Dotenv"));
    assert_eq!(create(other_audience).await.unwrap().status(), 401);
    assert_eq!(
        fake.metadata_requests(),
        1,
        "the keys came from PIM_SERVE_AUTHORITY"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
