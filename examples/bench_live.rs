//! Live-path benchmark: a 200-activation scan against the loopback fakes, with 200 ms per
//! Log Analytics query and 500 ms per model call.
//!
//! ```sh
//! cargo run --release -p pim-examples --example bench_live              # concurrency 8
//! cargo run --release -p pim-examples --example bench_live -- --baseline  # also one at a time
//! ```
//!
//! Prints the wall time against the critical-path bound (the fixed queries plus
//! ceil(200 / concurrency) model round trips), the number of queries, and the prompt tokens per
//! activation, counted with the o200k_base tokenizer as the service counts them (median and max,
//! including a user with 10,000 operations). Targets: wall time within 1.25x of the bound;
//! median prompt at most 1,500 tokens (every other activation has 20 to 60 operation groups),
//! the 10,000-operation one at most 4,000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::Secret;
use pim_auth::StaticTokenCredential;
use pim_core::config::ModelLimits;
use pim_core::{Auditor, ScanOptions, live};
use pim_domain::{Column, Table};
use pim_loganalytics::{LogAnalyticsClient, LogAnalyticsOptions};
use pim_openai::{AzureOpenAi, OpenAiAuth};
use pim_testkit::{LogAnalyticsFake, OpenAiFake, aligned_responder, reads_table};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration as TimeDuration, OffsetDateTime};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);
const ACTIVATIONS: usize = 200;
const QUERY_LATENCY: Duration = Duration::from_millis(200);
const MODEL_LATENCY: Duration = Duration::from_millis(500);
const BIG_USER: &str = "bulk.script@contoso-bench.com";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let baseline = std::env::args().any(|a| a == "--baseline");
    let (audit, activity) = tables();
    let la = LogAnalyticsFake::start().await;
    la.with_table_for(reads_table("AuditLogs"), audit);
    la.with_table_for(reads_table("AzureActivity"), activity);
    la.set_latency(QUERY_LATENCY);
    let oai = OpenAiFake::start_with(aligned_responder()).await;
    oai.set_latency(MODEL_LATENCY);

    println!(
        "scan: {ACTIVATIONS} activations, one user with 10,000 operations; {} ms per query, {} ms per model call",
        QUERY_LATENCY.as_millis(),
        MODEL_LATENCY.as_millis()
    );
    let (wall, queries, calls) = scan(&la, &oai, 8).await?;
    let model_calls = calls.len();
    let rounds = model_calls.div_ceil(8);
    let bound = QUERY_LATENCY * u32::try_from(queries)? + MODEL_LATENCY * u32::try_from(rounds)?;
    println!(
        "concurrency 8: wall {:.2} s; queries {queries}; model calls {model_calls}; critical-path bound {:.2} s ({queries} queries + {rounds} model rounds); ratio {:.3} (target <= 1.25)",
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64()
    );
    let mut tokens: Vec<u64> = calls.iter().map(|(_, t)| *t).collect();
    tokens.sort_unstable();
    let big = calls
        .iter()
        .filter(|(big, _)| *big)
        .map(|(_, t)| *t)
        .max()
        .unwrap_or(0);
    println!(
        "prompt tokens per activation (o200k_base, as the service counts them): median {}, max {}, the 10,000-operation user {} (targets: median <= 1500, 10,000-operation user <= 4000)",
        tokens.get(tokens.len() / 2).copied().unwrap_or(0),
        tokens.last().copied().unwrap_or(0),
        big
    );
    if baseline {
        let (wall1, _, calls1) = scan(&la, &oai, 1).await?;
        println!(
            "concurrency 1 (baseline): wall {:.2} s for {} model calls; speed-up {:.1}x",
            wall1.as_secs_f64(),
            calls1.len(),
            wall1.as_secs_f64() / wall.as_secs_f64()
        );
    }
    Ok(())
}

