//! The text form of an [`Answer`]: exactly what `pim-chat` prints.
//!
//! Untrusted text inside an answer (names, justifications, operations, cells, the model's
//! words) is made printable here, at the point it becomes text: control, bidi and zero-width
//! characters are shown escaped and long values are cut, as the terminal and the Markdown
//! report show them (issue 9). The front end still escapes the whole text once more for its
//! terminal.

use std::fmt::Write as _;

use pim_domain::{ActivationReport, ActivityStatus};
use time::OffsetDateTime;

use crate::answer::{
    Answer, Problem, QueryAnswer, ReportCounts, ScanSummary, Summary, UserActivations,
};
use crate::nl::{format_table, truncate};

/// Kinds of operation listed per activation by "what did X do".
const MAX_OPERATION_GROUPS: usize = 15;
/// Characters of a justification shown in listings.
const REASON_CHARS: usize = 90;

const HELP: &str = "Commands:
  scan [hours]            list the identities that activated a PIM role (default window from the options)
  what did <user> do      their activity in the elevation window; <user> is a UPN, a number from the
                          list (\"what did 2 do\"), or \"they\" for the user last discussed
  does their activity align with the reason?
  assess [user]           verdict, risk, flags and rationale
  report [path]           the Markdown report of the last scan (printed, or written to a new file)
  report! path            the same, replacing an existing file (or writing through a symlink)
  show kql                the last query run
  help, exit
Anything else is a question for the model, which answers with a checked KQL query and its results.";

/// The text of `answer`, as `pim-chat` prints it (without a trailing newline).
///
/// ```
/// use pim_agent::{Answer, render_text};
///
/// assert_eq!(render_text(&Answer::Exit), "Bye.");
/// assert_eq!(render_text(&Answer::LastQuery { kql: None }), "No query has run yet.");
/// ```
pub fn render_text(answer: &Answer) -> String {
    match answer {
        Answer::Nothing => String::new(),
        Answer::Help => HELP.to_owned(),
        Answer::Exit => "Bye.".to_owned(),
        Answer::LastQuery { kql } => kql
            .clone()
            .unwrap_or_else(|| "No query has run yet.".to_owned()),
        Answer::Scan(scan) => scan_text(scan),
        Answer::Activity(user) => activity_text(user),
        Answer::Assessment(user) => assessment_text(user),
        Answer::Report { markdown, .. } => markdown.trim_end().to_owned(),
        Answer::ReportSaved {
            path,
            through_link,
            counts:
                ReportCounts {
                    activations,
                    findings,
                },
        } => {
            let through = through_link
                .as_ref()
                .map(|target| format!(" (through the link, into {target})"))
                .unwrap_or_default();
            format!(
                "Wrote the Markdown report ({activations} activation{}, {findings} finding{}) to {path}{through}.",
                plural(*activations),
                plural(*findings)
            )
        }
        Answer::NeedsConfirmation { reason, confirm } => format!(
            "Not written: {reason}. Type `{}` to replace it, or choose another path.",
            confirm.line
        ),
        Answer::Query(query) => query_text(query),
        Answer::Problem(problem) => problem_text(problem),
    }
}

fn scan_text(scan: &ScanSummary) -> String {
    let identities = scan.identities.len();
    let mut out = format!(
        "Scanned {} to {} ({} h, {}): {} activation{} by {} identit{}, {} finding{}.\n",
        short_time(scan.window.start),
        short_time(scan.window.end),
        scan.hours,
        printable(&scan.source),
        scan.activations,
        plural(scan.activations),
        identities,
        if identities == 1 { "y" } else { "ies" },
        scan.findings,
        plural(scan.findings),
    );
    for warning in &scan.warnings {
        let _ = writeln!(out, "Warning: {}", printable(warning));
    }
    if scan.identities.is_empty() {
        out.push_str("No PIM role was activated in this window.");
    }
    for user in &scan.identities {
        let number = format!("{:>2}. ", user.number);
        let label = printable(&user.label);
        if let [only] = user.activations.as_slice() {
            let _ = writeln!(
                out,
                "{number}{label} — {}",
                activation_line(only, scan.window.end)
            );
        } else {
            let _ = writeln!(
                out,
                "{number}{label} — {} activations:",
                user.activations.len()
            );
            for a in &user.activations {
                let _ = writeln!(out, "      {}", activation_line(a, scan.window.end));
            }
        }
    }
    if !scan.identities.is_empty() {
        out.push_str(
            "Ask \"what did 2 do\", \"does their activity align with the reason?\", or any question.",
        );
    }
    out.trim_end().to_owned()
}

fn activity_text(user: &UserActivations) -> String {
    let found = user.activations.len();
    let mut out = format!(
        "{} — {} activation{} in the scan window:\n",
        printable(&user.user),
        found,
        plural(found)
    );
    for a in &user.activations {
        let _ = writeln!(
            out,
            "{}, window {} to {}{}",
            role_label(a),
            short_time(a.window.start),
            short_time(a.window.end),
            if a.window.assumed {
                " (end assumed)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "  Reason given: {}", quoted_reason(&a.justification));
        out.push_str(&operations(a));
    }
    out.trim_end().to_owned()
}

fn assessment_text(user: &UserActivations) -> String {
    let mut out = String::new();
    for a in &user.activations {
        let s = &a.assessment;
        let flags = if s.flags.is_empty() {
            "none".to_owned()
        } else {
            s.flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "{} — {}:", printable(&user.user), role_label(a));
        let _ = writeln!(
            out,
            "  Verdict: {} · risk: {} · flags: {flags} (assessed by {})",
            s.verdict, s.risk, s.assessor
        );
        let _ = writeln!(out, "  Reason given: {}", quoted_reason(&a.justification));
        let _ = writeln!(out, "  Rationale: {}", printable(&s.rationale));
        if let Some(error) = &s.error {
            let _ = writeln!(out, "  Note: {}", printable(error));
        }
    }
    out.trim_end().to_owned()
}

fn query_text(query: &QueryAnswer) -> String {
    let mut out = format_table(&query.table, query.max_rows);
    if let Some(partial) = &query.partial_error {
        let _ = writeln!(out, "(partial result: {})", printable(partial));
    }
    out.push('\n');
    out.push_str(&summary_text(&query.summary));
    out.trim_end().to_owned()
}

/// The model's words as printed, and as kept in the history sent with the next question: line
/// breaks kept, escape sequences and every other unsafe character (control, bidi, zero-width)
/// made a space.
pub(crate) fn summary_text(summary: &Summary) -> String {
    match summary {
        Summary::Text(text) => text
            .chars()
            .map(|c| {
                if c != '\n' && pim_domain::text::is_unsafe(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect(),
        Summary::Empty => "(the model gave no summary)".to_owned(),
        Summary::Failed(reason) => {
            format!("(no summary: the model could not be reached: {reason})")
        }
    }
}

fn problem_text(problem: &Problem) -> String {
    match problem {
        Problem::ScanRefused { reason } => format!("Cannot scan: {reason}."),
        Problem::ScanFailed { reason } => format!("The scan failed: {reason}."),
        Problem::UnknownUser { reason } => capitalise(&format!("{reason}.")),
        Problem::NotActivated { user, window } => {
            let window = window
                .map(|w| {
                    format!(
                        " between {} and {}",
                        short_time(w.start),
                        short_time(w.end)
                    )
                })
                .unwrap_or_default();
            format!("{} did not activate a PIM role{window}.", printable(user))
        }
        Problem::NothingToReport => "Nothing to report yet: run `scan` first.".to_owned(),
        Problem::RenderFailed { reason } => format!("Could not render the report: {reason}."),
        Problem::WriteFailed { reason, .. } => format!("Could not write the report: {reason}."),
        Problem::NoModel => "Answering free-form questions needs a model, and none is configured. Set \
                    AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT (Azure OpenAI), or \
                    OPENAI_BASE_URL and OPENAI_MODEL (any OpenAI-compatible endpoint), then start \
                    again. The commands (type `help`) work without one."
            .to_owned(),
        Problem::NoWorkspace => "Free-form questions run KQL, which needs a Log Analytics workspace: the demo tenant and \
     offline exports only answer the built-in commands (type `help`). Set \
     LOG_ANALYTICS_WORKSPACE_ID to query a workspace."
            .to_owned(),
        Problem::ModelUnreachable { reason } => {
            format!("The model could not be reached: {reason}.")
        }
        Problem::QueryFailed { reason } => format!("The query could not run: {reason}."),
        Problem::NoWorkingQuery {
            repairs,
            last_problem,
        } => format!(
            "I could not get a working query after {repairs} repair{}: {}. Type `show kql` to see the last query, or rephrase the question.",
            plural(*repairs),
            printable(last_problem)
        ),
    }
}

fn role_label(a: &ActivationReport) -> String {
    let scope = a
        .scope
        .display_name
        .as_deref()
        .or(a.scope.id.as_deref())
        .map(str::to_owned)
        .unwrap_or_else(|| a.scope.label());
    printable(&format!("{} on {scope}", a.role.name))
}

fn activation_line(a: &ActivationReport, end: OffsetDateTime) -> String {
    let finding = if a.is_finding() {
        format!(
            "  [{}, {} risk]",
            a.assessment.verdict.as_str().replace('_', " "),
            a.assessment.risk
        )
    } else {
        String::new()
    };
    format!(
        "{}, activated {}, reason: {}{finding}",
        role_label(a),
        ago(end, a.activated_at),
        quoted_reason(&a.justification)
    )
}

/// Untrusted text on one line with control, bidi and zero-width characters shown escaped
/// (`\u{001B}`, `\n`), as the terminal and the Markdown show them (issue 9).
fn printable(text: &str) -> String {
    pim_core::terminal_line(text, usize::MAX)
}

/// The justification as the user's own words: quoted, printable and shortened.
fn quoted_reason(justification: &str) -> String {
    let text = printable(justification.trim());
    if text.is_empty() {
        "(none given)".to_owned()
    } else {
        format!("\"{}\"", truncate(&text, REASON_CHARS))
    }
}

/// The operations of one activation, grouped by operation, target and outcome, capped.
fn operations(a: &ActivationReport) -> String {
    if a.activities.is_empty() {
        return "  No operations were logged in this window.\n".to_owned();
    }
    struct Group {
        first: OffsetDateTime,
        operation: String,
        target: String,
        failed: bool,
        count: usize,
    }
    let mut groups: Vec<Group> = Vec::new();
    for act in &a.activities {
        let target = act
            .resource_name()
            .map(str::to_owned)
            .or_else(|| act.targets.iter().find_map(|t| t.name.clone()))
            .unwrap_or_default();
        let failed = act.status == ActivityStatus::Failed;
        match groups
            .iter_mut()
            .find(|g| g.operation == act.operation && g.target == target && g.failed == failed)
        {
            Some(g) => g.count += 1,
            None => groups.push(Group {
                first: act.time,
                operation: act.operation.as_str().to_owned(),
                target,
                failed,
                count: 1,
            }),
        }
    }
    let mut out = format!(
        "  {} operation{}:\n",
        a.activity_count,
        plural(a.activity_count)
    );
    if a.activity_count > a.activities.len() {
        let _ = writeln!(out, "  (the first {} are kept)", a.activities.len());
    }
    for g in groups.iter().take(MAX_OPERATION_GROUPS) {
        let mut line = format!(
            "  {}  {}",
            clock(g.first),
            truncate(&printable(&g.operation), 70)
        );
        if !g.target.is_empty() {
            let _ = write!(line, "  {}", truncate(&printable(&g.target), 40));
        }
        if g.count > 1 {
            let _ = write!(line, "  ×{}", g.count);
        }
        if g.failed {
            line.push_str("  (failed)");
        }
        out.push_str(&line);
        out.push('\n');
    }
    if groups.len() > MAX_OPERATION_GROUPS {
        let more = groups.len() - MAX_OPERATION_GROUPS;
        let _ = writeln!(out, "  … {more} more kind{} of operation", plural(more));
    }
    out
}

/// "2h 10m ago" from `t` to `end`.
fn ago(end: OffsetDateTime, t: OffsetDateTime) -> String {
    let minutes = (end - t).whole_minutes();
    if minutes < 0 {
        return "after the scan end".to_owned();
    }
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, 0) => "just now".to_owned(),
        (0, 0, m) => format!("{m}m ago"),
        (0, h, m) => format!("{h}h {m}m ago"),
        (d, h, _) => format!("{d}d {h}h ago"),
    }
}

/// `2026-11-20 09:13 UTC`.
fn short_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `09:13` (UTC).
fn clock(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        let end = datetime!(2026-11-20 18:00 UTC);
        assert_eq!(ago(end, datetime!(2026-11-20 15:50 UTC)), "2h 10m ago");
        assert_eq!(ago(end, datetime!(2026-11-20 17:55 UTC)), "5m ago");
        assert_eq!(ago(end, end), "just now");
        assert_eq!(ago(end, datetime!(2026-11-19 14:00 UTC)), "1d 4h ago");
        assert_eq!(
            ago(end, datetime!(2026-11-20 19:00 UTC)),
            "after the scan end"
        );
    }

    #[test]
    fn reasons_are_quoted_cut_and_printable() {
        assert_eq!(quoted_reason("  "), "(none given)");
        let r = quoted_reason(&format!("fix\u{1b}[2J{}", "y".repeat(200)));
        // Issue 9: the escape character is shown escaped (it was a space).
        assert!(r.starts_with("\"fix\\u{001B}[2Jy"), "{r}");
        assert!(!r.contains('\u{1b}'));
        assert!(r.ends_with("…\""));
        assert_eq!(r.chars().count(), REASON_CHARS + 2);
    }

    // Issue 9: the completion menu draws words raw, so names that need escaping are left out.
}
