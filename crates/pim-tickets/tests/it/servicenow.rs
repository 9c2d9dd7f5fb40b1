//! The ServiceNow adapter against the fake Table API.

use std::time::Duration;

use pim_http::secret::Secret;
use pim_testkit::{FakeAuth, FakeRecord, FakeUser, SERVICENOW_PASSWORD, TicketFailure, TicketFake};
use pim_tickets::{ServiceNowAuth, TicketLookup, TicketSystem};
use time::macros::datetime;

use crate::support::{servicenow, servicenow_with};

fn incident() -> FakeRecord {
    FakeRecord {
        number: "INC0012345".into(),
        state: ("2".into(), "In Progress".into()),
        active: true,
        short_description: "Restart web01 in rg-prod-web".into(),
        opened_at: "2026-11-30 07:55:00".into(),
        closed_at: String::new(),
        assigned_to: Some(FakeUser::new("Jane Doe", "jane@contoso.com")),
        caller_id: Some(FakeUser::new("Kim Lee", "kim@contoso.com")),
        opened_by: Some(FakeUser::new("Service Desk", "desk@contoso.com")),
        requested_for: None,
    }
}

#[tokio::test]
async fn a_found_incident_gives_its_evidence_from_one_well_formed_request() {
    let fake = TicketFake::start().await;
    fake.add_record(incident());
    let TicketLookup::Found(e) = servicenow(&fake).lookup("INC0012345").await else {
        panic!("expected found")
    };
    assert_eq!(e.number, "INC0012345");
    assert_eq!(e.state.as_deref(), Some("In Progress"));
    assert_eq!(e.open, Some(true));
    assert_eq!(e.opened_at, Some(datetime!(2026-11-30 07:55 UTC)));
    assert_eq!(e.closed_at, None);
    assert_eq!(
        e.short_description.as_deref(),
        Some("Restart web01 in rg-prod-web")
    );
    let assignee = e.assignee.unwrap();
    assert_eq!(assignee.email.as_deref(), Some("jane@contoso.com"));
    assert_eq!(assignee.user_name.as_deref(), Some("jane"));
    assert_eq!(e.caller.unwrap().name.as_deref(), Some("Kim Lee"));
    assert_eq!(e.requester.unwrap().name.as_deref(), Some("Service Desk"));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/api/now/table/incident");
    assert_eq!(
        r.query_param("sysparm_query").as_deref(),
        Some("number=INC0012345")
    );
    assert_eq!(
        r.query_param("sysparm_display_value").as_deref(),
        Some("all")
    );
    assert_eq!(
        r.query_param("sysparm_exclude_reference_link").as_deref(),
        Some("true")
    );
    assert_eq!(r.query_param("sysparm_limit").as_deref(), Some("1"));
    assert!(
        r.query_param("sysparm_fields")
            .unwrap()
            .contains("assigned_to.email")
    );
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(r.header("authorization").unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn the_prefix_picks_the_table_and_an_empty_result_is_not_found() {
    let fake = TicketFake::start().await;
    let sn = servicenow(&fake);
    let TicketLookup::NotFound(why) = sn.lookup("CHG0099999").await else {
        panic!("expected not found")
    };
    assert!(
        why.contains("CHG0099999") && why.contains("change_request"),
        "{why}"
    );
    sn.lookup("RITM0000001").await;
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/now/table/change_request",
            "/api/now/table/sc_req_item"
        ]
    );
}

#[tokio::test]
async fn a_closed_change_reads_as_closed_with_its_time() {
    let fake = TicketFake::start().await;
    fake.add_record(FakeRecord {
        number: "CHG0000042".into(),
        state: ("3".into(), "Closed".into()),
        active: false,
        closed_at: "2026-11-01 10:00:00".into(),
        ..incident()
    });
    let TicketLookup::Found(e) = servicenow(&fake).lookup("CHG0000042").await else {
        panic!()
    };
    assert_eq!(e.open, Some(false));
    assert_eq!(e.closed_at, Some(datetime!(2026-11-01 10:00 UTC)));
    assert_eq!(e.state.as_deref(), Some("Closed"));
}

