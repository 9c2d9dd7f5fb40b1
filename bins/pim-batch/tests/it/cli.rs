use crate::support::*;

#[test]
fn no_source_is_a_clear_error() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--demo"), "{}", stderr(&out));
}

#[test]
fn demo_and_from_dir_are_exclusive() {
    let out = run(&["--demo", "--from-dir", "."]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fail_on_exits_3_when_met_and_0_when_not() {
    assert_eq!(
        run(&["--demo", "--fail-on", "critical"]).status.code(),
        Some(3)
    );
    assert_eq!(
        run(&["--demo", "--fail-on", "not_aligned,unknown"])
            .status
            .code(),
        Some(3)
    );
    // A one-hour window at the end of the demo holds only the aligned, still-active rotation.
    let quiet = run(&["--demo", "--hours", "1", "--fail-on", "not_aligned"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", stderr(&quiet));
    let bad = run(&["--demo", "--fail-on", "sometimes"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("sometimes"));
}

#[test]
fn output_file_and_custom_template() {
    let dir = std::env::temp_dir().join(format!("pim-batch-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("report.md");
    let template = dir.join("short.md.tera");
    std::fs::write(&template, "Activations: {{ summary.activations }}\n").unwrap();
    let out = run(&[
        "--demo",
        "--output",
        out_path.to_str().unwrap(),
        "--template",
        template.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(text.starts_with("Activations: "), "{text}");

    let broken = dir.join("broken.md.tera");
    std::fs::write(&broken, "{% for x in %}").unwrap();
    let out = run(&["--demo", "--template", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("broken.md.tera"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_end_and_hours_are_rejected() {
    let out = run(&["--demo", "--end", "tomorrow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tomorrow"));
    let out = run(&["--demo", "--hours", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("hours"));
}

#[test]
fn environment_defaults_apply() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
        .args(["--demo", "--format", "json"])
        .env("PIM_SCAN_HOURS", "6")
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    pim_testkit::report_schema::assert_valid_report(&report);
    assert_eq!(report["settings"]["hours"], 6);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("INFO"));
}

#[test]
fn schema_prints_the_committed_report_schema() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
        .arg("schema")
        .env_remove("LOG_ANALYTICS_WORKSPACE_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/report.schema.json"
    ))
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "PIM Activity Audit Report");
}

#[test]
fn completions_and_man_need_no_configuration() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pim-batch"))
            .args(["completions", shell])
            .env_remove("LOG_ANALYTICS_WORKSPACE_ID")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["pim-batch", "schema", "fail-on", "log-file"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(".TH pim-batch"), "{}", stdout(&out));
    assert!(stdout(&out).contains("completions"));
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn log_file_gets_the_json_records_appended_as_well_as_stderr() {
    let dir = std::env::temp_dir().join(format!("pim-batch-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("pim-batch.log");
    let _ = std::fs::remove_file(&log);
    let path = log.to_str().unwrap();
    for _ in 0..2 {
        let out = run(&["--demo", "--log-format", "json", "--log-file", path]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("\"message\":\"scanning\""),
            "{}",
            stderr(&out)
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let scans = records
        .iter()
        .filter(|r| r["message"] == "scanning")
        .count();
    assert_eq!(scans, 2, "both runs appended:\n{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let bad = run(&["--demo", "--log-file", "/nonexistent-dir/x.log"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("/nonexistent-dir/x.log"),
        "{}",
        stderr(&bad)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
