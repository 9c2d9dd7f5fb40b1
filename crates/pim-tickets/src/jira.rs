//! Jira Cloud (REST v3) and Data Center (REST v2) (reference §11.3).
//!
//! One request per issue: `GET {site}/rest/api/{3|2}/issue/{KEY}?fields=status,assignee,reporter,summary,created,resolutiondate`.
//! Which API follows from the credential: an API token (`PIM_JIRA_EMAIL` + `PIM_JIRA_API_TOKEN`,
//! Basic) exists only on Cloud, which gets v3; a personal access token (`PIM_JIRA_PAT`,
//! Bearer) exists only on Data Center, which gets v2. The fields read are the same in both.
//!
//! Open or closed comes from `status.statusCategory.key` (`new`, `indeterminate`, `done`),
//! never from the per-project status name; the closing time is `resolutiondate`. People are
//! `{accountId, displayName, emailAddress?}` on Cloud (`emailAddress` absent when profile
//! visibility hides it) and `{name, key, emailAddress}` on Data Center.
//!
//! Jira answers 404 both for an issue that does not exist and for one the integration user
//! may not see, so a 404 is *unverified*, not "not found" (§11.3: "report 'not verifiable'").

use std::time::Duration;

use async_trait::async_trait;
use pim_domain::retry::RetryPolicy;
use pim_domain::{TicketEvidence, TicketPerson, TicketSystemKind};
use pim_http::secret::Secret;
use serde_json::Value;

use crate::http::{self, Auth, Client, parse_time};
use crate::reference::is_jira_key;
use crate::{Result, TicketLookup, TicketSystem};

const FIELDS: &str = "status,assignee,reporter,summary,created,resolutiondate";

/// How the integration user signs in.
#[derive(Clone)]
pub enum JiraAuth {
    /// Jira Cloud: Basic with the account's e-mail and an API token (REST v3).
    Cloud {
        /// `PIM_JIRA_EMAIL`.
        email: String,
        /// `PIM_JIRA_API_TOKEN`.
        api_token: Secret,
    },
    /// Jira Data Center: a personal access token as `Authorization: Bearer` (REST v2).
    DataCenter(Secret),
}

impl JiraAuth {
    fn api(&self) -> &'static str {
        match self {
            Self::Cloud { .. } => "3",
            Self::DataCenter(_) => "2",
        }
    }
}

impl std::fmt::Debug for JiraAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&Auth::from(self.clone()), f)
    }
}

impl From<JiraAuth> for Auth {
    fn from(auth: JiraAuth) -> Self {
        match auth {
            JiraAuth::Cloud { email, api_token } => Auth::Basic {
                user: email,
                password: api_token,
            },
            JiraAuth::DataCenter(pat) => Auth::Bearer(pat),
        }
    }
}

/// Options of the Jira client.
#[derive(Clone)]
pub struct JiraOptions {
    /// Each request's timeout (default 30 s).
    pub timeout: Duration,
    /// Retries of 429, 5xx and transport failures (default: the shared policy).
    pub retry: RetryPolicy,
    /// A client to use instead of one built from `timeout` (never printed).
    pub client: Option<reqwest::Client>,
}

impl Default for JiraOptions {
    fn default() -> Self {
        Self {
            timeout: http::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            client: None,
        }
    }
}

impl std::fmt::Debug for JiraOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraOptions")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("client", &self.client.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// The Jira REST client.
#[derive(Debug, Clone)]
pub struct Jira {
    client: Client,
    api: &'static str,
    /// The project `--check` probes (the first of `PIM_JIRA_PROJECTS`).
    probe_project: String,
}

