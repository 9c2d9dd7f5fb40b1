//! Verifying the tickets a PIM activation cites (issue 14).
//!
//! Reviewers ask the same questions of every cited ticket: does it exist, is it open, and is it
//! this person's? This crate answers them from the ticket systems themselves:
//!
//! - [`TicketSystem`]: the port (`#[async_trait]`, held as `Arc<dyn TicketSystem>`): look up
//!   one number ([`TicketLookup`]: found with its evidence, not found, or failed with the
//!   reason) and `--check`'s probe;
//! - [`ServiceNow`]: the Table API, Basic or OAuth bearer ([`ServiceNowAuth`]), the table chosen
//!   by the number's prefix ([`SERVICENOW_TABLES`]), people's logins and e-mails read through
//!   dot-walked fields in the same request;
//! - [`Jira`]: Cloud (REST v3, e-mail + API token) or Data Center (REST v2, personal access
//!   token) ([`JiraAuth`]), open or closed from `statusCategory`;
//! - [`TicketVerifier`]: routes each reference ([`route`]: ServiceNow by prefix, Jira only for
//!   the configured projects), looks each distinct ticket up once per scan with bounded
//!   concurrency, and returns one [`TicketCheck`](pim_domain::TicketCheck) per cited
//!   reference, never fewer.
//!
//! Both adapters send every attempt through `pim-http`'s retry driver: 429 and 5xx are retried
//! under the shared [`RetryPolicy`](pim_domain::retry::RetryPolicy), a server's `Retry-After` is
//! honoured. Credentials are [`Secret`](pim_http::secret::Secret)s, shown as `[REDACTED]` by
//! every `Debug`, and scrubbed from any text a service echoes back. Only numbers of the exact
//! shapes `[A-Z]+[0-9]+` and `[A-Z][A-Z0-9_]+-[0-9]+` ever reach a request, through the URL
//! builder's encoding; justification text never does.
//!
//! What a ticket system returns is untrusted text: the rules scan it for prompt injection, the
//! report escapes it, and the model sees it only quoted as data.
//!
//! ```
//! use pim_tickets::{Route, Routing, route, servicenow_table};
//!
//! let projects = vec!["OPS".to_owned()];
//! let routing = Routing { servicenow: true, jira_projects: Some(&projects) };
//! assert_eq!(route("CHG0012345", None, routing), Route::ServiceNow("CHG0012345".into()));
//! assert_eq!(servicenow_table("CHG0012345"), Some("change_request"));
//! assert_eq!(route("OPS-42", None, routing), Route::Jira("OPS-42".into()));
//! // Text that merely looks like a key is not sent to Jira.
//! assert!(matches!(route("SR-5521", None, routing), Route::Unrouted(_)));
//! ```

mod error; // `Error`: only building a client can fail
mod http; // URL checks, credentials, the retried GET, timestamps
mod jira; // Jira Cloud (v3) and Data Center (v2)
mod port; // `TicketSystem`, `TicketLookup`
mod reference; // routing and the shapes that may reach a query
mod servicenow; // the ServiceNow Table API
mod verifier; // `TicketVerifier`: once per scan, bounded

pub use error::{Error, Result};
pub use http::check_base_url;
pub use jira::{Jira, JiraAuth, JiraOptions};
pub use port::{TicketLookup, TicketSystem};
pub use reference::{
    Route, Routing, SERVICENOW_TABLES, is_jira_key, is_servicenow_number, route, servicenow_table,
};
pub use servicenow::{PROBE_NUMBER, ServiceNow, ServiceNowAuth, ServiceNowOptions};
pub use verifier::{CitedTicket, DEFAULT_CONCURRENCY, TicketVerifier, VerifyStats, cited_tickets};
