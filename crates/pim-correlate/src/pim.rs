//! PIM rows of `AuditLogs`: completed activations, expiries and deactivations.

use pim_domain::{ActivityStatus, DataProblem, Principal, Role, RoleKind, Scope, ScopeKind, Table};
use serde_json::Value;
use time::OffsetDateTime;

use crate::cells::{
    Problems, cell_dynamic, cell_text, cell_time, detail, get_text, parse_time_value, shorten,
    target_of_type, target_type, targets,
};
use crate::tickets::extract_tickets;

/// `OperationName` of a successful activation.
pub const OP_ACTIVATION_COMPLETED: &str = "Add member to role completed (PIM activation)";
/// `OperationName` of PIM's automatic expiry (no word "completed").
pub const OP_ACTIVATION_EXPIRED: &str = "Remove member from role (PIM activation expired)";
/// `OperationName` of a finished manual deactivation.
pub const OP_DEACTIVATE_COMPLETED: &str = "Remove member from role completed (PIM deactivate)";

/// The role name used when the record names none.
pub const UNKNOWN_ROLE: &str = "unknown";

/// One completed activation row, before its window is finalised.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationRecord {
    /// The table or file the row came from, for problems found later.
    pub source: String,
    /// Zero-based row in the source table.
    pub row: usize,
    /// When PIM logged the activation (`ActivityDateTime`, else `TimeGenerated`, else
    /// `StartTime`). `None` only when the row carries no readable time at all; the activation is
    /// still reported, with a problem.
    pub activation_time: Option<OffsetDateTime>,
    /// Who activated; fields the row does not carry stay `None`.
    pub principal: Principal,
    /// The role; its name is [`UNKNOWN_ROLE`] when the row names none.
    pub role: Role,
    /// Where the role applies.
    pub scope: Scope,
    /// The justification as typed (untrusted), empty when none was logged.
    pub justification: String,
    /// Tickets found in the justification.
    pub tickets: Vec<String>,
    /// Entra's own ticket fields (`AdditionalDetails` `TicketNumber` / `TicketSystem`, or the
    /// Activity Log's properties of the same names), when the row carries either.
    pub ticket_info: Option<pim_domain::TicketInfo>,
    /// `AdditionalDetails` `StartTime`, else the activation time.
    pub start: Option<OffsetDateTime>,
    /// `AdditionalDetails` `ExpirationTime`, else `EndTime`.
    pub scheduled_end: Option<OffsetDateTime>,
    /// PIM request id.
    pub request_id: Option<String>,
    /// `CorrelationId` column.
    pub correlation_id: Option<String>,
    /// `Id` column (PIM ids start with `PIM_`).
    pub audit_id: Option<String>,
    /// What was wrong or missing in this row.
    pub problems: Vec<DataProblem>,
    /// The tables this activation was recorded in (`AuditLogs`, the Activity Log, or both once
    /// merged).
    pub sources: Vec<pim_domain::ActivitySource>,
}

/// How an elevation ended, according to an end row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndKind {
    /// `Remove member from role (PIM activation expired)`.
    Expired,
    /// `Remove member from role completed (PIM deactivate)`.
    Deactivated,
}

/// One expiry or deactivation row.
#[derive(Debug, Clone, PartialEq)]
pub struct EndRecord {
    /// Zero-based row in the source table.
    pub row: usize,
    /// When the elevation ended (`ActivityDateTime`, else `TimeGenerated`).
    pub time: OffsetDateTime,
    /// Expiry or deactivation.
    pub kind: EndKind,
    /// The user whose elevation ended: the `TargetResources` element of type `User` (on expiry
    /// rows the actor is "Azure AD PIM"), else `InitiatedBy.user` for deactivations.
    pub principal: Principal,
    /// From `Category`, when known.
    pub role_kind: Option<RoleKind>,
    /// Role display name.
    pub role_name: Option<String>,
    /// Role id (target id, else `RoleDefinitionOriginId` / `TemplateId`).
    pub role_id: Option<String>,
    /// The scope's id for Azure resource roles and groups, when logged.
    pub scope_id: Option<String>,
    /// `RequestId` / `RoleAssignmentRequestId`, else a `Request` target's id.
    pub request_id: Option<String>,
    /// `OriginRoleAssignmentId` / `RoleAssignmentId`, when logged.
    pub assignment_id: Option<String>,
}

/// Everything PIM logged that matters for windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PimEvents {
    /// Completed activations, in row order.
    pub activations: Vec<ActivationRecord>,
    /// Expiry and deactivation rows, in row order.
    pub ends: Vec<EndRecord>,
    /// Problems with rows that did not become an activation (unusable end rows, failed
    /// "completed" rows, missing columns, ...).
    pub problems: Vec<DataProblem>,
    /// Set when the table has rows but not one of them can be recognised as an audit record (no
    /// operation column, or no row with an operation name): the input is not what it claims to
    /// be, and an empty report of it would be a lie.
    pub unrecognised: Option<String>,
}