impl Jira {
    /// A client for the site at `url`; `probe_project` is the project whose issue 0 (which
    /// never exists) `--check` reads.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming `PIM_JIRA_URL` for a URL that is not
    /// https (plain http only on loopback) or carries user info, a query or a fragment, or
    /// `PIM_JIRA_PROJECTS` for a project key that is not `[A-Z][A-Z0-9_]+`;
    /// [`Error::Client`](crate::Error::Client) when the HTTP client cannot be built.
    pub fn new(
        url: &str,
        auth: JiraAuth,
        probe_project: &str,
        options: Option<JiraOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        if !is_jira_key(&format!("{probe_project}-0")) {
            return Err(crate::Error::Config {
                variable: "PIM_JIRA_PROJECTS",
                problem: format!(
                    "{:?} is not a Jira project key (upper-case letters, then letters, digits or _)",
                    pim_domain::text::clip(probe_project, 40)
                ),
            });
        }
        Ok(Self {
            api: auth.api(),
            client: Client {
                http: http::http_client(options.client, options.timeout)?,
                base: http::base_url(url, "PIM_JIRA_URL")?,
                auth: auth.into(),
                retry: options.retry,
                system: "Jira",
            },
            probe_project: probe_project.to_owned(),
        })
    }

    fn url(&self, key: &str) -> Option<reqwest::Url> {
        let mut url = self.client.base.join("rest/api/").ok()?;
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .push(self.api)
            .push("issue")
            .push(key);
        url.query_pairs_mut().append_pair("fields", FIELDS);
        Some(url)
    }
}

#[async_trait]
impl TicketSystem for Jira {
    fn kind(&self) -> TicketSystemKind {
        TicketSystemKind::Jira
    }

    async fn lookup(&self, key: &str) -> TicketLookup {
        if !is_jira_key(key) {
            return TicketLookup::Failed(format!("{key:?} is not a Jira key this tool looks up"));
        }
        let Some(url) = self.url(key) else {
            return TicketLookup::Failed("the Jira URL cannot take an API path".to_owned());
        };
        let reply = match self.client.get(url, &[200, 404], "Jira issue lookup").await {
            Ok(reply) => reply,
            Err(stop) => return TicketLookup::Failed(self.client.describe(&stop)),
        };
        if reply.status == 404 {
            return TicketLookup::Failed(format!(
                "Jira answered 404 for {key} ({}): the issue does not exist or the integration user may not see it, which Jira does not tell apart; give the user Browse Projects on {} to make it verifiable",
                http::service_message(&reply.body).unwrap_or(reply.text),
                key.split('-').next().unwrap_or_default()
            ));
        }
        let Some(fields) = reply.body.get("fields").filter(|f| f.is_object()) else {
            return TicketLookup::Failed(format!(
                "Jira answered 200 without issue fields: {}",
                reply.text
            ));
        };
        let number = reply
            .body
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or(key)
            .to_owned();
        if !number.eq_ignore_ascii_case(key) {
            // A moved issue answers under its new key; the evidence says which.
            tracing::debug!(asked = key, answered = %pim_domain::text::log_field(&number, 40), "Jira answered under another key");
        }
        let status = fields.get("status");
        let category = status
            .and_then(|s| s.get("statusCategory"))
            .and_then(|c| c.get("key"))
            .and_then(Value::as_str);
        TicketLookup::Found(Box::new(TicketEvidence {
            number,
            state: status
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            open: category.map(|c| !c.eq_ignore_ascii_case("done")),
            assignee: person(fields.get("assignee")),
            requester: person(fields.get("reporter")),
            caller: None,
            opened_at: text(fields, "created").and_then(parse_time),
            closed_at: text(fields, "resolutiondate").and_then(parse_time),
            short_description: text(fields, "summary").map(str::to_owned),
        }))
    }

