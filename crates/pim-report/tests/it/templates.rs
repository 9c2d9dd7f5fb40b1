use std::path::PathBuf;

use pim_report::{Error, MarkdownOptions, Renderer};

use crate::support::fixture;

fn temp_file(name: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("pim-report-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn missing_template_names_the_file() {
    let path = PathBuf::from("/nonexistent/dir/custom.md.tera");
    let err = Renderer::with_template(&path).unwrap_err();
    assert!(matches!(err, Error::ReadTemplate { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/dir/custom.md.tera"), "{msg}");
    assert!(msg.contains("No such file"), "{msg}");
}

#[test]
fn syntax_error_names_the_file_and_line() {
    let path = temp_file(
        "broken.md.tera",
        "# Report\n\n{{ report_id | md_code \n{% if %}\n",
    );
    let err = Renderer::with_template(&path).unwrap_err();
    std::fs::remove_file(&path).ok();
    let Error::Template { name, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(name, &path.display().to_string());
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    // The cause (from tera's source chain) with its position, not only "Failed to parse".
    assert!(message.contains("Failed to parse"), "{message}");
    assert!(message.contains("--> 4:"), "{message}");
}

#[test]
fn custom_template_renders_with_our_filters_and_includes() {
    let path = temp_file(
        "custom.md.tera",
        "Report {{ report_id | md_code }}: {{ summary.findings }} findings\n{% for a in activations %}{% include \"activation.md.tera\" %}{% endfor %}",
    );
    let renderer = Renderer::with_template(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let md = renderer
        .render_markdown(&fixture(), &MarkdownOptions::default())
        .unwrap();
    assert!(
        md.starts_with("Report `rpt-2026-11-20-7f3a`: 4 findings\n\n### 1. "),
        "{md}"
    );
}

#[test]
fn unknown_variable_is_a_render_error_with_the_cause() {
    let renderer = Renderer::from_template_str("t.md.tera", "{{ nope }}").unwrap();
    let err = renderer
        .render_markdown(&fixture(), &MarkdownOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Render { .. }));
    assert!(msg.contains("t.md.tera") && msg.contains("nope"), "{msg}");
}
