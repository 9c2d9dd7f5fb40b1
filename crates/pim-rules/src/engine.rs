//! The rules engine: from catalogue, vocabulary and justification checks to a verdict, a risk,
//! flags, evidence and a rationale.
//!
//! # Which operations are explained
//!
//! An operation is *explained* when the justification is usable (not
//! [insufficient](crate::justification::is_insufficient), no
//! [injection signal](crate::justification::injection_signals) in the justification or any other
//! untrusted field, see [`case_injection_signals`](crate::justification::case_injection_signals))
//! and one of:
//!
//! 1. it is elevation bookkeeping (the activation's own records, see
//!    [`catalogue::is_elevation_bookkeeping`]) — these
//!    are always explained and do not count as work;
//! 2. it only reads ([`catalogue::is_read_only`]): reading is the
//!    least an administrator does, so any usable justification explains it, wherever it happened;
//! 3. a recognised [intent](crate::vocabulary) explains it, **and**, when the justification names
//!    resources that appear in the activity, it touches one of them.
//!
//! An activation whose justification carries a ticket reference (`Activation::tickets`) is not
//! insufficient, unless ticket verification looked up every ticket it cites and none exists,
//! and the text without those references is insufficient: then the ticket was its only
//! substance (issue 14).
//!
//! # Verdict
//!
//! | condition (first that holds) | verdict |
//! |---|---|
//! | the pipeline marked the case unassessable | `unknown` (the reason is the assessment's `error`) |
//! | the pipeline counted operations but passed none | `unknown` |
//! | rows that could belong to the activation could not be read, and the verdict below would be `aligned` or `no_activity` | `unknown` (the error names the rows; `partial` and `not_aligned` stand, flagged) |
//! | no operations other than bookkeeping | `no_activity` |
//! | justification insufficient or injection suspected, or no operation explained | `not_aligned` |
//! | every operation explained | `aligned` |
//! | otherwise | `partial` |
//!
//! Flags, risk findings and evidence are computed from whatever operations exist, whatever the
//! verdict.
//!
//! # Risk
//!
//! Start at `low`, then raise (never lower) by each rule that applies:
//!
//! | rule | at least |
//! |---|---|
//! | catalogue finding, not explained | its catalogue risk |
//! | catalogue finding, explained | one level below its catalogue risk (`critical` → `high`, never below `low`) |
//! | `not_aligned` with operations | `medium` |
//! | `not_aligned` and an unexplained finding at `medium` or above | `high` |
//! | `partial` and any unexplained catalogue finding | `medium` |
//! | prompt injection suspected | `high` |
//! | insufficient justification with operations | `medium` |
//! | `unknown` | `medium` |
//! | an unexplained first-time operation (behaviour baseline) | `medium` |
//! | an unexplained first-time operation that is a catalogue finding at `medium` or above | `high` |
//!
//! A *first-time operation* is an operation of the window (not bookkeeping, not read-only)
//! whose operation name and resource type the identity never used in the baseline period
//! before the window ([`pim_domain::Baseline`], `--baseline-days`). The pipeline lists them;
//! the rules only judge them. An unavailable baseline raises nothing (nothing is known), and
//! the rationale says it is unavailable and why, so a quiet verdict is never read as "nothing
//! new".
//!
//! Then, once: a cited ticket found closed before the activation started (`ticket_closed`) or
//! not the activating identity's (`ticket_not_assigned`) raises the risk one level (`low` →
//! `medium` → `high` → `critical`), however many tickets do so.
//!
//! A "catalogue risk" is already one level lower for a failed operation (see [`catalogue`]). An
//! operation still in progress (`started`, `accepted`, `in_progress`) counts in full: it is
//! something the identity set in motion.
//!
//! # Flags
//!
//! | flag | when |
//! |---|---|
//! | `high_risk_operation` | any catalogue finding at `high` or `critical`, explained or not |
//! | `insufficient_justification` | see [`justification`] |
//! | `prompt_injection_suspected` | any injection signal in any untrusted field ([`justification::case_fields`]: justification, tickets, Entra's ticket fields, what the ticket systems returned, display name, UPN, role, scope, operation and resource names, ...) |
//! | `still_active` | the window's end reason is `still_active` |
//! | `assumed_window` | the window's end was assumed |
//! | `activity_truncated` | the pipeline says the list is incomplete, or fewer operations were passed than counted |
//! | `evidence_incomplete` | the pipeline passed rows that could belong to the activation but could not be read |
//! | `ticket_not_found` | a cited ticket's system answered that it does not exist |
//! | `ticket_closed` | a cited ticket was closed before the window started ([`TicketCheck::closed_before`](pim_domain::TicketCheck::closed_before)) |
//! | `ticket_not_assigned` | none of a found ticket's assignee, requester or caller is the identity by UPN or e-mail ([`TicketCheck::assignment`](pim_domain::TicketCheck::assignment)) |
//! | `ticket_unverified` | a cited ticket's lookup failed (its check gives the reason): never a silent pass |
//! | `first_time_operation` | the baseline was computed and at least one operation of the window is a first-time operation |
//!
//! # Evidence and rationale
//!
//! Evidence lists the intents, the named resources, explained and unexplained operations grouped
//! by (lower-cased operation, resource) with a count and the first time, ordered by first time,
//! and every catalogue finding (grouped the same way, most risky first). The rationale is one to
//! three sentences built only from these facts. It quotes the justification only when it is
//! insufficient, at most 120 characters, marked as the user's text, and never when injection is
//! suspected.
//!
//! # Where the rules live
//!
//! This module holds the rules' description and [`RulesEngine::assess`], which applies them
//! step by step. The verdict, risk and flag tables are in the crate's `policy` module, evidence
//! grouping in `evidence`, the rationale's sentences in `rationale`; `fast` and `bytes` only save
//! work (names looked up once per distinct name, word-at-a-time text checks) and never change a
//! result, which `engine/tests/reference.rs` checks against the rules applied per operation.

