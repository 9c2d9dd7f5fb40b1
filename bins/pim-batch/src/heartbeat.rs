//! The heartbeat: every scan writes one [`RunRow`] (the run summary) to the `PimRun_CL` stream
//! when Logs Ingestion is configured, succeeded or failed, on the way out (issue 16, item 5).
//! Best effort: a heartbeat that cannot be sent is a warning, never the run's exit code.

use std::sync::Arc;

use pim_core::config::Settings;
use pim_core::domain::Report;
use pim_core::live;
use pim_deliver::{RunRow, RunStatus};
use time::OffsetDateTime;

/// What the heartbeat needs to know about the run, gathered as it goes.
#[derive(Debug)]
pub struct Run {
    /// When `main` started the scan.
    pub started: OffsetDateTime,
    /// The report, once the scan produced one.
    pub report: Option<Report>,
}

impl Run {
    /// A run starting now.
    pub fn start() -> Self {
        Self {
            started: OffsetDateTime::now_utc(),
            report: None,
        }
    }
}

/// Writes the run's heartbeat row when `settings` configure Logs Ingestion. Never fails: a
/// problem is logged as a warning (the row is only the job's own telemetry).
pub fn write(settings: Option<&Settings>, run: &Run, status: RunStatus, host: &str) {
    let Some(settings) = settings else {
        return;
    };
    let li = &settings.delivery.logs_ingestion;
    if li.endpoint.is_none() || li.rule_id.is_none() {
        return;
    }
    let ended = OffsetDateTime::now_utc();
    let fallback = format!(
        "run-{}-{}",
        run.started.unix_timestamp_nanos() / 1_000_000,
        std::process::id()
    );
    let row = RunRow::new(
        status,
        run.started,
        ended,
        run.report.as_ref(),
        &fallback,
        env!("CARGO_PKG_VERSION"),
        host,
    );
    if let Err(e) = send(settings, &row) {
        tracing::warn!(run_id = %row.run_id, "the heartbeat row was not written: {e:#}");
    }
}

fn send(settings: &Settings, row: &RunRow) -> anyhow::Result<()> {
    let credential = live::credential(settings)?;
    let credential: Arc<dyn live::TokenCredential> = credential;
    let Some(client) = pim_deliver::run_client(&settings.delivery.logs_ingestion, credential)?
    else {
        return Ok(());
    };
    // Its own small runtime: the scan's is gone by now (and may never have existed).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(client.send_run(row))?;
    tracing::info!(run_id = %row.run_id, status = ?row.status, "heartbeat written to Logs Ingestion");
    Ok(())
}

/// Where this runs: the kernel's host name (a container's name in a container), else the
/// platform's variable, else `unknown`.
pub fn host(vars: &std::collections::BTreeMap<String, String>) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| vars.get("HOSTNAME").cloned())
        .or_else(|| vars.get("COMPUTERNAME").cloned())
        .unwrap_or_else(|| "unknown".to_owned())
}
