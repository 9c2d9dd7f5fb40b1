//! Clients aimed at a [`TicketFake`].

use std::time::Duration;

use pim_domain::retry::RetryPolicy;
use pim_http::secret::Secret;
use pim_testkit::{JIRA_API_TOKEN, JIRA_EMAIL, SERVICENOW_PASSWORD, SERVICENOW_USER, TicketFake};
use pim_tickets::{Jira, JiraAuth, JiraOptions, ServiceNow, ServiceNowAuth, ServiceNowOptions};

/// Three attempts within ten seconds, so throttling tests stay short.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(50),
        max_total: Duration::from_secs(10),
        ..RetryPolicy::default()
    }
}

pub fn servicenow(fake: &TicketFake) -> ServiceNow {
    servicenow_with(
        fake,
        ServiceNowAuth::Basic {
            user: SERVICENOW_USER.into(),
            password: Secret::new(SERVICENOW_PASSWORD),
        },
        Duration::from_secs(5),
    )
}

pub fn servicenow_with(fake: &TicketFake, auth: ServiceNowAuth, timeout: Duration) -> ServiceNow {
    ServiceNow::new(
        &fake.uri(),
        auth,
        Some(ServiceNowOptions {
            timeout,
            retry: quick_retry(),
            client: None,
        }),
    )
    .unwrap()
}

pub fn jira(fake: &TicketFake) -> Jira {
    jira_with(
        fake,
        JiraAuth::Cloud {
            email: JIRA_EMAIL.into(),
            api_token: Secret::new(JIRA_API_TOKEN),
        },
    )
}

pub fn jira_with(fake: &TicketFake, auth: JiraAuth) -> Jira {
    Jira::new(
        &fake.uri(),
        auth,
        "OPS",
        Some(JiraOptions {
            timeout: Duration::from_secs(5),
            retry: quick_retry(),
            client: None,
        }),
    )
    .unwrap()
}
