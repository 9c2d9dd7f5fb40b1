//! Scheduled runs on a state store (issue 13): overlapping `--since-last` runs over exports
//! whose later versions add late-arriving rows deliver each finding once per revision, late
//! data makes a new revision, provisional verdicts become final, a run killed between
//! assessment and delivery is recovered by the next one, and a concurrent run is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pim_testkit::{LogsIngestionFake, ManagedIdentityFake, WebhookFailure, WebhookFake};
use serde_json::Value;

use crate::support::fixture;

const DCR: &str = "dcr-00112233445566778899aabbccddeeff";
const MI_SECRET: &str = "mi-header-secret-state";
const TOM: &str = "tom.berg@contoso-demo.com";

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pim-batch-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `rowobjects` exports as first ingested: Tom's two Key Vault operations (16:41) have not
/// arrived yet. The full fixture is the same exports once they have.
fn exports_without_late_rows(dir: &Path) -> PathBuf {
    let early = dir.join("early");
    std::fs::create_dir_all(&early).unwrap();
    let src = fixture("rowobjects");
    std::fs::copy(src.join("AuditLogs.json"), early.join("AuditLogs.json")).unwrap();
    let rows: Vec<Value> =
        serde_json::from_slice(&std::fs::read(src.join("AzureActivity.json")).unwrap()).unwrap();
    let kept: Vec<Value> = rows.into_iter().filter(|r| r["Caller"] != TOM).collect();
    std::fs::write(
        early.join("AzureActivity.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    early
}

fn command(args: &[String], env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pim-batch"));
    c.args(args).env_clear().envs(env.iter().cloned());
    c
}

async fn run(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || command(&args, &env).output().unwrap())
        .await
        .unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn report(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    pim_testkit::report_schema::assert_valid_report(&r);
    r
}

fn tom(r: &Value) -> &Value {
    r["activations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["principal"]["upn"] == TOM && a["window"]["start"] == "2026-11-20T16:29:55Z")
        .unwrap_or_else(|| panic!("Tom's 16:29 activation missing: {r:#}"))
}

/// `(activation id, revision)` of every finding a webhook accepted, with how often.
fn webhook_sends(hook: &WebhookFake) -> BTreeMap<(String, u64), usize> {
    let mut seen = BTreeMap::new();
    for p in hook.payloads() {
        for f in p["findings"].as_array().unwrap() {
            let key = (
                f["activationId"].as_str().unwrap().to_owned(),
                f["revision"].as_u64().unwrap(),
            );
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    seen
}

/// `(activation id, revision)` of every row Logs Ingestion accepted, with how often.
fn ingestion_sends(li: &LogsIngestionFake) -> BTreeMap<(String, u64), usize> {
    let mut seen = BTreeMap::new();
    for row in li.rows() {
        let key = (
            row["ActivationId"].as_str().unwrap().to_owned(),
            row["Revision"].as_u64().unwrap(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_overlapping_runs_deliver_each_finding_once_and_late_rows_make_a_revision() {
    let dir = scratch("three-runs");
    let early = exports_without_late_rows(&dir);
    let full = fixture("rowobjects");
    let state = dir.join("state").join("pim.db");
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let li = LogsIngestionFake::start(DCR, "Custom-PimAudit_CL").await;
    let hook = WebhookFake::start("sig-state-1a2b").await;
    let env = vec![
        ("PIM_AUTH".to_owned(), "managed-identity".to_owned()),
        ("IDENTITY_ENDPOINT".to_owned(), mi.endpoint()),
        ("IDENTITY_HEADER".to_owned(), MI_SECRET.to_owned()),
        ("PIM_DCR_ENDPOINT".to_owned(), li.endpoint()),
        ("PIM_DCR_RULE_ID".to_owned(), DCR.to_owned()),
        ("PIM_WEBHOOK_URL".to_owned(), hook.url()),
        // The state from the environment, as a scheduled job would set it.
        ("PIM_STATE".to_owned(), state.display().to_string()),
    ];
    let scan = |from: &Path, end: &str| {
        let mut a = strings(&["--format", "json", "--since-last", "--hours", "48"]);
        a.extend(strings(&["--send", "logs-ingestion", "--send", "webhook"]));
        a.extend(["--from-dir".to_owned(), from.display().to_string()]);
        a.extend(["--end".to_owned(), end.to_owned()]);
        a
    };

    // Run 1 at 18:00 scans to 17:30 (the settle time): Tom is still active and his operations
    // have not been ingested, so he is a provisional `no_activity` finding.
    let r1 = report(&run(scan(&early, "2026-11-20T18:00:00Z"), env.clone()).await);
    assert_eq!(r1["window"]["end"], "2026-11-20T17:30:00Z");
    let t1 = tom(&r1);
    assert_eq!(t1["assessment"]["verdict"], "no_activity");
    assert_eq!(
        (t1["state"].as_str(), t1["revision"].as_u64()),
        (Some("provisional"), Some(1))
    );
    let finals = r1["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "final")
        .count();
    assert!(
        finals > 5,
        "activations that ended long before are final: {finals}"
    );
    let findings_1 = r1["summary"]["findings"].as_u64().unwrap() as usize;
    assert_eq!(webhook_sends(&hook).len(), findings_1);
    assert_eq!(
        ingestion_sends(&li).len(),
        r1["activations"].as_array().unwrap().len()
    );

    // Run 2 at 19:00: from 17:30 minus the overlap (and back to Tom's start, as he is still
    // provisional) to 18:30. The late rows are in: Tom is re-assessed, a new revision.
    let r2 = report(&run(scan(&full, "2026-11-20T19:00:00Z"), env.clone()).await);
    assert_eq!(r2["window"]["end"], "2026-11-20T18:30:00Z");
    let t2 = tom(&r2);
    assert_eq!(t2["assessment"]["verdict"], "aligned");
    assert_eq!(
        (t2["state"].as_str(), t2["revision"].as_u64()),
        (Some("provisional"), Some(2))
    );

    // Run 3 the next morning: Tom's window ended at 20:29:55, long settled: final, and not
    // sent again (nothing but the state changed).
    let r3 = report(&run(scan(&full, "2026-11-21T06:00:00Z"), env.clone()).await);
    let t3 = tom(&r3);
    assert_eq!(
        (t3["state"].as_str(), t3["revision"].as_u64()),
        (Some("final"), Some(2))
    );
    assert_eq!(t3["assessment"]["verdict"], "aligned");

    // Exactly once per destination and revision, over three overlapping runs.
    let hook_sends = webhook_sends(&hook);
    assert!(hook_sends.values().all(|n| *n == 1), "{hook_sends:?}");
    let tom_id = t1["id"].as_str().unwrap().to_owned();
    assert_eq!(hook_sends.get(&(tom_id.clone(), 1)), Some(&1));
    // Revision 2 is aligned: below the webhook's `findings` threshold, so not sent there.
    assert_eq!(hook_sends.get(&(tom_id.clone(), 2)), None);
    let rows = ingestion_sends(&li);
    assert!(rows.values().all(|n| *n == 1), "{rows:?}");
    assert_eq!(rows.get(&(tom_id.clone(), 1)), Some(&1));
    assert_eq!(rows.get(&(tom_id.clone(), 2)), Some(&1));
    assert_eq!(rows.keys().filter(|(id, _)| *id == tom_id).count(), 2);

    // History reads it back: Tom's final verdict, per identity counts.
    let out = run(
        strings(&[
            "history",
            "--format",
            "json",
            "--days",
            "36500",
            "--user",
            "TOM.BERG@contoso-demo.com",
        ]),
        env.clone(),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let acts = h["activations"].as_array().unwrap();
    assert!(
        acts.iter().any(|a| a["id"] == tom_id.as_str()
            && a["verdict"] == "aligned"
            && a["state"] == "final")
    );
    assert_eq!(
        h["identities"][TOM]["activations"].as_u64(),
        Some(acts.len() as u64)
    );
    let md = run(strings(&["history", "--days", "36500"]), env.clone()).await;
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("## Per identity") && md.contains("tom.berg"),
        "{md}"
    );

    // --check reports the state.
    let check = run(strings(&["--check"]), env).await;
    let check = String::from_utf8_lossy(&check.stdout);
    let line = |name: &str| {
        check
            .lines()
            .find(|l| l.contains(&format!("  {name} — ")))
            .unwrap_or_else(|| panic!("no {name} line: {check}"))
            .to_owned()
    };
    assert!(line("state").contains("schema version 1"), "{check}");
    assert!(
        line("state last run").contains("watermark 2026-11-21T05:30:00Z"),
        "{check}"
    );
    assert!(
        line("state outbox").starts_with("PASS") && line("state outbox").contains("empty"),
        "{check}"
    );
    assert!(!check.contains("sig-state-1a2b"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_before_delivery_is_recovered_and_a_concurrent_run_is_refused() {
    let dir = scratch("crash");
    let state = dir.join("pim.db");
    let hook = WebhookFake::start("sig-state-9z").await;
    // The first delivery attempt is told to come back in a minute: the run is then past its
    // assessments (committed, with their deliveries queued) and waiting to send.
    hook.fail_next(
        1,
        WebhookFailure::TooManyRequests {
            retry_after_secs: 60,
        },
    );
    let mut args = strings(&["--format", "json", "--since-last", "--hours", "48"]);
    args.extend([
        "--from-dir".to_owned(),
        fixture("rowobjects").display().to_string(),
    ]);
    args.extend(strings(&["--end", "2026-11-20T18:00:00Z", "--send"]));
    args.push(format!("webhook={}", hook.url()));
    args.extend(["--state".to_owned(), state.display().to_string()]);
    let env: Vec<(String, String)> = Vec::new();

    let mut first = command(&args, &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while hook.requests().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never tried to send"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // While it runs, a second run on the same state is refused, naming the holder.
    let second = run(args.clone(), env.clone()).await;
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(err.contains("--wait-lock"), "{err}");

    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        hook.payloads().is_empty(),
        "nothing was accepted before the kill"
    );

    // The outbox shows what the killed run queued.
    let check = run(
        strings(&["--check", "--state", &state.display().to_string()]),
        env.clone(),
    )
    .await;
    let check = String::from_utf8_lossy(&check.stdout);
    let outbox = check
        .lines()
        .find(|l| l.contains("state outbox "))
        .unwrap_or_else(|| panic!("{check}"));
    assert!(
        outbox.starts_with("FAIL") && outbox.contains("deliveries waiting"),
        "{outbox}"
    );
    assert!(
        check.contains("no successful run yet"),
        "the killed run kept no watermark: {check}"
    );

    // The next run sends the queued findings once, and the outbox is empty.
    let r = report(&run(args.clone(), env.clone()).await);
    let sends = webhook_sends(&hook);
    assert_eq!(
        sends.len(),
        r["summary"]["findings"].as_u64().unwrap() as usize
    );
    assert!(sends.values().all(|n| *n == 1), "{sends:?}");
    assert_eq!(hook.payloads().len(), 1);
    // And a run after that sends nothing more.
    report(&run(args, env.clone()).await);
    assert_eq!(hook.payloads().len(), 1);
    let store = pim_state::Store::open_read_only(&state).unwrap();
    assert!(store.outbox_summary().unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
