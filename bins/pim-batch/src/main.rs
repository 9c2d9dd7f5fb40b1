//! `pim-batch`: the scheduled, non-interactive scan. Wiring only: arguments and environment in,
//! `pim-core` does the work, the report out.

mod args;
mod progress;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use pim_core::config::Settings;
use pim_core::domain::timestamp::parse_timestamp;
use pim_core::domain::{Report, Risk, Verdict};
use pim_core::{Auditor, MarkdownOptions, ReportFormat, RulesConfig, ScanOptions, live};
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
    let progress = Arc::new(progress::TerminalProgress::new());
    if let Err(e) =
        progress::init_logging(&cli.log_level, cli.log_format == LogFormat::Json, &progress)
    {
        eprintln!("pim-batch: {e:#}");
        return ExitCode::from(EXIT_FAILURE);
    }
    match run(cli, progress) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`pim-batch … | head`) is the reader's choice, not a failure.
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

/// The environment: the process's own variables over a `.env` file in the working directory.
fn environment() -> anyhow::Result<BTreeMap<String, String>> {
    let dotenv = std::path::Path::new(".env");
    let text = if dotenv.is_file() {
        Some(std::fs::read_to_string(dotenv).context("reading .env")?)
    } else {
        None
    };
    pim_core::config::environment(text.as_deref(), std::env::vars()).map_err(anyhow::Error::msg)
}

/// Where `--send` delivers the findings.
enum Target {
    LogsIngestion(pim_deliver::LogsIngestionClient),
    Webhook(pim_deliver::WebhookClient),
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::LogsIngestion(c) => format!("logs-ingestion {}", c.url()),
            Target::Webhook(c) => c.display_url(),
        }
    }
}

/// Builds the `--send` destinations up front, so a misconfigured one stops the run before
/// the scan rather than after it.
fn targets(
    cli: &Cli,
    credential: Option<&Arc<pim_auth::ChainCredential>>,
) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for send in cli
        .send
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if send.eq_ignore_ascii_case("logs-ingestion") {
            let endpoint = cli.dcr_endpoint.as_deref().context(
                "--send logs-ingestion needs the data collection endpoint: --dcr-endpoint or PIM_DCR_ENDPOINT",
            )?;
            let rule = cli.dcr_rule_id.as_deref().context(
                "--send logs-ingestion needs the data collection rule's immutable id: --dcr-rule-id or PIM_DCR_RULE_ID",
            )?;
            let credential = credential.context("--send logs-ingestion needs Azure credentials")?;
            let client = pim_deliver::LogsIngestionClient::new(
                endpoint,
                rule,
                &cli.dcr_stream,
                credential.clone(),
                None,
            )
            .context("--send logs-ingestion")?;
            out.push(Target::LogsIngestion(client));
        } else if send.eq_ignore_ascii_case("webhook")
            || send.to_ascii_lowercase().starts_with("webhook=")
        {
            let url = match send.split_once('=') {
                Some((_, url)) => url.to_owned(),
                None => cli
                    .webhook_url
                    .clone()
                    .context("--send webhook needs the URL: PIM_WEBHOOK_URL, --webhook-url, or --send webhook=URL")?,
            };
            // Never echo the URL: its query may carry a signature.
            let client = pim_deliver::WebhookClient::new(&url, None).context("--send webhook")?;
            out.push(Target::Webhook(client));
        } else {
            bail!("--send {send:?}: expected logs-ingestion, webhook or webhook=URL");
        }
    }
    Ok(out)
}

