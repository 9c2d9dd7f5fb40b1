//! pim-tickets' integration tests: the real reqwest adapters against pim-testkit's loopback
//! ticket fake.

// Support code outside `#[test]` functions: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jira; // Jira Cloud (v3) and Data Center (v2): evidence, 404, 401/403, 429, --check
mod servicenow; // the Table API: request shape, evidence, failures, retries, --check
mod support; // clients aimed at the fake
mod verifier; // once per scan, every reference accounted for, over both systems
