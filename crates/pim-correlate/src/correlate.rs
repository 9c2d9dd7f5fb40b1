//! Correlation: which activities fall inside which elevation window.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use pim_domain::{Activation, Activity, RoleKind, ScopeKind, SharedText};

use crate::azure::KeyHasher;
use crate::pim::{scope_kind_from_arm_path, starts_with_ci};

/// The `AzureActivity` operation of a Global Administrator turning on "Access management for
/// Azure resources", which grants User Access Administrator at the root scope (`/`).
pub const ELEVATE_ACCESS_OPERATION: &str = "Microsoft.Authorization/elevateAccess/action";

/// The default cap on activities kept per activation.
pub const DEFAULT_MAX_ACTIVITIES: usize = 5_000;

/// How to correlate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelateOptions {
    /// Most activities kept per activation; the rest are counted in [`Correlated::total`].
    pub max_activities_per_activation: usize,
}

impl Default for CorrelateOptions {
    fn default() -> Self {
        Self {
            max_activities_per_activation: DEFAULT_MAX_ACTIVITIES,
        }
    }
}

/// The activities of one activation's window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Correlated {
    /// Matching activities sorted by time, at most the cap.
    pub activities: Vec<Activity>,
    /// How many matched before the cap.
    pub total: usize,
    /// Whether the cap cut the list (`total > cap`).
    pub truncated: bool,
}

/// Correlates activity to activations; the result is index-aligned with `activations`.
///
/// An activity belongs to an activation when it was performed by the same identity (caller equal
/// to the UPN case-insensitively, or caller object id / caller GUID equal to the object id, which
/// survives UPN changes and guest `#EXT#` UPNs) at a time inside the window (both ends
/// inclusive). Routing by role kind:
///
/// - Azure resource roles: `azure` activities, limited to resources at or under the activated
///   scope when the scope is an ARM path below a management group (activities with no resource
///   id are kept: nothing shows they are outside). Management-group scopes are not filtered,
///   because resource ids do not carry the management-group path.
/// - PIM for Groups: `azure` and `directory` activities (a group may carry Azure role
///   assignments as well as directory roles).
/// - Entra directory roles: `directory` activities, plus the `azure` activity
///   [`ELEVATE_ACCESS_OPERATION`]: a Global Administrator can use the directory role to grant
///   themselves User Access Administrator over every subscription, the one Azure action the
///   directory role itself makes possible. Their later Azure operations rely on that new
///   assignment, not on the PIM role, so they are not attributed here.
///
/// Activities are indexed once per identity into time-sorted lists and each window is found by
/// binary search, so the cost is about `(activities + activations) × log(activities)` plus the
/// output.
pub fn correlate(
    activations: &[Activation],
    azure: &[Activity],
    directory: &[Activity],
    options: &CorrelateOptions,
) -> Vec<Correlated> {
    matches(activations, azure, directory, options)
        .into_iter()
        .map(|m| Correlated {
            activities: m
                .kept
                .iter()
                .map(|&(src, i)| pick(azure, directory, src, i).clone())
                .collect(),
            total: m.total,
            truncated: m.truncated,
        })
        .collect()
}

/// [`correlate`] for callers that no longer need the activity lists: each activity is moved
/// into the first window that keeps it and cloned only for further (overlapping) windows, so
/// correlating a large scan allocates about nothing beyond what parsing did.
pub fn correlate_owned(
    activations: &[Activation],
    mut azure: Vec<Activity>,
    mut directory: Vec<Activity>,
    options: &CorrelateOptions,
) -> Vec<Correlated> {
    let found = matches(activations, &azure, &directory, options);
    // How many windows still need each activity; the last one takes it.
    let mut uses = [vec![0u32; azure.len()], vec![0u32; directory.len()]];
    for m in &found {
        for &(src, i) in &m.kept {
            if let Some(n) = uses[usize::from(src)].get_mut(i as usize) {
                *n += 1;
            }
        }
    }
    // The activities are handed out on every core, each thread taking a share of the windows.
    // They are reached through locked stripes of the pools, so that a window that clones an
    // activity does so before another takes it, whichever thread each is on.
    let [azure_uses, directory_uses] = &mut uses;
    let pools = [
        Stripes::of(&mut azure, azure_uses),
        Stripes::of(&mut directory, directory_uses),
    ];
    let share = share_len(found.len());
    let mut shares: Vec<Vec<Match>> = Vec::new();
    let mut found = found.into_iter().peekable();
    while found.peek().is_some() {
        shares.push(found.by_ref().take(share).collect());
    }
    in_shares(shares, |share| {
        // What a taken activity leaves behind holds one text for the whole share (a clone of
        // it allocates nothing, and no other thread counts its references).
        let empty = SharedText::default();
        share
            .into_iter()
            .map(|m| hand_out(m, &pools, &empty))
            .collect()
    })
}

