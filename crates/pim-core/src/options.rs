//! Scan options.

use time::OffsetDateTime;

use crate::{Error, Result};

/// Default length of the scan window, in hours.
pub const DEFAULT_HOURS: u32 = 24;
/// Default look-back for activations that began before the scan window: the longest activation
/// duration PIM allows by default.
pub const DEFAULT_LOOKBACK_HOURS: u32 = 24;
/// Duration assumed for an activation whose end was never logged.
pub const DEFAULT_WINDOW_HOURS: u32 = 8;
/// Most operations kept per activation; a runaway script beyond it is flagged
/// `activity_truncated`.
pub const DEFAULT_MAX_ACTIVITIES: usize = 5_000;
/// Log Analytics queries a scan runs at once by default. The query API allows 5 concurrent
/// queries per user and queues the rest, throttling those queued for more than 3 minutes
/// (reference §9.4, which advises at most 4): 4 leaves one for anything else the same identity
/// runs (`PIM_QUERY_CONCURRENCY` sets it).
pub const DEFAULT_QUERY_CONCURRENCY: usize = 4;
/// The most queries a scan may run at once.
pub const MAX_QUERY_CONCURRENCY: usize = 64;
/// Default length of the behaviour-baseline period, in days (issue 14): the history before the
/// window against which first-time operations are found.
pub const DEFAULT_BASELINE_DAYS: u32 = 30;
/// The longest behaviour-baseline period, in days.
pub const MAX_BASELINE_DAYS: u32 = 365;

/// What to scan and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// End of the scan window (the caller's clock, or a fixed time for reproducible reports).
    pub end: OffsetDateTime,
    /// Length of the scan window in hours: activations whose window overlaps
    /// `[end - hours, end]` are reported.
    pub hours: u32,
    /// How long before the scan window to look for activations still active in it.
    pub lookback_hours: u32,
    /// Include failed operations (marked) in the activity.
    pub include_failed: bool,
    /// Most operations kept per activation.
    pub max_activities_per_activation: usize,
    /// Duration assumed when no end of an activation was logged.
    pub default_window_hours: u32,
    /// Most queries the scan runs at once (default [`DEFAULT_QUERY_CONCURRENCY`], 1 to
    /// [`MAX_QUERY_CONCURRENCY`]); the auditor's own bound
    /// ([`AuditorBuilder::query_concurrency`](crate::AuditorBuilder::query_concurrency)) also
    /// applies, across all its scans.
    pub query_concurrency: usize,
    /// Days of history before the window for the behaviour baseline (default
    /// [`DEFAULT_BASELINE_DAYS`], at most [`MAX_BASELINE_DAYS`]; 0 turns it off): each
    /// activation's report then lists the operations its identity never performed in that
    /// period (flag `first_time_operation`) and how often it activated roles in it.
    pub baseline_days: u32,
    /// Activations a state store recorded (`pim-batch --state`): the behaviour baseline counts
    /// each identity's activations in its period from them, when they reach back to the
    /// period's start, instead of with an AuditLogs query. `None` (the default) queries.
    pub known_activations: Option<std::sync::Arc<crate::KnownActivations>>,
}

impl ScanOptions {
    /// Options with the defaults, ending at `end`.
    pub fn new(end: OffsetDateTime) -> Self {
        Self {
            end,
            hours: DEFAULT_HOURS,
            lookback_hours: DEFAULT_LOOKBACK_HOURS,
            include_failed: false,
            max_activities_per_activation: DEFAULT_MAX_ACTIVITIES,
            default_window_hours: DEFAULT_WINDOW_HOURS,
            query_concurrency: DEFAULT_QUERY_CONCURRENCY,
            baseline_days: DEFAULT_BASELINE_DAYS,
            known_activations: None,
        }
    }

    /// Checks the options are in range.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the option and the accepted range.
    pub fn validate(&self) -> Result<()> {
        const YEAR_HOURS: u32 = 366 * 24;
        if !(1..=YEAR_HOURS).contains(&self.hours) {
            return Err(Error::InvalidOptions(format!(
                "hours must be between 1 and {YEAR_HOURS}, got {}",
                self.hours
            )));
        }
        if self.lookback_hours > YEAR_HOURS {
            return Err(Error::InvalidOptions(format!(
                "lookback hours must be at most {YEAR_HOURS}, got {}",
                self.lookback_hours
            )));
        }
        if !(1..=YEAR_HOURS).contains(&self.default_window_hours) {
            return Err(Error::InvalidOptions(format!(
                "the assumed activation duration must be between 1 and {YEAR_HOURS} hours, got {}",
                self.default_window_hours
            )));
        }
        if !(1..=MAX_QUERY_CONCURRENCY).contains(&self.query_concurrency) {
            return Err(Error::InvalidOptions(format!(
                "query concurrency must be between 1 and {MAX_QUERY_CONCURRENCY}, got {}",
                self.query_concurrency
            )));
        }
        if self.baseline_days > MAX_BASELINE_DAYS {
            return Err(Error::InvalidOptions(format!(
                "baseline days must be between 0 and {MAX_BASELINE_DAYS}, got {}",
                self.baseline_days
            )));
        }
        if self.max_activities_per_activation == 0 {
            return Err(Error::InvalidOptions(
                "max activities per activation must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_are_checked() {
        let base = ScanOptions::new(OffsetDateTime::UNIX_EPOCH);
        assert!(base.validate().is_ok());
        let bad = ScanOptions {
            hours: 0,
            ..base.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("hours must be between 1")
        );
        let bad = ScanOptions {
            max_activities_per_activation: 0,
            ..base.clone()
        };
        assert!(bad.validate().is_err());
        let bad = ScanOptions {
            lookback_hours: 100_000,
            ..base.clone()
        };
        assert!(bad.validate().is_err());
        assert_eq!(base.query_concurrency, 4);
        assert_eq!(base.baseline_days, 30);
        for (n, ok) in [(0, true), (365, true), (366, false)] {
            let options = ScanOptions {
                baseline_days: n,
                ..base.clone()
            };
            assert_eq!(options.validate().is_ok(), ok, "{n}");
        }
        for (n, ok) in [(0, false), (1, true), (64, true), (65, false)] {
            let options = ScanOptions {
                query_concurrency: n,
                ..base.clone()
            };
            assert_eq!(options.validate().is_ok(), ok, "{n}");
        }
    }
}
