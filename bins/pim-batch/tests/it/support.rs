use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture folder under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// Runs `pim-batch` with `args`, with the environment cleared of our variables.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pim-batch"))
        .args(args)
        .env_remove("PIM_SCAN_HOURS")
        .env_remove("PIM_LOOKBACK_HOURS")
        .env_remove("PIM_MAX_ACTIVITIES")
        .env_remove("PIM_PRIVILEGED_PATTERNS")
        .env_remove("LOG_LEVEL")
        .output()
        .expect("pim-batch runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs with `--format json` and parses the report; panics with stderr when it fails.
pub fn json_report(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = serde_json::from_slice(&out.stdout).expect("stdout is a JSON report");
    pim_testkit::report_schema::assert_valid_report(&report);
    report
}

/// The activations of a JSON report.
pub fn activations(report: &Value) -> &Vec<Value> {
    report["activations"].as_array().expect("activations array")
}

/// The activation of `upn` whose justification contains `needle`.
pub fn activation<'a>(report: &'a Value, upn: &str, needle: &str) -> &'a Value {
    activations(report)
        .iter()
        .find(|a| {
            a["principal"]["upn"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(upn))
                && a["justification"]
                    .as_str()
                    .is_some_and(|j| j.contains(needle))
        })
        .unwrap_or_else(|| panic!("no activation of {upn} with {needle:?}"))
}

pub fn flags(a: &Value) -> Vec<String> {
    a["assessment"]["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f.as_str().unwrap_or_default().to_owned())
        .collect()
}
