//! The server the real-browser test drives (`crates/pim-serve/browser/test.mjs`): the real
//! `pim-chat --demo serve` binary on loopback, signing in with pim-testkit's fake Entra ID
//! authority, exactly as it would behind Container Apps authentication.
//!
//! ```sh
//! cargo build -p pim-chat
//! cargo run -p pim-examples --example serve_fixture -- --pim-chat target/debug/pim-chat
//! ```
//!
//! It starts the fake authority (OIDC metadata and keys on 127.0.0.1), starts `pim-chat` with
//! `PIM_SERVE_AUTH=entra` and `PIM_SERVE_AUTHORITY` pointing at it (an `http://` authority is
//! accepted on loopback only), waits until the server listens, and prints one JSON line on
//! stdout:
//!
//! ```json
//! {"url": "http://127.0.0.1:PORT", "token": "...", "token_without_role": "...",
//!  "token_expired": "...", "audience": "...", "role": "..."}
//! ```
//!
//! `token` is an RS256 ID token of the fake authority with the app role; the browser test
//! sends it as `X-MS-TOKEN-AAD-ID-TOKEN`, the header the platform injects. The other two are
//! refused: one lacks the role, one expired (what the platform holds before `/.auth/refresh`). The server's
//! stderr (its logs) is copied to this process's stderr. The fixture runs until its stdin
//! closes (the test is done) or the server exits, and stops the server either way.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use pim_testkit::OidcFake;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const AUDIENCE: &str = "api://pim-browser-test";
const ROLE: &str = "PIM.Auditor";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("serve_fixture: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut pim_chat = None;
    let mut log_level = "info".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pim-chat" => pim_chat = args.next().map(PathBuf::from),
            "--log-level" => log_level = args.next().ok_or("--log-level needs a value")?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let pim_chat = pim_chat.ok_or("--pim-chat PATH (the pim-chat binary) is required")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let fake = runtime.block_on(OidcFake::start(TENANT));
    let token = fake.mint(&fake.claims(AUDIENCE, "browser-analyst", ROLE));
    let token_without_role = fake.mint(&fake.claims(AUDIENCE, "browser-visitor", "PIM.Other"));
    // An hour-old ID token, as the platform's token store holds before /.auth/refresh.
    let mut stale = fake.claims(AUDIENCE, "browser-analyst", ROLE);
    let now = pim_testkit::unix_now();
    stale["iat"] = (now - 4000).into();
    stale["nbf"] = (now - 4000).into();
    stale["exp"] = (now - 400).into();
    let token_expired = fake.mint(&stale);

    // A directory of its own: no `.env` of the caller's is read, no history written elsewhere.
    let home = std::env::temp_dir().join(format!("pim-serve-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&home)?;
    let mut child = Command::new(&pim_chat)
        .args(["--demo", "--log-level", &log_level, "serve", "--listen"])
        .arg("127.0.0.1:0")
        .current_dir(&home)
        .env_clear()
        .env("HOME", &home)
        .env("PIM_SERVE_AUTH", "entra")
        .env("PIM_SERVE_AUTHORITY", fake.authority())
        .env("PIM_SERVE_AUDIENCE", AUDIENCE)
        .env("PIM_SERVE_ROLE", ROLE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", pim_chat.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr of pim-chat")?;
    let mut lines = BufReader::new(stderr).lines();

    // The server announces its address on stderr; log lines may come first.
    let url = loop {
        let Some(line) = lines.next().transpose()? else {
            let status = child.wait()?;
            return Err(format!("pim-chat serve exited before listening ({status})").into());
        };
        eprintln!("{line}");
        if let Some(rest) = line.strip_prefix("pim-chat serve: listening on ") {
            break rest.trim().to_owned();
        }
    };
    let ready = serde_json::json!({
        "url": url,
        "token": token,
        "token_without_role": token_without_role,
        "token_expired": token_expired,
        "audience": AUDIENCE,
        "role": ROLE,
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }

    // The server's logs keep flowing to our stderr while the test runs.
    let copier = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    // Wait for the test to close our stdin (or to die, which closes it too).
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
    let code = match child.try_wait()? {
        Some(status) => {
            eprintln!("serve_fixture: pim-chat serve exited early ({status})");
            ExitCode::FAILURE
        }
        None => {
            child.kill()?;
            child.wait()?;
            ExitCode::SUCCESS
        }
    };
    // The copier ends with the server's stderr; do not hang on it.
    for _ in 0..20 {
        if copier.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime.block_on(async move { drop(fake) });
    let _ = std::fs::remove_dir_all(&home);
    Ok(code)
}