impl PimEvents {
    /// Whether there is no activation, end or problem: [`merge_pim_events`](crate::merge_pim_events)
    /// of these into other events gives those events unchanged.
    pub fn is_empty(&self) -> bool {
        self.activations.is_empty() && self.ends.is_empty() && self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowClass {
    Activation,
    End(EndKind),
}

/// Whether `op` is one of the PIM operations that open or close an elevation window.
pub(crate) fn is_pim_window_operation(op: &str) -> bool {
    classify(op).is_some()
}

fn classify(op: &str) -> Option<RowClass> {
    let op = op.trim();
    if op.eq_ignore_ascii_case(OP_ACTIVATION_COMPLETED) {
        Some(RowClass::Activation)
    } else if op.eq_ignore_ascii_case(OP_ACTIVATION_EXPIRED) {
        Some(RowClass::End(EndKind::Expired))
    } else if op.eq_ignore_ascii_case(OP_DEACTIVATE_COMPLETED) {
        Some(RowClass::End(EndKind::Deactivated))
    } else {
        None
    }
}

/// Column indexes, looked up once by name.
struct Cols {
    operation: Option<usize>,
    display_name: Option<usize>,
    service: Option<usize>,
    result: Option<usize>,
    category: Option<usize>,
    activity_time: Option<usize>,
    time_generated: Option<usize>,
    result_reason: Option<usize>,
    result_description: Option<usize>,
    initiated_by: Option<usize>,
    targets: Option<usize>,
    details: Option<usize>,
    correlation_id: Option<usize>,
    id: Option<usize>,
}

impl Cols {
    fn new(t: &Table) -> Self {
        Self {
            operation: t.column_index("OperationName"),
            display_name: t.column_index("ActivityDisplayName"),
            service: t.column_index("LoggedByService"),
            result: t.column_index("Result"),
            category: t.column_index("Category"),
            activity_time: t.column_index("ActivityDateTime"),
            time_generated: t.column_index("TimeGenerated"),
            result_reason: t.column_index("ResultReason"),
            result_description: t.column_index("ResultDescription"),
            initiated_by: t.column_index("InitiatedBy"),
            targets: t.column_index("TargetResources"),
            details: t.column_index("AdditionalDetails"),
            correlation_id: t.column_index("CorrelationId"),
            id: t.column_index("Id"),
        }
    }
}

/// The dynamic cells of one row, parsed once.
struct RowData<'t> {
    initiated_by: Option<std::borrow::Cow<'t, Value>>,
    targets: Option<std::borrow::Cow<'t, Value>>,
    details: Option<std::borrow::Cow<'t, Value>>,
}

impl RowData<'_> {
    fn targets(&self) -> Option<&Value> {
        self.targets.as_deref()
    }
    fn details(&self) -> Option<&Value> {
        self.details.as_deref()
    }
    fn initiator_user(&self) -> Option<&Value> {
        self.initiated_by
            .as_deref()
            .and_then(|i| crate::cells::get_ci(i, "user"))
            .filter(|u| u.is_object())
    }
}

/// Reads the PIM rows of an `AuditLogs` table: completed activations plus expiry and deactivation
/// rows. Every other row is ignored.
///
/// Columns and the keys inside dynamic values are looked up by name, case-insensitively. A
/// completed activation is never dropped: whatever it lacks (user, time, role) is listed in its
/// `problems`. A malformed row never stops the others.
///
/// A row with an unknown `Category` still becomes an activation, with a problem and a guessed
/// kind: Azure resource when it has a subscription / resource group / resource / management
/// group target or an ARM-path target id, PIM for Groups when it has a `Group` target, Entra
/// directory role otherwise.
pub fn parse_pim_events(table: &Table, source: &str) -> PimEvents {
    let cols = Cols::new(table);
    let mut events = PimEvents::default();
    let mut problems = Problems::new(source);
    if cols.operation.is_none() && cols.display_name.is_none() {
        let message = format!(
            "no OperationName or ActivityDisplayName column: none of the {} rows can be recognised as an AuditLogs record (columns found: {})",
            table.len(),
            crate::azure::column_list(table)
        );
        problems.push(DataProblem::source(source, message.clone()));
        events.problems = problems.finish();
        if !table.is_empty() {
            events.unrecognised = Some(format!(
                "{source}: {message}; expected an AuditLogs export with OperationName, Category, InitiatedBy, TargetResources and AdditionalDetails columns"
            ));
        }
        return events;
    }
    // An export of another table (AzureActivity saved as AuditLogs.json) has operation names
    // too, but none of the columns only audit records carry.
    let audit_shaped = [cols.service, cols.initiated_by, cols.targets, cols.details]
        .iter()
        .any(Option::is_some);
    if !audit_shaped && !table.is_empty() {
        let message = format!(
            "none of the {} rows can be recognised as an AuditLogs record: no LoggedByService, InitiatedBy, TargetResources or AdditionalDetails column (columns found: {})",
            table.len(),
            crate::azure::column_list(table)
        );
        problems.push(DataProblem::source(source, message.clone()));
        events.problems = problems.finish();
        events.unrecognised = Some(format!(
            "{source}: {message}; expected an AuditLogs export, not another table"
        ));
        return events;
    }
    let mut named_rows = 0usize;
    // Exact duplicates (same record Id, or the same cells) are one record.
    let mut seen_ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    // Rows by the hash of their cells (see `duplicate_of`), hashed with one seed.
    let mut seen_rows: std::collections::HashMap<u64, usize, crate::azure::KeyHasher> =
        std::collections::HashMap::default();
    for row in 0..table.len() {
        // ActivityDisplayName stands in for a blank OperationName on this row.
        let Some(op) = cell_text(table, row, cols.operation)
            .or_else(|| cell_text(table, row, cols.display_name))
        else {
            problems.push(DataProblem::field(
                source,
                row,
                "OperationName",
                "missing (and no ActivityDisplayName): the row cannot be classified",
            ));
            continue;
        };
        named_rows += 1;
        let Some(class) = classify(&op) else { continue };
        if let Some(first) = duplicate_of(table, &cols, row, &mut seen_ids, &mut seen_rows) {
            problems.push(DataProblem::row(
                source,
                row,
                format!("{op:?} row duplicates row {first} (same record Id or identical content); counted once"),
            ));
            continue;
        }
        // Other services never log these names; if one did, it is not PIM's record.
        if let Some(service) = cell_text(table, row, cols.service)
            && !service.eq_ignore_ascii_case("PIM")
        {
            problems.push(DataProblem::field(
                source,
                row,
                "LoggedByService",
                format!(
                    "{op:?} row is logged by {:?}, not PIM; it is not counted as a PIM event",
                    shorten(&service)
                ),
            ));
            continue;
        }
        if let Some(result) = cell_text(table, row, cols.result)
            && ActivityStatus::normalise(&result) == ActivityStatus::Failed
        {
            problems.push(DataProblem::field(
                source,
                row,
                "Result",
                format!("{op:?} row has Result {result:?}; it is not counted"),
            ));
            continue;
        }
        match class {
            RowClass::Activation => {
                events
                    .activations
                    .push(parse_activation(table, &cols, row, source));
            }
            RowClass::End(kind) => {
                let mut row_problems = Vec::new();
                match parse_end(table, &cols, row, source, kind, &mut row_problems) {
                    Some(end) => events.ends.push(end),
                    None => {
                        row_problems.push(DataProblem::row(
                            source,
                            row,
                            format!(
                                "{op:?} row is unusable: it names no time, or neither a user nor a request id"
                            ),
                        ));
                    }
                }
                for p in row_problems {
                    problems.push(p);
                }
            }
        }
    }
    events.problems = problems.finish();
    if named_rows == 0 && !table.is_empty() {
        events.unrecognised = Some(format!(
            "{source}: none of the {} rows has an OperationName or ActivityDisplayName, so none can be recognised as an AuditLogs record; expected an AuditLogs export",
            table.len()
        ));
    }
    events
}

