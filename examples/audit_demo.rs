//! Audits the bundled demo tenant through the `pim-core` embedding API and prints the findings,
//! then the Markdown report. Runs offline: `cargo run -p pim-examples --example audit_demo`.

use pim_core::{Auditor, MarkdownOptions, ReportFormat, ScanOptions, demo_source, render};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = demo_source()?;
    // The demo has a fixed end so that its report is reproducible; a real source would use now.
    let end = source
        .info()
        .default_end
        .ok_or("the demo tenant has no fixed end")?;
    let auditor = Auditor::builder(source).build();
    let report = auditor.scan(&ScanOptions::new(end), end).await?;

    eprintln!(
        "{} activations, {} findings, {} input problems",
        report.summary.activations, report.summary.findings, report.summary.problems
    );
    for a in report.activations.iter().filter(|a| a.is_finding()) {
        eprintln!(
            "  {:<40} {:<32} {:<12} {:<8} {}",
            a.principal.label(),
            a.role.name,
            a.assessment.verdict.as_str(),
            a.assessment.risk.as_str(),
            a.assessment
                .flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    print!(
        "{}",
        render(
            &report,
            ReportFormat::Markdown,
            None,
            &MarkdownOptions::default()
        )?
    );
    Ok(())
}
