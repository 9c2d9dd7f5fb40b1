use crate::support::*;

#[test]
fn row_object_exports_give_the_same_judgements_as_the_demo() {
    let dir = fixture("rowobjects");
    let report = json_report(&[
        "--from-dir",
        dir.to_str().unwrap(),
        "--end",
        "2026-11-20T18:00:00Z",
    ]);
    assert_eq!(report["source"]["kind"], "export");
    let demo = json_report(&["--demo"]);
    // Same activations (the bulk rows are generated only by the demo source).
    let key = |r: &serde_json::Value| {
        let mut v: Vec<(String, String)> = activations(r)
            .iter()
            .filter(|a| a["principal"]["upn"] != "ops.automation@contoso-demo.com")
            .map(|a| {
                (
                    a["id"].as_str().unwrap().to_owned(),
                    a["assessment"]["verdict"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&report), key(&demo));
}

#[test]
fn malformed_rows_are_reported_precisely_and_lose_nothing() {
    let dir = fixture("malformed-rows");
    let out = run(&[
        "--from-dir",
        dir.to_str().unwrap(),
        "--end",
        "2026-11-20T18:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    pim_testkit::report_schema::assert_valid_report(&report);
    let problems = serde_json::to_string(&report["problems"]).unwrap()
        + &serde_json::to_string(&report["activations"]).unwrap();
    // Each problem names the file, the row and the field.
    assert!(problems.contains("AuditLogs.json"), "{problems:.2000}");
    assert!(problems.contains("AdditionalDetails"));
    assert!(problems.contains("TimeGenerated"));
    assert!(problems.contains("AzureActivity.json"));
    // A bad AuditLogs row is read by two queries but reported once.
    let list = report["problems"].as_array().unwrap();
    let unique: std::collections::BTreeSet<String> = list.iter().map(|p| p.to_string()).collect();
    assert_eq!(unique.len(), list.len(), "duplicate problems: {list:?}");
    // Every activation of the demo (but the generated bulk one) is still reported.
    let demo = json_report(&["--demo"]);
    assert_eq!(activations(&report).len(), activations(&demo).len());
    // The hostile justification is carried whole in JSON.
    let tom = activation(&report, "tom.berg@contoso-demo.com", "CHG0040001");
    assert!(tom["justification"].as_str().unwrap().len() > 100_000);

    // And the Markdown of it stays well-formed: no injected heading or HTML.
    let out = run(&[
        "--from-dir",
        dir.to_str().unwrap(),
        "--end",
        "2026-11-20T18:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let md = stdout(&out);
    assert!(!md.lines().any(|l| l.starts_with("# Injected")));
    assert!(!md.contains("<script>"));
}

#[test]
fn whole_file_failures_name_the_file_and_exit_1() {
    for (name, needle) in [
        ("empty-file", "empty"),
        ("truncated", "AuditLogs.json"),
        ("wrong-shape", "AuditLogs.json"),
        ("not-json", "AuditLogs.json"),
    ] {
        let dir = fixture(name);
        let out = run(&[
            "--from-dir",
            dir.to_str().unwrap(),
            "--end",
            "2026-11-20T18:00:00Z",
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(stdout(&out).is_empty());
    }
    let out = run(&["--from-dir", "/nonexistent/pim-exports"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/pim-exports"));
}

#[test]
fn a_missing_activity_export_never_reads_as_no_activity() {
    let dir = fixture("no-activity-file");
    let report = json_report(&[
        "--from-dir",
        dir.to_str().unwrap(),
        "--end",
        "2026-11-20T18:00:00Z",
    ]);
    let jane = activation(&report, "jane.doe@contoso-demo.com", "INC0042817");
    assert_eq!(jane["assessment"]["verdict"], "unknown");
    assert!(
        jane["assessment"]["error"]
            .as_str()
            .unwrap()
            .contains("AzureActivity")
    );
    assert!(!report["warnings"].as_array().unwrap().is_empty());
    // Directory-role activations are still judged on their AuditLogs activity.
    let sam = activation(&report, "sam.okafor@contoso-demo.com", "SR-20931");
    assert_ne!(sam["assessment"]["verdict"], "unknown");
}

#[test]
fn a_partial_result_is_never_taken_as_complete() {
    let dir = fixture("partial");
    let report = json_report(&[
        "--from-dir",
        dir.to_str().unwrap(),
        "--end",
        "2026-11-20T18:00:00Z",
    ]);
    let warnings = serde_json::to_string(&report["warnings"]).unwrap();
    assert!(warnings.contains("partial"), "{warnings}");
    let jane = activation(&report, "jane.doe@contoso-demo.com", "INC0042817");
    assert!(flags(jane).contains(&"activity_truncated".to_owned()));
}
