//! The prompt-and-repair loop for model-written KQL: ask for a query, check it, run it, and on
//! any failure tell the model what went wrong and ask again, a bounded number of times.
//!
//! The loop knows neither the model nor the source. It is written against two small traits:
//!
//! - a [`KqlWriter`] answers a conversation of [`Turn`]s with text (a chat model, in practice;
//!   a scripted fake in tests);
//! - a [`QueryRunner`] runs a [`CheckedQuery`] and says whether a failure is one the model can
//!   repair ([`RunError::Rejected`]: a syntax error, an unknown column) or not
//!   ([`RunError::Failed`]: the network, permissions, a source that runs no KQL).
//!
//! So `pim-kql` stays a pure crate: the adapters live with whoever owns a model and a source
//! (the chat agent), and the layering stays one-way.
//!
//! Each attempt goes through the same gates, and each refusal becomes feedback to the model:
//!
//! 1. the answer must hold a query ([`extract_kql`]);
//! 2. the query must pass [`check_query`] under the [`QueryPolicy`] (read-only, allowed tables
//!    only, a row cap): a query that tries to read another table never reaches the runner;
//! 3. the runner must accept it;
//! 4. the result must fit [`QueryPolicy::max_result_bytes`] ([`oversized_result`]), since one
//!    row can hold a whole table. An oversized result is dropped before anyone sees it.
//!
//! ```
//! use pim_domain::Table;
//! use pim_kql::repair::{write_and_run, KqlWriter, QueryRunner, RepairOutcome, RunError, Turn};
//! use pim_kql::{CheckedQuery, QueryPolicy};
//!
//! /// Always writes the same query.
//! struct Fixed;
//! impl KqlWriter for Fixed {
//!     type Error = String;
//!     async fn write(&mut self, _conversation: &[Turn]) -> Result<String, String> {
//!         Ok("```kql\nAuditLogs | count\n```".to_owned())
//!     }
//! }
//!
//! /// Returns no tables for any query.
//! struct Empty;
//! impl QueryRunner for Empty {
//!     type Output = Vec<Table>;
//!     type Error = String;
//!     async fn run(&mut self, _query: &CheckedQuery) -> Result<Vec<Table>, RunError<String>> {
//!         Ok(Vec::new())
//!     }
//!     fn tables(output: &Vec<Table>) -> &[Table] {
//!         output
//!     }
//! }
//!
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let conversation = vec![Turn::user("how many audit records?")];
//! let repair = runtime.block_on(write_and_run(
//!     &mut Fixed,
//!     &mut Empty,
//!     conversation,
//!     &QueryPolicy::default(),
//!     3,
//! ));
//! let RepairOutcome::Answered { query, .. } = &repair.outcome else { panic!() };
//! assert_eq!(query.kql, "AuditLogs | where TimeGenerated > ago(7d) | count\n| take 1000");
//! assert_eq!(repair.attempts.len(), 1);
//! ```
//!
//! See: issue 4, "Natural language to KQL, and repair"; issue 9, "KQL row cap"; issue 11 (the
//! loop moved here from the chat agent).

use std::fmt;
use std::future::Future;

use pim_domain::Table;
use tracing::debug;

use crate::check::{CheckedQuery, QueryPolicy, QueryRejection, check_query};
use crate::prompt::{
    extract_kql, missing_query_prompt, oversized_prompt, rejection_prompt, repair_prompt,
};

/// Who says a [`Turn`] of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions: the schemas, the rules, context about the conversation.
    System,
    /// The user's question, and the loop's feedback on a failed attempt.
    User,
    /// The model's answers.
    Assistant,
}

/// One message of the conversation handed to a [`KqlWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Turn {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Writes KQL: answers the conversation so far with text that should hold one query.
///
/// A chat model behind an adapter, in practice. The future is `Send` so that a host can run
/// the loop on a multi-threaded runtime.
pub trait KqlWriter {
    /// Why no answer came (the model could not be reached). The loop stops on it.
    type Error;

