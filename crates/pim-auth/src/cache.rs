//! A per-scope token cache in front of any credential.
//!
//! The Azure CLI credentials spawn a process on every call and have no cache of their own, so
//! without this a scan would run `az` once per query.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;

/// Source of the current time, injectable so tests can move the clock.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// A token is refreshed once it is this close to its expiry (the same margin as
/// `azure_identity`'s own cache).
pub const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// One slot per scope key; the async mutex makes concurrent callers for the same scope wait
/// for a single refresh instead of each fetching a token.
type Slot = Arc<Mutex<Option<AccessToken>>>;

/// Wraps a credential and caches its tokens per scope set (key: the scopes joined by spaces)
/// until [`REFRESH_MARGIN`] before expiry. Errors are not cached.
pub struct CachedCredential {
    inner: Arc<dyn TokenCredential>,
    name: String,
    clock: Clock,
    slots: StdMutex<HashMap<String, Slot>>,
}

impl CachedCredential {
    /// Caches `inner`, reading the time from the system clock.
    pub fn new(inner: Arc<dyn TokenCredential>) -> Self {
        Self {
            inner,
            name: String::from("credential"),
            clock: Arc::new(OffsetDateTime::now_utc),
            slots: StdMutex::new(HashMap::new()),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Names the wrapped credential in log lines (e.g. "Azure CLI").
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    fn slot(&self, key: &str) -> Slot {
        // A poisoned map only means another thread panicked mid-insert; the map is still usable.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(key.to_owned()).or_default())
    }

    fn is_fresh(&self, token: &AccessToken) -> bool {
        // checked_sub: a wild expiry from a fake or a bad server must not panic the caller.
        let now = (self.clock)();
        token
            .expires_on
            .checked_sub(REFRESH_MARGIN)
            .is_some_and(|refresh_at| refresh_at > now)
    }
}

impl fmt::Debug for CachedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes = self
            .slots
            .lock()
            .map(|slots| slots.len())
            .unwrap_or_default();
        f.debug_struct("CachedCredential")
            .field("name", &self.name)
            .field("inner", &self.inner)
            .field("cached_scopes", &scopes)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for CachedCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let key = scopes.join(" ");
        let slot = self.slot(&key);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| self.is_fresh(t)) {
            return Ok(token.clone());
        }
        let token = self.inner.get_token(scopes, options).await?;
        tracing::debug!(
            method = %self.name,
            scope = %key,
            expires_on = %token.expires_on,
            "fetched a new access token"
        );
        *cached = Some(token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::macros::datetime;

    const SCOPE: &str = "https://api.loganalytics.io/.default";

    /// Counts fetches and hands out tokens "token-N" that expire `lifetime` after the clock.
    #[derive(Debug)]
    struct CountingCredential {
        fetches: AtomicUsize,
        now: Arc<StdMutex<OffsetDateTime>>,
        lifetime: Duration,
        delay: std::time::Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for CountingCredential {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.delay).await;
            let now = *self.now.lock().unwrap();
            Ok(AccessToken::new(format!("token-{n}"), now + self.lifetime))
        }
    }

    fn setup(
        lifetime: Duration,
        delay_ms: u64,
    ) -> (
        Arc<CountingCredential>,
        CachedCredential,
        Arc<StdMutex<OffsetDateTime>>,
    ) {
        let now = Arc::new(StdMutex::new(datetime!(2026-11-24 12:00 UTC)));
        let inner = Arc::new(CountingCredential {
            fetches: AtomicUsize::new(0),
            now: Arc::clone(&now),
            lifetime,
            delay: std::time::Duration::from_millis(delay_ms),
        });
        let clock_now = Arc::clone(&now);
        let cache = CachedCredential::new(inner.clone())
            .with_clock(Arc::new(move || *clock_now.lock().unwrap()));
        (inner, cache, now)
    }

    #[tokio::test]
    async fn second_call_is_served_from_the_cache() {
        let (inner, cache, _) = setup(Duration::hours(1), 0);
        let first = cache.get_token(&[SCOPE], None).await.unwrap();
        let second = cache.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(first.token.secret(), "token-1");
        assert_eq!(second.token.secret(), "token-1");
        assert_eq!(inner.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn scopes_are_cached_separately() {
        let (inner, cache, _) = setup(Duration::hours(1), 0);
        cache.get_token(&[SCOPE], None).await.unwrap();
        let other = cache
            .get_token(&["https://cognitiveservices.azure.com/.default"], None)
            .await
            .unwrap();
        assert_eq!(other.token.secret(), "token-2");
        assert_eq!(inner.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refreshes_within_five_minutes_of_expiry() {
        let (inner, cache, now) = setup(Duration::hours(1), 0);
        cache.get_token(&[SCOPE], None).await.unwrap();

        // 54 minutes later: still 6 minutes left, served from the cache.
        *now.lock().unwrap() += Duration::minutes(54);
        let token = cache.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "token-1");

        // 56 minutes later: 4 minutes left, inside the margin, so refreshed.
        *now.lock().unwrap() += Duration::minutes(2);
        let token = cache.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "token-2");
        assert_eq!(inner.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_token_already_inside_the_margin_is_not_reused() {
        let (inner, cache, _) = setup(Duration::minutes(3), 0);
        cache.get_token(&[SCOPE], None).await.unwrap();
        cache.get_token(&[SCOPE], None).await.unwrap();
        assert_eq!(inner.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_fetch() {
        let (inner, cache, _) = setup(Duration::hours(1), 50);
        let cache = Arc::new(cache);
        let mut handles = Vec::new();
        for _ in 0..16 {
            let cache = Arc::clone(&cache);
            handles.push(tokio::spawn(async move {
                cache.get_token(&[SCOPE], None).await.unwrap()
            }));
        }
        for handle in handles {
            assert_eq!(handle.await.unwrap().token.secret(), "token-1");
        }
        assert_eq!(inner.fetches.load(Ordering::SeqCst), 1);
    }

    #[derive(Debug)]
    struct FailingCredential(AtomicUsize);

    #[async_trait::async_trait]
    impl TokenCredential for FailingCredential {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "nope",
            ))
        }
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let inner = Arc::new(FailingCredential(AtomicUsize::new(0)));
        let cache = CachedCredential::new(inner.clone());
        assert!(cache.get_token(&[SCOPE], None).await.is_err());
        assert!(cache.get_token(&[SCOPE], None).await.is_err());
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn debug_never_shows_a_cached_token() {
        let inner = Arc::new(crate::StaticTokenCredential::new(
            "cached-token-value",
            datetime!(2099-01-01 0:00 UTC),
        ));
        let cache = CachedCredential::new(inner).with_name("static");
        cache.get_token(&[SCOPE], None).await.unwrap();
        let debug = format!("{cache:?}");
        assert!(!debug.contains("cached-token-value"), "{debug}");
        assert!(debug.contains("cached_scopes: 1"), "{debug}");
    }
}
