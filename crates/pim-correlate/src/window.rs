//! Elevation windows: when each activation really started and ended.

use std::collections::{HashMap, HashSet};

use pim_domain::{
    Activation, DataProblem, ElevationWindow, EndReason, Principal, TimeRange,
    timestamp::format_utc,
};
use time::{Duration, OffsetDateTime};

use crate::pim::{ActivationRecord, EndKind, EndRecord, PimEvents, UNKNOWN_ROLE, eq_ci};

/// The window assumed when the logs give no end: PIM's default maximum activation duration.
pub const DEFAULT_WINDOW: Duration = Duration::hours(8);

/// How to build windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOptions {
    /// The scan range. Windows are cut at its end; activations that do not overlap it are
    /// dropped.
    pub scan: TimeRange,
    /// The duration assumed when nothing logged an end ([`DEFAULT_WINDOW`]).
    pub default_duration: Duration,
}

impl WindowOptions {
    /// Options for a scan range with the default assumed duration.
    pub fn new(scan: TimeRange) -> Self {
        Self {
            scan,
            default_duration: DEFAULT_WINDOW,
        }
    }
}

/// Activations with their windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activations {
    /// Activations whose window overlaps the scan range, sorted by activation time then id.
    pub activations: Vec<Activation>,
    /// Problems not tied to a kept activation (those of unusable rows). Problems of a kept
    /// activation are in its own `problems`.
    pub problems: Vec<DataProblem>,
    /// The tables each activation was recorded in, by activation id.
    pub sources: HashMap<String, Vec<pim_domain::ActivitySource>>,
}

/// Turns parsed PIM events into activations with elevation windows.
///
/// The real end is the earliest of: the scheduled end (`ExpirationTime`/`EndTime`); the
/// activation's end row; and the scan end. The end row is, when the activation carries a request
/// id, the first unused expiry or deactivation row with the same request id (whoever it names:
/// PIM's expiry rows may name no user); end rows carrying another request id are never its end.
/// Only otherwise is it the first unused end row of the same user (UPN case-insensitively or
/// object id), same role (id or name), same kind and compatible scope, at or after the start and
/// before that user's next activation of the same role. Each end row ends at most one
/// activation. A start more than a day after the scan end is a problem, not a window.
///
/// When nothing gives an end, `start + default_duration` is assumed (`assumed = true`,
/// `EndReason::Assumed`, or `StillActive` if cut at the scan end). A scheduled end before the
/// start is a problem and counts as no end. An activation with no time at all is kept with an
/// empty window at the scan start, so the report shows it as unknown rather than losing it.
pub fn build_activations(events: PimEvents, options: &WindowOptions) -> Activations {
    let PimEvents {
        activations: mut records,
        ends,
        mut problems,
        ..
    } = events;
    // Earlier activations claim their end rows first.
    records.sort_by_key(|r| (r.start.or(r.activation_time), r.row));

    let end_index = index_by_identity(ends.iter().map(|e| &e.principal));
    let mut request_index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in ends.iter().enumerate() {
        if let Some(id) = e
            .request_id
            .as_deref()
            .map(request_key)
            .filter(|k| !k.is_empty())
        {
            request_index.entry(id).or_default().push(i);
        }
    }
    let record_index = index_by_identity(records.iter().map(|r| &r.principal));
    let boundaries: Vec<Option<OffsetDateTime>> = (0..records.len())
        .map(|pos| next_activation_start(&records, &record_index, pos))
        .collect();

    let mut consumed = vec![false; ends.len()];
    // Sized once: a record is large, and a vector grown by doubling copies them all each time.
    let mut kept = Vec::with_capacity(records.len());
    for (record, boundary) in records.into_iter().zip(boundaries) {
        let end = match record.start.or(record.activation_time) {
            Some(start) => find_end(
                &record,
                start,
                boundary,
                &ends,
                (&end_index, &request_index),
                &consumed,
            ),
            None => None,
        };
        if let Some(e) = end {
            consumed[e] = true;
        }
        match window_for(record, end.map(|e| &ends[e]), options) {
            Ok(built) => kept.push(built),
            Err(Some(problem)) => problems.push(problem),
            Err(None) => {}
        }
    }

    // Ids in row order, so suffixes do not depend on how windows sorted.
    kept.sort_by_key(|(r, _, _)| r.row);
    let mut used: HashSet<String> = HashSet::with_capacity(kept.len());
    let mut sources = HashMap::with_capacity(kept.len());
    let mut activations: Vec<Activation> = kept
        .into_iter()
        .map(|(mut record, window, extra)| {
            let id = unique_id(&record, &mut used);
            sources.insert(id.clone(), std::mem::take(&mut record.sources));
            to_activation(record, id, window, extra, options)
        })
        .collect();
    activations.sort_by(|a, b| {
        a.activated_at
            .cmp(&b.activated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Activations {
        activations,
        problems,
        sources,
    }
}

/// Index keys of a principal: `upn:` and `oid:` namespaced, lower-cased.
fn identity_keys(p: &Principal) -> impl Iterator<Item = String> + '_ {
    let upn = p
        .upn
        .as_deref()
        .map(|u| format!("upn:{}", u.to_lowercase()));
    let oid = p
        .object_id
        .as_deref()
        .map(|o| format!("oid:{}", o.to_lowercase()));
    upn.into_iter().chain(oid)
}

fn index_by_identity<'a>(
    principals: impl Iterator<Item = &'a Principal>,
) -> HashMap<String, Vec<usize>> {
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in principals.enumerate() {
        for key in identity_keys(p) {
            index.entry(key).or_default().push(i);
        }
    }
    index
}

fn same_principal(a: &Principal, b: &Principal) -> bool {
    eq_ci(a.upn.as_deref(), b.upn.as_deref())
        || eq_ci(a.object_id.as_deref(), b.object_id.as_deref())
}

fn known_name(name: &str) -> Option<&str> {
    (name != UNKNOWN_ROLE).then_some(name)
}

fn same_scope(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a
            .trim_end_matches('/')
            .eq_ignore_ascii_case(b.trim_end_matches('/')),
        _ => true,
    }
}

