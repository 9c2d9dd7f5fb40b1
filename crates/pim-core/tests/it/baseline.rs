//! Issue 14, item 4: the behaviour baseline. The real Log Analytics client against the loopback
//! fake (which answers the summarize queries by aggregating its rows), and offline exports that
//! do or do not reach back far enough: first-time versus seen-before operations, activation
//! counts from AuditLogs, from the state store and from an export, and a failed or partial
//! baseline query that leaves the baseline unavailable, never empty.

use std::path::PathBuf;
use std::sync::Arc;

use pim_auth::StaticTokenCredential;
use pim_core::domain::{ActivationReport, BaselineStatus, Column, Flag, Report, Risk, Table};
use pim_core::{Auditor, KnownActivation, KnownActivations, KqlSource, ScanOptions};
use pim_loganalytics::{LogAnalyticsClient, LogAnalyticsOptions};
use pim_testkit::{Failure, LogAnalyticsFake, reads_table};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);
const JANE: &str = "jane.baseline@contoso-baseline.com";
const JANE_OID: &str = "00000000-0000-4000-8000-00000000000a";
const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const VM: &str =
    "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/";

/// The window: two hours from 14:00, so the 30-day period is [Oct 21 14:00, Nov 20 14:00).
const START: OffsetDateTime = datetime!(2026-11-20 14:00 UTC);

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

fn activation_row(at: OffsetDateTime, id: &str, hours: i64) -> Vec<Value> {
    vec![
        json!(iso(at)),
        json!("Add member to role completed (PIM activation)"),
        json!("ResourceManagement"),
        json!("PIM"),
        json!("success"),
        json!("CHG0001234 restart the web VMs and clean up the old one"),
        json!(format!("corr-{id}")),
        json!(format!("PIM_{id}")),
        json!(json!({"user": {"id": JANE_OID, "userPrincipalName": JANE}}).to_string()),
        json!(json!([{"type": "Role", "displayName": "Virtual Machine Contributor", "id": "9980e02c"},
                      {"type": "User", "id": JANE_OID, "userPrincipalName": JANE}]).to_string()),
        json!(json!([{"key": "StartTime", "value": iso(at)},
                      {"key": "ExpirationTime", "value": iso(at + Duration::hours(hours))}]).to_string()),
    ]
}

fn operation_row(at: OffsetDateTime, op: &str, resource: &str, n: usize) -> Vec<Vec<Value>> {
    ["Start", "Success"]
        .iter()
        .enumerate()
        .map(|(k, status)| {
            vec![
                json!(iso(at + Duration::milliseconds(k as i64 * 300))),
                json!(JANE),
                json!(op),
                json!(status),
                json!("Administrative"),
                json!(resource),
                json!(format!("op-{n}")),
                json!(json!({OBJECT_ID_CLAIM: JANE_OID}).to_string()),
            ]
        })
        .collect()
}

