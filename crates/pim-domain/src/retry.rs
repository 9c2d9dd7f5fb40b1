//! Retry policy shared by the Azure adapters: bounded attempts, bounded total time, jittered
//! exponential backoff that honours the server's `Retry-After` in full, or fails the call at
//! once when the server's wait does not fit in what is left of its budget
//! ([`RetryPolicy::next`], the one decision every adapter's retry loop makes).
//!
//! Pure computation: adapters measure elapsed time and supply the jitter, so the policy is
//! testable without clocks or randomness.

use std::time::Duration;

/// How often and how long to retry a throttled or transiently failing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry when the server names none; doubles per retry.
    pub initial_delay: Duration,
    /// Longest delay of our own backoff between two attempts. A server's `Retry-After` is not
    /// capped by it: it is honoured in full when it fits in `max_total`, and fails the call at
    /// once when it does not (see [`RetryPolicy::next`]).
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
    /// `None` when no retry is allowed: [`next`](Self::next) without the reason.
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
        self.next(attempt, retry_after, jitter, elapsed).ok()
    }

    /// The one retry decision every adapter's loop makes after attempt `attempt` (1-based)
    /// failed with a retryable error, `elapsed` after the first attempt started: the delay
    /// before the next attempt, or why there is none.
    ///
    /// - Attempts used up: [`GiveUp::Attempts`].
    /// - The server asked to wait (`retry_after`, from `retry-after-ms` / `Retry-After`): the
    ///   wait is honoured in full, never cut short (a shortened wait only runs into the same
    ///   throttle again) and not jittered. A wait longer than what is left of the call's
    ///   budget (`max_total - elapsed`) fails the call at once with [`GiveUp::ServerWait`],
    ///   which names the server's wait. See issue 9.
    /// - Otherwise the delay is `initial_delay * 2^(attempt-1)`, capped at `max_delay`, scaled
    ///   by `jitter` in `[0.5, 1.0]` (a `jitter` of `0.0..=1.0` from the caller's random source
    ///   maps onto that range), so that many clients throttled together do not retry together;
    ///   a delay that would pass `max_total` is [`GiveUp::Budget`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use pim_domain::retry::{GiveUp, RetryPolicy};
    ///
    /// let p = RetryPolicy::default(); // 2 minutes in all
    /// let s = Duration::from_secs;
    /// assert_eq!(p.next(1, Some(s(45)), 0.3, s(10)), Ok(s(45)));
    /// let refused = p.next(1, Some(s(300)), 0.3, s(10)).unwrap_err();
    /// assert_eq!(refused, GiveUp::ServerWait { asked: s(300), remaining: s(110) });
    /// assert_eq!(
    ///     refused.to_string(),
    ///     "the service asked to wait 300 s before retrying, longer than the 110 s left of this call's retry budget"
    /// );
    /// ```
    pub fn next(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
        elapsed: Duration,
    ) -> Result<Duration, GiveUp> {
        if attempt >= self.max_attempts {
            return Err(GiveUp::Attempts { attempts: attempt });
        }
        let remaining = self.max_total.saturating_sub(elapsed);
        let delay = match retry_after {
            Some(asked) if asked > remaining => {
                return Err(GiveUp::ServerWait { asked, remaining });
            }
            Some(asked) => asked,
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
        if delay > remaining {
            return Err(GiveUp::Budget { remaining });
        }
        Ok(delay)
    }
}

/// Why [`RetryPolicy::next`] allows no further attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Every allowed attempt was made.
    Attempts {
        /// Attempts made, the first included.
        attempts: u32,
    },
    /// The next backoff would pass the call's total time budget.
    Budget {
        /// What was left of the budget.
        remaining: Duration,
    },
    /// The server asked to wait longer than what is left of the call's budget: waiting would
    /// be wasted (the call could not be retried in time), and retrying sooner would run into
    /// the same throttle.
    ServerWait {
        /// The wait the server asked for.
        asked: Duration,
        /// What was left of the budget.
        remaining: Duration,
    },
}

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Attempts { attempts } => write!(f, "gave up after {attempts} attempts"),
            Self::Budget { remaining } => write!(
                f,
                "the next retry would pass this call's retry budget ({} left)",
                seconds(*remaining)
            ),
            Self::ServerWait { asked, remaining } => write!(
                f,
                "the service asked to wait {} before retrying, longer than the {} left of this call's retry budget",
                seconds(*asked),
                seconds(*remaining)
            ),
        }
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

/// Reads a `Retry-After`-style header value: `retry-after-ms` (milliseconds) when given, else
/// `retry-after` as whole or fractional seconds. HTTP-date forms are not used by the Azure
/// services we call and read as `None`.
///
/// ```
/// use std::time::Duration;
/// use pim_domain::retry::parse_retry_after;
/// assert_eq!(parse_retry_after(Some("1500"), Some("9")), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_retry_after(None, Some("2")), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after(None, Some("soon")), None);
/// ```
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
) -> Option<Duration> {
    let ms = retry_after_ms
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::from_secs_f64((v / 1000.0).min(86_400.0)));
    ms.or_else(|| {
        retry_after
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| Duration::from_secs_f64(v.min(86_400.0)))
    })
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
    fn retry_after_is_honoured_in_full_or_fails_at_once_and_total_time_is_bounded() {
        let p = RetryPolicy::default();
        // Issue 9: a long Retry-After was silently cut to 30 s and retried into the same
        // throttle; now it fails the call at once and says how long the server asked for.
        assert_eq!(
            p.next(1, Some(Duration::from_secs(300)), 0.5, Duration::ZERO),
            Err(GiveUp::ServerWait {
                asked: Duration::from_secs(300),
                remaining: Duration::from_secs(120)
            })
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(300)), 0.5, Duration::ZERO),
            None
        );
        // Longer than max_delay but within the budget: honoured, not cut.
        assert_eq!(
            p.next(
                1,
                Some(Duration::from_secs(90)),
                0.5,
                Duration::from_secs(20)
            ),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            p.next(
                2,
                Some(Duration::from_secs(90)),
                0.5,
                Duration::from_secs(31)
            ),
            Err(GiveUp::ServerWait {
                asked: Duration::from_secs(90),
                remaining: Duration::from_secs(89)
            })
        );
        assert_eq!(
            p.next(5, Some(Duration::from_secs(1)), 0.5, Duration::ZERO),
            Err(GiveUp::Attempts { attempts: 5 })
        );
        let tight = RetryPolicy {
            max_total: Duration::from_secs(3),
            ..RetryPolicy::default()
        };
        assert_eq!(
            tight.next(3, None, 1.0, Duration::from_secs(1)),
            Err(GiveUp::Budget {
                remaining: Duration::from_secs(2)
            })
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

    #[test]
    fn retry_after_headers() {
        assert_eq!(
            parse_retry_after(Some("abc"), Some("3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_retry_after(Some("-5"), None), None);
        assert_eq!(parse_retry_after(None, Some("1e400")), None);
        assert_eq!(
            parse_retry_after(None, Some("0.25")),
            Some(Duration::from_millis(250))
        );
    }
}
