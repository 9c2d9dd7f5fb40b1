//! `AzureActivity` rows: one [`Activity`] per Azure Resource Manager operation.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use pim_domain::{Activity, ActivitySource, ActivityStatus, DataProblem, Table};
use serde_json::Value;
use time::OffsetDateTime;

use crate::cells::{Problems, get_ci, json_kind, owned_text, parse_time_value};
use crate::evidence::{UnreadableRow, identity_keys};

/// The claim that carries the caller's object id in `Claims_d`.
pub const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// The column in which the live activity query returns that claim, extracted on the server
/// (`pim_kql::CALLER_OBJECT_ID`; issue 12), so that the whole claims column never crosses the
/// wire. Exports keep the raw `Claims_d` / `Claims` columns, which are read when it is absent
/// or empty.
pub const CALLER_OBJECT_ID_COLUMN: &str = "CallerObjectId";

/// Activities parsed from one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedActivities {
    /// The activities kept, sorted by time.
    pub activities: Vec<Activity>,
    /// Rows in the input table.
    pub rows_read: usize,
    /// Rows that could not be used (capped; a summary counts the rest).
    pub problems: Vec<DataProblem>,
    /// Every row that could be someone's operation but could not be read (no readable time,
    /// operation name or status), with what could be read of its identity and time, so that the
    /// activations it could belong to can say their evidence is incomplete (uncapped).
    pub unreadable: Vec<UnreadableRow>,
    /// Set when the table as a whole cannot be read (a required column is missing): no row of it
    /// is evidence of anything, and every activation that needs it cannot be judged.
    pub failure: Option<String>,
}

/// Column indexes, looked up once by name. Each pair is (current column, deprecated column).
struct Cols {
    time: Option<usize>,
    caller: Option<usize>,
    operation: [Option<usize>; 2],
    status: [Option<usize>; 2],
    category: [Option<usize>; 2],
    provider: [Option<usize>; 2],
    resource_group: Option<usize>,
    subscription: [Option<usize>; 2],
    resource: [Option<usize>; 2],
    correlation: Option<usize>,
    operation_id: Option<usize>,
    /// [`CALLER_OBJECT_ID_COLUMN`], the claim extracted on the server.
    object_id: Option<usize>,
    claims: [Option<usize>; 2],
}

impl Cols {
    fn new(t: &Table) -> Self {
        let c = |n: &str| t.column_index(n);
        Self {
            time: c("TimeGenerated"),
            caller: c("Caller"),
            operation: [c("OperationNameValue"), c("OperationName")],
            status: [c("ActivityStatusValue"), c("ActivityStatus")],
            category: [c("CategoryValue"), c("Category")],
            provider: [c("ResourceProviderValue"), c("ResourceProvider")],
            resource_group: c("ResourceGroup"),
            subscription: [c("SubscriptionId"), c("_SubscriptionId")],
            resource: [c("_ResourceId"), c("ResourceId")],
            correlation: c("CorrelationId"),
            operation_id: c("OperationId"),
            object_id: c(CALLER_OBJECT_ID_COLUMN),
            claims: [c("Claims_d"), c("Claims")],
        }
    }
}

/// A string cell, trimmed, borrowed from the table; other JSON types read as absent.
fn str_cell(table: &Table, row: usize, col: Option<usize>) -> Option<&str> {
    let s = col.and_then(|c| table.cell(row, c))?.as_str()?.trim();
    (!s.is_empty()).then_some(s)
}

/// The current column's string, else the deprecated column's (the new schema leaves the old
/// columns empty, and old exports lack the new ones).
fn str_cell2(table: &Table, row: usize, cols: [Option<usize>; 2]) -> Option<&str> {
    str_cell(table, row, cols[0]).or_else(|| str_cell(table, row, cols[1]))
}

/// Groups the rows of one operation: same correlation id, operation name and resource id (the
/// last two case-insensitively). Borrowed from the table, so grouping allocates nothing per row.
#[derive(Debug, Clone, Copy)]
struct OpKey<'t> {
    correlation: &'t str,
    operation: &'t str,
    resource: &'t str,
    /// Row number for rows with no correlation or operation id: they cannot be grouped safely.
    alone: usize,
}

