//! Policy: the verdict, risk and flag tables of the [engine docs](crate::engine), as code.

use pim_domain::{EndReason, Flag, Risk, Verdict};

use crate::Case;
use crate::catalogue::{self, CatalogueMatch};
use crate::rationale::unread_rows;

/// The verdict table of the engine docs, and the reason when it is `unknown`. `work` counts the
/// operations other than bookkeeping, `explained_work` those of them that are explained, and
/// `usable` says whether the justification is (neither insufficient nor suspected of injection).
pub(crate) fn verdict(
    case: &Case<'_>,
    work: usize,
    explained_work: usize,
    usable: bool,
) -> (Verdict, Option<String>) {
    let unexplained_work = work - explained_work;
    let mut error = case.unassessable.clone();
    let verdict = if error.is_some() {
        Verdict::Unknown
    } else if case.activities.is_empty() && case.activity_total > 0 {
        error = Some(format!(
            "the window held {} operations but none were passed for assessment",
            case.activity_total
        ));
        Verdict::Unknown
    } else if work == 0 {
        Verdict::NoActivity
    } else if !usable || explained_work == 0 {
        Verdict::NotAligned
    } else if unexplained_work == 0 {
        Verdict::Aligned
    } else {
        Verdict::Partial
    };
    let verdict = unread_evidence(verdict, &mut error, case.unreadable);
    (verdict, error)
}

/// The flag table of the engine docs, sorted. `high_risk` says whether any catalogue finding is
/// at `high` or above, `truncated` whether the operations passed are incomplete.
pub(crate) fn flags(
    case: &Case<'_>,
    high_risk: bool,
    insufficient: bool,
    injection: bool,
    truncated: bool,
    first_time: bool,
) -> Vec<Flag> {
    let activation = case.activation;
    let mut flags = Vec::new();
    if high_risk {
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
    if truncated {
        flags.push(Flag::ActivityTruncated);
    }
    if !case.unreadable.is_empty() {
        flags.push(Flag::EvidenceIncomplete);
    }
    if first_time {
        flags.push(Flag::FirstTimeOperation);
    }
    flags.sort_unstable();
    flags.dedup();
    flags
}

/// The ticket rows of the flag table.
pub(crate) fn ticket_flags(flags: &mut Vec<Flag>, tickets: &crate::tickets::TicketFacts) {
    let wanted = [
        (!tickets.not_found.is_empty(), Flag::TicketNotFound),
        (!tickets.closed.is_empty(), Flag::TicketClosed),
        (!tickets.not_assigned.is_empty(), Flag::TicketNotAssigned),
        (!tickets.unverified.is_empty(), Flag::TicketUnverified),
    ];
    flags.extend(wanted.into_iter().filter(|(on, _)| *on).map(|(_, f)| f));
    flags.sort_unstable();
    flags.dedup();
}

/// Unread evidence is never evidence of innocence: with rows that could belong to the activation
/// unread, `aligned` and `no_activity` become `unknown` (the error says how many rows, and which);
/// `partial` and `not_aligned` stand, since what was read already falls short.
pub(crate) fn unread_evidence(
    verdict: Verdict,
    error: &mut Option<String>,
    unreadable: &[pim_domain::DataProblem],
) -> Verdict {
    if unreadable.is_empty() || !matches!(verdict, Verdict::Aligned | Verdict::NoActivity) {
        return verdict;
    }
    const SHOWN: usize = 3;
    let listed: Vec<String> = unreadable
        .iter()
        .take(SHOWN)
        .map(|p| p.to_string())
        .collect();
    let more = if unreadable.len() > SHOWN {
        format!("; and {} more", unreadable.len() - SHOWN)
    } else {
        String::new()
    };
    *error = Some(format!(
        "evidence incomplete: {} that could belong to this activation could not be read, so the {} verdict cannot be trusted ({}{more})",
        unread_rows(unreadable),
        verdict,
        listed.join("; ")
    ));
    Verdict::Unknown
}

/// The risk table of the module docs.
/// `judged` gives each operation's catalogue finding and whether it is explained.
pub(crate) fn risk(
    verdict: Verdict,
    judged: impl Iterator<Item = (Option<CatalogueMatch>, bool)>,
    injection: bool,
    insufficient_with_work: bool,
) -> Risk {
    let mut risk = Risk::Low;
    let mut unexplained_finding: Option<Risk> = None;
    for (finding, explained) in judged {
        let Some(f) = finding else { continue };
        if explained {
            risk = risk.max(catalogue::lower(f.risk));
        } else {
            risk = risk.max(f.risk);
            unexplained_finding = unexplained_finding.max(Some(f.risk));
        }
    }
    match verdict {
        Verdict::NotAligned => {
            risk = risk.max(Risk::Medium);
            if unexplained_finding.is_some_and(|r| r >= Risk::Medium) {
                risk = risk.max(Risk::High);
            }
        }
        Verdict::Partial if unexplained_finding.is_some() => risk = risk.max(Risk::Medium),
        Verdict::Unknown => risk = risk.max(Risk::Medium),
        _ => {}
    }
    if injection {
        risk = risk.max(Risk::High);
    }
    if insufficient_with_work {
        risk = risk.max(Risk::Medium);
    }
    risk
}

/// The baseline rows of the risk table: an operation the identity never performed in the
/// baseline period and that the justification does not explain raises the risk to at least
/// `medium`, and to at least `high` when it is also a catalogue finding at `medium` or above.
/// An explained first-time operation is flagged but raises nothing: the justification covers
/// it. `judged` gives, per first-time operation, its catalogue finding and whether it is
/// explained.
pub(crate) fn first_time_risk(
    risk: Risk,
    judged: impl Iterator<Item = (Option<CatalogueMatch>, bool)>,
) -> Risk {
    let mut risk = risk;
    for (finding, explained) in judged {
        if explained {
            continue;
        }
        risk = risk.max(Risk::Medium);
        if finding.is_some_and(|f| f.risk >= Risk::Medium) {
            risk = risk.max(Risk::High);
        }
    }
    risk
}
