use pim_domain::{
    Activity, ActivityStatus, DataProblem, Flag, OperationRef, Risk, RiskFinding, Scope, ScopeKind,
    Verdict,
};
use pim_report::{MarkdownOptions, Renderer};
use time::Duration;

use crate::support::{activation, azure, directory, report, window};

/// Everything an attacker might type, on one string.
fn payload() -> String {
    [
        "ok\n# Heading",
        "\r\n| a | b |",
        "\n![x](http://evil/x.png)",
        "\n<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "``` `code` ```",
        "<!-- --> -->",
        "task :crit, a9, 2020-01-01, 1d; #x",
        "\n%%{init: {'theme':'dark'}}%%",
        "\u{202E}evil\u{202C}",
        "\u{0}\u{7}\u{1b}[31m\u{7f}\u{85}\u{2028}\u{200b}\u{feff}\u{E0041}",
        "\n    indented code",
        "\n> quote\n- item\n1. item\n===",
        "www.evil.com https://evil.example @everyone $x$ [^1] &lt;b&gt;",
        "\\| pipe after backslash \\\\| two",
        "\n```\nfenced\n```\n",
    ]
    .concat()
}

pub(crate) fn hostile_report(text: &str) -> pim_domain::Report {
    let t0 = time::macros::datetime!(2026-11-20 09:00:00 UTC);
    let mut a = activation(
        text,
        Some(text),
        text,
        (text, pim_domain::RoleKind::AzureResource),
        Scope {
            kind: ScopeKind::ResourceGroup,
            id: Some(text.to_owned()),
            display_name: Some(text.to_owned()),
        },
        text,
        window(
            t0,
            t0 + Duration::hours(1),
            pim_domain::EndReason::StillActive,
        ),
    );
    a.role.id = Some(text.to_owned());
    a.tickets = vec![text.to_owned()];
    // Everything a ticket system returns is as untrusted as the justification (issue 14).
    a.ticket_info = Some(pim_domain::TicketInfo {
        number: Some(text.to_owned()),
        system: Some(text.to_owned()),
    });
    let person = pim_domain::TicketPerson {
        name: Some(text.to_owned()),
        email: Some(text.to_owned()),
        user_name: Some(text.to_owned()),
        id: Some(text.to_owned()),
    };
    a.ticket_checks = vec![pim_domain::TicketCheck {
        reference: text.to_owned(),
        origin: pim_domain::TicketOrigin::Justification,
        system: Some(pim_domain::TicketSystemKind::Servicenow),
        status: pim_domain::TicketStatus::Found,
        evidence: Some(pim_domain::TicketEvidence {
            number: text.to_owned(),
            state: Some(text.to_owned()),
            open: Some(false),
            assignee: Some(person.clone()),
            requester: Some(person.clone()),
            caller: Some(person),
            opened_at: Some(t0 - Duration::days(3)),
            closed_at: Some(t0 - Duration::days(1)),
            short_description: Some(text.to_owned()),
        }),
        reason: Some(text.to_owned()),
    }];
    a.request_id = Some(text.to_owned());
    a.correlation_id = Some(text.to_owned());
    let mut act: Activity = azure(t0, text, ActivityStatus::Succeeded, text);
    act.caller = Some(text.into());
    let mut dir = directory(t0, text, text, text);
    dir.caller = Some(text.into());
    a.activities = vec![act, dir];
    a.activity_count = 3;
    let op = OperationRef {
        operation: text.to_owned(),
        resource: Some(text.to_owned()),
        count: 1,
        first: t0,
    };
    a.assessment.verdict = Verdict::NotAligned;
    a.assessment.risk = Risk::Critical;
    a.assessment.flags = vec![Flag::HighRiskOperation, Flag::StillActive];
    a.assessment.rationale = text.to_owned();
    a.assessment.error = Some(text.to_owned());
    a.assessment.disagreements = vec![text.to_owned()];
    a.assessment.evidence.intents = vec![text.to_owned()];
    a.assessment.evidence.named_resources = vec![text.to_owned()];
    a.assessment.evidence.explained = vec![op.clone()];
    a.assessment.evidence.unexplained = vec![op];
    a.assessment.evidence.risk_findings = vec![RiskFinding {
        operation: text.to_owned(),
        resource: Some(text.to_owned()),
        risk: Risk::High,
        rule: text.to_owned(),
        explained: false,
    }];
    let problem = DataProblem::field(text, 1, text, text);
    a.problems = vec![problem.clone()];
    let mut r = report(vec![a.clone(), a], vec![problem]);
    r.report_id = text.to_owned();
    r.generator = text.to_owned();
    r.source.kind = text.to_owned();
    r.source.description = text.to_owned();
    r.settings.assessors = vec![text.to_owned()];
    r.warnings = vec![text.to_owned()];
    r.schema_version = text.to_owned();
    r
}

fn render(text: &str) -> String {
    Renderer::new()
        .unwrap()
        .render_markdown(&hostile_report(text), &MarkdownOptions::default())
        .unwrap()
}