/// Whether two activation records are the same user, role and scope.
fn same_assignment(a: &ActivationRecord, b: &ActivationRecord) -> bool {
    same_principal(&a.principal, &b.principal)
        && a.role.kind == b.role.kind
        && (eq_ci(a.role.id.as_deref(), b.role.id.as_deref())
            || eq_ci(known_name(&a.role.name), known_name(&b.role.name)))
        && same_scope(a.scope.id.as_deref(), b.scope.id.as_deref())
}

/// PIM cannot activate a role the user already holds at that scope, so an end row for this
/// activation must come before the next activation of the same assignment.
fn next_activation_start(
    records: &[ActivationRecord],
    index: &HashMap<String, Vec<usize>>,
    pos: usize,
) -> Option<OffsetDateTime> {
    let me = &records[pos];
    let start = me.start.or(me.activation_time)?;
    identity_keys(&me.principal)
        .filter_map(|k| index.get(&k))
        .flatten()
        .filter(|&&other| other > pos)
        .filter_map(|&other| {
            let r = &records[other];
            let s = r.start.or(r.activation_time)?;
            (s > start && same_assignment(me, r)).then_some(s)
        })
        .min()
}

fn end_matches(record: &ActivationRecord, end: &EndRecord) -> bool {
    same_principal(&record.principal, &end.principal)
        && end.role_kind.is_none_or(|k| k == record.role.kind)
        && (eq_ci(record.role.id.as_deref(), end.role_id.as_deref())
            || eq_ci(known_name(&record.role.name), end.role_name.as_deref()))
        && same_scope(record.scope.id.as_deref(), end.scope_id.as_deref())
}

/// Row numbers by a key (identity or request id).
type RowIndex = HashMap<String, Vec<usize>>;

/// A request id as an index key: trimmed, lower-cased, dashes kept.
fn request_key(id: &str) -> String {
    id.trim().to_lowercase()
}

