//! The Jira adapter against the fake REST API.

use pim_http::secret::Secret;
use pim_testkit::{FakeAuth, FakeIssue, FakeUser, TicketFailure, TicketFake};
use pim_tickets::{JiraAuth, TicketLookup, TicketSystem};
use time::macros::datetime;

use crate::support::{jira, jira_with};

fn issue() -> FakeIssue {
    FakeIssue {
        key: "OPS-42".into(),
        status: "In Progress".into(),
        category: "indeterminate".into(),
        assignee: Some(FakeUser::new("Jane Doe", "jane@contoso.com")),
        reporter: Some(FakeUser {
            email: None,
            ..FakeUser::new("Kim Lee", "kim@contoso.com")
        }),
        summary: "Rotate the storage keys of stprodweb".into(),
        created: "2026-11-30T07:00:00.000+0000".into(),
        resolutiondate: None,
    }
}

#[tokio::test]
async fn cloud_reads_v3_with_the_status_category() {
    let fake = TicketFake::start().await;
    fake.add_issue(issue());
    let TicketLookup::Found(e) = jira(&fake).lookup("OPS-42").await else {
        panic!("expected found")
    };
    assert_eq!(e.number, "OPS-42");
    assert_eq!(e.state.as_deref(), Some("In Progress"));
    assert_eq!(e.open, Some(true));
    assert_eq!(e.opened_at, Some(datetime!(2026-11-30 07:00 UTC)));
    assert_eq!(e.closed_at, None);
    assert_eq!(
        e.assignee.as_ref().unwrap().email.as_deref(),
        Some("jane@contoso.com")
    );
    let reporter = e.requester.unwrap();
    assert_eq!(reporter.email, None, "hidden by profile visibility");
    assert!(reporter.id.is_some(), "the accountId stands in");
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/rest/api/3/issue/OPS-42");
    assert!(r.query_param("fields").unwrap().contains("resolutiondate"));
    assert!(r.header("authorization").unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn data_center_reads_v2_with_a_personal_access_token() {
    let fake = TicketFake::start().await;
    fake.jira_auth(FakeAuth::Bearer("dc-pat".into()))
        .add_issue(FakeIssue {
            category: "done".into(),
            status: "Closed".into(),
            resolutiondate: Some("2026-11-29T18:00:00.000+0100".into()),
            ..issue()
        });
    let dc = jira_with(&fake, JiraAuth::DataCenter(Secret::new("dc-pat")));
    let TicketLookup::Found(e) = dc.lookup("OPS-42").await else {
        panic!("expected found")
    };
    assert_eq!(e.open, Some(false));
    assert_eq!(e.closed_at, Some(datetime!(2026-11-29 17:00 UTC)));
    assert_eq!(
        e.assignee.unwrap().user_name.as_deref(),
        Some("jane"),
        "Data Center users carry a name"
    );
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/rest/api/2/issue/OPS-42");
    assert_eq!(r.header("authorization"), Some("Bearer dc-pat"));
}

#[tokio::test]
async fn a_404_is_unverified_because_jira_cannot_tell_missing_from_hidden() {
    let fake = TicketFake::start().await;
    let TicketLookup::Failed(why) = jira(&fake).lookup("OPS-9999").await else {
        panic!("expected failed")
    };
    assert!(
        why.contains("404") && why.contains("Browse Projects on OPS"),
        "{why}"
    );
}

#[tokio::test]
async fn refused_and_throttled() {
    let fake = TicketFake::start().await;
    fake.add_issue(issue());
    let wrong = jira_with(
        &fake,
        JiraAuth::Cloud {
            email: pim_testkit::JIRA_EMAIL.into(),
            api_token: Secret::new("revoked-token"),
        },
    );
    let TicketLookup::Failed(why) = wrong.lookup("OPS-42").await else {
        panic!()
    };
    assert!(
        why.contains("401") && !why.contains("revoked-token"),
        "{why}"
    );

    fake.fail_next(
        2,
        Some("OPS-42"),
        TicketFailure::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    assert!(matches!(
        jira(&fake).lookup("OPS-42").await,
        TicketLookup::Found(_)
    ));
    assert_eq!(
        fake.lookups_of("OPS-42"),
        4,
        "one refused, two throttled, one answered"
    );
}

#[tokio::test]
async fn the_probe_reads_issue_zero_and_explains_401_and_403() {
    let fake = TicketFake::start().await;
    let ok = jira(&fake).probe().await.unwrap();
    assert!(ok.contains("OPS-0") && ok.contains("REST v3"), "{ok}");
    assert_eq!(fake.requests()[0].path, "/rest/api/3/issue/OPS-0");

    let wrong = jira_with(&fake, JiraAuth::DataCenter(Secret::new("old-pat")));
    let e = wrong.probe().await.unwrap_err();
    assert!(
        e.contains("401") && e.contains("fix: renew PIM_JIRA_PAT"),
        "{e}"
    );

    let cloud_wrong = jira_with(
        &fake,
        JiraAuth::Cloud {
            email: "x@contoso.com".into(),
            api_token: Secret::new("nope"),
        },
    );
    let e = cloud_wrong.probe().await.unwrap_err();
    assert!(e.contains("PIM_JIRA_API_TOKEN"), "{e}");

    fake.fail_next(1, None, TicketFailure::Forbidden);
    let e = jira(&fake).probe().await.unwrap_err();
    assert!(e.contains("403") && e.contains("Browse Projects"), "{e}");
}
