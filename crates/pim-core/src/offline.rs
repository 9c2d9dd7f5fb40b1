//! Reading an export's Activity Log once for the whole scan (issue 12, item 4).
//!
//! Three of a scan's queries read `AzureActivity`: its PIM events, the activity of the
//! activated identities in the union of their windows, and (with the behaviour baseline) their
//! history before the window. Against a live workspace each is its own query; an export would
//! read the file three times. A source that offers a [`RowStream`] is read once instead, with one
//! reader per query, and none of them holds the rows: the PIM rows are few and kept as a table,
//! the activity goes straight into [`AzureActivityParser`] (so only the operations the rows
//! collapse into are held), and the history into [`AzureActivityHistory`] (one entry per
//! identity and operation).
//!
//! Which identities and windows the activity and history readers need is only known once the
//! PIM events are read, and those come from this same file as well as from AuditLogs. The pass
//! therefore reads with the scopes that AuditLogs' activations alone give, and the scan uses
//! what it read only when the activations of both tables give exactly the same scopes (the
//! Activity Log rarely holds an activation AuditLogs lacks, and never in a tenant whose
//! activations all reach AuditLogs). Otherwise those readers' work is dropped and the queries
//! run as before, each reading the file again: never a different answer, at worst the old
//! cost.

use pim_correlate::{ActivityHistory, AzureActivityHistory, AzureActivityParser, ParsedActivities};
use pim_domain::cells::RowCells;
use pim_domain::{Column, DataProblem, ReportWindow, Table};
use pim_loganalytics::{
    LogTable, QueryOutcome, RowConsumer, RowScope, RowSink, RowStream, ScopedRows, StreamStats,
};
use serde_json::Value;

use crate::handoff::{CellSink, Handoff};

/// Collects the rows it is given as a table, with their positions.
#[derive(Debug, Default)]
struct TableSink {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
    positions: Vec<usize>,
}

impl RowSink for TableSink {
    fn columns(&mut self, columns: &[Column]) {
        self.columns = columns.to_vec();
    }

    fn row(&mut self, position: usize, cells: &[Value]) {
        self.positions.push(position);
        self.rows.push(cells.to_vec());
    }

    fn row_owned(&mut self, position: usize, cells: Vec<Value>) {
        self.positions.push(position);
        self.rows.push(cells);
    }

    fn restart(&mut self) {
        *self = Self::default();
    }
}

/// Parses the rows it is given as AzureActivity operations.
#[derive(Debug)]
struct ParserSink {
    source: String,
    parser: Option<AzureActivityParser>,
    /// What the parser gave, once the rows are all read.
    parsed: Option<ParsedActivities>,
}

impl CellSink for ParserSink {
    fn columns(&mut self, columns: &[Column]) {
        match &mut self.parser {
            Some(p) => p.columns(columns),
            // Every failure is read; which are reported is decided where the catalogue is
            // known (as for a queried table).
            None => self.parser = Some(AzureActivityParser::new(columns, &self.source, true)),
        }
    }

    fn row<C: RowCells + ?Sized>(&mut self, position: usize, cells: &C) {
        if let Some(p) = &mut self.parser {
            p.row_cells(position, cells);
        }
    }

    fn restart(&mut self) {
        self.parser = None;
    }

    fn columns_read(columns: &[Column]) -> Option<Vec<bool>> {
        Some(AzureActivityParser::columns_read(columns))
    }

    /// The activities are built on the parser's thread: the operations' snapshots and the
    /// index were allocated there, and are freed far more cheaply there than from another
    /// thread.
    fn done(&mut self) {
        if let Some(parser) = self.parser.take() {
            self.parsed = Some(parser.finish());
        }
    }
}

/// Collects the history of the rows it is given.
#[derive(Debug)]
struct HistorySink {
    source: String,
    period: ReportWindow,
    history: Option<AzureActivityHistory>,
}

impl CellSink for HistorySink {
    fn columns(&mut self, columns: &[Column]) {
        match &mut self.history {
            Some(h) => h.columns(columns),
            None => {
                self.history = Some(AzureActivityHistory::new(
                    columns,
                    &self.source,
                    self.period.start,
                    self.period.end,
                ));
            }
        }
    }

    fn row<C: RowCells + ?Sized>(&mut self, _position: usize, cells: &C) {
        if let Some(h) = &mut self.history {
            h.row_cells(cells);
        }
    }

    fn restart(&mut self) {
        self.history = None;
    }
}

/// The activity the pass read, and the scope it read it with.
#[derive(Debug)]
pub(crate) struct PrefetchedActivity {
    /// The scope the rows were kept with: usable only for a query of exactly this scope.
    pub(crate) scope: RowScope,
    /// The operations.
    pub(crate) parsed: ParsedActivities,
    /// Rows kept and left out.
    pub(crate) stats: StreamStats,
    /// The file's problems and partial error (as the query's answer would carry them).
    pub(crate) problems: Vec<DataProblem>,
    pub(crate) partial_error: Option<String>,
}

