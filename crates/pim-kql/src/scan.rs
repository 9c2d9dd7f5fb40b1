//! The scan queries: PIM events, then the activity of the elevated identities.
//!
//! Server-side filters only cut volume; every returned row is re-checked in Rust, so the queries
//! never reshape data: each ends with a fixed `project` of the raw columns the shared parser
//! reads, then `order by TimeGenerated asc`. The one value computed on the server is the
//! caller's object-id claim of an AzureActivity row ([`CALLER_OBJECT_ID`]), so that the
//! multi-kilobyte claims column never crosses the wire (issue 12; reference §9.3).
//!
//! The time range is also sent as the API `timespan` by the caller; Log Analytics uses the
//! intersection, so the time filter here is what keeps an offline replay of the query text
//! honest, and what makes split queries add up ([`QueryRange`]): a range split in two is
//! `[start, mid)` and `[mid, end]`, so a row at `mid` is returned once, whatever the service
//! does with the `timespan`'s end.

use pim_domain::TimeRange;

use crate::literal::{datetime_literal, string_list};
use crate::{Error, Result};

/// Default number of identities per activity query: keeps each `in~ (...)` list, and the query
/// text, well inside Log Analytics limits while needing few round trips.
pub const DEFAULT_CHUNK: usize = 200;

/// The three PIM operations that open or close an elevation window (reference §1.2, §1.8).
pub const PIM_OPERATIONS: [&str; 3] = [
    "Add member to role completed (PIM activation)",
    "Remove member from role (PIM activation expired)",
    "Remove member from role completed (PIM deactivate)",
];

/// AuditLogs columns projected by [`pim_events_query`] and [`directory_activity_queries`]:
/// what the PIM-events and directory-activity parsers read.
pub const AUDIT_COLUMNS: [&str; 15] = [
    "TimeGenerated",
    "ActivityDateTime",
    "OperationName",
    "ActivityDisplayName",
    "Category",
    "LoggedByService",
    "Result",
    "ResultReason",
    "ResultDescription",
    "Identity",
    "CorrelationId",
    "Id",
    "InitiatedBy",
    "TargetResources",
    "AdditionalDetails",
];

/// AzureActivity columns projected by [`azure_activity_queries`]: exactly what
/// `pim-correlate`'s parser reads. The claims are not among them: [`CALLER_OBJECT_ID`] carries
/// the one claim the parser needs, extracted on the server.
pub const ACTIVITY_COLUMNS: [&str; 13] = [
    "TimeGenerated",
    "Caller",
    "OperationNameValue",
    "ActivityStatusValue",
    "CategoryValue",
    "ResourceProviderValue",
    "ResourceGroup",
    "SubscriptionId",
    "_ResourceId",
    "ResourceId",
    "CorrelationId",
    "OperationId",
    CALLER_OBJECT_ID,
];

/// The column [`azure_activity_queries`] computes on the server: the caller's object id, from
/// the `objectidentifier` claim of `Claims_d` (else its `oid`), so the 1.5 KB or so of claims
/// per row stay in the workspace (reference §9.3). The parser reads it first and falls back to
/// the raw `Claims_d` / `Claims` columns of exports.
pub const CALLER_OBJECT_ID: &str = "CallerObjectId";

/// The claim that carries a caller's object id in `AzureActivity.Claims_d` (reference §2.3).
const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// The time range a scan query filters on, and whether its end is included.
///
/// A scan's own range is closed, `[start, end]` (a `From<TimeRange>` gives that, and the
/// query reads `TimeGenerated between (start .. end)` as it always did). When a query is split
/// because its result was cut, the first half is `[start, mid)` ([`QueryRange::split`]): the
/// query reads `TimeGenerated >= start and TimeGenerated < mid`, so the two halves never both
/// return a row stamped `mid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryRange {
    /// The range.
    pub range: TimeRange,
    /// Whether a row at exactly `range.end` belongs to it.
    pub end_inclusive: bool,
}

impl From<TimeRange> for QueryRange {
    fn from(range: TimeRange) -> Self {
        Self {
            range,
            end_inclusive: true,
        }
    }
}