/// Jane's tenant: this window's activation, two earlier ones in the period (and one before
/// it); in the period she restarted `web01` (and, before the period, deleted a VM); in the
/// window she restarts `web02` (seen before: same operation and resource type), reads it, and
/// deletes `web03` (first time). `history_days` says how far back the rows reach.
fn tenant(history_days: i64) -> (Table, Table) {
    let mut audit = vec![activation_row(START, "now", 2)];
    let mut activity = Vec::new();
    let mut n = 0;
    let mut op = |at: OffsetDateTime, name: &str, res: &str| {
        n += 1;
        activity.extend(operation_row(at, name, res, n));
    };
    let earliest = START - Duration::days(history_days);
    for days in [3, 12] {
        let at = START - Duration::days(days);
        if at >= earliest {
            audit.push(activation_row(at, &format!("before-{days}"), 1));
        }
    }
    if history_days > 30 {
        audit.push(activation_row(START - Duration::days(31), "too-early", 1));
        op(
            START - Duration::days(31),
            "Microsoft.Compute/virtualMachines/delete",
            &format!("{VM}old"),
        );
    }
    if history_days >= 12 {
        op(
            START - Duration::days(12) + Duration::minutes(5),
            "Microsoft.Compute/virtualMachines/restart/action",
            &format!("{VM}web01"),
        );
    }
    // A row at the export's first instant, so that it reaches exactly `history_days` back.
    op(
        earliest,
        "Microsoft.Storage/storageAccounts/listKeys/action",
        "/subscriptions/s/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/other",
    );
    op(
        START + Duration::minutes(10),
        "Microsoft.Compute/virtualMachines/restart/action",
        &format!("{VM}web02"),
    );
    op(
        START + Duration::minutes(20),
        "Microsoft.Compute/virtualMachines/read",
        &format!("{VM}web02"),
    );
    op(
        START + Duration::minutes(30),
        "Microsoft.Compute/virtualMachines/delete",
        &format!("{VM}web03"),
    );
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

async fn live_scan(fake: &LogAnalyticsFake, options: ScanOptions) -> Report {
    let credential = Arc::new(StaticTokenCredential::new(
        "baseline-token",
        datetime!(2099-01-01 00:00 UTC),
    ));
    let client = LogAnalyticsClient::new(
        vec!["00000000-0000-0000-0000-000000000014".into()],
        credential,
        Some(LogAnalyticsOptions {
            endpoint: fake.uri(),
            ..LogAnalyticsOptions::default()
        }),
    )
    .unwrap();
    let source: Arc<dyn KqlSource> = Arc::new(client);
    Auditor::builder(source)
        .build()
        .scan(&options, END)
        .await
        .unwrap()
}

fn now_activation(report: &Report) -> &ActivationReport {
    report
        .activations
        .iter()
        .find(|a| a.id.contains("now") || a.window.start == START)
        .unwrap_or_else(|| panic!("no activation at the window start: {report:#?}"))
}

fn first_time(a: &ActivationReport) -> Vec<(String, String)> {
    a.baseline
        .as_ref()
        .unwrap()
        .first_time_operations
        .iter()
        .map(|f| (f.operation.clone(), f.resource_type.clone()))
        .collect()
}

#[tokio::test]
async fn a_live_scan_flags_only_the_operation_never_performed_before() {
    let fake = fake_with(tenant(40)).await;
    let report = live_scan(&fake, ScanOptions::new(END)).await;
    assert_eq!(report.settings.baseline_days, 30);
    let a = now_activation(&report);
    let b = a.baseline.as_ref().unwrap();
    assert_eq!(b.status, BaselineStatus::Computed, "{b:?}");
    assert_eq!(b.period.start, START - Duration::days(30));
    assert_eq!(b.period.end, START);
    // The restart of another VM was seen before (same operation, same resource type); the
    // read is a read; the delete of 31 days ago is outside the period.
    assert_eq!(
        first_time(a),
        [(
            "Microsoft.Compute/virtualMachines/delete".to_owned(),
            "microsoft.compute/virtualmachines".to_owned()
        )]
    );
    // The restart of the period (the key listing is 40 days back, before it).
    assert_eq!(b.known_operations, 1);
    assert!(a.assessment.flags.contains(&Flag::FirstTimeOperation));
    assert!(a.assessment.risk >= Risk::Medium);
    // Two activations in the period (3 and 12 days before), from one AuditLogs summary.
    assert_eq!(b.activations.count, Some(2));
    assert_eq!(b.activations.source, "audit_logs");
    assert!(
        a.assessment
            .rationale
            .contains("1 operation was never performed"),
        "{}",
        a.assessment.rationale
    );

    // One summarize query per table for all identities, each naming Jane as an obfuscated
    // literal over the half-open period.
    let queries = fake.queries();
    let summaries: Vec<&str> = queries
        .iter()
        .map(|q| q.kql.as_str())
        .filter(|k| k.contains("| summarize"))
        .collect();
    let count = |needle: &str| summaries.iter().filter(|k| k.contains(needle)).count();
    assert_eq!(count("Upn = tolower(Caller)"), 1, "{summaries:#?}");
    assert_eq!(count("Activations = count()"), 1, "{summaries:#?}");
    assert!(summaries.len() <= 3, "{summaries:#?}");
    for kql in &summaries {
        assert!(kql.contains(&format!("h\"{JANE}\"")), "{kql}");
        assert!(
            kql.contains("TimeGenerated >= datetime(2026-10-21T14:00:00.0000000Z) and TimeGenerated < datetime(2026-11-20T14:00:00.0000000Z)"),
            "{kql}"
        );
    }
    assert_eq!(report.run.queries, queries.len());
}

#[tokio::test]
async fn the_baseline_off_sends_no_summary_and_reports_none() {
    let fake = fake_with(tenant(40)).await;
    let mut options = ScanOptions::new(END);
    options.baseline_days = 0;
    let report = live_scan(&fake, options).await;
    assert_eq!(report.settings.baseline_days, 0);
    assert!(report.activations.iter().all(|a| a.baseline.is_none()));
    assert!(
        !now_activation(&report)
            .assessment
            .flags
            .contains(&Flag::FirstTimeOperation)
    );
    assert!(
        fake.queries()
            .iter()
            .all(|q| !q.kql.contains("| summarize"))
    );
}

#[tokio::test]
async fn a_failed_or_partial_baseline_query_leaves_the_baseline_unavailable() {
    for (failure, words) in [
        (Failure::InternalError, "baseline-azure query failed"),
        (
            Failure::PartialError {
                message: "Query result set has exceeded the internal data size limit 64000000 (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)".into(),
            },
            "baseline-azure query",
        ),
    ] {
        let fake = fake_with(tenant(40)).await;
        fake.fail_kql_containing("Count = count() by Upn = tolower(Caller)", failure.clone());
        let report = live_scan(&fake, ScanOptions::new(END)).await;
        let a = now_activation(&report);
        let b = a.baseline.as_ref().unwrap();
        assert_eq!(b.status, BaselineStatus::Unavailable, "{failure:?}");
        assert!(b.reason.as_deref().unwrap().contains(words), "{b:?}");
        // Unknown, not "none": no list, no flag, the reason in the rationale and a warning.
        assert!(b.first_time_operations.is_empty());
        assert!(!a.assessment.flags.contains(&Flag::FirstTimeOperation));
        assert!(
            a.assessment.rationale.contains("Behaviour baseline unavailable"),
            "{}",
            a.assessment.rationale
        );
        assert!(
            report.warnings.iter().any(|w| w.contains(words)),
            "{:?}",
            report.warnings
        );
        // The activation counts came from their own query.
        assert_eq!(b.activations.count, Some(2));
    }
}

#[tokio::test]
async fn activation_counts_come_from_the_state_store_when_it_covers_the_period() {
    let fake = fake_with(tenant(40)).await;
    let mut options = ScanOptions::new(END);
    let at = |days: i64| KnownActivation {
        upn: Some(JANE.to_uppercase()),
        object_id: None,
        activated_at: START - Duration::days(days),
    };
    options.known_activations = Some(Arc::new(KnownActivations {
        since: START - Duration::days(60),
        // Three in the period, one before it, and one of someone else.
        activations: vec![
            at(1),
            at(2),
            at(29),
            at(45),
            KnownActivation {
                upn: Some("someone.else@contoso-baseline.com".into()),
                object_id: None,
                activated_at: START - Duration::days(1),
            },
        ],
    }));
    let report = live_scan(&fake, options.clone()).await;
    let b = now_activation(&report).baseline.clone().unwrap();
    assert_eq!(b.activations.count, Some(3));
    assert_eq!(b.activations.source, "state");
    assert!(
        fake.queries()
            .iter()
            .all(|q| !q.kql.contains("Activations = count()")),
        "the store answered: no AuditLogs count query"
    );

    // A store whose records begin inside the period cannot count it: AuditLogs does, and a
    // warning says why.
    let fake = fake_with(tenant(40)).await;
    if let Some(known) = &mut options.known_activations {
        Arc::make_mut(known).since = START - Duration::days(5);
    }
    let report = live_scan(&fake, options).await;
    let b = now_activation(&report).baseline.clone().unwrap();
    assert_eq!(
        (b.activations.count, b.activations.source.as_str()),
        (Some(2), "audit_logs")
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("the state store's records begin at")),
        "{:?}",
        report.warnings
    );
}

