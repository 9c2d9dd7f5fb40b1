//! Live-path benchmark: a 200-activation scan against the loopback fakes, with 200 ms per
//! Log Analytics query and 500 ms per model call; or, with `--volume`, a scan at volume
//! against the service's limits (issue 12).
//!
//! ```sh
//! cargo run --release -p pim-examples --example bench_live              # concurrency 8
//! cargo run --release -p pim-examples --example bench_live -- --baseline  # also one at a time
//! cargo run --release -p pim-examples --example bench_live -- --volume    # 5,000 x 2,000,000
//! ```
//!
//! `--volume` (options `--latency-ms N`, default 3000, `--concurrency N`, default
//! [`pim_core::DEFAULT_QUERY_CONCURRENCY`], and `--timeline`, which prints every query's times):
//! 5,000 activations and 2,000,000 AzureActivity
//! rows (1,000,000 operations, Start and Success rows, about 1.5 KB of claims each) behind the
//! Log Analytics fake with the query API's real limits on (500,000 rows, ~100 MiB per result).
//! The rows are made per query by a [`RowGenerator`], never held in memory. 100 users run
//! scripts of 5,100 operations each, so their queries are cut and split. The rules engine
//! alone assesses (no model). The report must be complete: no `activity_truncated`, and every
//! activation's operation count equal to the generator's truth; the bench exits non-zero
//! otherwise, or when the wall time is over 1.25x the bound `queries x latency / concurrency`.
//! It also prints where the time went: the adapter is wrapped in a timed source, and the fake
//! records when it made and sent each answer, so each query's time splits into the way to the
//! fake, the fake's time, and the way back with the parse, and the slot-seconds no query held
//! are counted by phase.
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
use pim_testkit::{
    LogAnalyticsFake, OpenAiFake, RowGenerator, RowScope, aligned_responder, reads_table,
};
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
    if std::env::args().any(|a| a == "--volume") {
        return volume::run().await;
    }
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

/// `--volume`: complete at any volume (issue 12).
mod volume {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use std::sync::Mutex;

    use pim_auth::StaticTokenCredential;
    use pim_core::domain::{Column, Flag, Table};
    use pim_core::{Auditor, ScanOptions};
    use pim_loganalytics::{
        KqlSource, LogAnalyticsClient, LogAnalyticsOptions, LogQuery, LogTable, QueryOutcome,
        SourceCapabilities, SourceInfo,
    };
    use pim_testkit::{AnswerTiming, Limits, LogAnalyticsFake, reads_table};
    use serde_json::{Value, json};
    use time::{Duration as TimeDuration, OffsetDateTime};

    use super::{END, RowGenerator, RowScope, iso, table};

    const ACTIVATIONS: usize = 5_000;
    const HEAVY_USERS: usize = 100;
    const HEAVY_OPS: usize = 5_100;
    const NORMAL_OPS: usize = 100;
    const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

    /// One activating user: one activation, `ops` operations inside its window.
    struct User {
        upn: String,
        oid: String,
        start: OffsetDateTime,
        ops: usize,
    }

    impl User {
        /// The time of operation `k`: spread over 100 minutes from one minute into the
        /// two-hour window.
        fn op_time(&self, k: usize) -> OffsetDateTime {
            self.start
                + TimeDuration::minutes(1)
                + TimeDuration::milliseconds((k as i64 * 6_000_000) / self.ops as i64)
        }
    }

    fn users() -> Vec<User> {
        let day = END - TimeDuration::hours(22);
        (0..ACTIVATIONS)
            .map(|i| User {
                upn: format!("user{i:04}@contoso-volume.com"),
                oid: format!("00000000-0000-4000-8000-{i:012}"),
                // The heavy users activate first, so they share the first identity chunks:
                // their queries are cut and split.
                start: day + TimeDuration::seconds((i as i64 * 13) % (18 * 3600)),
                ops: if i < HEAVY_USERS {
                    HEAVY_OPS
                } else {
                    NORMAL_OPS
                },
            })
            .collect()
    }