/// The end row of an activation. When the activation carries a request id, an unused end row
/// with the same request id (at or after the start) is its end, whoever the row names; end rows
/// carrying a different request id are never its end. Only then are principal, role and scope
/// compared, among end rows without a request id (or for activations without one).
fn find_end(
    record: &ActivationRecord,
    start: OffsetDateTime,
    boundary: Option<OffsetDateTime>,
    ends: &[EndRecord],
    (index, by_request): (&RowIndex, &RowIndex),
    consumed: &[bool],
) -> Option<usize> {
    let request = record
        .request_id
        .as_deref()
        .map(request_key)
        .filter(|k| !k.is_empty());
    if let Some(key) = &request {
        let linked = by_request
            .get(key)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&e| !consumed[e] && ends[e].time >= start)
            .min_by_key(|&e| (ends[e].time, e));
        if linked.is_some() {
            return linked;
        }
    }
    let mut best: Option<(bool, OffsetDateTime, usize)> = None;
    for &e in identity_keys(&record.principal)
        .filter_map(|k| index.get(&k))
        .flatten()
    {
        let end = &ends[e];
        let other_request = request.is_some()
            && end
                .request_id
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty());
        if consumed[e]
            || other_request
            || end.time < start
            || boundary.is_some_and(|b| end.time >= b)
            || !end_matches(record, end)
        {
            continue;
        }
        let by_assignment =
            request.is_some() && eq_ci(record.request_id.as_deref(), end.assignment_id.as_deref());
        // Prefer an assignment-id match, then the earliest row.
        let key = (!by_assignment, end.time, e);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    best.map(|(_, _, e)| e)
}

type Built = (ActivationRecord, ElevationWindow, Vec<DataProblem>);

/// How far past the scan end a logged time may lie before it is a problem rather than a clock
/// skew or ingestion delay.
const FUTURE_SLACK: Duration = Duration::days(1);

/// The window of one record; `Err(None)` when it does not overlap the scan, `Err(Some(problem))`
/// when its start cannot be real (more than a day after the scan end).
fn window_for(
    record: ActivationRecord,
    end_row: Option<&EndRecord>,
    options: &WindowOptions,
) -> Result<Built, Option<DataProblem>> {
    let scan = options.scan;
    let mut problems = Vec::new();
    let Some(start) = record.start.or(record.activation_time) else {
        problems.push(DataProblem::row(
            &record.source,
            record.row,
            "no start time: the window is unknown and shown as empty at the scan start",
        ));
        let window = ElevationWindow {
            start: scan.start,
            end: scan.start,
            end_reason: EndReason::Assumed,
            scheduled_end: record.scheduled_end,
            assumed: true,
        };
        return Ok((record, window, problems));
    };
    if start > scan.end + FUTURE_SLACK {
        return Err(Some(DataProblem::row(
            &record.source,
            record.row,
            format!(
                "the activation starts at {}, more than a day after the scan end {}: not a real time, no window is opened",
                format_utc(start),
                format_utc(scan.end)
            ),
        )));
    }

    let mut scheduled = record.scheduled_end;
    if let Some(s) = scheduled
        && s < start
    {
        problems.push(DataProblem::field(
            &record.source,
            record.row,
            "AdditionalDetails.ExpirationTime",
            format!(
                "scheduled end {} is before the start {}; the end is treated as unknown",
                format_utc(s),
                format_utc(start)
            ),
        ));
        scheduled = None;
    }

    let logged_end = end_row.map(|e| {
        let reason = match e.kind {
            EndKind::Expired => EndReason::Expired,
            EndKind::Deactivated => EndReason::Deactivated,
        };
        (e.time, reason)
    });
    // On a tie the end row wins: it says what actually happened.
    let known_end = match (logged_end, scheduled) {
        (Some(row), Some(s)) if s < row.0 => Some((s, EndReason::Expired)),
        (Some(row), _) => Some(row),
        (None, Some(s)) => Some((s, EndReason::Expired)),
        (None, None) => None,
    };
    let (end, mut reason, assumed) = match known_end {
        Some((t, r)) => (t, r, false),
        None => (
            start
                .checked_add(options.default_duration)
                .filter(|e| *e >= start)
                .unwrap_or(start),
            EndReason::Assumed,
            true,
        ),
    };
    if !TimeRange::new(start, end).overlaps(&scan) || start > scan.end {
        return Err(None);
    }
    let end = if end > scan.end {
        reason = EndReason::StillActive;
        scan.end
    } else {
        end
    };
    let window = ElevationWindow {
        start,
        end,
        end_reason: reason,
        scheduled_end: scheduled,
        assumed,
    };
    Ok((record, window, problems))
}

