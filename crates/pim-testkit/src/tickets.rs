//! A fake of both ticket systems on one loopback server (reference §11): the ServiceNow Table
//! API (`GET /api/now/table/{table}`) and Jira REST (`GET /rest/api/3/issue/{key}` for Cloud,
//! `/rest/api/2/issue/{key}` for Data Center), with their response shapes, authentication and
//! injected failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{Injections, RecordedRequest, header_text, lock};

/// ServiceNow number prefixes and their tables, as the Table API keeps them.
const TABLES: &[(&str, &str)] = &[
    ("INC", "incident"),
    ("CHG", "change_request"),
    ("RITM", "sc_req_item"),
    ("REQ", "sc_request"),
    ("SCTASK", "sc_task"),
    ("PRB", "problem"),
    ("CTASK", "change_task"),
    ("TASK", "task"),
];

/// A failure the fake can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketFailure {
    /// 401 with the system's body.
    Unauthorized,
    /// 403 with the system's body.
    Forbidden,
    /// 404 (Jira's "does not exist or you do not have permission", ServiceNow's "no such table").
    NotFound,
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 500.
    InternalError,
    /// The normal answer, after this delay (for timeouts).
    Slow(Duration),
}

/// The credential a system of the fake accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeAuth {
    /// HTTP Basic with this user and password.
    Basic {
        /// User (ServiceNow) or e-mail (Jira Cloud).
        user: String,
        /// Password or API token.
        password: String,
    },
    /// `Authorization: Bearer <token>` (ServiceNow OAuth, Jira personal access token).
    Bearer(String),
}

/// The ServiceNow user the fake accepts by default.
pub const SERVICENOW_USER: &str = "svc-pim-reader";
/// Its password.
pub const SERVICENOW_PASSWORD: &str = "fake-sn-password";
/// The Jira Cloud account the fake accepts by default.
pub const JIRA_EMAIL: &str = "pim-reader@contoso.com";
/// Its API token.
pub const JIRA_API_TOKEN: &str = "fake-jira-api-token";

/// A person on a ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeUser {
    /// Display name.
    pub name: String,
    /// ServiceNow `user_name`, Jira Data Center `name`.
    pub user_name: String,
    /// E-mail; `None` as when Jira's profile visibility hides it.
    pub email: Option<String>,
    /// `sys_id` or Jira `accountId`.
    pub id: String,
}

impl FakeUser {
    /// A person whose login name is the part of `email` before `@`.
    pub fn new(name: &str, email: &str) -> Self {
        Self {
            name: name.to_owned(),
            user_name: email.split('@').next().unwrap_or(email).to_owned(),
            email: Some(email.to_owned()),
            id: format!("{:032x}", fnv(email)),
        }
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A ServiceNow record (its table follows from the number's prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeRecord {
    /// `INC0012345`.
    pub number: String,
    /// The state code (`2`) and its label (`In Progress`).
    pub state: (String, String),
    /// The `active` flag.
    pub active: bool,
    /// `short_description`.
    pub short_description: String,
    /// `opened_at`, `YYYY-MM-DD HH:MM:SS` UTC.
    pub opened_at: String,
    /// `closed_at`, empty while open.
    pub closed_at: String,
    /// `assigned_to`.
    pub assigned_to: Option<FakeUser>,
    /// `caller_id`.
    pub caller_id: Option<FakeUser>,
    /// `opened_by`.
    pub opened_by: Option<FakeUser>,
    /// `requested_for`.
    pub requested_for: Option<FakeUser>,
}

/// A Jira issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeIssue {
    /// `OPS-42`.
    pub key: String,
    /// The status name (`In Progress`).
    pub status: String,
    /// `statusCategory.key`: `new`, `indeterminate` or `done`.
    pub category: String,
    /// `assignee`.
    pub assignee: Option<FakeUser>,
    /// `reporter`.
    pub reporter: Option<FakeUser>,
    /// `summary`.
    pub summary: String,
    /// `created`, Jira's `2026-11-30T08:00:00.000+0000`.
    pub created: String,
    /// `resolutiondate`, `None` while unresolved.
    pub resolutiondate: Option<String>,
}

struct State {
    servicenow_auth: FakeAuth,
    jira_auth: FakeAuth,
    records: Vec<FakeRecord>,
    issues: Vec<FakeIssue>,
    injections: Injections<TicketFailure>,
    requests: Vec<RecordedRequest>,
}

/// ServiceNow and Jira on one loopback server. Point `PIM_SERVICENOW_URL` and `PIM_JIRA_URL`
/// at [`uri`](Self::uri).
///
/// - ServiceNow: reads `sysparm_query=number=<N>` (anything else is a 400), answers
///   `{"result":[…]}` with only the `sysparm_fields` asked for (dot-walked `assigned_to.email`
///   included), as `{"display_value","value"}` pairs under `sysparm_display_value=all`;
///   `{"result":[]}` for a number it does not hold; a table that does not match the prefix
///   holds nothing.
/// - Jira: the issue with the `fields` asked for, users shaped as Cloud (`accountId`) on v3 and
///   Data Center (`name`, `key`) on v2; 404 with Jira's `errorMessages` for a key it does not
///   hold.
/// - Both refuse other credentials with 401 and the system's error body.
pub struct TicketFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for TicketFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("TicketFake")
            .field("endpoint", &self.server.uri())
            .field("credentials", &pim_http::secret::Redacted)
            .field("records", &state.records.len())
            .field("issues", &state.issues.len())
            .field("requests", &state.requests.len())
            .finish()
    }
}