/// Windows given to a thread at least: fewer are not worth one.
const MIN_PER_THREAD: usize = 256;

/// How many of `len` windows each thread takes: all of them on one core, or when there are
/// few.
fn share_len(len: usize) -> usize {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(len / MIN_PER_THREAD)
        .max(1);
    len.div_ceil(threads).max(1)
}

/// `work` on each share, on a thread of its own when there is more than one, the results put
/// together in the shares' order.
fn in_shares<S: Send, R: Send>(shares: Vec<S>, work: impl Fn(S) -> Vec<R> + Sync) -> Vec<R> {
    if shares.len() <= 1 {
        return shares.into_iter().flat_map(work).collect();
    }
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || work(share)))
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                // A panic here is a bug; it goes on as it would have without the thread.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

/// Activities in a [`Stripes`] stripe.
const STRIPE: usize = 1024;

/// A pool of activities and how many windows still need each, in locked stripes of
/// [`STRIPE`] activities.
struct Stripes<'p> {
    stripes: Vec<std::sync::Mutex<(&'p mut [Activity], &'p mut [u32])>>,
}

impl<'p> Stripes<'p> {
    fn of(pool: &'p mut [Activity], uses: &'p mut [u32]) -> Self {
        Self {
            stripes: pool
                .chunks_mut(STRIPE)
                .zip(uses.chunks_mut(STRIPE))
                .map(std::sync::Mutex::new)
                .collect(),
        }
    }

    /// Activity `i`: moved out (leaving one holding `empty`) when this is its last window,
    /// else cloned.
    fn take(&self, i: usize, empty: &SharedText) -> Option<Activity> {
        let mut stripe = self
            .stripes
            .get(i / STRIPE)?
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (pool, uses) = &mut *stripe;
        let k = i % STRIPE;
        let left = uses.get_mut(k)?;
        *left = left.saturating_sub(1);
        let last = *left == 0;
        let slot = pool.get_mut(k)?;
        // Taken activities are swapped for an empty one (which allocates nothing) rather
        // than wrapping every activity in an `Option` first: that pass alone moved the whole
        // scan once more (issue 12).
        Some(if last {
            let empty = taken(slot, empty);
            std::mem::replace(slot, empty)
        } else {
            slot.clone()
        })
    }
}

/// The window's activities, taken from the pools.
fn hand_out(m: Match, pools: &[Stripes<'_>; 2], empty: &SharedText) -> Correlated {
    let activities = m
        .kept
        .iter()
        .filter_map(|&(src, i)| pools.get(usize::from(src))?.take(i as usize, empty))
        .collect();
    Correlated {
        activities,
        total: m.total,
        truncated: m.truncated,
    }
}

/// What is left in a pool slot once its activity is taken: nothing allocated, never read.
fn taken(a: &Activity, empty: &SharedText) -> Activity {
    Activity {
        time: a.time,
        operation: empty.clone(),
        status: a.status,
        resource_id: None,
        resource_group: None,
        subscription_id: None,
        provider: None,
        source: a.source,
        caller: None,
        caller_object_id: None,
        correlation_id: None,
        targets: Vec::new(),
    }
}

/// The activities one window keeps, as (source, index) pairs: source 0 is `azure`, 1 is
/// `directory`.
struct Match {
    kept: Vec<(u8, u32)>,
    total: usize,
    truncated: bool,
}

fn pick<'a>(azure: &'a [Activity], directory: &'a [Activity], src: u8, i: u32) -> &'a Activity {
    if src == 0 {
        &azure[i as usize]
    } else {
        &directory[i as usize]
    }
}

fn matches(
    activations: &[Activation],
    azure: &[Activity],
    directory: &[Activity],
    options: &CorrelateOptions,
) -> Vec<Match> {
    let wanted: HashSet<String, KeyHasher> = activations.iter().flat_map(identity_keys).collect();
    // The two tables are indexed side by side when both are large enough to be worth a thread.
    const MIN_ROWS_PER_THREAD: usize = 4096;
    let (azure_index, directory_index) = if azure.len().min(directory.len()) < MIN_ROWS_PER_THREAD {
        (
            Index::build(azure, &wanted),
            Index::build(directory, &wanted),
        )
    } else {
        std::thread::scope(|scope| {
            let directory = scope.spawn(|| Index::build(directory, &wanted));
            let azure = Index::build(azure, &wanted);
            match directory.join() {
                Ok(directory) => (azure, directory),
                // A panic here is a bug; it goes on as it would have without the thread.
                Err(e) => std::panic::resume_unwind(e),
            }
        })
    };
    let indexes = Indexes {
        azure,
        azure_index,
        directory_index,
    };
    // Windows are matched independently over shared, read-only indexes: on every core, in
    // chunks whose results are put back in activation order.
    let shares = activations.chunks(share_len(activations.len())).collect();
    in_shares(shares, |share| indexes.matches(share, options))
}

/// The activities and their indexes, shared by the threads that match windows.
struct Indexes<'a> {
    azure: &'a [Activity],
    azure_index: Index,
    directory_index: Index,
}

