//! `--state` wiring: the run lock, the `--since-last` window, recording the assessments and
//! delivering exactly once through the outbox (issue 13). The store itself is `pim-state`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use pim_core::domain::{Report, ReportSummary};
use pim_deliver::{Delivered, Destination};
use pim_state::{Holder, LockWait, RunId, RunOutcome, Settle, Store, Subscriber};
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

/// A destination's threshold, boxed so the store can ask it.
type Selects = Box<dyn Fn(&pim_core::domain::ActivationReport) -> bool + Sync>;

/// Who this process is, for the lock file and the runs table.
pub fn holder(started: OffsetDateTime) -> Holder {
    // The binary may read the environment; the library never does. Container Apps and most
    // shells set HOSTNAME; /etc/hostname covers cron on a VM.
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned());
    Holder {
        pid: std::process::id(),
        host,
        started,
    }
}

fn duration(d: std::time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::MAX)
}

/// One run on the state: the open store (holding the lock) and the run's row.
pub struct StateRun {
    store: Store,
    holder: Holder,
    run: Option<RunId>,
    /// The run's reference time (`--end`, else now) and the settle time.
    pub settle: Settle,
}

impl StateRun {
    /// Opens the state for a run, creating it on first use.
    pub fn open(
        path: &Path,
        wait: bool,
        reference: OffsetDateTime,
        settle: std::time::Duration,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of {}", path.display()))?;
        }
        let holder = holder(now);
        let wait = if wait { LockWait::Wait } else { LockWait::Fail };
        let store = Store::open(path, &holder, wait)?;
        Ok(Self {
            store,
            holder,
            run: None,
            settle: Settle {
                now: reference,
                settle: duration(settle),
            },
        })
    }

    /// The `--since-last` window as (end, hours): from the last successful run's end minus
    /// `overlap` (and never after the earliest provisional activation, so it is re-assessed)
    /// to the reference time minus the settle time. The first run uses `first_hours`.
    pub fn since_last(
        &self,
        overlap: std::time::Duration,
        first_hours: u32,
    ) -> anyhow::Result<(OffsetDateTime, u32)> {
        let end = self.settle.now - self.settle.settle;
        let Some(last) = self.store.last_success()? else {
            info!(
                hours = first_hours,
                "no successful run in the state yet: scanning --hours"
            );
            return Ok((end, first_hours));
        };
        let mut start = last.window_end - duration(overlap);
        if let Some(p) = self.store.earliest_provisional()? {
            start = start.min(p);
        }
        let seconds = (end - start).whole_seconds().max(0);
        let hours = u32::try_from((seconds + 3599) / 3600)
            .unwrap_or(u32::MAX)
            .max(1);
        info!(watermark = %last.window_end, hours, "--since-last: scanning from the last successful run");
        Ok((end, hours))
    }

    /// The activations recorded in `[since, until)`, for the behaviour baseline's counts
    /// (issue 14): `None` before the first successful run, when the store knows nothing yet.
    pub fn known_activations(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> anyhow::Result<Option<pim_core::KnownActivations>> {
        let Some(recorded) = self.store.recorded_since()? else {
            return Ok(None);
        };
        let activations = self
            .store
            .activations_between(since, until, None)?
            .into_iter()
            .map(|a| pim_core::KnownActivation {
                upn: a.report.principal.upn,
                object_id: a.report.principal.object_id,
                activated_at: a.report.activated_at,
            })
            .collect();
        Ok(Some(pim_core::KnownActivations {
            since: recorded,
            activations,
        }))
    }

    /// Records the start of the run over `window`.
    pub fn begin(&mut self, window: (OffsetDateTime, OffsetDateTime)) -> anyhow::Result<()> {
        self.run = Some(self.store.begin_run(&self.holder, window)?);
        Ok(())
    }

    /// Ends the run.
    pub fn finish(&mut self, outcome: &RunOutcome) -> anyhow::Result<()> {
        if let Some(run) = self.run {
            self.store
                .finish_run(run, OffsetDateTime::now_utc(), outcome)?;
        }
        Ok(())
    }

    /// Stores the report's activations with their state and revision, queues their
    /// deliveries, and recomputes the summary (a final activation carries its stored
    /// assessment).
    pub fn record(
        &mut self,
        report: &mut Report,
        destinations: &[Arc<dyn Destination>],
    ) -> anyhow::Result<()> {
        let run = self.run.context("the run was not started")?;
        let selects: Vec<Selects> = destinations
            .iter()
            .map(|d| {
                let d = Arc::clone(d);
                Box::new(move |a: &pim_core::domain::ActivationReport| d.selects(a)) as Selects
            })
            .collect();
        let subscribers: Vec<Subscriber<'_>> = destinations
            .iter()
            .zip(&selects)
            .map(|(d, s)| Subscriber {
                key: d.name(),
                selects: s.as_ref(),
            })
            .collect();
        let done = self
            .store
            .record(run, &mut report.activations, self.settle, &subscribers)?;
        let problems = report.problems.len()
            + report
                .activations
                .iter()
                .map(|a| a.problems.len())
                .sum::<usize>();
        report.summary = ReportSummary::compute(&report.activations, problems);
        report.run.findings = report.summary.findings;
        info!(
            new = done.new,
            revised = done.revised,
            unchanged = done.unchanged,
            settled = done.settled,
            queued = done.enqueued,
            "state recorded"
        );
        if done.unreadable > 0 {
            warn!(
                rows = done.unreadable,
                "stored activations could not be read back and were replaced"
            );
        }
        Ok(())
    }

    /// Sends each destination's outbox (this run's and earlier runs' unsent deliveries);
    /// returns the destinations that failed, with their error. Their deliveries stay queued.
    pub async fn deliver(
        &mut self,
        template: &Report,
        destinations: &[Arc<dyn Destination>],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut failed = Vec::new();
        for destination in destinations {
            let key = destination.name();
            let pending = self.store.outbox(&key)?;
            if pending.is_empty() {
                info!(destination = %key, "nothing new to send");
                continue;
            }
            let ids: Vec<(String, u32)> = pending
                .iter()
                .map(|p| (p.activation.id.clone(), p.revision))
                .collect();
            let mut report = template.clone();
            report.activations = pending.into_iter().map(|p| p.activation).collect();
            report.summary = ReportSummary::compute(&report.activations, 0);
            match destination.send(&report).await {
                Ok(Delivered::Sent { items }) => {
                    info!(destination = %key, items, "outbox sent");
                    self.store
                        .mark_sent(&key, &ids, OffsetDateTime::now_utc())?;
                }
                Ok(Delivered::NothingToSend) => {
                    self.store
                        .mark_sent(&key, &ids, OffsetDateTime::now_utc())?;
                }
                Err(e) => {
                    let reason = format!("{:#}", anyhow::Error::from(e));
                    warn!(destination = %key, queued = ids.len(), error = %reason, "send failed; kept in the outbox for the next run");
                    self.store.mark_failed(&key, &ids, &reason)?;
                    failed.push((key, reason));
                }
            }
        }
        Ok(failed)
    }
}

