//! The fake Log Analytics query API (reference §3), with the service's limits (§9).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pim_domain::{Column, Table, TimeRange};
use pim_loganalytics::{DemoTenant, KqlSource, LogQuery, LogTable};
use serde_json::{Value, json};
use wiremock::Request;

use crate::common::{Injections, RecordedRequest, bearer_token, header_text, lock};
use crate::{Error, Result};

mod rows;
mod server;

use server::{Reply, Server};

pub use rows::{Limits, RowGenerator, RowScope};

/// Selects a table by the KQL text of a query.
pub type KqlMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A matcher that is true when `table` occurs in the KQL as a whole identifier (so `AuditLogs`
/// does not match `AuditLogsArchive`).
pub fn reads_table(table: &str) -> impl Fn(&str) -> bool + Send + Sync + 'static {
    let table = table.to_owned();
    move |kql: &str| first_word_position(kql, &table).is_some()
}

/// The byte offset of the first occurrence of `word` in `text` as a whole identifier.
fn first_word_position(text: &str, word: &str) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text.get(..i).and_then(|s| s.chars().next_back());
        let after = text.get(i + word.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Which of the demo tables a query reads: the one named first in the KQL.
fn demo_table_for(kql: &str) -> Option<LogTable> {
    let audit = first_word_position(kql, "AuditLogs");
    let activity = first_word_position(kql, "AzureActivity");
    match (audit, activity) {
        (Some(a), Some(b)) if b < a => Some(LogTable::AzureActivity),
        (Some(_), _) => Some(LogTable::AuditLogs),
        (None, Some(_)) => Some(LogTable::AzureActivity),
        (None, None) => None,
    }
}

/// A failure the fake Log Analytics API can inject, each with the documented wire shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The normal answer, after this extra delay (on top of [`LogAnalyticsFake::set_latency`]).
    Delay(Duration),
    /// 429 with `Retry-After: <secs>` and error code `ThrottledError` **[constructed code]**.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 503 `ServiceUnavailable`, with `Retry-After` when given.
    ServiceUnavailable {
        /// The `Retry-After` value in seconds, if any.
        retry_after_secs: Option<u64>,
    },
    /// 500 `InternalServerError`.
    InternalError,
    /// 504 `GatewayTimeout`, inner message "Kusto query timed out" (reference §3.2).
    GatewayTimeout,
    /// 200 with the matched table plus `error.code = "PartialError"`; `message` is the innermost
    /// message in `details[0].innererror`.
    PartialError {
        /// The innermost error message.
        message: String,
    },
    /// 400 `BadArgumentError` → `SyntaxError` → `SYN0002` with line, pos and token (§3.4).
    BadQuery {
        /// 1-based line.
        line: u32,
        /// Position in the line.
        pos: u32,
        /// The token that could not be parsed.
        token: String,
    },
    /// 400 `BadArgumentError` → `SemanticError` → `SEM0100`: the named table or column does not
    /// exist (what a workspace without AzureActivity answers).
    SemanticError {
        /// The unresolved name.
        name: String,
    },
    /// 401 `AuthenticationFailed`.
    Unauthorized,
    /// 403 `InsufficientAccessError` with inner `UnauthorizedClient`.
    Forbidden,
    /// 403 `InvalidAuthenticationTokenAudience`.
    WrongAudience,
    /// 204 with no body: a workspace without data.
    NoContent,
    /// 200 with an empty body (what a POST without a JSON content type gets).
    EmptyOk,
    /// 200 `application/json` with this exact (broken) body.
    Malformed(String),
}

/// How `dynamic` cells are sent; the reference (§3.3) says usually JSON-encoded strings, but
/// clients must accept nested JSON too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DynamicCells {
    /// Arrays and objects in `dynamic` columns are sent as JSON-encoded strings.
    #[default]
    Strings,
    /// Cells are sent as they are stored (nested JSON stays nested).
    Nested,
}

/// One query the fake received, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryCall {
    /// The workspace id from the path.
    pub workspace: String,
    /// The `query` field.
    pub kql: String,
    /// The `timespan` field, if sent.
    pub timespan: Option<String>,
    /// The `workspaces` field, if sent.
    pub workspaces: Vec<String>,
    /// The `Prefer` header, if sent.
    pub prefer: Option<String>,
}

