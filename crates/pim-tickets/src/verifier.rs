//! The per-scan verifier: which tickets each activation cites, each looked up once, at most a
//! few at a time, the answers recorded against every activation that cites them.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use pim_domain::{Activation, TicketCheck, TicketOrigin, TicketStatus, TicketSystemKind};

use crate::reference::{Route, Routing, route};
use crate::{TicketLookup, TicketSystem};

/// Lookups in flight at once by default: ticket systems throttle integration users hard
/// (ServiceNow rate-limit rules, Jira's burst limits), and one scan rarely cites many.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// One reference an activation cites, before routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitedTicket {
    /// The reference as cited.
    pub reference: String,
    /// Where it was cited.
    pub origin: TicketOrigin,
    /// Entra's `TicketSystem` text, for a reference from Entra's field.
    pub system_hint: Option<String>,
}

/// The references of one activation: Entra's own ticket number first (reference §11.4: prefer
/// it over text found in the justification), then those of the justification not already
/// cited. Entra's field is free text: the references in it are found with the justification's
/// parser, and a number in it that holds none is still listed, as it was typed, so the report
/// can say it was not checked.
pub fn cited_tickets(activation: &Activation) -> Vec<CitedTicket> {
    let mut out: Vec<CitedTicket> = Vec::new();
    if let Some(info) = &activation.ticket_info
        && let Some(number) = info.number.as_deref().filter(|n| !n.trim().is_empty())
    {
        let hint = info.system.clone();
        let found = pim_correlate::extract_tickets(number);
        if found.is_empty() {
            out.push(CitedTicket {
                reference: pim_domain::text::clip(number.trim(), 80),
                origin: TicketOrigin::Entra,
                system_hint: hint.clone(),
            });
        }
        for reference in found {
            out.push(CitedTicket {
                reference,
                origin: TicketOrigin::Entra,
                system_hint: hint.clone(),
            });
        }
    }
    for t in &activation.tickets {
        if !out.iter().any(|c| c.reference.eq_ignore_ascii_case(t)) {
            out.push(CitedTicket {
                reference: t.clone(),
                origin: TicketOrigin::Justification,
                system_hint: None,
            });
        }
    }
    out
}

/// What one [`TicketVerifier::verify`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Distinct tickets looked up (each once, however many activations cite it).
    pub lookups: usize,
    /// Of those, how many failed (`unverified`).
    pub failed: usize,
    /// References no configured system owns (`not_checked`).
    pub not_checked: usize,
}

/// Routes each cited reference to the system that owns it and looks it up, once per scan.
///
/// ServiceNow numbers (by prefix) go to ServiceNow; Jira keys only when their project is one
/// of the configured projects (or Entra's ticket-system field names Jira). Each distinct
/// (system, number) is looked up once per [`verify`](Self::verify) call, whatever the number
/// of activations that cite it, with at most `concurrency` lookups in flight.
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    servicenow: Option<Arc<dyn TicketSystem>>,
    jira: Option<Arc<dyn TicketSystem>>,
    jira_projects: Vec<String>,
    concurrency: usize,
}