impl Indexes<'_> {
    /// The matches of each activation's window, in order.
    fn matches(&self, activations: &[Activation], options: &CorrelateOptions) -> Vec<Match> {
        let Self {
            azure,
            azure_index,
            directory_index,
        } = self;
        let mut hits: Vec<(i128, u8, u32)> = Vec::new();
        activations
            .iter()
            .map(|activation| {
                let keys = identity_keys(activation);
                let window = &activation.window;
                let (start, end) = (
                    window.start.unix_timestamp_nanos(),
                    window.end.unix_timestamp_nanos(),
                );
                hits.clear();
                let kind = activation.role.kind;
                if matches!(kind, RoleKind::AzureResource | RoleKind::Group) {
                    let scope = arm_scope(activation);
                    for (t, i) in azure_index.in_window(&keys, start, end) {
                        if scope.is_none_or(|s| {
                            azure.get(i as usize).is_some_and(|a| within_scope(a, s))
                        }) {
                            hits.push((t, 0, i));
                        }
                    }
                }
                if kind == RoleKind::EntraDirectory {
                    for (t, i) in azure_index.in_window(&keys, start, end) {
                        if azure.get(i as usize).is_some_and(|a| {
                            a.operation
                                .trim()
                                .eq_ignore_ascii_case(ELEVATE_ACCESS_OPERATION)
                        }) {
                            hits.push((t, 0, i));
                        }
                    }
                }
                if matches!(kind, RoleKind::EntraDirectory | RoleKind::Group) {
                    for (t, i) in directory_index.in_window(&keys, start, end) {
                        hits.push((t, 1, i));
                    }
                }
                // The same activity may be reached through both the UPN and the object id. Instants
                // order as their nanoseconds since the epoch do, so this is the time order.
                hits.sort_unstable();
                hits.dedup();
                let total = hits.len();
                let cap = options.max_activities_per_activation;
                Match {
                    kept: hits.iter().take(cap).map(|&(_, src, i)| (src, i)).collect(),
                    total,
                    truncated: total > cap,
                }
            })
            .collect()
    }
}

/// Lower-cased UPN and object id of the activation's principal.
fn identity_keys(a: &Activation) -> Vec<String> {
    let mut keys: Vec<String> = [&a.principal.upn, &a.principal.object_id]
        .into_iter()
        .flatten()
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    keys.dedup();
    keys
}

fn lower(s: &str) -> Cow<'_, str> {
    let s = s.trim();
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Activities per identity key, each list sorted by time: `(nanoseconds since the epoch,
/// index)`, so a window is found without reading the activities again.
struct Index {
    by_key: HashMap<String, usize, KeyHasher>,
    lists: Vec<Vec<(i128, u32)>>,
}

