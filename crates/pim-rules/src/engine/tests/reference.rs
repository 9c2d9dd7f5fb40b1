//! The engine as written before operation names were looked up once per case: every rule
//! applied to every operation through the public per-operation functions, and evidence
//! grouped by owned, lower-cased keys. The engine must agree with it exactly.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use pim_domain::{OperationRef, RiskFinding};

use super::*;
use crate::catalogue::CatalogueMatch;
use crate::policy::{risk, unread_evidence};
use crate::rationale::{Facts, describe, rationale, unread_rows};

struct Judged<'a> {
    activity: &'a Activity,
    finding: Option<CatalogueMatch>,
    explained: bool,
    bookkeeping: bool,
}

pub(super) fn assess(config: &RulesConfig, case: &Case<'_>) -> Assessment {
    let activation = case.activation;
    let text = activation.justification.as_str();
    let signals = justification::case_injection_signals(case);
    let injection = !signals.is_empty();
    let has_ticket = activation.tickets.iter().any(|t| !t.trim().is_empty());
    let insufficient =
        !has_ticket && justification::is_insufficient_with(text, &config.content_free_words);
    let usable = !injection && !insufficient;
    let intents = vocabulary::intents(text);
    let named = vocabulary::named_resources(text, &activation.tickets, case.activities);
    let judged: Vec<Judged<'_>> = case
        .activities
        .iter()
        .map(|activity| {
            let bookkeeping = catalogue::is_elevation_bookkeeping(activity);
            let explained = bookkeeping
                || (usable
                    && (catalogue::is_read_only(activity, config)
                        || (intents.iter().any(|i| i.explains(activity))
                            && (named.is_empty() || vocabulary::touches_any(activity, &named)))));
            Judged {
                activity,
                finding: catalogue::classify(activity, config),
                explained,
                bookkeeping,
            }
        })
        .collect();
    let work: Vec<&Judged<'_>> = judged.iter().filter(|j| !j.bookkeeping).collect();
    let explained_work = work.iter().filter(|j| j.explained).count();
    let unexplained_work = work.len() - explained_work;
    let mut error = case.unassessable.clone();
    let verdict = if error.is_some() {
        Verdict::Unknown
    } else if case.activities.is_empty() && case.activity_total > 0 {
        error = Some(format!(
            "the window held {} operations but none were passed for assessment",
            case.activity_total
        ));
        Verdict::Unknown
    } else if work.is_empty() {
        Verdict::NoActivity
    } else if !usable || explained_work == 0 {
        Verdict::NotAligned
    } else if unexplained_work == 0 {
        Verdict::Aligned
    } else {
        Verdict::Partial
    };
    let verdict = unread_evidence(verdict, &mut error, case.unreadable);
    let risk = risk(
        verdict,
        judged.iter().map(|j| (j.finding, j.explained)),
        injection,
        insufficient && !work.is_empty(),
    );
    let mut flags = Vec::new();
    if judged
        .iter()
        .any(|j| j.finding.is_some_and(|f| f.risk >= Risk::High))
    {
        flags.push(Flag::HighRiskOperation);
    }
    if insufficient {
        flags.push(Flag::InsufficientJustification);
    }
    if injection {
        flags.push(Flag::PromptInjectionSuspected);
    }
    if activation.window.end_reason == EndReason::StillActive {
        flags.push(Flag::StillActive);
    }
    if activation.window.assumed || activation.window.end_reason == EndReason::Assumed {
        flags.push(Flag::AssumedWindow);
    }
    let truncated = case.truncated || case.activities.len() < case.activity_total;
    if truncated {
        flags.push(Flag::ActivityTruncated);
    }
    if !case.unreadable.is_empty() {
        flags.push(Flag::EvidenceIncomplete);
    }
    flags.sort_unstable();
    flags.dedup();
    let evidence = Evidence {
        intents: intents.iter().map(|i| i.name.to_owned()).collect(),
        named_resources: named,
        explained: group(judged.iter().filter(|j| j.explained).map(|j| j.activity)),
        unexplained: group(judged.iter().filter(|j| !j.explained).map(|j| j.activity)),
        risk_findings: findings(&judged),
    };
    let risks: Vec<Option<Risk>> = evidence
        .unexplained
        .iter()
        .map(|op| {
            judged
                .iter()
                .filter(|j| !j.explained && j.activity.operation == op.operation)
                .filter(|j| resource_label(j.activity) == op.resource)
                .filter_map(|j| j.finding.map(|f| f.risk))
                .max()
        })
        .collect();
    let facts = Facts {
        verdict,
        work: work.len(),
        explained_work,
        unexplained_work,
        signals: &signals,
        insufficient,
        justification: text,
        error: error.as_deref(),
        truncated,
        examined: case.activities.len(),
        total: case.activity_total.max(case.activities.len()),
        unreadable: unread_rows(case.unreadable),
    };
    let rationale = rationale(&facts, &evidence, &flags, &risks);
    // `describe` is what the rationale names operations with; keep it in use here so
    // the reference reads like the engine.
    let _ = evidence.unexplained.first().map(describe);
    Assessment {
        verdict,
        risk,
        rationale,
        flags,
        assessor: AssessorKind::Rules,
        error,
        confidence: None,
        disagreements: Vec::new(),
        evidence,
    }
}

