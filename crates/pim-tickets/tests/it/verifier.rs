//! The verifier over both real adapters and the fake.

use std::sync::Arc;

use pim_domain::{Activation, TicketInfo, TicketOrigin, TicketStatus, TicketSystemKind};
use pim_testkit::{FakeIssue, FakeRecord, FakeUser, TicketFailure, TicketFake};
use pim_tickets::{TicketSystem, TicketVerifier};

use crate::support::{jira, servicenow};

fn activation(id: &str, tickets: &[&str]) -> Activation {
    let mut a: Activation = serde_json::from_value(serde_json::json!({
        "id": id, "activated_at": "2026-11-30T08:00:00Z",
        "principal": {"upn": "jane@contoso.com", "object_id": null, "display_name": null},
        "role": {"name": "Contributor", "id": null, "kind": "azure_resource"},
        "scope": {"kind": "unknown", "id": null, "display_name": null},
        "justification": tickets.join(" "), "tickets": [],
        "window": {"start": "2026-11-30T08:00:00Z", "end": "2026-11-30T09:00:00Z", "end_reason": "expired"},
        "request_id": null, "correlation_id": null
    }))
    .unwrap();
    a.tickets = tickets.iter().map(|t| (*t).to_owned()).collect();
    a
}

#[tokio::test]
async fn each_ticket_once_per_scan_and_failures_recorded_against_every_citation() {
    let fake = TicketFake::start().await;
    fake.add_record(FakeRecord {
        number: "INC0000001".into(),
        active: true,
        assigned_to: Some(FakeUser::new("Jane Doe", "jane@contoso.com")),
        ..FakeRecord::default()
    })
    .add_issue(FakeIssue {
        key: "OPS-1".into(),
        category: "new".into(),
        ..FakeIssue::default()
    })
    .fail_always(Some("CHG0000500"), TicketFailure::Forbidden);
    let sn: Arc<dyn TicketSystem> = Arc::new(servicenow(&fake));
    let jira: Arc<dyn TicketSystem> = Arc::new(jira(&fake));
    let verifier = TicketVerifier::new(Some(sn), Some(jira), vec!["OPS".into()]);

    let mut with_entra = activation("c", &["CHG0000500"]);
    with_entra.ticket_info = Some(TicketInfo {
        number: Some("OPS-1".into()),
        system: Some("Jira".into()),
    });
    let activations: Vec<Activation> = (0..20)
        .map(|i| activation(&format!("a{i}"), &["INC0000001", "OPS-1", "SR-5521"]))
        .chain([activation("b", &["INC0000404"]), with_entra])
        .collect();
    let (checks, stats) = verifier.verify(&activations).await;

    assert_eq!(fake.lookups_of("INC0000001"), 1);
    assert_eq!(fake.lookups_of("OPS-1"), 1);
    assert_eq!(fake.lookups_of("INC0000404"), 1);
    assert_eq!(fake.lookups_of("CHG0000500"), 1, "a 403 is not retried");
    assert_eq!(fake.requests().len(), 4, "SR-5521 is never looked up");
    assert_eq!((stats.lookups, stats.failed, stats.not_checked), (4, 1, 20));

    assert_eq!(checks.len(), activations.len());
    for c in &checks[..20] {
        let s: Vec<TicketStatus> = c.iter().map(|c| c.status).collect();
        assert_eq!(
            s,
            [
                TicketStatus::Found,
                TicketStatus::Found,
                TicketStatus::NotChecked
            ]
        );
        assert_eq!(c[1].system, Some(TicketSystemKind::Jira));
    }
    assert_eq!(checks[20][0].status, TicketStatus::NotFound);
    let entra = &checks[21];
    assert_eq!(entra[0].origin, TicketOrigin::Entra);
    assert_eq!(entra[0].status, TicketStatus::Found);
    assert_eq!(entra[1].status, TicketStatus::Unverified);
    assert!(entra[1].reason.as_deref().unwrap().contains("403"));
}
