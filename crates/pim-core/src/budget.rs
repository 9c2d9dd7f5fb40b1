//! Client-side budgets for model calls: requests per minute and tokens per minute.
//!
//! Azure OpenAI enforces a deployment's quota per minute (and requests over 1–10 s windows),
//! counting each request's *estimated* tokens (prompt plus `max_tokens`) on arrival. A large
//! scan that fires hundreds of assessments at once hits that wall and spends its time in 429
//! back-off. Spending the budget on our side instead keeps the calls flowing at the rate the
//! deployment accepts.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// A sliding one-minute window over requests and tokens. Cheap to share by reference between
/// the concurrent assessments of one scan.
#[derive(Debug)]
pub struct CallBudget {
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u32>,
    spent: Mutex<VecDeque<(Instant, u32)>>,
}

impl CallBudget {
    /// A budget; `None` means unlimited on that axis.
    pub fn new(requests_per_minute: Option<u32>, tokens_per_minute: Option<u32>) -> Self {
        Self {
            requests_per_minute,
            tokens_per_minute,
            spent: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether the budget limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }

    /// Waits until one request of `tokens` estimated tokens fits in the last minute's budget,
    /// then records it. A single request larger than the whole token budget is let through once
    /// the window is empty, rather than never.
    pub async fn acquire(&self, tokens: u32) {
        if self.is_unlimited() {
            return;
        }
        loop {
            let wait = {
                let mut spent = self.spent.lock().await;
                let now = Instant::now();
                while spent
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
                {
                    spent.pop_front();
                }
                let requests = u32::try_from(spent.len()).unwrap_or(u32::MAX);
                let used: u64 = spent.iter().map(|(_, n)| u64::from(*n)).sum();
                let fits_requests = self.requests_per_minute.is_none_or(|max| requests < max);
                let fits_tokens = self.tokens_per_minute.is_none_or(|max| {
                    used + u64::from(tokens) <= u64::from(max) || spent.is_empty()
                });
                if fits_requests && fits_tokens {
                    spent.push_back((now, tokens));
                    return;
                }
                // The oldest entry leaving the window is the earliest moment anything changes.
                spent.front().map_or(Duration::from_millis(10), |(t, _)| {
                    WINDOW.saturating_sub(now.duration_since(*t))
                })
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_are_spread_over_the_window() {
        let budget = CallBudget::new(Some(2), None);
        let start = Instant::now();
        for _ in 0..5 {
            budget.acquire(100).await;
        }
        // 2 now, 2 after a minute, 1 after two minutes.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(120) && took < Duration::from_secs(121),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_bound_the_estimated_tokens() {
        let budget = CallBudget::new(None, Some(10_000));
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire(4_000).await;
        }
        // 8,000 fit in the first minute; the third waits for the window to move on.
        assert!(
            start.elapsed() >= Duration::from_secs(60),
            "{:?}",
            start.elapsed()
        );
        // One request above the whole budget still goes, alone.
        let big = CallBudget::new(None, Some(1_000));
        big.acquire(5_000).await;
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let budget = CallBudget::new(None, None);
        let start = Instant::now();
        for _ in 0..1_000 {
            budget.acquire(u32::MAX).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