impl TicketVerifier {
    /// A verifier over the configured systems; `jira_projects` are the project keys that are
    /// Jira's (`PIM_JIRA_PROJECTS`).
    pub fn new(
        servicenow: Option<Arc<dyn TicketSystem>>,
        jira: Option<Arc<dyn TicketSystem>>,
        jira_projects: Vec<String>,
    ) -> Self {
        Self {
            servicenow,
            jira,
            jira_projects,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// At most `n` lookups in flight (at least 1; default [`DEFAULT_CONCURRENCY`]).
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The configured systems, ServiceNow first (for `--check`).
    pub fn systems(&self) -> Vec<Arc<dyn TicketSystem>> {
        self.servicenow.iter().chain(&self.jira).cloned().collect()
    }

    fn system(&self, kind: TicketSystemKind) -> Option<&Arc<dyn TicketSystem>> {
        match kind {
            TicketSystemKind::Servicenow => self.servicenow.as_ref(),
            TicketSystemKind::Jira => self.jira.as_ref(),
        }
    }

    /// The checks of every activation, in activation order: one [`TicketCheck`] per cited
    /// reference ([`cited_tickets`]), never fewer.
    pub async fn verify(&self, activations: &[Activation]) -> (Vec<Vec<TicketCheck>>, VerifyStats) {
        let routing = Routing {
            servicenow: self.servicenow.is_some(),
            jira_projects: self.jira.as_ref().map(|_| self.jira_projects.as_slice()),
        };
        let routed: Vec<Vec<(CitedTicket, Route)>> = activations
            .iter()
            .map(|a| {
                cited_tickets(a)
                    .into_iter()
                    .map(|c| {
                        let r = route(&c.reference, c.system_hint.as_deref(), routing);
                        (c, r)
                    })
                    .collect()
            })
            .collect();

        // The scan's cache: each distinct (system, number) once.
        let mut wanted: Vec<(TicketSystemKind, String)> = Vec::new();
        for (_, r) in routed.iter().flatten() {
            if let Some((kind, number)) = r.target()
                && !wanted.iter().any(|(k, n)| *k == kind && n == number)
            {
                wanted.push((kind, number.to_owned()));
            }
        }
        // The futures are made up front from owned keys: a closure over borrowed keys inside
        // the stream would leave the scan's future not `Send` (a higher-ranked lifetime
        // limitation of the compiler), and embedders spawn scans on thread pools.
        let lookups: Vec<_> = wanted
            .into_iter()
            .map(|(kind, number)| {
                let system = self.system(kind).cloned();
                async move {
                    let answer = match system {
                        Some(s) => s.lookup(&number).await,
                        None => TicketLookup::Failed(format!("{} is not configured", kind.label())),
                    };
                    ((kind, number), answer)
                }
            })
            .collect();
        let answers: HashMap<(TicketSystemKind, String), TicketLookup> =
            futures_util::stream::iter(lookups)
                .buffer_unordered(self.concurrency)
                .collect()
                .await;

        let mut stats = VerifyStats {
            lookups: answers.len(),
            failed: answers
                .values()
                .filter(|a| matches!(a, TicketLookup::Failed(_)))
                .count(),
            not_checked: 0,
        };
        let checks = routed
            .into_iter()
            .map(|cited| {
                cited
                    .into_iter()
                    .map(|(c, r)| {
                        let Some((kind, number)) = r.target() else {
                            stats.not_checked += 1;
                            let Route::Unrouted(why) = r else {
                                return TicketCheck::not_checked(c.reference, c.origin, "");
                            };
                            return TicketCheck::not_checked(c.reference, c.origin, why);
                        };
                        let answer = answers
                            .get(&(kind, number.to_owned()))
                            .cloned()
                            .unwrap_or_else(|| TicketLookup::Failed("not looked up".to_owned()));
                        let (status, evidence, reason) = match answer {
                            TicketLookup::Found(e) => (TicketStatus::Found, Some(*e), None),
                            TicketLookup::NotFound(why) => {
                                (TicketStatus::NotFound, None, Some(why))
                            }
                            TicketLookup::Failed(why) => {
                                (TicketStatus::Unverified, None, Some(why))
                            }
                        };
                        TicketCheck {
                            reference: c.reference,
                            origin: c.origin,
                            system: Some(kind),
                            status,
                            evidence,
                            reason,
                        }
                    })
                    .collect()
            })
            .collect();
        (checks, stats)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use pim_domain::{TicketEvidence, TicketInfo};

    use super::*;

    /// Answers from a table and records every lookup.
    #[derive(Debug)]
    struct Table {
        kind: TicketSystemKind,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TicketSystem for Table {
        fn kind(&self) -> TicketSystemKind {
            self.kind
        }
        async fn lookup(&self, number: &str) -> TicketLookup {
            self.asked.lock().unwrap().push(number.to_owned());
            match number {
                "INC0001" | "OPS-1" => TicketLookup::Found(Box::new(TicketEvidence {
                    number: number.to_owned(),
                    ..TicketEvidence::default()
                })),
                "INC0404" => TicketLookup::NotFound("none".into()),
                _ => TicketLookup::Failed("HTTP 500".into()),
            }
        }
        async fn probe(&self) -> Result<String, String> {
            Ok("ok".into())
        }
    }

    fn activation(tickets: &[&str], info: Option<TicketInfo>) -> Activation {
        let mut a: Activation = serde_json::from_value(serde_json::json!({
            "id": "a", "activated_at": "2026-11-30T08:00:00Z",
            "principal": {"upn": "jane@contoso.com", "object_id": null, "display_name": null},
            "role": {"name": "Contributor", "id": null, "kind": "azure_resource"},
            "scope": {"kind": "unknown", "id": null, "display_name": null},
            "justification": "", "tickets": [],
            "window": {"start": "2026-11-30T08:00:00Z", "end": "2026-11-30T09:00:00Z", "end_reason": "expired"},
            "request_id": null, "correlation_id": null
        }))
        .unwrap();
        a.tickets = tickets.iter().map(|t| (*t).to_owned()).collect();
        a.ticket_info = info;
        a
    }

    #[tokio::test]
    async fn each_ticket_is_looked_up_once_and_every_reference_gets_a_check() {
        let sn = Arc::new(Table {
            kind: TicketSystemKind::Servicenow,
            asked: Mutex::default(),
        });
        let jira = Arc::new(Table {
            kind: TicketSystemKind::Jira,
            asked: Mutex::default(),
        });
        let verifier =
            TicketVerifier::new(Some(sn.clone()), Some(jira.clone()), vec!["OPS".to_owned()])
                .with_concurrency(2);
        let activations = vec![
            activation(&["INC0001", "OPS-1", "SR-5521"], None),
            activation(&["INC0001", "INC0404"], None),
            activation(
                &["INC0500"],
                Some(TicketInfo {
                    number: Some("see the change board".into()),
                    system: Some("ServiceNow".into()),
                }),
            ),
        ];
        let (checks, stats) = verifier.verify(&activations).await;
        let mut asked = sn.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked, ["INC0001", "INC0404", "INC0500"]);
        assert_eq!(*jira.asked.lock().unwrap(), ["OPS-1"]);
        assert_eq!(
            stats,
            VerifyStats {
                lookups: 4,
                failed: 1,
                not_checked: 2
            }
        );
        let statuses: Vec<Vec<TicketStatus>> = checks
            .iter()
            .map(|c| c.iter().map(|c| c.status).collect())
            .collect();
        use TicketStatus::*;
        assert_eq!(
            statuses,
            vec![
                vec![Found, Found, NotChecked],
                vec![Found, NotFound],
                vec![NotChecked, Unverified]
            ]
        );
        assert_eq!(checks[2][0].origin, TicketOrigin::Entra);
        assert_eq!(checks[2][0].reference, "see the change board");
        assert!(
            checks[0][2]
                .reason
                .as_deref()
                .unwrap()
                .contains("PIM_JIRA_PROJECTS")
        );
        assert_eq!(checks[2][1].reason.as_deref(), Some("HTTP 500"));
    }

    #[test]
    fn entra_references_come_first_and_are_not_repeated() {
        let a = activation(
            &["INC0001", "OPS-1"],
            Some(TicketInfo {
                number: Some("INC0001".into()),
                system: None,
            }),
        );
        let cited = cited_tickets(&a);
        assert_eq!(cited.len(), 2);
        assert_eq!(cited[0].origin, TicketOrigin::Entra);
        assert_eq!(cited[1].reference, "OPS-1");
    }
}
