//! OpenTelemetry end to end: the real binary exports its spans and metrics over OTLP/HTTP to
//! pim-testkit's loopback receiver, and the figures it exports are the report's own (issue 16,
//! item 4). Off, it sends nothing.

use std::collections::BTreeMap;
use std::process::Output;

use pim_testkit::{
    Failure, LogAnalyticsFake, ManagedIdentityFake, OpenAiFake, OtlpReceiver, ReceivedSpan,
    aligned_responder, token_for,
};
use serde_json::Value;

const WORKSPACE: &str = "11111111-2222-4333-8444-555555555555";
const MI_SECRET: &str = "mi-header-secret-otel";
const OPENAI_KEY: &str = "oai-key-otel-never-log-me";

/// Runs pim-batch with only `env`, on a blocking thread so the fakes keep serving.
async fn run(env: Vec<(String, String)>, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn otel_env(rx: &OtlpReceiver) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), rx.endpoint()),
        ("OTEL_SERVICE_NAME".into(), "pim-batch-test".into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES".into(),
            "deployment.environment.name=ci".into(),
        ),
    ]
}

fn report(out: &Output) -> Value {
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn n(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The trace tree every scan exports: one root `pim.scan`, its five stages (the baseline on by default), each query under
/// the stage that ran it; all in one trace.
fn assert_scan_trace(spans: &[ReceivedSpan], report: &Value) {
    let scans = named(spans, "pim.scan");
    assert_eq!(scans.len(), 1, "{spans:#?}");
    let scan = scans[0];
    assert!(scan.parent_span_id.is_empty(), "pim.scan is the root");
    assert_eq!(scan.attributes["outcome"], "success");
    assert_eq!(
        scan.attributes["activations"],
        report["summary"]["activations"].to_string()
    );
    assert_eq!(scan.service_name.as_deref(), Some("pim-batch-test"));
    let mut stages = BTreeMap::new();
    for name in [
        "pim.stage.pim_events",
        "pim.stage.activity",
        "pim.stage.baseline",
        "pim.stage.correlate",
        "pim.stage.assess",
    ] {
        let found = named(spans, name);
        assert_eq!(found.len(), 1, "{name}: {spans:#?}");
        assert_eq!(
            found[0].parent_span_id, scan.span_id,
            "{name} under pim.scan"
        );
        stages.insert(found[0].span_id.clone(), name);
    }
    let queries = named(spans, "pim.query");
    assert_eq!(
        queries.len() as f64,
        n(&report["run"]["queries"]),
        "one span per query"
    );
    for q in &queries {
        let stage = stages.get(&q.parent_span_id).copied();
        assert!(
            matches!(
                stage,
                Some("pim.stage.pim_events" | "pim.stage.activity" | "pim.stage.baseline")
            ),
            "a query under {stage:?}"
        );
        assert!(q.attributes.contains_key("rows"), "{q:?}");
        // Our names and counts only: no KQL, no identity, no location or thread noise.
        let keys: Vec<&str> = q.attributes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["outcome", "query", "rows", "table"], "{q:?}");
        assert!(
            ["AuditLogs", "AzureActivity"].contains(&q.attributes["table"].as_str()),
            "{q:?}"
        );
    }
    assert!(
        spans.iter().all(|s| s.trace_id == scan.trace_id),
        "one trace"
    );
}

/// The metrics every scan exports, checked against the report it wrote.
fn assert_scan_metrics(rx: &OtlpReceiver, report: &Value) {
    let summary = &report["summary"];
    assert_eq!(
        rx.counter("pim.activations", &[]),
        n(&summary["activations"])
    );
    for (verdict, count) in summary["by_verdict"].as_object().unwrap() {
        assert_eq!(
            rx.counter("pim.activations", &[("verdict", verdict)]),
            n(count),
            "{verdict}"
        );
    }
    for (risk, count) in summary["by_risk"].as_object().unwrap() {
        assert_eq!(
            rx.counter("pim.activations", &[("risk", risk)]),
            n(count),
            "{risk}"
        );
    }
    assert_eq!(rx.counter("pim.findings", &[]), n(&summary["findings"]));
    // Each verdict's findings, by the report's own rule (not aligned, high risk, or a flag
    // other than still_active), add up to the summary's count.
    let mut total = 0.0;
    for verdict in [
        "aligned",
        "partial",
        "not_aligned",
        "no_activity",
        "unknown",
    ] {
        let want = report["activations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["assessment"]["verdict"] == verdict)
            .filter(|a| {
                let x = &a["assessment"];
                x["verdict"] != "aligned"
                    || ["high", "critical"].contains(&x["risk"].as_str().unwrap())
                    || x["flags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f != "still_active")
            })
            .count() as f64;
        assert_eq!(
            rx.counter("pim.findings", &[("verdict", verdict)]),
            want,
            "{verdict}"
        );
        total += want;
    }
    assert_eq!(total, n(&summary["findings"]));
    let queries = n(&report["run"]["queries"]);
    assert_eq!(rx.counter("pim.queries", &[]), queries);
    assert_eq!(
        rx.histogram_count("pim.query.duration", &[]),
        queries as u64
    );
    assert!(rx.counter("pim.query.rows", &[]) > 0.0);
    assert_eq!(rx.counter("pim.runs", &[("outcome", "success")]), 1.0);
    assert_eq!(rx.counter("pim.runs", &[("outcome", "failure")]), 0.0);
    assert_eq!(rx.histogram_count("pim.run.duration", &[]), 1);
    let runs = rx
        .metrics()
        .into_iter()
        .find(|p| p.name == "pim.run.duration")
        .unwrap();
    assert_eq!(runs.unit, "s");
    assert_eq!(runs.service_name.as_deref(), Some("pim-batch-test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_scan_exports_its_trace_and_metrics() {
    let rx = OtlpReceiver::start().await;
    let out = run(otel_env(&rx), &["--demo", "--format", "json"]).await;
    let report = report(&out);
    assert_eq!(report["summary"]["activations"], 15);
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    let posts: Vec<String> = rx.requests().iter().map(|r| r.path.clone()).collect();
    assert!(posts.contains(&"/v1/traces".to_owned()), "{posts:?}");
    assert!(posts.contains(&"/v1/metrics".to_owned()), "{posts:?}");
    let spans = rx.spans();
    assert_scan_trace(&spans, &report);
    assert_scan_metrics(&rx, &report);
    // No model configured: no model figures, rather than zeros that read as "no failures".
    assert_eq!(rx.counter("pim.model.calls", &[]), 0.0);
    assert!(named(&spans, "pim.model.assess").is_empty());
    // The log lines are the same with telemetry on: no span names in them.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("pim.scan"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_scan_with_a_model_exports_queries_model_calls_and_tokens() {
    let la = LogAnalyticsFake::start().await;
    la.with_demo_tenant().await.unwrap();
    la.expect_token(token_for("https://api.loganalytics.io"));
    // The directory-activity query fails: the failure is counted, by table and outcome.
    la.fail_kql_containing("LoggedByService !~ \"PIM\"", Failure::InternalError);
    let mi = ManagedIdentityFake::start(MI_SECRET).await;
    let oai = OpenAiFake::start_with(aligned_responder()).await;
    oai.expect_api_key(OPENAI_KEY);
    let rx = OtlpReceiver::start().await;
    let mut env = otel_env(&rx);
    env.extend([
        ("LOG_ANALYTICS_WORKSPACE_ID".into(), WORKSPACE.into()),
        ("LOG_ANALYTICS_ENDPOINT".into(), la.uri()),
        ("IDENTITY_ENDPOINT".into(), mi.endpoint()),
        ("IDENTITY_HEADER".into(), MI_SECRET.into()),
        ("PIM_AUTH".into(), "managed-identity".into()),
        ("AZURE_OPENAI_ENDPOINT".into(), oai.uri()),
        ("AZURE_OPENAI_DEPLOYMENT".into(), "gpt-4o".into()),
        ("AZURE_OPENAI_API_KEY".into(), OPENAI_KEY.into()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS".into(),
            "x-collector-key=k%201".into(),
        ),
    ]);
    let out = run(env, &["--format", "json", "--end", "2026-11-20T18:00:00Z"]).await;
    let report = report(&out);
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    let spans = rx.spans();
    assert_scan_trace(&spans, &report);
    assert_scan_metrics(&rx, &report);
    let run_block = &report["run"];
    assert!(n(&run_block["model_calls"]) > 0.0, "{run_block}");
    assert_eq!(
        rx.counter("pim.model.calls", &[]),
        n(&run_block["model_calls"])
    );
    assert_eq!(
        rx.counter("pim.model.tokens", &[("gen_ai.token.type", "input")]),
        n(&run_block["prompt_tokens"])
    );
    assert_eq!(
        rx.counter("pim.model.tokens", &[("gen_ai.token.type", "output")]),
        n(&run_block["completion_tokens"])
    );
    assert_eq!(rx.counter("pim.model.failures", &[]), 0.0);
    let assessed = named(&spans, "pim.model.assess");
    assert!(!assessed.is_empty());
    assert!(
        assessed
            .iter()
            .all(|s| s.attributes["outcome"] == "answered")
    );
    assert_eq!(
        rx.histogram_count("pim.model.duration", &[("outcome", "answered")]),
        assessed.len() as u64
    );
    let assess_stage = named(&spans, "pim.stage.assess")[0];
    assert!(
        assessed
            .iter()
            .all(|s| s.parent_span_id == assess_stage.span_id)
    );
    // The failed query: counted as failed, under its own name and table, with its time.
    let failed = [("outcome", "failed"), ("query", "directory-activity")];
    assert!(rx.counter("pim.queries", &failed) >= 1.0);
    assert!(rx.histogram_count("pim.query.duration", &failed) >= 1);
    assert!(
        rx.counter(
            "pim.queries",
            &[("outcome", "complete"), ("table", "AzureActivity")]
        ) >= 1.0
    );
    // The collector's header went with every export, decoded; it never reached a log.
    for r in rx.requests() {
        let key = r.headers.iter().find(|(k, _)| k == "x-collector-key");
        assert_eq!(key.map(|(_, v)| v.as_str()), Some("k 1"), "{}", r.path);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("k 1") && !stderr.contains("k%201"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_still_exports_its_outcome() {
    let rx = OtlpReceiver::start().await;
    let out = run(
        otel_env(&rx),
        &["--from-dir", "/nonexistent/pim-exports", "--format", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    assert_eq!(rx.counter("pim.runs", &[("outcome", "failure")]), 1.0);
    assert_eq!(rx.counter("pim.runs", &[("outcome", "success")]), 0.0);
    assert_eq!(
        rx.histogram_count("pim.run.duration", &[("outcome", "failure")]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_when_the_sdk_is_disabled_or_no_endpoint_is_set() {
    let rx = OtlpReceiver::start().await;
    let mut env = otel_env(&rx);
    env.push(("OTEL_SDK_DISABLED".into(), "true".into()));
    let disabled = run(env, &["--demo", "--format", "json"]).await;
    assert_eq!(report(&disabled)["summary"]["activations"], 15);
    // Everything but the endpoint: still nothing.
    let no_endpoint: Vec<(String, String)> = otel_env(&rx)
        .into_iter()
        .filter(|(k, _)| k != "OTEL_EXPORTER_OTLP_ENDPOINT")
        .collect();
    let off = run(no_endpoint, &["--demo", "--format", "json"]).await;
    assert_eq!(report(&off)["summary"]["activations"], 15);
    assert!(rx.requests().is_empty(), "{:?}", rx.requests());
    // And the output is the same as with telemetry on.
    let on = run(otel_env(&rx), &["--demo", "--format", "json"]).await;
    let strip = |mut v: Value| {
        v["run"]["duration_ms"] = Value::Null;
        v["generated_at"] = Value::Null;
        v
    };
    assert_eq!(strip(report(&on)), strip(report(&off)));
}
