//! Runnable examples of embedding `pim-core`; see the `[[example]]` targets:
//!
//! - `cargo run -p pim-examples --example audit_demo`: audit the bundled demo tenant and print
//!   the findings and the Markdown report.
//! - `cargo run --release -p pim-examples --example bench_serve`: `pim-chat serve` under load,
//!   50 signed-in users over HTTP against one, and the memory of an idle session.
//! - `cargo run -p pim-examples --example serve_fixture -- --pim-chat PATH`: the real
//!   `pim-chat --demo serve` behind a fake Entra ID authority, for the browser test in
//!   `crates/pim-serve/browser`.
