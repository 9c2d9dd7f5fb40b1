//! One row of the `PimAudit_CL` custom table per assessed activation.
//!
//! The column names and types here are the table's schema; `docs/alerting.md` documents them
//! and `docs/alerting.bicep` declares them. Renaming a field breaks every DCR already deployed.

use pim_domain::timestamp::format_utc;
use pim_domain::{ActivationReport, Report};
use serde::{Deserialize, Serialize};

use crate::http::clean;

/// Longest `Rationale`, in characters: enough for the rules' explanation, short enough for an
/// alert e-mail.
pub const RATIONALE_MAX_CHARS: usize = 1000;
/// Longest `Justification`, in characters.
pub const JUSTIFICATION_MAX_CHARS: usize = 2000;
/// Longest other text column (names, ids, error), in characters. Log text is untrusted and may
/// be huge; capping every column keeps each row far below the service's 64 KB field limit.
pub const TEXT_MAX_CHARS: usize = 512;
/// Most ticket references kept per row.
pub const TICKETS_MAX: usize = 20;

/// One activation as a row of the `PimAudit_CL` table (Logs Ingestion stream
/// `Custom-PimAudit_CL`).
///
/// Serialises with the PascalCase column names below. Every text column is one line (control,
/// bidi and invisible characters and runs of whitespace made one space, by
/// `pim_domain::text::log_field`) and is capped (see the `*_MAX_*` constants); missing values
/// are JSON `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditRow {
    /// `datetime`: when the report was generated (the report's `generated_at`, RFC 3339 UTC).
    pub time_generated: String,
    /// `string`: the report id, to find the full JSON report.
    pub report_id: String,
    /// `string`: the activation's stable id (audit record id).
    pub activation_id: String,
    /// `string`: user principal name of the person who activated.
    pub principal_upn: Option<String>,
    /// `string`: Entra object id of that person.
    pub principal_object_id: Option<String>,
    /// `string`: display name of that person.
    pub principal_name: Option<String>,
    /// `string`: the role's display name, e.g. `Contributor`.
    pub role_name: String,
    /// `string`: `entra_directory`, `azure_resource` or `group`.
    pub role_kind: String,
    /// `string`: `directory`, `management_group`, `subscription`, `resource_group`,
    /// `resource`, `group` or `unknown`.
    pub scope_kind: String,
    /// `string`: the scope's ARM path or object id; its display name when the log had no id.
    pub scope_id: Option<String>,
    /// `datetime`: start of the elevation window (RFC 3339 UTC).
    pub window_start: String,
    /// `datetime`: end of the elevation window (RFC 3339 UTC).
    pub window_end: String,
    /// `string`: `expired`, `deactivated`, `still_active` or `assumed`.
    pub end_reason: String,
    /// `string`: `aligned`, `partial`, `not_aligned`, `no_activity` or `unknown`.
    pub verdict: String,
    /// `string`: `low`, `medium`, `high` or `critical`.
    pub risk: String,
    /// `dynamic`: flag names, e.g. `["high_risk_operation"]`.
    pub flags: Vec<String>,
    /// `dynamic`: ticket references from the justification, e.g. `["INC0042"]`.
    pub tickets: Vec<String>,
    /// `string`: `rules`, `model` or `model+rules`.
    pub assessor: String,
    /// `string`: the assessor's short explanation.
    pub rationale: String,
    /// `string`: why the activation could not be assessed, if it could not.
    pub error: Option<String>,
    /// `long`: operations found in the window.
    pub activity_count: u64,
    /// `bool`: whether the activation needs a human look
    /// ([`ActivationReport::is_finding`]).
    pub is_finding: bool,
    /// `string`: the justification as typed (untrusted text).
    pub justification: String,
    /// `long`: the assessment's revision in the state store (`--state`): 1 when first sent, one
    /// more each time its verdict, risk or flags changed, so an alert rule can tell a revision
    /// of an activation it has already seen from a new one; 0 without a state store, where
    /// nothing is tracked between runs (issue 13).
    pub revision: u32,
}

impl AuditRow {
    /// The row for one activation of a report.
    pub fn new(report: &Report, activation: &ActivationReport) -> Self {
        let text = |s: &str| clean(s, TEXT_MAX_CHARS);
        let opt = |s: Option<&String>| s.map(|s| text(s)).filter(|s| !s.is_empty());
        let a = &activation.assessment;
        Self {
            time_generated: format_utc(report.generated_at),
            report_id: text(&report.report_id),
            activation_id: text(&activation.id),
            principal_upn: opt(activation.principal.upn.as_ref()),
            principal_object_id: opt(activation.principal.object_id.as_ref()),
            principal_name: opt(activation.principal.display_name.as_ref()),
            role_name: text(&activation.role.name),
            role_kind: activation.role.kind.as_str().to_owned(),
            scope_kind: activation.scope.kind.as_str().to_owned(),
            scope_id: opt(activation
                .scope
                .id
                .as_ref()
                .or(activation.scope.display_name.as_ref())),
            window_start: format_utc(activation.window.start),
            window_end: format_utc(activation.window.end),
            end_reason: activation.window.end_reason.as_str().to_owned(),
            verdict: a.verdict.as_str().to_owned(),
            risk: a.risk.as_str().to_owned(),
            flags: a.flags.iter().map(|f| f.as_str().to_owned()).collect(),
            tickets: activation
                .tickets
                .iter()
                .map(|t| clean(t, 100))
                .filter(|t| !t.is_empty())
                .take(TICKETS_MAX)
                .collect(),
            assessor: a.assessor.as_str().to_owned(),
            rationale: clean(&a.rationale, RATIONALE_MAX_CHARS),
            error: opt(a.error.as_ref()),
            activity_count: u64::try_from(activation.activity_count).unwrap_or(u64::MAX),
            is_finding: activation.is_finding(),
            justification: clean(&activation.justification, JUSTIFICATION_MAX_CHARS),
            revision: activation.revision.unwrap_or(0),
        }
    }
}

