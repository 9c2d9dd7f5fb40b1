//! `pim-batch history`: what the state store remembers, per activation and per identity.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pim_core::domain::text::log_field;
use pim_report::escape::md_cell;
use pim_state::{Store, StoredActivation};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::args::{Format, HistoryArgs};
use pim_core::domain::timestamp::format_utc;

/// One activation of the period, as history lists it.
#[derive(Debug, Serialize)]
struct Entry {
    id: String,
    activated_at: String,
    principal: String,
    role: String,
    scope: String,
    verdict: &'static str,
    risk: &'static str,
    flags: Vec<&'static str>,
    state: &'static str,
    revision: u32,
    is_finding: bool,
}

/// Per identity: activations, findings and the roles used.
#[derive(Debug, Default, Serialize)]
struct Identity {
    activations: usize,
    findings: usize,
    roles: Vec<String>,
}

#[derive(Debug, Serialize)]
struct History {
    since: String,
    until: String,
    user: Option<String>,
    activations: Vec<Entry>,
    identities: BTreeMap<String, Identity>,
}

fn entry(s: &StoredActivation) -> Entry {
    let a = &s.report;
    Entry {
        id: a.id.clone(),
        activated_at: format_utc(a.activated_at),
        principal: a.principal.label().to_owned(),
        role: a.role.name.clone(),
        scope: a.scope.label(),
        verdict: a.assessment.verdict.as_str(),
        risk: a.assessment.risk.as_str(),
        flags: a.assessment.flags.iter().map(|f| f.as_str()).collect(),
        state: s.state.as_str(),
        revision: s.revision,
        is_finding: s.is_finding,
    }
}

fn build(
    stored: &[StoredActivation],
    since: OffsetDateTime,
    until: OffsetDateTime,
    user: Option<&str>,
) -> History {
    let mut identities: BTreeMap<String, Identity> = BTreeMap::new();
    for s in stored {
        let who = identities
            .entry(s.report.principal.label().to_owned())
            .or_default();
        who.activations += 1;
        who.findings += usize::from(s.is_finding);
        if !who.roles.contains(&s.report.role.name) {
            who.roles.push(s.report.role.name.clone());
        }
    }
    for who in identities.values_mut() {
        who.roles.sort();
    }
    History {
        since: format_utc(since),
        until: format_utc(until),
        user: user.map(str::to_owned),
        activations: stored.iter().map(entry).collect(),
        identities,
    }
}

/// Renders the history of the last `args.days` days before `now`.
pub fn render(store: &Store, args: &HistoryArgs, now: OffsetDateTime) -> anyhow::Result<String> {
    let since = now - Duration::days(i64::from(args.days));
    let until = now + Duration::seconds(1);
    let stored = store.activations_between(since, until, args.user.as_deref())?;
    let history = build(&stored, since, now, args.user.as_deref());
    Ok(match args.format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&history)?;
            text.push('\n');
            text
        }
        Format::Markdown => markdown(&history),
    })
}

/// The Markdown form: every name is untrusted text, so each goes through the same cell
/// escaping as the report (no links, no HTML, no table breaks).
fn markdown(h: &History) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# PIM activation history\n");
    let _ = writeln!(
        out,
        "{} to {}{}: {} activations, {} identities.\n",
        h.since,
        h.until,
        h.user
            .as_deref()
            .map(|u| format!(", identity {}", md_cell(&log_field(u, 200), 200)))
            .unwrap_or_default(),
        h.activations.len(),
        h.identities.len()
    );
    let _ = writeln!(out, "## Per identity\n");
    let _ = writeln!(out, "| Identity | Activations | Findings | Roles used |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (who, i) in &h.identities {
        let roles: Vec<String> = i.roles.iter().map(|r| md_cell(r, 80)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            md_cell(who, 120),
            i.activations,
            i.findings,
            roles.join(", ")
        );
    }
    let _ = writeln!(out, "\n## Activations\n");
    let _ = writeln!(
        out,
        "| Activated | Identity | Role | Scope | Verdict | Risk | Flags | State | Revision |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for e in &h.activations {
        let flags = if e.flags.is_empty() {
            "—".to_owned()
        } else {
            e.flags.join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.activated_at,
            md_cell(&e.principal, 120),
            md_cell(&e.role, 80),
            md_cell(&e.scope, 80),
            e.verdict,
            e.risk,
            flags,
            e.state,
            e.revision
        );
    }
    out
}
