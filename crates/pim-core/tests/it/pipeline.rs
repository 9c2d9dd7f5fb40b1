use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pim_core::domain::{Flag, RoleKind, Table, TimeRange, Verdict};
use pim_core::{
    Auditor, KqlSource, LogQuery, LogTable, QueryOutcome, ScanOptions, SourceCapabilities,
    SourceInfo, SourceKind, demo_source,
};
use time::macros::datetime;

/// Serves the demo tenant's tables but can fail or mark partial any table, and records queries.
#[derive(Debug)]
struct Scripted {
    demo: Arc<dyn KqlSource>,
    fail: Option<LogTable>,
    partial: Option<LogTable>,
    seen: Mutex<Vec<LogQuery>>,
}

impl Scripted {
    fn new(fail: Option<LogTable>, partial: Option<LogTable>) -> Self {
        Self {
            demo: demo_source().unwrap(),
            fail,
            partial,
            seen: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl KqlSource for Scripted {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::LogAnalytics,
            description: "scripted".into(),
            default_end: None,
        }
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            runs_arbitrary_kql: true,
            max_identities_per_query: Some(200),
            splits_by_time: true,
        }
    }

    async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
        self.seen.lock().unwrap().push(query.clone());
        // The PIM-events query is the first AuditLogs query; fail only the later ones when asked
        // to fail AuditLogs activity.
        let is_pim = query.label == "pim-events";
        if self.fail == query.table && !is_pim {
            return Err(pim_loganalytics::Error::Unsupported {
                message: format!("injected failure for {}", query.label),
            });
        }
        let mut outcome = self.demo.query(query).await?;
        if self.partial == query.table && !is_pim {
            outcome.partial_error = Some("PartialError: result set too large".into());
        }
        Ok(outcome)
    }
}

const END: time::OffsetDateTime = datetime!(2026-11-20 18:00 UTC);

#[tokio::test]
async fn a_scan_makes_a_fixed_number_of_queries_with_escaped_identities() {
    let source = Arc::new(Scripted::new(None, None));
    let report = Auditor::builder(source.clone())
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    let seen = source.seen.lock().unwrap();
    // Two PIM-events queries (AuditLogs and the Activity Log), one AzureActivity query, one
    // directory-activity query, and the behaviour baseline's three summaries (AzureActivity,
    // directory changes, activation counts) for all identities at once.
    assert_eq!(
        seen.len(),
        7,
        "{:?}",
        seen.iter().map(|q| &q.label).collect::<Vec<_>>()
    );
    assert!(report.summary.activations >= 12);
    let pim = &seen[0];
    assert_eq!(pim.table, Some(LogTable::AuditLogs));
    // The PIM query looks back 24 h before the 24 h window.
    assert_eq!(
        pim.timespan,
        TimeRange::new(datetime!(2026-11-18 18:00 UTC), END)
    );
    let activity_pim = &seen[1];
    assert_eq!(activity_pim.table, Some(LogTable::AzureActivity));
    assert_eq!(activity_pim.timespan, pim.timespan);
    assert!(activity_pim.kql.contains("\"azurerbac\""));
    // The guest's UPN with '#' is spliced only as an escaped literal.
    assert!(
        seen[2]
            .kql
            .contains("vendor.dev_fabrikam.com#EXT#@contoso-demo.com")
    );
    assert!(!seen[2].kql.contains("\"\""));
}

#[tokio::test]
async fn a_failed_activity_query_marks_activations_unknown_never_no_activity() {
    let source = Arc::new(Scripted::new(Some(LogTable::AzureActivity), None));
    let report = Auditor::builder(source)
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("azure-activity")),
        "{:?}",
        report.warnings
    );
    for a in &report.activations {
        if a.role.kind == RoleKind::EntraDirectory {
            // Judged on directory changes; only the elevateAccess check is lost, and said so.
            assert!(a.assessment.has_flag(Flag::ActivityTruncated), "{}", a.id);
        } else {
            assert_eq!(a.assessment.verdict, Verdict::Unknown, "{}", a.id);
            assert!(a.assessment.error.as_deref().is_some_and(|e| !e.is_empty()));
        }
    }
    assert!(
        report
            .activations
            .iter()
            .any(|a| a.role.kind == RoleKind::AzureResource)
    );
}