    /// AzureActivity rows of the users, made per query: only those of the identities and the
    /// time range the query names, with realistic claims (about 1.5 KB each).
    struct Activity {
        users: Vec<User>,
        by_name: HashMap<String, usize>,
        padding: String,
    }

    impl Activity {
        fn new(users: Vec<User>) -> Self {
            let by_name = users
                .iter()
                .enumerate()
                .flat_map(|(i, u)| [(u.upn.to_lowercase(), i), (u.oid.to_lowercase(), i)])
                .collect();
            Self {
                users,
                by_name,
                padding: "x".repeat(1_150),
            }
        }

        fn claims(&self, u: &User) -> String {
            json!({
                OBJECT_ID_CLAIM: u.oid,
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": u.upn,
                "http://schemas.microsoft.com/identity/claims/tenantid": "00000000-0000-0000-0000-00000000000a",
                "name": u.upn,
                "appid": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
                "ipaddr": "203.0.113.7",
                "aud": "https://management.core.windows.net/",
                "iss": "https://sts.windows.net/00000000-0000-0000-0000-00000000000a/",
                "uti": self.padding,
            })
            .to_string()
        }
    }

    const COLUMNS: [&str; 15] = [
        "TimeGenerated",
        "Caller",
        "CallerIpAddress",
        "OperationNameValue",
        "ActivityStatusValue",
        "ActivitySubstatusValue",
        "CategoryValue",
        "ResourceProviderValue",
        "ResourceGroup",
        "SubscriptionId",
        "_ResourceId",
        "CorrelationId",
        "OperationId",
        "EventDataId",
        "Claims_d",
    ];

    impl RowGenerator for Activity {
        fn columns(&self) -> Vec<Column> {
            COLUMNS
                .iter()
                .map(|n| Column {
                    name: (*n).into(),
                    kind: if n.ends_with("_d") {
                        "dynamic"
                    } else {
                        "string"
                    }
                    .into(),
                })
                .collect()
        }