fn run(cli: Cli, progress: Arc<progress::TerminalProgress>) -> anyhow::Result<ExitCode> {
    if let Some(Command::Schema) = cli.command {
        // Needs no configuration: the schema comes from the report types themselves.
        let schema = pim_core::domain::schema::report_json_schema_string();
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(schema.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing the schema to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    let env = environment()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if cli.check {
        return runtime.block_on(check(&cli, &env));
    }
    let fail_on = parse_fail_on(&cli.fail_on)?;
    let threshold: pim_deliver::Threshold = cli
        .send_threshold
        .parse()
        .map_err(|e| anyhow::anyhow!("--send-threshold: {e}"))?;
    let settings = Settings::from_env(&env).context("configuration")?;
    let sends_logs = cli
        .send
        .iter()
        .any(|s| s.to_ascii_lowercase().contains("logs-ingestion"));
    // The credential chain is built only when something live needs it (no token is fetched
    // until a request is made).
    let needs_azure = !(cli.source.demo || cli.source.from_dir.is_some())
        || settings.model.is_some()
        || sends_logs;
    let credential = if needs_azure {
        Some(live::credential(&env, cli.auth.as_deref()).context("credentials")?)
    } else {
        None
    };
    let targets = targets(&cli, credential.as_ref())?;
    let choice = match &cli.source.from_dir {
        _ if cli.source.demo => live::SourceChoice::Demo,
        Some(dir) => live::SourceChoice::Exports(dir.clone()),
        None => live::SourceChoice::Workspace,
    };
    let source = live::open_source(
        &choice,
        &settings,
        credential
            .clone()
            .map(|c| c as Arc<dyn live::TokenCredential>),
    )
    .context("opening the log source")?;
    let model = match &credential {
        Some(credential) => live::chat_model(&settings, credential.clone()).context("model")?,
        None => None,
    };
    let info = source.info();
    let now = OffsetDateTime::now_utc();
    let end = match &cli.end {
        Some(text) => parse_timestamp(text).with_context(|| format!("--end {text:?}"))?,
        None => info.default_end.unwrap_or(now),
    };

    let mut options = ScanOptions::new(end);
    options.hours = cli.hours;
    options.lookback_hours = cli.lookback_hours;
    options.include_failed = cli.include_failed;
    options.max_activities_per_activation = cli.max_activities;

    let mut rules = RulesConfig::default();
    if let Some(patterns) = cli.privileged_patterns.clone() {
        let patterns: Vec<String> = patterns
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if patterns.is_empty() {
            bail!("--privileged-patterns / PIM_PRIVILEGED_PATTERNS is set but names no pattern");
        }
        rules.privileged_name_patterns = patterns;
    }
    let mut builder = Auditor::builder(source)
        .rules(rules)
        .observer(progress)
        .model_deadline(cli.model_deadline);
    if let Some(model) = model {
        info!(model = %model.describe(), "model-backed assessment on");
        let (a, limits) = live::model_assessor(model, settings.model_limits);
        builder = builder.assessor(a).model_limits(limits);
    }
    let auditor = builder.build();

    info!(source = %info.description, kind = info.kind.as_str(), hours = options.hours, "scanning");
    let report = runtime
        .block_on(auditor.scan(&options, now))
        .context("scan failed")?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }

    let format = match cli.format {
        Format::Markdown => ReportFormat::Markdown,
        Format::Json => ReportFormat::Json,
    };
    let markdown = MarkdownOptions {
        max_listed_activities: cli.max_listed,
    };
    let text = pim_core::render(&report, format, cli.template.as_deref(), &markdown)
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
    runtime.block_on(deliver(&targets, &report, &threshold))?;

    let met = findings_meeting(&report, &fail_on);
    if met > 0 {
        info!(activations = met, "--fail-on met");
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

async fn deliver(
    targets: &[Target],
    report: &Report,
    threshold: &pim_deliver::Threshold,
) -> anyhow::Result<()> {
    for target in targets {
        match target {
            Target::LogsIngestion(client) => {
                let rows = pim_deliver::rows(report);
                let sent = client
                    .send(&rows)
                    .await
                    .with_context(|| format!("sending to {}", target.name()))?;
                info!(
                    rows = sent.rows,
                    batches = sent.batches,
                    retries = sent.retries,
                    "findings sent to Logs Ingestion"
                );
            }
            Target::Webhook(client) => {
                let summary = pim_deliver::findings_summary(report, threshold.clone());
                if summary.is_empty() {
                    info!(webhook = %client.display_url(), "no finding at the threshold; webhook not called");
                    continue;
                }
                client
                    .send(&summary)
                    .await
                    .with_context(|| format!("sending to {}", target.name()))?;
                info!(webhook = %client.display_url(), findings = summary.findings.len(), "findings sent to the webhook");
            }
        }
    }
    Ok(())
}

/// `--check`: one line per check on stdout; exit 0 when all pass.
async fn check(cli: &Cli, env: &BTreeMap<String, String>) -> anyhow::Result<ExitCode> {
    use pim_core::preflight::{self, CredentialSource, Destination, PreflightInputs};
    let settings = Settings::from_env(env);
    let sends_logs = cli
        .send
        .iter()
        .any(|s| s.to_ascii_lowercase().contains("logs-ingestion"));
    let mut credential = None;
    let mut chain = None;
    if settings.is_ok() {
        match live::credential(env, cli.auth.as_deref()) {
            Ok(c) => {
                chain = Some(c.clone());
                credential = Some(CredentialSource::from(c));
            }
            Err(e) => credential = Some(CredentialSource::Unavailable(format!("{e:#}"))),
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
    // The token check asks for the scope of the data collection endpoint's cloud; a missing
    // endpoint is reported by the destination check below.
    inputs.logs_ingestion = sends_logs.then(|| cli.dcr_endpoint.clone().unwrap_or_default());
    for target in targets(cli, chain.as_ref())? {
        let name = target.name();
        inputs.destinations.push(match target {
            Target::LogsIngestion(c) => Destination::new(name, async move { c.probe().await }),
            Target::Webhook(c) => Destination::new(name, async move { c.probe().await }),
        });
    }
    let results = preflight::run(inputs).await;
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
