//! Which system owns a cited reference, and the only shapes of number that ever reach a query.
//!
//! A reference is untrusted text. Before it goes near a URL it must be exactly a ServiceNow
//! number (`[A-Z]+[0-9]+`, reference §11.2: "allow only `[A-Z]+\d+`") or a Jira key
//! (`[A-Z][A-Z0-9_]+-[0-9]+`, §11.1); anything else is never looked up. The adapters check the
//! shape again themselves, and put the number into the URL through the URL builder, which
//! percent-encodes it.

use pim_domain::TicketSystemKind;

/// ServiceNow number prefixes and the Table API table each lives in (reference §11.1, plus
/// `TASK`, the base task table, which the justification parser also recognises).
pub const SERVICENOW_TABLES: &[(&str, &str)] = &[
    ("INC", "incident"),
    ("CHG", "change_request"),
    ("RITM", "sc_req_item"),
    ("REQ", "sc_request"),
    ("SCTASK", "sc_task"),
    ("PRB", "problem"),
    ("CTASK", "change_task"),
    ("TASK", "task"),
];

/// Longest number accepted: ServiceNow pads to 7 digits by default, Jira numbers stay far
/// below; anything longer is not a ticket and would only make a long URL.
const MAX_DIGITS: usize = 12;

/// Whether `s` is exactly `[A-Z]+[0-9]+` (at most 12 digits).
pub fn is_servicenow_number(s: &str) -> bool {
    let letters = s.bytes().take_while(u8::is_ascii_uppercase).count();
    let digits = &s.as_bytes()[letters..];
    letters > 0
        && !digits.is_empty()
        && digits.len() <= MAX_DIGITS
        && digits.iter().all(u8::is_ascii_digit)
}

/// Whether `s` is exactly `[A-Z][A-Z0-9_]+-[0-9]+` (at most 12 digits).
pub fn is_jira_key(s: &str) -> bool {
    let Some((project, number)) = s.split_once('-') else {
        return false;
    };
    let p = project.as_bytes();
    p.len() >= 2
        && p[0].is_ascii_uppercase()
        && p.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        && !number.is_empty()
        && number.len() <= MAX_DIGITS
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The table of a ServiceNow number (`INC0012345` → `incident`), when its prefix is known.
///
/// ```
/// use pim_tickets::servicenow_table;
/// assert_eq!(servicenow_table("INC0012345"), Some("incident"));
/// assert_eq!(servicenow_table("SCTASK0001"), Some("sc_task"));
/// assert_eq!(servicenow_table("SR0001"), None);
/// assert_eq!(servicenow_table("INC-1; DROP"), None);
/// ```
pub fn servicenow_table(number: &str) -> Option<&'static str> {
    if !is_servicenow_number(number) {
        return None;
    }
    let prefix: String = number
        .chars()
        .take_while(char::is_ascii_uppercase)
        .collect();
    SERVICENOW_TABLES
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, t)| *t)
}

/// Where a reference goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Look this number up in ServiceNow.
    ServiceNow(String),
    /// Look this key up in Jira.
    Jira(String),
    /// Nothing to look up; the reason says why.
    Unrouted(String),
}

impl Route {
    /// The system and number, when the reference is to be looked up.
    pub fn target(&self) -> Option<(TicketSystemKind, &str)> {
        match self {
            Self::ServiceNow(n) => Some((TicketSystemKind::Servicenow, n)),
            Self::Jira(k) => Some((TicketSystemKind::Jira, k)),
            Self::Unrouted(_) => None,
        }
    }
}

/// What the verifier knows about the configured systems when it routes.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    /// Whether ServiceNow is configured.
    pub servicenow: bool,
    /// The project keys that are Jira's (`PIM_JIRA_PROJECTS`), when Jira is configured.
    pub jira_projects: Option<&'a [String]>,
}