    async fn probe(&self) -> Result<String, String> {
        let host = self.client.base.host_str().unwrap_or_default().to_owned();
        let key = format!("{}-0", self.probe_project);
        let Some(url) = self.url(&key) else {
            return Err("the Jira URL cannot take an API path; fix: set PIM_JIRA_URL to the site's base URL".to_owned());
        };
        match self.client.get(url, &[200, 404], "Jira probe").await {
            Ok(reply) if reply.status == 404 && reply.body.get("errorMessages").is_some() => {
                Ok(format!(
                    "{host} answered REST v{} and signed the user in; {key} (which does not exist) is 404 as expected (Jira gives the same 404 for a project the user may not browse, so check Browse Projects on PIM_JIRA_PROJECTS)",
                    self.api
                ))
            }
            Ok(reply) if reply.status == 404 => Err(format!(
                "{host} answered 404 without Jira's error body ({}); fix: set PIM_JIRA_URL to the site's base URL (https://<site>.atlassian.net, or the Data Center base URL), without /rest",
                reply.text
            )),
            Ok(_) => Ok(format!(
                "{host} answered REST v{} and signed the user in",
                self.api
            )),
            Err(stop) => {
                let problem = self.client.describe(&stop);
                let fix = match (http::stop_status(&stop), self.api) {
                    (Some(401), "3") => {
                        "check PIM_JIRA_EMAIL and PIM_JIRA_API_TOKEN (create an API token at id.atlassian.com for that account)"
                    }
                    (Some(401), _) => {
                        "renew PIM_JIRA_PAT (a personal access token of the integration user, Data Center 8.14 or later)"
                    }
                    (Some(403), _) => {
                        "the user is signed in but refused: give it Browse Projects on the projects of PIM_JIRA_PROJECTS (and, on Cloud, make sure the site allows API tokens)"
                    }
                    (Some(429), _) => "Jira throttles the integration user; run --check later",
                    _ => "check PIM_JIRA_URL and network access to the site",
                };
                Err(format!("{problem}; fix: {fix}"))
            }
        }
    }
}

fn text<'v>(fields: &'v Value, name: &str) -> Option<&'v str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn person(value: Option<&Value>) -> Option<TicketPerson> {
    let v = value.filter(|v| v.is_object())?;
    let s = |k: &str| text(v, k).map(str::to_owned);
    let p = TicketPerson {
        name: s("displayName"),
        email: s("emailAddress"),
        user_name: s("name"),
        id: s("accountId").or_else(|| s("key")),
    };
    (p != TicketPerson::default()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_picks_the_api() {
        let cloud = Jira::new(
            "https://acme.atlassian.net",
            JiraAuth::Cloud {
                email: "svc@acme.com".into(),
                api_token: Secret::new("api-tok-1"),
            },
            "OPS",
            None,
        )
        .unwrap();
        assert_eq!(
            cloud.url("OPS-7").unwrap().as_str(),
            "https://acme.atlassian.net/rest/api/3/issue/OPS-7?fields=status%2Cassignee%2Creporter%2Csummary%2Ccreated%2Cresolutiondate"
        );
        let dc = Jira::new(
            "https://jira.acme.com/jira",
            JiraAuth::DataCenter(Secret::new("pat-2")),
            "OPS",
            None,
        )
        .unwrap();
        assert!(
            dc.url("OPS-7")
                .unwrap()
                .as_str()
                .starts_with("https://jira.acme.com/jira/rest/api/2/issue/OPS-7?")
        );
        let text = format!("{cloud:?} {dc:?}");
        assert!(
            !text.contains("api-tok-1") && !text.contains("pat-2"),
            "{text}"
        );
        assert!(
            Jira::new(
                "https://acme.atlassian.net",
                JiraAuth::DataCenter(Secret::new("p")),
                "ops",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn people_of_cloud_and_data_center() {
        let cloud = serde_json::json!({"accountId": "5b10a2844c20165700ede21g", "displayName": "Jane", "active": true});
        let p = person(Some(&cloud)).unwrap();
        assert_eq!(p.id.as_deref(), Some("5b10a2844c20165700ede21g"));
        assert_eq!(p.email, None);
        let dc = serde_json::json!({"name": "jane", "key": "JIRAUSER1", "emailAddress": "jane@contoso.com"});
        let p = person(Some(&dc)).unwrap();
        assert_eq!(p.user_name.as_deref(), Some("jane"));
        assert_eq!(person(Some(&Value::Null)), None);
    }
}