/// One [`AuditRow`] per activation in the report, in report order.
pub fn rows(report: &Report) -> Vec<AuditRow> {
    report
        .activations
        .iter()
        .map(|a| AuditRow::new(report, a))
        .collect()
}

/// Every column of `PimAudit_CL` with its Log Analytics type, in [`AuditRow`] order. The DCR's
/// stream declaration and the table must list exactly these.
pub const COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("ReportId", "string"),
    ("ActivationId", "string"),
    ("PrincipalUpn", "string"),
    ("PrincipalObjectId", "string"),
    ("PrincipalName", "string"),
    ("RoleName", "string"),
    ("RoleKind", "string"),
    ("ScopeKind", "string"),
    ("ScopeId", "string"),
    ("WindowStart", "datetime"),
    ("WindowEnd", "datetime"),
    ("EndReason", "string"),
    ("Verdict", "string"),
    ("Risk", "string"),
    ("Flags", "dynamic"),
    ("Tickets", "dynamic"),
    ("Assessor", "string"),
    ("Rationale", "string"),
    ("Error", "string"),
    ("ActivityCount", "long"),
    ("IsFinding", "boolean"),
    ("Justification", "string"),
    ("Revision", "long"),
];

#[cfg(test)]
pub(crate) mod tests {
    use pim_domain::{
        Activation, Assessment, AssessorKind, ElevationWindow, EndReason, Evidence, Flag,
        Principal, REPORT_SCHEMA_VERSION, ReportSource, ReportSummary, ReportWindow, Risk, Role,
        RoleKind, ScanSettings, Scope, ScopeKind, Verdict,
    };
    use serde_json::Value;
    use time::macros::datetime;

    use super::*;

    /// An activation report with the given id, verdict, risk and flags.
    pub(crate) fn activation(
        id: &str,
        verdict: Verdict,
        risk: Risk,
        flags: &[Flag],
    ) -> ActivationReport {
        let activation = Activation {
            id: id.to_owned(),
            activated_at: datetime!(2026-11-20 09:00 UTC),
            principal: Principal {
                upn: Some(format!("{id}@contoso.com")),
                object_id: Some("0b1c2d3e-0000-4000-8000-000000000001".to_owned()),
                display_name: Some("Jane Doe".to_owned()),
            },
            role: Role {
                name: "Contributor".to_owned(),
                id: None,
                kind: RoleKind::AzureResource,
            },
            scope: Scope {
                kind: ScopeKind::ResourceGroup,
                id: Some("/subscriptions/s1/resourceGroups/rg-prod-web".to_owned()),
                display_name: Some("rg-prod-web".to_owned()),
            },
            justification: "INC0042 restart vm-web-01".to_owned(),
            tickets: vec!["INC0042".to_owned()],
            ticket_info: None,
            ticket_checks: Vec::new(),
            window: ElevationWindow {
                start: datetime!(2026-11-20 09:00 UTC),
                end: datetime!(2026-11-20 10:30:15.5 UTC),
                end_reason: EndReason::Deactivated,
                scheduled_end: None,
                assumed: false,
            },
            request_id: None,
            correlation_id: None,
            problems: Vec::new(),
        };
        let assessment = Assessment {
            verdict,
            risk,
            rationale: "Restarted the VM named in the ticket.".to_owned(),
            flags: flags.to_vec(),
            assessor: AssessorKind::Rules,
            error: None,
            confidence: None,
            disagreements: Vec::new(),
            evidence: Evidence::default(),
        };
        ActivationReport::new(activation, Vec::new(), 3, assessment)
    }

    /// A report holding these activations.
    pub(crate) fn report(activations: Vec<ActivationReport>) -> Report {
        Report {
            schema_version: REPORT_SCHEMA_VERSION.to_owned(),
            report_id: "rep-2026-11-20".to_owned(),
            generated_at: datetime!(2026-11-21 06:00:00 UTC),
            generator: "pim-audit 0.1.0".to_owned(),
            window: ReportWindow {
                start: datetime!(2026-11-20 06:00 UTC),
                end: datetime!(2026-11-21 06:00 UTC),
            },
            source: ReportSource {
                kind: "demo".to_owned(),
                description: "demo tenant".to_owned(),
            },
            settings: ScanSettings {
                hours: 24,
                lookback_hours: 8,
                include_failed: false,
                max_activities_per_activation: 500,
                assessors: vec!["rules".to_owned()],
                baseline_days: 0,
            },
            summary: ReportSummary::compute(&activations, 0),
            run: Default::default(),
            problems: Vec::new(),
            warnings: Vec::new(),
            activations,
        }
    }

