use pim_report::{MarkdownOptions, Renderer, render_json};

use crate::support::{fixture, report};

fn markdown(options: &MarkdownOptions) -> String {
    Renderer::new()
        .unwrap()
        .render_markdown(&fixture(), options)
        .unwrap()
}

#[test]
fn fixture_markdown() {
    pim_snapshot!("fixture_markdown", markdown(&MarkdownOptions::default()));
}

#[test]
fn fixture_json() {
    let json = render_json(&fixture()).unwrap();
    pim_testkit::report_schema::assert_valid_report(&serde_json::from_str(&json).unwrap());
    pim_snapshot!("fixture_json", json);
}

#[test]
fn json_round_trips_exactly() {
    let r = fixture();
    let json = render_json(&r).unwrap();
    assert!(json.ends_with("}\n"));
    let back: pim_domain::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    // JSON is never capped, whatever the Markdown options.
    assert_eq!(
        json.matches("\"operation\": \"Microsoft.Storage/storageAccounts/listKeys/action\"")
            .count(),
        30 + 1 + 1
    );
}

#[test]
fn header_has_the_run_line() {
    let md = markdown(&MarkdownOptions::default());
    assert!(
        md.contains(
            "- **Run:** 12.4 s; 3 queries, 5321 rows read; 4 model calls (1 retry, 1 failed), 9120 prompt + 610 completion tokens\n"
        ),
        "{md}"
    );
    // Without a model the line says so instead of listing zeros.
    let mut r = fixture();
    r.run.model_calls = 0;
    r.run.queries = 1;
    r.run.query_rows = 1;
    r.run.duration_ms = 187_000;
    let md = Renderer::new()
        .unwrap()
        .render_markdown(&r, &MarkdownOptions::default())
        .unwrap();
    assert!(
        md.contains("- **Run:** 3m 07s; 1 query, 1 row read; no model calls\n"),
        "{md}"
    );
}

#[test]
fn a_1_0_report_without_run_still_reads() {
    let mut value: serde_json::Value =
        serde_json::from_str(&render_json(&fixture()).unwrap()).unwrap();
    assert_eq!(value["schema_version"], "3.0");
    assert_eq!(value["run"]["query_rows"], 5321);
    value["schema_version"] = "1.0".into();
    value.as_object_mut().unwrap().remove("run");
    let old: pim_domain::Report = serde_json::from_value(value).unwrap();
    assert_eq!(old.run, pim_domain::RunSummary::default());
    assert_eq!(old.activations, fixture().activations);
}

#[test]
fn sections_appear_in_order() {
    let md = markdown(&MarkdownOptions::default());
    let positions: Vec<usize> = [
        "# PIM Activity Audit Report",
        "## Summary",
        "## Timeline",
        "## Activations",
        "### 1. ",
        "### 5. ",
        "## How to read this report",
    ]
    .iter()
    .map(|h| md.find(h).unwrap_or_else(|| panic!("missing {h}")))
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn activity_list_is_capped_and_says_so() {
    let md = markdown(&MarkdownOptions {
        max_listed_activities: 10,
    });
    assert!(md.contains("showing 10 of 120 (cap 10)"), "{md}");
    assert!(md.contains("Showing 10 of 120 operations (cap 10)"));
    assert!(md.contains("**Truncated at collection:** 150 operations were found"));
    // The grouped summary counts all 120, not only the listed ten.
    assert!(md.contains("120 operations in 6 groups"), "{md}");
    let default = markdown(&MarkdownOptions::default());
    assert!(default.contains("showing 50 of 120 (cap 50)"));
    // The three-operation activation is listed in full with no cap note.
    assert!(default.contains("3 operations in 2 groups"));
}

#[test]
fn summary_lists_every_value_including_zeros() {
    let r = report(Vec::new(), Vec::new());
    let md = Renderer::new()
        .unwrap()
        .render_markdown(&r, &MarkdownOptions::default())
        .unwrap();
    for v in [
        "aligned",
        "partial",
        "not_aligned",
        "no_activity",
        "unknown",
    ] {
        assert!(md.contains(&format!("| {v} | 0 |")), "{v}");
    }
    for r in ["low", "medium", "high", "critical"] {
        assert!(md.contains(&format!("| {r} | 0 |")), "{r}");
    }
    assert!(md.contains("No activations in the scan window, so there is no timeline."));
    assert!(!md.contains("```mermaid"));
}

#[test]
fn rules_only_is_stated() {
    let mut r = fixture();
    assert!(
        !Renderer::new()
            .unwrap()
            .render_markdown(&r, &MarkdownOptions::default())
            .unwrap()
            .contains("rules engine alone")
    );
    r.settings.assessors = vec!["rules".to_owned()];
    let md = Renderer::new()
        .unwrap()
        .render_markdown(&r, &MarkdownOptions::default())
        .unwrap();
    assert!(md.contains("The deterministic rules engine alone assessed these activations"));
}

#[test]
fn problems_list_is_capped_at_fifty() {
    let mut r = fixture();
    r.problems = (0..70)
        .map(|i| pim_domain::DataProblem::row("AuditLogs.json", i, "bad row"))
        .collect();
    let md = Renderer::new()
        .unwrap()
        .render_markdown(&r, &MarkdownOptions::default())
        .unwrap();
    assert!(md.contains("**Input problems not tied to one activation:** 70 (each activation lists its own below) (showing the first 50)"));
    assert!(md.contains("row 49:"));
    assert!(!md.contains("row 50:"));
    assert!(md.contains("…and 20 more (list capped at 50"));
}

#[test]
fn gantt_has_one_task_per_activation_with_status() {
    let md = markdown(&MarkdownOptions::default());
    let block: Vec<&str> = md
        .split("```mermaid\n")
        .nth(1)
        .unwrap()
        .split("\n```")
        .next()
        .unwrap()
        .lines()
        .collect();
    let tasks: Vec<&&str> = block.iter().filter(|l| l.contains(" :")).collect();
    assert_eq!(tasks.len(), 5);
    assert!(block.contains(&"    Owner :crit, a4, 2026-11-20T13:00:00, 2026-11-20T21:00:00"));
    assert!(
        block.contains(
            &"    User Administrator :active, a5, 2026-11-20T20:30:00, 2026-11-21T00:00:00"
        )
    );
    assert!(block.contains(&"    section Dave Singh"));
}