impl TicketFake {
    /// Starts the fake, accepting [`SERVICENOW_USER`] / [`SERVICENOW_PASSWORD`] and
    /// [`JIRA_EMAIL`] / [`JIRA_API_TOKEN`] by Basic.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            servicenow_auth: FakeAuth::Basic {
                user: SERVICENOW_USER.to_owned(),
                password: SERVICENOW_PASSWORD.to_owned(),
            },
            jira_auth: FakeAuth::Basic {
                user: JIRA_EMAIL.to_owned(),
                password: JIRA_API_TOKEN.to_owned(),
            },
            records: Vec::new(),
            issues: Vec::new(),
            injections: Injections::default(),
            requests: Vec::new(),
        }));
        Mock::given(method("GET"))
            .respond_with(TicketResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The base URL of both systems.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The credential ServiceNow accepts.
    pub fn servicenow_auth(&self, auth: FakeAuth) -> &Self {
        lock(&self.state).servicenow_auth = auth;
        self
    }

    /// The credential Jira accepts.
    pub fn jira_auth(&self, auth: FakeAuth) -> &Self {
        lock(&self.state).jira_auth = auth;
        self
    }

    /// Adds (or replaces) a ServiceNow record.
    pub fn add_record(&self, record: FakeRecord) -> &Self {
        let mut s = lock(&self.state);
        s.records.retain(|r| r.number != record.number);
        s.records.push(record);
        self
    }

    /// Adds (or replaces) a Jira issue.
    pub fn add_issue(&self, issue: FakeIssue) -> &Self {
        let mut s = lock(&self.state);
        s.issues.retain(|i| i.key != issue.key);
        s.issues.push(issue);
        self
    }

    /// Answers the next `n` authenticated requests whose path and query contain `needle`
    /// (every request when `None`) with `failure`.
    pub fn fail_next(&self, n: usize, needle: Option<&str>, failure: TicketFailure) -> &Self {
        lock(&self.state)
            .injections
            .add(Some(n), needle.map(str::to_owned), failure);
        self
    }

    /// Answers every authenticated request matching `needle` with `failure`.
    pub fn fail_always(&self, needle: Option<&str>, failure: TicketFailure) -> &Self {
        lock(&self.state)
            .injections
            .add(None, needle.map(str::to_owned), failure);
        self
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) -> &Self {
        lock(&self.state).injections.clear();
        self
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// How many requests asked for `number` (a ServiceNow number or a Jira key).
    pub fn lookups_of(&self, number: &str) -> usize {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| {
                r.path.ends_with(&format!("/issue/{number}"))
                    || r.query_param("sysparm_query").as_deref()
                        == Some(format!("number={number}").as_str())
            })
            .count()
    }
}

struct TicketResponder {
    state: Arc<Mutex<State>>,
}

fn servicenow_error(status: u16, message: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"error": {"message": message, "detail": detail}, "status": "failure"}),
    )
}

fn jira_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"errorMessages": [message], "errors": {}}))
}

fn authorized(request: &Request, auth: &FakeAuth) -> bool {
    let Some(header) = header_text(request, "authorization") else {
        return false;
    };
    let Some((scheme, value)) = header.trim().split_once(' ') else {
        return false;
    };
    match auth {
        FakeAuth::Basic { user, password } => {
            scheme.eq_ignore_ascii_case("basic")
                && base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    == Some(format!("{user}:{password}"))
        }
        FakeAuth::Bearer(token) => {
            scheme.eq_ignore_ascii_case("bearer") && value.trim() == token.as_str()
        }
    }
}