/// An export directory holding the tenant as query API responses.
struct Exports(PathBuf);

impl Drop for Exports {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exports(name: &str, tables: (Table, Table)) -> Exports {
    let dir = std::env::temp_dir().join(format!("pim-baseline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, t) in [
        ("AuditLogs.json", tables.0),
        ("AzureActivity.json", tables.1),
    ] {
        let body = json!({"tables": [{
            "name": "PrimaryResult",
            "columns": t.columns.iter().map(|c| json!({"name": c.name, "type": c.kind})).collect::<Vec<_>>(),
            "rows": t.rows,
        }]});
        std::fs::write(dir.join(file), body.to_string()).unwrap();
    }
    Exports(dir)
}

async fn offline_scan(dir: &Exports) -> Report {
    let source = pim_core::export_source(&dir.0).unwrap();
    Auditor::builder(source)
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap()
}

#[tokio::test]
async fn offline_exports_that_cover_the_period_give_the_baseline() {
    let dir = exports("covered", tenant(40));
    let report = offline_scan(&dir).await;
    let a = now_activation(&report);
    let b = a.baseline.as_ref().unwrap();
    assert_eq!(b.status, BaselineStatus::Computed, "{b:?}");
    assert_eq!(
        first_time(a),
        [(
            "Microsoft.Compute/virtualMachines/delete".to_owned(),
            "microsoft.compute/virtualmachines".to_owned()
        )]
    );
    assert_eq!(b.known_operations, 1);
    assert_eq!(
        (b.activations.count, b.activations.source.as_str()),
        (Some(2), "export")
    );
    assert!(a.assessment.flags.contains(&Flag::FirstTimeOperation));
}

#[tokio::test]
async fn offline_exports_that_do_not_cover_the_period_say_so() {
    let dir = exports("short", tenant(5));
    let report = offline_scan(&dir).await;
    let a = now_activation(&report);
    let b = a.baseline.as_ref().unwrap();
    assert_eq!(b.status, BaselineStatus::Unavailable);
    let reason = b.reason.as_deref().unwrap();
    assert!(
        reason.starts_with("exports cover only 2026-11-15T14:00:00Z onwards"),
        "{reason}"
    );
    assert!(!a.assessment.flags.contains(&Flag::FirstTimeOperation));
    assert!(b.activations.count.is_none(), "{b:?}");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("behaviour baseline unavailable")),
        "{:?}",
        report.warnings
    );
    // Markdown shows it, escaped like every other reason.
    let md = pim_core::render(
        &report,
        pim_core::ReportFormat::Markdown,
        None,
        &pim_core::MarkdownOptions::default(),
    )
    .unwrap();
    assert!(
        md.contains("**baseline unavailable**: exports cover only"),
        "{md}"
    );
}

