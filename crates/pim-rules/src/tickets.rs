//! What the cited tickets' checks do to an assessment (issue 14, item 3), as facts the engine
//! applies: see the ticket rows of the [engine docs](crate::engine).

use pim_domain::{Activation, Assignment, TicketStatus};

/// The ticket facts of one activation, from its [`ticket_checks`](Activation::ticket_checks).
#[derive(Debug, Default)]
pub(crate) struct TicketFacts {
    /// References the owning system said do not exist.
    pub(crate) not_found: Vec<String>,
    /// Why each found ticket counts as closed before the activation started.
    pub(crate) closed: Vec<String>,
    /// Why each found ticket is not the activating identity's.
    pub(crate) not_assigned: Vec<String>,
    /// References whose lookup failed.
    pub(crate) unverified: Vec<String>,
    /// The justification cites tickets and every one of them was looked up and does not exist.
    pub(crate) every_cited_missing: bool,
}

impl TicketFacts {
    pub(crate) fn of(activation: &Activation) -> Self {
        let mut facts = Self::default();
        let checks = &activation.ticket_checks;
        for c in checks {
            match c.status {
                TicketStatus::NotFound => facts.not_found.push(c.reference.clone()),
                TicketStatus::Unverified => facts.unverified.push(c.reference.clone()),
                TicketStatus::Found => {
                    if let Some(why) = c.closed_before(activation.window.start) {
                        facts.closed.push(why);
                    }
                    if let Some(Assignment::NoMatch(why)) = c.assignment(&activation.principal) {
                        facts.not_assigned.push(why);
                    }
                }
                TicketStatus::NotChecked => {}
            }
        }
        facts.every_cited_missing = !activation.tickets.is_empty()
            && activation.tickets.iter().all(|t| {
                checks.iter().any(|c| {
                    c.reference.eq_ignore_ascii_case(t) && c.status == TicketStatus::NotFound
                })
            });
        facts
    }

    /// Whether a found ticket raises the risk one level: closed before the start, or not the
    /// identity's.
    pub(crate) fn raises_risk(&self) -> bool {
        !self.closed.is_empty() || !self.not_assigned.is_empty()
    }

    /// One sentence for the rationale, naming only the references (which are parsed, never
    /// free text) and the rules' own words; `None` when the tickets raise nothing.
    pub(crate) fn sentence(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        if !self.not_found.is_empty() {
            parts.push(format!("{} does not exist", self.not_found.join(", ")));
        }
        if !self.closed.is_empty() {
            parts.push(format!(
                "{} closed before the activation started",
                self.closed.len()
            ));
        }
        if !self.not_assigned.is_empty() {
            parts.push(format!(
                "{} not assigned to, requested or raised by this identity",
                self.not_assigned.len()
            ));
        }
        if !self.unverified.is_empty() {
            parts.push(format!(
                "{} could not be verified",
                self.unverified.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "Cited tickets: {} (see the ticket checks).",
                parts.join("; ")
            )
        })
    }
}
