use pim_core::{Auditor, MarkdownOptions, ReportFormat, ScanOptions, demo_source, render};

/// Snapshot with the settings every report snapshot shares.
macro_rules! pim_snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

async fn demo_report() -> pim_core::domain::Report {
    let source = demo_source().unwrap();
    let end = source.info().default_end.unwrap();
    let mut report = Auditor::builder(source)
        .build()
        .scan(&ScanOptions::new(end), end)
        .await
        .unwrap();
    // The one non-deterministic number in a report; everything else in `run` is fixed by the
    // demo data and stays in the snapshot.
    report.run.duration_ms = 0;
    report
}

#[tokio::test]
async fn demo_markdown() {
    let report = demo_report().await;
    let md = render(
        &report,
        ReportFormat::Markdown,
        None,
        &MarkdownOptions::default(),
    )
    .unwrap();
    pim_snapshot!("demo_report.md", md);
}

#[tokio::test]
async fn demo_json() {
    let mut report = demo_report().await;
    // The whole demo report (every operation) is a valid report per docs/report.schema.json.
    let full = render(
        &report,
        ReportFormat::Json,
        None,
        &MarkdownOptions::default(),
    )
    .unwrap();
    pim_testkit::report_schema::assert_valid_report(&serde_json::from_str(&full).unwrap());
    // The runaway script's 5,000 operations (and their 5,000 evidence entries) are all alike:
    // keep three so the snapshot stays reviewable; the count fields still show the real numbers.
    for a in &mut report.activations {
        a.activities.truncate(3);
        a.assessment.evidence.explained.truncate(3);
    }
    let json = render(
        &report,
        ReportFormat::Json,
        None,
        &MarkdownOptions::default(),
    )
    .unwrap();
    pim_snapshot!("demo_report.json", json);
}
