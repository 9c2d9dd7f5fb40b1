//! Tickets cited by an activation, and what the ticket systems said about them (issue 14).
//!
//! An activation cites tickets in two places: its justification (free text, parsed into
//! [`Activation::tickets`](crate::Activation::tickets)) and Entra PIM's own ticket fields
//! ([`TicketInfo`], `TicketNumber` / `TicketSystem` in the audit record; free text too). When
//! ticket verification is configured, each reference is looked up in the system that owns it
//! and the answer is kept as a [`TicketCheck`]: found (with its [`TicketEvidence`]), not found,
//! unverified (the lookup failed, with the reason), or not checked (no configured system owns
//! that kind of number, with the reason).
//!
//! Everything a ticket system returns is *untrusted text* like the justification: the people
//! who can write a ticket are not the auditors. Renderers escape it, the rules scan it for
//! prompt injection, and the model sees it only quoted inside its data block.
//!
//! The two judgements the rules make from a check are pure functions here, so the rules engine,
//! the Markdown and the tests read one definition: [`TicketCheck::closed_before`] and
//! [`TicketCheck::assignment`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Principal, string_enum};

/// The ticket system that owns a reference.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketSystemKind {
    /// ServiceNow, through its Table API (`INC`, `CHG`, `RITM`, `REQ`, `SCTASK`, `PRB`, `CTASK`,
    /// `TASK` numbers).
    Servicenow,
    /// Jira Cloud (REST v3) or Data Center (REST v2): keys of the configured projects.
    Jira,
}

string_enum!(TicketSystemKind, "ticket system", {
    Servicenow => "servicenow",
    Jira => "jira",
});

impl TicketSystemKind {
    /// The product name, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Servicenow => "ServiceNow",
            Self::Jira => "Jira",
        }
    }
}

/// Where an activation cited a ticket.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketOrigin {
    /// Found in the justification text.
    Justification,
    /// Entra PIM's own ticket number field (reference §11.4).
    Entra,
}

string_enum!(TicketOrigin, "ticket origin", {
    Justification => "justification",
    Entra => "entra",
});

/// Entra PIM's own ticket fields of an activation request ("Require ticket information on
/// activation"): both free text, typed by the person activating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketInfo {
    /// `TicketNumber` as entered.
    pub number: Option<String>,
    /// `TicketSystem` as entered.
    pub system: Option<String>,
}

impl TicketInfo {
    /// Whether either field holds any text.
    pub fn is_empty(&self) -> bool {
        self.number.as_deref().is_none_or(|s| s.trim().is_empty())
            && self.system.as_deref().is_none_or(|s| s.trim().is_empty())
    }
}

/// What a lookup of one reference came to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// The system returned the ticket; its evidence is recorded.
    Found,
    /// The system answered that no such ticket exists (flag `ticket_not_found`).
    NotFound,
    /// The lookup failed: authentication, permission, throttling past the retry budget, server
    /// errors, a timeout, an unreadable answer (flag `ticket_unverified`; the reason says which).
    Unverified,
    /// No configured system owns this kind of reference (for example `SR-5521` when `SR` is not
    /// one of `PIM_JIRA_PROJECTS`); nothing was looked up and the reason says why.
    NotChecked,
}

string_enum!(TicketStatus, "ticket status", {
    Found => "found",
    NotFound => "not_found",
    Unverified => "unverified",
    NotChecked => "not_checked",
});

/// A person named on a ticket, as far as the system lets the integration user see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketPerson {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address (absent when the system hides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Login name: ServiceNow `user_name`, Jira Data Center `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The system's own id: ServiceNow `sys_id`, Jira Cloud `accountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl TicketPerson {
    /// Whether the person names `upn` by e-mail or login name (case-insensitively).
    pub fn matches(&self, upn: &str) -> bool {
        let upn = upn.trim();
        !upn.is_empty()
            && [self.email.as_deref(), self.user_name.as_deref()]
                .into_iter()
                .flatten()
                .any(|v| v.trim().eq_ignore_ascii_case(upn))
    }

    /// Whether anything that could identify the person (e-mail or login name) is visible.
    pub fn is_identifiable(&self) -> bool {
        self.email.as_deref().is_some_and(|s| !s.trim().is_empty())
            || self
                .user_name
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty())
    }

    /// A short label: the name, else the e-mail, else the login name, else the id.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .or(self.email.as_deref())
            .or(self.user_name.as_deref())
            .or(self.id.as_deref())
            .unwrap_or("unknown")
    }
}