    /// The answer to `conversation`, as text.
    ///
    /// # Errors
    /// [`Self::Error`] when there is no answer at all; the loop ends with
    /// [`RepairOutcome::WriterFailed`].
    fn write(
        &mut self,
        conversation: &[Turn],
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;
}

/// Runs a checked query.
pub trait QueryRunner {
    /// A result (the tables and whatever else the source reports, such as a partial error).
    type Output;
    /// Why a query could not run, when a new query would not help.
    type Error;

    /// Runs `query` (already checked and capped: run [`CheckedQuery::kql`] as it is).
    ///
    /// # Errors
    /// [`RunError::Rejected`] when the service refused the query as written, so a corrected
    /// query may work; [`RunError::Failed`] for everything else, which ends the loop.
    fn run(
        &mut self,
        query: &CheckedQuery,
    ) -> impl Future<Output = Result<Self::Output, RunError<Self::Error>>> + Send;

    /// The result tables of `output`, measured against [`QueryPolicy::max_result_bytes`].
    fn tables(output: &Self::Output) -> &[Table];
}

/// Why a [`QueryRunner`] did not return a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError<E> {
    /// The service refused the query as written (a syntax error, an unknown column). The text
    /// (message and place) goes back to the model with the query.
    Rejected(String),
    /// Anything a new query cannot fix: the loop stops and hands this back.
    Failed(E),
}

/// What went wrong with one attempt; the text is what the loop's caller may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The model's answer held no query.
    NoQuery,
    /// [`check_query`] refused the query; it was not run.
    Refused(QueryRejection),
    /// The service refused the query ([`RunError::Rejected`]).
    Failed(String),
    /// The query ran, but its result was over the size bound and was dropped.
    Oversized(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoQuery => f.write_str("the model did not write a query"),
            Self::Refused(rejection) => write!(f, "the query was refused: {rejection}"),
            Self::Failed(detail) => write!(f, "the last query failed: {detail}"),
            Self::Oversized(problem) => write!(f, "the result was refused: {problem}"),
        }
    }
}

/// One answer of the model and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The query as the model wrote it; `None` when its answer held none.
    pub written: Option<String>,
    /// The query sent to the runner (checked and capped); `None` when it was refused first.
    pub ran: Option<String>,
    /// Why this attempt did not end the loop; `None` for the attempt that answered.
    pub problem: Option<Problem>,
}

/// How the loop ended.
#[derive(Debug)]
pub enum RepairOutcome<O, WE, RE> {
    /// A query passed the checks and ran, and its result fits the size bound.
    Answered {
        /// The query that ran.
        query: CheckedQuery,
        /// Its result.
        output: O,
    },
    /// Every attempt failed; the last [`Attempt::problem`] says why.
    GaveUp,
    /// The writer gave no answer.
    WriterFailed(WE),
    /// The runner failed in a way a new query cannot fix.
    RunFailed(RE),
}

/// The loop's record: how it ended and every attempt on the way.
#[derive(Debug)]
pub struct Repair<O, WE, RE> {
    /// How it ended.
    pub outcome: RepairOutcome<O, WE, RE>,
    /// One entry per answer of the writer, in order.
    pub attempts: Vec<Attempt>,
}

impl<O, WE, RE> Repair<O, WE, RE> {
    /// The problem of the last attempt that had one.
    pub fn last_problem(&self) -> Option<&Problem> {
        self.attempts.iter().rev().find_map(|a| a.problem.as_ref())
    }

    /// The last query sent to the runner, whatever became of it.
    pub fn last_run(&self) -> Option<&str> {
        self.attempts.iter().rev().find_map(|a| a.ran.as_deref())
    }

    /// The problems of the attempts that did not answer, in order: what was repaired.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.attempts.iter().filter_map(|a| a.problem.as_ref())
    }
}