use pim_core::domain::timestamp::format_utc;

/// An age as `2d 3h`, `3h 12m` or `12m`.
fn age_text(age: Duration) -> String {
    let minutes = age.whole_minutes().max(0);
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The `--check` lines about the state: the file, its schema version, the last successful
/// run and its age, and the outbox.
pub fn check_lines(path: &Path, now: OffsetDateTime) -> Vec<pim_core::preflight::CheckResult> {
    use pim_core::preflight::{CheckResult, CheckStatus};
    let line = |name: &str, status, detail: String, remedy: Option<&str>| CheckResult {
        name: name.to_owned(),
        status,
        detail,
        remedy: remedy.map(str::to_owned),
    };
    let store = match Store::open_read_only(path) {
        Ok(s) => s,
        Err(pim_state::Error::Missing { .. }) => {
            return vec![line(
                "state",
                CheckStatus::Pass,
                format!(
                    "{} does not exist yet; the first run creates it",
                    path.display()
                ),
                None,
            )];
        }
        Err(e) => {
            return vec![line(
                "state",
                CheckStatus::Fail,
                format!("{}: {e}", path.display()),
                Some("point --state / PIM_STATE at the state file of this deployment"),
            )];
        }
    };
    let mut out = Vec::new();
    let version = store.schema_version().unwrap_or(0);
    out.push(line(
        "state",
        CheckStatus::Pass,
        format!("{}, schema version {version}", path.display()),
        None,
    ));
    match store.last_success() {
        Ok(Some(run)) => {
            let at = run.ended_at.unwrap_or(run.started_at);
            let age = now - at;
            out.push(line(
                "state last run",
                CheckStatus::Pass,
                format!(
                    "last successful run ended {} ({} ago), watermark {}",
                    format_utc(at),
                    age_text(age),
                    format_utc(run.window_end)
                ),
                None,
            ));
        }
        Ok(None) => out.push(line(
            "state last run",
            CheckStatus::Pass,
            "no successful run yet".to_owned(),
            None,
        )),
        Err(e) => out.push(line(
            "state last run",
            CheckStatus::Fail,
            e.to_string(),
            None,
        )),
    }
    match store.outbox_summary() {
        Ok(outbox) if outbox.is_empty() => out.push(line(
            "state outbox",
            CheckStatus::Pass,
            "empty".to_owned(),
            None,
        )),
        Ok(outbox) => {
            for o in outbox {
                let error = o
                    .last_error
                    .as_deref()
                    .map(|e| {
                        format!(
                            "; last error: {}",
                            pim_core::domain::text::log_field(e, 200)
                        )
                    })
                    .unwrap_or_default();
                out.push(line(
                    &format!("state outbox {}", o.destination),
                    CheckStatus::Fail,
                    format!(
                        "{} deliveries waiting since {}{error}",
                        o.pending,
                        o.oldest.map(format_utc).unwrap_or_default()
                    ),
                    Some("the next run retries them; check the destination"),
                ));
            }
        }
        Err(e) => out.push(line("state outbox", CheckStatus::Fail, e.to_string(), None)),
    }
    out
}