fn unique_id(record: &ActivationRecord, used: &mut HashSet<String>) -> String {
    let base = match (&record.audit_id, &record.correlation_id) {
        (Some(id), _) => id.clone(),
        (None, Some(c)) => format!("{c}#{}", record.row),
        (None, None) => format!("row-{}", record.row),
    };
    let mut id = base.clone();
    let mut n = 2usize;
    while used.contains(&id) {
        id = format!("{base}#{n}");
        n += 1;
    }
    used.insert(id.clone());
    id
}

fn to_activation(
    record: ActivationRecord,
    id: String,
    window: ElevationWindow,
    extra: Vec<DataProblem>,
    options: &WindowOptions,
) -> Activation {
    let mut problems = record.problems;
    problems.extend(extra);
    Activation {
        id,
        activated_at: record
            .activation_time
            .or(record.start)
            .unwrap_or(options.scan.start),
        principal: record.principal,
        role: record.role,
        scope: record.scope,
        justification: record.justification,
        tickets: record.tickets,
        ticket_info: record.ticket_info,
        ticket_checks: Vec::new(),
        window,
        request_id: record.request_id,
        correlation_id: record.correlation_id,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::{Role, RoleKind, Scope};
    use time::macros::datetime;

    fn at(h: i32) -> OffsetDateTime {
        hours(f64::from(h))
    }

    fn hours(h: f64) -> OffsetDateTime {
        datetime!(2026-11-20 00:00 UTC) + Duration::minutes((h * 60.0) as i64)
    }

    fn scan() -> WindowOptions {
        WindowOptions::new(TimeRange::new(at(0), at(24)))
    }

    fn user(upn: &str, oid: &str) -> Principal {
        Principal {
            upn: Some(upn.into()),
            object_id: Some(oid.into()),
            display_name: None,
        }
    }

    fn rec(
        row: usize,
        who: Principal,
        role: &str,
        start: f64,
        end: Option<f64>,
    ) -> ActivationRecord {
        ActivationRecord {
            source: "AuditLogs".into(),
            row,
            activation_time: Some(hours(start)),
            principal: who,
            role: Role {
                name: role.into(),
                id: None,
                kind: RoleKind::AzureResource,
            },
            scope: Scope::unknown(),
            justification: "j".into(),
            tickets: vec![],
            ticket_info: None,
            start: Some(hours(start)),
            scheduled_end: end.map(hours),
            request_id: None,
            correlation_id: None,
            audit_id: Some(format!("PIM_{row}")),
            problems: vec![],
            sources: vec![pim_domain::ActivitySource::AuditLogs],
        }
    }

    fn end(row: usize, who: Principal, role: &str, t: f64, kind: EndKind) -> EndRecord {
        EndRecord {
            row,
            time: hours(t),
            kind,
            principal: who,
            role_kind: Some(RoleKind::AzureResource),
            role_name: Some(role.into()),
            role_id: None,
            scope_id: None,
            request_id: None,
            assignment_id: None,
        }
    }

    fn jane() -> Principal {
        user("jane@contoso.com", "oid-jane")
    }

    fn build(activations: Vec<ActivationRecord>, ends: Vec<EndRecord>) -> Vec<Activation> {
        build_with(activations, ends, &scan())
    }

    fn build_with(
        activations: Vec<ActivationRecord>,
        ends: Vec<EndRecord>,
        options: &WindowOptions,
    ) -> Vec<Activation> {
        build_activations(
            PimEvents {
                activations,
                ends,
                problems: vec![],
                unrecognised: None,
            },
            options,
        )
        .activations
    }

    #[test]
    fn end_rows_are_matched_by_request_id_first() {
        let mut a = rec(0, jane(), "Contributor", 9.0, Some(13.0));
        a.request_id = Some("REQ-1".into());
        // An expiry naming no user, only the request id (as PIM logs it), ends the window ...
        let mut no_user = end(
            1,
            Principal::default(),
            "Contributor",
            11.0,
            EndKind::Expired,
        );
        no_user.request_id = Some(" req-1 ".into());
        no_user.role_name = None;
        // ... and an earlier deactivation of the same user and role under another request id
        // does not, though principal, role and scope all match.
        let mut other = end(2, jane(), "Contributor", 10.0, EndKind::Deactivated);
        other.request_id = Some("REQ-2".into());
        let built = build(vec![a.clone()], vec![no_user.clone(), other.clone()]);
        assert_eq!(built[0].window.end, hours(11.0));
        assert_eq!(built[0].window.end_reason, EndReason::Expired);
        // Without a request id on the activation, principal, role and scope decide.
        a.request_id = None;
        let built = build(vec![a], vec![no_user, other]);
        assert_eq!(built[0].window.end, hours(10.0));
        assert_eq!(built[0].window.end_reason, EndReason::Deactivated);
    }

    #[test]
    fn a_start_more_than_a_day_after_the_scan_end_is_a_problem() {
        let far = rec(0, jane(), "Contributor", 24.0 + 25.0, None);
        let near = rec(1, jane(), "Reader", 24.0 + 12.0, None);
        let out = build_activations(
            PimEvents {
                activations: vec![far, near],
                ends: vec![],
                problems: vec![],
                unrecognised: None,
            },
            &scan(),
        );
        assert!(out.activations.is_empty());
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        assert_eq!(out.problems[0].row, Some(0));
        assert!(
            out.problems[0]
                .message
                .contains("more than a day after the scan end")
        );
    }

    #[test]
    fn scheduled_expiry() {
        let a = build(vec![rec(0, jane(), "Contributor", 9.0, Some(13.0))], vec![]);
        assert_eq!(a[0].window.end, hours(13.0));
        assert_eq!(a[0].window.end_reason, EndReason::Expired);
        assert!(!a[0].window.assumed);
    }

    #[test]
    fn early_deactivation() {
        let a = build(
            vec![rec(0, jane(), "Contributor", 9.0, Some(13.0))],
            vec![end(
                1,
                user("JANE@contoso.com", "x"),
                "contributor",
                10.0,
                EndKind::Deactivated,
            )],
        );
        assert_eq!(a[0].window.end, hours(10.0));
        assert_eq!(a[0].window.end_reason, EndReason::Deactivated);
    }

    #[test]
    fn expiry_row_earlier_than_scheduled_end() {
        let a = build(
            vec![rec(0, jane(), "Contributor", 9.0, Some(13.0))],
            vec![end(
                1,
                user("other@x", "oid-jane"),
                "Contributor",
                12.5,
                EndKind::Expired,
            )],
        );
        assert_eq!(a[0].window.end, hours(12.5));
        assert_eq!(a[0].window.end_reason, EndReason::Expired);
    }

    #[test]
    fn expiry_row_after_scheduled_end_keeps_the_scheduled_end() {
        let a = build(
            vec![rec(0, jane(), "Contributor", 9.0, Some(13.0))],
            vec![end(1, jane(), "Contributor", 13.01, EndKind::Expired)],
        );
        assert_eq!(a[0].window.end, hours(13.0));
        assert_eq!(a[0].window.end_reason, EndReason::Expired);
    }

    #[test]
    fn still_active_is_cut_at_scan_end() {
        let a = build(
            vec![rec(0, jane(), "Contributor", 22.0, Some(30.0))],
            vec![],
        );
        assert_eq!(a[0].window.end, at(24));
        assert_eq!(a[0].window.end_reason, EndReason::StillActive);
        assert!(!a[0].window.assumed);
    }

    #[test]
    fn assumed_default_duration() {
        let a = build(vec![rec(0, jane(), "Contributor", 9.0, None)], vec![]);
        assert_eq!(a[0].window.end, hours(17.0));
        assert_eq!(a[0].window.end_reason, EndReason::Assumed);
        assert!(a[0].window.assumed);
    }

    #[test]
    fn assumed_and_clipped() {
        let a = build(vec![rec(0, jane(), "Contributor", 20.0, None)], vec![]);
        assert_eq!(a[0].window.end, at(24));
        assert_eq!(a[0].window.end_reason, EndReason::StillActive);
        assert!(a[0].window.assumed);
    }

    #[test]
    fn scheduled_end_before_start_is_a_problem_and_assumed() {
        let a = build(vec![rec(0, jane(), "Contributor", 9.0, Some(8.0))], vec![]);
        assert!(a[0].window.assumed);
        assert_eq!(a[0].window.end, hours(17.0));
        assert_eq!(a[0].problems.len(), 1);
        assert!(a[0].problems[0].message.contains("before the start"));
    }

    #[test]
    fn overlap_from_before_the_scan_is_kept_and_outside_dropped() {
        let a = build(
            vec![
                rec(0, jane(), "Contributor", -2.0, Some(1.0)),
                rec(1, jane(), "Reader", -9.0, Some(-1.0)),
                rec(2, jane(), "Owner", 25.0, Some(26.0)),
                rec(3, jane(), "Owner", -10.0, None),
            ],
            vec![],
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].role.name, "Contributor");
        assert_eq!(a[0].window.start, hours(-2.0));
        assert_eq!(a[0].window.end, hours(1.0));
    }

    #[test]
    fn two_activations_of_one_user_each_get_their_own_end() {
        let a = build(
            vec![
                rec(0, jane(), "Contributor", 9.0, Some(17.0)),
                rec(1, jane(), "Contributor", 12.0, Some(20.0)),
            ],
            vec![
                end(2, jane(), "Contributor", 10.0, EndKind::Deactivated),
                end(3, jane(), "Contributor", 13.0, EndKind::Deactivated),
            ],
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].window.end, hours(10.0));
        assert_eq!(a[1].window.end, hours(13.0));
    }

    #[test]
    fn a_consumed_end_row_does_not_end_another_activation() {
        // The first activation has no end row of its own; the only row belongs to the second.
        let a = build(
            vec![
                rec(0, jane(), "Contributor", 9.0, None),
                rec(1, jane(), "Contributor", 12.0, None),
            ],
            vec![end(2, jane(), "Contributor", 14.0, EndKind::Deactivated)],
        );
        assert_eq!(a[0].window.end_reason, EndReason::Assumed);
        assert_eq!(a[1].window.end, hours(14.0));
        assert_eq!(a[1].window.end_reason, EndReason::Deactivated);
    }

    #[test]
    fn end_row_for_another_role_user_or_scope_is_ignored() {
        let mut scoped = rec(0, jane(), "Contributor", 9.0, Some(13.0));
        scoped.scope.id = Some("/subscriptions/a".into());
        let mut other_scope = end(3, jane(), "Contributor", 10.0, EndKind::Deactivated);
        other_scope.scope_id = Some("/subscriptions/b".into());
        let a = build(
            vec![scoped],
            vec![
                end(1, jane(), "Owner", 10.0, EndKind::Deactivated),
                end(
                    2,
                    user("bob@x", "oid-bob"),
                    "Contributor",
                    10.0,
                    EndKind::Deactivated,
                ),
                other_scope,
                end(4, jane(), "Contributor", 8.0, EndKind::Deactivated),
            ],
        );
        assert_eq!(a[0].window.end, hours(13.0));
        assert_eq!(a[0].window.end_reason, EndReason::Expired);
    }

    #[test]
    fn request_id_match_is_preferred() {
        let mut r = rec(0, jane(), "Contributor", 9.0, Some(13.0));
        r.request_id = Some("REQ-1".into());
        let mut matching = end(2, jane(), "Contributor", 11.0, EndKind::Deactivated);
        matching.request_id = Some("req-1".into());
        let a = build(
            vec![r],
            vec![
                end(1, jane(), "Contributor", 10.0, EndKind::Expired),
                matching,
            ],
        );
        assert_eq!(a[0].window.end, hours(11.0));
    }

    #[test]
    fn no_time_keeps_the_activation_with_an_empty_window() {
        let mut r = rec(0, Principal::default(), UNKNOWN_ROLE, 9.0, None);
        r.activation_time = None;
        r.start = None;
        let a = build(vec![r], vec![]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].window.start, at(0));
        assert_eq!(a[0].window.duration(), Duration::ZERO);
        assert!(a[0].window.assumed);
        assert!(!a[0].problems.is_empty());
    }

    #[test]
    fn ids_are_unique_and_output_sorted() {
        let mut a = rec(0, jane(), "A", 10.0, None);
        let mut b = rec(1, jane(), "B", 9.0, None);
        let mut c = rec(2, jane(), "C", 9.0, None);
        a.audit_id = Some("dup".into());
        b.audit_id = Some("dup".into());
        c.audit_id = None;
        c.correlation_id = Some("corr".into());
        let mut d = rec(3, jane(), "D", 8.0, None);
        d.audit_id = None;
        let out = build(vec![a, b, c, d], vec![]);
        let ids: Vec<&str> = out.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, vec!["row-3", "corr#2", "dup#2", "dup"]);
    }
}