/// Asks `writer` for a query answering `conversation` and runs it with `runner`; on a failure
/// the model is told why and asked again, up to `max_repairs` times after the first attempt.
///
/// The conversation grows with each answer and each piece of feedback, so the model sees its
/// own earlier attempts. Only a query that passed [`check_query`] under `policy` is ever handed
/// to the runner.
pub async fn write_and_run<W, R>(
    writer: &mut W,
    runner: &mut R,
    mut conversation: Vec<Turn>,
    policy: &QueryPolicy,
    max_repairs: usize,
) -> Repair<R::Output, W::Error, R::Error>
where
    W: KqlWriter,
    R: QueryRunner,
{
    let mut attempts: Vec<Attempt> = Vec::new();
    let tries = max_repairs.saturating_add(1);
    for attempt in 1..=tries {
        let answer = match writer.write(&conversation).await {
            Ok(answer) => answer,
            Err(e) => {
                return Repair {
                    outcome: RepairOutcome::WriterFailed(e),
                    attempts,
                };
            }
        };
        conversation.push(Turn::assistant(answer.clone()));
        let Some(kql) = extract_kql(&answer) else {
            debug!(attempt, "the model's answer held no query");
            conversation.push(Turn::user(missing_query_prompt()));
            attempts.push(Attempt {
                written: None,
                ran: None,
                problem: Some(Problem::NoQuery),
            });
            continue;
        };
        let checked = match check_query(&kql, policy) {
            Ok(checked) => checked,
            Err(rejection) => {
                debug!(attempt, kql = %kql, reason = %rejection, "query refused by the checks");
                conversation.push(Turn::user(rejection_prompt(&kql, &rejection.to_string())));
                attempts.push(Attempt {
                    written: Some(kql),
                    ran: None,
                    problem: Some(Problem::Refused(rejection)),
                });
                continue;
            }
        };
        debug!(attempt, kql = %checked.kql, "running a model-written query");
        let mut record = Attempt {
            written: Some(kql),
            ran: Some(checked.kql.clone()),
            problem: None,
        };
        match runner.run(&checked).await {
            Ok(output) => {
                // One row can hold everything: the size is capped as well as the rows.
                match oversized_result(R::tables(&output), policy.max_result_bytes) {
                    Some(problem) => {
                        debug!(attempt, reason = %problem, "query result refused by size");
                        conversation.push(Turn::user(oversized_prompt(&checked.kql, &problem)));
                        record.problem = Some(Problem::Oversized(problem));
                        attempts.push(record);
                    }
                    None => {
                        attempts.push(record);
                        return Repair {
                            outcome: RepairOutcome::Answered {
                                query: checked,
                                output,
                            },
                            attempts,
                        };
                    }
                }
            }
            Err(RunError::Rejected(detail)) => {
                debug!(attempt, error = %detail, "model-written query failed");
                conversation.push(Turn::user(repair_prompt(&checked.kql, &detail)));
                record.problem = Some(Problem::Failed(detail));
                attempts.push(record);
            }
            Err(RunError::Failed(e)) => {
                attempts.push(record);
                return Repair {
                    outcome: RepairOutcome::RunFailed(e),
                    attempts,
                };
            }
        }
    }
    Repair {
        outcome: RepairOutcome::GaveUp,
        attempts,
    }
}

/// The size of a query's result: the bytes of its column names and of its cells as text
/// (strings bare, other values as compact JSON), over every table of the response.
pub fn result_bytes(tables: &[Table]) -> usize {
    tables
        .iter()
        .map(|t| {
            let names: usize = t.columns.iter().map(|c| c.name.len()).sum();
            let cells: usize = t
                .rows
                .iter()
                .flatten()
                .map(|v| v.as_str().map_or_else(|| v.to_string().len(), str::len))
                .sum();
            names + cells
        })
        .sum()
}