impl Index {
    /// The index of `activities`: on every core for a large table, each thread indexing one
    /// part and the parts merged into one list per identity (sorted, so in the same order
    /// whichever part found an activity).
    fn build(activities: &[Activity], wanted: &HashSet<String, KeyHasher>) -> Self {
        const MIN_ROWS_PER_PART: usize = 32_768;
        let parts = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(activities.len() / MIN_ROWS_PER_PART)
            .max(1);
        let mut index = if parts == 1 {
            Self::collect(activities, 0, wanted)
        } else {
            let chunk = activities.len().div_ceil(parts);
            let found: Vec<Self> = std::thread::scope(|scope| {
                let handles: Vec<_> = activities
                    .chunks(chunk)
                    .enumerate()
                    .map(|(n, part)| scope.spawn(move || Self::collect(part, n * chunk, wanted)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            let mut index = Self {
                by_key: HashMap::default(),
                lists: Vec::new(),
            };
            for part in found {
                let Self { by_key, mut lists } = part;
                for (key, slot) in by_key {
                    let Some(list) = lists.get_mut(slot).map(std::mem::take) else {
                        continue;
                    };
                    match index.by_key.get(&key) {
                        Some(&at) => {
                            if let Some(into) = index.lists.get_mut(at) {
                                into.extend(list);
                            }
                        }
                        None => {
                            index.by_key.insert(key, index.lists.len());
                            index.lists.push(list);
                        }
                    }
                }
            }
            index
        };
        for list in &mut index.lists {
            list.sort_unstable();
            list.dedup();
        }
        index
    }

    /// The unsorted lists of `activities`, the first being number `offset` of the table.
    fn collect(
        activities: &[Activity],
        offset: usize,
        wanted: &HashSet<String, KeyHasher>,
    ) -> Self {
        let mut index = Self {
            by_key: HashMap::default(),
            lists: Vec::new(),
        };
        // A scan repeats a few thousand caller spellings over hundreds of thousands of rows: each
        // spelling as logged is trimmed, lower-cased and looked up once, then found by itself
        // (borrowed, so nothing is allocated per row).
        let mut seen: HashMap<&str, Option<usize>, KeyHasher> = HashMap::default();
        for (i, a) in activities.iter().enumerate() {
            let Ok(i) = u32::try_from(offset + i) else {
                break;
            };
            let caller = a
                .caller
                .as_deref()
                .and_then(|raw| index.slot(raw, &mut seen, wanted));
            let oid = a
                .caller_object_id
                .as_deref()
                .and_then(|raw| index.slot(raw, &mut seen, wanted))
                .filter(|o| Some(*o) != caller);
            if caller.is_none() && oid.is_none() {
                continue;
            }
            let t = a.time.unix_timestamp_nanos();
            for slot in caller.into_iter().chain(oid) {
                if let Some(list) = index.lists.get_mut(slot) {
                    list.push((t, i));
                }
            }
        }
        index
    }

    /// The list of the identity `raw` names (as logged), made on its first wanted use.
    fn slot<'a>(
        &mut self,
        raw: &'a str,
        seen: &mut HashMap<&'a str, Option<usize>, KeyHasher>,
        wanted: &HashSet<String, KeyHasher>,
    ) -> Option<usize> {
        if let Some(&slot) = seen.get(raw) {
            return slot;
        }
        let key = lower(raw);
        let slot = match self.by_key.get(key.as_ref()) {
            Some(&slot) => Some(slot),
            None => wanted.get(key.as_ref()).map(|owned| {
                self.by_key.insert(owned.clone(), self.lists.len());
                self.lists.push(Vec::new());
                self.lists.len() - 1
            }),
        };
        seen.insert(raw, slot);
        slot
    }

    /// `(time, index)` of the activities of any of `keys` with `start <= time <= end`
    /// (nanoseconds since the epoch).
    fn in_window<'a>(
        &'a self,
        keys: &'a [String],
        start: i128,
        end: i128,
    ) -> impl Iterator<Item = (i128, u32)> + 'a {
        keys.iter()
            .filter_map(|k| self.by_key.get(k).and_then(|&slot| self.lists.get(slot)))
            .flat_map(move |list| {
                let lo = list.partition_point(|&(t, _)| t < start);
                let hi = list.partition_point(|&(t, _)| t <= end);
                list.get(lo..hi.max(lo)).unwrap_or_default().iter().copied()
            })
    }
}

/// The ARM path to filter Azure activity by, when the activation's scope is one.
fn arm_scope(a: &Activation) -> Option<&str> {
    if a.role.kind != RoleKind::AzureResource {
        return None;
    }
    let id = a.scope.id.as_deref()?.trim();
    match scope_kind_from_arm_path(id)? {
        ScopeKind::Subscription | ScopeKind::ResourceGroup | ScopeKind::Resource => {
            Some(id.trim_end_matches('/'))
        }
        _ => None,
    }
}

/// Whether the activity's resource is the scope or below it (on a path boundary, so scope
/// `/subscriptions/s/resourceGroups/rg` does not cover `/subscriptions/s/resourceGroups/rg2`).
fn within_scope(a: &Activity, scope: &str) -> bool {
    match a.resource_id.as_deref().map(str::trim) {
        Some(res) if !res.is_empty() => {
            starts_with_ci(res, scope)
                && matches!(res.as_bytes().get(scope.len()), None | Some(b'/'))
        }
        // No resource id: fall back to the subscription, when both name one.
        _ => match (a.subscription_id.as_deref(), subscription_of(scope)) {
            (Some(sub), Some(scope_sub)) => sub.trim().eq_ignore_ascii_case(scope_sub),
            _ => true,
        },
    }
}

fn subscription_of(scope: &str) -> Option<&str> {
    let mut parts = scope.split('/').filter(|s| !s.is_empty());
    match (parts.next(), parts.next()) {
        (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::{
        ActivitySource, ActivityStatus, ElevationWindow, EndReason, Principal, Role, Scope,
    };
    use time::Duration;
    use time::OffsetDateTime;
    use time::macros::datetime;

    fn t(min: i64) -> OffsetDateTime {
        datetime!(2026-11-20 09:00 UTC) + Duration::minutes(min)
    }

    fn activation(upn: &str, oid: &str, kind: RoleKind, from: i64, to: i64) -> Activation {
        Activation {
            id: format!("{upn}-{from}"),
            activated_at: t(from),
            principal: Principal {
                upn: Some(upn.into()),
                object_id: Some(oid.into()),
                display_name: None,
            },
            role: Role {
                name: "Contributor".into(),
                id: None,
                kind,
            },
            scope: Scope::unknown(),
            justification: String::new(),
            tickets: vec![],
            ticket_info: None,
            ticket_checks: Vec::new(),
            window: ElevationWindow {
                start: t(from),
                end: t(to),
                end_reason: EndReason::Expired,
                scheduled_end: None,
                assumed: false,
            },
            request_id: None,
            correlation_id: None,
            problems: vec![],
        }
    }

    fn activity(
        caller: &str,
        oid: Option<&str>,
        min: i64,
        op: &str,
        source: ActivitySource,
    ) -> Activity {
        Activity {
            time: t(min),
            operation: op.into(),
            status: ActivityStatus::Succeeded,
            resource_id: None,
            resource_group: None,
            subscription_id: None,
            provider: None,
            source,
            caller: Some(caller.into()),
            caller_object_id: oid.map(Into::into),
            correlation_id: None,
            targets: vec![],
        }
    }

    fn az(caller: &str, min: i64, op: &str) -> Activity {
        activity(caller, None, min, op, ActivitySource::AzureActivity)
    }

    fn ops(c: &Correlated) -> Vec<&str> {
        c.activities.iter().map(|a| a.operation.as_str()).collect()
    }

    /// Runs both entry points and checks they agree, so every test below covers both.
    fn run(acts: &[Activation], azure: &[Activity], dir: &[Activity]) -> Vec<Correlated> {
        run_with(acts, azure, dir, &CorrelateOptions::default())
    }

    fn run_with(
        acts: &[Activation],
        azure: &[Activity],
        dir: &[Activity],
        options: &CorrelateOptions,
    ) -> Vec<Correlated> {
        let borrowed = correlate(acts, azure, dir, options);
        let owned = correlate_owned(acts, azure.to_vec(), dir.to_vec(), options);
        assert_eq!(borrowed, owned, "correlate and correlate_owned disagree");
        borrowed
    }

    /// The index of a table large enough to be built in parts is the one a single pass builds.
    #[test]
    fn an_index_built_in_parts_is_the_index_built_whole() {
        let wanted: HashSet<String, KeyHasher> = (0..50)
            .flat_map(|u| [format!("user{u}@contoso.com"), format!("oid-{u}")])
            .collect();
        let activities: Vec<Activity> = (0..100_003_i64)
            .map(|i| {
                let u = i * 7 % 61; // Some callers are not wanted.
                let caller = if i % 3 == 0 {
                    format!("  USER{u}@Contoso.com")
                } else {
                    format!("user{u}@contoso.com")
                };
                let oid = (i % 5 != 0).then(|| format!("oid-{}", i * 11 % 53));
                activity(
                    &caller,
                    oid.as_deref(),
                    (i * 37) % 1_440,
                    "op",
                    ActivitySource::AzureActivity,
                )
            })
            .collect();
        let lists = |index: &Index| -> Vec<(String, Vec<(i128, u32)>)> {
            let mut out: Vec<_> = index
                .by_key
                .iter()
                .map(|(k, &slot)| (k.clone(), index.lists[slot].clone()))
                .collect();
            out.sort();
            out
        };
        let mut whole = Index::collect(&activities, 0, &wanted);
        for list in &mut whole.lists {
            list.sort_unstable();
            list.dedup();
        }
        let built = lists(&Index::build(&activities, &wanted));
        assert_eq!(built, lists(&whole));
        assert_eq!(built.len(), 100, "{}", built.len());
        assert!(built.iter().all(|(_, l)| !l.is_empty()));
    }

    #[test]
    fn upn_matches_case_insensitively_and_edges_are_inclusive() {
        let a = activation("Jane@Contoso.com", "oid-j", RoleKind::AzureResource, 0, 60);
        let azure = vec![
            az("jane@contoso.com", 0, "start-edge"),
            az("JANE@CONTOSO.COM", 60, "end-edge"),
            az("jane@contoso.com", 61, "after"),
            az("jane@contoso.com", -1, "before"),
            az("bob@contoso.com", 30, "someone-else"),
        ];
        let r = run(&[a], &azure, &[]);
        assert_eq!(ops(&r[0]), vec!["start-edge", "end-edge"]);
        assert_eq!(r[0].total, 2);
        assert!(!r[0].truncated);
    }

    #[test]
    fn object_id_alone_matches_guests_and_renamed_users() {
        let a = activation(
            "jane_contoso.com#EXT#@fabrikam.onmicrosoft.com",
            "OID-J",
            RoleKind::AzureResource,
            0,
            60,
        );
        let azure = vec![
            activity(
                "jane@contoso.com",
                Some("oid-j"),
                10,
                "by-claim",
                ActivitySource::AzureActivity,
            ),
            az("oid-j", 20, "by-caller-guid"),
        ];
        let r = run(&[a], &azure, &[]);
        assert_eq!(ops(&r[0]), vec!["by-claim", "by-caller-guid"]);
    }

    #[test]
    fn an_activity_matched_by_upn_and_oid_counts_once() {
        let a = activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 0, 60);
        let azure = vec![activity(
            "jane@contoso.com",
            Some("oid-j"),
            10,
            "both",
            ActivitySource::AzureActivity,
        )];
        let r = run(&[a], &azure, &[]);
        assert_eq!(r[0].total, 1);
    }

    #[test]
    fn scope_filters_on_path_boundaries() {
        let mut a = activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 0, 60);
        a.scope = Scope {
            kind: ScopeKind::ResourceGroup,
            id: Some("/subscriptions/S1/resourceGroups/rg-prod/".into()),
            display_name: None,
        };
        let with_res = |op: &str, res: Option<&str>, sub: Option<&str>| {
            let mut x = az("jane@contoso.com", 10, op);
            x.resource_id = res.map(Into::into);
            x.subscription_id = sub.map(Into::into);
            x
        };
        let azure = vec![
            with_res(
                "rg-itself",
                Some("/subscriptions/s1/resourcegroups/RG-PROD"),
                None,
            ),
            with_res(
                "vm",
                Some("/subscriptions/s1/resourcegroups/rg-prod/providers/x/vm1"),
                None,
            ),
            with_res(
                "sibling",
                Some("/subscriptions/s1/resourcegroups/rg-prod2/providers/x/vm"),
                None,
            ),
            with_res(
                "other-sub",
                Some("/subscriptions/s2/resourcegroups/rg-prod"),
                None,
            ),
            with_res("no-id-same-sub", None, Some("s1")),
            with_res("no-id-other-sub", None, Some("s2")),
            with_res("nothing", None, None),
        ];
        let r = run(&[a], &azure, &[]);
        let mut got = ops(&r[0]);
        got.sort_unstable();
        assert_eq!(got, vec!["no-id-same-sub", "nothing", "rg-itself", "vm"]);
    }

    #[test]
    fn management_group_scope_is_not_filtered() {
        let mut a = activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 0, 60);
        a.scope.id = Some("/providers/Microsoft.Management/managementGroups/mg".into());
        let mut x = az("jane@contoso.com", 10, "anywhere");
        x.resource_id = Some("/subscriptions/s9/resourceGroups/rg".into());
        assert_eq!(run(&[a], &[x], &[])[0].total, 1);
    }

