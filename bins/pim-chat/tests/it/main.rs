//! Integration tests: the `pim-chat` binary driven through piped stdin (and, once, a
//! pseudo-terminal).

// Test helpers are not `#[test]` functions, so clippy.toml's allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Runs the binary in an isolated directory and environment.
mod support;

// Scripted sessions against the demo tenant, and start-up failures.
mod session;

// The line editor under a pseudo-terminal.
mod tty;

// A scripted session against the loopback fakes: free-form questions, repair, giving up.
mod live;

// One scripted session per model family (gpt-4o, gpt-4.1, o4-mini, gpt-5-mini, a Foundry model).
mod families;
// Issue 9: hostile log text reaches the terminal escaped and cut.
mod hostile;
// Issue 11: pim-chat's own variables take effect from a `.env` file alone.
mod dotenv;
// Issue 15: `pim-chat serve` starts from its .env, answers over HTTP, and refuses no sign-in
// off loopback.
mod serve;
// Issue 16: each scan of a session exported over OTLP/HTTP as a run with its trace.
mod otel;