        fn generate(&self, scope: &RowScope, emit: &mut dyn FnMut(Vec<Value>) -> bool) {
            let named: Vec<usize> = match &scope.names {
                Some(names) => {
                    let mut v: Vec<usize> = names
                        .iter()
                        .filter_map(|n| self.by_name.get(n).copied())
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
                None => (0..self.users.len()).collect(),
            };
            let text = |s: &str| Value::String(s.to_owned());
            for i in named {
                let u = &self.users[i];
                let (upn, claims) = (text(&u.upn), text(&self.claims(u)));
                let group = text(&format!("RG-VOL-{:02}", i % 40));
                let resource_base = format!(
                    "/subscriptions/11111111-2222-4333-8444-555555555555/resourcegroups/rg-vol-{:02}/providers/microsoft.compute/virtualmachines/vm",
                    i % 40
                );
                for k in 0..u.ops {
                    let t = u.op_time(k);
                    for (status, offset) in [("Start", 0), ("Success", 400)] {
                        let at = t + TimeDuration::milliseconds(offset);
                        if !scope.contains_time(at) {
                            continue;
                        }
                        let row = vec![
                            Value::String(iso(at)),
                            upn.clone(),
                            text("203.0.113.7"),
                            text("MICROSOFT.COMPUTE/VIRTUALMACHINES/RESTART/ACTION"),
                            text(status),
                            text(if status == "Success" { "OK" } else { "" }),
                            text("Administrative"),
                            text("MICROSOFT.COMPUTE"),
                            group.clone(),
                            text("11111111-2222-4333-8444-555555555555"),
                            Value::String(format!("{resource_base}{k}")),
                            Value::String(format!("c-{i}-{k}")),
                            Value::String(format!("o-{i}-{k}")),
                            Value::String(format!("e-{i}-{k}-{status}")),
                            claims.clone(),
                        ];
                        if !emit(row) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The PIM activations, one per user, in the AuditLogs shape.
    fn audit(users: &[User]) -> Table {
        let rows = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let end = u.start + TimeDuration::hours(2);
                vec![
                    json!(iso(u.start)),
                    json!("Add member to role completed (PIM activation)"),
                    json!("ResourceManagement"),
                    json!("PIM"),
                    json!("success"),
                    json!(format!("CHG{:07} restart the web VMs after patching", 1000 + i)),
                    json!(format!("corr-{i}")),
                    json!(format!("PIM_volume_{i}")),
                    json!(json!({"user": {"id": u.oid, "userPrincipalName": u.upn}}).to_string()),
                    json!(json!([{"type": "Role", "displayName": "Virtual Machine Contributor", "id": "9980e02c"},
                                  {"type": "User", "id": u.oid, "userPrincipalName": u.upn}]).to_string()),
                    json!(json!([{"key": "StartTime", "value": iso(u.start)}, {"key": "ExpirationTime", "value": iso(end)}]).to_string()),
                ]
            })
            .collect();
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
            rows,
        )
    }

    /// The client's side of one query: when the scan sent it (its permits held) and when the
    /// adapter handed back the parsed answer.
    struct Sent {
        label: String,
        kql: String,
        sent: Instant,
        returned: Instant,
        rows: usize,
        cut: bool,
    }

    /// The real adapter, timed: every query the scan makes goes through it (issue 12, item 3:
    /// where the time goes).
    #[derive(Debug)]
    struct Timed {
        inner: LogAnalyticsClient,
        sent: Mutex<Vec<Sent>>,
    }

    impl std::fmt::Debug for Sent {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Sent").field("label", &self.label).finish()
        }
    }

    #[async_trait::async_trait]
    impl KqlSource for Timed {
        fn info(&self) -> SourceInfo {
            self.inner.info()
        }

        fn capabilities(&self) -> SourceCapabilities {
            self.inner.capabilities()
        }

        fn table_label(&self, table: LogTable) -> String {
            self.inner.table_label(table)
        }

        async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
            let sent = Instant::now();
            let answer = self.inner.query(query).await;
            let returned = Instant::now();
            let (rows, cut) = match &answer {
                Ok(o) => (
                    o.tables.iter().map(Table::len).sum(),
                    o.truncation.is_some(),
                ),
                Err(_) => (0, false),
            };
            if let Ok(mut log) = self.sent.lock() {
                log.push(Sent {
                    label: query.label.clone(),
                    kql: query.kql.clone(),
                    sent,
                    returned,
                    rows,
                    cut,
                });
            }
            answer
        }
    }

    /// Seconds from `t0` to `t`.
    fn at(t0: Instant, t: Instant) -> f64 {
        t.saturating_duration_since(t0).as_secs_f64()
    }