impl PartialEq for OpKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.alone == other.alone
            && self.correlation.eq_ignore_ascii_case(other.correlation)
            && self.operation.eq_ignore_ascii_case(other.operation)
            && self.resource.eq_ignore_ascii_case(other.resource)
    }
}

impl Eq for OpKey<'_> {}

impl Hash for OpKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for part in [self.correlation, self.operation, self.resource] {
            hash_lowercase(part, state);
        }
        state.write_usize(self.alone);
    }
}

/// Hashes the ASCII-lower-cased bytes in stack-sized chunks, plus a terminator so that
/// ("ab","c") and ("a","bc") differ.
fn hash_lowercase<H: Hasher>(s: &str, state: &mut H) {
    let mut buf = [0u8; 64];
    for chunk in s.as_bytes().chunks(buf.len()) {
        let out = &mut buf[..chunk.len()];
        out.copy_from_slice(chunk);
        out.make_ascii_lowercase();
        state.write(out);
    }
    state.write_u8(0xff);
}

/// What is known about one operation while its rows are read.
#[derive(Debug, Clone, Copy)]
struct OpState {
    first_row: usize,
    first_time: OffsetDateTime,
    status_row: usize,
    status_time: OffsetDateTime,
    status: ActivityStatus,
}

impl OpState {
    fn update(&mut self, row: usize, time: OffsetDateTime, status: ActivityStatus) {
        if time < self.first_time {
            self.first_time = time;
            self.first_row = row;
        }
        // A terminal row beats any non-terminal one; among equals the latest row wins, so a
        // retried operation that failed and then succeeded reports its final outcome.
        let replaces = match (status.is_terminal(), self.status.is_terminal()) {
            (true, false) => true,
            (false, true) => false,
            _ => time >= self.status_time,
        };
        if replaces {
            self.status_row = row;
            self.status_time = time;
            self.status = status;
        }
    }
}