/// What the ticket system returned for a ticket (issue 14: system, number, state, assignee,
/// requester or caller, opened and closed times, short description). Untrusted text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketEvidence {
    /// The ticket's number or key as the system spells it.
    pub number: String,
    /// The state as shown to people (ServiceNow's display value, Jira's status name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Whether the system counts the ticket as open: ServiceNow `active`, Jira's status
    /// category not `done`. `None` when the system did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// The assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<TicketPerson>,
    /// Who asked for the work: ServiceNow `requested_for`, else `opened_by`; Jira's reporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<TicketPerson>,
    /// ServiceNow `caller_id` (incidents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<TicketPerson>,
    /// When the ticket was opened (created).
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::optional_date_time")]
    pub opened_at: Option<OffsetDateTime>,
    /// When it was closed or resolved; `None` while open.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::schema::optional_date_time")]
    pub closed_at: Option<OffsetDateTime>,
    /// ServiceNow `short_description`, Jira `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
}

impl TicketEvidence {
    /// The people on the ticket, in the order assignee, requester, caller.
    pub fn people(&self) -> impl Iterator<Item = &TicketPerson> {
        [
            self.assignee.as_ref(),
            self.requester.as_ref(),
            self.caller.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// Whether a found ticket is this person's (see [`TicketCheck::assignment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The assignee, requester or caller matches the activating identity's UPN.
    Matches,
    /// None of them does; the text says why, for the flag's reason.
    NoMatch(String),
}

/// One cited reference and what its lookup came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketCheck {
    /// The reference as cited (normalised to upper case by the parser).
    pub reference: String,
    /// Where the activation cited it.
    pub origin: TicketOrigin,
    /// The system it was routed to; `None` when no configured system owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<TicketSystemKind>,
    /// What the lookup came to.
    pub status: TicketStatus,
    /// What the system returned, when the ticket was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<TicketEvidence>,
    /// Why the ticket is `not_found`, `unverified` or `not_checked`, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TicketCheck {
    /// A reference no configured system owns.
    pub fn not_checked(
        reference: impl Into<String>,
        origin: TicketOrigin,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            reference: reference.into(),
            origin,
            system: None,
            status: TicketStatus::NotChecked,
            evidence: None,
            reason: Some(reason.into()),
        }
    }

    /// Whether the ticket was found closed before `start` (the activation's start): closed
    /// with a closing time before it, or closed (not open) with no closing time visible, which
    /// cannot show it was still open. `None` unless the ticket was found; the text says why.
    ///
    /// ```
    /// use pim_domain::{TicketCheck, TicketEvidence, TicketOrigin, TicketStatus};
    /// use time::macros::datetime;
    ///
    /// let mut check = TicketCheck::not_checked("INC0042", TicketOrigin::Justification, "");
    /// check.status = TicketStatus::Found;
    /// check.evidence = Some(TicketEvidence {
    ///     number: "INC0042".into(),
    ///     open: Some(false),
    ///     closed_at: Some(datetime!(2026-11-01 10:00 UTC)),
    ///     ..TicketEvidence::default()
    /// });
    /// assert!(check.closed_before(datetime!(2026-11-02 08:00 UTC)).is_some());
    /// assert!(check.closed_before(datetime!(2026-11-01 09:00 UTC)).is_none());
    /// ```
    pub fn closed_before(&self, start: OffsetDateTime) -> Option<String> {
        let e = self
            .evidence
            .as_ref()
            .filter(|_| self.status == TicketStatus::Found)?;
        match e.closed_at {
            Some(closed) if closed < start => Some(format!(
                "{} was closed at {}, before the activation started at {}",
                self.reference,
                crate::timestamp::format_utc(closed),
                crate::timestamp::format_utc(start)
            )),
            Some(_) => None,
            None if e.open == Some(false) => Some(format!(
                "{} is closed{} and its closing time is not visible, so it cannot be shown open when the activation started",
                self.reference,
                e.state
                    .as_deref()
                    .map(|s| format!(" (state {:?})", crate::text::clip(s, 60)))
                    .unwrap_or_default()
            )),
            None => None,
        }
    }

