//! Retry policy shared by the Azure adapters: bounded attempts, bounded total time, jittered
//! exponential backoff.
//!
//! Pure computation: no clock, no HTTP. Reading the server's wait from response headers
//! (`Retry-After` and kin) and driving the attempts live in `pim-http`, whose driver honours a
//! server wait in full and fails a call at once when the wait is longer than what is left of
//! [`RetryPolicy::max_total`].

use std::time::Duration;

/// How often and how long to retry a throttled or transiently failing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry when the server names none; doubles per retry.
    pub initial_delay: Duration,
    /// Longest backoff between two attempts when the server names no wait. (`pim-http`'s
    /// driver honours a server's wait in full, within `max_total`; [`RetryPolicy::delay`]
    /// alone, given a wait, caps it to this.)
    pub max_delay: Duration,
    /// Longest time from the first attempt to the start of the last one.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 1 s doubling up to 30 s, at most 2 minutes in all.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed, or
    /// `None` when no retry is allowed: attempts used up, or the delay would pass `max_total`.
    ///
    /// `retry_after` is what the server asked for (`retry-after-ms` / `Retry-After`); it is
    /// honoured (capped at `max_delay`) and not shortened by jitter. Otherwise the delay is
    /// `initial_delay * 2^(attempt-1)`, capped, scaled by `jitter` in `[0.5, 1.0]` (a `jitter`
    /// of `0.0..=1.0` from the caller's random source maps onto that range), so that many
    /// clients throttled together do not retry together.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pim_domain::retry::RetryPolicy;
    ///
    /// let p = RetryPolicy::default();
    /// assert_eq!(p.delay(1, None, 1.0, Duration::ZERO), Some(Duration::from_secs(1)));
    /// assert_eq!(p.delay(2, None, 1.0, Duration::ZERO), Some(Duration::from_secs(2)));
    /// assert_eq!(p.delay(1, Some(Duration::from_secs(7)), 0.0, Duration::ZERO), Some(Duration::from_secs(7)));
    /// assert_eq!(p.delay(5, None, 1.0, Duration::ZERO), None);
    /// ```
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
        elapsed: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = match retry_after {
            Some(asked) => asked.min(self.max_delay),
            None => {
                let exp = attempt.saturating_sub(1).min(30);
                let base = self
                    .initial_delay
                    .saturating_mul(1u32 << exp)
                    .min(self.max_delay);
                let jitter = if jitter.is_finite() {
                    jitter.clamp(0.0, 1.0)
                } else {
                    1.0
                };
                base.mul_f64(0.5 + jitter / 2.0)
            }
        };
        (elapsed.saturating_add(delay) <= self.max_total).then_some(delay)
    }
}

/// `300 s`, `1.5 s`: whole seconds without decimals.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `(the service asked to wait 300 s)` for an error message, or nothing: how adapters' errors
/// name the server's wait (issue 9).
///
/// ```
/// use std::time::Duration;
/// use pim_domain::retry::wait_hint;
/// assert_eq!(wait_hint(Some(Duration::from_secs(300))), " (the service asked to wait 300 s)");
/// assert_eq!(wait_hint(Some(Duration::from_millis(1500))), " (the service asked to wait 1.5 s)");
/// assert_eq!(wait_hint(None), "");
/// ```
pub fn wait_hint(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (the service asked to wait {})", seconds(d)))
        .unwrap_or_default()
}

/// A fresh jitter in `[0, 1]` for [`RetryPolicy::delay`], without a random-number crate: std's
/// `RandomState` is seeded randomly per process and stepped per instance, which is all the
/// spread backoff needs (clients throttled together must not retry together).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_downwards_only() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_total: Duration::from_secs(1000),
        };
        let full: Vec<_> = (1..=6)
            .map(|a| p.delay(a, None, 1.0, Duration::ZERO).unwrap())
            .collect();
        assert_eq!(full, [1, 2, 4, 8, 8, 8].map(Duration::from_secs));
        assert_eq!(
            p.delay(3, None, 0.0, Duration::ZERO),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.delay(3, None, f64::NAN, Duration::ZERO),
            Some(Duration::from_secs(4))
        );
    }

    #[test]
    fn retry_after_is_honoured_but_capped_and_total_time_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(300)), 0.5, Duration::ZERO),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            p.delay(
                1,
                Some(Duration::from_secs(10)),
                0.5,
                Duration::from_secs(115)
            ),
            None
        );
        assert_eq!(
            RetryPolicy::none().delay(1, None, 1.0, Duration::ZERO),
            None
        );
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..=1.0).contains(j)));
        assert!(draws.iter().any(|j| *j != draws[0]));
    }
}
