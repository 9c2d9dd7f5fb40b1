//! `pim-batch`: the scheduled, non-interactive scan. Wiring only: arguments and settings in
//! (`pim_core::config`), one `pim_core::live::connect` call, the scan, the report out, and a
//! loop over the destinations.

mod args;
mod heartbeat;
mod history;
mod progress;
mod state;
mod telemetry;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};
use pim_core::config::{self, ConfigError, Settings};
use pim_core::domain::timestamp::parse_timestamp;
use pim_core::domain::{Report, Risk, Verdict};
use pim_core::{MarkdownOptions, ReportFormat, ScanObserver, ScanOptions, live};
use pim_deliver::Secret;
use time::OffsetDateTime;
use tracing::info;

use crate::args::{Cli, Command, Format, LogFormat};

// A scan allocates millions of small strings (one per log cell) and frees them again; mimalloc
// does that several times faster than the system allocator (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code when the scan could not be completed.
const EXIT_FAILURE: u8 = 1;
/// Exit code when a finding meets `--fail-on`.
const EXIT_FINDINGS: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These need no configuration: the schema comes from the report types themselves, the
    // completions and the man page from the argument definitions.
    match cli.command {
        Some(Command::Schema) => return finish(print_schema()),
        Some(Command::Completions { shell }) => {
            return finish(
                pim_telemetry::generate::completions(
                    shell,
                    Cli::command(),
                    &mut std::io::stdout().lock(),
                )
                .context("writing the completion script")
                .map(|()| ExitCode::SUCCESS),
            );
        }
        Some(Command::Man) => {
            return finish(
                pim_telemetry::generate::man(Cli::command(), &mut std::io::stdout().lock())
                    .context("writing the man page")
                    .map(|()| ExitCode::SUCCESS),
            );
        }
        Some(Command::History(_)) | None => {}
    }
    // The one read of the environment: `.env` under the process's own variables, then the
    // flags over both (issue 11).
    let env = match config::load_environment(Path::new(".env"), std::env::vars()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("pim-batch: error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let settings = Settings::from_env(&env.vars).and_then(|s| with_flags(s, &cli));
    let logging = settings
        .as_ref()
        .map(|s| s.logging.clone())
        .unwrap_or_default();
    // OpenTelemetry (issue 16): off, with nothing built, unless OTEL_EXPORTER_OTLP_ENDPOINT
    // is set. The guard lives to the end of main, so the last batch leaves on every exit path.
    let telemetry = match settings.as_ref().map(|s| telemetry::start(&s.telemetry)) {
        Ok(Err(e)) => {
            eprintln!("pim-batch: error: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
        Ok(Ok(t)) => t,
        Err(_) => pim_telemetry::Telemetry::disabled(),
    };
    let progress = Arc::new(progress::TerminalProgress::new());
    let level = logging.level.as_deref().unwrap_or("info");
    if let Err(e) = progress::init_logging(
        level,
        logging.format == config::LogFormat::Json,
        cli.log_file.as_deref(),
        &progress,
        &telemetry,
    ) {
        eprintln!("pim-batch: {e:#}");
        return ExitCode::from(EXIT_FAILURE);
    }
    for warning in &env.warnings {
        tracing::warn!("{warning}");
    }
    // The scan's metrics, beside the progress line; this process's run is recorded below, as
    // it ends, so a failure to write or send the report counts as the failed run it is.
    let metrics = telemetry
        .meter()
        .map(|m| pim_core::ScanMetrics::new(&m).runs_recorded_by_caller());
    let observer: Arc<dyn ScanObserver> = match &metrics {
        Some(m) => Arc::new(pim_core::Observers(vec![progress, Arc::new(m.clone())])),
        None => progress,
    };
    if cli.check {
        let code = finish(run(
            cli,
            &env,
            settings,
            observer,
            &mut heartbeat::Run::start(),
        ));
        telemetry::finish(telemetry);
        return code;
    }
    // Every scan, succeeded or failed, leaves a heartbeat row on its way out (issue 16).
    let started = std::time::Instant::now();
    let scans = cli.command.is_none();
    let mut record = heartbeat::Run::start();
    let for_heartbeat = settings.as_ref().ok().cloned();
    let code = finish(run(cli, &env, settings, observer, &mut record));
    let succeeded = code == ExitCode::SUCCESS || code == ExitCode::from(EXIT_FINDINGS);
    let status = if succeeded {
        pim_deliver::RunStatus::Succeeded
    } else {
        pim_deliver::RunStatus::Failed
    };
    heartbeat::write(
        for_heartbeat.as_ref(),
        &record,
        status,
        &heartbeat::host(&env.vars),
    );
    if let (Some(metrics), true) = (&metrics, scans) {
        metrics.record_run(succeeded, started.elapsed());
    }
    telemetry::finish(telemetry);
    code
}

/// The exit code of a run; a closed pipe (`pim-batch … | head`) is the reader's choice, not a
/// failure.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("pim-batch: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn print_schema() -> anyhow::Result<ExitCode> {
    let schema = pim_core::domain::schema::report_json_schema_string();
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(schema.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the schema to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The flags given, over the settings from the environment.
fn with_flags(mut s: Settings, cli: &Cli) -> Result<Settings, ConfigError> {
    if let Some(hours) = cli.hours {
        s.scan.hours = hours;
    }
    if let Some(hours) = cli.lookback_hours {
        s.scan.lookback_hours = hours;
    }
    if let Some(days) = cli.baseline_days {
        s.scan.baseline_days = days;
    }
    if let Some(max) = cli.max_activities {
        s.scan.max_activities = max;
    }
    if let Some(patterns) = &cli.privileged_patterns {
        s.scan.privileged_patterns = Some(config::list(
            "--privileged-patterns",
            patterns.iter().map(String::as_str),
            "pattern",
        )?);
    }
    if let Some(deadline) = cli.model_deadline {
        s.scan.model_deadline = deadline;
    }
    if let Some(auth) = &cli.auth {
        s.pin_auth(auth)?;
    }
    let li = &mut s.delivery.logs_ingestion;
    li.endpoint = cli.dcr_endpoint.clone().or(li.endpoint.take());
    li.rule_id = cli.dcr_rule_id.clone().or(li.rule_id.take());
    if let Some(stream) = &cli.dcr_stream {
        li.stream = stream.clone();
    }
    if let Some(url) = &cli.webhook_url {
        s.delivery.webhook_url = Some(Secret::new(url.clone()));
    }
    if let Some(path) = &cli.state {
        s.state = Some(path.clone());
    }
    if let Some(level) = &cli.log_level {
        s.logging.level = Some(level.clone());
    }
    if let Some(format) = cli.log_format {
        s.logging.format = log_format(format);
    }
    Ok(s)
}

fn log_format(format: LogFormat) -> config::LogFormat {
    match format {
        LogFormat::Text => config::LogFormat::Text,
        LogFormat::Json => config::LogFormat::Json,
    }
}

/// One `--fail-on` condition.
#[derive(Debug, Clone, Copy)]
enum FailOn {
    Verdict(Verdict),
    RiskAtLeast(Risk),
}

fn parse_fail_on(values: &[String]) -> anyhow::Result<Vec<FailOn>> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            if let Ok(verdict) = v.parse::<Verdict>() {
                Ok(FailOn::Verdict(verdict))
            } else if let Ok(risk) = v.parse::<Risk>() {
                Ok(FailOn::RiskAtLeast(risk))
            } else {
                bail!(
                    "--fail-on {v:?} is neither a verdict (aligned, partial, not_aligned, no_activity, unknown) nor a risk (low, medium, high, critical)"
                )
            }
        })
        .collect()
}

/// `--send` and `--send-threshold`, parsed once into typed destinations.
fn delivery(cli: &Cli, settings: &mut Settings) -> anyhow::Result<()> {
    settings.delivery.targets =
        pim_deliver::DestinationSpec::parse_list(&cli.send).map_err(anyhow::Error::msg)?;
    settings.delivery.threshold = cli
        .send_threshold
        .parse()
        .map_err(|e| anyhow::anyhow!("--send-threshold: {e}"))?;
    Ok(())
}

fn run(
    cli: Cli,
    env: &config::Environment,
    settings: Result<Settings, ConfigError>,
    observer: Arc<dyn ScanObserver>,
    record: &mut heartbeat::Run,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if cli.check {
        // A configuration error is a line of the check, not the end of it.
        let mut settings = settings;
        if let Ok(s) = &mut settings {
            delivery(&cli, s)?;
        }
        return runtime.block_on(check(settings, env.documented()));
    }
    if let Some(Command::History(args)) = &cli.command {
        let settings = settings.context("configuration")?;
        let path = settings
            .state
            .context("history reads the state store: pass --state PATH or set PIM_STATE")?;
        let store = pim_state::Store::open_read_only(&path)?;
        let text = history::render(&store, args, OffsetDateTime::now_utc())?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("writing the history to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    let fail_on = parse_fail_on(&cli.fail_on)?;
    let mut settings = settings.context("configuration")?;
    delivery(&cli, &mut settings)?;
    let choice = match &cli.source.from_dir {
        _ if cli.source.demo => live::SourceChoice::Demo,
        Some(dir) => live::SourceChoice::Exports(dir.clone()),
        None => live::SourceChoice::Workspace,
    };
    let connected = live::connect(&settings, &choice, Some(observer))?;
    let info = connected.source.info();
    let now = OffsetDateTime::now_utc();
    let end = match &cli.end {
        Some(text) => parse_timestamp(text).with_context(|| format!("--end {text:?}"))?,
        None => info.default_end.unwrap_or(now),
    };

    // With a state store, the run takes the lock first: a concurrent run is refused before it
    // queries anything (issue 13).
    let mut state = match &settings.state {
        Some(path) => Some(state::StateRun::open(
            path,
            cli.wait_lock,
            end,
            cli.settle,
            now,
        )?),
        None => None,
    };
    if state.is_none() && (cli.since_last || cli.wait_lock) {
        bail!("--since-last and --wait-lock need a state store: --state PATH or PIM_STATE");
    }
    let (end, hours) = match &state {
        Some(st) if cli.since_last => st.since_last(cli.overlap, settings.scan.hours)?,
        _ => (end, settings.scan.hours),
    };

    let mut options = ScanOptions::new(end);
    options.hours = hours;
    options.lookback_hours = settings.scan.lookback_hours;
    options.include_failed = cli.include_failed;
    options.max_activities_per_activation = settings.scan.max_activities;
    options.query_concurrency = settings.scan.query_concurrency;
    options.baseline_days = settings.scan.baseline_days;

    if let Some(st) = &state
        && options.baseline_days > 0
    {
        // The baseline period ends at the earliest activation window's start, at most the
        // look-back before the scan window: read every activation that can fall in it.
        let start = end
            - time::Duration::hours(i64::from(hours) + i64::from(options.lookback_hours))
            - time::Duration::days(i64::from(options.baseline_days));
        options.known_activations = st.known_activations(start, end)?.map(std::sync::Arc::new);
    }
    if let Some(st) = &mut state {
        st.begin((end - time::Duration::hours(i64::from(hours)), end))?;
    }
    info!(source = %info.description, kind = info.kind.as_str(), hours = options.hours, "scanning");
    let scanned = runtime
        .block_on(connected.auditor.scan(&options, now))
        .context("scan failed");
    let mut report = match scanned {
        Ok(report) => report,
        Err(e) => {
            if let Some(st) = &mut state {
                // The watermark stays: the next --since-last run covers this window again.
                st.finish(&pim_state::RunOutcome::Failed {
                    reason: format!("{e:#}"),
                })?;
            }
            return Err(e);
        }
    };
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    if let Some(st) = &mut state {
        // Assessments and the deliveries they call for are committed together, before
        // anything is sent: a crash from here on is recovered by the next run's outbox.
        st.record(&mut report, &connected.destinations)?;
    }
    // The heartbeat row (written on the way out) reads the finished report.
    let report = &*record.report.insert(report);

    let format = match cli.format {
        Format::Markdown => ReportFormat::Markdown,
        Format::Json => ReportFormat::Json,
    };
    let markdown = MarkdownOptions {
        max_listed_activities: cli.max_listed,
    };
    let text = pim_core::render(report, format, cli.template.as_deref(), &markdown)
        .context("rendering the report")?;
    match &cli.output {
        Some(path) => std::fs::write(path, text.as_bytes())
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .context("writing the report to stdout")?;
            out.flush().context("writing the report to stdout")?;
        }
    }

    // Delivery comes after the report is safely written: a failed send must not lose it.
    if let Some(st) = &mut state {
        let failed = runtime.block_on(st.deliver(report, &connected.destinations))?;
        // The scan and its assessments are recorded: the watermark moves even when a send
        // failed, because the outbox keeps what was not sent.
        st.finish(&pim_state::RunOutcome::Succeeded)?;
        if let Some((name, reason)) = failed.first() {
            bail!(
                "sending to {name}: {reason} (kept in the state's outbox; the next run retries it, --check lists it)"
            );
        }
    } else {
        runtime.block_on(async {
            for destination in &connected.destinations {
                destination
                    .send(report)
                    .await
                    .with_context(|| format!("sending to {}", destination.name()))?;
            }
            anyhow::Ok(())
        })?;
    }

    let met = findings_meeting(report, &fail_on);
    if met > 0 {
        info!(activations = met, "--fail-on met");
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--check`: one line per check on stdout; exit 0 when all pass.
async fn check(
    settings: Result<Settings, ConfigError>,
    variables: Vec<(&'static str, config::Origin)>,
) -> anyhow::Result<ExitCode> {
    use pim_core::preflight::{self, CredentialSource, PreflightInputs};
    let mut credential = None;
    let mut chain = None;
    if let Ok(s) = &settings {
        match live::credential(s) {
            Ok(c) => {
                chain = Some(c.clone());
                credential = Some(CredentialSource::from(c));
            }
            Err(e) => {
                let reason = format!("{:#}", anyhow::Error::from(e));
                credential = Some(CredentialSource::Unavailable(reason));
            }
        }
    }
    let mut inputs = PreflightInputs::new(settings.as_ref(), OffsetDateTime::now_utc());
    if let (Ok(s), Some(c)) = (&settings, &chain) {
        if !s.workspaces.is_empty() {
            inputs.source = Some(live::log_analytics(s, c.clone()).context("Log Analytics")?);
        }
        inputs.model = live::chat_model(s, c.clone()).context("model")?;
    }
    inputs.credential = credential;
    inputs.variables = variables;
    if let Ok(s) = &settings {
        // The same call the scan makes; each destination brings its probe and its token.
        let c = chain.clone().map(|c| c as Arc<dyn live::TokenCredential>);
        inputs.add_destinations(&pim_deliver::destinations(&s.delivery, c)?);
        if let Some(verifier) = live::ticket_verifier(s).context("ticket verification")? {
            inputs.add_ticket_systems(&verifier);
        }
    }
    let state_path = settings.as_ref().ok().and_then(|s| s.state.clone());
    let mut results = preflight::run(inputs).await;
    if let Some(path) = state_path {
        results.extend(state::check_lines(&path, OffsetDateTime::now_utc()));
    }
    let mut out = std::io::stdout().lock();
    for r in &results {
        writeln!(out, "{r}").context("writing to stdout")?;
    }
    Ok(if preflight::all_passed(&results) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

fn findings_meeting(report: &Report, fail_on: &[FailOn]) -> usize {
    report
        .activations
        .iter()
        .filter(|a| {
            fail_on.iter().any(|f| match f {
                FailOn::Verdict(v) => a.assessment.verdict == *v,
                FailOn::RiskAtLeast(r) => a.assessment.risk >= *r,
            })
        })
        .count()
}