impl Respond for TicketResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        state.requests.push(RecordedRequest::from_wiremock(request));
        let path = request.url.path().to_owned();
        let servicenow = path.starts_with("/api/now/table/");
        let jira = path.starts_with("/rest/api/3/issue/") || path.starts_with("/rest/api/2/issue/");
        if !servicenow && !jira {
            return ResponseTemplate::new(404).set_body_string("<html>Not Found</html>");
        }
        let auth = if servicenow {
            &state.servicenow_auth
        } else {
            &state.jira_auth
        };
        if !authorized(request, auth) {
            return if servicenow {
                servicenow_error(
                    401,
                    "User Not Authenticated",
                    "Required to provide Auth information",
                )
            } else {
                jira_error(
                    401,
                    "You are not authenticated. Authentication required to perform this operation.",
                )
            };
        }
        let text = format!("{}?{}", path, request.url.query().unwrap_or_default());
        let mut delay = None;
        match state.injections.take(&text) {
            Some(TicketFailure::Unauthorized) if servicenow => {
                return servicenow_error(401, "User Not Authenticated", "Injected");
            }
            Some(TicketFailure::Unauthorized) => {
                return jira_error(401, "Injected: not authenticated.");
            }
            Some(TicketFailure::Forbidden) if servicenow => {
                return servicenow_error(
                    403,
                    "Operation Failed",
                    "ACL Exception Read Failed due to security constraints",
                );
            }
            Some(TicketFailure::Forbidden) => {
                return jira_error(403, "You do not have the permission to see this issue.");
            }
            Some(TicketFailure::NotFound) if servicenow => {
                return servicenow_error(404, "Invalid table", "Injected");
            }
            Some(TicketFailure::NotFound) => {
                return jira_error(
                    404,
                    "Issue does not exist or you do not have permission to see it.",
                );
            }
            Some(TicketFailure::TooManyRequests { retry_after_secs }) => {
                let body = if servicenow {
                    json!({"error": {"message": "Rate limit exceeded", "detail": "Too many requests"}, "status": "failure"})
                } else {
                    json!({"errorMessages": ["Rate limit exceeded."], "errors": {}})
                };
                return ResponseTemplate::new(429)
                    .set_body_json(body)
                    .insert_header("Retry-After", retry_after_secs.to_string().as_str());
            }
            Some(TicketFailure::InternalError) => {
                return ResponseTemplate::new(500).set_body_string("Internal Server Error");
            }
            Some(TicketFailure::Slow(d)) => delay = Some(d),
            None => {}
        }
        let answer = if servicenow {
            servicenow_answer(&state, request, &path)
        } else {
            jira_answer(&state, request, &path)
        };
        match delay {
            Some(d) => answer.set_delay(d),
            None => answer,
        }
    }
}

fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn servicenow_answer(state: &State, request: &Request, path: &str) -> ResponseTemplate {
    let table = path.trim_start_matches("/api/now/table/");
    let Some(number) = query(request, "sysparm_query").and_then(|q| {
        q.strip_prefix("number=")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned)
    }) else {
        return servicenow_error(400, "Invalid query", "the fake reads only number=<N>");
    };
    let display_all = query(request, "sysparm_display_value").as_deref() == Some("all");
    let fields: Option<Vec<String>> = query(request, "sysparm_fields")
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let owns = TABLES
        .iter()
        .any(|(prefix, t)| *t == table && number.starts_with(prefix));
    let result: Vec<Value> = state
        .records
        .iter()
        .filter(|r| owns && r.number == number)
        .map(|r| servicenow_record(r, display_all, fields.as_deref()))
        .collect();
    ResponseTemplate::new(200)
        .insert_header("X-Total-Count", result.len().to_string().as_str())
        .set_body_json(json!({ "result": result }))
}