#[tokio::test]
async fn a_failed_pim_query_fails_the_scan() {
    let mut mock = pim_loganalytics::MockKqlSource::new();
    mock.expect_info().return_const(SourceInfo {
        kind: SourceKind::LogAnalytics,
        description: "mock".into(),
        default_end: None,
    });
    mock.expect_capabilities().return_const(SourceCapabilities {
        runs_arbitrary_kql: true,
        max_identities_per_query: Some(200),
        splits_by_time: true,
    });
    mock.expect_table_label()
        .returning(|table| table.name().to_owned());
    mock.expect_query().times(1).returning(|_| {
        Err(pim_loganalytics::Error::Unsupported {
            message: "down".into(),
        })
    });
    let err = Auditor::builder(Arc::new(mock))
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap_err();
    assert!(matches!(err, pim_core::Error::PimQuery { .. }), "{err}");
}

#[tokio::test]
async fn a_partial_activity_result_flags_the_activations() {
    let source = Arc::new(Scripted::new(None, Some(LogTable::AzureActivity)));
    let report = Auditor::builder(source)
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("partial")));
    assert!(
        report
            .activations
            .iter()
            .filter(|a| a.assessment.verdict != Verdict::Unknown)
            .all(|a| a.assessment.has_flag(Flag::ActivityTruncated))
    );
}

#[tokio::test]
async fn an_empty_source_gives_an_empty_report() {
    let mut mock = pim_loganalytics::MockKqlSource::new();
    mock.expect_info().return_const(SourceInfo {
        kind: SourceKind::LogAnalytics,
        description: "empty".into(),
        default_end: None,
    });
    mock.expect_capabilities().return_const(SourceCapabilities {
        runs_arbitrary_kql: true,
        max_identities_per_query: Some(200),
        splits_by_time: true,
    });
    mock.expect_table_label()
        .returning(|table| table.name().to_owned());
    // The two PIM-events queries; with no activation there is no activity to fetch.
    mock.expect_query().times(2).returning(|_| {
        Ok(QueryOutcome {
            tables: vec![Table::default()],
            partial_error: None,
            problems: vec![],
            scoped: None,
            truncation: None,
        })
    });
    let report = Auditor::builder(Arc::new(mock))
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    assert_eq!(report.summary.activations, 0);
    assert!(report.warnings.iter().any(|w| w.contains("rules engine")));
}

/// A model stand-in: answers "aligned, low" to everything after a short pause, counting how
/// many calls are in flight at once; fails for the activation ids it is told to.
#[derive(Debug, Default)]
struct CountingModel {
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
    calls: std::sync::atomic::AtomicUsize,
    fail_for: Vec<String>,
}

#[async_trait]
impl pim_rules::Assessor for CountingModel {
    fn name(&self) -> &str {
        "model"
    }

    async fn assess<'c>(
        &self,
        case: &pim_rules::Case<'c>,
        baseline: &pim_core::domain::Assessment,
    ) -> Result<pim_core::domain::Assessment, pim_rules::Error> {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.fetch_add(1, SeqCst);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        if self.fail_for.contains(&case.activation.id) {
            return Err(pim_rules::Error::Timeout(std::time::Duration::from_secs(
                60,
            )));
        }
        let mut a = baseline.clone();
        a.verdict = Verdict::Aligned;
        a.risk = pim_core::domain::Risk::Low;
        a.flags.clear();
        a.assessor = pim_core::domain::AssessorKind::Model;
        a.rationale = "Looks fine to me.".into();
        Ok(a)
    }
}