/// Reads `AzureActivity` rows into one activity per operation.
///
/// - Only the `Administrative` category is read (any case; rows with no category are kept);
///   other categories (Policy, ServiceHealth, ...) are not actions of a person.
/// - Rows of one operation (same `CorrelationId`, operation name and resource id, names compared
///   case-insensitively) collapse into one activity: its time is the earliest row's, its status
///   the latest terminal row's (Success/Failure), else the latest row's. Rows with neither a
///   correlation nor an operation id are never merged.
/// - Succeeded operations are kept, and so are operations never seen finishing (Start/Accept
///   rows only), with status `in_progress`: an operation still running is something the person
///   set in motion. Failed operations are kept only with `include_failed` (the pipeline asks for
///   them all and keeps the high-risk attempts itself).
/// - A row with a missing or unreadable time, operation name or status is a problem (row and
///   field), is skipped, and is listed in [`ParsedActivities::unreadable`] with whatever could be
///   read of its identity and time.
/// - A table without a time, operation or status column cannot be read at all:
///   [`ParsedActivities::failure`] says so.
///
/// One pass with a hash map keyed by borrowed cells: no regex, no per-row allocation beyond
/// timestamp parsing, so half a million rows parse in well under a second in release builds.
pub fn parse_azure_activity(table: &Table, source: &str, include_failed: bool) -> ParsedActivities {
    let cols = Cols::new(table);
    let mut problems = Problems::new(source);
    let mut row_problems = Vec::new();
    // Most operations log a Start and an end row: size for that once instead of rehashing a
    // growing map half a million times.
    let mut groups: Vec<OpState> = Vec::with_capacity(table.len() / 2 + 1);
    let mut index: HashMap<OpKey<'_>, usize> = HashMap::with_capacity(table.len() / 2 + 1);
    let missing: Vec<&str> = [
        ("TimeGenerated", cols.time.is_some()),
        (
            "OperationNameValue",
            cols.operation.iter().any(Option::is_some),
        ),
        (
            "ActivityStatusValue",
            cols.status.iter().any(Option::is_some),
        ),
    ]
    .iter()
    .filter(|(_, present)| !present)
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() && !table.is_empty() {
        let message = format!(
            "no {} column: none of the {} rows can be read (columns found: {})",
            missing.join(" or "),
            table.len(),
            column_list(table)
        );
        problems.push(DataProblem::source(source, message.clone()));
        return ParsedActivities {
            activities: Vec::new(),
            rows_read: table.len(),
            problems: problems.finish(),
            unreadable: Vec::new(),
            failure: Some(format!("{source}: {message}")),
        };
    }
    let mut unreadable = Vec::new();

    for row in 0..table.len() {
        if let Some(category) = str_cell2(table, row, cols.category)
            && !category.eq_ignore_ascii_case("Administrative")
        {
            continue;
        }
        let time = match cols.time.and_then(|c| table.cell(row, c)) {
            Some(v) => parse_time_value(v, row, "TimeGenerated", source, &mut row_problems),
            None => {
                row_problems.push(DataProblem::field(
                    source,
                    row,
                    "TimeGenerated",
                    "missing: the row is skipped",
                ));
                None
            }
        };
        let operation = str_cell2(table, row, cols.operation);
        if operation.is_none() {
            row_problems.push(DataProblem::field(
                source,
                row,
                "OperationNameValue",
                "missing: the row is skipped",
            ));
        }
        // PIM's own steps in the Activity Log are read by `parse_activity_pim_events`: they
        // are the elevation, not something done with it.
        if operation.is_some_and(crate::pim::is_pim_window_operation) {
            continue;
        }
        let raw_status = str_cell2(table, row, cols.status);
        let status = raw_status.map(ActivityStatus::normalise);
        match raw_status {
            None => row_problems.push(DataProblem::field(
                source,
                row,
                "ActivityStatusValue",
                "missing: whether the operation happened is unknown; the row is skipped",
            )),
            Some(raw) if status == Some(ActivityStatus::Other) => {
                row_problems.push(DataProblem::field(
                    source,
                    row,
                    "ActivityStatusValue",
                    format!(
                        "unknown status {:?} (expected Start, Accept, Success or Failure): the row is skipped",
                        crate::cells::shorten(raw)
                    ),
                ));
            }
            Some(_) => {}
        }
        let (Some(time), Some(operation), Some(status)) = (
            time,
            operation,
            status.filter(|s| *s != ActivityStatus::Other),
        ) else {
            let mut drained = row_problems.drain(..);
            if let Some(first) = drained.next() {
                unreadable.push(UnreadableRow {
                    time,
                    identities: row_identities(table, &cols, row),
                    problem: first.clone(),
                });
                problems.push(first);
            }
            for p in drained {
                problems.push(p);
            }
            continue;
        };
        for p in row_problems.drain(..) {
            problems.push(p);
        }
        let correlation = str_cell(table, row, cols.correlation)
            .or_else(|| str_cell(table, row, cols.operation_id));
        let key = OpKey {
            correlation: correlation.unwrap_or(""),
            operation,
            resource: str_cell2(table, row, cols.resource).unwrap_or(""),
            alone: if correlation.is_some() {
                usize::MAX
            } else {
                row
            },
        };
        match index.get(&key) {
            Some(&g) => groups[g].update(row, time, status),
            None => {
                index.insert(key, groups.len());
                groups.push(OpState {
                    first_row: row,
                    first_time: time,
                    status_row: row,
                    status_time: time,
                    status,
                });
            }
        }
    }
    drop(index);

    let mut activities: Vec<Activity> = groups
        .iter()
        .filter(|g| include_failed || g.status != ActivityStatus::Failed)
        .map(|g| build_activity(table, &cols, g, source, &mut problems))
        .collect();
    activities.sort_by_key(|a| a.time);
    ParsedActivities {
        activities,
        rows_read: table.len(),
        problems: problems.finish(),
        unreadable,
        failure: None,
    }
}

