//! One conversation: the last scan, who was listed and discussed, the last query, and the
//! exchanges that go to the model with a free-form question.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use pim_domain::{ActivationReport, ActivityStatus, Report, Table, TimeRange};
use pim_kql::check::check_query;
use pim_loganalytics::{KqlSource, LogQuery};
use pim_openai::{ChatMessage, ChatModel, ChatRequest};
use time::{Duration, OffsetDateTime};
use tracing::debug;

use super::cache::ScanCache;
use super::context::{Listed, resolve};
use super::intent::{Intent, UserRef, parse_intent};
use super::nl::{
    ANSWER_SYSTEM_PROMPT, answer_prompt, extract_kql, format_table, kql_system_prompt,
    missing_query_prompt, oversized_prompt, oversized_result, rejection_prompt, repair_prompt,
    truncate,
};
use super::save::{SaveError, save};
use super::{COMMANDS, Confirm, Outcome, SessionOptions};
use crate::{Auditor, MarkdownOptions, ReportFormat, ScanOptions};

/// Longest user name offered for Tab completion.
const MAX_COMPLETION_CHARS: usize = 200;
/// Rows of a result handed to the model for the answer in words.
const ANSWER_ROWS: usize = 20;
/// Kinds of operation listed per activation by "what did X do".
const MAX_OPERATION_GROUPS: usize = 15;
/// Characters of a justification shown in listings.
const REASON_CHARS: usize = 90;
/// Characters of a command's output kept in the history sent to the model.
const HISTORY_CHARS: usize = 2_000;
/// How far back a free-form query may read (the query API's `timespan`); the KQL's own time
/// filter narrows it.
const QUESTION_LOOKBACK_DAYS: i64 = 90;

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

/// One investigation conversation. Create one per user; many can share one [`Auditor`],
/// source and model.
#[derive(Debug)]
pub struct Session {
    auditor: Arc<Auditor>,
    source: Arc<dyn KqlSource>,
    model: Option<Arc<dyn ChatModel>>,
    options: SessionOptions,
    report: Option<Arc<Report>>,
    scan_hours: u32,
    listed: Vec<Listed>,
    current: Option<String>,
    last_kql: Option<String>,
    history: VecDeque<(String, String)>,
    scans: Option<Arc<ScanCache>>,
}

impl Session {
    /// A new conversation. `source` answers free-form queries (the auditor's own source, as a
    /// rule); without `model`, free-form questions get a message saying how to configure one.
    pub fn new(
        auditor: Arc<Auditor>,
        source: Arc<dyn KqlSource>,
        model: Option<Arc<dyn ChatModel>>,
        options: SessionOptions,
    ) -> Self {
        let scan_hours = options.hours;
        Self {
            auditor,
            source,
            model,
            options,
            report: None,
            scan_hours,
            listed: Vec::new(),
            current: None,
            last_kql: None,
            history: VecDeque::new(),
            scans: None,
        }
    }

    /// Shares identical scans with the other sessions holding `cache` (a bot or web service
    /// hosting many analysts gives them all one cache).
    pub fn with_scan_cache(mut self, cache: Arc<ScanCache>) -> Self {
        self.scans = Some(cache);
        self
    }

    /// Handles one line typed by the user. `now` is the caller's clock: it ends the scan window
    /// unless [`SessionOptions::end`] fixes it. Never fails: problems are explained in the text.
    pub async fn handle_line(&mut self, line: &str, now: OffsetDateTime) -> Outcome {
        let intent = parse_intent(line);
        let text = match &intent {
            Intent::Empty => return Outcome::say(""),
            Intent::Exit => {
                return Outcome {
                    text: "Bye.".to_owned(),
                    exit: true,
                    confirm: None,
                };
            }
            Intent::Help => return Outcome::say(HELP),
            Intent::ShowKql => {
                return Outcome::say(
                    self.last_kql
                        .clone()
                        .unwrap_or_else(|| "No query has run yet.".to_owned()),
                );
            }
            Intent::Question(question) => return Outcome::say(self.question(question, now).await),
            Intent::Scan { hours } => self.scan_command(*hours, now).await,
            Intent::WhatDid(user) => self.what_did(user, now).await,
            Intent::Assess(user) => self.assess(user, now).await,
            Intent::Report { path, overwrite } => {
                let (text, confirm) = self.report(path.as_deref(), *overwrite);
                self.remember(line.trim(), &text);
                return Outcome {
                    text,
                    exit: false,
                    confirm,
                };
            }
        };
        // Commands go into the history too, so that a later question can say "their".
        self.remember(line.trim(), &text);
        Outcome::say(text)
    }