impl QueryRange {
    /// Splits the range at its midpoint (rounded down to a whole second, so the two queries'
    /// literals and `timespan`s name the same instant): `[start, mid)` and `mid` to the end,
    /// which keeps this range's end rule. `None` when the range is too short to split (two
    /// seconds or less).
    ///
    /// ```
    /// use pim_domain::{timestamp::parse_timestamp, TimeRange};
    /// use pim_kql::QueryRange;
    /// let whole = QueryRange::from(TimeRange::new(
    ///     parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
    ///     parse_timestamp("2026-11-20T00:01:01Z").unwrap(),
    /// ));
    /// let (a, b) = whole.split().unwrap();
    /// assert_eq!(a.range.end, parse_timestamp("2026-11-20T00:00:30Z").unwrap());
    /// assert!(!a.end_inclusive && b.end_inclusive);
    /// assert_eq!(a.range.end, b.range.start);
    /// ```
    pub fn split(self) -> Option<(QueryRange, QueryRange)> {
        let TimeRange { start, end } = self.range;
        if end - start <= time::Duration::seconds(2) {
            return None;
        }
        let mid: time::OffsetDateTime = start + (end - start) / 2;
        let mid = mid.replace_nanosecond(0).unwrap_or(mid);
        if mid <= start || mid >= end {
            return None;
        }
        Some((
            QueryRange {
                range: TimeRange::new(start, mid),
                end_inclusive: false,
            },
            QueryRange {
                range: TimeRange::new(mid, end),
                end_inclusive: self.end_inclusive,
            },
        ))
    }

    /// The `where` predicate on `TimeGenerated`.
    pub(crate) fn predicate(&self) -> String {
        if self.end_inclusive {
            format!("TimeGenerated between ({})", between(self.range))
        } else {
            format!(
                "TimeGenerated >= {} and TimeGenerated < {}",
                datetime_literal(self.range.start),
                datetime_literal(self.range.end)
            )
        }
    }
}

/// An identity whose activity to fetch; at least one field should be set (identities with
/// neither are skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    /// User principal name, matched case-insensitively.
    pub upn: Option<String>,
    /// Entra object id (a GUID), matched case-insensitively.
    pub object_id: Option<String>,
}

/// The AuditLogs query for PIM activations, expiries and deactivations in `range`.
///
/// The operation name may be in `OperationName` or, when that is blank, `ActivityDisplayName`.
/// (Offline exports are not filtered at all: there a PIM operation name logged by another
/// service is reported as a problem by the parser.)
///
/// ```
/// use pim_domain::{timestamp::parse_timestamp, TimeRange};
/// let range = TimeRange::new(
///     parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
///     parse_timestamp("2026-11-21T00:00:00Z").unwrap(),
/// );
/// let q = pim_kql::pim_events_query(range);
/// assert!(q.starts_with("AuditLogs\n"));
/// assert!(q.ends_with("| order by TimeGenerated asc"));
/// ```
pub fn pim_events_query(range: impl Into<QueryRange>) -> String {
    let operations = pim_operation_list();
    format!(
        "AuditLogs\n\
         | where {}\n\
         | where LoggedByService =~ \"PIM\"\n\
         | where OperationName in~ ({operations}) or ActivityDisplayName in~ ({operations})\n\
         | project {}\n\
         | order by TimeGenerated asc",
        range.into().predicate(),
        AUDIT_COLUMNS.join(", ")
    )
}

