//! The rationale: one to three sentences built only from the assessment's facts. See the
//! [engine docs](crate::engine#evidence-and-rationale).

use pim_domain::{Evidence, Flag, OperationRef, Risk, Verdict};
use time::OffsetDateTime;

use crate::justification;

/// "1 row", "5 rows", or "more than 100 rows" when the pipeline listed only some of them (it
/// then ends the list with a problem that names no row and says how many more).
pub(crate) fn unread_rows(unreadable: &[pim_domain::DataProblem]) -> String {
    let listed = unreadable.iter().filter(|p| p.row.is_some()).count();
    if unreadable.iter().any(|p| p.row.is_none()) {
        format!("more than {}", plural(listed, "row", "rows"))
    } else {
        plural(listed, "row", "rows")
    }
}

/// What the rationale is built from.
pub(crate) struct Facts<'a> {
    pub(crate) verdict: Verdict,
    pub(crate) work: usize,
    pub(crate) explained_work: usize,
    pub(crate) unexplained_work: usize,
    pub(crate) signals: &'a [justification::FieldSignals],
    pub(crate) insufficient: bool,
    pub(crate) justification: &'a str,
    pub(crate) error: Option<&'a str>,
    pub(crate) truncated: bool,
    pub(crate) examined: usize,
    pub(crate) total: usize,
    /// Rows that could belong to the activation and could not be read, in words.
    pub(crate) unreadable: String,
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A short, safe name for a resource: the last segment of an ARM id, else the label, bounded.
fn short_resource(resource: Option<&str>) -> Option<String> {
    let r = resource?;
    let last = if r.starts_with('/') {
        r.trim_end_matches('/').rsplit('/').next().unwrap_or(r)
    } else {
        r
    };
    let short = justification::excerpt(last, 60);
    (!short.is_empty()).then_some(short)
}

pub(crate) fn describe(op: &OperationRef) -> String {
    let operation = justification::excerpt(&op.operation, 100);
    let mut s = match short_resource(op.resource.as_deref()) {
        Some(r) => format!("{operation} on {r}"),
        None => operation,
    };
    if op.count > 1 {
        s.push_str(&format!(" ({} times)", op.count));
    }
    s
}

/// Up to two unexplained operations, most sensitive first, then most frequent, then earliest.
/// `risks` holds, for each of `evidence.unexplained`, the highest catalogue risk among its
/// occurrences (see [`group`](crate::evidence::group)).
fn top_unexplained(evidence: &Evidence, risks: &[Option<Risk>]) -> String {
    let mut ranked: Vec<(&OperationRef, Option<Risk>)> = evidence
        .unexplained
        .iter()
        .zip(risks.iter().copied())
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| {
        rb.cmp(ra)
            .then(b.count.cmp(&a.count))
            .then(a.first.cmp(&b.first))
    });
    let shown: Vec<String> = ranked.iter().take(2).map(|(op, _)| describe(op)).collect();
    shown.join(" and ")
}