/// Pipes that GitHub's table parser treats as cell separators: not preceded by a backslash that
/// is itself unescaped.
fn separators(line: &str) -> usize {
    let mut count = 0;
    let mut backslashes = 0;
    for c in line.chars() {
        if c == '|' && backslashes % 2 == 0 {
            count += 1;
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
    }
    count
}

/// The line with escaped characters and inline code spans replaced by placeholders (CommonMark: a run of n backticks closes at the next
/// run of exactly n).
fn outside_code(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            // An escaped character is literal text.
            out.push('E');
            i += 2;
            continue;
        }
        if chars[i] == '`' {
            let n = chars[i..].iter().take_while(|c| **c == '`').count();
            let mut j = i + n;
            let mut closed = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let m = chars[j..].iter().take_while(|c| **c == '`').count();
                    if m == n {
                        closed = Some(j + m);
                        break;
                    }
                    j += m;
                } else {
                    j += 1;
                }
            }
            match closed {
                Some(end) => {
                    out.push_str("CODE");
                    i = end;
                }
                None => {
                    // An unclosed run is literal text, which is fine, but we never emit one.
                    panic!("unclosed code span in {line:?}");
                }
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn assert_safe(md: &str, activations: usize) {
    // Headings: only the template's own.
    let headings: Vec<&str> = md
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(headings.len(), 1 + 4 + activations * 3, "{headings:#?}");
    for h in &headings {
        assert!(
            h.starts_with("# PIM Activity Audit Report")
                || [
                    "## Summary",
                    "## Timeline",
                    "## Activations",
                    "## How to read this report",
                    "#### Assessment",
                    "#### Activities"
                ]
                .contains(h)
                || (h.starts_with("### ") && h.chars().nth(4).is_some_and(|c| c.is_ascii_digit())),
            "unexpected heading {h:?}"
        );
    }
    // Tables keep their column count; no other line starts a table row.
    let mut header_pipes = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let n = separators(line);
            match header_pipes {
                None => header_pipes = Some(n),
                Some(h) => assert_eq!(n, h, "column count changed in {line:?}"),
            }
        } else {
            header_pipes = None;
        }
    }
    let mut in_mermaid = false;
    let mut fences = 0;
    for line in md.lines() {
        if line.starts_with("```") {
            fences += 1;
            in_mermaid = line == "```mermaid";
            continue;
        }
        if in_mermaid {
            let t = line.trim_start();
            assert!(line.starts_with("    ") || line == "gantt", "{line:?}");
            if let Some(name) = t.strip_prefix("section ") {
                assert!(!name.contains([':', ';', '#', '%', '`']), "{line:?}");
            } else if !["title", "dateFormat", "axisFormat"]
                .iter()
                .any(|k| t.starts_with(k))
                && t != "gantt"
            {
                let (label, rest) = t.split_once(" :").unwrap();
                assert!(!label.contains([':', ';', '#', '%', '`']), "{line:?}");
                let rest = rest
                    .trim_start_matches("crit, ")
                    .trim_start_matches("active, ");
                assert!(
                    rest.starts_with('a') && rest.split(", ").count() == 3,
                    "{line:?}"
                );
            }
            continue;
        }
        let first = line.trim_start().chars().next();
        assert!(
            !matches!(first, Some('<' | '=' | '+'))
                && (first != Some('*') || line.starts_with("**")),
            "line starts a block from input: {line:?}"
        );
        if line.starts_with('>') {
            assert!(line.starts_with("> "), "{line:?}");
        }
        assert!(!line.starts_with("    "), "indented code: {line:?}");
        let text = outside_code(line);
        for bad in [
            "<script", "<!--", "-->", "](", "![", "[click]", "\u{202E}", "\u{0}", "\u{2028}",
            "http://", "https://", "www.evil", "$x$", "[^1]", "&lt;",
        ] {
            assert!(!text.contains(bad), "{bad:?} unescaped in {line:?}");
        }
    }
    assert_eq!(fences, 2, "only the mermaid fence may open and close");
    assert!(
        !md.chars().any(|c| c.is_control() && c != '\n'),
        "control character survived"
    );
}

#[test]
fn hostile_text_in_every_field_stays_data() {
    let md = render(&payload());
    assert_safe(&md, 2);
    // The justification is still shown, escaped, on one quoted line.
    assert!(
        md.contains(r"> ok\\n\# Heading\\r\\n\| a \| b \|\\n\!\[x\]\(http\://evil/x.png\)"),
        "{md}"
    );
    assert!(md.contains(r"\\u\{202E\}evil\\u\{202C\}"));
}

#[test]
fn each_attack_alone_is_safe() {
    for line in payload().split('\n') {
        for text in [line.to_owned(), format!("\n{line}"), format!("{line}\n")] {
            assert_safe(&render(&text), 2);
        }
    }
}

#[test]
fn huge_fields_are_truncated_in_markdown_only() {
    let huge = format!("{}|", "A`<".repeat(35_000));
    let r = hostile_report(&huge);
    let md = Renderer::new()
        .unwrap()
        .render_markdown(&r, &MarkdownOptions::default())
        .unwrap();
    assert_safe(&md, 2);
    assert!(
        md.contains(r"…\(101001 more chars\)"),
        "justification cap missing"
    );
    assert!(md.len() < 400_000, "markdown is {} bytes", md.len());
    let json = pim_report::render_json(&r).unwrap();
    assert!(json.contains(&huge.replace('"', "\\\"")));
}

#[test]
fn empty_and_whitespace_fields_keep_tables_whole() {
    for text in ["", " ", "\n", "|", "`", "\\"] {
        assert_safe(&render(text), 2);
    }
}
