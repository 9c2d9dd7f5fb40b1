//! The scan's metrics, as OpenTelemetry instruments (issue 16, item 4).
//!
//! [`ScanMetrics`] is a [`ScanObserver`]: register it with
//! [`AuditorBuilder::observer`](crate::AuditorBuilder::observer) (beside a progress line with
//! [`Observers`](crate::Observers)) and every scan adds to its counters and histograms. It is
//! written against the `opentelemetry` API alone, which is what OpenTelemetry asks of a
//! library: the binary owns the SDK and the exporter (`pim_telemetry::Telemetry`) and hands in
//! a [`Meter`]. With telemetry off the binaries build no `ScanMetrics` at all.
//!
//! Every attribute is one of our own names (a verdict, a risk, a query family, a table, an
//! outcome, a failure kind): no identity, justification or other text from the logs, so the
//! series stay few and nothing untrusted reaches the collector.
//!
//! | instrument | kind, unit | attributes | what it counts |
//! |---|---|---|---|
//! | `pim.activations` | counter | `verdict`, `risk` | activations in the reports |
//! | `pim.findings` | counter | `verdict`, `risk` | the activations that need a human look |
//! | `pim.queries` | counter | `query`, `table`, `outcome` | queries run (`complete`, `cut`, `failed`) |
//! | `pim.query.rows` | counter | `query`, `table` | rows the queries returned |
//! | `pim.query.duration` | histogram, s | `query`, `table`, `outcome` | time of each query |
//! | `pim.model.calls` | counter | | requests sent to the model, retries included |
//! | `pim.model.tokens` | counter | `gen_ai.token.type` (`input`, `output`) | tokens the model service reported |
//! | `pim.model.failures` | counter | `error.type` | model assessments that gave no answer, by kind (`timeout`, `throttling`, `deadline`, ...) |
//! | `pim.model.duration` | histogram, s | `outcome` | time of each model assessment |
//! | `pim.run.duration` | histogram, s | `outcome` | time of each run |
//! | `pim.runs` | counter | `outcome` (`success`, `failure`) | runs |

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::observer::{ModelDone, ModelOutcome, QueryDone, ScanEnd, ScanObserver};

/// Bucket bounds in seconds for query, model and run times: from a fast export read to a long
/// throttled query or a model stage near its 10-minute deadline.
const SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0,
];

/// The scan's OpenTelemetry instruments; see the [module docs](self) for the names.
///
/// ```
/// use opentelemetry::metrics::MeterProvider;
/// use pim_core::{ScanMetrics, ScanObserver};
///
/// // A no-op meter here; a binary passes the one of its exporting meter provider.
/// let meter = opentelemetry::metrics::noop::NoopMeterProvider::new().meter("pim-audit");
/// let metrics = ScanMetrics::new(&meter);
/// metrics.record_run(true, std::time::Duration::from_secs(3));
/// ```
#[derive(Debug, Clone)]
pub struct ScanMetrics {
    activations: Counter<u64>,
    findings: Counter<u64>,
    queries: Counter<u64>,
    query_rows: Counter<u64>,
    query_duration: Histogram<f64>,
    model_calls: Counter<u64>,
    model_tokens: Counter<u64>,
    model_failures: Counter<u64>,
    model_duration: Histogram<f64>,
    run_duration: Histogram<f64>,
    runs: Counter<u64>,
    /// Whether each scan is a run (`pim-chat`), or the caller records the run
    /// (`pim-batch`, whose run also covers what happens before and after the scan).
    scan_is_run: bool,
}