pub(crate) fn rationale(
    facts: &Facts<'_>,
    evidence: &Evidence,
    flags: &[Flag],
    unexplained_risks: &[Option<Risk>],
) -> String {
    let mut sentences: Vec<String> = Vec::new();
    let ops = plural(facts.work, "operation", "operations");
    let none = if facts.work == 1 {
        "does not explain the only operation".to_owned()
    } else {
        format!("explains none of the {ops}")
    };
    let first = match facts.verdict {
        Verdict::Unknown => {
            let reason = justification::excerpt(facts.error.unwrap_or("no reason was given"), 200);
            if facts.work > 0 {
                format!(
                    "Could not assess: {reason}; the {ops} that were found are listed as evidence."
                )
            } else {
                format!("Could not assess: {reason}.")
            }
        }
        Verdict::NoActivity => {
            "No operations by this identity were recorded in the elevation window.".to_owned()
        }
        Verdict::Aligned => {
            let (all, s) = if facts.work == 1 {
                ("The only operation in the window".to_owned(), "s")
            } else {
                (format!("All {ops} in the window"), "")
            };
            if evidence.intents.is_empty() {
                format!("{all} only read{s}, which any real justification covers.")
            } else {
                format!(
                    "{all} fit{s} the justification (recognised: {}).",
                    evidence.intents.join(", ")
                )
            }
        }
        Verdict::Partial => format!(
            "{} of {ops} fit the justification; {} not, such as {}.",
            facts.explained_work,
            if facts.unexplained_work == 1 {
                "1 does".to_owned()
            } else {
                format!("{} do", facts.unexplained_work)
            },
            top_unexplained(evidence, unexplained_risks)
        ),
        Verdict::NotAligned if !facts.signals.is_empty() => match facts.signals {
            [only] if only.field == "justification" => format!(
                "The justification (the user's text) contains wording aimed at an assessor ({}), so it {none}.",
                only.signals.join(", ")
            ),
            _ => format!(
                "Text from the audited identity's records contains wording aimed at an assessor ({}), so the justification {none}.",
                facts
                    .signals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        },
        Verdict::NotAligned if facts.insufficient => format!(
            "The justification (the user's text: \"{}\") says nothing about the work, so it {none}.",
            justification::excerpt(facts.justification, 120)
        ),
        Verdict::NotAligned if evidence.intents.is_empty() => format!(
            "The justification names no recognisable kind of work and {none}: {}.",
            top_unexplained(evidence, unexplained_risks)
        ),
        Verdict::NotAligned => format!(
            "The justification (recognised: {}) {none}: {}.",
            evidence.intents.join(", "),
            top_unexplained(evidence, unexplained_risks)
        ),
    };
    sentences.push(first);

    if let Some(top) = evidence.risk_findings.first() {
        let count = evidence.risk_findings.len();
        sentences.push(format!(
            "Most sensitive: {} ({}), {} risk, {}{}.",
            top.rule,
            describe(&OperationRef {
                operation: top.operation.clone(),
                resource: top.resource.clone(),
                count: 1,
                first: OffsetDateTime::UNIX_EPOCH
            }),
            top.risk,
            if top.explained {
                "explained"
            } else {
                "not explained"
            },
            if count > 1 {
                format!(
                    "; {} in the catalogue",
                    plural(count, "finding", "findings")
                )
            } else {
                String::new()
            }
        ));
    } else if facts.work > 0 {
        sentences.push("No operation is in the sensitive-operation catalogue.".to_owned());
    }

    if !flags.is_empty() {
        let names: Vec<String> = flags
            .iter()
            .map(|f| match f {
                Flag::ActivityTruncated if facts.truncated => {
                    format!(
                        "{f} (only {} of {} operations examined)",
                        facts.examined, facts.total
                    )
                }
                Flag::EvidenceIncomplete => format!("{f} ({} unread)", facts.unreadable),
                _ => f.to_string(),
            })
            .collect();
        sentences.push(format!("Flags: {}.", names.join(", ")));
    }
    sentences.join(" ")
}

/// The rationale's sentence about the behaviour baseline: how many operations were new to the
/// identity, or that the baseline is unavailable and why (the reason is our own text, never
/// log content).
pub(crate) fn baseline_sentence(baseline: &pim_domain::Baseline, first_time: usize) -> String {
    use pim_domain::BaselineStatus;
    match baseline.status {
        BaselineStatus::Unavailable => format!(
            " Behaviour baseline unavailable: {}.",
            baseline.reason.as_deref().unwrap_or("no reason recorded")
        ),
        BaselineStatus::Computed if first_time == 0 => format!(
            " Every operation had been performed by this identity in the {} days before.",
            baseline.days
        ),
        BaselineStatus::Computed => format!(
            " {first_time} operation{} never performed by this identity in the {} days before.",
            if first_time == 1 { " was" } else { "s were" },
            baseline.days
        ),
    }
}
