//! The HTTP plumbing every Azure adapter shares, once: Log Analytics queries, Azure OpenAI and
//! OpenAI-compatible chat, Logs Ingestion and webhooks all run through it.
//!
//! - [`retry`]: the retry driver ([`retry::run`]) and its rule ([`retry::decide`]): bounded
//!   attempts and total time from [`RetryPolicy`], jittered backoff, the server's wait honoured
//!   in full, and a server wait longer than the call's remaining budget failing the call at once.
//! - [`retry_after`]: the server's wait from `retry-after-ms`, `x-ms-retry-after-ms` and
//!   `Retry-After` (seconds or HTTP-date).
//! - [`transport`]: timeout / connect / body classification of a request that got no answer.
//! - [`secret`]: the [`Secret`](secret::Secret) type, [`Redacted`](secret::Redacted) (how every
//!   hand-written `Debug` shows a secret), redacted URLs, sensitive headers and scrubbing of
//!   echoed secrets.
//!
//! The policy itself, [`RetryPolicy`], is plain data and stays in `pim-domain`, which does no
//! I/O; everything that reads HTTP lives here.

pub mod retry;
pub mod retry_after;
pub mod secret;
pub mod transport;

pub use pim_domain::retry::RetryPolicy;
pub use retry::{Retryable, Stop};
pub use transport::TransportKind;
