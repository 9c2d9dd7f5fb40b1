//! pim-serve's integration tests: a real server on loopback, driven over HTTP.

// Test helpers are not `#[test]` functions, so clippy.toml's allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The server, the demo agent and the fake authority every test starts from.
mod support;
// Entra ID sign-in: every token case of issue 15.
mod auth;
// The routes and their JSON shapes, two users kept apart, the page.
mod api;
// Every limit: body size, sessions per user and in all, messages per minute, idle expiry.
mod limits;
