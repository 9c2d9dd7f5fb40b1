//! The behaviour-baseline queries (issue 14, item 4): what the activated identities did, and how
//! often they activated roles, over the days before the scan window.
//!
//! Unlike the scan queries these summarize on the server: one row per identity, operation and
//! resource type, so a 30-day history of thousands of operations comes back as a few hundred
//! rows. Every query names all the identities at once (chunked only when the source caps the
//! identities per query), every identity is an obfuscated literal, and the time filter is the
//! half-open `[start, end)` of [`QueryRange`] so that the period never includes the window's
//! first instant.
//!
//! The key columns are computed exactly as `pim_domain::baseline::OperationKey` computes them
//! in Rust, lower case: `Operation` is `OperationNameValue` (AzureActivity) or the
//! `OperationName`, else `ActivityDisplayName` (AuditLogs); `ResourceType` is the two segments
//! after the first `/providers/` of `_ResourceId` (else `ResourceId`), or the type of the first
//! `TargetResources` entry. The output columns are [`BASELINE_COLUMNS`] and
//! [`ACTIVATION_COUNT_COLUMNS`].

use crate::scan::{CALLER_OBJECT_ID, Identity, PIM_OPERATIONS, QueryRange};
use crate::{Result, string_list};

/// The columns of a baseline query's answer: `Upn` and `ObjectId` (lower case; for
/// AzureActivity the `Caller`, which is an object id for service principals, and the caller's
/// object-id claim), `Operation`, `ResourceType` and `Count` (log records).
pub const BASELINE_COLUMNS: [&str; 5] = ["Upn", "ObjectId", "Operation", "ResourceType", "Count"];

/// The columns of the activation-count query's answer: `Upn`, `ObjectId` (lower case) and
/// `Activations`.
pub const ACTIVATION_COUNT_COLUMNS: [&str; 3] = ["Upn", "ObjectId", "Activations"];

/// The claim that carries a caller's object id in `AzureActivity.Claims_d` (reference §2.3).
const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// The AzureActivity baseline queries: the Administrative operations of `identities` in
/// `range`, counted by identity, operation and ARM resource type; one query per `chunk`
/// identities (pass `usize::MAX` when the source has no cap).
///
/// # Errors
///
/// [`Error::ZeroChunk`](crate::Error::ZeroChunk), or the literal error for an identity value
/// that cannot be quoted safely. No usable identity gives an empty `Vec`.
///
/// ```
/// use pim_domain::{timestamp::parse_timestamp, TimeRange};
/// use pim_kql::{azure_baseline_queries, Identity, QueryRange};
/// let range = QueryRange {
///     range: TimeRange::new(
///         parse_timestamp("2026-10-21T09:00:00Z").unwrap(),
///         parse_timestamp("2026-11-20T09:00:00Z").unwrap(),
///     ),
///     end_inclusive: false,
/// };
/// let who = [Identity { upn: Some("jane@contoso.com".into()), object_id: None }];
/// let q = &azure_baseline_queries(&who, range, 200).unwrap()[0];
/// assert!(q.contains("| summarize Count = count() by Upn"));
/// ```
pub fn azure_baseline_queries(
    identities: &[Identity],
    range: QueryRange,
    chunk: usize,
) -> Result<Vec<String>> {
    crate::scan::chunked(identities, chunk, |upns, oids| {
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
             | extend ResourceType = extract(\"/providers/([^/]+/[^/]+)\", 1, tolower(coalesce(_ResourceId, ResourceId)))\n\
             | summarize Count = count() by Upn = tolower(Caller), ObjectId = tolower({CALLER_OBJECT_ID}), Operation = tolower(OperationNameValue), ResourceType\n\
             | order by Upn asc, ObjectId asc, Operation asc, ResourceType asc",
            range.predicate(),
            clauses.join("\n    or "),
        ))
    })
}

/// The AuditLogs baseline queries: the directory changes `identities` initiated in `range`
/// (everything not logged by PIM itself), counted by identity, operation and target type.
///
/// # Errors
///
/// As [`azure_baseline_queries`].
pub fn directory_baseline_queries(
    identities: &[Identity],
    range: QueryRange,
    chunk: usize,
) -> Result<Vec<String>> {
    crate::scan::chunked(identities, chunk, |upns, oids| {
        Ok(format!(
            "AuditLogs\n\
             | where {}\n\
             | where LoggedByService !~ \"PIM\"\n\
             | where {}\n\
             | extend Operation = tolower(iff(isempty(OperationName), ActivityDisplayName, OperationName)), ResourceType = tolower(tostring(TargetResources[0].type))\n\
             | summarize Count = count() by Upn = tolower(tostring(InitiatedBy.user.userPrincipalName)), ObjectId = tolower(tostring(InitiatedBy.user.id)), Operation, ResourceType\n\
             | order by Upn asc, ObjectId asc, Operation asc, ResourceType asc",
            range.predicate(),
            initiated_by(upns, oids)?,
        ))
    })
}

/// The AuditLogs queries that count the completed PIM activations of `identities` in `range`
/// (reference §1.2: `Add member to role completed (PIM activation)`), one row per identity.
/// The activated user is the initiator of the activation record (reference §1.6).
///
/// # Errors
///
/// As [`azure_baseline_queries`].
pub fn activation_count_queries(
    identities: &[Identity],
    range: QueryRange,
    chunk: usize,
) -> Result<Vec<String>> {
    let activation = PIM_OPERATIONS[0];
    crate::scan::chunked(identities, chunk, |upns, oids| {
        Ok(format!(
            "AuditLogs\n\
             | where {}\n\
             | where LoggedByService =~ \"PIM\"\n\
             | where OperationName =~ \"{activation}\" or ActivityDisplayName =~ \"{activation}\"\n\
             | where {}\n\
             | summarize Activations = count() by Upn = tolower(tostring(InitiatedBy.user.userPrincipalName)), ObjectId = tolower(tostring(InitiatedBy.user.id))\n\
             | order by Upn asc, ObjectId asc",
            range.predicate(),
            initiated_by(upns, oids)?,
        ))
    })
}