/// Where an entry's rows come from. Shared, so that an answer is made from them off the
/// fake's state lock.
#[derive(Clone)]
enum Rows {
    Table(Arc<Table>),
    Generated(Arc<dyn RowGenerator>),
}

struct Entry {
    matcher: KqlMatcher,
    rows: Rows,
}

impl Rows {
    /// The table as stored (a generator's columns, without rows), for failure answers.
    fn table(&self) -> Table {
        match self {
            Rows::Table(t) => (**t).clone(),
            Rows::Generated(g) => Table {
                name: "PrimaryResult".into(),
                columns: g.columns(),
                rows: Vec::new(),
            },
        }
    }

    /// The success body for one request: rows filtered, projected and cut as the service
    /// would (see [`rows`]), and whether the result was cut.
    fn success_body(
        &self,
        kql: &str,
        timespan: Option<&str>,
        filtering: bool,
        limits: Limits,
        mode: DynamicCells,
    ) -> (Vec<u8>, bool) {
        let request = rows::Request::read(kql, timespan);
        match self {
            Rows::Table(table) => {
                let mut writer =
                    rows::Writer::new(&table.columns, &request, filtering, limits, mode);
                writer.push_table(table);
                writer.finish_cut()
            }
            Rows::Generated(generator) => {
                let columns = generator.columns();
                let mut writer = rows::Writer::new(&columns, &request, filtering, limits, mode);
                generator.generate(&request.scope, &mut |mut row| writer.push_owned(&mut row));
                writer.finish_cut()
            }
        }
    }
}

struct State {
    tables: Vec<Entry>,
    injections: Injections<Failure>,
    latency: Duration,
    expected_token: Option<String>,
    dynamic: DynamicCells,
    /// Every request the server saw, on any path.
    received: Vec<Request>,
    requests: Vec<RecordedRequest>,
    queries: Vec<QueryCall>,
    limits: Limits,
    filtering: bool,
    /// The answers in flight: each query's number and, once its answer is made, when it is
    /// due (made, plus what is left of its delay); and the most seen at once.
    in_flight: Vec<(usize, Option<Instant>)>,
    max_in_flight: usize,
    /// The number the next query gets in `in_flight`.
    next_answer: usize,
    /// When each answer was made and sent, in the order they were made.
    timings: Vec<AnswerTiming>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            tables: Vec::new(),
            injections: Injections::default(),
            latency: Duration::ZERO,
            expected_token: None,
            dynamic: DynamicCells::default(),
            received: Vec::new(),
            requests: Vec::new(),
            queries: Vec::new(),
            limits: Limits::default(),
            filtering: true,
            in_flight: Vec::new(),
            max_in_flight: 0,
            next_answer: 0,
            timings: Vec::new(),
        }
    }
}

/// When the fake handled one request on the query route, to find where a scan's time goes
/// (issue 12): a client that measures when it sent each query and when it had the answer
/// parsed can tell the fake's time from its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTiming {
    /// The query's KQL (empty for a request that carried none).
    pub kql: String,
    /// When the request had been read.
    pub arrived: Instant,
    /// When the answer's body was made (the rows generated, filtered and serialised).
    pub built: Instant,
    /// When the answer was due to go out: `arrived` plus the latency (and any injected
    /// delay), or `built` when making the body took longer.
    pub due: Instant,
    /// The HTTP status.
    pub status: u16,
    /// The body's size in bytes.
    pub bytes: usize,
    /// Whether the result was cut at a limit ([`Limits`]).
    pub cut: bool,
}

