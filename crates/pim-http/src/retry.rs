//! The one retry driver every adapter runs its calls through.
//!
//! The adapter supplies a factory that makes and sends attempt `n` (a fresh request each time:
//! a token may have been refreshed, and a sent body cannot be sent again) and classifies the
//! answer into its own error type, which tells the driver through [`Retryable`] whether another
//! attempt may help and what wait the server asked for.
//!
//! The rules, the same for every adapter:
//! - an error that is not retryable ends the call at once ([`Stop::Fatal`]);
//! - without a server wait the delay is the policy's jittered exponential backoff;
//! - a server wait (`Retry-After` and kin, see [`crate::retry_after`]) is honoured in full,
//!   never shortened by jitter and never silently cut to a maximum;
//! - the call's budget is the policy's `max_total`: a server wait longer than what is left of it
//!   fails the call at once ([`Stop::ServerWaitTooLong`], which names the server's wait), and a
//!   backoff that would pass it, like running out of attempts, ends it with
//!   [`Stop::Exhausted`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use pim_domain::retry::{RetryPolicy, jitter};

/// What the driver needs to know about an adapter's error.
pub trait Retryable {
    /// Whether repeating the same call later may succeed (throttling, 5xx, timeouts, transport).
    fn is_retryable(&self) -> bool;
    /// The wait the server asked for before a retry, when it named one.
    fn retry_after(&self) -> Option<Duration>;
}

/// Why the driver stopped without a success.
#[derive(Debug)]
pub enum Stop<E> {
    /// The error is not worth another attempt.
    Fatal(E),
    /// Every allowed attempt failed, or the next backoff would pass the call's budget.
    Exhausted {
        /// The last attempt's error.
        last: E,
        /// Attempts made, the first included.
        attempts: u32,
        /// Time from the first attempt to the last failure.
        elapsed: Duration,
    },
    /// The server asked for a wait longer than what is left of the call's budget.
    ServerWaitTooLong {
        /// The last attempt's error.
        last: E,
        /// Attempts made, the first included.
        attempts: u32,
        /// Time from the first attempt to the last failure.
        elapsed: Duration,
        /// The server's wait.
        asked: Duration,
        /// What was left of the budget (`max_total` less `elapsed`).
        remaining: Duration,
    },
}

impl<E> Stop<E> {
    /// The error of the last attempt, whatever the reason.
    pub fn into_last(self) -> E {
        match self {
            Self::Fatal(last)
            | Self::Exhausted { last, .. }
            | Self::ServerWaitTooLong { last, .. } => last,
        }
    }
}

/// What to do after attempt `attempt` (1-based) failed with a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Attempts used up, or the backoff would pass the budget.
    GiveUp,
    /// The server's wait is longer than the `remaining` budget.
    ServerWaitTooLong {
        /// The server's wait.
        asked: Duration,
        /// What was left of the budget.
        remaining: Duration,
    },
}

/// The driver's rule as a pure function: `elapsed` is the time since the first attempt started,
/// `jitter` a draw in `[0, 1]`.
///
/// ```
/// use std::time::Duration;
/// use pim_domain::retry::RetryPolicy;
/// use pim_http::retry::{Decision, decide};
///
/// let p = RetryPolicy::default(); // 5 attempts, 2 minutes in all
/// let s = Duration::from_secs;
/// assert_eq!(decide(&p, 1, Some(s(60)), 0.0, s(0)), Decision::Retry(s(60)));
/// assert_eq!(
///     decide(&p, 1, Some(s(300)), 0.0, s(0)),
///     Decision::ServerWaitTooLong { asked: s(300), remaining: s(120) }
/// );
/// assert_eq!(decide(&p, 5, Some(s(1)), 0.0, s(0)), Decision::GiveUp);
/// ```
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
    elapsed: Duration,
) -> Decision {
    if attempt >= policy.max_attempts {
        return Decision::GiveUp;
    }
    match retry_after {
        Some(asked) => {
            let remaining = policy.max_total.saturating_sub(elapsed);
            if asked > remaining {
                Decision::ServerWaitTooLong { asked, remaining }
            } else {
                Decision::Retry(asked)
            }
        }
        None => policy
            .delay(attempt, None, jitter, elapsed)
            .map_or(Decision::GiveUp, Decision::Retry),
    }
}

