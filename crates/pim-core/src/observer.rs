//! The progress seam of a scan: [`ScanObserver`] hears which stage a scan is in and how far
//! the assessment has got, so a binary can draw a progress line without the library knowing
//! about terminals; and what each query and model assessment cost and how the scan ended, so
//! [`ScanMetrics`](crate::ScanMetrics) can count them (issue 16).

use std::sync::Arc;
use std::time::Duration;

use pim_domain::Report;

use crate::Error;

/// A stage of [`Auditor::scan`](crate::Auditor::scan), in the order a scan goes through them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanStage {
    /// A query is about to be sent; `what` names its table, e.g. `AuditLogs`, with the chunk
    /// (`AzureActivity 2/5`) when the identities are split over several queries.
    Querying {
        /// The table being queried, and the chunk if there are several.
        what: String,
    },
    /// The activity is being matched to the activation windows.
    Correlating,
    /// Assessment starts: `total` activations are to be judged, and
    /// [`ScanObserver::assessed`] counts them off.
    Assessing {
        /// Activations to assess.
        total: usize,
    },
    /// The scan is over, successfully or not. Sent exactly once, last, by every scan, so an
    /// observer can always clear what it drew.
    Done,
}

/// Hears the progress of a scan. Both methods do nothing by default; implement the ones you need.
///
/// For one scan, calls arrive in order and never concurrently (the rules engine's worker threads
/// take turns), but not always on the same thread; they must return quickly (the scan waits for
/// them). An observer shared between scans that run
/// at the same time hears them interleaved.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use pim_core::{ScanObserver, ScanStage};
///
/// #[derive(Default)]
/// struct Queries(AtomicUsize);
///
/// impl ScanObserver for Queries {
///     fn stage(&self, stage: ScanStage) {
///         if let ScanStage::Querying { .. } = stage {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let q = Queries::default();
/// q.stage(ScanStage::Querying { what: "AuditLogs".to_owned() });
/// q.assessed(1, 2); // the provided method: ignored
/// assert_eq!(q.0.load(Ordering::Relaxed), 1);
/// ```
pub trait ScanObserver: Send + Sync {
    /// The scan entered `stage`.
    fn stage(&self, stage: ScanStage) {
        let _ = stage;
    }

    /// A query came back (or failed): sent once per query actually run, splits included,
    /// after the source's own retries, in the order the queries finish.
    fn query_done(&self, query: &QueryDone<'_>) {
        let _ = query;
    }

    /// The model assessment of one activation ended: answered, failed, or cut off by the
    /// model stage's deadline. Activations the model is not asked about are not counted.
    fn model_done(&self, call: &ModelDone) {
        let _ = call;
    }

    /// The scan is over: its report, or the error it failed with. Sent once, just before
    /// [`ScanStage::Done`].
    fn finished(&self, end: &ScanEnd<'_>) {
        let _ = end;
    }

    /// `done` of `total` activations have their final assessment: the rules' alone without a
    /// model, or the combined one with a model (including the cases the model is not asked
    /// about). `done` rises by one per call and its last value is `total`.
    fn assessed(&self, done: usize, total: usize) {
        let _ = (done, total);
    }
}

/// One query of a scan, as [`ScanObserver::query_done`] hears it. Every field is ours (names,
/// counts, times): nothing from the logs themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryDone<'a> {
    /// The query's family, as planned and without chunk or split suffixes: `pim-events`,
    /// `pim-events-activity`, `azure-activity` or `directory-activity`.
    pub name: &'a str,
    /// The table it read: `AuditLogs` or `AzureActivity`.
    pub table: &'a str,
    /// Rows it returned (0 when it failed).
    pub rows: usize,
    /// How long the source took, retries included.
    pub duration: Duration,
    /// How it ended.
    pub status: QueryStatus,
}

/// How one query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryStatus {
    /// A complete result.
    Complete,
    /// Cut at a service limit: the scan splits it and re-runs the parts.
    Cut,
    /// The source failed it.
    Failed,
}