/// A fake Log Analytics query API on 127.0.0.1: `POST /v1/workspaces/{id}/query`.
///
/// Every query must carry `Authorization: Bearer …` (else 401 `AuthenticationFailed`); with
/// [`expect_token`](Self::expect_token) any other token gets 403. The answer is the first
/// registered table (or [`RowGenerator`]) whose matcher accepts the KQL, sent as
/// `PrimaryResult`; a query that no matcher accepts gets the 400 `SEM0100` a workspace without
/// that table returns.
///
/// Like the service (issue 12), the fake:
/// - filters rows by the request's `timespan` and by the time filter and identity lists that
///   `pim_kql`'s builders write into the KQL (it parses those, it does not run KQL; see the
///   `rows` module), and projects the `| project` columns, computing `CallerObjectId` from the
///   claims; [`set_row_filtering(false)`](Self::set_row_filtering) serves every row and column;
/// - cuts a result at the query API's limits ([`Limits`], default 500,000 rows and ~100 MiB,
///   [`set_limits`](Self::set_limits) lowers them) with the exact truncation response of
///   reference §9.2: HTTP 200, the table up to the cut, and a top-level `PartialError` whose
///   `innererror` code is `-2133196797`;
/// - counts the queries in flight ([`max_in_flight`](Self::max_in_flight)) and records when
///   it made and sent each answer ([`answer_timings`](Self::answer_timings));
/// - answers concurrent queries concurrently, as the service does: it is its own HTTP server
///   on a multi-threaded runtime (not `wiremock`'s single server thread), the state lock is
///   held only to read the request and choose the answer, and each body is made on a blocking
///   thread, so one 100 MB answer being made delays no other (issue 12, item 3).
///
/// Configuration methods take `&self`, so failures can be injected while a test runs.
pub struct LogAnalyticsFake {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for LogAnalyticsFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("LogAnalyticsFake")
            .field("uri", &self.server.uri())
            .field("tables", &state.tables.len())
            .field("requests", &state.requests.len())
            .field("expects_token", &state.expected_token.is_some())
            .finish()
    }
}

