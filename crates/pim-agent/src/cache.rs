//! Scans shared by the sessions of one host.
//!
//! When a bot or web service hosts many analysts, they tend to ask for the same window at the
//! same moment ("scan" after the morning stand-up). Each scan is a few queries and CPU-bound
//! parsing of every row returned; fifty identical scans on a two-core machine queue behind each
//! other. A [`ScanCache`] runs an identical scan once: sessions that ask while it runs wait for
//! it, and sessions that ask within `ttl` after it finished get its report.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pim_domain::Report;
use time::OffsetDateTime;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use pim_core::{Auditor, ScanOptions};

/// What makes two scans identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    end: OffsetDateTime,
    hours: u32,
    lookback_hours: u32,
    include_failed: bool,
    max_activities: usize,
    default_window_hours: u32,
    baseline_days: u32,
}

impl From<&ScanOptions> for Key {
    fn from(o: &ScanOptions) -> Self {
        Self {
            end: o.end,
            hours: o.hours,
            lookback_hours: o.lookback_hours,
            include_failed: o.include_failed,
            max_activities: o.max_activities_per_activation,
            default_window_hours: o.default_window_hours,
            baseline_days: o.baseline_days,
        }
    }
}

type Slot = Arc<OnceCell<Result<Arc<Report>, String>>>;

/// Identical scans run once for every session holding this cache (see the module docs).
#[derive(Debug)]
pub struct ScanCache {
    ttl: Duration,
    slots: Mutex<HashMap<Key, (Instant, Slot)>>,
}

impl ScanCache {
    /// A cache whose finished reports are reused for `ttl` (e.g. one minute; zero shares only
    /// scans that run at the same time).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The report of `options` from `auditor`: a running or recent identical scan's, else a new
    /// one. A failed scan is not kept: the next caller tries again.
    ///
    /// # Errors
    /// The scan's error, as text.
    pub async fn scan(
        &self,
        auditor: &Auditor,
        options: &ScanOptions,
        now: OffsetDateTime,
    ) -> Result<Arc<Report>, String> {
        let key = Key::from(options);
        let slot = {
            let mut slots = self.slots.lock().await;
            let fresh = Instant::now();
            // Forget finished entries past their time; running ones are never older than ttl
            // when they complete, so they stay.
            slots.retain(|_, (started, slot)| {
                slot.get().is_none() || fresh.duration_since(*started) <= self.ttl
            });
            slots
                .entry(key.clone())
                .or_insert_with(|| (fresh, Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        let result = slot
            .get_or_init(|| async {
                auditor
                    .scan(options, now)
                    .await
                    .map(Arc::new)
                    .map_err(|e| format!("{e}"))
            })
            .await
            .clone();
        if result.is_err() {
            let mut slots = self.slots.lock().await;
            if slots.get(&key).is_some_and(|(_, s)| Arc::ptr_eq(s, &slot)) {
                slots.remove(&key);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use pim_loganalytics::{KqlSource, LogQuery, QueryOutcome, SourceInfo};

    use super::*;

    /// The demo tenant, counting the queries it answers.
    #[derive(Debug)]
    struct Counting {
        inner: Arc<dyn KqlSource>,
        queries: AtomicUsize,
    }

    #[async_trait]
    impl KqlSource for Counting {
        fn info(&self) -> SourceInfo {
            self.inner.info()
        }

        fn capabilities(&self) -> pim_loganalytics::SourceCapabilities {
            self.inner.capabilities()
        }

        async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            self.inner.query(query).await
        }
    }

    #[tokio::test]
    async fn identical_concurrent_scans_run_once_and_others_run_again() {
        let source = Arc::new(Counting {
            inner: pim_core::demo_source().unwrap(),
            queries: AtomicUsize::new(0),
        });
        let end = source.info().default_end.unwrap();
        let auditor = Auditor::builder(source.clone()).build();
        let cache = ScanCache::new(Duration::from_secs(60));
        let options = ScanOptions::new(end);
        let scans = (0..10).map(|_| cache.scan(&auditor, &options, end));
        let reports = futures_util::future::join_all(scans).await;
        // One scan is five queries (three, and the behaviour baseline's two offline reads);
        // the nine others waited for it.
        assert_eq!(source.queries.load(Ordering::SeqCst), 5);
        let first = reports[0].as_ref().unwrap();
        assert!(
            reports
                .iter()
                .all(|r| Arc::ptr_eq(r.as_ref().unwrap(), first))
        );
        // A different window is a different scan.
        let mut other = options.clone();
        other.hours = 6;
        cache.scan(&auditor, &other, end).await.unwrap();
        assert_eq!(source.queries.load(Ordering::SeqCst), 10);
        // With no time to live, a finished scan is not reused.
        let fresh = ScanCache::new(Duration::ZERO);
        fresh.scan(&auditor, &options, end).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        fresh.scan(&auditor, &options, end).await.unwrap();
        assert_eq!(source.queries.load(Ordering::SeqCst), 20);
    }
}
