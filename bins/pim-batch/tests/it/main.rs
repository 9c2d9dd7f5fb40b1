//! End-to-end tests of the `pim-batch` binary.

// Test helpers outside #[test] functions may fail loudly too: clippy.toml's test allowances
// only cover the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Helpers to run the binary and read its JSON report.
mod support;

// The bundled demo tenant: every verdict, every flag, the edge cases.
mod demo;

// Offline exports: both file shapes, malformed rows and whole-file failures.
mod exports;

// Arguments, exit codes and output options.
mod cli;

// Every documented variable takes effect from a `.env` file alone.
mod dotenv;

// Live Azure, against the loopback fakes of pim-testkit.
mod live;

// One scan per model family (gpt-4o, gpt-4.1, o4-mini, gpt-5-mini, a Foundry model).
mod families;
// Real-tenant-shaped exports: unreadable evidence, operations in progress, the Activity Log's
// PIM events, bad cells and identities, portal CSV.
mod tenant;

// OpenTelemetry: spans and metrics over OTLP/HTTP to a loopback receiver; nothing when off.
mod otel;

// Scheduled runs on a state store: exactly-once delivery, settled verdicts, recovery, locking.
mod state;
