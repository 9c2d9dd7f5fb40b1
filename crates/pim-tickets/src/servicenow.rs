//! ServiceNow through the Table API (reference §11.2).
//!
//! One request per ticket:
//! `GET {instance}/api/now/table/{table}?sysparm_query=number={N}&sysparm_fields=…&sysparm_display_value=all&sysparm_exclude_reference_link=true&sysparm_limit=1`.
//! The table follows the number's prefix ([`SERVICENOW_TABLES`](crate::SERVICENOW_TABLES)).
//! With `sysparm_display_value=all` each field is `{"display_value", "value"}`, so the state
//! comes as its label (instances customise state codes; the label is what people read) and
//! `active` as `"true"`/`"false"`. The people (`assigned_to`, `caller_id`, `opened_by`,
//! `requested_for`) are `sys_user` references; their `user_name` and `email` come in the same
//! request through dot-walked fields (`assigned_to.email`), so matching them to the activating
//! UPN costs no extra call per person.
//!
//! `{"result":[]}` means the ticket does not exist. 401 is a refused credential, 403 an ACL
//! that denies the read; both are failures with the reason, never "not found".

use std::time::Duration;

use async_trait::async_trait;
use pim_domain::retry::RetryPolicy;
use pim_domain::{TicketEvidence, TicketPerson, TicketSystemKind};
use pim_http::secret::Secret;
use serde_json::Value;

use crate::http::{self, Auth, Client, parse_time};
use crate::reference::{is_servicenow_number, servicenow_table};
use crate::{Result, TicketLookup, TicketSystem};

/// The fields asked for: the ticket's own, and each person's name, login and e-mail.
const FIELDS: &str = "number,state,active,short_description,opened_at,closed_at,\
assigned_to,assigned_to.user_name,assigned_to.email,\
caller_id,caller_id.user_name,caller_id.email,\
opened_by,opened_by.user_name,opened_by.email,\
requested_for,requested_for.user_name,requested_for.email";

/// The number `--check` reads: shaped like an incident, and never issued (numbering starts
/// at 1).
pub const PROBE_NUMBER: &str = "INC0000000";

/// How the integration user signs in (reference §11.2: Basic, or an OAuth bearer token).
#[derive(Clone)]
pub enum ServiceNowAuth {
    /// Basic: `PIM_SERVICENOW_USER`, `PIM_SERVICENOW_PASSWORD`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth access token, sent as `Authorization: Bearer` (`PIM_SERVICENOW_TOKEN`).
    OAuth(Secret),
}

impl std::fmt::Debug for ServiceNowAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&Auth::from(self.clone()), f)
    }
}

impl From<ServiceNowAuth> for Auth {
    fn from(auth: ServiceNowAuth) -> Self {
        match auth {
            ServiceNowAuth::Basic { user, password } => Auth::Basic { user, password },
            ServiceNowAuth::OAuth(token) => Auth::Bearer(token),
        }
    }
}

/// Options of the ServiceNow client.
#[derive(Clone)]
pub struct ServiceNowOptions {
    /// Each request's timeout (default 30 s).
    pub timeout: Duration,
    /// Retries of 429, 5xx and transport failures (default: the shared policy).
    pub retry: RetryPolicy,
    /// A client to use instead of one built from `timeout` (never printed).
    pub client: Option<reqwest::Client>,
}

impl Default for ServiceNowOptions {
    fn default() -> Self {
        Self {
            timeout: http::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            client: None,
        }
    }
}

impl std::fmt::Debug for ServiceNowOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowOptions")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("client", &self.client.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// The ServiceNow Table API client.
#[derive(Debug, Clone)]
pub struct ServiceNow {
    client: Client,
}

impl ServiceNow {
    /// A client for the instance at `url` (`https://<instance>.service-now.com`).
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming `PIM_SERVICENOW_URL` for a URL that is not
    /// https (plain http only on loopback) or carries user info, a query or a fragment;
    /// [`Error::Client`](crate::Error::Client) when the HTTP client cannot be built.
    pub fn new(
        url: &str,
        auth: ServiceNowAuth,
        options: Option<ServiceNowOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        Ok(Self {
            client: Client {
                http: http::http_client(options.client, options.timeout)?,
                base: http::base_url(url, "PIM_SERVICENOW_URL")?,
                auth: auth.into(),
                retry: options.retry,
                system: "ServiceNow",
            },
        })
    }

