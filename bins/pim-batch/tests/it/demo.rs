use std::collections::BTreeSet;

use crate::support::*;

#[test]
fn markdown_report_of_the_demo_renders_with_every_section() {
    let out = run(&["--demo"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let md = stdout(&out);
    assert!(
        md.starts_with("# PIM Activity Audit Report"),
        "{}",
        &md[..md.len().min(200)]
    );
    for needle in ["```mermaid", "gantt", "mallory.reed@contoso", "not_aligned"] {
        assert!(md.contains(needle), "markdown lacks {needle:?}");
    }
    // Logs go to stderr, never into the report.
    assert!(!md.contains(" INFO "));
}

#[test]
fn demo_covers_every_verdict_and_flag() {
    let report = json_report(&["--demo"]);
    let acts = activations(&report);
    assert!(acts.len() >= 12, "only {} activations", acts.len());
    let verdicts: BTreeSet<&str> = acts
        .iter()
        .map(|a| a["assessment"]["verdict"].as_str().unwrap())
        .collect();
    for v in [
        "aligned",
        "partial",
        "not_aligned",
        "no_activity",
        "unknown",
    ] {
        assert!(
            verdicts.contains(v),
            "no {v} verdict in the demo: {verdicts:?}"
        );
    }
    let all_flags: BTreeSet<String> = acts.iter().flat_map(flags).collect();
    for f in [
        "high_risk_operation",
        "insufficient_justification",
        "prompt_injection_suspected",
        "still_active",
        "assumed_window",
        "activity_truncated",
    ] {
        assert!(
            all_flags.contains(f),
            "no {f} flag in the demo: {all_flags:?}"
        );
    }
    let kinds: BTreeSet<&str> = acts
        .iter()
        .map(|a| a["role"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["azure_resource", "entra_directory", "group"])
    );
    let ids: BTreeSet<&str> = acts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), acts.len(), "activation ids are unique");
    // Summary agrees with the list.
    assert_eq!(
        report["summary"]["activations"].as_u64(),
        Some(acts.len() as u64)
    );
    let by_verdict: u64 = report["summary"]["by_verdict"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_verdict, acts.len() as u64);
    assert_eq!(report["schema_version"], "3.0");
    assert_eq!(report["window"]["end"], "2026-11-20T18:00:00Z");
}

#[test]
fn demo_edge_cases_are_judged_as_described() {
    let report = json_report(&["--demo"]);

    // Start/Accept/Success rows of one restart collapse into one succeeded operation.
    let jane1 = activation(&report, "jane.doe@contoso-demo.com", "INC0042817");
    assert_eq!(jane1["assessment"]["verdict"], "aligned");
    let restarts: Vec<_> = jane1["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["operation"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .ends_with("restart/action")
        })
        .collect();
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0]["status"], "succeeded");
    assert_eq!(jane1["window"]["end_reason"], "expired");
    assert_eq!(jane1["tickets"][0], "INC0042817");

    // Two activations by one person are judged on their own windows.
    let jane2 = activation(&report, "jane.doe@contoso-demo.com", "INC0042900");
    assert_eq!(jane2["assessment"]["verdict"], "partial");
    assert!(
        jane2["activities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["time"].as_str().unwrap() >= "2026-11-20T14")
    );

    // Prompt injection is flagged and cannot make the activation look fine.
    let mallory = activation(&report, "mallory.reed@contoso-demo.com", "INC0051234");
    assert!(flags(mallory).contains(&"prompt_injection_suspected".to_owned()));
    assert_eq!(mallory["assessment"]["verdict"], "not_aligned");
    assert_eq!(mallory["assessment"]["risk"], "critical");

    // Content-free justification on a Global Administrator.
    let li = activation(&report, "li.wei@contoso-demo.com", "work");
    assert!(flags(li).contains(&"insufficient_justification".to_owned()));
    assert_eq!(li["role"]["kind"], "entra_directory");
    assert_eq!(li["assessment"]["risk"], "critical");

    // Early deactivation ends the window; activity after it is not attributed.
    let sam = activation(&report, "sam.okafor@contoso-demo.com", "SR-20931");
    assert_eq!(sam["window"]["end_reason"], "deactivated");
    assert!(
        sam["window"]["end"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-20T11:20:31")
    );
    assert_eq!(sam["activities"].as_array().unwrap().len(), 2);
    assert_eq!(sam["tickets"][0], "SR-20931");

    // Nothing recorded in the window.
    let priya = activation(&report, "priya.nair@contoso-demo.com", "RITM0012345");
    assert_eq!(priya["assessment"]["verdict"], "no_activity");

    // Still active at the scan end: window cut at the scan end and flagged.
    let tom = activation(&report, "tom.berg@contoso-demo.com", "CHG0040001");
    assert_eq!(tom["window"]["end_reason"], "still_active");
    assert_eq!(tom["window"]["end"], "2026-11-20T18:00:00Z");
    assert!(flags(tom).contains(&"still_active".to_owned()));

    // No end logged: 8 hours assumed, and said so.
    let kim = activation(&report, "kim.lee@contoso-demo.com", "INC0047001");
    assert_eq!(kim["window"]["end_reason"], "assumed");
    assert!(flags(kim).contains(&"assumed_window".to_owned()));

    // Began before the scan window, active in it: included.
    let omar = activation(&report, "omar.haddad@contoso-demo.com", "CHG0039999");
    assert!(omar["window"]["start"].as_str().unwrap() < "2026-11-19T18:00:00Z");
    assert_eq!(omar["activities"].as_array().unwrap().len(), 1);

    // Runaway script: capped, counted, flagged.
    let bulk = activation(&report, "ops.automation@contoso-demo.com", "CHG0045555");
    assert!(flags(bulk).contains(&"activity_truncated".to_owned()));
    assert_eq!(bulk["activities"].as_array().unwrap().len(), 5000);
    assert_eq!(bulk["activity_count"], 5200);

    // Group activation.
    let ana = activation(&report, "ana.silva@contoso-demo.com", "payments-api");
    assert_eq!(ana["role"]["kind"], "group");

    // A record with no user is kept and marked unknown with the reason.
    let unknown: Vec<_> = activations(&report)
        .iter()
        .filter(|a| a["assessment"]["verdict"] == "unknown")
        .collect();
    assert!(!unknown.is_empty());
    assert!(unknown.iter().all(|a| {
        a["assessment"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    }));

    // Expired before the scan window: not reported.
    assert!(activations(&report).iter().all(|a| {
        !a["justification"]
            .as_str()
            .unwrap()
            .contains("yesterday's work")
    }));
}

#[test]
fn failed_operations_are_only_included_on_request() {
    let report = json_report(&["--demo"]);
    let guest = activation(
        &report,
        "vendor.dev_fabrikam.com#EXT#@contoso-demo.com",
        "OPS-1422",
    );
    assert_eq!(guest["assessment"]["verdict"], "no_activity");

    let report = json_report(&["--demo", "--include-failed"]);
    let guest = activation(
        &report,
        "vendor.dev_fabrikam.com#EXT#@contoso-demo.com",
        "OPS-1422",
    );
    let acts = guest["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["status"], "failed");
    assert_eq!(report["settings"]["include_failed"], true);
}