impl LogAnalyticsFake {
    /// Starts the fake with no tables.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let server = Server::start(handler(Arc::clone(&state)));
        Self { server, state }
    }

    /// The base URL (`http://127.0.0.1:<port>`), to use as the Log Analytics endpoint.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Serves `table` for queries whose KQL `matcher` accepts (first registered match wins).
    pub fn with_table_for(
        &self,
        matcher: impl Fn(&str) -> bool + Send + Sync + 'static,
        table: Table,
    ) -> &Self {
        lock(&self.state).tables.push(Entry {
            matcher: Arc::new(matcher),
            rows: Rows::Table(Arc::new(table)),
        });
        self
    }

    /// Serves rows made on demand by `generator` for queries whose KQL `matcher` accepts: for
    /// volumes that should not sit in memory (millions of rows with kilobytes of claims).
    pub fn with_generator_for(
        &self,
        matcher: impl Fn(&str) -> bool + Send + Sync + 'static,
        generator: Arc<dyn RowGenerator>,
    ) -> &Self {
        lock(&self.state).tables.push(Entry {
            matcher: Arc::new(matcher),
            rows: Rows::Generated(generator),
        });
        self
    }

    /// Sets the limits at which a result is cut (default [`Limits::default`], the service's).
    pub fn set_limits(&self, limits: Limits) -> &Self {
        lock(&self.state).limits = limits;
        self
    }

    /// Turns filtering by time and identity, and projection, on (the default) or off.
    pub fn set_row_filtering(&self, on: bool) -> &Self {
        lock(&self.state).filtering = on;
        self
    }

    /// The most queries that were in flight at once: at each arrival, the earlier queries
    /// whose answer was not yet due (due = when the fake finished the answer, plus its
    /// delay). A client can only have sent a query while those were outstanding, so this
    /// never overstates the client's concurrency.
    pub fn max_in_flight(&self) -> usize {
        lock(&self.state).max_in_flight
    }

    /// Forgets the in-flight count (before measuring another run).
    pub fn reset_max_in_flight(&self) -> &Self {
        let mut state = lock(&self.state);
        state.in_flight.clear();
        state.max_in_flight = 0;
        self
    }

    /// Serves the demo tenant: its AuditLogs table for queries that name `AuditLogs` first, its
    /// AzureActivity table (including the generated bulk rows) for those that name
    /// `AzureActivity` first.
    ///
    /// # Errors
    ///
    /// [`Error::Demo`] if the embedded demo data cannot be loaded.
    pub async fn with_demo_tenant(&self) -> Result<&Self> {
        let (audit, activity) = demo_tables().await?;
        self.with_table_for(
            |kql| demo_table_for(kql) == Some(LogTable::AuditLogs),
            audit,
        );
        self.with_table_for(
            |kql| demo_table_for(kql) == Some(LogTable::AzureActivity),
            activity,
        );
        Ok(self)
    }

    /// Answers the next `n` queries with `failure`.
    pub fn fail_next(&self, n: usize, failure: Failure) -> &Self {
        lock(&self.state).injections.add(Some(n), None, failure);
        self
    }

    /// Answers every query with `failure` (until [`clear_failures`](Self::clear_failures)).
    pub fn fail_always(&self, failure: Failure) -> &Self {
        lock(&self.state).injections.add(None, None, failure);
        self
    }

    /// Answers every query whose KQL contains `needle` with `failure`.
    pub fn fail_kql_containing(&self, needle: &str, failure: Failure) -> &Self {
        lock(&self.state)
            .injections
            .add(None, Some(needle.to_owned()), failure);
        self
    }

    /// Answers the next `n` queries whose KQL contains `needle` with `failure`.
    pub fn fail_next_kql_containing(&self, n: usize, needle: &str, failure: Failure) -> &Self {
        lock(&self.state)
            .injections
            .add(Some(n), Some(needle.to_owned()), failure);
        self
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) -> &Self {
        lock(&self.state).injections.clear();
        self
    }

    /// Delays every answer (failures included) by `latency`, counted from when the fake began
    /// the answer: the time spent making a large body is part of it.
    pub fn set_latency(&self, latency: Duration) -> &Self {
        lock(&self.state).latency = latency;
        self
    }

    /// Requires this exact bearer token; any other gets 403 `InvalidAuthenticationToken`.
    pub fn expect_token(&self, token: impl Into<String>) -> &Self {
        lock(&self.state).expected_token = Some(token.into());
        self
    }

    /// Chooses how `dynamic` cells are encoded (default [`DynamicCells::Strings`]).
    pub fn set_dynamic_cells(&self, mode: DynamicCells) -> &Self {
        lock(&self.state).dynamic = mode;
        self
    }

    /// Every request that reached the query route, in arrival order (also rejected ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Every well-formed, authenticated query, parsed, in arrival order.
    pub fn queries(&self) -> Vec<QueryCall> {
        lock(&self.state).queries.clone()
    }

    /// Every request the server saw, on any path, in `wiremock`'s request type.
    pub async fn received_requests(&self) -> Vec<Request> {
        lock(&self.state).received.clone()
    }

    /// When each request on the query route arrived, when its answer was made and when it was
    /// due, in arrival order (see [`AnswerTiming`]).
    pub fn answer_timings(&self) -> Vec<AnswerTiming> {
        // Recorded as each answer is made, which is not arrival order.
        let mut timings = lock(&self.state).timings.clone();
        timings.sort_by_key(|t| t.arrived);
        timings
    }
}

/// The demo tenant's AuditLogs and AzureActivity tables, as its adapter serves them.
///
/// # Errors
///
/// [`Error::Demo`] if the embedded demo data cannot be loaded.
pub async fn demo_tables() -> Result<(Table, Table)> {
    let demo = DemoTenant::new()?;
    let end = demo.reference_end();
    let mut tables = Vec::with_capacity(2);
    for table in LogTable::ALL {
        let query = LogQuery {
            label: format!("testkit-{table}"),
            table: Some(table),
            kql: table.name().to_owned(),
            timespan: TimeRange::new(end, end),
            scope: None,
        };
        let outcome = demo.query(&query).await?;
        let first = outcome.tables.into_iter().next().ok_or(Error::DemoEmpty {
            table: table.name(),
        })?;
        tables.push(first);
    }
    let activity = tables.pop().unwrap_or_default();
    let audit = tables.pop().unwrap_or_default();
    Ok((audit, activity))
}

