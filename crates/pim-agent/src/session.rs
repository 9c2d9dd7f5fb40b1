//! One conversation: the last scan, who was listed and discussed, the last query, and the
//! exchanges that go to the model with a free-form question.

use std::collections::VecDeque;
use std::sync::Arc;

use pim_core::{Auditor, KqlSource, MarkdownOptions, ReportFormat, ScanOptions};
use pim_domain::{ActivationReport, Report, Table, TimeRange};
use pim_kql::repair::{Repair, RepairOutcome, Turn, write_and_run};
use pim_openai::{ChatMessage, ChatModel, ChatRequest};
use time::{Duration, OffsetDateTime};

use crate::answer::{
    Answer, Confirm, ListedIdentity, Problem, QueryAnswer, ReportActivation, ReportCounts,
    ScanSummary, Summary, UserActivations,
};
use crate::cache::ScanCache;
use crate::context::{Listed, resolve};
use crate::intent::{Intent, UserRef, parse_intent};
use crate::nl::{ANSWER_SYSTEM_PROMPT, answer_prompt, truncate};
use crate::save::{SaveError, save};
use crate::source::{ModelWriter, SourceRunner, innermost};
use crate::text::{render_text, summary_text};
use crate::{COMMANDS, SessionOptions};

/// Longest user name offered for Tab completion.
const MAX_COMPLETION_CHARS: usize = 200;
/// Rows of a result handed to the model for the answer in words.
const ANSWER_ROWS: usize = 20;
/// Characters of a command's output kept in the history sent to the model.
const HISTORY_CHARS: usize = 2_000;
/// How far back a free-form query may read (the query API's `timespan`); the KQL's own time
/// filter narrows it.
const QUESTION_LOOKBACK_DAYS: i64 = 90;

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
    /// unless [`SessionOptions::end`] fixes it. Never fails: problems are answered with
    /// [`Answer::Problem`]. Render the answer with [`render_text`](crate::render_text), or
    /// serialize it.
    pub async fn handle_line(&mut self, line: &str, now: OffsetDateTime) -> Answer {
        let intent = parse_intent(line);
        let answer = match &intent {
            Intent::Empty => return Answer::Nothing,
            Intent::Exit => return Answer::Exit,
            Intent::Help => return Answer::Help,
            Intent::ShowKql => {
                return Answer::LastQuery {
                    kql: self.last_kql.clone(),
                };
            }
            Intent::Question(question) => return self.question(question, now).await,
            Intent::Scan { hours } => self.scan_command(*hours, now).await,
            Intent::WhatDid(user) => self.what_did(user, now).await,
            Intent::Assess(user) => self.assess(user, now).await,
            Intent::Report { path, overwrite } => self.report(path.as_deref(), *overwrite),
        };
        // Commands go into the history too, as the user read them, so that a later question
        // can say "their".
        self.remember(line.trim(), &render_text(&answer));
        answer
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
                    && pim_core::terminal_line(&label, MAX_COMPLETION_CHARS) == label;
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

    /// The report of the last scan, if any: what a served agent offers for download.
    pub fn last_report(&self) -> Option<&Arc<Report>> {
        self.report.as_ref()
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

    async fn run_scan(&mut self, hours: u32, now: OffsetDateTime) -> Result<Arc<Report>, Problem> {
        let mut options = ScanOptions::new(self.end(now));
        options.hours = hours;
        options.query_concurrency = self.options.query_concurrency;
        options.baseline_days = self.options.baseline_days;
        options.validate().map_err(|e| Problem::ScanRefused {
            reason: e.to_string(),
        })?;
        let pim_range = TimeRange::new(
            options.end
                - Duration::hours(i64::from(options.hours) + i64::from(options.lookback_hours)),
            options.end,
        );
        self.last_kql = Some(format!(
            "{}\n// …then one AzureActivity query and one AuditLogs query for the activity of the identities found.",
            pim_kql::pim_events_query(pim_range)
        ));
        let failed = |reason: String| Problem::ScanFailed { reason };
        let report = match &self.scans {
            Some(cache) => cache
                .scan(&self.auditor, &options, now)
                .await
                .map_err(failed)?,
            None => Arc::new(
                self.auditor
                    .scan(&options, now)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            ),
        };
        self.scan_hours = hours;
        self.report = Some(report.clone());
        Ok(report)
    }

    async fn scan_command(&mut self, hours: Option<u32>, now: OffsetDateTime) -> Answer {
        let hours = hours.unwrap_or(self.options.hours);
        let report = match self.run_scan(hours, now).await {
            Ok(report) => report,
            Err(problem) => return Answer::Problem(problem),
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
        let identities = listed
            .iter()
            .enumerate()
            .map(|(i, user)| ListedIdentity {
                number: i + 1,
                label: user.label.clone(),
                activations: ReportActivation::all(&report, |a| a.principal.label() == user.label),
            })
            .collect();
        // After a listing, "they" means the only user listed, else whoever was discussed before.
        if let [only] = listed.as_slice() {
            self.current = Some(only.label.clone());
        }
        self.listed = listed;
        Answer::Scan(ScanSummary {
            window: report.window,
            hours,
            source: report.source.description.clone(),
            activations: report.summary.activations,
            findings: report.summary.findings,
            warnings: report.warnings.clone(),
            identities,
        })
    }

    /// `label`'s activations in the last report, scanning first when there is no report, or
    /// when the user is not in a report whose window has since moved on.
    async fn activations_of(
        &mut self,
        label: &str,
        now: OffsetDateTime,
    ) -> Result<(Arc<Report>, Vec<ReportActivation>), Problem> {
        let find = |report: &Arc<Report>| ReportActivation::all(report, |a| is_user(a, label));
        let end = self.end(now);
        if let Some(report) = &self.report {
            let found = find(report);
            if !found.is_empty() || report.window.end == end {
                return Ok((report.clone(), found));
            }
        }
        let report = self.run_scan(self.scan_hours, now).await?;
        let found = find(&report);
        Ok((report, found))
    }

    /// Resolves `user`, makes them the user discussed, and finds their activations.
    async fn user_activations(
        &mut self,
        user: &UserRef,
        now: OffsetDateTime,
    ) -> Result<UserActivations, Problem> {
        let label = resolve(user, &self.listed, self.current.as_deref()).map_err(|e| {
            Problem::UnknownUser {
                reason: e.to_string(),
            }
        })?;
        self.current = Some(label.clone());
        let (report, activations) = self.activations_of(&label, now).await?;
        if activations.is_empty() {
            return Err(Problem::NotActivated {
                user: label,
                window: Some(report.window),
            });
        }
        Ok(UserActivations {
            user: label,
            activations,
        })
    }

    async fn what_did(&mut self, user: &UserRef, now: OffsetDateTime) -> Answer {
        match self.user_activations(user, now).await {
            Ok(found) => Answer::Activity(found),
            Err(problem) => Answer::Problem(problem),
        }
    }

    async fn assess(&mut self, user: &UserRef, now: OffsetDateTime) -> Answer {
        match self.user_activations(user, now).await {
            Ok(found) => Answer::Assessment(found),
            Err(problem) => Answer::Problem(problem),
        }
    }

    /// `report [path]` / `report! path`: the Markdown printed, or written under the rules of
    /// [`save`](crate::save) (never replacing a file or following a symlink unless asked).
    /// When the write was refused pending a yes, the answer says what to ask.
    fn report(&self, path: Option<&str>, overwrite: bool) -> Answer {
        let Some(report) = &self.report else {
            return Answer::Problem(Problem::NothingToReport);
        };
        let markdown = match pim_core::render(
            report,
            ReportFormat::Markdown,
            None,
            &MarkdownOptions::default(),
        ) {
            Ok(m) => m,
            Err(e) => {
                return Answer::Problem(Problem::RenderFailed {
                    reason: e.to_string(),
                });
            }
        };
        let counts = ReportCounts {
            activations: report.summary.activations,
            findings: report.summary.findings,
        };
        let Some(path) = path else {
            return Answer::Report { markdown, counts };
        };
        if !self.options.write_files {
            return Answer::Problem(Problem::WriteFailed {
                path: path.to_owned(),
                reason: "this agent does not write files; download the report instead".to_owned(),
            });
        }
        match save(path, markdown.as_bytes(), overwrite) {
            Ok(written) => Answer::ReportSaved {
                path: path.to_owned(),
                through_link: written.map(|target| target.display().to_string()),
                counts,
            },
            Err(e) if e.can_confirm() => {
                let what = if matches!(e, SaveError::Symlink { .. }) {
                    "Write through the link"
                } else {
                    "Overwrite it"
                };
                Answer::NeedsConfirmation {
                    reason: e.to_string(),
                    confirm: Confirm {
                        question: format!("{e}. {what}?"),
                        line: format!("report! {path}"),
                    },
                }
            }
            Err(e) => Answer::Problem(Problem::WriteFailed {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// A free-form question: the model writes KQL, [`pim_kql::repair`] checks, runs and
    /// repairs it, and the model sums up the result in words.
    async fn question(&mut self, question: &str, now: OffsetDateTime) -> Answer {
        let Some(model) = self.model.clone() else {
            return Answer::Problem(Problem::NoModel);
        };
        if !self.source.capabilities().runs_arbitrary_kql {
            return Answer::Problem(Problem::NoWorkspace);
        }
        let end = self.end(now);
        let mut conversation = vec![Turn::system(pim_kql::prompt::system_prompt(end))];
        if let Some(current) = &self.current {
            conversation.push(Turn::system(format!(
                "The user last discussed (\"they\", \"their\") is {current}."
            )));
        }
        for (q, a) in &self.history {
            conversation.push(Turn::user(q.clone()));
            conversation.push(Turn::assistant(a.clone()));
        }
        conversation.push(Turn::user(question.to_owned()));

        let mut writer = ModelWriter::new(&*model);
        // The runner notes each query before it runs, so `show kql` shows the last one tried
        // even when the request is cancelled while it runs.
        let mut runner = SourceRunner::new(
            &*self.source,
            TimeRange::new(end - Duration::days(QUESTION_LOOKBACK_DAYS), end),
            &mut self.last_kql,
        );
        let repair = write_and_run(
            &mut writer,
            &mut runner,
            conversation,
            &self.options.query_policy,
            self.options.max_repairs,
        )
        .await;
        let Repair { outcome, attempts } = repair;
        let repairs: Vec<String> = attempts
            .iter()
            .filter_map(|a| a.problem.as_ref().map(ToString::to_string))
            .collect();
        let (checked, outcome) = match outcome {
            RepairOutcome::Answered { query, output } => (query, output),
            RepairOutcome::GaveUp => {
                return Answer::Problem(Problem::NoWorkingQuery {
                    repairs: self.options.max_repairs,
                    last_problem: repairs.last().cloned().unwrap_or_default(),
                });
            }
            RepairOutcome::WriterFailed(e) => {
                return Answer::Problem(Problem::ModelUnreachable {
                    reason: e.to_string(),
                });
            }
            RepairOutcome::RunFailed(e) => {
                return Answer::Problem(match innermost(&e) {
                    pim_loganalytics::Error::Unsupported { .. } => Problem::NoWorkspace,
                    _ => Problem::QueryFailed {
                        reason: e.to_string(),
                    },
                });
            }
        };
        let table = outcome.tables.into_iter().next().unwrap_or_default();
        let summary = self.answer_in_words(&*model, question, &table).await;
        self.remember(
            question,
            &format!("```kql\n{}\n```\n{}", checked.kql, summary_text(&summary)),
        );
        Answer::Query(QueryAnswer {
            question: question.to_owned(),
            kql: checked.kql,
            table,
            max_rows: self.options.max_table_rows,
            partial_error: outcome.partial_error,
            row_cap: checked
                .added_row_cap
                .then_some(self.options.query_policy.row_cap),
            added_time_filter: checked.added_time_filter,
            repairs,
            summary,
        })
    }

    async fn answer_in_words(
        &self,
        model: &dyn ChatModel,
        question: &str,
        table: &Table,
    ) -> Summary {
        let request = ChatRequest::new(vec![
            ChatMessage::system(ANSWER_SYSTEM_PROMPT),
            ChatMessage::user(answer_prompt(question, table, ANSWER_ROWS)),
        ]);
        match model.complete(&request).await {
            Ok(r) => {
                let text = r.content.unwrap_or_default();
                let text = text.trim();
                if text.is_empty() {
                    Summary::Empty
                } else {
                    Summary::Text(text.to_owned())
                }
            }
            Err(e) => Summary::Failed(e.to_string()),
        }
    }
}

fn is_user(a: &ActivationReport, label: &str) -> bool {
    let p = &a.principal;
    a.principal.label().eq_ignore_ascii_case(label)
        || [&p.upn, &p.display_name, &p.object_id]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(label)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn a_session_that_may_not_write_files_refuses_report_path() {
        let dir = std::env::temp_dir().join(format!("pim-agent-nowrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.md");
        let source = pim_core::demo_source().unwrap();
        let auditor = Arc::new(Auditor::builder(source.clone()).build());
        let options = SessionOptions {
            end: source.info().default_end,
            write_files: false,
            ..SessionOptions::default()
        };
        let mut s = Session::new(auditor, source, None, options);
        let now = datetime!(2026-11-20 18:00 UTC);
        s.handle_line("scan", now).await;
        let line = format!("report {}", path.display());
        let answer = s.handle_line(&line, now).await;
        assert!(
            matches!(answer, Answer::Problem(Problem::WriteFailed { .. })),
            "{answer:?}"
        );
        assert!(!path.exists());
        // The report itself is still there, to print or download.
        assert!(matches!(
            s.handle_line("report", now).await,
            Answer::Report { .. }
        ));
        assert!(s.last_report().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // Issue 9: the completion menu draws words raw, so names that need escaping are left out.
    #[tokio::test]
    async fn names_that_need_escaping_are_not_offered_for_completion() {
        let source = pim_core::demo_source().unwrap();
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