    /// Where the wall time went: each query's time split into the request's way to the fake,
    /// the fake's time (its latency, or making the body when that took longer) and the
    /// answer's way back and parse; and the slot-seconds (`wall x concurrency`) no query held,
    /// by phase. `wall x concurrency = time in queries + idle`, and the bound is
    /// `queries x latency`, so this says which part of the ratio is which.
    fn time_budget(
        t0: Instant,
        wall: Duration,
        latency: Duration,
        concurrency: usize,
        sent: &[Sent],
        fake: &[AnswerTiming],
        timeline: bool,
    ) {
        let mut used: Vec<&AnswerTiming> = Vec::new();
        let (mut to_fake, mut in_fake, mut back, mut making_over) = (0.0, 0.0, 0.0, 0.0);
        let mut sorted: Vec<&Sent> = sent.iter().collect();
        sorted.sort_by_key(|s| s.sent);
        if timeline {
            println!(
                "timeline (s from the scan's start): sent, label, to the fake ms, fake ms (made ms), back and parsed ms, rows, MB"
            );
        }
        for s in &sorted {
            // The fake's record of this query: the first unused one with the same KQL.
            let Some(f) = fake
                .iter()
                .find(|f| f.kql == s.kql && !used.iter().any(|u| std::ptr::eq(*u, *f)))
            else {
                continue;
            };
            used.push(f);
            let a = f.arrived.saturating_duration_since(s.sent).as_secs_f64();
            let b = f.due.saturating_duration_since(f.arrived).as_secs_f64();
            let made = f.built.saturating_duration_since(f.arrived).as_secs_f64();
            let c = s.returned.saturating_duration_since(f.due).as_secs_f64();
            to_fake += a;
            in_fake += b;
            back += c;
            making_over += (made - latency.as_secs_f64()).max(0.0);
            if timeline {
                println!(
                    "  {:7.2} {:<44} {:6.0} {:6.0} ({:5.0}) {:6.0} {:7} {:6.1}{}",
                    at(t0, s.sent),
                    s.label,
                    a * 1e3,
                    b * 1e3,
                    made * 1e3,
                    c * 1e3,
                    s.rows,
                    f.bytes as f64 / 1e6,
                    if s.cut { " cut" } else { "" }
                );
            }
        }
        // Idle slot-seconds: the integral of (concurrency - in flight) over the wall time.
        let mut events: Vec<(f64, i64)> = sorted
            .iter()
            .flat_map(|s| [(at(t0, s.sent), 1), (at(t0, s.returned), -1)])
            .collect();
        events.sort_by(|x, y| x.0.total_cmp(&y.0).then(y.1.cmp(&x.1)));
        let first_activity = sorted
            .iter()
            .find(|s| !s.label.starts_with("pim-events"))
            .map_or(0.0, |s| at(t0, s.sent));
        let last_return = sorted
            .iter()
            .map(|s| at(t0, s.returned))
            .fold(0.0, f64::max);
        let first_sent = sorted.first().map_or(0.0, |s| at(t0, s.sent));
        let (mut idle_pim, mut idle_mid) = (0.0, 0.0);
        let (mut t, mut n) = (first_sent, 0i64);
        for (when, d) in events {
            let free = (concurrency as f64 - n as f64).max(0.0) * (when - t);
            if when <= first_activity {
                idle_pim += free;
            } else {
                idle_mid += free;
            }
            t = when;
            n += d;
        }
        let c = concurrency as f64;
        let idle_before = first_sent * c;
        let idle_after = (wall.as_secs_f64() - last_return).max(0.0) * c;
        let total = wall.as_secs_f64() * c;
        println!(
            "slot-seconds {total:.1} (wall x {concurrency}): in queries {:.1} (the fake's latency and making {in_fake:.1}, of which making beyond the latency {making_over:.1}; on the way to the fake {to_fake:.1}; on the way back and parsing {back:.1}); idle {:.1} (before the first query {idle_before:.1}, PIM-events round {idle_pim:.1}, between the first activity query and the last answer {idle_mid:.1}, after the last answer {idle_after:.1})",
            to_fake + in_fake + back,
            idle_before + idle_pim + idle_mid + idle_after,
        );
        if used.len() != sent.len() {
            println!(
                "({} of {} client queries matched the fake's records)",
                used.len(),
                sent.len()
            );
        }
    }

    fn arg(name: &str) -> Option<u64> {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    }

