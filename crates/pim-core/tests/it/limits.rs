//! Issue 12: live scans are complete at any volume. The real Log Analytics client against the
//! loopback fake with the service's limits turned down: cut queries are split until complete
//! and the report equals the un-cut truth; only one identity over one minute stays flagged;
//! the query concurrency bound holds, counted in the fake.

use std::sync::Arc;
use std::time::Duration;

use pim_auth::StaticTokenCredential;
use pim_core::domain::{Column, Flag, Report, Table};
use pim_core::{Auditor, KqlSource, ScanOptions};
use pim_loganalytics::{LogAnalyticsClient, LogAnalyticsOptions};
use pim_testkit::{Limits, LogAnalyticsFake, reads_table};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration as TimeDuration, OffsetDateTime};

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);
const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const BUSY: &str = "busy.script@contoso-limits.com";

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
                kind: if n.ends_with("_d") {
                    "dynamic"
                } else {
                    "string"
                }
                .into(),
            })
            .collect(),
        rows,
    }
}

/// About 1.5 KB of claims, as real AzureActivity rows carry (reference §9.3).
fn claims(oid: &str, upn: &str) -> String {
    json!({
        OBJECT_ID_CLAIM: oid,
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": upn,
        "name": upn,
        "appid": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
        "ipaddr": "203.0.113.7",
        "aud": "https://management.core.windows.net/",
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "xms_tcdt": "x".repeat(1200),
    })
    .to_string()
}

/// `users` activations, one per user, each with a two-hour window and `ops(i)` operations
/// (Start and Success rows), in `minutes(i)` minutes from the window's start. User 0 is
/// `BUSY` when `busy` is set.
fn tenant(
    users: usize,
    busy: bool,
    ops: impl Fn(usize) -> usize,
    spread_minutes: impl Fn(usize) -> i64,
) -> (Table, Table) {
    let day = END - TimeDuration::hours(20);
    let mut audit = Vec::new();
    let mut activity = Vec::new();
    for i in 0..users {
        let upn = if busy && i == 0 {
            BUSY.to_owned()
        } else {
            format!("user{i:03}@contoso-limits.com")
        };
        let oid = format!("00000000-0000-4000-8000-{i:012}");
        let start = day + TimeDuration::minutes((i as i64 * 37) % (16 * 60));
        let end = start + TimeDuration::hours(2);
        audit.push(vec![
            json!(iso(start)),
            json!("Add member to role completed (PIM activation)"),
            json!("ResourceManagement"),
            json!("PIM"),
            json!("success"),
            json!(format!("CHG{:07} restart the web VMs", 1000 + i)),
            json!(format!("corr-{i}")),
            json!(format!("PIM_limits_{i}")),
            json!(json!({"user": {"id": oid, "userPrincipalName": upn}}).to_string()),
            json!(json!([{"type": "Role", "displayName": "Contributor", "id": "b24988ac"},
                          {"type": "User", "id": oid, "userPrincipalName": upn}]).to_string()),
            json!(json!([{"key": "StartTime", "value": iso(start)}, {"key": "ExpirationTime", "value": iso(end)}]).to_string()),
        ]);
        let n = ops(i);
        let spread = spread_minutes(i) * 60_000;
        for k in 0..n {
            let t = start
                + TimeDuration::minutes(1)
                + TimeDuration::milliseconds(k as i64 * spread / n.max(1) as i64);
            // Half the rows carry the caller as UPN, half only the object-id claim: both
            // identity clauses of the query must find them.
            let caller = if k % 2 == 0 {
                upn.clone()
            } else {
                String::new()
            };
            for (status, offset) in [("Start", 0), ("Success", 400)] {
                activity.push(vec![
                    json!(iso(t + TimeDuration::milliseconds(offset))),
                    json!(caller),
                    json!("Microsoft.Compute/virtualMachines/restart/action"),
                    json!(status),
                    json!("Administrative"),
                    json!(format!("/subscriptions/s/resourcegroups/rg-{}/providers/microsoft.compute/virtualmachines/web{k}", i % 7)),
                    json!(format!("op-{i}-{k}")),
                    json!(claims(&oid, &upn)),
                ]);
            }
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
                "Claims_d",
            ],
            activity,
        ),
    )
}