    #[test]
    fn overlapping_activations_of_one_user_get_their_own_windows() {
        let a1 = activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 0, 30);
        let a2 = activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 20, 60);
        let azure = vec![
            az("jane@contoso.com", 45, "late"),
            az("jane@contoso.com", 10, "early"),
            az("jane@contoso.com", 25, "shared"),
        ];
        let r = run(&[a1, a2], &azure, &[]);
        assert_eq!(ops(&r[0]), vec!["early", "shared"]);
        assert_eq!(ops(&r[1]), vec!["shared", "late"]);
    }

    #[test]
    fn cap_and_truncation() {
        let a = activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 0, 60);
        let azure: Vec<Activity> = (0..10)
            .rev()
            .map(|m| az("jane@contoso.com", m, &format!("op{m}")))
            .collect();
        let r = run_with(
            &[a],
            &azure,
            &[],
            &CorrelateOptions {
                max_activities_per_activation: 3,
            },
        );
        assert_eq!(ops(&r[0]), vec!["op0", "op1", "op2"]);
        assert_eq!(r[0].total, 10);
        assert!(r[0].truncated);
    }

    #[test]
    fn routing_by_role_kind() {
        let dir = vec![activity(
            "jane@contoso.com",
            Some("oid-j"),
            10,
            "Add member to group",
            ActivitySource::AuditLogs,
        )];
        let azure = vec![
            az(
                "jane@contoso.com",
                11,
                "Microsoft.Compute/virtualMachines/write",
            ),
            az(
                "jane@contoso.com",
                12,
                "microsoft.authorization/ELEVATEACCESS/action",
            ),
        ];
        let acts = [
            activation("jane@contoso.com", "oid-j", RoleKind::AzureResource, 0, 60),
            activation("jane@contoso.com", "oid-j", RoleKind::EntraDirectory, 0, 60),
            activation("jane@contoso.com", "oid-j", RoleKind::Group, 0, 60),
        ];
        let r = run(&acts, &azure, &dir);
        assert_eq!(
            ops(&r[0]),
            vec![
                "Microsoft.Compute/virtualMachines/write",
                "microsoft.authorization/ELEVATEACCESS/action"
            ]
        );
        assert_eq!(
            ops(&r[1]),
            vec![
                "Add member to group",
                "microsoft.authorization/ELEVATEACCESS/action"
            ]
        );
        assert_eq!(r[2].total, 3);
    }

    #[test]
    fn activation_without_identity_gets_nothing() {
        let mut a = activation("x", "y", RoleKind::AzureResource, 0, 60);
        a.principal = Principal::default();
        let r = run(&[a], &[az("x", 10, "op")], &[]);
        assert_eq!(r[0], Correlated::default());
    }

    /// Correctness at the benchmark's scale (5,000 activations × 500,000 activities); the
    /// timing is measured by `examples/bench_pipeline.rs`, not here. Run with
    /// `cargo test --release -p pim-correlate -- --ignored`.
    #[test]
    #[ignore = "slow in debug builds; a scale check, run in release"]
    fn scales_to_thousands_of_activations() {
        let users = 1_000;
        let azure: Vec<Activity> = (0..500_000)
            .map(|i| {
                az(
                    &format!("user{}@contoso.com", i % users),
                    (i / users) as i64,
                    "op",
                )
            })
            .collect();
        let acts: Vec<Activation> = (0..5_000)
            .map(|i| {
                let from = (i % 400) as i64;
                activation(
                    &format!("user{}@contoso.com", i % users),
                    &format!("oid-{i}"),
                    RoleKind::AzureResource,
                    from,
                    from + 60,
                )
            })
            .collect();
        let r = run_with(&acts, &azure, &[], &CorrelateOptions::default());
        assert_eq!(r.len(), 5_000);
        assert!(r.iter().all(|c| c.total == 61));
    }
}