    fn url(&self, table: &str, number: &str, fields: &str) -> Option<reqwest::Url> {
        let mut url = self.client.base.join("api/now/table/").ok()?;
        url.path_segments_mut().ok()?.pop_if_empty().push(table);
        url.query_pairs_mut()
            .append_pair("sysparm_query", &format!("number={number}"))
            .append_pair("sysparm_fields", fields)
            .append_pair("sysparm_display_value", "all")
            .append_pair("sysparm_exclude_reference_link", "true")
            .append_pair("sysparm_limit", "1");
        Some(url)
    }
}

#[async_trait]
impl TicketSystem for ServiceNow {
    fn kind(&self) -> TicketSystemKind {
        TicketSystemKind::Servicenow
    }

    async fn lookup(&self, number: &str) -> TicketLookup {
        // The shape is checked again here: only `[A-Z]+[0-9]+` ever reaches an encoded query.
        let (Some(table), true) = (servicenow_table(number), is_servicenow_number(number)) else {
            return TicketLookup::Failed(format!(
                "{number:?} is not a ServiceNow number this tool looks up"
            ));
        };
        let Some(url) = self.url(table, number, FIELDS) else {
            return TicketLookup::Failed("the ServiceNow URL cannot take a table path".to_owned());
        };
        let reply = match self
            .client
            .get(url, &[200], "ServiceNow ticket lookup")
            .await
        {
            Ok(reply) => reply,
            Err(stop) => return TicketLookup::Failed(self.client.describe(&stop)),
        };
        let Some(results) = reply.body.get("result").and_then(Value::as_array) else {
            return TicketLookup::Failed(format!(
                "ServiceNow answered {} without a result list: {}",
                reply.status, reply.text
            ));
        };
        let Some(record) = results.first() else {
            return TicketLookup::NotFound(format!("ServiceNow has no {number} in {table}"));
        };
        let evidence = read_record(record, number);
        if !evidence.number.eq_ignore_ascii_case(number) {
            return TicketLookup::Failed(format!(
                "ServiceNow answered the query for {number} with another record ({:?})",
                pim_domain::text::clip(&evidence.number, 40)
            ));
        }
        TicketLookup::Found(Box::new(evidence))
    }

    async fn probe(&self) -> Result<String, String> {
        let host = self.client.base.host_str().unwrap_or_default().to_owned();
        let Some(url) = self.url("incident", PROBE_NUMBER, "number") else {
            return Err("the ServiceNow URL cannot take a table path; fix: set PIM_SERVICENOW_URL to the instance's base URL".to_owned());
        };
        match self.client.get(url, &[200], "ServiceNow probe").await {
            Ok(reply) => match reply.body.get("result").and_then(Value::as_array) {
                Some(_) => Ok(format!(
                    "{host} answered the Table API; reading incident {PROBE_NUMBER} (which does not exist) worked"
                )),
                None => Err(format!(
                    "{host} answered {} but not like the Table API ({}); fix: set PIM_SERVICENOW_URL to https://<instance>.service-now.com",
                    reply.status, reply.text
                )),
            },
            Err(stop) => {
                let problem = self.client.describe(&stop);
                let fix = match http::stop_status(&stop) {
                    Some(401) => {
                        "check PIM_SERVICENOW_USER and PIM_SERVICENOW_PASSWORD (Basic), or renew PIM_SERVICENOW_TOKEN (OAuth); the integration user must be active and allowed web service access"
                    }
                    Some(403) => {
                        "give the integration user read access to the ticket tables (incident, change_request, sc_req_item, sc_request, sc_task, problem, change_task, task; e.g. the snc_read_only or itil role, or read ACLs), and to sys_user for the people"
                    }
                    Some(404) => {
                        "PIM_SERVICENOW_URL must be the instance's base URL (https://<instance>.service-now.com), without /api/now"
                    }
                    Some(429) => {
                        "the instance's rate-limit rules throttle the integration user; raise its limit or run --check later"
                    }
                    _ => "check PIM_SERVICENOW_URL and network access to the instance",
                };
                Err(format!("{problem}; fix: {fix}"))
            }
        }
    }
}