/// The first row this one duplicates: the same non-blank record `Id`, or the same cells.
fn duplicate_of(
    table: &Table,
    cols: &Cols,
    row: usize,
    ids: &mut std::collections::HashMap<String, usize>,
    contents: &mut std::collections::HashMap<u64, usize, crate::azure::KeyHasher>,
) -> Option<usize> {
    use std::hash::Hasher as _;
    if let Some(id) = cell_text(table, row, cols.id) {
        if let Some(&first) = ids.get(id.as_ref()) {
            return Some(first);
        }
        ids.insert(id.into_owned(), row);
    }
    let cells = table.rows.get(row)?;
    // Hashed as values, not as their JSON text: serialising every row cost more than the rest
    // of reading it (issue 12). Equal rows hash alike; rows of one hash are compared in full.
    // (foldhash, seeded at random: several times faster than SipHash on rows of a kilobyte.)
    let mut hasher = std::hash::BuildHasher::build_hasher(contents.hasher());
    for cell in cells {
        hash_value(cell, &mut hasher);
    }
    let key = hasher.finish();
    match contents.get(&key) {
        Some(&first) if table.rows.get(first) == Some(cells) => Some(first),
        Some(_) => None,
        None => {
            contents.insert(key, row);
            None
        }
    }
}

/// Feeds `v` to `h` so that values equal as `serde_json::Value`s hash alike: a tag per kind,
/// numbers by their representation (equal numbers have the same one), arrays and objects
/// with their lengths so that nesting cannot alias.
fn hash_value(v: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, *b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(u) = n.as_u64() {
                (0u8, u).hash(h);
            } else if let Some(i) = n.as_i64() {
                (1u8, i).hash(h);
            } else {
                (2u8, n.as_f64().map(f64::to_bits)).hash(h);
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for item in items {
                hash_value(item, h);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(h);
            for (k, item) in map {
                k.hash(h);
                hash_value(item, h);
            }
        }
    }
}

fn row_data<'t>(
    table: &'t Table,
    cols: &Cols,
    row: usize,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> RowData<'t> {
    RowData {
        initiated_by: cell_dynamic(
            table,
            row,
            cols.initiated_by,
            "InitiatedBy",
            source,
            problems,
        ),
        targets: cell_dynamic(
            table,
            row,
            cols.targets,
            "TargetResources",
            source,
            problems,
        ),
        details: cell_dynamic(
            table,
            row,
            cols.details,
            "AdditionalDetails",
            source,
            problems,
        ),
    }
}