fn servicenow_record(r: &FakeRecord, display_all: bool, fields: Option<&[String]>) -> Value {
    // Every field as (display value, value).
    let mut all: Vec<(String, String, String)> = vec![
        ("number".into(), r.number.clone(), r.number.clone()),
        ("state".into(), r.state.1.clone(), r.state.0.clone()),
        ("active".into(), r.active.to_string(), r.active.to_string()),
        (
            "short_description".into(),
            r.short_description.clone(),
            r.short_description.clone(),
        ),
        ("opened_at".into(), r.opened_at.clone(), r.opened_at.clone()),
        ("closed_at".into(), r.closed_at.clone(), r.closed_at.clone()),
    ];
    for (name, user) in [
        ("assigned_to", &r.assigned_to),
        ("caller_id", &r.caller_id),
        ("opened_by", &r.opened_by),
        ("requested_for", &r.requested_for),
    ] {
        let u = user.clone().unwrap_or_default();
        all.push((name.into(), u.name.clone(), u.id.clone()));
        all.push((
            format!("{name}.user_name"),
            u.user_name.clone(),
            u.user_name.clone(),
        ));
        let email = u.email.clone().unwrap_or_default();
        all.push((format!("{name}.email"), email.clone(), email));
    }
    let mut out = Map::new();
    for (name, display, value) in all {
        if fields.is_some_and(|f| !f.contains(&name)) {
            continue;
        }
        let v = if display_all {
            json!({"display_value": display, "value": value})
        } else {
            Value::String(value)
        };
        out.insert(name, v);
    }
    Value::Object(out)
}

fn jira_answer(state: &State, request: &Request, path: &str) -> ResponseTemplate {
    let v3 = path.starts_with("/rest/api/3/");
    let key = path.rsplit('/').next().unwrap_or_default();
    let Some(issue) = state.issues.iter().find(|i| i.key == key) else {
        return jira_error(
            404,
            "Issue does not exist or you do not have permission to see it.",
        );
    };
    let user = |u: &Option<FakeUser>| match u {
        None => Value::Null,
        Some(u) => {
            let mut m = Map::new();
            if v3 {
                m.insert("accountId".into(), json!(u.id));
            } else {
                m.insert("name".into(), json!(u.user_name));
                m.insert(
                    "key".into(),
                    json!(format!("JIRAUSER{}", fnv(&u.id) % 100_000)),
                );
            }
            m.insert("displayName".into(), json!(u.name));
            if let Some(e) = &u.email {
                m.insert("emailAddress".into(), json!(e));
            }
            m.insert("active".into(), json!(true));
            Value::Object(m)
        }
    };
    let all = [
        (
            "status",
            json!({"name": issue.status, "statusCategory": {"key": issue.category, "name": issue.category}}),
        ),
        ("assignee", user(&issue.assignee)),
        ("reporter", user(&issue.reporter)),
        ("summary", json!(issue.summary)),
        ("created", json!(issue.created)),
        ("updated", json!(issue.created)),
        ("resolutiondate", json!(issue.resolutiondate)),
    ];
    let wanted: Option<Vec<String>> =
        query(request, "fields").map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let mut fields = Map::new();
    for (name, value) in all {
        if wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == name)) {
            fields.insert(name.to_owned(), value);
        }
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "id": (fnv(&issue.key) % 100_000).to_string(),
        "key": issue.key,
        "fields": fields,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn servicenow_and_jira_answer_in_their_shapes() {
        let fake = TicketFake::start().await;
        fake.add_record(FakeRecord {
            number: "INC0012345".into(),
            state: ("2".into(), "In Progress".into()),
            active: true,
            assigned_to: Some(FakeUser::new("Jane Doe", "jane@contoso.com")),
            ..FakeRecord::default()
        })
        .add_issue(FakeIssue {
            key: "OPS-7".into(),
            status: "Done".into(),
            category: "done".into(),
            ..FakeIssue::default()
        });
        let client = reqwest::Client::new();
        let sn = client
            .get(format!(
                "{}/api/now/table/incident?sysparm_query=number%3DINC0012345&sysparm_fields=number%2Cassigned_to.email&sysparm_display_value=all",
                fake.uri()
            ))
            .basic_auth(SERVICENOW_USER, Some(SERVICENOW_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(sn.status().as_u16(), 200);
        let body: Value = sn.json().await.unwrap();
        assert_eq!(
            body["result"][0]["assigned_to.email"]["value"],
            "jane@contoso.com"
        );
        assert!(body["result"][0].get("state").is_none());
        let jira = client
            .get(format!(
                "{}/rest/api/3/issue/OPS-7?fields=status",
                fake.uri()
            ))
            .basic_auth(JIRA_EMAIL, Some(JIRA_API_TOKEN))
            .send()
            .await
            .unwrap();
        let body: Value = jira.json().await.unwrap();
        assert_eq!(body["fields"]["status"]["statusCategory"]["key"], "done");
        let refused = client
            .get(format!("{}/rest/api/3/issue/OPS-7", fake.uri()))
            .basic_auth(JIRA_EMAIL, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 401);
        assert_eq!(fake.lookups_of("INC0012345"), 1);
        assert_eq!(fake.lookups_of("OPS-7"), 2);
        assert!(!format!("{fake:?}").contains(SERVICENOW_PASSWORD));
    }
}
