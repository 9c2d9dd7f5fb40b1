//! Runnable examples of embedding `pim-core`; see the `[[example]]` targets:
//!
//! - `cargo run -p pim-examples --example audit_demo`: audit the bundled demo tenant and print
//!   the findings and the Markdown report.