#[tokio::test]
async fn model_calls_run_concurrently_within_the_limit_and_never_beat_the_rules() {
    let source = demo_source().unwrap();
    let mallory = "PIM_1bf1f14e-4a57-5f4c-ae00-e0f9d7b27665_mallory".to_owned();
    let raj_id_part = "_raj".to_owned();
    let model = Arc::new(CountingModel::default());
    let limits = pim_core::config::ModelLimits {
        concurrency: 3,
        ..Default::default()
    };
    let report = Auditor::builder(source)
        .assessor(model.clone())
        .model_limits(limits)
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    use std::sync::atomic::Ordering::SeqCst;
    // Only activations the model can change were sent; never more than 3 at once.
    assert!(model.calls.load(SeqCst) >= 10);
    assert_eq!(model.max_in_flight.load(SeqCst), 3);
    assert!(report.settings.assessors.contains(&"model".to_owned()));
    // The model said "aligned, low" to everything; the guardrails keep the rules' findings.
    let m = report.activations.iter().find(|a| a.id == mallory).unwrap();
    assert_ne!(m.assessment.verdict, Verdict::Aligned);
    assert_eq!(m.assessment.risk, pim_core::domain::Risk::Critical);
    assert!(m.assessment.has_flag(Flag::PromptInjectionSuspected));
    assert!(!m.assessment.disagreements.is_empty());
    let raj = report
        .activations
        .iter()
        .find(|a| a.id.ends_with(&raj_id_part))
        .unwrap();
    assert_eq!(raj.assessment.risk, pim_core::domain::Risk::Critical);
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| w.contains("No model is configured"))
    );
}

#[tokio::test]
async fn a_failed_model_call_is_unknown_but_keeps_everything_the_rules_found() {
    let rules_only = Auditor::builder(demo_source().unwrap())
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    // Mallory's activation: the rules found critical risk and a prompt injection.
    let before = rules_only
        .activations
        .iter()
        .find(|a| a.id.ends_with("_mallory"))
        .unwrap();
    let failing = Arc::new(CountingModel {
        fail_for: vec![before.id.clone()],
        ..CountingModel::default()
    });
    let report = Auditor::builder(demo_source().unwrap())
        .assessor(failing)
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    let a = report
        .activations
        .iter()
        .find(|a| a.id == before.id)
        .unwrap();
    assert_eq!(a.assessment.verdict, Verdict::Unknown);
    assert!(
        a.assessment
            .error
            .as_deref()
            .unwrap()
            .contains("model assessment failed")
    );
    assert_eq!(a.assessment.risk, before.assessment.risk);
    assert_eq!(a.assessment.flags, before.assessment.flags);
    assert!(
        a.assessment
            .disagreements
            .iter()
            .any(|d| d.contains(&format!(
                "rules engine alone found {}",
                before.assessment.verdict
            )))
    );
}

#[tokio::test]
async fn no_model_call_is_made_where_the_rules_verdict_must_stand() {
    let model = Arc::new(CountingModel::default());
    let report = Auditor::builder(demo_source().unwrap())
        .assessor(model.clone())
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    let standing = report
        .activations
        .iter()
        .filter(|a| matches!(a.assessment.verdict, Verdict::NoActivity | Verdict::Unknown))
        .count();
    assert!(standing >= 2);
    assert_eq!(
        model.calls.load(std::sync::atomic::Ordering::SeqCst),
        report.activations.len() - standing
    );
}

/// An export folder served as if it were a live workspace: the scan takes its live path (every
/// query sent, nothing reused). A table the folder lacks answers with no rows, as a workspace
/// whose table is empty does.
#[derive(Debug)]
struct ExportAsLive {
    export: Arc<dyn KqlSource>,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl KqlSource for ExportAsLive {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::LogAnalytics,
            description: "export served as live".into(),
            default_end: None,
        }
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            runs_arbitrary_kql: true,
            max_identities_per_query: Some(200),
            splits_by_time: true,
        }
    }

    async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
        self.seen.lock().unwrap().push(query.label.clone());
        match self.export.query(query).await {
            Err(pim_loganalytics::Error::MissingTable { .. }) => Ok(QueryOutcome {
                tables: vec![Table::default()],
                partial_error: None,
                problems: vec![],
                scoped: None,
                truncation: None,
            }),
            other => other,
        }
    }
}

