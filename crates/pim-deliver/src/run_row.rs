//! The heartbeat row: one row per run of `pim-batch` into `PimRun_CL` (stream
//! `Custom-PimRun_CL`), the run summary that the alerts on the job's own health read
//! (`docs/alerting.md`, "The table PimRun_CL"; issue 16, item 5).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use pim_domain::Report;
use pim_domain::timestamp::format_utc;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::http::clean;
use crate::row::TEXT_MAX_CHARS;
use crate::{LogsIngestionClient, LogsIngestionSettings, Result, SendSummary};

/// The default stream of the heartbeat rows (`PIM_DCR_RUN_STREAM`).
pub const DEFAULT_RUN_STREAM: &str = "Custom-PimRun_CL";

/// The columns of `PimRun_CL`, in order, with their Log Analytics types: the table, the DCR's
/// stream declaration and [`RunRow`] must agree (a renamed column breaks deployed rules).
pub const RUN_COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("RunId", "string"),
    ("Status", "string"),
    ("StartedAt", "datetime"),
    ("EndedAt", "datetime"),
    ("DurationMs", "long"),
    ("Activations", "long"),
    ("Findings", "long"),
    ("ModelCalls", "long"),
    ("ModelFailures", "long"),
    ("InputProblems", "long"),
    ("Queries", "long"),
    ("Version", "string"),
    ("Host", "string"),
];

/// How a run ended, as the `Status` column says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The scan completed and its report was written (exit 0, or 3 for `--fail-on`).
    Succeeded,
    /// It did not, or a `--send` failed (exit 1 or 2).
    Failed,
}

/// One heartbeat row; field names are the `PimRun_CL` columns ([`RUN_COLUMNS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunRow {
    /// `datetime`: when the run ended (= `EndedAt`).
    pub time_generated: String,
    /// `string`: the report id when the run produced a report, otherwise an id of its own.
    pub run_id: String,
    /// `string`: `succeeded` or `failed`.
    pub status: RunStatus,
    /// `datetime`: when the run started.
    pub started_at: String,
    /// `datetime`: when the run ended.
    pub ended_at: String,
    /// `long`: `EndedAt − StartedAt` in milliseconds.
    pub duration_ms: i64,
    /// `long`: activations assessed.
    pub activations: u64,
    /// `long`: activations that need a human look.
    pub findings: u64,
    /// `long`: model calls (0 without a model).
    pub model_calls: u64,
    /// `long`: model calls that failed after their retries.
    pub model_failures: u64,
    /// `long`: input problems (unreadable, malformed or duplicate rows).
    pub input_problems: u64,
    /// `long`: Log Analytics queries made (or export files read).
    pub queries: u64,
    /// `string`: the `pim-batch` version.
    pub version: String,
    /// `string`: where it ran, at most [`TEXT_MAX_CHARS`] characters on one line.
    pub host: String,
}

impl RunRow {
    /// The row of a run that started at `started`, ended at `ended` with `status`, and produced
    /// `report` (none when it failed before one existed: the counts are then 0). `fallback_id`
    /// is the run id without a report.
    pub fn new(
        status: RunStatus,
        started: OffsetDateTime,
        ended: OffsetDateTime,
        report: Option<&Report>,
        fallback_id: &str,
        version: &str,
        host: &str,
    ) -> Self {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let duration = (ended - started).whole_milliseconds();
        Self {
            time_generated: format_utc(ended),
            run_id: clean(
                report.map_or(fallback_id, |r| r.report_id.as_str()),
                TEXT_MAX_CHARS,
            ),
            status,
            started_at: format_utc(started),
            ended_at: format_utc(ended),
            duration_ms: i64::try_from(duration.max(0)).unwrap_or(i64::MAX),
            activations: report.map_or(0, |r| count(r.summary.activations)),
            findings: report.map_or(0, |r| count(r.summary.findings)),
            model_calls: report.map_or(0, |r| r.run.model_calls),
            model_failures: report.map_or(0, |r| r.run.model_failures),
            input_problems: report.map_or(0, |r| count(r.summary.problems)),
            queries: report.map_or(0, |r| count(r.run.queries)),
            version: clean(version, TEXT_MAX_CHARS),
            host: clean(host, TEXT_MAX_CHARS),
        }
    }
}

/// The heartbeat's client: the configured rule and endpoint, on the run stream. `None` when
/// Logs Ingestion is not configured (no endpoint or no rule id): then no heartbeat is written.
///
/// # Errors
/// [`crate::Error::InvalidConfig`] for an endpoint, rule id or stream the client refuses.
pub fn run_client(
    settings: &LogsIngestionSettings,
    credential: Arc<dyn TokenCredential>,
) -> Result<Option<LogsIngestionClient>> {
    let (Some(endpoint), Some(rule)) = (&settings.endpoint, &settings.rule_id) else {
        return Ok(None);
    };
    LogsIngestionClient::new(endpoint, rule, &settings.run_stream, credential, None).map(Some)
}

impl LogsIngestionClient {
    /// Sends one heartbeat row (with the client's usual retries).
    ///
    /// # Errors
    /// As [`LogsIngestionClient::send`].
    pub async fn send_run(&self, row: &RunRow) -> Result<SendSummary> {
        self.send_rows(std::slice::from_ref(row), |r| r.run_id.clone())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_failed_run_without_a_report_has_every_column_and_zero_counts() {
        let row = RunRow::new(
            RunStatus::Failed,
            datetime!(2026-12-01 06:00:00 UTC),
            datetime!(2026-12-01 06:00:01.5 UTC),
            None,
            "run-1",
            "0.1.0",
            "job-7\nforged",
        );
        let v = serde_json::to_value(&row).unwrap();
        let object = v.as_object().unwrap();
        let names: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = RUN_COLUMNS.iter().map(|(n, _)| *n).collect();
        expected.sort_unstable();
        let mut got = names.clone();
        got.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(v["Status"], "failed");
        assert_eq!(v["RunId"], "run-1");
        assert_eq!(v["DurationMs"], 1500);
        assert_eq!(v["TimeGenerated"], v["EndedAt"]);
        assert_eq!(v["Activations"], 0);
        assert!(!v["Host"].as_str().unwrap().contains('\n'), "{v}");
    }

    #[test]
    fn the_columns_match_the_documented_table() {
        let doc = include_str!("../../../docs/alerting.md");
        let section = doc
            .split("## The table `PimRun_CL`")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        for (name, kind) in RUN_COLUMNS {
            assert!(
                section.contains(&format!("| `{name}` | {kind} |")),
                "{name} {kind} not in docs/alerting.md"
            );
        }
    }
}