impl QueryStatus {
    /// `complete`, `cut` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Cut => "cut",
            Self::Failed => "failed",
        }
    }
}

/// One model assessment, as [`ScanObserver::model_done`] hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelDone {
    /// How it ended.
    pub outcome: ModelOutcome,
    /// How long it took, waiting for the per-minute budget included.
    pub duration: Duration,
}

/// How one model assessment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelOutcome {
    /// The model answered; its answer was combined with the rules'.
    Answered,
    /// The call failed; the kind as the report's warning counts it (`timeout`, `throttling`,
    /// `content filter`, `server error (5xx)`, `invalid answer`, ...).
    Failed(&'static str),
    /// The model stage's deadline came first.
    Deadline,
}

/// How a scan ended, as [`ScanObserver::finished`] hears it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ScanEnd<'a> {
    /// The report (its `run` block holds the duration, queries, rows and model usage).
    Succeeded(&'a Report),
    /// Why there is no report, and how long the scan ran before it failed.
    Failed(&'a Error, Duration),
}

/// Several observers heard as one, in order: e.g. the progress line and the metrics.
pub struct Observers(pub Vec<Arc<dyn ScanObserver>>);

impl ScanObserver for Observers {
    fn stage(&self, stage: ScanStage) {
        for o in &self.0 {
            o.stage(stage.clone());
        }
    }

    fn assessed(&self, done: usize, total: usize) {
        for o in &self.0 {
            o.assessed(done, total);
        }
    }

    fn query_done(&self, query: &QueryDone<'_>) {
        for o in &self.0 {
            o.query_done(query);
        }
    }

    fn model_done(&self, call: &ModelDone) {
        for o in &self.0 {
            o.model_done(call);
        }
    }

    fn finished(&self, end: &ScanEnd<'_>) {
        for o in &self.0 {
            o.finished(end);
        }
    }
}

/// The observer of an auditor built without one.
struct Silent;

impl ScanObserver for Silent {}

/// An observer handle that prints as a placeholder, so [`Auditor`](crate::Auditor) keeps its
/// `Debug` without asking observers to implement it.
#[derive(Clone)]
pub(crate) struct ObserverHandle(pub(crate) Arc<dyn ScanObserver>);

impl Default for ObserverHandle {
    fn default() -> Self {
        Self(Arc::new(Silent))
    }
}

impl std::fmt::Debug for ObserverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScanObserver")
    }
}

impl std::ops::Deref for ObserverHandle {
    type Target = dyn ScanObserver;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_observer_ignores_everything_and_debug_prints_a_placeholder() {
        let h = ObserverHandle::default();
        h.stage(ScanStage::Assessing { total: 3 });
        h.assessed(1, 3);
        h.stage(ScanStage::Done);
        assert_eq!(format!("{h:?}"), "ScanObserver");
    }

    #[derive(Default)]
    struct Count(std::sync::Mutex<Vec<String>>);

    impl ScanObserver for Count {
        fn stage(&self, stage: ScanStage) {
            self.0.lock().unwrap().push(format!("{stage:?}"));
        }
        fn query_done(&self, query: &QueryDone<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", query.name, query.rows));
        }
    }

    #[test]
    fn observers_pass_every_call_to_each_in_order() {
        let a = Arc::new(Count::default());
        let b = Arc::new(Count::default());
        let both = Observers(vec![a.clone(), b.clone()]);
        both.stage(ScanStage::Correlating);
        both.query_done(&QueryDone {
            name: "azure-activity",
            table: "AzureActivity",
            rows: 7,
            duration: Duration::from_millis(3),
            status: QueryStatus::Complete,
        });
        both.assessed(1, 1);
        for o in [a, b] {
            assert_eq!(
                *o.0.lock().unwrap(),
                vec!["Correlating".to_owned(), "azure-activity 7".to_owned()]
            );
        }
    }
}