/// The column names of a table, for messages that say what was found instead.
pub(crate) fn column_list(table: &Table) -> String {
    const MAX: usize = 12;
    let mut names: Vec<String> = table
        .columns
        .iter()
        .take(MAX)
        .map(|c| format!("{:?}", crate::cells::shorten(&c.name)))
        .collect();
    if table.columns.len() > MAX {
        names.push(format!("and {} more", table.columns.len() - MAX));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// What can be read of an unreadable row's identity: the caller and the claims' object id.
fn row_identities(table: &Table, cols: &Cols, row: usize) -> Vec<String> {
    let mut ignored = Problems::new("");
    let oid = claims_object_id(table, cols, row, "", &mut ignored);
    identity_keys([str_cell(table, row, cols.caller), oid.as_deref()])
}

fn build_activity(
    table: &Table,
    cols: &Cols,
    g: &OpState,
    source: &str,
    problems: &mut Problems,
) -> Activity {
    // Fields come from the first row, else from the row that set the status: some columns
    // (claims, resource group) are only filled on some of an operation's rows.
    let rows = [g.first_row, g.status_row];
    let caller_object_id =
        claims_object_id(table, cols, g.first_row, source, problems).or_else(|| {
            (g.status_row != g.first_row)
                .then(|| claims_object_id(table, cols, g.status_row, source, problems))
                .flatten()
        });
    // An operation never seen ending is in progress, whatever its last row said.
    let status = if g.status.is_in_progress() {
        ActivityStatus::InProgress
    } else {
        g.status
    };
    Activity {
        time: g.first_time,
        operation: pick(rows, |r| str_cell2(table, r, cols.operation)).unwrap_or_default(),
        status,
        resource_id: pick(rows, |r| str_cell2(table, r, cols.resource)),
        resource_group: pick(rows, |r| str_cell(table, r, cols.resource_group)),
        subscription_id: pick(rows, |r| str_cell2(table, r, cols.subscription)),
        provider: pick(rows, |r| str_cell2(table, r, cols.provider)),
        source: ActivitySource::AzureActivity,
        caller: pick(rows, |r| str_cell(table, r, cols.caller)),
        caller_object_id,
        correlation_id: pick(rows, |r| str_cell(table, r, cols.correlation)),
        targets: Vec::new(),
    }
}

/// A field from the first of `rows` that has it.
fn pick<'t>(rows: [usize; 2], f: impl Fn(usize) -> Option<&'t str>) -> Option<String> {
    rows.into_iter().find_map(f).map(str::to_owned)
}

/// The caller's object id: the server-extracted [`CALLER_OBJECT_ID_COLUMN`] when the query
/// returned it, else from `Claims_d` (or legacy `Claims`): the `objectidentifier` claim, else
/// `oid`.
fn claims_object_id(
    table: &Table,
    cols: &Cols,
    row: usize,
    source: &str,
    problems: &mut Problems,
) -> Option<String> {
    if let Some(oid) = str_cell(table, row, cols.object_id) {
        return Some(oid.to_owned());
    }
    for (col, field) in cols.claims.iter().zip(["Claims_d", "Claims"]) {
        let Some(v) = col.and_then(|c| table.cell(row, c)) else {
            continue;
        };
        let found = match v {
            Value::Object(_) => oid_from_object(v),
            Value::String(s) => oid_from_text(s).or_else(|| {
                // The quick scan missed (escaped slashes, odd spacing): parse fully, but only
                // when the text could hold the claim at all.
                if !(s.contains("objectidentifier") || s.contains("oid")) {
                    return None;
                }
                match serde_json::from_str::<Value>(s) {
                    Ok(parsed) => oid_from_object(&parsed),
                    Err(e) => {
                        problems.push(DataProblem::field(
                            source,
                            row,
                            field,
                            format!("not valid JSON ({e})"),
                        ));
                        None
                    }
                }
            }),
            Value::Null => None,
            other => {
                problems.push(DataProblem::field(
                    source,
                    row,
                    field,
                    format!("expected claims as JSON, found {}", json_kind(other)),
                ));
                None
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn oid_from_object(claims: &Value) -> Option<String> {
    get_ci(claims, OBJECT_ID_CLAIM)
        .or_else(|| get_ci(claims, "oid"))
        .and_then(owned_text)
}

/// Finds `"<claim>": "<value>"` in JSON text without parsing the whole (often kilobytes long)
/// claims object.
fn oid_from_text(text: &str) -> Option<String> {
    for claim in [OBJECT_ID_CLAIM, "oid"] {
        let needle_len = claim.len() + 2;
        let mut from = 0;
        while let Some(pos) = text[from..].find(claim) {
            let at = from + pos;
            from = at + claim.len();
            let quoted = at > 0
                && text.as_bytes()[at - 1] == b'"'
                && text.as_bytes().get(at + claim.len()) == Some(&b'"');
            if !quoted {
                continue;
            }
            let rest = text[at - 1 + needle_len..].trim_start();
            let Some(rest) = rest.strip_prefix(':') else {
                continue;
            };
            let mut values =
                serde_json::Deserializer::from_str(rest.trim_start()).into_iter::<Value>();
            if let Some(Ok(v)) = values.next()
                && let Some(s) = owned_text(&v)
            {
                return Some(s);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::audit_table;
    use serde_json::json;

    fn row(t: &str, op: &str, status: &str, corr: &str) -> Value {
        json!({
            "TimeGenerated": t, "Caller": "jane@contoso.com", "OperationNameValue": op,
            "ActivityStatusValue": status, "CategoryValue": "Administrative",
            "_ResourceId": "/subscriptions/s/resourcegroups/rg-prod-web/providers/microsoft.compute/virtualmachines/web01",
            "ResourceGroup": "RG-PROD-WEB", "SubscriptionId": "s", "CorrelationId": corr,
            "ResourceProviderValue": "Microsoft.Compute",
        })
    }

    const RESTART: &str = "MICROSOFT.COMPUTE/VIRTUALMACHINES/RESTART/ACTION";

    #[test]
    fn the_reference_sample_collapses_into_one_success() {
        let mut success = row(
            "2026-11-20T09:21:40Z",
            "Microsoft.Compute/virtualMachines/restart/action",
            "Success",
            "c1",
        );
        success["Claims_d"] = json!({OBJECT_ID_CLAIM: "3f1e-oid"});
        let rows = vec![
            row("2026-11-20T09:20:12Z", RESTART, "Accept", "c1"),
            success,
            row("2026-11-20T09:20:11Z", RESTART, "Start", "c1"),
            json!({"TimeGenerated": "2026-11-20T09:25:02Z", "Caller": "8c9071-spn-oid",
                   "OperationNameValue": "Microsoft.Storage/storageAccounts/listKeys/action",
                   "ActivityStatusValue": "Success", "CategoryValue": "Administrative",
                   "CorrelationId": "d7"}),
        ];
        let p = parse_azure_activity(&audit_table(rows), "AzureActivity", false);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.rows_read, 4);
        assert_eq!(p.activities.len(), 2);
        let a = &p.activities[0];
        assert_eq!(a.time, time::macros::datetime!(2026-11-20 09:20:11 UTC));
        assert_eq!(a.status, ActivityStatus::Succeeded);
        assert_eq!(a.operation, RESTART);
        assert_eq!(a.caller_object_id.as_deref(), Some("3f1e-oid"));
        assert_eq!(a.resource_name(), Some("web01"));
        assert_eq!(a.provider.as_deref(), Some("Microsoft.Compute"));
        assert_eq!(p.activities[1].caller.as_deref(), Some("8c9071-spn-oid"));
    }

    #[test]
    fn every_status_spelling() {
        // An operation that only started or was accepted is in progress at the end of the scan.
        for (raw, want) in [
            ("Start", ActivityStatus::InProgress),
            ("started", ActivityStatus::InProgress),
            ("ACCEPT", ActivityStatus::InProgress),
            ("Accepted", ActivityStatus::InProgress),
            ("success", ActivityStatus::Succeeded),
            ("Succeeded", ActivityStatus::Succeeded),
            ("Failure", ActivityStatus::Failed),
            ("FAILED", ActivityStatus::Failed),
        ] {
            let all = parse_azure_activity(
                &audit_table(vec![row("2026-11-20T09:00:00Z", "op", raw, "c")]),
                "S",
                true,
            );
            assert_eq!(all.activities[0].status, want, "{raw}");
            let default = parse_azure_activity(
                &audit_table(vec![row("2026-11-20T09:00:00Z", "op", raw, "c")]),
                "S",
                false,
            );
            // In-progress operations are kept whatever include_failed says; failures are not.
            assert_eq!(
                default.activities.len(),
                usize::from(want != ActivityStatus::Failed),
                "{raw}"
            );
        }
    }

    #[test]
    fn unknown_or_missing_status_is_unreadable_evidence_with_its_identity_and_time() {
        let mut unknown = row("2026-11-20T09:00:00Z", "op", "Resolved", "a");
        unknown["Caller"] = json!("Jane@Contoso.com");
        let mut missing = row("2026-11-20T09:05:00Z", "op", "Success", "b");
        missing["ActivityStatusValue"] = json!(null);
        let mut no_time = row("4/28/2021 2:32 PM-ish", "op", "Success", "c");
        no_time["Caller"] = json!(null);
        let mut no_op = row("2026-11-20T09:07:00Z", "op", "Success", "d");
        no_op["OperationNameValue"] = json!(null);
        let good = row("2026-11-20T09:08:00Z", "op", "Success", "e");
        let p = parse_azure_activity(
            &audit_table(vec![unknown, missing, no_time, no_op, good]),
            "AzureActivity.json",
            true,
        );
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.failure, None);
        assert_eq!(p.unreadable.len(), 4);
        let u = &p.unreadable;
        assert_eq!(u[0].identities, ["jane@contoso.com"]);
        assert_eq!(
            u[0].time,
            Some(time::macros::datetime!(2026-11-20 09:00 UTC))
        );
        assert!(
            u[0].problem.message.contains("\"Resolved\""),
            "{}",
            u[0].problem
        );
        assert_eq!(u[1].problem.field.as_deref(), Some("ActivityStatusValue"));
        assert_eq!(u[2].time, None);
        assert!(u[2].identities.is_empty());
        assert_eq!(u[2].problem.field.as_deref(), Some("TimeGenerated"));
        assert_eq!(u[3].problem.field.as_deref(), Some("OperationNameValue"));
        assert_eq!(
            u.iter().map(|r| r.problem.row).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3)]
        );
        // Every unreadable row is also a problem.
        assert!(u.iter().all(|r| p.problems.contains(&r.problem)));
    }

    #[test]
    fn a_renamed_column_makes_the_table_unreadable() {
        let r = json!({"TimeGenerated [UTC]": "2026-11-20T09:00:00Z", "OperationNameValue": "op",
                       "ActivityStatusValue": "Success"});
        let p = parse_azure_activity(&audit_table(vec![r]), "AzureActivity.json", true);
        assert!(p.activities.is_empty());
        let failure = p.failure.unwrap();
        assert!(
            failure.starts_with("AzureActivity.json: no TimeGenerated column"),
            "{failure}"
        );
        assert!(failure.contains("\"TimeGenerated [UTC]\""), "{failure}");
    }

    #[test]
    fn legacy_columns_are_used_when_the_new_ones_are_empty() {
        let r = json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationNameValue": "",
                       "OperationName": "Microsoft.Web/sites/write", "ActivityStatus": "Succeeded",
                       "Category": "administrative", "ResourceId": "/subscriptions/s/x",
                       "Claims": "{\"oid\": \"o1\"}"});
        let p = parse_azure_activity(&audit_table(vec![r]), "S", false);
        let a = &p.activities[0];
        assert_eq!(a.operation, "Microsoft.Web/sites/write");
        assert_eq!(a.resource_id.as_deref(), Some("/subscriptions/s/x"));
        assert_eq!(a.caller_object_id.as_deref(), Some("o1"));
    }

    #[test]
    fn the_server_extracted_object_id_and_the_raw_claims_read_the_same() {
        // The live query's projection: CallerObjectId, no claims column at all.
        let projected = json!({"TimeGenerated": "2026-11-20T09:00:00Z", "Caller": "jane@contoso.com",
                               "OperationNameValue": "Microsoft.Web/sites/write",
                               "ActivityStatusValue": "Success", "CategoryValue": "Administrative",
                               "CorrelationId": "c", CALLER_OBJECT_ID_COLUMN: "3f1e-oid"});
        // An export's raw row: the whole claims, as Claims_d and as the legacy string.
        let mut raw = projected.clone();
        raw.as_object_mut().unwrap().remove(CALLER_OBJECT_ID_COLUMN);
        raw["Claims_d"] = json!({OBJECT_ID_CLAIM: "3f1e-oid", "name": "Jane"});
        let mut legacy = raw.clone();
        legacy.as_object_mut().unwrap().remove("Claims_d");
        legacy["Claims"] = json!(format!("{{\"{OBJECT_ID_CLAIM}\": \"3f1e-oid\"}}"));
        // An empty extracted value (no claim on the row) falls back to the raw claims.
        let mut empty = raw.clone();
        empty[CALLER_OBJECT_ID_COLUMN] = json!("");
        let parsed: Vec<Activity> = [projected, raw, legacy, empty]
            .into_iter()
            .map(|r| {
                let p = parse_azure_activity(&audit_table(vec![r]), "S", false);
                assert!(p.problems.is_empty(), "{:?}", p.problems);
                p.activities.into_iter().next().unwrap()
            })
            .collect();
        for a in &parsed {
            assert_eq!(a.caller_object_id.as_deref(), Some("3f1e-oid"));
            assert_eq!(a, &parsed[0]);
        }
    }

    #[test]
    fn latest_terminal_row_wins_and_failures_need_include_failed() {
        let rows = vec![
            row("2026-11-20T09:00:00Z", "op", "Start", "c"),
            row("2026-11-20T09:01:00Z", "op", "Success", "c"),
            row("2026-11-20T09:02:00Z", "op", "Failure", "c"),
            row("2026-11-20T09:03:00Z", "op", "Accept", "c"),
        ];
        let p = parse_azure_activity(&audit_table(rows.clone()), "S", false);
        assert!(p.activities.is_empty());
        let p = parse_azure_activity(&audit_table(rows), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].status, ActivityStatus::Failed);
    }

    #[test]
    fn different_correlation_or_resource_are_different_operations() {
        let mut other_res = row("2026-11-20T09:00:00Z", "op", "Success", "c");
        other_res["_ResourceId"] = json!("/subscriptions/s/other");
        let mut no_corr_a = row("2026-11-20T09:00:00Z", "op", "Success", "");
        no_corr_a["CorrelationId"] = json!(null);
        let no_corr_b = no_corr_a.clone();
        let rows = vec![
            row("2026-11-20T09:00:00Z", "op", "Success", "c"),
            row("2026-11-20T09:00:00Z", "OP", "Success", "C"),
            row("2026-11-20T09:00:00Z", "op", "Success", "d"),
            other_res,
            no_corr_a,
            no_corr_b,
        ];
        let p = parse_azure_activity(&audit_table(rows), "S", false);
        assert_eq!(p.activities.len(), 5);
    }

    #[test]
    fn non_administrative_rows_are_ignored_but_odd_case_is_not() {
        let mut policy = row("2026-11-20T09:00:00Z", "op1", "Success", "a");
        policy["CategoryValue"] = json!("Policy");
        let mut upper = row("2026-11-20T09:00:00Z", "op2", "Success", "b");
        upper["CategoryValue"] = json!("ADMINISTRATIVE");
        let p = parse_azure_activity(&audit_table(vec![policy, upper]), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].operation, "op2");
    }

    #[test]
    fn bad_times_are_problems_and_skipped() {
        let mut bad = row("yesterday", "op", "Success", "a");
        let mut num = row("x", "op", "Success", "b");
        num["TimeGenerated"] = json!(5);
        let mut none = row("x", "op", "Success", "c");
        none["TimeGenerated"] = json!(null);
        bad["Caller"] = json!("x".repeat(100_000));
        let good = row("2026-11-20T09:00:00Z", "op", "Success", "d");
        let p = parse_azure_activity(&audit_table(vec![bad, num, none, good]), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.problems.len(), 3);
        for (i, pr) in p.problems.iter().enumerate() {
            assert_eq!(pr.row, Some(i));
            assert_eq!(pr.field.as_deref(), Some("TimeGenerated"));
        }
    }

    #[test]
    fn garbage_cells_and_missing_columns_do_not_panic() {
        let rows = vec![
            json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationNameValue": ["x"],
                   "Caller": {"a": 1}, "Claims_d": 17}),
            json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationNameValue": "op\u{0}\u{1b}",
                   "ActivityStatusValue": "Success", "Claims_d": "{\"oid\": [1, broken"}),
        ];
        let p = parse_azure_activity(&audit_table(rows), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].operation, "op\u{0}\u{1b}");
        assert!(
            p.problems
                .iter()
                .any(|x| x.field.as_deref() == Some("OperationNameValue"))
        );
        assert!(
            p.problems
                .iter()
                .any(|x| x.field.as_deref() == Some("Claims_d"))
        );
        let empty = parse_azure_activity(&Table::default(), "S", true);
        assert!(empty.activities.is_empty() && empty.problems.is_empty());
    }

    #[test]
    fn a_missing_required_column_is_one_problem() {
        let rows: Vec<Value> = (0..5)
            .map(|_| json!({"Caller": "x", "OperationNameValue": "op", "ActivityStatusValue": "Success"}))
            .collect();
        let p = parse_azure_activity(&audit_table(rows), "S", true);
        assert!(p.activities.is_empty());
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].message.contains("no TimeGenerated column"));
        assert_eq!(p.rows_read, 5);
        assert!(
            p.failure
                .is_some_and(|f| f.contains("no TimeGenerated column"))
        );
    }

    #[test]
    fn claims_quick_scan_handles_spacing_and_other_keys() {
        let text = format!(r#"{{"appid":"x", "notoid":"n", "{OBJECT_ID_CLAIM}" :  "abc" }}"#);
        assert_eq!(oid_from_text(&text).as_deref(), Some("abc"));
        assert_eq!(oid_from_text(r#"{"oid":"o"}"#).as_deref(), Some("o"));
        assert_eq!(oid_from_text(r#"{"xoid":"o"}"#), None);
        assert_eq!(oid_from_text(r#"{"oid""#), None);
    }

    /// Correctness at the benchmark's scale (500,000 rows collapse into 166,666 operations);
    /// the timing is measured by `examples/bench_pipeline.rs`, not here. Run with
    /// `cargo test --release -p pim-correlate -- --ignored`.
    #[test]
    #[ignore = "slow in debug builds; a scale check, run in release"]
    fn half_a_million_rows_collapse_correctly() {
        let t = big_table(500_000);
        let p = parse_azure_activity(&t, "S", false);
        assert_eq!(p.activities.len(), 500_000 / 3);
        assert!(p.problems.is_empty());
    }

    pub(crate) fn big_table(rows: usize) -> Table {
        let claims = format!(
            r#"{{"aud":"https://management.core.windows.net/","appid":"04b07795","{OBJECT_ID_CLAIM}":"oid-1","name":"Jane"}}"#
        );
        let statuses = ["Start", "Accept", "Success"];
        let rows = (0..rows)
            .map(|i| {
                let op = i / 3;
                vec![
                    json!(format!("2026-11-20T{:02}:{:02}:{:02}.1234567Z", (op / 3600) % 24, (op / 60) % 60, op % 60)),
                    json!(format!("user{}@contoso.com", op % 1000)),
                    json!("Microsoft.Compute/virtualMachines/write"),
                    json!(statuses[i % 3]),
                    json!("Administrative"),
                    json!(format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{op}")),
                    json!(format!("corr-{op}")),
                    json!(claims.clone()),
                ]
            })
            .collect();
        let cols = [
            "TimeGenerated",
            "Caller",
            "OperationNameValue",
            "ActivityStatusValue",
            "CategoryValue",
            "_ResourceId",
            "CorrelationId",
            "Claims_d",
        ];
        Table {
            name: "AzureActivity".into(),
            columns: cols
                .iter()
                .map(|c| pim_domain::Column {
                    name: (*c).into(),
                    kind: String::new(),
                })
                .collect(),
            rows,
        }
    }
}