/// [`PIM_OPERATIONS`] as a KQL list body (`"a", "b"`). The names are fixed text from this
/// crate, not input; the test `fixed_literals_need_no_escaping` checks they read the same through
/// `string_literal`.
fn pim_operation_list() -> String {
    PIM_OPERATIONS
        .iter()
        .map(|op| format!("\"{op}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// AzureActivity columns projected by [`activity_pim_events_query`]: where the Activity Log's PIM
/// rows carry their facts (reference §8.3). The legacy `OperationName` and the string
/// `Properties` are read through `column_ifexists`, since the placement is partly inferred.
pub const ACTIVITY_PIM_COLUMNS: [&str; 8] = [
    "TimeGenerated",
    "OperationNameValue",
    "ActivityStatusValue",
    "_ResourceId",
    "ResourceId",
    "CorrelationId",
    "EventDataId",
    "Properties_d",
];

/// The AzureActivity query for PIM activations, expiries and deactivations of Azure resource
/// roles in `range` (reference §8): Administrative rows whose operation name is one of
/// [`PIM_OPERATIONS`] (in `OperationNameValue` or the legacy `OperationName`), or whose
/// properties say `ResourceProviderName` `azurerbac`.
///
/// ```
/// use pim_domain::{timestamp::parse_timestamp, TimeRange};
/// let range = TimeRange::new(
///     parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
///     parse_timestamp("2026-11-21T00:00:00Z").unwrap(),
/// );
/// let q = pim_kql::activity_pim_events_query(range);
/// assert!(q.starts_with("AzureActivity\n"));
/// assert!(q.contains("\"azurerbac\""));
/// ```
pub fn activity_pim_events_query(range: impl Into<QueryRange>) -> String {
    let operations = pim_operation_list();
    format!(
        "AzureActivity\n\
         | where {}\n\
         | where CategoryValue =~ \"Administrative\"\n\
         | extend OperationName = tostring(column_ifexists(\"OperationName\", \"\")), Properties = tostring(column_ifexists(\"Properties\", \"\"))\n\
         | where OperationNameValue in~ ({operations}) or OperationName in~ ({operations})\n    \
         or tostring(Properties_d.ResourceProviderName) =~ \"azurerbac\" or Properties has \"azurerbac\"\n\
         | project {}, OperationName, Properties\n\
         | order by TimeGenerated asc",
        range.into().predicate(),
        ACTIVITY_PIM_COLUMNS.join(", ")
    )
}

/// AzureActivity queries for the Administrative operations of `identities` in `range`, one
/// query per `chunk` identities (use [`DEFAULT_CHUNK`]).
///
/// A row matches when `Caller` is one of the UPNs or object ids (service principals appear as
/// their object id, reference §2.3) or when the `objectidentifier` claim in `Claims_d` is one of
/// the object ids (survives UPN renames and guest `#EXT#` UPNs).
///
/// All status rows (Start, Accept, Success, Failure) are kept whatever `include_failed` says:
/// the Rust side collapses the rows of one operation into its final status, and if Failure rows
/// were dropped here a failed operation would collapse to its Start row and look like an
/// operation still in progress. `include_failed` is applied after that collapse; the parameter
/// stays so callers state their intent and a future server-side optimisation has its input.
///
/// # Errors
///
/// [`Error::ZeroChunk`] when `chunk` is 0, or the literal error for an identity value that
/// cannot be quoted safely. An empty (or all-empty) identity list gives an empty `Vec`.
pub fn azure_activity_queries(
    identities: &[Identity],
    range: impl Into<QueryRange>,
    include_failed: bool,
    chunk: usize,
) -> Result<Vec<String>> {
    let _ = include_failed;
    let range = range.into();
    chunked(identities, chunk, |upns, oids| {
        let callers: Vec<&str> = upns.iter().chain(oids.iter()).copied().collect();
        let mut clauses = vec![format!("Caller in~ {}", string_list(&callers)?)];
        if !oids.is_empty() {
            clauses.push(format!("{CALLER_OBJECT_ID} in~ {}", string_list(oids)?));
        }
        Ok(format!(
            "AzureActivity\n\
             | where {}\n\
             | where CategoryValue =~ \"Administrative\"\n\
             | extend {CALLER_OBJECT_ID} = coalesce(tostring(Claims_d[\"{OBJECT_ID_CLAIM}\"]), tostring(Claims_d.oid))\n\
             | where {}\n\
             | project {}\n\
             | order by TimeGenerated asc",
            range.predicate(),
            clauses.join("\n    or "),
            ACTIVITY_COLUMNS.join(", ")
        ))
    })
}

/// AuditLogs queries for directory changes initiated by `identities` in `range` (everything not
/// logged by PIM itself), one query per `chunk` identities.
///
/// # Errors
///
/// As [`azure_activity_queries`].
pub fn directory_activity_queries(
    identities: &[Identity],
    range: impl Into<QueryRange>,
    chunk: usize,
) -> Result<Vec<String>> {
    let range = range.into();
    chunked(identities, chunk, |upns, oids| {
        let mut clauses = Vec::new();
        if !upns.is_empty() {
            clauses.push(format!(
                "tostring(InitiatedBy.user.userPrincipalName) in~ {}",
                string_list(upns)?
            ));
        }
        if !oids.is_empty() {
            clauses.push(format!(
                "tostring(InitiatedBy.user.id) in~ {}",
                string_list(oids)?
            ));
        }
        Ok(format!(
            "AuditLogs\n\
             | where {}\n\
             | where LoggedByService !~ \"PIM\"\n\
             | where {}\n\
             | project {}\n\
             | order by TimeGenerated asc",
            range.predicate(),
            clauses.join("\n    or "),
            AUDIT_COLUMNS.join(", ")
        ))
    })
}

fn between(range: TimeRange) -> String {
    format!(
        "{} .. {}",
        datetime_literal(range.start),
        datetime_literal(range.end)
    )
}

/// Splits the usable identities into chunks and builds one query per chunk from its UPNs and
/// object ids (blank values dropped, duplicates removed case-insensitively).
pub(crate) fn chunked(
    identities: &[Identity],
    chunk: usize,
    build: impl Fn(&[&str], &[&str]) -> Result<String>,
) -> Result<Vec<String>> {
    if chunk == 0 {
        return Err(Error::ZeroChunk);
    }
    let usable: Vec<(Option<&str>, Option<&str>)> = identities
        .iter()
        .map(|i| (non_blank(&i.upn), non_blank(&i.object_id)))
        .filter(|(u, o)| u.is_some() || o.is_some())
        .collect();
    usable
        .chunks(chunk)
        .map(|part| {
            let upns = dedup(part.iter().filter_map(|(u, _)| *u));
            let oids = dedup(part.iter().filter_map(|(_, o)| *o));
            build(&upns, &oids)
        })
        .collect()
}

fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn dedup<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    values.filter(|v| seen.insert(v.to_lowercase())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::literal::string_literal;
    use pim_domain::timestamp::parse_timestamp;

    const HOSTILE_UPN: &str = "o'brien\"x@contoso.com";

    fn range() -> TimeRange {
        TimeRange::new(
            parse_timestamp("2026-11-20T09:13:58.1234567Z").unwrap(),
            parse_timestamp("2026-11-20T13:13:58Z").unwrap(),
        )
    }

    fn hostile() -> Vec<Identity> {
        vec![
            Identity {
                upn: Some(HOSTILE_UPN.into()),
                object_id: Some("3f1e0000-0000-4000-8000-000000000001".into()),
            },
            Identity {
                upn: Some("jane@contoso.com".into()),
                object_id: None,
            },
        ]
    }

    /// Every `"` in the query must be part of a literal that decodes cleanly; the quote count
    /// outside literals is zero.
    fn assert_literals_balanced(q: &str) {
        let mut rest = q;
        while let Some(i) = rest.find('"') {
            let start = if i > 0 && rest.as_bytes()[i - 1] == b'h' {
                i - 1
            } else {
                i
            };
            let (_, after) = crate::literal::tests::decode_literal(&rest[start..])
                .unwrap_or_else(|| panic!("bad literal in {q}"));
            rest = after;
        }
    }

    #[test]
    fn activity_pim_events_query_snapshot() {
        let q = activity_pim_events_query(range());
        insta::assert_snapshot!(q, @r#"
        AzureActivity
        | where TimeGenerated between (datetime(2026-11-20T09:13:58.1234567Z) .. datetime(2026-11-20T13:13:58.0000000Z))
        | where CategoryValue =~ "Administrative"
        | extend OperationName = tostring(column_ifexists("OperationName", "")), Properties = tostring(column_ifexists("Properties", ""))
        | where OperationNameValue in~ ("Add member to role completed (PIM activation)", "Remove member from role (PIM activation expired)", "Remove member from role completed (PIM deactivate)") or OperationName in~ ("Add member to role completed (PIM activation)", "Remove member from role (PIM activation expired)", "Remove member from role completed (PIM deactivate)")
            or tostring(Properties_d.ResourceProviderName) =~ "azurerbac" or Properties has "azurerbac"
        | project TimeGenerated, OperationNameValue, ActivityStatusValue, _ResourceId, ResourceId, CorrelationId, EventDataId, Properties_d, OperationName, Properties
        | order by TimeGenerated asc
        "#);
        assert_literals_balanced(&q);
    }

    #[test]
    fn pim_events_query_snapshot() {
        let q = pim_events_query(range());
        insta::assert_snapshot!(q, @r#"
        AuditLogs
        | where TimeGenerated between (datetime(2026-11-20T09:13:58.1234567Z) .. datetime(2026-11-20T13:13:58.0000000Z))
        | where LoggedByService =~ "PIM"
        | where OperationName in~ ("Add member to role completed (PIM activation)", "Remove member from role (PIM activation expired)", "Remove member from role completed (PIM deactivate)") or ActivityDisplayName in~ ("Add member to role completed (PIM activation)", "Remove member from role (PIM activation expired)", "Remove member from role completed (PIM deactivate)")
        | project TimeGenerated, ActivityDateTime, OperationName, ActivityDisplayName, Category, LoggedByService, Result, ResultReason, ResultDescription, Identity, CorrelationId, Id, InitiatedBy, TargetResources, AdditionalDetails
        | order by TimeGenerated asc
        "#);
        assert_literals_balanced(&q);
    }

    #[test]
    fn azure_activity_snapshot_with_hostile_upn() {
        let qs = azure_activity_queries(&hostile(), range(), false, DEFAULT_CHUNK).unwrap();
        assert_eq!(qs.len(), 1);
        insta::assert_snapshot!(qs[0], @r#"
        AzureActivity
        | where TimeGenerated between (datetime(2026-11-20T09:13:58.1234567Z) .. datetime(2026-11-20T13:13:58.0000000Z))
        | where CategoryValue =~ "Administrative"
        | extend CallerObjectId = coalesce(tostring(Claims_d["http://schemas.microsoft.com/identity/claims/objectidentifier"]), tostring(Claims_d.oid))
        | where Caller in~ (h"o'brien\"x@contoso.com", h"jane@contoso.com", h"3f1e0000-0000-4000-8000-000000000001")
            or CallerObjectId in~ (h"3f1e0000-0000-4000-8000-000000000001")
        | project TimeGenerated, Caller, OperationNameValue, ActivityStatusValue, CategoryValue, ResourceProviderValue, ResourceGroup, SubscriptionId, _ResourceId, ResourceId, CorrelationId, OperationId, CallerObjectId
        | order by TimeGenerated asc
        "#);
        assert_literals_balanced(&qs[0]);
        // include_failed does not change the query (see the function docs).
        assert_eq!(
            qs,
            azure_activity_queries(&hostile(), range(), true, DEFAULT_CHUNK).unwrap()
        );
    }

    #[test]
    fn directory_activity_snapshot_with_hostile_upn() {
        let qs = directory_activity_queries(&hostile(), range(), DEFAULT_CHUNK).unwrap();
        assert_eq!(qs.len(), 1);
        insta::assert_snapshot!(qs[0], @r#"
        AuditLogs
        | where TimeGenerated between (datetime(2026-11-20T09:13:58.1234567Z) .. datetime(2026-11-20T13:13:58.0000000Z))
        | where LoggedByService !~ "PIM"
        | where tostring(InitiatedBy.user.userPrincipalName) in~ (h"o'brien\"x@contoso.com", h"jane@contoso.com")
            or tostring(InitiatedBy.user.id) in~ (h"3f1e0000-0000-4000-8000-000000000001")
        | project TimeGenerated, ActivityDateTime, OperationName, ActivityDisplayName, Category, LoggedByService, Result, ResultReason, ResultDescription, Identity, CorrelationId, Id, InitiatedBy, TargetResources, AdditionalDetails
        | order by TimeGenerated asc
        "#);
        assert_literals_balanced(&qs[0]);
    }

    #[test]
    fn injection_attempts_stay_inside_literals() {
        for upn in [
            "\" or 1==1 //",
            "x\" | take 1 //",
            "a\\\" or true or \"",
            "line\nbreak | union AzureActivity",
            "'; drop //",
        ] {
            let ids = [Identity {
                upn: Some(upn.into()),
                object_id: Some(upn.into()),
            }];
            // The same queries for a harmless identity have the lines any input must keep.
            let plain = [Identity {
                upn: Some("plain@contoso.com".into()),
                object_id: Some("plain-oid".into()),
            }];
            let lines =
                |qs: Vec<String>| -> Vec<usize> { qs.iter().map(|q| q.lines().count()).collect() };
            let want = [
                lines(azure_activity_queries(&plain, range(), false, 10).unwrap()),
                lines(directory_activity_queries(&plain, range(), 10).unwrap()),
            ];
            assert_eq!(want, [vec![8], vec![7]]);
            let azure = azure_activity_queries(&ids, range(), false, 10).unwrap();
            let directory = directory_activity_queries(&ids, range(), 10).unwrap();
            for q in azure.iter().chain(&directory) {
                assert_literals_balanced(q);
            }
            assert_eq!(
                [lines(azure.clone()), lines(directory.clone())],
                want,
                "an input newline leaked: {azure:?} {directory:?}"
            );
        }
    }

    #[test]
    fn unsafe_identity_is_an_error_not_a_query() {
        let ids = [Identity {
            upn: Some("a\u{0}@x.com".into()),
            object_id: None,
        }];
        assert!(matches!(
            azure_activity_queries(&ids, range(), false, 10),
            Err(Error::UnsafeCharacter { .. })
        ));
        assert!(directory_activity_queries(&ids, range(), 10).is_err());
    }

    #[test]
    fn chunking_and_empty_lists() {
        let ids: Vec<Identity> = (0..5)
            .map(|i| Identity {
                upn: Some(format!("u{i}@x.com")),
                object_id: None,
            })
            .collect();
        let qs = azure_activity_queries(&ids, range(), false, 2).unwrap();
        assert_eq!(qs.len(), 3);
        assert!(qs[2].contains("h\"u4@x.com\"") && !qs[2].contains("u3@"));
        // No object ids: no object-id / InitiatedBy.user.id clause.
        assert!(!qs[0].contains("CallerObjectId in~"));
        let dq = directory_activity_queries(&ids, range(), 2).unwrap();
        assert!(!dq[0].contains("InitiatedBy.user.id"));

        assert!(
            azure_activity_queries(&[], range(), false, 2)
                .unwrap()
                .is_empty()
        );
        let blank = [Identity {
            upn: Some("  ".into()),
            object_id: None,
        }];
        assert!(
            directory_activity_queries(&blank, range(), 2)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            azure_activity_queries(&ids, range(), false, 0).unwrap_err(),
            Error::ZeroChunk
        );
    }

    #[test]
    fn duplicate_identities_are_listed_once() {
        let ids = [
            Identity {
                upn: Some("Jane@Contoso.com".into()),
                object_id: None,
            },
            Identity {
                upn: Some("jane@contoso.com".into()),
                object_id: None,
            },
        ];
        let q = &directory_activity_queries(&ids, range(), 10).unwrap()[0];
        assert_eq!(q.matches("ontoso.com").count(), 1, "{q}");
    }

    #[test]
    fn a_split_range_is_half_open_so_boundary_rows_are_read_once() {
        let whole = QueryRange::from(range());
        let (first, second) = whole.split().unwrap();
        assert_eq!(first.range.start, whole.range.start);
        assert_eq!(first.range.end, second.range.start);
        assert_eq!(second.range.end, whole.range.end);
        assert_eq!(first.range.end.nanosecond(), 0);
        let q = pim_events_query(first);
        assert!(
            q.contains("| where TimeGenerated >= datetime(2026-11-20T09:13:58.1234567Z) and TimeGenerated < datetime(2026-11-20T11:13:58.0000000Z)\n"),
            "{q}"
        );
        // The last part keeps the scan's closed end.
        let q = pim_events_query(second);
        assert!(
            q.contains("| where TimeGenerated between (datetime(2026-11-20T11:13:58.0000000Z) .. datetime(2026-11-20T13:13:58.0000000Z))\n"),
            "{q}"
        );
        // Splitting the first half again keeps every part but the last half-open.
        let (a, b) = first.split().unwrap();
        assert!(!a.end_inclusive && !b.end_inclusive);
        let ids = hostile();
        for q in azure_activity_queries(&ids, a, false, 10)
            .unwrap()
            .into_iter()
            .chain(directory_activity_queries(&ids, b, 10).unwrap())
            .chain([activity_pim_events_query(a)])
        {
            assert!(q.contains("TimeGenerated < datetime("), "{q}");
            assert!(!q.contains("between"), "{q}");
        }
    }

    #[test]
    fn ranges_of_two_seconds_or_less_do_not_split() {
        let start = range().start;
        let short = QueryRange::from(TimeRange::new(start, start + time::Duration::seconds(2)));
        assert_eq!(short.split(), None);
        let minute = QueryRange::from(TimeRange::new(start, start + time::Duration::minutes(1)));
        let (a, b) = minute.split().unwrap();
        assert!(a.range.end > a.range.start && b.range.end > b.range.start);
    }

    #[test]
    fn activity_queries_project_only_what_the_parser_reads() {
        let q = &azure_activity_queries(&hostile(), range(), false, 10).unwrap()[0];
        let project = q.lines().find(|l| l.starts_with("| project ")).unwrap();
        assert!(!project.contains("Claims"), "{project}");
        assert!(project.ends_with(CALLER_OBJECT_ID), "{project}");
        assert_eq!(
            project.trim_start_matches("| project ").split(", ").count(),
            ACTIVITY_COLUMNS.len()
        );
    }

    #[test]
    fn fixed_literals_need_no_escaping() {
        for op in PIM_OPERATIONS.iter().chain([&OBJECT_ID_CLAIM]) {
            assert_eq!(string_literal(op).unwrap(), format!("\"{op}\""));
        }
    }
}