/// A field's value: with `sysparm_display_value=all`, `{"display_value", "value"}` (and
/// `display` picks which); a plain string when the instance answered without it.
fn field<'v>(record: &'v Value, name: &str, display: bool) -> Option<&'v str> {
    let v = record.get(name)?;
    let text = match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => {
            let (first, second) = if display {
                ("display_value", "value")
            } else {
                ("value", "display_value")
            };
            v.get(first)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .or_else(|| v.get(second).and_then(Value::as_str))
        }
        _ => None,
    }?;
    // An ACL can blank a field instead of denying the read (§11.2): empty is "not visible".
    (!text.trim().is_empty()).then_some(text)
}

fn person(record: &Value, name: &str) -> Option<TicketPerson> {
    let p = TicketPerson {
        name: field(record, name, true).map(str::to_owned),
        id: record
            .get(name)
            .and_then(|v| v.get("value").and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned),
        user_name: field(record, &format!("{name}.user_name"), false).map(str::to_owned),
        email: field(record, &format!("{name}.email"), false).map(str::to_owned),
    };
    (p != TicketPerson::default()).then_some(p)
}

fn read_record(record: &Value, asked: &str) -> TicketEvidence {
    let open = field(record, "active", false).and_then(|a| match a.trim() {
        a if a.eq_ignore_ascii_case("true") => Some(true),
        a if a.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    });
    TicketEvidence {
        number: field(record, "number", false).unwrap_or(asked).to_owned(),
        state: field(record, "state", true).map(str::to_owned),
        open,
        assignee: person(record, "assigned_to"),
        requester: person(record, "requested_for").or_else(|| person(record, "opened_by")),
        caller: person(record, "caller_id"),
        opened_at: field(record, "opened_at", false).and_then(parse_time),
        closed_at: field(record, "closed_at", false).and_then(parse_time),
        short_description: field(record, "short_description", true).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_display_value_all_records() {
        let record = json!({
            "number": {"display_value": "INC0012345", "value": "INC0012345"},
            "state": {"display_value": "In Progress", "value": "2"},
            "active": {"display_value": "true", "value": "true"},
            "short_description": {"display_value": "Restart web01", "value": "Restart web01"},
            "opened_at": {"display_value": "30.11.2026 09:00:00", "value": "2026-11-30 08:00:00"},
            "closed_at": {"display_value": "", "value": ""},
            "assigned_to": {"display_value": "Jane Doe", "value": "6816f79cc0a8016401c5a33be04be441"},
            "assigned_to.user_name": {"display_value": "jane", "value": "jane"},
            "assigned_to.email": {"display_value": "jane@contoso.com", "value": "jane@contoso.com"},
            "opened_by": {"display_value": "Kim", "value": "k1"},
            "caller_id": {"display_value": "", "value": ""}
        });
        let e = read_record(&record, "INC0012345");
        assert_eq!(e.state.as_deref(), Some("In Progress"));
        assert_eq!(e.open, Some(true));
        assert_eq!(e.closed_at, None);
        assert_eq!(
            e.opened_at,
            Some(time::macros::datetime!(2026-11-30 08:00 UTC))
        );
        let a = e.assignee.unwrap();
        assert_eq!(a.email.as_deref(), Some("jane@contoso.com"));
        assert_eq!(a.id.as_deref(), Some("6816f79cc0a8016401c5a33be04be441"));
        assert_eq!(e.requester.unwrap().name.as_deref(), Some("Kim"));
        assert_eq!(e.caller, None, "a blanked field is not a person");
    }

    #[test]
    fn plain_string_fields_are_read_too() {
        let record = json!({"number": "CHG0000001", "active": "false", "state": "Closed"});
        let e = read_record(&record, "CHG0000001");
        assert_eq!(e.open, Some(false));
        assert_eq!(e.state.as_deref(), Some("Closed"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let sn = ServiceNow::new(
            "https://acme.service-now.com",
            ServiceNowAuth::Basic {
                user: "svc-pim".into(),
                password: Secret::new("hunter2-pw"),
            },
            Some(ServiceNowOptions {
                client: Some(pim_http::secret::client_with_a_secret_header().unwrap()),
                ..ServiceNowOptions::default()
            }),
        )
        .unwrap();
        let text = format!("{sn:?}");
        assert!(!text.contains("hunter2-pw"), "{text}");
        assert!(
            !text.contains(pim_http::secret::TEST_HEADER_SECRET),
            "{text}"
        );
        assert!(text.contains("[REDACTED]"), "{text}");
        let token = format!("{:?}", ServiceNowAuth::OAuth(Secret::new("oauth-tok")));
        assert!(!token.contains("oauth-tok"), "{token}");
    }
}