async fn fake_with(tables: (Table, Table)) -> LogAnalyticsFake {
    let fake = LogAnalyticsFake::start().await;
    fake.with_table_for(reads_table("AuditLogs"), tables.0);
    fake.with_table_for(reads_table("AzureActivity"), tables.1);
    fake
}

async fn scan(
    fake: &LogAnalyticsFake,
    options: ScanOptions,
    auditor_bound: Option<usize>,
) -> Report {
    let credential = Arc::new(StaticTokenCredential::new(
        "limits-token",
        datetime!(2099-01-01 00:00 UTC),
    ));
    let client = LogAnalyticsClient::new(
        vec!["00000000-0000-0000-0000-000000000012".into()],
        credential,
        Some(LogAnalyticsOptions {
            endpoint: fake.uri(),
            ..LogAnalyticsOptions::default()
        }),
    )
    .unwrap();
    let source: Arc<dyn KqlSource> = Arc::new(client);
    let mut builder = Auditor::builder(source);
    if let Some(n) = auditor_bound {
        builder = builder.query_concurrency(n);
    }
    builder.build().scan(&options, END).await.unwrap()
}

fn options() -> ScanOptions {
    let mut o = ScanOptions::new(END);
    o.max_activities_per_activation = 100_000;
    o
}

/// The activations of a report without the run's own numbers, as JSON, for comparing reports.
fn activations(report: &Report) -> Vec<Value> {
    report
        .activations
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect()
}

