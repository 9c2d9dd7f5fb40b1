//! Integration tests of the embedding API.

// Test helpers outside #[test] functions may fail loudly too: clippy.toml's test allowances
// only cover the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Snapshots of the demo tenant's Markdown and JSON reports.
mod snapshots;

// The pipeline against scripted sources: query count, failures, partial results.
mod pipeline;

// `--check` preflight against the loopback fakes: passes, each failure's remedy, skips, secrets.
mod preflight;

// Issue 9: the model stage's deadline, the warnings about failed model calls, and a server's
// Retry-After that does not fit in a call's budget, against the loopback Azure OpenAI fake.
mod model_stage;

// Issue 12: streamed exports keep only the rows a query's scope can use, and report exactly what
// whole tables report (every fixture, JSON and CSV).
mod streamed;
// Issue 12: queries cut at the service's limits are split until complete (activity and PIM
// events), the one-identity-one-minute case stays flagged, and the concurrency bound holds,
// through the real Log Analytics client against the limit-enforcing fake.
mod limits;
// Issue 14: cited tickets verified against the loopback ServiceNow and Jira fake during a demo
// scan: every flag, failed lookups, one lookup per ticket, a prompt-injecting description, and
// the Markdown's ticket evidence.
mod tickets;

// Issue 14, item 4: the behaviour baseline, live against the fake's summaries and offline from
// exports that do or do not cover the period.
mod baseline;
