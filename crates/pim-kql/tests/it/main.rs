//! Integration tests of pim-kql.

// Test helpers outside #[test] functions may fail loudly too: clippy.toml's test allowances
// only cover the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Microsoft's Kusto parser as the oracle of the query checker, over tests/corpus.
mod oracle;