#[tokio::test]
async fn the_chunks_of_a_baseline_summary_run_at_once() {
    // 450 activating users: three identity chunks of at most 200 per summary (issue 12,
    // item 3: one after another, 25 chunks took 25 latencies).
    let (mut audit, activity) = tenant(40);
    audit.rows.truncate(1);
    for i in 0..450 {
        let mut row = activation_row(START, &format!("u{i}"), 2);
        let (upn, oid) = (
            format!("user{i:03}@contoso-baseline.com"),
            format!("00000000-0000-4000-8000-{i:012}"),
        );
        row[8] = json!(json!({"user": {"id": oid, "userPrincipalName": upn}}).to_string());
        row[9] = json!(json!([{"type": "Role", "displayName": "Virtual Machine Contributor", "id": "9980e02c"},
                              {"type": "User", "id": oid, "userPrincipalName": upn}]).to_string());
        audit.rows.push(row);
    }
    let fake = fake_with((audit, activity)).await;
    fake.set_latency(std::time::Duration::from_millis(300));
    let report = live_scan(&fake, ScanOptions::new(END)).await;
    assert_eq!(report.activations.len(), 451);
    let summaries: Vec<_> = fake
        .answer_timings()
        .into_iter()
        .filter(|t| t.kql.contains("Count = count() by Upn"))
        .collect();
    assert_eq!(summaries.len(), 3);
    // Each chunk was sent before the one before it was answered.
    for pair in summaries.windows(2) {
        assert!(pair[1].arrived < pair[0].due, "{summaries:#?}");
    }
    assert!(
        report
            .activations
            .iter()
            .all(|a| a.baseline.as_ref().unwrap().status == BaselineStatus::Computed)
    );
}
