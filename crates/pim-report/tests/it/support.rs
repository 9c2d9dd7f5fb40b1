use pim_domain::{
    ActivationReport, Activity, ActivitySource, ActivityStatus, ActivityTarget, Assessment,
    AssessorKind, DataProblem, ElevationWindow, EndReason, Evidence, Flag, OperationRef, Principal,
    REPORT_SCHEMA_VERSION, Report, ReportSource, ReportSummary, ReportWindow, Risk, RiskFinding,
    Role, RoleKind, RunSummary, ScanSettings, Scope, ScopeKind, Verdict,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Snapshots under `tests/it/snapshots/`, named without the module prefix.
macro_rules! pim_snapshot {
    ($name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

pub const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

pub fn rg(name: &str) -> String {
    format!("{SUB}/resourceGroups/{name}")
}

pub fn azure(time: OffsetDateTime, op: &str, status: ActivityStatus, resource: &str) -> Activity {
    Activity {
        time,
        operation: op.into(),
        status,
        resource_id: Some(resource.into()),
        resource_group: resource
            .split('/')
            .skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups"))
            .nth(1)
            .map(Into::into),
        subscription_id: Some("00000000-0000-0000-0000-000000000001".into()),
        provider: op.split('/').next().map(Into::into),
        source: ActivitySource::AzureActivity,
        caller: None,
        caller_object_id: None,
        correlation_id: None,
        targets: Vec::new(),
    }
}

pub fn directory(time: OffsetDateTime, op: &str, kind: &str, name: &str) -> Activity {
    Activity {
        time,
        operation: op.into(),
        status: ActivityStatus::Succeeded,
        resource_id: None,
        resource_group: None,
        subscription_id: None,
        provider: Some("Core Directory".into()),
        source: ActivitySource::AuditLogs,
        caller: None,
        caller_object_id: None,
        correlation_id: None,
        targets: vec![ActivityTarget {
            kind: kind.to_owned(),
            name: Some(name.to_owned()),
            id: None,
        }],
    }
}

fn with_caller(mut activities: Vec<Activity>, caller: &str) -> Vec<Activity> {
    for a in &mut activities {
        a.caller = Some(caller.into());
    }
    activities
}

pub fn op_ref(op: &str, resource: &str, count: usize, first: OffsetDateTime) -> OperationRef {
    OperationRef {
        operation: op.to_owned(),
        resource: Some(resource.to_owned()),
        count,
        first,
    }
}

pub fn window(start: OffsetDateTime, end: OffsetDateTime, reason: EndReason) -> ElevationWindow {
    ElevationWindow {
        start,
        end,
        end_reason: reason,
        scheduled_end: Some(start + Duration::hours(8)),
        assumed: false,
    }
}

pub fn activation(
    id: &str,
    upn: Option<&str>,
    display_name: &str,
    role: (&str, RoleKind),
    scope: Scope,
    justification: &str,
    window: ElevationWindow,
) -> ActivationReport {
    ActivationReport {
        id: id.to_owned(),
        activated_at: window.start,
        principal: Principal {
            upn: upn.map(str::to_owned),
            object_id: Some(format!("{id}-oid")),
            display_name: Some(display_name.to_owned()),
        },
        role: Role {
            name: role.0.to_owned(),
            id: None,
            kind: role.1,
        },
        scope,
        justification: justification.to_owned(),
        tickets: Vec::new(),
        ticket_info: None,
        ticket_checks: Vec::new(),
        window,
        request_id: Some(format!("{id}-req")),
        correlation_id: Some(format!("{id}-corr")),
        activities: Vec::new(),
        activity_count: 0,
        assessment: Assessment {
            verdict: Verdict::Aligned,
            risk: Risk::Low,
            rationale: String::new(),
            flags: Vec::new(),
            assessor: AssessorKind::Rules,
            error: None,
            confidence: None,
            disagreements: Vec::new(),
            evidence: Evidence::default(),
        },
        problems: Vec::new(),
        sources: vec![ActivitySource::AuditLogs],
        state: None,
        revision: None,
        baseline: None,
    }
}

pub fn rg_scope(name: &str) -> Scope {
    Scope {
        kind: ScopeKind::ResourceGroup,
        id: Some(rg(name)),
        display_name: Some(name.to_owned()),
    }
}

pub fn report(activations: Vec<ActivationReport>, problems: Vec<DataProblem>) -> Report {
    Report {
        schema_version: REPORT_SCHEMA_VERSION.to_owned(),
        report_id: "rpt-2026-11-20-7f3a".to_owned(),
        generated_at: datetime!(2026-11-21 00:05:00 UTC),
        generator: "pim-audit 0.1.0".to_owned(),
        window: ReportWindow {
            start: datetime!(2026-11-20 00:00:00 UTC),
            end: datetime!(2026-11-21 00:00:00 UTC),
        },
        source: ReportSource {
            kind: "export".to_owned(),
            description: "exports/contoso-2026-11-20".to_owned(),
        },
        settings: ScanSettings {
            hours: 24,
            lookback_hours: 8,
            include_failed: true,
            max_activities_per_activation: 120,
            assessors: vec!["model".to_owned(), "rules".to_owned()],
            baseline_days: 0,
        },
        summary: ReportSummary::compute(&activations, problems.len()),
        run: RunSummary {
            duration_ms: 12_449,
            queries: 3,
            query_rows: 5_321,
            model_calls: 4,
            model_retries: 1,
            model_failures: 1,
            prompt_tokens: 9_120,
            completion_tokens: 610,
            activations: activations.len(),
            findings: activations.iter().filter(|a| a.is_finding()).count(),
        },
        problems,
        warnings: Vec::new(),
        activations,
    }
}

/// Five activations: aligned; not_aligned + critical with many operations, truncation and
/// problems; partial and still active on an assumed window; no_activity; unknown with an error.
pub fn fixture() -> Report {
    let t0 = datetime!(2026-11-20 09:13:58 UTC);

    // 1. Aligned: restart of the VM the ticket names.
    let mut a1 = activation(
        "act-1",
        Some("alice@contoso.com"),
        "Alice Ng",
        ("Virtual Machine Contributor", RoleKind::AzureResource),
        rg_scope("rg-prod-web"),
        "INC0042: restart web01 after kernel patch",
        window(t0, t0 + Duration::hours(2), EndReason::Deactivated),
    );
    a1.tickets = vec!["INC0042".to_owned()];
    let vm = format!(
        "{}/providers/Microsoft.Compute/virtualMachines/web01",
        rg("rg-prod-web")
    );
    let restart = "Microsoft.Compute/virtualMachines/restart/action";
    a1.activities = with_caller(
        vec![
            azure(
                t0 + Duration::minutes(4),
                restart,
                ActivityStatus::Failed,
                &vm,
            ),
            azure(
                t0 + Duration::minutes(6),
                restart,
                ActivityStatus::Succeeded,
                &vm,
            ),
            azure(
                t0 + Duration::minutes(9),
                "Microsoft.Compute/virtualMachines/read",
                ActivityStatus::Succeeded,
                &vm,
            ),
        ],
        "alice@contoso.com",
    );
    a1.activity_count = 3;
    a1.assessment.rationale =
        "Every operation is a restart or read of web01, which the justification names.".to_owned();
    a1.assessment.evidence = Evidence {
        intents: vec!["restart virtual machine".to_owned()],
        named_resources: vec!["web01".to_owned()],
        explained: vec![
            op_ref(restart, &vm, 2, t0 + Duration::minutes(4)),
            op_ref(
                "Microsoft.Compute/virtualMachines/read",
                &vm,
                1,
                t0 + Duration::minutes(9),
            ),
        ],
        unexplained: vec![],
        risk_findings: vec![],
    };

    // 2. Not aligned, critical: a role assignment and key listing under a "check logs" story.
    let t1 = datetime!(2026-11-20 13:00:00 UTC);
    let mut a2 = activation(
        "act-2",
        Some("bob@contoso.com"),
        "Bob Ortiz",
        ("Owner", RoleKind::AzureResource),
        Scope {
            kind: ScopeKind::Subscription,
            id: Some(SUB.to_owned()),
            display_name: Some("Prod-Sub".to_owned()),
        },
        "check logs",
        window(t1, t1 + Duration::hours(8), EndReason::Expired),
    );
    a2.role.id = Some("8e3af657-a8ff-443c-a75c-2fe8c4bcb635".to_owned());
    let kv = format!(
        "{}/providers/Microsoft.KeyVault/vaults/kv-prod",
        rg("rg-sec")
    );
    let st = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/stprod",
        rg("rg-data")
    );
    let assign = "Microsoft.Authorization/roleAssignments/write";
    let mut many = Vec::new();
    for i in 0..120i64 {
        let t = t1 + Duration::minutes(2 * i + 1);
        let (op, status, res) = match i % 8 {
            0 if i < 40 => (assign, ActivityStatus::Succeeded, SUB.to_owned()),
            1 | 2 => (
                "Microsoft.Storage/storageAccounts/listKeys/action",
                ActivityStatus::Succeeded,
                st.clone(),
            ),
            3 => (
                "Microsoft.KeyVault/vaults/write",
                ActivityStatus::Failed,
                kv.clone(),
            ),
            _ => (
                "Microsoft.Insights/diagnosticSettings/read",
                ActivityStatus::Succeeded,
                format!(
                    "{SUB}/providers/microsoft.insights/diagnosticSettings/ds{}",
                    i % 3
                ),
            ),
        };
        many.push(azure(t, op, status, &res));
    }
    a2.activities = with_caller(many, "bob@contoso.com");
    a2.activity_count = 150;
    a2.assessment = Assessment {
        verdict: Verdict::NotAligned,
        risk: Risk::Critical,
        rationale: "The justification names no resource or ticket; the window holds role assignments and storage key listing.".to_owned(),
        flags: vec![Flag::HighRiskOperation, Flag::InsufficientJustification, Flag::ActivityTruncated],
        assessor: AssessorKind::ModelAndRules,
        error: None,
        confidence: Some(0.82),
        disagreements: vec!["model said partial; rules keep not_aligned because of unexplained role assignments".to_owned()],
        evidence: Evidence {
            intents: vec!["read logs".to_owned()],
            named_resources: vec![],
            explained: vec![op_ref("Microsoft.Insights/diagnosticSettings/read", SUB, 45, t1 + Duration::minutes(9))],
            unexplained: vec![
                op_ref(assign, SUB, 5, t1 + Duration::minutes(1)),
                op_ref("Microsoft.Storage/storageAccounts/listKeys/action", &st, 30, t1 + Duration::minutes(3)),
            ],
            risk_findings: vec![
                RiskFinding {
                    operation: assign.to_owned(),
                    resource: Some(SUB.to_owned()),
                    risk: Risk::Critical,
                    rule: "role assignment written".to_owned(),
                    explained: false,
                },
                RiskFinding {
                    operation: "Microsoft.Storage/storageAccounts/listKeys/action".to_owned(),
                    resource: Some(st.clone()),
                    risk: Risk::High,
                    rule: "storage account keys listed".to_owned(),
                    explained: false,
                },
            ],
        },
    };
    a2.problems = vec![DataProblem::field(
        "AzureActivity",
        311,
        "Claims_d",
        "not valid JSON (expected value at line 1 column 1)",
    )];

    // 3. Partial, still active on an assumed window: directory changes.
    let t2 = datetime!(2026-11-20 20:30:00 UTC);
    let mut a3 = activation(
        "act-3",
        Some("carol@contoso.com"),
        "Carol Yu",
        ("User Administrator", RoleKind::EntraDirectory),
        Scope::directory(),
        "CHG12345 onboard new hires to the finance group",
        ElevationWindow {
            start: t2,
            end: datetime!(2026-11-21 00:00:00 UTC),
            end_reason: EndReason::StillActive,
            scheduled_end: None,
            assumed: true,
        },
    );
    a3.tickets = vec!["CHG12345".to_owned()];
    a3.activities = with_caller(
        vec![
            directory(
                t2 + Duration::minutes(5),
                "Add member to group",
                "Group",
                "Finance",
            ),
            directory(
                t2 + Duration::minutes(6),
                "Add member to group",
                "Group",
                "Finance",
            ),
            directory(
                t2 + Duration::minutes(20),
                "Reset user password",
                "User",
                "dave@contoso.com",
            ),
        ],
        "carol@contoso.com",
    );
    a3.activity_count = 3;
    a3.assessment = Assessment {
        verdict: Verdict::Partial,
        risk: Risk::Medium,
        rationale: "The group additions fit the change; the password reset is not explained."
            .to_owned(),
        flags: vec![Flag::StillActive, Flag::AssumedWindow],
        assessor: AssessorKind::Rules,
        error: None,
        confidence: None,
        disagreements: vec![],
        evidence: Evidence {
            intents: vec!["add group member".to_owned()],
            named_resources: vec!["finance".to_owned()],
            explained: vec![op_ref(
                "Add member to group",
                "Finance",
                2,
                t2 + Duration::minutes(5),
            )],
            unexplained: vec![op_ref(
                "Reset user password",
                "dave@contoso.com",
                1,
                t2 + Duration::minutes(20),
            )],
            risk_findings: vec![RiskFinding {
                operation: "Reset user password".to_owned(),
                resource: Some("dave@contoso.com".to_owned()),
                risk: Risk::Medium,
                rule: "password reset".to_owned(),
                explained: false,
            }],
        },
    };

    // 4. No activity: a display name only, deactivated early.
    let t3 = datetime!(2026-11-20 06:00:00 UTC);
    let mut a4 = activation(
        "act-4",
        None,
        "Dave Singh",
        ("Reader", RoleKind::AzureResource),
        rg_scope("rg-dev"),
        "look at dev costs",
        window(t3, t3 + Duration::minutes(25), EndReason::Deactivated),
    );
    a4.principal.object_id = None;
    a4.assessment.verdict = Verdict::NoActivity;
    a4.assessment.rationale = "No operations were recorded in the window.".to_owned();

    // 5. Unknown: the activation row could not be read completely.
    let t4 = datetime!(2026-11-20 07:45:00 UTC);
    let mut a5 = activation(
        "act-5",
        Some("erin@contoso.com"),
        "Erin Park",
        ("Key Vault Administrator", RoleKind::AzureResource),
        Scope::unknown(),
        "",
        window(t4, t4 + Duration::hours(8), EndReason::Assumed),
    );
    a5.window.assumed = true;
    a5.window.scheduled_end = None;
    a5.request_id = None;
    a5.assessment = Assessment::unknown(
        AssessorKind::Rules,
        "the scope of the activation was not logged",
    );
    a5.assessment.add_flag(Flag::AssumedWindow);
    a5.problems = vec![DataProblem::field(
        "AuditLogs",
        17,
        "TargetResources",
        "no role scope found",
    )];

    let mut activations = vec![a4, a5, a1, a2, a3];
    activations.sort_by_key(|a| a.activated_at);
    let problems = vec![
        DataProblem::source("AzureActivity.json", "file ends in the middle of a row"),
        DataProblem::row(
            "AuditLogs.json",
            4,
            "TimeGenerated is not a timestamp: \"yesterday\"",
        ),
    ];
    let mut r = report(activations, problems);
    r.warnings = vec![
        "AzureActivity returned a partial result (PartialError); some operations may be missing"
            .to_owned(),
        "activation act-2 hit the limit of 120 operations".to_owned(),
    ];
    r
}