/// The fake's request handler: routes `POST /v1/workspaces/{id}/query` to [`respond`], and
/// answers 404 elsewhere (as `wiremock` does for a request no mock matches).
fn handler(state: Arc<Mutex<State>>) -> server::Handler {
    Arc::new(move |request: Request| -> server::Handled {
        let state = Arc::clone(&state);
        Box::pin(async move {
            lock(&state).received.push(request.clone());
            if request.method == wiremock::http::Method::POST && is_query_path(request.url.path()) {
                respond(&state, &request).await
            } else {
                Reply::empty(404)
            }
        })
    })
}

/// Whether `path` is `/v1/workspaces/{id}/query`.
fn is_query_path(path: &str) -> bool {
    path.strip_prefix("/v1/workspaces/")
        .and_then(|rest| rest.strip_suffix("/query"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// What answering a query needs once the state lock is released.
enum Answer {
    /// The answer is known (an error, an injected failure, an empty 200).
    Ready(Reply),
    /// A success whose body is made from `rows`.
    Rows {
        rows: Rows,
        kql: String,
        timespan: Option<String>,
        filtering: bool,
        limits: Limits,
        dynamic: DynamicCells,
    },
}

/// Answers one query: under the state lock only what is cheap (record it, check it, choose the
/// answer); the body made on a blocking thread; then the rest of the latency as a timer, so
/// that concurrent queries overlap as they do on the service.
async fn respond(state: &Arc<Mutex<State>>, request: &Request) -> Reply {
    let arrived = Instant::now();
    let (id, answer, delay) = {
        let mut state = lock(state);
        state.requests.push(RecordedRequest::from_wiremock(request));
        let mut delay = state.latency;
        let answer = answer(&mut state, request, &mut delay);
        // In flight: every earlier answer not yet due when this query arrived (being made
        // counts as not due), and this one.
        let id = state.next_answer;
        state.next_answer += 1;
        state
            .in_flight
            .retain(|(_, due)| due.is_none_or(|due| due > arrived));
        state.in_flight.push((id, None));
        state.max_in_flight = state.max_in_flight.max(state.in_flight.len());
        (id, answer, delay)
    };
    let kql_of = |request: &Request| {
        serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|b| b.get("query").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default()
    };
    let (reply, cut, kql) = match answer {
        Answer::Ready(reply) => (reply, false, kql_of(request)),
        Answer::Rows {
            rows,
            kql,
            timespan,
            filtering,
            limits,
            dynamic,
        } => {
            let made = tokio::task::spawn_blocking(move || {
                let made = rows.success_body(&kql, timespan.as_deref(), filtering, limits, dynamic);
                (made, kql)
            })
            .await;
            match made {
                Ok(((body, cut), kql)) => (Reply::raw(200, body, "application/json"), cut, kql),
                Err(e) => (
                    error_response(
                        500,
                        "InternalServerError",
                        &format!("the fake failed to make the answer: {e}"),
                        None,
                    ),
                    false,
                    kql_of(request),
                ),
            }
        }
    };
    let built = Instant::now();
    // The latency runs from when the query arrived: making a large body is part of the
    // service's time, not added to it.
    let due = (arrived + delay).max(built);
    {
        let mut state = lock(state);
        if let Some(entry) = state.in_flight.iter_mut().find(|(i, _)| *i == id) {
            entry.1 = Some(due);
        }
        state.timings.push(AnswerTiming {
            kql,
            arrived,
            built,
            due,
            status: reply.status,
            bytes: reply.body.len(),
            cut,
        });
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
    reply
}

fn answer(state: &mut State, request: &Request, delay: &mut Duration) -> Answer {
    answer_or_reply(state, request, delay).unwrap_or_else(Answer::Ready)
}

/// The answer to a query, or the error reply it gets.
fn answer_or_reply(
    state: &mut State,
    request: &Request,
    delay: &mut Duration,
) -> Result<Answer, Reply> {
    let Some(token) = bearer_token(request) else {
        return Err(error_response(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            None,
        )
        .header("www-authenticate", "Bearer"));
    };
    if let Some(expected) = state.expected_token.as_deref()
        && expected != token
    {
        return Err(error_response(
            403,
            "InvalidAuthenticationToken",
            "The provided authentication token is not valid for this workspace.",
            None,
        ));
    }
    let is_json = header_text(request, "content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("application/json"));
    if request.body.is_empty() || !is_json {
        // The real API answers a POST without a JSON body or content type with an empty 200.
        return Err(Reply::empty(200));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return Err(error_response(
            400,
            "BadArgumentError",
            "The request body is not valid JSON.",
            None,
        ));
    };
    let Some(kql) = body.get("query").and_then(Value::as_str) else {
        return Err(error_response(
            400,
            "BadArgumentError",
            "The request had some invalid properties: 'query' is required.",
            None,
        ));
    };
    let workspace = request
        .url
        .path_segments()
        .and_then(|mut s| s.nth(2))
        .unwrap_or_default()
        .to_owned();
    state.queries.push(QueryCall {
        workspace,
        kql: kql.to_owned(),
        timespan: body
            .get("timespan")
            .and_then(Value::as_str)
            .map(str::to_owned),
        workspaces: body
            .get("workspaces")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        prefer: header_text(request, "prefer"),
    });

    let failure = state.injections.take(kql);
    let entry = state.tables.iter().find(|e| (e.matcher)(kql));
    let timespan = body.get("timespan").and_then(Value::as_str);
    let success = || match entry {
        Some(e) => Ok(Answer::Rows {
            rows: e.rows.clone(),
            kql: kql.to_owned(),
            timespan: timespan.map(str::to_owned),
            filtering: state.filtering,
            limits: state.limits,
            dynamic: state.dynamic,
        }),
        None => Err(semantic_error(&first_identifier(kql))),
    };
    match failure {
        None => success(),
        Some(Failure::Delay(extra)) => {
            *delay = delay.saturating_add(extra);
            success()
        }
        Some(failure) => Err(failure_response(
            failure,
            entry.map(|e| wire_table(&e.rows.table(), state.dynamic)),
        )),
    }
}

fn failure_response(failure: Failure, table: Option<Value>) -> Reply {
    match failure {
        Failure::Delay(_) => Reply::empty(200),
        Failure::TooManyRequests { retry_after_secs } => error_response(
            429,
            "ThrottledError",
            "Your request has been throttled. Please retry after the time in the Retry-After header.",
            None,
        )
        .header("retry-after", retry_after_secs.to_string()),
        Failure::ServiceUnavailable { retry_after_secs } => {
            let r = error_response(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
                None,
            );
            match retry_after_secs {
                Some(s) => r.header("retry-after", s.to_string()),
                None => r,
            }
        }
        Failure::InternalError => error_response(
            500,
            "InternalServerError",
            "An internal error occurred while processing the query.",
            None,
        ),
        Failure::GatewayTimeout => error_response(
            504,
            "GatewayTimeout",
            "The query took too long to run.",
            Some(json!({"code": "GatewayTimeout", "message": "Kusto query timed out"})),
        ),
        Failure::PartialError { message } => {
            let tables = table.map(|t| vec![t]).unwrap_or_default();
            Reply::json(200, &json!({
                "tables": tables,
                "error": {
                    "code": "PartialError",
                    "message": "There were some errors when processing your query.",
                    "details": [{
                        "code": "EngineError",
                        "message": "Something went wrong processing your query on the server.",
                        "innererror": {"code": "LimitsExceeded", "message": message}
                    }]
                }
            }))
        }
        Failure::BadQuery { line, pos, token } => error_response(
            400,
            "BadArgumentError",
            "The request had some invalid properties",
            Some(json!({
                "code": "SyntaxError",
                "message": "A recognition error occurred in the query.",
                "innererror": {
                    "code": "SYN0002",
                    "message": format!("Query could not be parsed at '{token}' on line [{line},{pos}]"),
                    "line": line,
                    "pos": pos,
                    "token": token
                }
            })),
        ),
        Failure::SemanticError { name } => semantic_error(&name),
        Failure::Unauthorized => error_response(
            401,
            "AuthenticationFailed",
            "Authentication failed.",
            None,
        )
        .header("www-authenticate", "Bearer"),
        Failure::Forbidden => error_response(
            403,
            "InsufficientAccessError",
            "The provided credentials have insufficient access to perform the requested operation",
            Some(json!({"code": "UnauthorizedClient", "message": "The client does not have access to the workspace."})),
        ),
        Failure::WrongAudience => error_response(
            403,
            "InvalidAuthenticationTokenAudience",
            "The provided authentication token is not valid for this audience.",
            None,
        ),
        Failure::NoContent => Reply::empty(204),
        Failure::EmptyOk => Reply::empty(200),
        Failure::Malformed(body) => {
            Reply::raw(200, body.into_bytes(), "application/json")
        }
    }
}

fn semantic_error(name: &str) -> Reply {
    error_response(
        400,
        "BadArgumentError",
        "The request had some invalid properties",
        Some(json!({
            "code": "SemanticError",
            "message": "A semantic error occurred.",
            "innererror": {
                "code": "SEM0100",
                "message": format!("'where' operator: Failed to resolve table or column expression named '{name}'")
            }
        })),
    )
}

/// The first identifier of a query, used as the "missing table" name.
fn first_identifier(kql: &str) -> String {
    kql.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .take(128)
        .collect()
}

fn error_response(status: u16, code: &str, message: &str, innererror: Option<Value>) -> Reply {
    let mut error = json!({
        "code": code,
        "message": message,
        "correlationId": "00000000-0000-0000-0000-00000000fa6e",
    });
    if let (Some(inner), Some(obj)) = (innererror, error.as_object_mut()) {
        obj.insert("innererror".to_owned(), inner);
    }
    Reply::json(status, &json!({ "error": error }))
}

/// A table in the query API's shape, named `PrimaryResult`.
fn wire_table(table: &Table, dynamic: DynamicCells) -> Value {
    let columns: Vec<Value> = table
        .columns
        .iter()
        .map(|c: &Column| json!({"name": c.name, "type": if c.kind.is_empty() { "string" } else { c.kind.as_str() }}))
        .collect();
    let is_dynamic: Vec<bool> = table
        .columns
        .iter()
        .map(|c| c.kind.eq_ignore_ascii_case("dynamic"))
        .collect();
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .enumerate()
                    .map(|(i, cell)| {
                        let stringify = dynamic == DynamicCells::Strings
                            && is_dynamic.get(i).copied().unwrap_or(false)
                            && (cell.is_array() || cell.is_object());
                        if stringify {
                            Value::String(cell.to_string())
                        } else {
                            cell.clone()
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    json!({"name": "PrimaryResult", "columns": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_word_table_detection() {
        assert!(reads_table("AuditLogs")("AuditLogs\n| where x"));
        assert!(!reads_table("AuditLogs")("AuditLogsArchive | take 1"));
        assert!(reads_table("AzureActivity")(
            "let a = 1; union (AzureActivity)"
        ));
        assert!(!reads_table("")("anything"));
        assert_eq!(
            demo_table_for("AzureActivity | join (AuditLogs) on x"),
            Some(LogTable::AzureActivity)
        );
        assert_eq!(
            demo_table_for("AuditLogs | where Category != 'AzureActivity'"),
            Some(LogTable::AuditLogs)
        );
        assert_eq!(demo_table_for("SigninLogs"), None);
        assert_eq!(first_identifier("  SigninLogs | take 1"), "SigninLogs");
    }

    #[test]
    fn dynamic_cells_become_strings_only_when_asked() {
        let t = Table {
            name: "AuditLogs".into(),
            columns: vec![
                Column {
                    name: "A".into(),
                    kind: "dynamic".into(),
                },
                Column {
                    name: "B".into(),
                    kind: String::new(),
                },
            ],
            rows: vec![vec![json!([{"key": "k"}]), json!({"x": 1})]],
        };
        let s = wire_table(&t, DynamicCells::Strings);
        assert_eq!(s["name"], "PrimaryResult");
        assert_eq!(s["rows"][0][0], json!("[{\"key\":\"k\"}]"));
        assert_eq!(s["rows"][0][1], json!({"x": 1}));
        assert_eq!(s["columns"][1]["type"], "string");
        let n = wire_table(&t, DynamicCells::Nested);
        assert_eq!(n["rows"][0][0], json!([{"key": "k"}]));
    }
}