/// The `InitiatedBy.user` filter of the AuditLogs queries.
fn initiated_by(upns: &[&str], oids: &[&str]) -> Result<String> {
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
    Ok(clauses.join("\n    or "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::TimeRange;
    use pim_domain::timestamp::parse_timestamp;

    fn period() -> QueryRange {
        QueryRange {
            range: TimeRange::new(
                parse_timestamp("2026-10-21T09:13:58Z").unwrap(),
                parse_timestamp("2026-11-20T09:13:58.1234567Z").unwrap(),
            ),
            end_inclusive: false,
        }
    }

    fn who() -> Vec<Identity> {
        vec![
            Identity {
                upn: Some("o'brien\"x@contoso.com".into()),
                object_id: Some("3f1e0000-0000-4000-8000-000000000001".into()),
            },
            Identity {
                upn: Some("jane@contoso.com".into()),
                object_id: None,
            },
        ]
    }

    #[test]
    fn azure_baseline_snapshot() {
        let qs = azure_baseline_queries(&who(), period(), 200).unwrap();
        assert_eq!(qs.len(), 1);
        insta::assert_snapshot!(qs[0], @r#"
        AzureActivity
        | where TimeGenerated >= datetime(2026-10-21T09:13:58.0000000Z) and TimeGenerated < datetime(2026-11-20T09:13:58.1234567Z)
        | where CategoryValue =~ "Administrative"
        | extend CallerObjectId = coalesce(tostring(Claims_d["http://schemas.microsoft.com/identity/claims/objectidentifier"]), tostring(Claims_d.oid))
        | where Caller in~ (h"o'brien\"x@contoso.com", h"jane@contoso.com", h"3f1e0000-0000-4000-8000-000000000001")
            or CallerObjectId in~ (h"3f1e0000-0000-4000-8000-000000000001")
        | extend ResourceType = extract("/providers/([^/]+/[^/]+)", 1, tolower(coalesce(_ResourceId, ResourceId)))
        | summarize Count = count() by Upn = tolower(Caller), ObjectId = tolower(CallerObjectId), Operation = tolower(OperationNameValue), ResourceType
        | order by Upn asc, ObjectId asc, Operation asc, ResourceType asc
        "#);
    }

    #[test]
    fn directory_baseline_snapshot() {
        let qs = directory_baseline_queries(&who(), period(), 200).unwrap();
        insta::assert_snapshot!(qs[0], @r#"
        AuditLogs
        | where TimeGenerated >= datetime(2026-10-21T09:13:58.0000000Z) and TimeGenerated < datetime(2026-11-20T09:13:58.1234567Z)
        | where LoggedByService !~ "PIM"
        | where tostring(InitiatedBy.user.userPrincipalName) in~ (h"o'brien\"x@contoso.com", h"jane@contoso.com")
            or tostring(InitiatedBy.user.id) in~ (h"3f1e0000-0000-4000-8000-000000000001")
        | extend Operation = tolower(iff(isempty(OperationName), ActivityDisplayName, OperationName)), ResourceType = tolower(tostring(TargetResources[0].type))
        | summarize Count = count() by Upn = tolower(tostring(InitiatedBy.user.userPrincipalName)), ObjectId = tolower(tostring(InitiatedBy.user.id)), Operation, ResourceType
        | order by Upn asc, ObjectId asc, Operation asc, ResourceType asc
        "#);
    }

    #[test]
    fn activation_count_snapshot() {
        let qs = activation_count_queries(&who(), period(), 200).unwrap();
        insta::assert_snapshot!(qs[0], @r#"
        AuditLogs
        | where TimeGenerated >= datetime(2026-10-21T09:13:58.0000000Z) and TimeGenerated < datetime(2026-11-20T09:13:58.1234567Z)
        | where LoggedByService =~ "PIM"
        | where OperationName =~ "Add member to role completed (PIM activation)" or ActivityDisplayName =~ "Add member to role completed (PIM activation)"
        | where tostring(InitiatedBy.user.userPrincipalName) in~ (h"o'brien\"x@contoso.com", h"jane@contoso.com")
            or tostring(InitiatedBy.user.id) in~ (h"3f1e0000-0000-4000-8000-000000000001")
        | summarize Activations = count() by Upn = tolower(tostring(InitiatedBy.user.userPrincipalName)), ObjectId = tolower(tostring(InitiatedBy.user.id))
        | order by Upn asc, ObjectId asc
        "#);
    }

    #[test]
    fn identities_are_chunked_and_hostile_text_stays_in_literals() {
        let many: Vec<Identity> = (0..5)
            .map(|i| Identity {
                upn: Some(format!("u{i}\" | take 1 //@x.com")),
                object_id: None,
            })
            .collect();
        for build in [
            azure_baseline_queries,
            directory_baseline_queries,
            activation_count_queries,
        ] {
            let qs = build(&many, period(), 2).unwrap();
            assert_eq!(qs.len(), 3);
            for q in &qs {
                assert!(!q.contains("\n| take"), "{q}");
                assert_eq!(q.matches("h\"u").count(), q.matches("@x.com\"").count());
            }
            assert!(build(&[], period(), 2).unwrap().is_empty());
            assert!(build(&many, period(), 0).is_err());
            let bad = [Identity {
                upn: Some("a\u{202E}@x.com".into()),
                object_id: None,
            }];
            assert!(build(&bad, period(), 2).is_err());
        }
    }
}