#[tokio::test]
async fn live_scans_read_pim_events_from_the_activity_log_with_a_fixed_number_of_queries() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/activity-only");
    let source = Arc::new(ExportAsLive {
        export: pim_core::export_source(dir).unwrap(),
        seen: Mutex::new(Vec::new()),
    });
    let end = datetime!(2026-11-20 18:00 UTC);
    let report = Auditor::builder(source.clone())
        .build()
        .scan(&ScanOptions::new(end), end)
        .await
        .unwrap();
    // AuditLogs is empty here: every activation comes from the Activity Log's azurerbac rows.
    let eve = report
        .activations
        .iter()
        .find(|a| a.principal.upn.as_deref() == Some("eve@contoso.com"))
        .unwrap();
    assert_eq!(
        eve.sources,
        [pim_core::domain::ActivitySource::AzureActivity]
    );
    assert_eq!(eve.role.kind, RoleKind::AzureResource);
    assert_eq!(eve.activities.len(), 1);
    assert_eq!(eve.assessment.verdict, Verdict::Aligned);
    assert_eq!(eve.window.end, datetime!(2026-11-20 16:00 UTC));
    // Two PIM-events queries and one AzureActivity query (no directory or group roles), then
    // the baseline's AzureActivity summary and activation counts.
    assert_eq!(
        *source.seen.lock().unwrap(),
        [
            "pim-events",
            "pim-events-activity",
            "azure-activity",
            "baseline-azure",
            "baseline-activations"
        ]
    );
    assert_eq!(report.run.queries, 5);
}

/// The demo tenant wearing other capabilities: the scan must plan from what a source declares,
/// never from its kind.
#[derive(Debug)]
struct Declared {
    inner: Arc<dyn KqlSource>,
    capabilities: SourceCapabilities,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl KqlSource for Declared {
    fn info(&self) -> SourceInfo {
        self.inner.info()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.capabilities
    }

    async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
        self.seen.lock().unwrap().push(query.label.clone());
        self.inner.query(query).await
    }
}

async fn azure_activity_labels(capabilities: SourceCapabilities) -> Vec<String> {
    let source = Arc::new(Declared {
        inner: demo_source().unwrap(),
        capabilities,
        seen: Mutex::new(Vec::new()),
    });
    let end = source.info().default_end.unwrap();
    Auditor::builder(source.clone())
        .build()
        .scan(&ScanOptions::new(end), end)
        .await
        .unwrap();
    let seen = source.seen.lock().unwrap();
    seen.iter()
        .filter(|l| l.starts_with("azure-activity"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_scan_plans_its_queries_from_the_declared_capabilities() {
    let runs_kql = |max| SourceCapabilities {
        runs_arbitrary_kql: true,
        max_identities_per_query: max,
        splits_by_time: true,
    };
    // One identity per query: the demo's identities are spread over one query each.
    let one_each = azure_activity_labels(runs_kql(Some(1))).await;
    let n = one_each.len();
    assert!(n >= 2, "{one_each:?}");
    let expected: Vec<String> = (1..=n).map(|i| format!("azure-activity {i}/{n}")).collect();
    assert_eq!(one_each, expected);
    // No limit: one query for every identity.
    assert_eq!(
        azure_activity_labels(runs_kql(None)).await,
        ["azure-activity"]
    );
    // A source that runs no KQL answers with whole tables: the PIM-events answer is reused and
    // no activity query is sent to AzureActivity at all.
    assert!(
        azure_activity_labels(SourceCapabilities::WHOLE_TABLES)
            .await
            .is_empty()
    );
}