    /// Words for Tab completion: the commands, then the users the last scan found.
    pub fn completions(&self) -> Vec<String> {
        let mut words: Vec<String> = COMMANDS.iter().map(|c| (*c).to_owned()).collect();
        if let Some(report) = &self.report {
            for a in &report.activations {
                let label = a.principal.label().to_owned();
                // "unknown" is the placeholder for an activation without any identity. The menu
                // draws words raw on the terminal, so a name that would need escaping there
                // (control, bidi, zero-width characters) or is overlong is not offered (issue 9).
                let drawable = label.chars().count() <= MAX_COMPLETION_CHARS
                    && crate::terminal_line(&label, MAX_COMPLETION_CHARS) == label;
                if a.principal.upn.is_some() && drawable && !words.contains(&label) {
                    words.push(label);
                }
            }
        }
        words
    }

    /// The last query run: the scan's PIM query, or the last free-form query attempted.
    pub fn last_kql(&self) -> Option<&str> {
        self.last_kql.as_deref()
    }

    fn end(&self, now: OffsetDateTime) -> OffsetDateTime {
        self.options.end.unwrap_or(now)
    }

    fn remember(&mut self, question: &str, answer: &str) {
        if self.options.history_turns == 0 {
            return;
        }
        self.history
            .push_back((question.to_owned(), truncate(answer, HISTORY_CHARS)));
        while self.history.len() > self.options.history_turns {
            self.history.pop_front();
        }
    }

    async fn run_scan(&mut self, hours: u32, now: OffsetDateTime) -> Result<(), String> {
        let mut options = ScanOptions::new(self.end(now));
        options.hours = hours;
        options
            .validate()
            .map_err(|e| format!("Cannot scan: {e}."))?;
        let pim_range = TimeRange::new(
            options.end
                - Duration::hours(i64::from(options.hours) + i64::from(options.lookback_hours)),
            options.end,
        );
        self.last_kql = Some(format!(
            "{}\n// …then one AzureActivity query and one AuditLogs query for the activity of the identities found.",
            pim_kql::pim_events_query(pim_range)
        ));
        let report = match &self.scans {
            Some(cache) => cache
                .scan(&self.auditor, &options, now)
                .await
                .map_err(|e| format!("The scan failed: {e}."))?,
            None => Arc::new(
                self.auditor
                    .scan(&options, now)
                    .await
                    .map_err(|e| format!("The scan failed: {e}."))?,
            ),
        };
        self.scan_hours = hours;
        self.report = Some(report);
        Ok(())
    }

    async fn scan_command(&mut self, hours: Option<u32>, now: OffsetDateTime) -> String {
        let hours = hours.unwrap_or(self.options.hours);
        if let Err(message) = self.run_scan(hours, now).await {
            return message;
        }
        let Some(report) = &self.report else {
            return "The scan produced no report.".to_owned();
        };
        let mut listed: Vec<Listed> = Vec::new();
        for a in &report.activations {
            let label = a.principal.label();
            if !listed.iter().any(|l| l.label == label) {
                listed.push(Listed {
                    label: label.to_owned(),
                    display_name: a.principal.display_name.clone(),
                });
            }
        }
        let mut out = format!(
            "Scanned {} to {} ({hours} h, {}): {} activation{} by {} identit{}, {} finding{}.\n",
            short_time(report.window.start),
            short_time(report.window.end),
            printable(&report.source.description),
            report.summary.activations,
            plural(report.summary.activations),
            listed.len(),
            if listed.len() == 1 { "y" } else { "ies" },
            report.summary.findings,
            plural(report.summary.findings),
        );
        for warning in &report.warnings {
            let _ = writeln!(out, "Warning: {}", printable(warning));
        }
        if listed.is_empty() {
            out.push_str("No PIM role was activated in this window.");
        }
        for (i, user) in listed.iter().enumerate() {
            let mine: Vec<&ActivationReport> = report
                .activations
                .iter()
                .filter(|a| a.principal.label() == user.label)
                .collect();
            let number = format!("{:>2}. ", i + 1);
            let label = printable(&user.label);
            if let [only] = mine.as_slice() {
                let _ = writeln!(
                    out,
                    "{number}{label} — {}",
                    activation_line(only, report.window.end)
                );
            } else {
                let _ = writeln!(out, "{number}{label} — {} activations:", mine.len());
                for a in mine {
                    let _ = writeln!(out, "      {}", activation_line(a, report.window.end));
                }
            }
        }
        if !listed.is_empty() {
            out.push_str(
                "Ask \"what did 2 do\", \"does their activity align with the reason?\", or any question.",
            );
        }
        // After a listing, "they" means the only user listed, else whoever was discussed before.
        if let [only] = listed.as_slice() {
            self.current = Some(only.label.clone());
        }
        self.listed = listed;
        out.trim_end().to_owned()
    }