fn resource_label(activity: &Activity) -> Option<String> {
    if let Some(id) = activity
        .resource_id
        .as_deref()
        .filter(|id| id.starts_with('/'))
    {
        return Some(id.to_owned());
    }
    let names: Vec<&str> = activity
        .targets
        .iter()
        .filter_map(|t| t.name.as_deref())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        activity
            .resource_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .map(str::to_owned)
    } else {
        Some(names.join(", "))
    }
}

fn group_key(activity: &Activity, resource: Option<&str>) -> (String, String) {
    (
        catalogue::normalise_operation(&activity.operation),
        resource.unwrap_or_default().to_lowercase(),
    )
}

fn group<'a>(activities: impl Iterator<Item = &'a Activity>) -> Vec<OperationRef> {
    let mut groups: BTreeMap<(String, String), OperationRef> = BTreeMap::new();
    for activity in activities {
        let resource = resource_label(activity);
        let key = group_key(activity, resource.as_deref());
        groups
            .entry(key)
            .and_modify(|g| {
                g.count += 1;
                if activity.time < g.first {
                    g.first = activity.time;
                    g.operation = activity.operation.as_str().to_owned();
                }
            })
            .or_insert_with(|| OperationRef {
                operation: activity.operation.as_str().to_owned(),
                resource,
                count: 1,
                first: activity.time,
            });
    }
    let mut refs: Vec<OperationRef> = groups.into_values().collect();
    refs.sort_by(|a, b| {
        (
            a.first,
            a.operation.to_lowercase(),
            a.resource.as_deref().map(str::to_lowercase),
        )
            .cmp(&(
                b.first,
                b.operation.to_lowercase(),
                b.resource.as_deref().map(str::to_lowercase),
            ))
    });
    refs
}

fn findings(judged: &[Judged<'_>]) -> Vec<RiskFinding> {
    let mut out: BTreeMap<(Reverse<Risk>, bool, String, String, &'static str), RiskFinding> =
        BTreeMap::new();
    for j in judged {
        let Some(f) = j.finding else { continue };
        let resource = resource_label(j.activity);
        let (op, res) = group_key(j.activity, resource.as_deref());
        out.entry((Reverse(f.risk), j.explained, op, res, f.rule))
            .or_insert_with(|| RiskFinding {
                operation: j.activity.operation.as_str().to_owned(),
                resource,
                risk: f.risk,
                rule: f.rule.to_owned(),
                explained: j.explained,
            });
    }
    out.into_values().collect()
}
