//! The progress seam of a scan: [`ScanObserver`] hears which stage a scan is in and how far
//! the assessment has got, so a binary can draw a progress line without the library knowing
//! about terminals.

use std::sync::Arc;

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

    /// `done` of `total` activations have their final assessment: the rules' alone without a
    /// model, or the combined one with a model (including the cases the model is not asked
    /// about). `done` rises by one per call and its last value is `total`.
    fn assessed(&self, done: usize, total: usize) {
        let _ = (done, total);
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
}
