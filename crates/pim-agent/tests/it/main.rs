//! Integration tests of the chat agent.

// Test helpers outside #[test] functions may fail loudly too: clippy.toml's test allowances
// only cover the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The chat session: scripted conversations on the demo tenant, free-form KQL with repair.
mod chat;

// The JSON form of every answer carries its data.
mod json;
