//! Many chat sessions at once: 50 concurrent sessions, each running a scripted conversation
//! against the loopback fakes, compared with one session alone.
//!
//! ```sh
//! cargo run --release -p pim-examples --example bench_chat
//! ```
//!
//! Every session shares one `Auditor`, one Log Analytics client and one model client (and so
//! their connection pools and token caches), as a bot or web service hosting many analysts
//! would. The fakes add 200 ms per query and 300 ms per model call. Target: the p95 turn
//! latency with 50 sessions within 1.2x of a single session's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pim_agent::{ScanCache, Session, SessionOptions, render_text};
use pim_core::{Auditor, KqlSource};
use pim_openai::ChatModel;
use time::OffsetDateTime;
use time::macros::datetime;

#[path = "support/chat_fakes.rs"]
mod chat_fakes;
use chat_fakes::ChatFakes;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);
const SESSIONS: usize = 50;
const QUERY_LATENCY: Duration = Duration::from_millis(200);
const MODEL_LATENCY: Duration = Duration::from_millis(300);

/// One analyst's conversation: a scan, follow-ups with pronouns and ordinals, a free-form
/// question (model-written KQL, run, answered in words), and an assessment.
const SCRIPT: &[&str] = &[
    "scan",
    "what did 2 do",
    "does their activity align with the reason?",
    "which users deleted resources yesterday?",
    "assess the second one",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (audit, mut activity) = pim_testkit::demo_tables().await?;
    if std::env::args().any(|a| a == "--no-bulk") {
        let caller = activity.column_index("Caller").ok_or("no Caller column")?;
        activity.rows.retain(|r| {
            r.get(caller).and_then(|v| v.as_str()) != Some("ops.automation@contoso-demo.com")
        });
    }
    let ChatFakes {
        la,
        oai,
        source,
        model,
    } = chat_fakes::start(audit, activity, QUERY_LATENCY, MODEL_LATENCY)
        .await
        .map_err(|e| -> Box<dyn std::error::Error> { e })?;
    let auditor = Arc::new(Auditor::builder(source.clone()).build());

    println!(
        "conversation of {} turns; {} ms per query, {} ms per model call",
        SCRIPT.len(),
        QUERY_LATENCY.as_millis(),
        MODEL_LATENCY.as_millis()
    );
    let single = run_sessions(1, &auditor, &source, &model, None).await?;
    // A host gives all its sessions one scan cache (identical scans run once).
    let cache = Arc::new(ScanCache::new(Duration::from_secs(60)));
    let many = run_sessions(SESSIONS, &auditor, &source, &model, Some(cache)).await?;
    let unshared = run_sessions(SESSIONS, &auditor, &source, &model, None).await?;
    let (p50_1, p95_1) = percentiles(&single);
    let (p50_n, p95_n) = percentiles(&many);
    let (p50_u, p95_u) = percentiles(&unshared);
    println!(
        "1 session: {} turns, p50 {p50_1:.0} ms, p95 {p95_1:.0} ms",
        single.len()
    );
    println!(
        "{SESSIONS} sessions sharing a scan cache: {} turns, p50 {p50_n:.0} ms, p95 {p95_n:.0} ms; p95 ratio {:.3} (target <= 1.2)",
        many.len(),
        p95_n / p95_1
    );
    println!(
        "{SESSIONS} sessions each scanning on its own: p50 {p50_u:.0} ms, p95 {p95_u:.0} ms; p95 ratio {:.3}",
        p95_u / p95_1
    );
    println!(
        "queries served: {}, model calls served: {}",
        la.requests().len(),
        oai.calls().len()
    );
    Ok(())
}

/// Runs `n` sessions at once, each through the whole script; returns every turn's latency.
async fn run_sessions(
    n: usize,
    auditor: &Arc<Auditor>,
    source: &Arc<dyn KqlSource>,
    model: &Arc<dyn ChatModel>,
    cache: Option<Arc<ScanCache>>,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let options = SessionOptions {
            end: Some(END),
            ..SessionOptions::default()
        };
        let mut session = Session::new(
            auditor.clone(),
            source.clone(),
            Some(model.clone()),
            options,
        );
        if let Some(cache) = &cache {
            session = session.with_scan_cache(cache.clone());
        }
        tasks.spawn(async move {
            let mut turns = Vec::with_capacity(SCRIPT.len());
            for line in SCRIPT {
                let start = Instant::now();
                let answer = session.handle_line(line, END).await;
                turns.push((start.elapsed(), render_text(&answer)));
            }
            turns
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        for (latency, text) in done? {
            if text.contains("could not") {
                return Err(format!("a turn failed: {text}").into());
            }
            latencies.push(latency);
        }
    }
    Ok(latencies)
}

fn percentiles(latencies: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.95))
}