/// Routes one reference. `system_hint` is Entra's free-text `TicketSystem` for a reference from
/// Entra's ticket field: when it names Jira, a key-shaped number goes to Jira even if its
/// project is not listed (the person said which system it is in); justification text never
/// gets that benefit, so `SR-5521` in prose is not taken for a Jira key by accident.
///
/// ```
/// use pim_tickets::{Route, Routing, route};
/// let projects = vec!["OPS".to_owned()];
/// let both = Routing { servicenow: true, jira_projects: Some(&projects) };
/// assert_eq!(route("inc0042", None, both), Route::ServiceNow("INC0042".into()));
/// assert_eq!(route("INC-0042", None, both), Route::ServiceNow("INC0042".into()));
/// assert_eq!(route("OPS-7", None, both), Route::Jira("OPS-7".into()));
/// assert!(matches!(route("SR-5521", None, both), Route::Unrouted(_)));
/// assert_eq!(route("SEC-9", Some("Jira Cloud"), both), Route::Jira("SEC-9".into()));
/// ```
pub fn route(reference: &str, system_hint: Option<&str>, routing: Routing<'_>) -> Route {
    let r = reference.trim().to_ascii_uppercase();
    let hint_jira = system_hint.is_some_and(|h| h.to_ascii_lowercase().contains("jira"));
    if is_jira_key(&r)
        && let Some(projects) = routing.jira_projects
    {
        let project = r.split('-').next().unwrap_or_default();
        if hint_jira || projects.iter().any(|p| p.eq_ignore_ascii_case(project)) {
            return Route::Jira(r);
        }
    }
    // `INC-0042` is how people write `INC0042`; ServiceNow numbers carry no dash.
    let undashed = match r.split_once('-') {
        Some((p, n)) if is_servicenow_number(&format!("{p}{n}")) => format!("{p}{n}"),
        _ => r.clone(),
    };
    if let Some(table) = servicenow_table(&undashed) {
        if routing.servicenow {
            return Route::ServiceNow(undashed);
        }
        return Route::Unrouted(format!(
            "a ServiceNow number ({table}), but ServiceNow is not configured (PIM_SERVICENOW_URL)"
        ));
    }
    if is_jira_key(&r) {
        let project = r.split('-').next().unwrap_or_default();
        return Route::Unrouted(match routing.jira_projects {
            Some(_) => format!(
                "project {project} is not one of PIM_JIRA_PROJECTS and {} is not a ServiceNow prefix",
                undashed.trim_end_matches(|c: char| c.is_ascii_digit())
            ),
            None => "shaped like a Jira key, but Jira is not configured (PIM_JIRA_URL, PIM_JIRA_PROJECTS)"
                .to_owned(),
        });
    }
    Route::Unrouted("neither a known ServiceNow number nor a Jira key".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_strict() {
        for ok in ["INC0012345", "A1", "SCTASK0000001"] {
            assert!(is_servicenow_number(ok), "{ok}");
        }
        for bad in [
            "",
            "INC",
            "0012",
            "inc001",
            "INC-001",
            "INC001X",
            "INC 001",
            "INC0012345678901",
            "INC001^ORnumber=1",
        ] {
            assert!(!is_servicenow_number(bad), "{bad}");
        }
        for ok in ["OPS-1", "K8S-99", "MY_PROJ-12"] {
            assert!(is_jira_key(ok), "{ok}");
        }
        for bad in [
            "O-1",
            "ops-1",
            "OPS-",
            "OPS-1-2",
            "OPS-1/../x",
            "OPS-1?a=b",
            "1OPS-1",
            "OPS--1",
        ] {
            assert!(!is_jira_key(bad), "{bad}");
        }
    }

    #[test]
    fn routing_without_systems_says_what_is_missing() {
        let none = Routing {
            servicenow: false,
            jira_projects: None,
        };
        let Route::Unrouted(why) = route("INC0042", None, none) else {
            panic!()
        };
        assert!(why.contains("PIM_SERVICENOW_URL"), "{why}");
        let Route::Unrouted(why) = route("OPS-1", None, none) else {
            panic!()
        };
        assert!(why.contains("PIM_JIRA_URL"), "{why}");
        let projects = vec!["OPS".to_owned()];
        let jira = Routing {
            servicenow: false,
            jira_projects: Some(&projects),
        };
        let Route::Unrouted(why) = route("SR-5521", None, jira) else {
            panic!()
        };
        assert!(why.contains("PIM_JIRA_PROJECTS"), "{why}");
        assert!(matches!(route("hello", None, jira), Route::Unrouted(_)));
        // A ServiceNow hint does not send a Jira-shaped key to Jira, nor anywhere else.
        assert!(matches!(
            route("SEC-1", Some("ServiceNow"), jira),
            Route::Unrouted(_)
        ));
    }

    #[test]
    fn a_listed_jira_project_wins_over_a_servicenow_prefix() {
        let projects = vec!["CHG".to_owned()];
        let both = Routing {
            servicenow: true,
            jira_projects: Some(&projects),
        };
        assert_eq!(route("CHG-12", None, both), Route::Jira("CHG-12".into()));
        assert_eq!(
            route("CHG0012", None, both),
            Route::ServiceNow("CHG0012".into())
        );
    }
}