/// One scan through the real adapters; returns the wall time, the queries made and, per model
/// call, whether it was the 10,000-operation user's and its prompt tokens.
async fn scan(
    la: &LogAnalyticsFake,
    oai: &OpenAiFake,
    concurrency: usize,
) -> Result<(Duration, usize, Vec<(bool, u64)>), Box<dyn std::error::Error>> {
    let queries_before = la.requests().len();
    let calls_before = oai.calls().len();
    let credential = Arc::new(StaticTokenCredential::new(
        "bench-token",
        OffsetDateTime::now_utc() + TimeDuration::hours(1),
    ));
    let source = LogAnalyticsClient::new(
        vec!["11111111-2222-4333-8444-555555555555".into()],
        credential,
        Some(LogAnalyticsOptions {
            endpoint: la.uri(),
            ..LogAnalyticsOptions::default()
        }),
    )?;
    let model = AzureOpenAi::new(
        &oai.uri(),
        "gpt-4o",
        OpenAiAuth::ApiKey(Secret::new("bench-key")),
        None,
    )?;
    let (assessor, limits) = live::model_assessor(
        Arc::new(model),
        ModelLimits {
            concurrency,
            ..ModelLimits::default()
        },
    );
    let auditor = Auditor::builder(Arc::new(source))
        .assessor(assessor)
        .model_limits(limits)
        .build();
    let mut options = ScanOptions::new(END);
    options.max_activities_per_activation = 20_000;
    let start = Instant::now();
    let report = auditor.scan(&options, END).await?;
    let wall = start.elapsed();
    if report.activations.len() != ACTIVATIONS {
        return Err(format!(
            "expected {ACTIVATIONS} activations, got {}",
            report.activations.len()
        )
        .into());
    }
    let calls = oai.calls()[calls_before..]
        .iter()
        .map(|c| (c.user_text().contains(BIG_USER), c.prompt_tokens()))
        .collect();
    Ok((wall, la.requests().len() - queries_before, calls))
}

fn iso(t: OffsetDateTime) -> String {
    pim_domain::timestamp::format_utc(t)
}

fn table(names: &[&str], rows: Vec<Vec<Value>>) -> Table {
    Table {
        name: "PrimaryResult".into(),
        columns: names
            .iter()
            .map(|n| Column {
                name: (*n).into(),
                kind: String::new(),
            })
            .collect(),
        rows,
    }
}

/// 200 activations by 100 users over the day, each with 20-60 operations in its window, and
/// one user whose script ran 10,000 operations.
fn tables() -> (Table, Table) {
    let day = END - TimeDuration::hours(24);
    let mut audit = Vec::new();
    let mut activity = Vec::new();
    for i in 0..ACTIVATIONS {
        let user = i % 100;
        let upn = if i == 0 {
            BIG_USER.to_owned()
        } else {
            format!("user{user:03}@contoso-bench.com")
        };
        let oid = format!("00000000-0000-4000-8000-{i:012}");
        let start = day + TimeDuration::minutes((i as i64 * 7) % (20 * 60));
        let end = start + TimeDuration::hours(2);
        let just = match i % 4 {
            0 => format!(
                "CHG{:07} bulk tag update for the cost-center migration",
                1000 + i
            ),
            1 => format!("INC{:07} restart the stuck VM web{user:02}", 1000 + i),
            2 => format!("CHG{:07} deploy release of the payments web app", 1000 + i),
            _ => "work".to_owned(),
        };
        audit.push(vec![
            json!(iso(start)),
            json!("Add member to role completed (PIM activation)"),
            json!("ResourceManagement"),
            json!("PIM"),
            json!("success"),
            json!(just),
            json!(format!("corr-{i}")),
            json!(format!("PIM_bench_{i}")),
            json!(json!({"user": {"id": oid, "userPrincipalName": upn}}).to_string()),
            json!(json!([{"type": "Role", "displayName": "Contributor", "id": "b24988ac"},
                          {"type": "User", "id": oid, "userPrincipalName": upn}]).to_string()),
            json!(json!([{"key": "StartTime", "value": iso(start)}, {"key": "ExpirationTime", "value": iso(end)}]).to_string()),
        ]);
        let ops = if i == 0 { 10_000 } else { 20 + (i * 13) % 41 };
        for k in 0..ops {
            let op = match (i % 4, k % 5) {
                (0, _) => "Microsoft.Resources/tags/write",
                (1, 0) => "Microsoft.Compute/virtualMachines/restart/action",
                (2, _) => "Microsoft.Web/sites/write",
                (_, 1) => "Microsoft.Storage/storageAccounts/listKeys/action",
                _ => "Microsoft.Compute/virtualMachines/read",
            };
            let t = start + TimeDuration::milliseconds((k as i64 * 700) % (2 * 3600 * 1000));
            activity.push(vec![
                json!(iso(t)),
                json!(upn),
                json!(op),
                json!("Success"),
                json!("Administrative"),
                json!(format!("/subscriptions/s/resourcegroups/rg-{}/providers/microsoft.compute/virtualmachines/web{:02}-{k}", user % 10, user)),
                json!(format!("op-{i}-{k}")),
            ]);
        }
    }
    (
        table(
            &[
                "TimeGenerated",
                "OperationName",
                "Category",
                "LoggedByService",
                "Result",
                "ResultReason",
                "CorrelationId",
                "Id",
                "InitiatedBy",
                "TargetResources",
                "AdditionalDetails",
            ],
            audit,
        ),
        table(
            &[
                "TimeGenerated",
                "Caller",
                "OperationNameValue",
                "ActivityStatusValue",
                "CategoryValue",
                "_ResourceId",
                "CorrelationId",
            ],
            activity,
        ),
    )
}