    /// The indices of `label`'s activations in the last report, scanning first when there is
    /// no report, or when the user is not in a report whose window has since moved on.
    async fn activations_of(
        &mut self,
        label: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<usize>, String> {
        let find = |report: &Report| -> Vec<usize> {
            report
                .activations
                .iter()
                .enumerate()
                .filter(|(_, a)| is_user(a, label))
                .map(|(i, _)| i)
                .collect()
        };
        let end = self.end(now);
        let (found, fresh) = match &self.report {
            Some(report) => (find(report), report.window.end == end),
            None => (Vec::new(), false),
        };
        if !found.is_empty() || fresh {
            return Ok(found);
        }
        self.run_scan(self.scan_hours, now).await?;
        Ok(self.report.as_deref().map(find).unwrap_or_default())
    }

    /// Resolves `user`, makes them the user discussed, and finds their activations.
    async fn user_activations(
        &mut self,
        user: &UserRef,
        now: OffsetDateTime,
    ) -> Result<(String, Vec<usize>), String> {
        let label = resolve(user, &self.listed, self.current.as_deref())
            .map_err(|e| capitalise(&format!("{e}.")))?;
        self.current = Some(label.clone());
        let found = self.activations_of(&label, now).await?;
        if found.is_empty() {
            let window = self
                .report
                .as_ref()
                .map(|r| {
                    format!(
                        " between {} and {}",
                        short_time(r.window.start),
                        short_time(r.window.end)
                    )
                })
                .unwrap_or_default();
            return Err(format!(
                "{} did not activate a PIM role{window}.",
                printable(&label)
            ));
        }
        Ok((label, found))
    }

    async fn what_did(&mut self, user: &UserRef, now: OffsetDateTime) -> String {
        let (label, found) = match self.user_activations(user, now).await {
            Ok(x) => x,
            Err(message) => return message,
        };
        let Some(report) = &self.report else {
            return String::new();
        };
        let mut out = format!(
            "{} — {} activation{} in the scan window:\n",
            printable(&label),
            found.len(),
            plural(found.len())
        );
        for a in found.iter().filter_map(|&i| report.activations.get(i)) {
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

    async fn assess(&mut self, user: &UserRef, now: OffsetDateTime) -> String {
        let (label, found) = match self.user_activations(user, now).await {
            Ok(x) => x,
            Err(message) => return message,
        };
        let Some(report) = &self.report else {
            return String::new();
        };
        let mut out = String::new();
        for a in found.iter().filter_map(|&i| report.activations.get(i)) {
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
            let _ = writeln!(out, "{} — {}:", printable(&label), role_label(a));
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

    /// `report [path]` / `report! path`: the Markdown printed, or written under the rules of
    /// [`save`](super::save) (never replacing a file or following a symlink unless asked).
    /// Returns the answer and, when the write was refused pending a yes, what to ask.
    fn report(&self, path: Option<&str>, overwrite: bool) -> (String, Option<Confirm>) {
        let Some(report) = &self.report else {
            return ("Nothing to report yet: run `scan` first.".to_owned(), None);
        };
        let markdown = match crate::render(
            report,
            ReportFormat::Markdown,
            None,
            &MarkdownOptions::default(),
        ) {
            Ok(m) => m,
            Err(e) => return (format!("Could not render the report: {e}."), None),
        };
        let Some(path) = path else {
            return (markdown.trim_end().to_owned(), None);
        };
        match save(path, markdown.as_bytes(), overwrite) {
            Ok(written) => {
                let through = written
                    .map(|target| format!(" (through the link, into {})", target.display()))
                    .unwrap_or_default();
                (
                    format!(
                        "Wrote the Markdown report ({} activation{}, {} finding{}) to {path}{through}.",
                        report.summary.activations,
                        plural(report.summary.activations),
                        report.summary.findings,
                        plural(report.summary.findings)
                    ),
                    None,
                )
            }
            Err(e) if e.can_confirm() => {
                let what = if matches!(e, SaveError::Symlink { .. }) {
                    "Write through the link"
                } else {
                    "Overwrite it"
                };
                (
                    format!(
                        "Not written: {e}. Type `report! {path}` to replace it, or choose another path."
                    ),
                    Some(Confirm {
                        question: format!("{e}. {what}?"),
                        line: format!("report! {path}"),
                    }),
                )
            }
            Err(e) => (format!("Could not write the report: {e}."), None),
        }
    }

    async fn question(&mut self, question: &str, now: OffsetDateTime) -> String {
        let Some(model) = self.model.clone() else {
            return "Answering free-form questions needs a model, and none is configured. Set \
                    AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT (Azure OpenAI), or \
                    OPENAI_BASE_URL and OPENAI_MODEL (any OpenAI-compatible endpoint), then start \
                    again. The commands (type `help`) work without one."
                .to_owned();
        };
        if !self.source.capabilities().runs_arbitrary_kql {
            return needs_workspace();
        }
        let end = self.end(now);
        let mut messages = vec![ChatMessage::system(kql_system_prompt(end))];
        if let Some(current) = &self.current {
            messages.push(ChatMessage::system(format!(
                "The user last discussed (\"they\", \"their\") is {current}."
            )));
        }
        for (q, a) in &self.history {
            messages.push(ChatMessage::user(q.clone()));
            messages.push(ChatMessage::assistant(a.clone()));
        }
        messages.push(ChatMessage::user(question.to_owned()));
        let timespan = TimeRange::new(end - Duration::days(QUESTION_LOOKBACK_DAYS), end);

        let attempts = self.options.max_repairs.saturating_add(1);
        let mut last_problem = String::new();
        let mut result = None;
        for attempt in 1..=attempts {
            let answer = match model.complete(&ChatRequest::new(messages.clone())).await {
                Ok(r) => r.content.unwrap_or_default(),
                Err(e) => return format!("The model could not be reached: {e}."),
            };
            messages.push(ChatMessage::assistant(answer.clone()));
            let Some(kql) = extract_kql(&answer) else {
                debug!(attempt, "the model's answer held no query");
                last_problem = "the model did not write a query".to_owned();
                messages.push(ChatMessage::user(missing_query_prompt()));
                continue;
            };
            let checked = match check_query(&kql, &self.options.query_policy) {
                Ok(checked) => checked,
                Err(rejection) => {
                    debug!(attempt, kql = %kql, reason = %rejection, "query refused by the checks");
                    last_problem = format!("the query was refused: {rejection}");
                    messages.push(ChatMessage::user(rejection_prompt(
                        &kql,
                        &rejection.to_string(),
                    )));
                    continue;
                }
            };
            debug!(attempt, kql = %checked.kql, "running a free-form query");
            self.last_kql = Some(checked.kql.clone());
            let query = LogQuery {
                label: "question".to_owned(),
                table: None,
                kql: checked.kql.clone(),
                timespan,
                scope: None,
            };
            match self.source.query(&query).await {
                Ok(outcome) => {
                    // One row can hold everything: the size is capped as well as the rows.
                    let max_bytes = self.options.query_policy.max_result_bytes;
                    if let Some(problem) = oversized_result(&outcome.tables, max_bytes) {
                        debug!(attempt, reason = %problem, "query result refused by size");
                        last_problem = format!("the result was refused: {problem}");
                        messages.push(ChatMessage::user(oversized_prompt(&checked.kql, &problem)));
                        continue;
                    }
                    result = Some((checked.kql, outcome));
                    break;
                }
                Err(e) => match innermost(&e) {
                    pim_loganalytics::Error::BadQuery {
                        message,
                        line,
                        pos,
                        token,
                        ..
                    } => {
                        let detail = bad_query_detail(message, *line, *pos, token.as_deref());
                        debug!(attempt, error = %detail, "free-form query failed");
                        last_problem = format!("the last query failed: {detail}");
                        messages.push(ChatMessage::user(repair_prompt(&checked.kql, &detail)));
                    }
                    pim_loganalytics::Error::Unsupported { .. } => return needs_workspace(),
                    _ => return format!("The query could not run: {e}."),
                },
            }
        }
        let Some((kql, outcome)) = result else {
            return format!(
                "I could not get a working query after {} repair{}: {}. Type `show kql` to see the last query, or rephrase the question.",
                self.options.max_repairs,
                plural(self.options.max_repairs),
                printable(&last_problem)
            );
        };
        let table = outcome.tables.into_iter().next().unwrap_or_default();
        let mut out = format_table(&table, self.options.max_table_rows);
        if let Some(partial) = &outcome.partial_error {
            let _ = writeln!(out, "(partial result: {})", printable(partial));
        }
        let words = self.answer_in_words(&*model, question, &table).await;
        out.push('\n');
        out.push_str(&words);
        self.remember(question, &format!("```kql\n{kql}\n```\n{words}"));
        out.trim_end().to_owned()
    }

    async fn answer_in_words(
        &self,
        model: &dyn ChatModel,
        question: &str,
        table: &Table,
    ) -> String {
        let request = ChatRequest::new(vec![
            ChatMessage::system(ANSWER_SYSTEM_PROMPT),
            ChatMessage::user(answer_prompt(question, table, ANSWER_ROWS)),
        ]);
        match model.complete(&request).await {
            Ok(r) => {
                let text = r.content.unwrap_or_default();
                // Keep line breaks, drop escape sequences and other control characters.
                let text: String = text
                    .trim()
                    .chars()
                    .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
                    .collect();
                if text.is_empty() {
                    "(the model gave no summary)".to_owned()
                } else {
                    text
                }
            }
            Err(e) => format!("(no summary: the model could not be reached: {e})"),
        }
    }
}

fn needs_workspace() -> String {
    "Free-form questions run KQL, which needs a Log Analytics workspace: the demo tenant and \
     offline exports only answer the built-in commands (type `help`). Set \
     LOG_ANALYTICS_WORKSPACE_ID to query a workspace."
        .to_owned()
}

/// The error the service gave, under any retry wrapper.
fn innermost(e: &pim_loganalytics::Error) -> &pim_loganalytics::Error {
    match e {
        pim_loganalytics::Error::RetriesExhausted { last, .. } => innermost(last),
        other => other,
    }
}

fn bad_query_detail(
    message: &str,
    line: Option<u32>,
    pos: Option<u32>,
    token: Option<&str>,
) -> String {
    let mut where_ = Vec::new();
    if let Some(line) = line {
        where_.push(format!("line {line}"));
    }
    if let Some(pos) = pos {
        where_.push(format!("position {pos}"));
    }
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        where_.push(format!("near '{token}'"));
    }
    if where_.is_empty() {
        message.to_owned()
    } else {
        format!("{} ({})", message, where_.join(", "))
    }
}

fn is_user(a: &ActivationReport, label: &str) -> bool {
    let p = &a.principal;
    a.principal.label().eq_ignore_ascii_case(label)
        || [&p.upn, &p.display_name, &p.object_id]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(label)))
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
    crate::terminal_line(text, usize::MAX)
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
                operation: act.operation.clone(),
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
    fn bad_query_details_name_the_place() {
        assert_eq!(
            bad_query_detail("Query could not be parsed", Some(2), Some(7), Some("|")),
            "Query could not be parsed (line 2, position 7, near '|')"
        );
        assert_eq!(bad_query_detail("m", None, None, Some("")), "m");
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
    #[tokio::test]
    async fn names_that_need_escaping_are_not_offered_for_completion() {
        let source = crate::demo_source().unwrap();
        let auditor = Arc::new(Auditor::builder(source.clone()).build());
        let options = SessionOptions {
            end: source.info().default_end,
            ..SessionOptions::default()
        };
        let mut s = Session::new(auditor, source, None, options);
        let now = datetime!(2026-11-20 18:00 UTC);
        s.handle_line("scan", now).await;
        let mut report = (**s.report.as_ref().unwrap()).clone();
        let hostile = [
            "evil\u{202E}gnp.exe@contoso.com",
            "zero\u{200B}width@contoso.com",
            "esc\u{1b}[2J@contoso.com",
        ];
        for (a, upn) in report.activations.iter_mut().zip(hostile) {
            a.principal.upn = Some(upn.to_owned());
        }
        let kept = report.activations[3].principal.label().to_owned();
        report.activations[4].principal.upn = Some(format!("{}@contoso.com", "a".repeat(300)));
        s.report = Some(Arc::new(report));
        let words = s.completions();
        for upn in hostile {
            assert!(!words.iter().any(|w| w == upn), "{upn:?} offered");
        }
        assert!(!words.iter().any(|w| w.len() > 250));
        assert!(words.contains(&kept), "{words:?}");
    }
}
