//! Wire-level tests of the fakes, driven with reqwest over loopback.

// This binary is test code only; its request helpers are not `#[test]` functions, so clippy's
// allow-unwrap-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The Log Analytics query API fake.
mod loganalytics;
// The managed-identity token endpoint fake.
mod msi;
// The Azure OpenAI chat-completions fake.
mod openai;