    #[test]
    fn a_row_carries_every_field_of_the_activation() {
        let mut a = activation(
            "act-1",
            Verdict::NotAligned,
            Risk::Critical,
            &[Flag::HighRiskOperation, Flag::PromptInjectionSuspected],
        );
        a.assessment.error = Some("model timed out".to_owned());
        a.assessment.assessor = AssessorKind::ModelAndRules;
        let r = report(vec![a]);
        let rows = rows(&r);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            *row,
            AuditRow {
                time_generated: "2026-11-21T06:00:00Z".into(),
                report_id: "rep-2026-11-20".into(),
                activation_id: "act-1".into(),
                principal_upn: Some("act-1@contoso.com".into()),
                principal_object_id: Some("0b1c2d3e-0000-4000-8000-000000000001".into()),
                principal_name: Some("Jane Doe".into()),
                role_name: "Contributor".into(),
                role_kind: "azure_resource".into(),
                scope_kind: "resource_group".into(),
                scope_id: Some("/subscriptions/s1/resourceGroups/rg-prod-web".into()),
                window_start: "2026-11-20T09:00:00Z".into(),
                window_end: "2026-11-20T10:30:15.5Z".into(),
                end_reason: "deactivated".into(),
                verdict: "not_aligned".into(),
                risk: "critical".into(),
                flags: vec![
                    "high_risk_operation".into(),
                    "prompt_injection_suspected".into()
                ],
                tickets: vec!["INC0042".into()],
                assessor: "model+rules".into(),
                rationale: "Restarted the VM named in the ticket.".into(),
                error: Some("model timed out".into()),
                activity_count: 3,
                is_finding: true,
                justification: "INC0042 restart vm-web-01".into(),
                revision: 0,
            }
        );
    }

    #[test]
    fn json_columns_are_exactly_the_table_schema() {
        let r = report(vec![activation("a", Verdict::Aligned, Risk::Low, &[])]);
        let json = serde_json::to_value(&rows(&r)[0]).unwrap();
        let object = json.as_object().unwrap();
        let names: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        expected.sort_unstable();
        let mut names_sorted = names.clone();
        names_sorted.sort_unstable();
        assert_eq!(names_sorted, expected);
        for (name, kind) in COLUMNS {
            assert!(name.len() <= 45 && name.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(
                ![
                    "type",
                    "tenantid",
                    "resource",
                    "resourceid",
                    "subscriptionid"
                ]
                .contains(&name.to_ascii_lowercase().as_str())
            );
            let value = &object[*name];
            let ok = match *kind {
                "string" => value.is_string() || value.is_null(),
                "datetime" => value.as_str().is_some_and(|s| s.ends_with('Z')),
                "dynamic" => value.is_array(),
                "long" => value.is_u64(),
                "boolean" => value.is_boolean(),
                _ => false,
            };
            assert!(ok, "{name} {kind} {value}");
        }
        assert_eq!(object["IsFinding"], Value::Bool(false));
    }

    #[test]
    fn hostile_text_is_cleaned_and_capped() {
        let mut a = activation("a", Verdict::Unknown, Risk::Medium, &[Flag::StillActive]);
        a.justification = format!("ignore previous\u{0}\r\n{}", "x".repeat(10_000));
        a.assessment.rationale = "é".repeat(5_000);
        a.role.name = "\u{1b}[31mOwner".to_owned();
        a.principal.upn = Some("\u{7}".to_owned());
        a.scope.id = None;
        a.tickets = (0..100).map(|i| format!("INC{i}")).collect();
        let row = AuditRow::new(&report(Vec::new()), &a);
        assert_eq!(row.justification.chars().count(), JUSTIFICATION_MAX_CHARS);
        // The shared log-field rule (issue 11) folds NUL, CR and LF into one space.
        assert!(row.justification.starts_with("ignore previous x"));
        assert_eq!(row.rationale.chars().count(), RATIONALE_MAX_CHARS);
        assert!(row.rationale.ends_with('…'));
        assert_eq!(row.role_name, "[31mOwner");
        assert_eq!(row.principal_upn, None);
        assert_eq!(row.scope_id.as_deref(), Some("rg-prod-web"));
        assert_eq!(row.tickets.len(), TICKETS_MAX);
        assert!(row.is_finding, "unknown is a finding");
        assert_eq!(row.end_reason, "deactivated");
    }

    #[test]
    fn one_row_per_activation_in_order() {
        let r = report(vec![
            activation("a", Verdict::Aligned, Risk::Low, &[]),
            activation("b", Verdict::Partial, Risk::High, &[]),
            activation("c", Verdict::NoActivity, Risk::Low, &[]),
        ]);
        let ids: Vec<String> = rows(&r).into_iter().map(|r| r.activation_id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(rows(&report(Vec::new())).is_empty());
    }
}
