//! The engine's fast path: what the catalogue and vocabulary say about each distinct operation
//! name, worked out once per name (and cached across cases) rather than once per operation. It
//! only saves work: [`OperationFacts::of`] is what the per-operation rules say.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use pim_domain::{Activity, Risk};

use crate::bytes::tail;
use crate::catalogue;
use crate::vocabulary;

/// What the rules say about an operation name on its own, whatever the configuration, the
/// justification or the rest of the activity.
#[derive(Debug)]
pub(crate) struct OperationFacts {
    /// The name as [`catalogue::normalise_operation`] gives it (evidence groups by it).
    pub(crate) normalised: String,
    /// The name as logged, lower-cased (evidence is ordered by it).
    pub(crate) lowered: String,
    /// Whether it is an ARM operation; only then is its catalogue entry known from the name.
    pub(crate) arm: bool,
    /// The catalogue entry of an ARM operation.
    pub(crate) arm_entry: Option<(&'static str, Risk)>,
    /// [`catalogue::is_elevation_bookkeeping`].
    pub(crate) bookkeeping: bool,
    /// [`catalogue::is_read_only`].
    pub(crate) read_only: bool,
    /// The intents that explain it, as a bit set over [`vocabulary::INTENTS`].
    pub(crate) explained_by: u64,
}

impl OperationFacts {
    fn of(operation: &str) -> Self {
        let normalised = catalogue::normalise_operation(operation);
        let arm = catalogue::is_arm_operation(&normalised);
        Self {
            lowered: operation.to_lowercase(),
            arm,
            arm_entry: if arm {
                catalogue::classify_arm(&normalised)
            } else {
                None
            },
            bookkeeping: catalogue::is_bookkeeping_operation(&normalised),
            read_only: catalogue::is_read_only_operation(&normalised),
            explained_by: vocabulary::explaining_mask(&normalised),
            normalised,
        }
    }
}

/// At most this many names are cached, none longer than [`MAX_CACHED_NAME`] bytes: names come
/// from logs, and a broken or hostile source must not grow the cache without bound. Other names
/// are looked up afresh in each case, with the same result.
pub(crate) const CACHE_CAPACITY: usize = 4096;
/// See [`CACHE_CAPACITY`].
pub(crate) const MAX_CACHED_NAME: usize = 512;

/// [`OperationFacts`] of names already seen. A case has a few dozen distinct names among
/// thousands of operations and a run sees the same few names in every case, so each is
/// normalised and matched against the catalogue and every intent once rather than per operation.
#[derive(Default)]
pub(crate) struct OperationCache {
    pub(crate) facts: RwLock<HashMap<String, Arc<OperationFacts>>>,
}

impl fmt::Debug for OperationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.facts.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("OperationCache")
            .field("names", &cached.len())
            .finish()
    }
}

impl OperationCache {
    /// The distinct operation names of a case, with their facts and ranks.
    pub(crate) fn operations(&self, activities: &[Activity]) -> Operations {
        let (of_activity, names) = distinct_names(activities);
        let facts = self.facts(&names);
        let mut order: Vec<usize> = (0..facts.len()).collect();
        order.sort_unstable_by(|&a, &b| facts[a].normalised.cmp(&facts[b].normalised));
        let mut rank = vec![0; facts.len()];
        for (r, run) in order
            .chunk_by(|&a, &b| facts[a].normalised == facts[b].normalised)
            .enumerate()
        {
            for &i in run {
                rank[i] = r;
            }
        }
        Operations {
            of_activity,
            facts,
            rank,
        }
    }

    /// The facts of each name, in order.
    pub(crate) fn facts(&self, names: &[&str]) -> Vec<Arc<OperationFacts>> {
        // A poisoned lock still holds complete entries (each is inserted whole), so it is used.
        let mut found: Vec<Option<Arc<OperationFacts>>> = {
            let cached = self.facts.read().unwrap_or_else(PoisonError::into_inner);
            names
                .iter()
                .map(|name| cached.get(*name).cloned())
                .collect()
        };
        let mut fresh = Vec::new();
        for (slot, name) in found.iter_mut().zip(names) {
            if slot.is_none() {
                let facts = Arc::new(OperationFacts::of(name));
                fresh.push((*name, Arc::clone(&facts)));
                *slot = Some(facts);
            }
        }
        if !fresh.is_empty() {
            let mut cached = self.facts.write().unwrap_or_else(PoisonError::into_inner);
            for (name, facts) in fresh {
                if cached.len() < CACHE_CAPACITY && name.len() <= MAX_CACHED_NAME {
                    cached.entry(name.to_owned()).or_insert(facts);
                }
            }
        }
        found.into_iter().flatten().collect()
    }
}

/// The distinct operation names of one case.
pub(crate) struct Operations {
    /// For each activity, the index of its name in `facts`.
    pub(crate) of_activity: Vec<usize>,
    /// The facts of each distinct name.
    pub(crate) facts: Vec<Arc<OperationFacts>>,
    /// For each distinct name, the rank of its normalised form among the case's normalised
    /// forms: names that differ only in case or spacing share a rank (and so an evidence group),
    /// and ranks are ordered as the normalised forms are, so evidence can be ordered by them.
    pub(crate) rank: Vec<usize>,
}

/// For each activity the index of its operation name among the case's distinct names, and
/// those names.
pub(crate) fn distinct_names(activities: &[Activity]) -> (Vec<usize>, Vec<&str>) {
    // A case usually has a handful of distinct names, and comparing a name's tail with each
    // (then the whole name when the tails agree) is cheaper than hashing or sorting; past a few
    // dozen names, sorting keeps the work O(n log n).
    const SCANNED: usize = 32;
    let mut of_activity = Vec::with_capacity(activities.len());
    let mut names: Vec<((usize, u64), &str)> = Vec::new();
    for activity in activities {
        let name = (tail(&activity.operation), activity.operation.as_str());
        match names.iter().position(|n| *n == name) {
            Some(i) => of_activity.push(i),
            None if names.len() < SCANNED => {
                of_activity.push(names.len());
                names.push(name);
            }
            None => return distinct_names_sorted(activities),
        }
    }
    (of_activity, names.into_iter().map(|(_, n)| n).collect())
}

/// [`distinct_names`] by sorting.
fn distinct_names_sorted(activities: &[Activity]) -> (Vec<usize>, Vec<&str>) {
    let mut order: Vec<usize> = (0..activities.len()).collect();
    order.sort_unstable_by(|&a, &b| activities[a].operation.cmp(&activities[b].operation));
    let mut of_activity = vec![0; activities.len()];
    let mut names: Vec<&str> = Vec::new();
    for run in order.chunk_by(|&a, &b| activities[a].operation == activities[b].operation) {
        for &i in run {
            of_activity[i] = names.len();
        }
        if let Some(&i) = run.first() {
            names.push(activities[i].operation.as_str());
        }
    }
    (of_activity, names)
}