fn flagged(report: &Report) -> Vec<String> {
    report
        .activations
        .iter()
        .filter(|a| a.assessment.flags.contains(&Flag::ActivityTruncated))
        .map(|a| a.principal.upn.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_cut_activity_query_is_split_until_complete_and_the_report_equals_the_truth() {
    // 40 users with 10 to 49 operations each, and one with 200 (400 rows, over either limit
    // alone, so its queries are split by time too, through operations whose Start and Success
    // rows then fall on either side of a split): 2,000+ rows.
    let tables = tenant(
        40,
        false,
        |i| if i == 0 { 200 } else { 10 + (i * 7) % 40 },
        |_| 100,
    );
    let rows = tables.1.len();
    let fake = fake_with(tables).await;
    fake.set_limits(Limits::NONE);
    let truth = scan(&fake, options(), None).await;
    let truth_queries = fake.queries().len();
    assert_eq!(truth.activations.len(), 40);
    assert!(flagged(&truth).is_empty());
    assert!(truth.activations.iter().all(|a| a.activity_count >= 10));

    // Cut at 150 rows, then at ~40 KB of row JSON (the claims stay on the server: with them,
    // a row alone is over 1.5 KB).
    for limits in [
        Limits {
            max_rows: 150,
            max_bytes: usize::MAX,
        },
        Limits {
            max_rows: usize::MAX,
            max_bytes: 40_000,
        },
    ] {
        let before = fake.queries().len();
        fake.set_limits(limits);
        let report = scan(&fake, options(), None).await;
        let queries = fake.queries().len() - before;
        assert!(queries > truth_queries + 4, "{limits:?}: {queries} queries");
        let time_split = fake.queries()[before..]
            .iter()
            .filter(|q| {
                q.kql.starts_with("AzureActivity") && q.kql.contains("TimeGenerated < datetime(")
            })
            .count();
        assert!(
            time_split >= 2,
            "{limits:?}: {time_split} time-split queries"
        );
        assert_eq!(report.run.queries, queries);
        assert_eq!(activations(&report), activations(&truth), "{limits:?}");
        assert!(flagged(&report).is_empty(), "{limits:?}");
        assert!(
            !report
                .warnings
                .iter()
                .any(|w| w.contains("partial") || w.contains("limits")),
            "{:?}",
            report.warnings
        );
        // Every row was read once: no row lost or counted twice at a split boundary.
        let azure_rows: usize = report.run.query_rows;
        assert!(azure_rows >= rows, "{azure_rows} < {rows}");
    }
}

#[tokio::test]
async fn a_cut_pim_events_query_is_split_by_time_and_no_activation_is_missing() {
    let tables = tenant(30, false, |_| 2, |_| 10);
    let fake = fake_with(tables).await;
    fake.set_limits(Limits::NONE);
    let truth = scan(&fake, options(), None).await;
    assert_eq!(truth.activations.len(), 30);
    // 30 PIM rows; cut at 8: the PIM-events query must be split by time at least twice.
    fake.set_limits(Limits {
        max_rows: 8,
        max_bytes: usize::MAX,
    });
    let before = fake.queries().len();
    let report = scan(&fake, options(), None).await;
    assert_eq!(activations(&report), activations(&truth));
    let pim_parts = fake.queries()[before..]
        .iter()
        .filter(|q| q.kql.starts_with("AuditLogs") && q.kql.contains("LoggedByService =~ \"PIM\""))
        .count();
    assert!(pim_parts >= 5, "{pim_parts}");
    // Split parts use half-open ranges; the last keeps the scan's closed end.
    let split: Vec<_> = fake.queries()[before..]
        .iter()
        .filter(|q| {
            q.kql.contains("LoggedByService =~ \"PIM\"")
                && q.kql.contains("TimeGenerated < datetime(")
        })
        .map(|q| q.timespan.clone())
        .collect();
    assert!(!split.is_empty());
    assert!(flagged(&report).is_empty());
}

#[tokio::test]
async fn one_identity_over_the_limit_in_one_minute_stays_flagged_and_named() {
    // User 0 runs 40 operations (80 rows) within 30 seconds; the others 4 each, spread.
    let tables = tenant(
        12,
        true,
        |i| if i == 0 { 40 } else { 4 },
        |i| if i == 0 { 0 } else { 90 },
    );
    let fake = fake_with(tables).await;
    fake.set_limits(Limits {
        max_rows: 30,
        max_bytes: usize::MAX,
    });
    let report = scan(&fake, options(), None).await;
    assert_eq!(report.activations.len(), 12);
    assert_eq!(flagged(&report), [BUSY]);
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains(BUSY))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.contains("one minute"), "{warning}");
    assert!(warning.contains("activity_truncated"), "{warning}");
    // Everyone else is complete: 4 operations each.
    for a in &report.activations {
        if a.principal.upn.as_deref() != Some(BUSY) {
            assert_eq!(a.activity_count, 4, "{:?}", a.principal.upn);
        }
    }
}

#[tokio::test]
async fn the_query_concurrency_bound_holds_and_is_used() {
    let tables = tenant(24, false, |_| 12, |_| 100);
    let fake = fake_with(tables).await;
    fake.set_limits(Limits {
        max_rows: 40,
        max_bytes: usize::MAX,
    });
    fake.set_latency(Duration::from_millis(60));
    let mut o = options();
    o.query_concurrency = 3;
    let report = scan(&fake, o.clone(), None).await;
    assert!(report.run.queries > 12, "{}", report.run.queries);
    assert_eq!(fake.max_in_flight(), 3);
    // The auditor's own bound applies across scans too, and the lower bound wins.
    fake.reset_max_in_flight();
    scan(&fake, o, Some(2)).await;
    assert_eq!(fake.max_in_flight(), 2);
    // One at a time.
    fake.reset_max_in_flight();
    let mut one = options();
    one.query_concurrency = 1;
    scan(&fake, one, None).await;
    assert_eq!(fake.max_in_flight(), 1);
}