    /// Whether the found ticket is the activating person's: its assignee, requester or caller
    /// matches the principal's UPN by e-mail or login name. `None` unless the ticket was found.
    pub fn assignment(&self, principal: &Principal) -> Option<Assignment> {
        let e = self
            .evidence
            .as_ref()
            .filter(|_| self.status == TicketStatus::Found)?;
        let Some(upn) = principal.upn.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Some(Assignment::NoMatch(format!(
                "{}: the activating identity has no UPN to compare with the ticket's people",
                self.reference
            )));
        };
        if e.people().any(|p| p.matches(upn)) {
            return Some(Assignment::Matches);
        }
        let people: Vec<&TicketPerson> = e.people().collect();
        let why = if people.is_empty() {
            "the ticket names no assignee, requester or caller".to_owned()
        } else if !people.iter().any(|p| p.is_identifiable()) {
            "no e-mail or login name of its assignee, requester or caller is visible to the integration user".to_owned()
        } else {
            "none of its assignee, requester or caller is that identity".to_owned()
        };
        Some(Assignment::NoMatch(format!(
            "{} is not {}'s: {why}",
            self.reference,
            crate::text::clip(upn, 120)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn found(evidence: TicketEvidence) -> TicketCheck {
        TicketCheck {
            reference: evidence.number.clone(),
            origin: TicketOrigin::Justification,
            system: Some(TicketSystemKind::Servicenow),
            status: TicketStatus::Found,
            evidence: Some(evidence),
            reason: None,
        }
    }

    fn person(email: Option<&str>, user: Option<&str>) -> TicketPerson {
        TicketPerson {
            name: Some("Jane Doe".into()),
            email: email.map(Into::into),
            user_name: user.map(Into::into),
            id: Some("abc".into()),
        }
    }

    fn jane() -> Principal {
        Principal {
            upn: Some("Jane@Contoso.com".into()),
            ..Principal::default()
        }
    }

    #[test]
    fn assignment_matches_by_email_or_login_name_case_insensitively() {
        let by_email = found(TicketEvidence {
            number: "INC1".into(),
            caller: Some(person(Some("jane@contoso.com"), None)),
            ..TicketEvidence::default()
        });
        assert_eq!(by_email.assignment(&jane()), Some(Assignment::Matches));
        let by_login = found(TicketEvidence {
            number: "INC1".into(),
            assignee: Some(person(None, Some("JANE@contoso.com"))),
            ..TicketEvidence::default()
        });
        assert_eq!(by_login.assignment(&jane()), Some(Assignment::Matches));
    }

    #[test]
    fn no_match_says_why() {
        let other = found(TicketEvidence {
            number: "INC1".into(),
            assignee: Some(person(Some("kim@contoso.com"), None)),
            ..TicketEvidence::default()
        });
        let Some(Assignment::NoMatch(why)) = other.assignment(&jane()) else {
            panic!("expected no match")
        };
        assert!(why.contains("none of its assignee"), "{why}");
        let hidden = found(TicketEvidence {
            number: "OPS-1".into(),
            assignee: Some(person(None, None)),
            ..TicketEvidence::default()
        });
        let Some(Assignment::NoMatch(why)) = hidden.assignment(&jane()) else {
            panic!("expected no match")
        };
        assert!(why.contains("visible"), "{why}");
        let nobody = found(TicketEvidence {
            number: "OPS-1".into(),
            ..TicketEvidence::default()
        });
        assert!(matches!(
            nobody.assignment(&Principal::default()),
            Some(Assignment::NoMatch(w)) if w.contains("no UPN")
        ));
    }

    #[test]
    fn only_found_tickets_are_judged() {
        let mut c = TicketCheck::not_checked("SR-1", TicketOrigin::Entra, "no system");
        assert_eq!(c.assignment(&jane()), None);
        assert_eq!(c.closed_before(datetime!(2026-01-01 0:00 UTC)), None);
        c.status = TicketStatus::NotFound;
        assert_eq!(c.assignment(&jane()), None);
    }

    #[test]
    fn closed_without_a_time_counts_as_closed_before() {
        let c = found(TicketEvidence {
            number: "INC1".into(),
            open: Some(false),
            state: Some("Closed".into()),
            ..TicketEvidence::default()
        });
        assert!(c.closed_before(datetime!(2026-01-01 0:00 UTC)).is_some());
        let open = found(TicketEvidence {
            number: "INC1".into(),
            open: Some(true),
            ..TicketEvidence::default()
        });
        assert!(open.closed_before(datetime!(2026-01-01 0:00 UTC)).is_none());
    }

    #[test]
    fn round_trips_as_json_with_snake_case_names() {
        let c = found(TicketEvidence {
            number: "INC1".into(),
            opened_at: Some(datetime!(2026-11-30 8:00 UTC)),
            ..TicketEvidence::default()
        });
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["status"], "found");
        assert_eq!(json["system"], "servicenow");
        assert_eq!(json["evidence"]["opened_at"], "2026-11-30T08:00:00Z");
        let back: TicketCheck = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