/// The history the pass read, and the scope and period it read it for.
#[derive(Debug)]
pub(crate) struct PrefetchedHistory {
    pub(crate) scope: RowScope,
    pub(crate) period: ReportWindow,
    pub(crate) history: ActivityHistory,
    pub(crate) stats: StreamStats,
}

/// What one pass over `AzureActivity` gave.
#[derive(Debug)]
pub(crate) struct ActivityPass {
    /// The answer the PIM-events query on AzureActivity would have given.
    pub(crate) pim: QueryOutcome,
    pub(crate) activity: Option<PrefetchedActivity>,
    pub(crate) history: Option<PrefetchedHistory>,
}

/// What the activity and history readers are to keep.
#[derive(Debug)]
pub(crate) struct PassPlan {
    /// The PIM-events query's scope.
    pub(crate) pim: RowScope,
    /// The activity query's scope, and the name its problems give the table.
    pub(crate) activity: Option<RowScope>,
    /// The baseline's scope and period, and the name its messages give the table.
    pub(crate) history: Option<(RowScope, ReportWindow, String)>,
}

/// Reads `AzureActivity` once for every reader of `plan`.
///
/// # Errors
///
/// As the PIM-events query on the table would fail ([`RowStream::stream`]).
pub(crate) fn read_activity_once(
    stream: &dyn RowStream,
    plan: PassPlan,
) -> pim_loganalytics::Result<ActivityPass> {
    let table = LogTable::AzureActivity;
    let file = stream.file_label(table)?;
    let mut pim = TableSink::default();
    let parser = ParserSink {
        source: file.clone(),
        parser: None,
        parsed: None,
    };
    let history = plan.history.as_ref().map(|(_, period, name)| HistorySink {
        source: name.clone(),
        period: *period,
        history: None,
    });
    // The activity parser takes a second core when there is one (`handoff`); the PIM rows
    // and the history are light and stay on this thread.
    let (answer, parser, history, joined_ms) = std::thread::scope(|threads| {
        let mut parser = match &plan.activity {
            Some(_) => Handoff::start(threads, parser),
            None => Handoff::inline(parser),
        };
        let mut history = history.map(Handoff::inline);
        let mut consumers = vec![RowConsumer {
            scope: Some(plan.pim.clone()),
            sink: &mut pim,
        }];
        if let Some(scope) = &plan.activity {
            consumers.push(RowConsumer {
                scope: Some(scope.clone()),
                sink: &mut parser,
            });
        }
        if let (Some(sink), Some((scope, _, _))) = (history.as_mut(), &plan.history) {
            consumers.push(RowConsumer {
                scope: Some(scope.clone()),
                sink,
            });
        }
        let answer = stream.stream(table, &mut consumers);
        drop(consumers);
        let read = std::time::Instant::now();
        let parser = parser.finish();
        let history = history.map(Handoff::finish);
        let joined_ms = read.elapsed().as_millis() as u64;
        (answer, parser, history, joined_ms)
    });
    let built = std::time::Instant::now();
    let answer = answer?;
    let mut stats = answer.stats.iter().copied();
    let pim_stats = stats.next().unwrap_or_default();
    let activity_stats = plan
        .activity
        .as_ref()
        .map(|_| stats.next().unwrap_or_default());
    let history_stats = plan
        .history
        .as_ref()
        .map(|_| stats.next().unwrap_or_default());
    let activity = match (plan.activity, activity_stats) {
        (Some(scope), Some(stats)) => Some(PrefetchedActivity {
            scope,
            parsed: parser
                .parsed
                .unwrap_or_else(|| AzureActivityParser::new(&answer.columns, &file, true).finish()),
            stats,
            problems: answer.problems.clone(),
            partial_error: answer.partial_error.clone(),
        }),
        _ => None,
    };
    let history = match (plan.history, history_stats, history) {
        (Some((scope, period, name)), Some(stats), Some(sink)) => Some(PrefetchedHistory {
            scope,
            period,
            history: sink
                .history
                .unwrap_or_else(|| {
                    AzureActivityHistory::new(&answer.columns, &name, period.start, period.end)
                })
                .finish(),
            stats,
        }),
        _ => None,
    };
    // `joined_ms`: the wait after the file's end for the parser's thread, which then builds
    // the activities (`ParserSink::done`); `built_ms`: the rest of turning what the pass read
    // into what the scan reads (the history, the tables).
    tracing::debug!(
        joined_ms,
        built_ms = built.elapsed().as_millis() as u64,
        "activity pass finished"
    );
    let TableSink {
        mut rows,
        positions,
        ..
    } = pim;
    for row in &mut rows {
        if row.len() < answer.columns.len() {
            row.resize(answer.columns.len(), Value::Null);
        }
    }
    let scoped = (pim_stats.left_out > 0).then_some(ScopedRows {
        positions,
        left_out: pim_stats.left_out,
        earliest: pim_stats.earliest,
    });
    Ok(ActivityPass {
        pim: QueryOutcome {
            tables: vec![Table {
                name: file,
                columns: answer.columns,
                rows,
            }],
            partial_error: answer.partial_error,
            problems: answer.problems,
            scoped,
            truncation: None,
        },
        activity,
        history,
    })
}