use std::borrow::Cow;
use std::sync::Arc;

use pim_domain::{Assessment, AssessorKind, Evidence, Risk};

use crate::bytes::{fingerprint, lowered};
use crate::catalogue;
pub use crate::evidence::resource_label;
use crate::evidence::{Judged, findings, group};
use crate::fast::OperationCache;
use crate::justification;
use crate::policy;
use crate::rationale::{Facts, rationale, unread_rows};
use crate::tickets::TicketFacts;
use crate::vocabulary;
use crate::{Case, RulesConfig};

/// The deterministic assessor. Cheap to share: it holds its configuration and a cache of what
/// the catalogue and vocabulary say about each operation name it has seen (shared by clones).
/// The cache only saves work: an assessment never depends on what was assessed before.
#[derive(Debug, Clone, Default)]
pub struct RulesEngine {
    config: RulesConfig,
    operations: Arc<OperationCache>,
}

impl RulesEngine {
    /// An engine with the given configuration.
    pub fn new(config: RulesConfig) -> Self {
        Self {
            config,
            operations: Arc::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RulesConfig {
        &self.config
    }

    /// Judges one case. Never fails and never panics: a case that cannot be judged gets verdict
    /// `unknown` with the reason in `error`. See the [module docs](self) for the rules.
    pub fn assess(&self, case: &Case<'_>) -> Assessment {
        let ops = self.operations.operations(case.activities);
        let mut judged: Vec<Judged<'_>> = Vec::with_capacity(case.activities.len());
        let activation = case.activation;
        let text = activation.justification.as_str();
        let signals = justification::case_injection_signals(case);
        let injection = !signals.is_empty();
        let has_ticket = activation.tickets.iter().any(|t| !t.trim().is_empty());
        let tickets = TicketFacts::of(activation);
        // A ticket reference is substance only while it may exist: one whose system said it
        // does not leaves the rest of the text to stand on its own (issue 14, item 3).
        let insufficient = if has_ticket {
            tickets.every_cited_missing
                && justification::is_insufficient_without(
                    text,
                    &activation.tickets,
                    &self.config.content_free_words,
                )
        } else {
            justification::is_insufficient_with(text, &self.config.content_free_words)
        };
        let usable = !injection && !insufficient;

        let intent_mask = vocabulary::intent_mask(text);
        let intents = vocabulary::intents_in(intent_mask);
        let named = vocabulary::named_resources(text, &activation.tickets, case.activities);

        judged.extend(
            case.activities
                .iter()
                .zip(&ops.of_activity)
                .map(|(activity, &op)| {
                    let facts = &ops.facts[op];
                    let bookkeeping = facts.bookkeeping;
                    let explained = bookkeeping
                        || (usable
                            && (facts.read_only
                                || (facts.explained_by & intent_mask != 0
                                    && (named.is_empty()
                                        || vocabulary::touches_any(activity, &named)))));
                    let entry = if facts.arm {
                        facts.arm_entry
                    } else {
                        catalogue::classify_directory(&facts.normalised, activity, &self.config)
                    };
                    let resource = resource_label(activity);
                    let resource_key = match &resource {
                        Some(Cow::Borrowed(r)) => lowered(r),
                        Some(Cow::Owned(r)) => Cow::Owned(r.to_lowercase()),
                        None => Cow::Borrowed(""),
                    };
                    Judged {
                        activity,
                        op,
                        resource_print: fingerprint(&resource_key),
                        finding: entry.map(|e| catalogue::occurrence(e, activity.status)),
                        explained,
                        bookkeeping,
                        resource,
                        resource_key,
                    }
                }),
        );
        let work = judged.iter().filter(|j| !j.bookkeeping).count();
        let explained_work = judged
            .iter()
            .filter(|j| !j.bookkeeping && j.explained)
            .count();
        let unexplained_work = work - explained_work;

        let (verdict, error) = policy::verdict(case, work, explained_work, usable);
        let mut risk = policy::risk(
            verdict,
            judged.iter().map(|j| (j.finding, j.explained)),
            injection,
            insufficient && work > 0,
        );
        // First-time operations (issue 14): only work counts, never bookkeeping or reads.
        let first_time: Vec<&Judged<'_>> = match case.baseline {
            Some(b) if !b.first_time_operations.is_empty() => judged
                .iter()
                .filter(|j| {
                    !j.bookkeeping && !ops.facts[j.op].read_only && b.is_first_time(j.activity)
                })
                .collect(),
            _ => Vec::new(),
        };
        risk = policy::first_time_risk(risk, first_time.iter().map(|j| (j.finding, j.explained)));
        if tickets.raises_risk() {
            risk = risk.raised();
        }
        let truncated = case.truncated || case.activities.len() < case.activity_total;
        let high_risk = judged
            .iter()
            .any(|j| j.finding.is_some_and(|f| f.risk >= Risk::High));
        let mut flags = policy::flags(
            case,
            high_risk,
            insufficient,
            injection,
            truncated,
            !first_time.is_empty(),
        );
        policy::ticket_flags(&mut flags, &tickets);

        let (explained, _) = group(&judged, &ops, true);
        let (unexplained, unexplained_risks) = group(&judged, &ops, false);
        let evidence = Evidence {
            intents: intents.iter().map(|i| i.name.to_owned()).collect(),
            named_resources: named,
            explained,
            unexplained,
            risk_findings: findings(&judged, &ops),
        };

        let facts = Facts {
            verdict,
            work,
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
        let mut rationale = rationale(&facts, &evidence, &flags, &unexplained_risks);
        if let Some(sentence) = tickets.sentence() {
            rationale.push(' ');
            rationale.push_str(&sentence);
        }
        if let Some(b) = case.baseline {
            rationale.push_str(&crate::rationale::baseline_sentence(b, first_time.len()));
        }

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
}

#[cfg(test)]
pub(crate) mod tests;