    pub(super) async fn run() -> Result<(), Box<dyn std::error::Error>> {
        // `PIM_BENCH_LOG=debug` shows every query, attempt and answer size with timestamps.
        if let Ok(filter) = std::env::var("PIM_BENCH_LOG") {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .init();
        }
        let latency = Duration::from_millis(arg("--latency-ms").unwrap_or(3_000));
        let concurrency =
            arg("--concurrency").map_or(pim_core::DEFAULT_QUERY_CONCURRENCY, |c| c as usize);
        let users = users();
        let truth: HashMap<String, usize> = users
            .iter()
            .map(|u| (u.upn.to_lowercase(), u.ops))
            .collect();
        let rows: usize = users.iter().map(|u| 2 * u.ops).sum();
        let la = LogAnalyticsFake::start().await;
        // The Activity Log's PIM rows (azurerbac): none in this tenant. The service filters
        // them by operation name, which the fake does not read, so they get their own table.
        la.with_table_for(
            |kql: &str| reads_table("AzureActivity")(kql) && kql.contains("azurerbac"),
            table(
                &["TimeGenerated", "OperationNameValue", "Properties_d"],
                Vec::new(),
            ),
        );
        la.with_table_for(reads_table("AuditLogs"), audit(&users));
        la.with_generator_for(reads_table("AzureActivity"), Arc::new(Activity::new(users)));
        la.set_limits(Limits::default());
        la.set_latency(latency);
        println!(
            "volume: {ACTIVATIONS} activations, {rows} AzureActivity rows ({HEAVY_USERS} users with {HEAVY_OPS} operations, the others {NORMAL_OPS}; ~1.5 KB of claims a row), limits {:?}; {} ms per query, concurrency {concurrency}",
            Limits::default(),
            latency.as_millis()
        );

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
        let timed = Arc::new(Timed {
            inner: source,
            sent: Mutex::new(Vec::new()),
        });
        let auditor = Auditor::builder(Arc::clone(&timed) as Arc<dyn KqlSource>).build();
        let mut options = ScanOptions::new(END);
        options.max_activities_per_activation = 20_000;
        options.query_concurrency = concurrency;
        let started = Instant::now();
        let report = auditor.scan(&options, END).await?;
        let wall = started.elapsed();

        let queries = la.queries().len();
        let mut wrong = Vec::new();
        for a in &report.activations {
            let upn = a.principal.upn.clone().unwrap_or_default().to_lowercase();
            let want = truth.get(&upn).copied();
            if want != Some(a.activity_count) {
                wrong.push(format!(
                    "{upn}: {} operations, truth {want:?}",
                    a.activity_count
                ));
            }
        }
        let truncated = report
            .activations
            .iter()
            .filter(|a| a.assessment.flags.contains(&Flag::ActivityTruncated))
            .count();
        let operations: usize = report.activations.iter().map(|a| a.activity_count).sum();
        let bound = latency.as_secs_f64() * queries as f64 / concurrency as f64;
        let ratio = wall.as_secs_f64() / bound;
        println!(
            "report: {} activations, {operations} operations (truth {}), {} with the truth's count, {truncated} activity_truncated; {} rows read; warnings {}",
            report.activations.len(),
            truth.values().sum::<usize>(),
            report.activations.len() - wrong.len(),
            report.run.query_rows,
            report.warnings.len()
        );
        println!(
            "queries {queries} (the scan counted {}); max in flight {}; wall {:.2} s; bound {queries} x {:.1} s / {concurrency} = {bound:.2} s; ratio {ratio:.3} (target <= 1.25); peak RSS {} MB",
            report.run.queries,
            la.max_in_flight(),
            wall.as_secs_f64(),
            latency.as_secs_f64(),
            peak_rss_kb().unwrap_or(0) / 1024
        );
        if let Ok(sent) = timed.sent.lock() {
            time_budget(
                started,
                wall,
                latency,
                concurrency,
                &sent,
                &la.answer_timings(),
                std::env::args().any(|a| a == "--timeline"),
            );
        }
        let mut failures = Vec::new();
        if report.activations.len() != ACTIVATIONS {
            failures.push(format!(
                "{} activations, expected {ACTIVATIONS}",
                report.activations.len()
            ));
        }
        if truncated > 0 {
            failures.push(format!(
                "{truncated} activations flagged activity_truncated"
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} activations with a wrong operation count, e.g. {}",
                wrong.len(),
                wrong[0]
            ));
        }
        if ratio > 1.25 {
            failures.push(format!("wall time {ratio:.3}x the bound (target <= 1.25)"));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; ").into())
        }
    }

    /// Peak resident set size of this process (Linux `VmHWM`), in kB: the fake's and the
    /// scan's together.
    fn peak_rss_kb() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}