#[tokio::test]
async fn text_that_is_not_a_number_never_reaches_the_instance() {
    let fake = TicketFake::start().await;
    let sn = servicenow(&fake);
    for bad in ["INC001^ORactive=true", "inc0012345", "SR0001", "INC 1", ""] {
        assert!(
            matches!(sn.lookup(bad).await, TicketLookup::Failed(_)),
            "{bad}"
        );
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn refused_credentials_and_acls_fail_with_the_reason_and_no_secret() {
    let fake = TicketFake::start().await;
    fake.add_record(incident());
    let wrong = servicenow_with(
        &fake,
        ServiceNowAuth::Basic {
            user: "svc-pim-reader".into(),
            password: Secret::new("not-the-password"),
        },
        Duration::from_secs(5),
    );
    let TicketLookup::Failed(why) = wrong.lookup("INC0012345").await else {
        panic!("expected failed")
    };
    assert!(
        why.contains("401") && why.contains("User Not Authenticated"),
        "{why}"
    );
    assert!(!why.contains("not-the-password"));
    assert_eq!(fake.requests().len(), 1, "a 401 is not retried");

    fake.fail_next(1, Some("INC0012345"), TicketFailure::Forbidden);
    let TicketLookup::Failed(why) = servicenow(&fake).lookup("INC0012345").await else {
        panic!("expected failed")
    };
    assert!(why.contains("403") && why.contains("ACL"), "{why}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_under_the_policy() {
    let fake = TicketFake::start().await;
    fake.add_record(incident());
    fake.fail_next(
        1,
        None,
        TicketFailure::TooManyRequests {
            retry_after_secs: 1,
        },
    )
    .fail_next(1, None, TicketFailure::InternalError);
    let started = std::time::Instant::now();
    assert!(matches!(
        servicenow(&fake).lookup("INC0012345").await,
        TicketLookup::Found(_)
    ));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(fake.lookups_of("INC0012345"), 3);

    fake.fail_always(None, TicketFailure::InternalError);
    let TicketLookup::Failed(why) = servicenow(&fake).lookup("INC0012345").await else {
        panic!("expected failed")
    };
    assert!(why.contains("3 attempt") && why.contains("500"), "{why}");
}

#[tokio::test]
async fn a_wait_longer_than_the_budget_fails_at_once_naming_it() {
    let fake = TicketFake::start().await;
    fake.fail_always(
        None,
        TicketFailure::TooManyRequests {
            retry_after_secs: 3600,
        },
    );
    let TicketLookup::Failed(why) = servicenow(&fake).lookup("INC0012345").await else {
        panic!("expected failed")
    };
    assert!(why.contains("3600 s"), "{why}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_instance_times_out_and_is_unverified() {
    let fake = TicketFake::start().await;
    fake.add_record(incident());
    fake.fail_always(None, TicketFailure::Slow(Duration::from_secs(3)));
    let sn = servicenow_with(
        &fake,
        ServiceNowAuth::Basic {
            user: pim_testkit::SERVICENOW_USER.into(),
            password: Secret::new(SERVICENOW_PASSWORD),
        },
        Duration::from_millis(200),
    );
    let TicketLookup::Failed(why) = sn.lookup("INC0012345").await else {
        panic!("expected failed")
    };
    assert!(why.contains("timed out"), "{why}");
}

#[tokio::test]
async fn oauth_tokens_are_sent_as_bearer() {
    let fake = TicketFake::start().await;
    fake.servicenow_auth(FakeAuth::Bearer("sn-oauth-token".into()))
        .add_record(incident());
    let sn = servicenow_with(
        &fake,
        ServiceNowAuth::OAuth(Secret::new("sn-oauth-token")),
        Duration::from_secs(5),
    );
    assert!(matches!(
        sn.lookup("INC0012345").await,
        TicketLookup::Found(_)
    ));
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some("Bearer sn-oauth-token")
    );
}

#[tokio::test]
async fn the_probe_reads_a_missing_incident_and_explains_401_and_403() {
    let fake = TicketFake::start().await;
    let ok = servicenow(&fake).probe().await.unwrap();
    assert!(ok.contains("INC0000000"), "{ok}");
    assert_eq!(
        fake.requests()[0].query_param("sysparm_query").as_deref(),
        Some("number=INC0000000")
    );

    let wrong = servicenow_with(
        &fake,
        ServiceNowAuth::OAuth(Secret::new("expired-token")),
        Duration::from_secs(5),
    );
    let e = wrong.probe().await.unwrap_err();
    assert!(
        e.contains("401") && e.contains("fix: check PIM_SERVICENOW_USER"),
        "{e}"
    );
    assert!(
        e.contains("PIM_SERVICENOW_TOKEN") && !e.contains("expired-token"),
        "{e}"
    );

    fake.fail_next(1, None, TicketFailure::Forbidden);
    let e = servicenow(&fake).probe().await.unwrap_err();
    assert!(
        e.contains("403") && e.contains("fix: give the integration user read access"),
        "{e}"
    );
}