fn parse_activation(table: &Table, cols: &Cols, row: usize, source: &str) -> ActivationRecord {
    let mut problems = Vec::new();
    let data = row_data(table, cols, row, source, &mut problems);

    let logged_time = cell_time(
        table,
        row,
        cols.activity_time,
        "ActivityDateTime",
        source,
        &mut problems,
    )
    .or_else(|| {
        cell_time(
            table,
            row,
            cols.time_generated,
            "TimeGenerated",
            source,
            &mut problems,
        )
    });
    let start_detail = detail_time(&data, "StartTime", row, source, &mut problems);
    let scheduled_end = detail_time(&data, "ExpirationTime", row, source, &mut problems)
        .or_else(|| detail_time(&data, "EndTime", row, source, &mut problems));
    let activation_time = logged_time.or(start_detail);
    let start = start_detail.or(logged_time);
    if activation_time.is_none() {
        problems.push(DataProblem::row(
            source,
            row,
            "no readable activation time (ActivityDateTime, TimeGenerated or StartTime)",
        ));
    }

    let principal = activation_principal(&data);
    if principal.upn.is_none() && principal.object_id.is_none() {
        problems.push(DataProblem::row(
            source,
            row,
            "no user: neither InitiatedBy.user nor a User target has a UPN or object id",
        ));
    }

    let category = cell_text(table, row, cols.category);
    let kind = match category.as_deref().map(RoleKind::from_category) {
        Some(Some(kind)) => kind,
        other => {
            let guess = guess_kind(&data);
            let what = match (other, category.as_deref()) {
                (Some(None), Some(c)) => format!("unknown Category {:?}", shorten(c)),
                _ => "no Category".to_owned(),
            };
            problems.push(DataProblem::field(
                source,
                row,
                "Category",
                format!("{what}; treated as {}", guess.label()),
            ));
            guess
        }
    };

    let (role_name, role_id) = role_of(&data);
    if role_name.is_none() {
        problems.push(DataProblem::field(
            source,
            row,
            "TargetResources",
            "no Role target with a display name",
        ));
    }
    let role = Role {
        name: role_name.unwrap_or_else(|| UNKNOWN_ROLE.to_owned()),
        id: role_id,
        kind,
    };
    let scope = scope_of(&data, kind);

    let justification = [
        cell_text(table, row, cols.result_reason).map(|c| c.into_owned()),
        detail(data.details(), "Justification").filter(|s| !s.trim().is_empty()),
        cell_text(table, row, cols.result_description).map(|c| c.into_owned()),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default();
    let tickets = extract_tickets(&justification);
    // Reference §8.6 / §11.4: the key spelling is unverified, and `detail` matches keys
    // case-insensitively, so `ticketNumber` (Graph's spelling) is read too.
    let ticket_info = ticket_info(
        detail(data.details(), "TicketNumber"),
        detail(data.details(), "TicketSystem"),
    );

    ActivationRecord {
        source: source.to_owned(),
        row,
        activation_time,
        principal,
        role,
        scope,
        justification,
        tickets,
        ticket_info,
        start,
        scheduled_end,
        request_id: request_id_of(&data),
        correlation_id: cell_text(table, row, cols.correlation_id).map(|c| c.into_owned()),
        audit_id: cell_text(table, row, cols.id).map(|c| c.into_owned()),
        problems,
        sources: vec![pim_domain::ActivitySource::AuditLogs],
    }
}

/// Entra's ticket fields, when either holds text.
pub(crate) fn ticket_info(
    number: Option<String>,
    system: Option<String>,
) -> Option<pim_domain::TicketInfo> {
    let keep = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let info = pim_domain::TicketInfo {
        number: keep(number),
        system: keep(system),
    };
    (!info.is_empty()).then_some(info)
}

fn parse_end(
    table: &Table,
    cols: &Cols,
    row: usize,
    source: &str,
    kind: EndKind,
    problems: &mut Vec<DataProblem>,
) -> Option<EndRecord> {
    let data = row_data(table, cols, row, source, problems);
    let time = cell_time(
        table,
        row,
        cols.activity_time,
        "ActivityDateTime",
        source,
        problems,
    )
    .or_else(|| {
        cell_time(
            table,
            row,
            cols.time_generated,
            "TimeGenerated",
            source,
            problems,
        )
    })?;
    // The actor of an expiry is PIM itself; the user is the target.
    let mut principal = target_of_type(data.targets(), "user")
        .map(principal_from)
        .unwrap_or_default();
    if kind == EndKind::Deactivated && !has_identity(&principal) {
        principal = data
            .initiator_user()
            .map(principal_from)
            .unwrap_or_default();
    }
    let request_id = request_id_of(&data);
    // An expiry row may name no user at all; its request id still ties it to its activation.
    if !has_identity(&principal) && request_id.is_none() {
        return None;
    }
    let role_kind = cell_text(table, row, cols.category)
        .as_deref()
        .and_then(RoleKind::from_category);
    let (role_name, role_id) = role_of(&data);
    let scope_id = match role_kind {
        Some(RoleKind::EntraDirectory) => None,
        Some(k) => scope_of(&data, k).id,
        None => scope_of(&data, RoleKind::AzureResource).id,
    };
    let assignment_id = ["OriginRoleAssignmentId", "RoleAssignmentId"]
        .iter()
        .find_map(|k| detail(data.details(), k));
    Some(EndRecord {
        row,
        time,
        kind,
        principal,
        role_kind,
        role_name,
        role_id,
        scope_id,
        request_id,
        assignment_id,
    })
}

fn detail_time(
    data: &RowData<'_>,
    key: &str,
    row: usize,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> Option<OffsetDateTime> {
    let text = detail(data.details(), key)?;
    parse_time_value(
        &Value::String(text),
        row,
        &format!("AdditionalDetails.{key}"),
        source,
        problems,
    )
}

fn has_identity(p: &Principal) -> bool {
    p.upn.is_some() || p.object_id.is_some()
}

fn principal_from(obj: &Value) -> Principal {
    Principal {
        upn: get_text(obj, "userPrincipalName"),
        object_id: get_text(obj, "id"),
        display_name: get_text(obj, "displayName"),
    }
}

/// `InitiatedBy.user` (self-service activation), completed from the `User` target when both
/// name the same person, else the `User` target alone.
fn activation_principal(data: &RowData<'_>) -> Principal {
    let initiator = data.initiator_user().map(principal_from);
    let target = target_of_type(data.targets(), "user").map(principal_from);
    match (initiator, target) {
        (Some(mut i), Some(t)) if has_identity(&i) => {
            let same = eq_ci(i.upn.as_deref(), t.upn.as_deref())
                || eq_ci(i.object_id.as_deref(), t.object_id.as_deref());
            if same {
                i.upn = i.upn.or(t.upn);
                i.object_id = i.object_id.or(t.object_id);
                i.display_name = i.display_name.or(t.display_name);
            }
            i
        }
        (Some(i), None) if has_identity(&i) => i,
        (_, Some(t)) => t,
        // An initiator with neither UPN nor id is PIM's own system actor ("Azure AD PIM"), not
        // the person: reporting its display name as the principal would mislead.
        (Some(_), None) | (None, None) => Principal::default(),
    }
}

pub(crate) fn eq_ci(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

fn role_of(data: &RowData<'_>) -> (Option<String>, Option<String>) {
    let role = target_of_type(data.targets(), "role");
    let name = role.and_then(|r| get_text(r, "displayName"));
    let id = role.and_then(|r| get_text(r, "id")).or_else(|| {
        ["RoleDefinitionOriginId", "TemplateId"]
            .iter()
            .find_map(|k| detail(data.details(), k))
    });
    (name, id)
}

/// The request id that links a PIM request, its activation and its end (reference §8.5):
/// `RoleAssignmentRequestId`, else the older `RequestId`, else a `Request` target's id.
fn request_id_of(data: &RowData<'_>) -> Option<String> {
    ["RoleAssignmentRequestId", "RequestId"]
        .iter()
        .find_map(|k| detail(data.details(), k))
        .or_else(|| target_of_type(data.targets(), "request").and_then(|r| get_text(r, "id")))
}

const AZURE_SCOPE_TYPES: &[&str] = &[
    "subscription",
    "resourcegroup",
    "resource",
    "managementgroup",
];

fn is_arm_path(id: &str) -> bool {
    starts_with_ci(id, "/subscriptions/") || starts_with_ci(id, "/providers/microsoft.management/")
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn guess_kind(data: &RowData<'_>) -> RoleKind {
    let azure = targets(data.targets()).any(|t| {
        target_type(t).is_some_and(|ty| AZURE_SCOPE_TYPES.contains(&ty.as_str()))
            || get_text(t, "id").is_some_and(|id| is_arm_path(&id))
    });
    if azure {
        RoleKind::AzureResource
    } else if target_of_type(data.targets(), "group").is_some() {
        RoleKind::Group
    } else {
        RoleKind::EntraDirectory
    }
}

fn scope_of(data: &RowData<'_>, kind: RoleKind) -> Scope {
    match kind {
        RoleKind::EntraDirectory => Scope::directory(),
        RoleKind::Group => match target_of_type(data.targets(), "group") {
            Some(g) => Scope {
                kind: ScopeKind::Group,
                id: get_text(g, "id"),
                display_name: get_text(g, "displayName"),
            },
            None => Scope::unknown(),
        },
        RoleKind::AzureResource => {
            let found = targets(data.targets()).find_map(|t| {
                let ty = target_type(t)?;
                AZURE_SCOPE_TYPES.contains(&ty.as_str()).then_some((t, ty))
            });
            match found {
                Some((t, ty)) => {
                    let id = get_text(t, "id");
                    let kind = id
                        .as_deref()
                        .and_then(scope_kind_from_arm_path)
                        .unwrap_or(match ty.as_str() {
                            "subscription" => ScopeKind::Subscription,
                            "resourcegroup" => ScopeKind::ResourceGroup,
                            "managementgroup" => ScopeKind::ManagementGroup,
                            _ => ScopeKind::Resource,
                        });
                    Scope {
                        kind,
                        id,
                        display_name: get_text(t, "displayName"),
                    }
                }
                None => Scope::unknown(),
            }
        }
    }
}

/// The scope kind an ARM path denotes, or `None` when `id` is not an ARM path.
pub(crate) fn scope_kind_from_arm_path(id: &str) -> Option<ScopeKind> {
    if !is_arm_path(id) {
        return None;
    }
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let kind = match segments.as_slice() {
        [p, ns, mg, _]
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("microsoft.management")
                && mg.eq_ignore_ascii_case("managementgroups") =>
        {
            ScopeKind::ManagementGroup
        }
        [s, _] if s.eq_ignore_ascii_case("subscriptions") => ScopeKind::Subscription,
        [s, _, rg, _]
            if s.eq_ignore_ascii_case("subscriptions")
                && rg.eq_ignore_ascii_case("resourcegroups") =>
        {
            ScopeKind::ResourceGroup
        }
        _ => ScopeKind::Resource,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{audit_table, sample_activation_row};
    use serde_json::json;

    #[test]
    fn realistic_row_from_the_reference() {
        let t = audit_table(vec![sample_activation_row()]);
        let ev = parse_pim_events(&t, "AuditLogs");
        assert!(ev.problems.is_empty(), "{:?}", ev.problems);
        assert_eq!(ev.activations.len(), 1);
        let a = &ev.activations[0];
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert_eq!(a.principal.upn.as_deref(), Some("jane@contoso.com"));
        assert_eq!(a.principal.object_id.as_deref(), Some("3f1e-oid"));
        assert_eq!(a.role.name, "Contributor");
        assert_eq!(a.role.kind, RoleKind::AzureResource);
        assert_eq!(
            a.role.id.as_deref(),
            Some("b24988ac-6180-42a0-ab88-20f7382dd24c")
        );
        assert_eq!(a.scope.kind, ScopeKind::Subscription);
        assert_eq!(a.scope.display_name.as_deref(), Some("Prod-Sub"));
        assert_eq!(a.justification, "INC0042 - restart stuck VM in rg-prod-web");
        assert_eq!(a.tickets, vec!["INC0042"]);
        assert_eq!(a.request_id.as_deref(), Some("9a8b"));
        assert_eq!(a.audit_id.as_deref(), Some("PIM_abc_1343"));
        let start = a.start.unwrap();
        assert_eq!(start.nanosecond(), 123_456_700);
        assert_eq!(a.scheduled_end.unwrap() - start, time::Duration::hours(4));
        assert!(a.activation_time.unwrap() > start);
    }

    #[test]
    fn entras_own_ticket_fields_are_kept_when_present() {
        let t = audit_table(vec![sample_activation_row()]);
        assert_eq!(parse_pim_events(&t, "S").activations[0].ticket_info, None);
        let mut r = sample_activation_row();
        if let Some(details) = r["AdditionalDetails"].as_array_mut() {
            details.push(json!({"key": "ticketNumber", "value": "CHG0031337"}));
            details.push(json!({"key": "TicketSystem", "value": "ServiceNow"}));
        }
        let ev = parse_pim_events(&audit_table(vec![r]), "S");
        let info = ev.activations[0].ticket_info.clone().unwrap();
        assert_eq!(info.number.as_deref(), Some("CHG0031337"));
        assert_eq!(info.system.as_deref(), Some("ServiceNow"));
        // Blank fields are no ticket information at all.
        let mut r = sample_activation_row();
        if let Some(details) = r["AdditionalDetails"].as_array_mut() {
            details.push(json!({"key": "TicketNumber", "value": "  "}));
        }
        let ev = parse_pim_events(&audit_table(vec![r]), "S");
        assert_eq!(ev.activations[0].ticket_info, None);
    }

    #[test]
    fn dynamic_columns_as_strings_give_the_same_result() {
        let nested = sample_activation_row();
        let mut stringly = nested.clone();
        for k in ["InitiatedBy", "TargetResources", "AdditionalDetails"] {
            let v = stringly[k].take();
            stringly[k] = json!(v.to_string());
        }
        let a = parse_pim_events(&audit_table(vec![nested]), "S");
        let b = parse_pim_events(&audit_table(vec![stringly]), "S");
        assert_eq!(a, b);
    }

    #[test]
    fn lower_case_keys_and_columns_are_found() {
        let mut r = sample_activation_row();
        r["AdditionalDetails"] = json!([
            {"key": "starttime", "value": "2026-11-20T09:00:00Z"},
            {"key": "endTime", "value": "2026-11-20T10:00:00Z"},
            {"key": "justification", "value": "OPS-7 fix"}
        ]);
        r["ResultReason"] = json!("  ");
        let mut t = audit_table(vec![r]);
        for c in &mut t.columns {
            c.name = c.name.to_lowercase();
        }
        let ev = parse_pim_events(&t, "S");
        let a = &ev.activations[0];
        assert_eq!(a.justification, "OPS-7 fix");
        assert_eq!(a.tickets, vec!["OPS-7"]);
        assert_eq!(
            a.scheduled_end.unwrap() - a.start.unwrap(),
            time::Duration::hours(1)
        );
    }

    #[test]
    fn justification_falls_back_to_result_description() {
        let mut r = sample_activation_row();
        r["ResultReason"] = json!(null);
        r["AdditionalDetails"] = json!([]);
        r["ResultDescription"] = json!("CHG1234567 patching");
        let ev = parse_pim_events(&audit_table(vec![r]), "S");
        assert_eq!(ev.activations[0].justification, "CHG1234567 patching");
    }

    #[test]
    fn end_rows_take_the_user_from_the_target() {
        let expiry = json!({
            "TimeGenerated": "2026-11-20T13:14:00Z",
            "OperationName": "Remove member from role (PIM activation expired)",
            "Category": "ResourceManagement", "LoggedByService": "PIM", "Result": "success",
            "InitiatedBy": {"user": {"displayName": "Azure AD PIM", "userPrincipalName": null}},
            "TargetResources": [
                {"type": "Role", "displayName": "Contributor", "id": "b24988ac"},
                {"type": "User", "id": "3f1e-oid", "userPrincipalName": "jane@contoso.com"}
            ],
            "AdditionalDetails": [{"key": "RoleAssignmentRequestId", "value": "r1"},
                                  {"key": "OriginRoleAssignmentId", "value": "as1"}]
        });
        let mut deact = expiry.clone();
        deact["OperationName"] = json!("remove member from role completed (pim deactivate) ");
        deact["TargetResources"] = json!([{"type": "Role", "displayName": "Contributor"}]);
        deact["InitiatedBy"] = json!({"user": {"id": "u2", "userPrincipalName": "bob@x"}});
        let mut requested = expiry.clone();
        requested["OperationName"] = json!("Remove member from role requested (PIM deactivate)");
        let ev = parse_pim_events(&audit_table(vec![expiry, deact, requested]), "S");
        assert_eq!(ev.ends.len(), 2, "{:?}", ev.problems);
        assert_eq!(ev.ends[0].kind, EndKind::Expired);
        assert_eq!(
            ev.ends[0].principal.upn.as_deref(),
            Some("jane@contoso.com")
        );
        assert_eq!(ev.ends[0].request_id.as_deref(), Some("r1"));
        assert_eq!(ev.ends[0].assignment_id.as_deref(), Some("as1"));
        assert_eq!(ev.ends[1].kind, EndKind::Deactivated);
        assert_eq!(ev.ends[1].principal.upn.as_deref(), Some("bob@x"));
    }

    #[test]
    fn missing_facts_still_give_an_activation_with_problems() {
        let row = json!({
            "OperationName": "ADD MEMBER TO ROLE COMPLETED (PIM ACTIVATION)",
            "LoggedByService": "pim",
            "TargetResources": "{broken",
        });
        let ev = parse_pim_events(&audit_table(vec![row]), "S");
        assert_eq!(ev.activations.len(), 1);
        let a = &ev.activations[0];
        assert!(a.activation_time.is_none());
        assert_eq!(a.role.name, UNKNOWN_ROLE);
        let text: Vec<String> = a.problems.iter().map(ToString::to_string).collect();
        let joined = text.join("\n");
        assert!(
            joined.contains("field TargetResources: not valid JSON"),
            "{joined}"
        );
        assert!(joined.contains("no readable activation time"), "{joined}");
        assert!(joined.contains("no user"), "{joined}");
        assert!(joined.contains("no Category"), "{joined}");
    }

    #[test]
    fn unknown_category_is_a_problem_with_a_guess() {
        let mut r = sample_activation_row();
        r["Category"] = json!("Weird");
        let ev = parse_pim_events(&audit_table(vec![r]), "S");
        let a = &ev.activations[0];
        assert_eq!(a.role.kind, RoleKind::AzureResource);
        assert!(a.problems[0].message.contains("unknown Category \"Weird\""));
    }

    #[test]
    fn failed_and_non_pim_rows_are_not_activations() {
        let mut failed = sample_activation_row();
        failed["Result"] = json!("failure");
        let mut other = sample_activation_row();
        other["LoggedByService"] = json!("Core Directory");
        other["Id"] = json!("PIM_other");
        let mut unrelated = sample_activation_row();
        unrelated["OperationName"] = json!("Add member to role requested (PIM activation)");
        unrelated["Id"] = json!("PIM_unrelated");
        let ev = parse_pim_events(&audit_table(vec![failed, other, unrelated]), "S");
        assert!(ev.activations.is_empty());
        // A PIM operation name logged by another service is a problem, never a silent skip.
        assert_eq!(ev.problems.len(), 2, "{:?}", ev.problems);
        assert_eq!(ev.problems[0].row, Some(0));
        assert_eq!(ev.problems[1].row, Some(1));
        assert_eq!(ev.problems[1].field.as_deref(), Some("LoggedByService"));
        assert!(ev.problems[1].message.contains("\"Core Directory\""));
        assert_eq!(ev.unrecognised, None);
    }

    #[test]
    fn activity_display_name_stands_in_for_a_blank_operation_name() {
        let mut r = sample_activation_row();
        r["OperationName"] = json!("  ");
        r["ActivityDisplayName"] = json!(OP_ACTIVATION_COMPLETED);
        let ev = parse_pim_events(&audit_table(vec![r]), "S");
        assert_eq!(ev.activations.len(), 1);
        assert!(ev.problems.is_empty(), "{:?}", ev.problems);
    }

    #[test]
    fn equal_values_hash_alike_and_nesting_does_not_alias() {
        let seed = crate::azure::KeyHasher::default();
        let hash = |v: &Value| {
            let mut h = std::hash::BuildHasher::build_hasher(&seed);
            hash_value(v, &mut h);
            std::hash::Hasher::finish(&h)
        };
        let samples = [
            json!(null),
            json!(true),
            json!(false),
            json!(1),
            json!(-1),
            json!(1.5),
            json!(""),
            json!("1"),
            json!([]),
            json!([[]]),
            json!([[], []]),
            json!([["a"], "b"]),
            json!([["a", "b"]]),
            json!({}),
            json!({"a": "b"}),
            json!({"a": ["b"]}),
            json!({"a": {"b": null}}),
        ];
        for (i, a) in samples.iter().enumerate() {
            let same: Value = serde_json::from_str(&a.to_string()).unwrap();
            assert_eq!(hash(a), hash(&same), "{a}");
            for b in &samples[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a} and {b}");
            }
        }
    }

    #[test]
    fn exact_duplicates_count_once_with_a_problem() {
        let a = sample_activation_row();
        let mut same_id = sample_activation_row();
        same_id["ResultReason"] = json!("edited copy");
        let mut no_id = sample_activation_row();
        no_id["Id"] = json!(null);
        let rows = vec![a.clone(), a, same_id, no_id.clone(), no_id];
        let ev = parse_pim_events(&audit_table(rows), "AuditLogs.json");
        assert_eq!(ev.activations.len(), 2);
        assert_eq!(ev.activations[1].row, 3);
        let dups: Vec<(Option<usize>, &str)> = ev
            .problems
            .iter()
            .map(|p| (p.row, p.message.as_str()))
            .collect();
        assert_eq!(dups.len(), 3, "{dups:?}");
        assert_eq!(dups[0].0, Some(1));
        assert!(dups[0].1.contains("duplicates row 0"));
        assert_eq!(dups[1].0, Some(2));
        assert!(dups[1].1.contains("duplicates row 0"));
        assert_eq!(dups[2].0, Some(4));
        assert!(dups[2].1.contains("duplicates row 3"));
    }

    #[test]
    fn another_table_saved_as_audit_logs_is_unrecognised() {
        let rows = vec![
            json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationName": "Microsoft.Compute/virtualMachines/write",
                               "Caller": "jane@contoso.com", "Category": "Administrative"}),
        ];
        let why = parse_pim_events(&audit_table(rows), "AuditLogs.json")
            .unrecognised
            .unwrap();
        assert!(
            why.contains(
                "no LoggedByService, InitiatedBy, TargetResources or AdditionalDetails column"
            ),
            "{why}"
        );
        assert!(why.contains("\"Caller\""), "{why}");
    }

    #[test]
    fn a_table_with_no_recognisable_row_is_unrecognised() {
        let rows = vec![
            json!({"foo": 1, "OperationName": null, "InitiatedBy": null}),
            json!({"foo": 2}),
        ];
        let ev = parse_pim_events(&audit_table(rows), "AuditLogs.json");
        let why = ev.unrecognised.unwrap();
        assert!(
            why.starts_with("AuditLogs.json: none of the 2 rows"),
            "{why}"
        );
        let ev = parse_pim_events(&audit_table(vec![json!({"foo": 1})]), "AuditLogs.json");
        let why = ev.unrecognised.unwrap();
        assert!(
            why.contains("no OperationName or ActivityDisplayName column"),
            "{why}"
        );
        assert!(why.contains("expected an AuditLogs export"), "{why}");
        // An empty table is a valid, empty export.
        assert_eq!(parse_pim_events(&Table::default(), "S").unrecognised, None);
    }

    #[test]
    fn a_year_0000_start_is_a_problem_not_a_window_start() {
        let mut r = sample_activation_row();
        r["AdditionalDetails"][1]["value"] = json!("0000-01-01T00:00:00Z");
        let ev = parse_pim_events(&audit_table(vec![r]), "S");
        let a = &ev.activations[0];
        assert_eq!(a.start, a.activation_time);
        assert!(
            a.problems.iter().any(
                |p| p.field.as_deref() == Some("AdditionalDetails.StartTime")
                    && p.message.contains("before the year 2000")
            ),
            "{:?}",
            a.problems
        );
    }

    #[test]
    fn missing_operation_column_or_cell_is_a_problem() {
        let t = Table {
            name: "S".into(),
            columns: vec![pim_domain::Column {
                name: "TimeGenerated".into(),
                kind: String::new(),
            }],
            rows: vec![vec![json!("2026-11-20T00:00:00Z")]],
        };
        let ev = parse_pim_events(&t, "S");
        assert_eq!(ev.problems.len(), 1);
        assert!(
            ev.problems[0]
                .message
                .contains("no OperationName or ActivityDisplayName column")
        );
        assert!(ev.unrecognised.is_some());

        let mut r = sample_activation_row();
        r["OperationName"] = json!(null);
        let ev = parse_pim_events(&audit_table(vec![r, sample_activation_row()]), "S");
        assert_eq!(ev.activations.len(), 1);
        assert_eq!(ev.problems[0].row, Some(0));
        assert_eq!(ev.problems[0].field.as_deref(), Some("OperationName"));
    }

    #[test]
    fn garbage_cells_do_not_panic() {
        let huge = "x".repeat(1_000_000);
        let rows = vec![
            json!({"OperationName": 42}),
            json!({"OperationName": OP_ACTIVATION_COMPLETED, "TimeGenerated": 12345,
                   "InitiatedBy": [1, 2], "TargetResources": {"type": "Role"},
                   "AdditionalDetails": [{"key": 5, "value": {"a": 1}}, "junk",
                                         {"key": "StartTime", "value": "not a time"}],
                   "ResultReason": huge, "Category": "\u{0}\u{1b}[31m"}),
            json!({"OperationName": OP_ACTIVATION_COMPLETED, "TimeGenerated": "2026-11-20T00:00:00Z",
                   "InitiatedBy": {"user": {"userPrincipalName": 7, "id": true}},
                   "TargetResources": [{"type": null}, {"type": "Role", "displayName": ["a"]}]}),
        ];
        let ev = parse_pim_events(&audit_table(rows), "S");
        assert_eq!(ev.activations.len(), 2);
        let a = &ev.activations[0];
        assert!(
            a.problems
                .iter()
                .any(|p| p.field.as_deref() == Some("TimeGenerated"))
        );
        assert!(
            a.problems
                .iter()
                .any(|p| p.field.as_deref() == Some("AdditionalDetails.StartTime"))
        );
        assert_eq!(a.justification.len(), 1_000_000);
        let b = &ev.activations[1];
        assert_eq!(b.principal.upn.as_deref(), Some("7"));
        assert_eq!(b.role.name, UNKNOWN_ROLE);
    }

    #[test]
    fn arm_paths_give_scope_kinds() {
        let k = scope_kind_from_arm_path;
        assert_eq!(k("/subscriptions/s"), Some(ScopeKind::Subscription));
        assert_eq!(
            k("/SUBSCRIPTIONS/s/resourceGroups/rg"),
            Some(ScopeKind::ResourceGroup)
        );
        assert_eq!(
            k("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"),
            Some(ScopeKind::Resource)
        );
        assert_eq!(
            k("/providers/Microsoft.Management/managementGroups/mg"),
            Some(ScopeKind::ManagementGroup)
        );
        assert_eq!(k("Prod-Sub"), None);
    }

    #[test]
    fn scope_type_mismatch_uses_the_path_and_groups_use_the_group_target() {
        let mut r = sample_activation_row();
        r["TargetResources"][3] = json!({"type": "subscription", "displayName": "rg", "id": "/subscriptions/s/resourceGroups/rg"});
        let mut g = sample_activation_row();
        g["Category"] = json!("GroupManagement");
        g["TargetResources"] = json!([{"type": "Role", "displayName": "Member"},
                                      {"type": "Group", "displayName": "Ops", "id": "g1"}]);
        g["Id"] = json!("PIM_g");
        let mut d = sample_activation_row();
        d["Category"] = json!("RoleManagement");
        d["Id"] = json!("PIM_d");
        let ev = parse_pim_events(&audit_table(vec![r, g, d]), "S");
        assert_eq!(ev.activations[0].scope.kind, ScopeKind::ResourceGroup);
        assert_eq!(ev.activations[1].scope.kind, ScopeKind::Group);
        assert_eq!(ev.activations[1].scope.id.as_deref(), Some("g1"));
        assert_eq!(ev.activations[2].scope, Scope::directory());
    }
}