impl ScanMetrics {
    /// The instruments, created from `meter`. Each finished scan counts as a run; see
    /// [`runs_recorded_by_caller`](Self::runs_recorded_by_caller) for a process whose run is
    /// more than its scan.
    pub fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(SECONDS.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Self {
            activations: counter(
                "pim.activations",
                "{activation}",
                "PIM activations in the reports, by verdict and risk",
            ),
            findings: counter(
                "pim.findings",
                "{activation}",
                "Activations that need a human look, by verdict and risk",
            ),
            queries: counter(
                "pim.queries",
                "{query}",
                "Log Analytics queries run, by family, table and outcome",
            ),
            query_rows: counter("pim.query.rows", "{row}", "Rows the queries returned"),
            query_duration: seconds("pim.query.duration", "Time of each query"),
            model_calls: counter(
                "pim.model.calls",
                "{request}",
                "Requests sent to the model, retries included",
            ),
            model_tokens: counter(
                "pim.model.tokens",
                "{token}",
                "Tokens the model service reported, input and output",
            ),
            model_failures: counter(
                "pim.model.failures",
                "{assessment}",
                "Model assessments that gave no answer, by kind",
            ),
            model_duration: seconds("pim.model.duration", "Time of each model assessment"),
            run_duration: seconds("pim.run.duration", "Time of each run"),
            runs: counter("pim.runs", "{run}", "Runs, by outcome"),
            scan_is_run: true,
        }
    }

    /// The caller records runs with [`record_run`](Self::record_run) (`pim-batch`: the run
    /// ends with the process, and fails too when the report cannot be written or sent);
    /// finished scans then only count what they found.
    pub fn runs_recorded_by_caller(mut self) -> Self {
        self.scan_is_run = false;
        self
    }

    /// One run ended after `duration`, succeeded or failed: `pim.runs` and `pim.run.duration`.
    pub fn record_run(&self, success: bool, duration: Duration) {
        let outcome = [KeyValue::new(
            "outcome",
            if success { "success" } else { "failure" },
        )];
        self.runs.add(1, &outcome);
        self.run_duration.record(duration.as_secs_f64(), &outcome);
    }
}

impl ScanObserver for ScanMetrics {
    fn query_done(&self, query: &QueryDone<'_>) {
        let family = [
            KeyValue::new("query", query.name.to_owned()),
            KeyValue::new("table", query.table.to_owned()),
        ];
        let mut with_outcome = family.to_vec();
        with_outcome.push(KeyValue::new("outcome", query.status.as_str()));
        self.queries.add(1, &with_outcome);
        self.query_rows
            .add(u64::try_from(query.rows).unwrap_or(u64::MAX), &family);
        self.query_duration
            .record(query.duration.as_secs_f64(), &with_outcome);
    }

    fn model_done(&self, call: &ModelDone) {
        let outcome = match call.outcome {
            ModelOutcome::Answered => "answered",
            ModelOutcome::Failed(_) | ModelOutcome::Deadline => "failed",
        };
        self.model_duration.record(
            call.duration.as_secs_f64(),
            &[KeyValue::new("outcome", outcome)],
        );
        let kind = match call.outcome {
            ModelOutcome::Answered => return,
            ModelOutcome::Failed(kind) => kind,
            ModelOutcome::Deadline => "deadline",
        };
        self.model_failures
            .add(1, &[KeyValue::new("error.type", kind)]);
    }

    fn finished(&self, end: &ScanEnd<'_>) {
        match end {
            ScanEnd::Succeeded(report) => {
                for a in &report.activations {
                    let attributes = [
                        KeyValue::new("verdict", a.assessment.verdict.as_str()),
                        KeyValue::new("risk", a.assessment.risk.as_str()),
                    ];
                    self.activations.add(1, &attributes);
                    if a.is_finding() {
                        self.findings.add(1, &attributes);
                    }
                }
                let run = &report.run;
                if run.model_calls > 0 {
                    self.model_calls.add(run.model_calls, &[]);
                }
                for (kind, tokens) in [
                    ("input", run.prompt_tokens),
                    ("output", run.completion_tokens),
                ] {
                    if tokens > 0 {
                        self.model_tokens
                            .add(tokens, &[KeyValue::new("gen_ai.token.type", kind)]);
                    }
                }
                if self.scan_is_run {
                    self.record_run(true, Duration::from_millis(run.duration_ms));
                }
            }
            ScanEnd::Failed(_, duration) => {
                if self.scan_is_run {
                    self.record_run(false, *duration);
                }
            }
        }
    }
}
