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

/// A `pim-chat serve` at `--log-level trace` whose stderr is collected line by line.
struct Traced {
    child: std::process::Child,
    url: String,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

fn serve_traced(dir: &PathBuf, format: &str, log_file: &std::path::Path) -> Traced {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pim-chat"))
        .args(["--demo", "--log-level", "trace", "--log-format", format])
        .arg("--log-file")
        .arg(log_file)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // At trace level log records come before the address line.
    let url = loop {
        let line = lines
            .next()
            .expect("pim-chat serve exited before listening")
            .unwrap();
        stderr.lock().unwrap().push(line.clone());
        if let Some(url) = line.strip_prefix("pim-chat serve: listening on ") {
            break url.trim().to_owned();
        }
    };
    let reader = {
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                stderr.lock().unwrap().push(line);
            }
        })
    };
    Traced {
        child,
        url,
        stderr,
        reader,
    }
}

/// Issue 15, item 2: tokens are never logged. The server runs at `--log-level trace` (tower-
/// http's request spans and events, the validator, hyper and reqwest included), in both log
/// formats, and gets good and bad tokens in both headers; neither a whole token nor any of its
/// three parts (header, claims, signature) appears in stderr or the `--log-file`.
#[tokio::test]
async fn tokens_never_reach_the_log_even_at_trace_level() {
    use pim_testkit::unix_now;
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let audience = "api://pim-logs";
    let fake = pim_testkit::OidcFake::start(tenant).await;
    let good = fake.claims(audience, "alice", "PIM.Auditor");
    let with = |key: &str, value: serde_json::Value| {
        let mut c = good.clone();
        c[key] = value;
        fake.mint(&c)
    };
    let good_token = fake.mint(&good);
    let expired = with("exp", serde_json::json!(unix_now() - 4000));
    let wrong_audience = with("aud", serde_json::json!("api://someone-else"));
    let no_role = with("roles", serde_json::json!(["PIM.Other"]));
    let unknown_kid = fake.mint_with_kid("a-key-nobody-published", &good);
    // The good token with its signature's last characters changed: a forged signature.
    let forged = {
        let (body, sig) = good_token.rsplit_once('.').unwrap();
        let flipped: String = sig
            .chars()
            .rev()
            .take(6)
            .map(|c| if c == 'A' { 'B' } else { 'A' })
            .collect();
        format!("{body}.{}{flipped}", &sig[..sig.len() - 6])
    };
    let garbage = "garbage-token-7f3d9c1e5a2b4d6f8091a3c5e7f9b1d3".to_owned();
    let tokens = [
        ("good", &good_token),
        ("expired", &expired),
        ("wrong audience", &wrong_audience),
        ("no role", &no_role),
        ("unknown kid", &unknown_kid),
        ("forged signature", &forged),
        ("garbage", &garbage),
    ];

    for format in ["text", "json"] {
        let dir = dir_with_env(
            &format!("logs-{format}"),
            &format!(
                "PIM_SERVE_AUTHORITY={}\nPIM_SERVE_AUDIENCE={audience}\n",
                fake.authority()
            ),
        );
        let log_file = dir.join("serve.log");
        let mut server = serve_traced(&dir, format, &log_file);
        let url = server.url.clone();
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for (name, token) in &tokens {
            for platform in [false, true] {
                let request = http.post(format!("{url}/api/sessions"));
                let request = if platform {
                    request.header("X-MS-TOKEN-AAD-ID-TOKEN", token.as_str())
                } else {
                    request.bearer_auth(token)
                };
                let r = request.send().await.unwrap();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                assert!(!body.contains(token.as_str()), "{name}: echoed in {body}");
                statuses.push((*name, platform, status));
                if status == 201 {
                    // A whole conversation with the good token: every route logs its span.
                    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let id = id["id"].as_str().unwrap();
                    let say = http
                        .post(format!("{url}/api/sessions/{id}/messages"))
                        .bearer_auth(token)
                        .json(&serde_json::json!({"text": "scan"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(say.status(), 200);
                    let show = http
                        .get(format!("{url}/api/sessions/{id}"))
                        .header("X-MS-TOKEN-AAD-ID-TOKEN", token.as_str())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(show.status(), 200);
                }
            }
        }
        let expected: Vec<(&str, bool, u16)> = tokens
            .iter()
            .flat_map(|(name, _)| {
                let status = match *name {
                    "good" => 201,
                    "no role" => 403,
                    _ => 401,
                };
                [(*name, false, status), (*name, true, status)]
            })
            .collect();
        assert_eq!(statuses, expected, "{format}");

        server.child.kill().unwrap();
        server.child.wait().unwrap();
        server.reader.join().unwrap();
        let stderr = server.stderr.lock().unwrap().join("\n");
        let file = std::fs::read_to_string(&log_file).unwrap();
        for (what, log) in [("stderr", &stderr), ("--log-file", &file)] {
            // The log really is at trace level and covers the requests: tower-http's events,
            // the refusals, and the key refresh the unknown kid caused.
            assert!(
                log.contains("finished processing request"),
                "{format} {what}: no tower-http events:\n{log}"
            );
            assert!(log.contains("TRACE") || log.contains("\"level\":\"TRACE\""));
            assert!(log.contains("request refused"), "{format} {what}");
            for (name, token) in &tokens {
                assert!(
                    !log.contains(token.as_str()),
                    "{format} {what}: the {name} token was logged"
                );
                for part in token.split('.').filter(|p| p.len() >= 16) {
                    assert!(
                        !log.contains(part),
                        "{format} {what}: part of the {name} token was logged: {part}"
                    );
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