/// Runs `attempt(n)` for n = 1, 2, … until it succeeds or [`decide`] stops it. Returns the value
/// and how many retries it took. `what` names the call in the warning logged before each retry
/// (the error's `Display` is logged too, so it must hold no secret).
///
/// # Errors
///
/// [`Stop`] with the last attempt's error and why the driver stopped.
pub async fn run<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<(T, u32), Stop<E>>
where
    E: Retryable + fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // tokio's clock, so that tests on a paused clock see the waits they skip.
    let started = tokio::time::Instant::now();
    let mut n: u32 = 1;
    loop {
        let error = match attempt(n).await {
            Ok(value) => return Ok((value, n - 1)),
            Err(e) if e.is_retryable() => e,
            Err(e) => return Err(Stop::Fatal(e)),
        };
        let elapsed = started.elapsed();
        let delay = match decide(policy, n, error.retry_after(), jitter(), elapsed) {
            Decision::Retry(delay) => delay,
            Decision::GiveUp => {
                return Err(Stop::Exhausted {
                    last: error,
                    attempts: n,
                    elapsed,
                });
            }
            Decision::ServerWaitTooLong { asked, remaining } => {
                tracing::warn!(
                    what,
                    attempt = n,
                    asked_ms = millis(asked),
                    remaining_ms = millis(remaining),
                    error = %error,
                    "the server asked to wait longer than the call's retry budget allows; giving up"
                );
                return Err(Stop::ServerWaitTooLong {
                    last: error,
                    attempts: n,
                    elapsed,
                    asked,
                    remaining,
                });
            }
        };
        tracing::warn!(
            what,
            attempt = n,
            delay_ms = millis(delay),
            error = %error,
            "attempt failed; retrying"
        );
        tokio::time::sleep(delay).await;
        n = n.saturating_add(1);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration for messages: whole seconds when it is one, else seconds with up to three
/// decimals (`30 s`, `1.5 s`).
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        let text = format!("{:.3}", d.as_secs_f64());
        format!("{} s", text.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Fail {
        retryable: bool,
        wait: Option<Duration>,
    }

    impl fmt::Display for Fail {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "fail (retryable: {})", self.retryable)
        }
    }

    impl Retryable for Fail {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.wait
        }
    }

    fn policy(max_attempts: u32, max_total: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_total,
        }
    }

    #[test]
    fn decisions_honour_the_server_wait_in_full_within_the_budget() {
        let p = policy(4, Duration::from_secs(10));
        let ms = Duration::from_millis;
        // Longer than max_delay, yet honoured: it is the server's wait, not our backoff.
        assert_eq!(
            decide(&p, 1, Some(ms(5000)), 0.3, ms(0)),
            Decision::Retry(ms(5000))
        );
        assert_eq!(
            decide(&p, 2, Some(ms(5000)), 0.3, ms(6000)),
            Decision::ServerWaitTooLong {
                asked: ms(5000),
                remaining: ms(4000)
            }
        );
        assert_eq!(decide(&p, 1, None, 1.0, ms(0)), Decision::Retry(ms(10)));
        assert_eq!(decide(&p, 3, None, 1.0, ms(0)), Decision::Retry(ms(40)));
        assert_eq!(decide(&p, 3, None, 1.0, ms(9990)), Decision::GiveUp);
        assert_eq!(decide(&p, 4, Some(ms(1)), 1.0, ms(0)), Decision::GiveUp);
        assert_eq!(
            decide(&p, 1, Some(Duration::ZERO), 1.0, ms(10_000)),
            Decision::Retry(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_retries_waits_and_counts() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<(u32, u32), Stop<Fail>> =
            run(&policy(5, Duration::from_secs(60)), "test", |n| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 3 {
                        Err(Fail {
                            retryable: true,
                            wait: Some(Duration::from_secs(2)),
                        })
                    } else {
                        Ok(n * 10)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), (30, 2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_stops_on_fatal_errors_exhaustion_and_long_server_waits() {
        let fatal: Result<((), u32), _> =
            run(&policy(5, Duration::from_secs(60)), "t", |_| async {
                Err(Fail {
                    retryable: false,
                    wait: None,
                })
            })
            .await;
        assert!(matches!(
            fatal,
            Err(Stop::Fatal(Fail {
                retryable: false,
                ..
            }))
        ));

        let exhausted: Result<((), u32), _> =
            run(&policy(3, Duration::from_secs(60)), "t", |_| async {
                Err(Fail {
                    retryable: true,
                    wait: None,
                })
            })
            .await;
        assert!(matches!(
            exhausted,
            Err(Stop::Exhausted { attempts: 3, .. })
        ));

        let started = tokio::time::Instant::now();
        let calls = AtomicU32::new(0);
        let long: Result<((), u32), _> = run(&policy(5, Duration::from_secs(60)), "t", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Fail {
                    retryable: true,
                    wait: Some(Duration::from_secs(3600)),
                })
            }
        })
        .await;
        let Err(Stop::ServerWaitTooLong {
            asked,
            remaining,
            attempts,
            last,
            ..
        }) = long
        else {
            panic!("expected ServerWaitTooLong, got {long:?}");
        };
        assert_eq!((asked, attempts), (Duration::from_secs(3600), 1));
        assert_eq!(remaining, Duration::from_secs(60));
        assert!(last.retryable);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // It failed at once: no part of the hour was slept.
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn seconds_read_well() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
    }

    // Issue 9 (ported from pim-domain when the decision moved here): a long Retry-After used
    // to be cut to 30 s and retried into the same throttle; now it fails the call at once and
    // says how long the server asked for, and a wait within the budget is honoured in full.
    #[test]
    fn retry_after_is_honoured_in_full_or_fails_at_once_and_total_time_is_bounded() {
        let p = RetryPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(
            decide(&p, 1, Some(s(300)), 0.5, Duration::ZERO),
            Decision::ServerWaitTooLong {
                asked: s(300),
                remaining: s(120)
            }
        );
        assert_eq!(
            decide(&p, 1, Some(s(90)), 0.5, s(20)),
            Decision::Retry(s(90))
        );
        assert_eq!(
            decide(&p, 2, Some(s(90)), 0.5, s(31)),
            Decision::ServerWaitTooLong {
                asked: s(90),
                remaining: s(89)
            }
        );
        assert_eq!(
            decide(&p, 5, Some(s(1)), 0.5, Duration::ZERO),
            Decision::GiveUp
        );
        let tight = RetryPolicy {
            max_total: s(3),
            ..RetryPolicy::default()
        };
        assert_eq!(decide(&tight, 3, None, 1.0, s(1)), Decision::GiveUp);
        assert_eq!(
            decide(&RetryPolicy::none(), 1, None, 1.0, Duration::ZERO),
            Decision::GiveUp
        );
    }
}
