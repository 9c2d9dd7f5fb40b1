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
            ..base
        };
        assert!(bad.validate().is_err());
    }
}
