//! Evidence: the resource shown for an operation, explained and unexplained operations grouped by
//! (normalised operation, lower-cased resource), and the catalogue findings. See the
//! [engine docs](crate::engine#evidence-and-rationale) for what evidence holds.

use std::borrow::Cow;
use std::cmp::Reverse;

use pim_domain::{Activity, OperationRef, Risk, RiskFinding};
use time::OffsetDateTime;

use crate::catalogue::CatalogueMatch;
use crate::fast::Operations;

/// One operation with the engine's view of it.
pub(crate) struct Judged<'a> {
    pub(crate) activity: &'a Activity,
    /// The index of its name in [`Operations`].
    pub(crate) op: usize,
    pub(crate) finding: Option<CatalogueMatch>,
    pub(crate) explained: bool,
    pub(crate) bookkeeping: bool,
    /// The resource shown in evidence ([`resource_label`]).
    pub(crate) resource: Option<Cow<'a, str>>,
    /// `resource` lower-cased, empty for none: with the normalised name, the evidence group.
    pub(crate) resource_key: Cow<'a, str>,
    /// [`fingerprint`](crate::bytes::fingerprint) of `resource_key`.
    pub(crate) resource_print: u64,
}

/// The resource an operation touched, as shown in evidence: the ARM id, else the directory
/// targets' names, else the logged resource id. Public so that other assessors label and group
/// operations exactly as the rules' evidence does.
pub fn resource_label(activity: &Activity) -> Option<Cow<'_, str>> {
    if let Some(id) = activity
        .resource_id
        .as_deref()
        .filter(|id| id.starts_with('/'))
    {
        return Some(Cow::Borrowed(id));
    }
    let mut names = activity
        .targets
        .iter()
        .filter_map(|t| t.name.as_deref())
        .map(str::trim)
        .filter(|n| !n.is_empty());
    match (names.next(), names.next()) {
        (None, _) => activity
            .resource_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .map(Cow::Borrowed),
        (Some(only), None) => Some(Cow::Borrowed(only)),
        (Some(first), Some(second)) => {
            let mut joined = format!("{first}, {second}");
            for name in names {
                joined.push_str(", ");
                joined.push_str(name);
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// An evidence group being built.
struct Group<'j> {
    /// The index of the spelling shown (that of the earliest occurrence) in [`Operations`].
    op: usize,
    /// The spelling shown.
    operation: &'j str,
    /// The resource of the first occurrence in input order.
    resource: Option<&'j str>,
    /// The normalised name's rank in [`Operations`] and the lower-cased resource.
    key: (usize, &'j str),
    count: usize,
    first: OffsetDateTime,
    /// The highest catalogue risk among occurrences with exactly the spelling and resource shown.
    risk: Option<Risk>,
}

impl<'j> Group<'j> {
    /// The evidence order: first occurrence, then the shown operation and resource lower-cased,
    /// then the group key. Keys are unique, so the order is total and independent of the input
    /// order.
    fn order<'o>(&self, ops: &'o Operations) -> GroupOrder<'o, 'j> {
        (
            self.first,
            ops.facts[self.op].lowered.as_str(),
            self.resource.map(|_| self.key.1),
            self.key.0,
            self.key.1,
        )
    }
}

/// See [`Group::order`].
type GroupOrder<'o, 'j> = (OffsetDateTime, &'o str, Option<&'j str>, usize, &'j str);

/// Groups the explained (or unexplained) operations by (normalised operation, lower-cased
/// resource), ordered by first occurrence, then the shown operation and resource lower-cased.
/// Also returns, for each group, the highest catalogue risk among its occurrences with exactly
/// the shown spelling and resource (what the rationale ranks by).
pub(crate) fn group(
    judged: &[Judged<'_>],
    ops: &Operations,
    explained: bool,
) -> (Vec<OperationRef>, Vec<Option<Risk>>) {
    // Sorting rather than hashing keeps grouping O(n log n) whatever resource names a hostile
    // tenant picks. Any order that puts equal keys together will do (the groups are ordered
    // afterwards), so the resources' fingerprints are compared first: the ids themselves share
    // long prefixes. Ties are broken by input position so each run is in input order.
    let mut members: Vec<(usize, u64, &str, usize)> = judged
        .iter()
        .enumerate()
        .filter(|(_, j)| j.explained == explained)
        .map(|(i, j)| (ops.rank[j.op], j.resource_print, j.resource_key.as_ref(), i))
        .collect();
    members.sort_unstable();
    let mut groups: Vec<Group<'_>> = Vec::with_capacity(members.len());
    for run in members.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
        let mut run = run.iter().map(|m| &judged[m.3]);
        let Some(first) = run.next() else {
            continue;
        };
        let mut group = Group {
            op: first.op,
            operation: &first.activity.operation,
            resource: first.resource.as_deref(),
            key: (ops.rank[first.op], first.resource_key.as_ref()),
            count: 1,
            first: first.activity.time,
            risk: None,
        };
        for j in run.clone() {
            group.count += 1;
            if j.activity.time < group.first {
                // Show the spelling of the earliest occurrence, whatever the input order.
                group.first = j.activity.time;
                group.operation = &j.activity.operation;
                group.op = j.op;
            }
        }
        for j in std::iter::once(first).chain(run) {
            if let Some(f) = j.finding
                && j.activity.operation == group.operation
                && j.resource.as_deref() == group.resource
            {
                group.risk = group.risk.max(Some(f.risk));
            }
        }
        groups.push(group);
    }
    // Comparing instants as integers first is much cheaper than the full order.
    groups.sort_unstable_by(|a, b| {
        (a.first
            .unix_timestamp_nanos()
            .cmp(&b.first.unix_timestamp_nanos()))
        .then_with(|| a.order(ops).cmp(&b.order(ops)))
    });
    groups
        .into_iter()
        .map(|g| {
            (
                OperationRef {
                    operation: g.operation.to_owned(),
                    resource: g.resource.map(str::to_owned),
                    count: g.count,
                    first: g.first,
                },
                g.risk,
            )
        })
        .unzip()
}

/// Catalogue findings grouped by operation, resource, rule, risk and whether explained; most
/// risky first, unexplained before explained.
pub(crate) fn findings(judged: &[Judged<'_>], ops: &Operations) -> Vec<RiskFinding> {
    // Sorted by (key, input position) and deduplicated on the key, so each finding is the first
    // occurrence in input order. The rank orders as the normalised name does.
    let mut found: Vec<(FindingKey<'_>, usize)> = judged
        .iter()
        .enumerate()
        .filter_map(|(i, j)| {
            let f = j.finding?;
            let key = (
                Reverse(f.risk),
                j.explained,
                ops.rank[j.op],
                j.resource_key.as_ref(),
                f.rule,
            );
            Some((key, i))
        })
        .collect();
    found.sort_unstable();
    found.dedup_by(|later, earlier| later.0 == earlier.0);
    found
        .into_iter()
        .map(|((Reverse(risk), explained, _, _, rule), i)| {
            let j = &judged[i];
            RiskFinding {
                operation: j.activity.operation.as_str().to_owned(),
                resource: j.resource.as_deref().map(str::to_owned),
                risk,
                rule: rule.to_owned(),
                explained,
            }
        })
        .collect()
}

/// See [`findings`].
type FindingKey<'j> = (Reverse<Risk>, bool, usize, &'j str, &'static str);