/// Why a result is refused, when it holds more than `max_bytes` ([`result_bytes`]): the
/// message tells the model how to make it smaller.
pub fn oversized_result(tables: &[Table], max_bytes: usize) -> Option<String> {
    let bytes = result_bytes(tables);
    let rows: usize = tables.iter().map(|t| t.rows.len()).sum();
    (bytes > max_bytes).then(|| {
        format!(
            "the result holds {bytes} bytes in {rows} row(s), over the limit of {max_bytes} bytes; \
             project fewer columns, summarize, or return fewer rows (no make_list/make_bag/pack_all \
             of whole rows)"
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use pim_domain::Column;
    use serde_json::json;

    use super::*;

    /// A model that answers from a script and records every conversation it was given.
    #[derive(Default)]
    struct FakeWriter {
        answers: VecDeque<Result<String, String>>,
        seen: Vec<Vec<Turn>>,
    }

    impl FakeWriter {
        fn new<const N: usize>(answers: [&str; N]) -> Self {
            Self {
                answers: answers.iter().map(|a| Ok(fenced(a))).collect(),
                seen: Vec::new(),
            }
        }
    }

    impl KqlWriter for FakeWriter {
        type Error = String;

        async fn write(&mut self, conversation: &[Turn]) -> Result<String, String> {
            self.seen.push(conversation.to_vec());
            self.answers
                .pop_front()
                .unwrap_or_else(|| Err("the script ran out".to_owned()))
        }
    }

    /// A source that answers from a script (a small table once the script runs out) and
    /// records every query it ran.
    #[derive(Default)]
    struct FakeRunner {
        results: VecDeque<Result<Vec<Table>, RunError<String>>>,
        ran: Vec<String>,
    }

    impl QueryRunner for FakeRunner {
        type Output = Vec<Table>;
        type Error = String;

        async fn run(&mut self, query: &CheckedQuery) -> Result<Vec<Table>, RunError<String>> {
            self.ran.push(query.kql.clone());
            self.results
                .pop_front()
                .unwrap_or_else(|| Ok(vec![table(3)]))
        }

        fn tables(output: &Vec<Table>) -> &[Table] {
            output
        }
    }

    fn fenced(kql: &str) -> String {
        if kql.is_empty() {
            "I would rather not.".to_owned()
        } else {
            format!("Here you go:\n```kql\n{kql}\n```")
        }
    }

    const GOOD: &str = "AzureActivity | where TimeGenerated > ago(1d) | project Caller";
    const BAD: &str =
        "AzureActivity | where TimeGenerated > ago(1d) | summarize countt() by Caller";

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn run(
        writer: &mut FakeWriter,
        runner: &mut FakeRunner,
        max_repairs: usize,
    ) -> Repair<Vec<Table>, String, String> {
        let conversation = vec![Turn::system("write KQL"), Turn::user("who changed things?")];
        block_on(write_and_run(
            writer,
            runner,
            conversation,
            &QueryPolicy::default(),
            max_repairs,
        ))
    }

    fn table(rows: usize) -> Table {
        Table {
            name: "PrimaryResult".into(),
            columns: vec![
                Column {
                    name: "Caller".into(),
                    kind: "string".into(),
                },
                Column {
                    name: "n".into(),
                    kind: "long".into(),
                },
            ],
            rows: (0..rows)
                .map(|i| vec![json!(format!("user{i}@contoso.com")), json!(i)])
                .collect(),
        }
    }
    #[test]
    fn one_row_holding_everything_is_refused_by_size() {
        // `summarize make_list(pack_all())`: one row, one cell, every row of the table.
        let everything = Table {
            name: "PrimaryResult".into(),
            columns: vec![Column {
                name: "list_".into(),
                kind: "dynamic".into(),
            }],
            rows: vec![vec![json!(
                (0..50_000)
                    .map(|i| json!({"Caller": format!("user{i}@contoso.com"), "n": i}))
                    .collect::<Vec<_>>()
            )]],
        };
        let bytes = result_bytes(std::slice::from_ref(&everything));
        assert!(bytes > 1_000_000, "{bytes}");
        let message = oversized_result(&[everything], 1024 * 1024).unwrap();
        assert!(
            message.starts_with(&format!(
                "the result holds {bytes} bytes in 1 row(s), over the limit of 1048576 bytes"
            )),
            "{message}"
        );
        // A normal result passes, and every table of a response counts.
        let small = table(3);
        let one = result_bytes(std::slice::from_ref(&small));
        assert_eq!(one, "Caller".len() + 1 + 3 * "userN@contoso.com".len() + 3);
        assert_eq!(result_bytes(&[small.clone(), small.clone()]), 2 * one);
        assert_eq!(oversized_result(std::slice::from_ref(&small), one), None);
        assert!(oversized_result(&[small.clone(), small], one).is_some());
    }

    #[test]
    fn bad_kql_is_repaired_from_the_service_error() {
        let mut writer = FakeWriter::new([BAD, GOOD]);
        let mut runner = FakeRunner::default();
        runner.results.push_back(Err(RunError::Rejected(
            "unknown function countt (line 1)".into(),
        )));
        let repair = run(&mut writer, &mut runner, 3);

        let RepairOutcome::Answered { query, output } = &repair.outcome else {
            panic!("{:?}", repair.outcome);
        };
        assert_eq!(query.kql, format!("{GOOD}\n| take 1000"));
        assert_eq!(output[0].rows.len(), 3);
        assert_eq!(runner.ran.len(), 2);
        assert!(runner.ran[0].contains("countt()"));
        // The second request carried the model's answer and the error, after the question.
        let second = &writer.seen[1];
        assert_eq!(second.len(), 4);
        assert_eq!(second[2].role, Role::Assistant);
        assert!(second[2].content.contains("countt()"));
        assert_eq!(second[3].role, Role::User);
        assert!(
            second[3]
                .content
                .starts_with("That query failed in Log Analytics.")
        );
        assert!(
            second[3]
                .content
                .contains("Error: unknown function countt (line 1)")
        );
        assert_eq!(repair.attempts.len(), 2);
        assert_eq!(
            repair.attempts[0].problem,
            Some(Problem::Failed("unknown function countt (line 1)".into()))
        );
        assert_eq!(repair.attempts[1].problem, None);
        assert_eq!(repair.last_run(), Some(runner.ran[1].as_str()));
    }

    #[test]
    fn a_source_that_fails_then_succeeds_gets_the_same_query_again() {
        let mut writer = FakeWriter::new(["", GOOD, GOOD]);
        let mut runner = FakeRunner::default();
        runner
            .results
            .push_back(Err(RunError::Rejected("Partial query failure".into())));
        let repair = run(&mut writer, &mut runner, 3);
        assert!(matches!(repair.outcome, RepairOutcome::Answered { .. }));
        // First no query at all (asked again without running anything), then a failure, then
        // the same query succeeds.
        assert_eq!(runner.ran.len(), 2);
        assert_eq!(runner.ran[0], runner.ran[1]);
        assert_eq!(repair.attempts[0].problem, Some(Problem::NoQuery));
        assert!(
            writer.seen[1][3]
                .content
                .starts_with("I could not find a query in your answer.")
        );
        let problems: Vec<String> = repair.problems().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "the model did not write a query",
                "the last query failed: Partial query failure"
            ]
        );
    }

    #[test]
    fn attempts_stop_at_the_limit() {
        let mut writer = FakeWriter::new([BAD, BAD, BAD, BAD, GOOD]);
        let mut runner = FakeRunner::default();
        for _ in 0..5 {
            runner
                .results
                .push_back(Err(RunError::Rejected("syntax error".into())));
        }
        let repair = run(&mut writer, &mut runner, 2);
        assert!(
            matches!(repair.outcome, RepairOutcome::GaveUp),
            "{:?}",
            repair.outcome
        );
        // One query and two repairs; the good fifth answer is never asked for.
        assert_eq!(writer.seen.len(), 3);
        assert_eq!(runner.ran.len(), 3);
        assert_eq!(repair.attempts.len(), 3);
        assert_eq!(
            repair.last_problem().map(ToString::to_string).as_deref(),
            Some("the last query failed: syntax error")
        );
        // No repairs at all: exactly one attempt.
        let mut writer = FakeWriter::new([BAD, GOOD]);
        let mut runner = FakeRunner::default();
        runner
            .results
            .push_back(Err(RunError::Rejected("syntax error".into())));
        let repair = run(&mut writer, &mut runner, 0);
        assert!(matches!(repair.outcome, RepairOutcome::GaveUp));
        assert_eq!(writer.seen.len(), 1);
    }

    #[test]
    fn queries_that_escape_the_allowed_tables_never_run() {
        let mut writer = FakeWriter::new([
            "SigninLogs | take 10",
            "AuditLogs | where Id in ((SecurityEvent | project Id))",
            ".drop table AuditLogs",
            GOOD,
        ]);
        let mut runner = FakeRunner::default();
        let repair = run(&mut writer, &mut runner, 3);
        assert!(matches!(repair.outcome, RepairOutcome::Answered { .. }));
        assert_eq!(runner.ran, [format!("{GOOD}\n| take 1000")]);
        assert!(matches!(
            repair.attempts[0].problem,
            Some(Problem::Refused(QueryRejection::DisallowedTable { .. }))
        ));
        assert!(matches!(
            repair.attempts[1].problem,
            Some(Problem::Refused(QueryRejection::DisallowedTable { .. }))
        ));
        assert!(matches!(
            repair.attempts[2].problem,
            Some(Problem::Refused(QueryRejection::ManagementCommand(_)))
        ));
        assert!(repair.attempts[..3].iter().all(|a| a.ran.is_none()));
        let feedback = &writer.seen[1][3].content;
        assert!(feedback.contains("was not run"), "{feedback}");
        assert!(
            feedback.contains("table `SigninLogs` is not allowed"),
            "{feedback}"
        );
        // The refused query is quoted back as data, in a fence.
        assert!(
            feedback.contains("```kql\nSigninLogs | take 10\n```"),
            "{feedback}"
        );
    }

    #[test]
    fn an_oversized_result_is_dropped_and_a_smaller_one_asked_for() {
        let mut writer = FakeWriter::new([GOOD, GOOD]);
        let mut runner = FakeRunner::default();
        let mut big = table(1);
        big.rows[0][0] = json!("s3cr3t".repeat(2_000_000));
        runner.results.push_back(Ok(vec![big]));
        let repair = run(&mut writer, &mut runner, 3);
        let RepairOutcome::Answered { output, .. } = &repair.outcome else {
            panic!("{:?}", repair.outcome);
        };
        assert_eq!(output[0].rows.len(), 3);
        assert!(matches!(
            repair.attempts[0].problem,
            Some(Problem::Oversized(_))
        ));
        let feedback = &writer.seen[1][3].content;
        assert!(feedback.contains("its result was not used"), "{feedback}");
        assert!(
            writer
                .seen
                .iter()
                .flatten()
                .all(|t| !t.content.contains("s3cr3t"))
        );
    }

    #[test]
    fn writer_and_runner_failures_end_the_loop() {
        let mut writer = FakeWriter::default();
        writer.answers.push_back(Err("connection refused".into()));
        let mut runner = FakeRunner::default();
        let repair = run(&mut writer, &mut runner, 3);
        assert!(
            matches!(&repair.outcome, RepairOutcome::WriterFailed(e) if e == "connection refused")
        );
        assert!(runner.ran.is_empty() && repair.attempts.is_empty());

        let mut writer = FakeWriter::new([GOOD, GOOD]);
        let mut runner = FakeRunner::default();
        runner
            .results
            .push_back(Err(RunError::Failed("403 Forbidden".into())));
        let repair = run(&mut writer, &mut runner, 3);
        assert!(matches!(&repair.outcome, RepairOutcome::RunFailed(e) if e == "403 Forbidden"));
        assert_eq!(writer.seen.len(), 1, "no repair is asked for");
        assert_eq!(repair.last_run(), Some(runner.ran[0].as_str()));
    }
}
