//! `pim-chat`: the interactive audit session. Wiring only: arguments and environment in, a
//! `pim_agent::Session` does the work, and `repl` moves lines between it and the terminal
//! (or a pipe).

mod args;
mod repl;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pim_agent::{Session, SessionOptions};
use pim_core::Auditor;
use pim_core::config::Settings;
use pim_core::domain::timestamp::parse_timestamp;
use pim_core::live;
use tracing::info;

use crate::args::Cli;

// Scans allocate many small strings (one per log cell) and free them again; mimalloc handles
// that much faster than the system allocator (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code when the session could not start.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.log_level) {
        eprintln!("pim-chat: error: {e:#}");
        return ExitCode::from(EXIT_FAILURE);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pim-chat: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A closed stdout (`pim-chat … | head`) is the reader's choice, not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr only, so stdout carries nothing but the session's answers.
fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("--log-level {level:?} is not a level or filter directive"))?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .finish();
    tracing::subscriber::set_global_default(subscriber).context("installing the logger")
}

/// The settings environment: a `.env` file in the working directory, overridden by the
/// process's own variables (the same precedence as `pim-batch`).
fn environment() -> anyhow::Result<BTreeMap<String, String>> {
    let path = Path::new(".env");
    let text = if path.is_file() {
        Some(std::fs::read_to_string(path).context("reading .env")?)
    } else {
        None
    };
    pim_core::config::environment(text.as_deref(), std::env::vars()).map_err(anyhow::Error::msg)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // A bad --end is the cheapest mistake to report, so it is checked before anything is built.
    let end = cli
        .end
        .as_deref()
        .map(|text| parse_timestamp(text).with_context(|| format!("--end {text:?}")))
        .transpose()?;
    let env = environment()?;
    let settings = Settings::from_env(&env).context("configuration")?;
    let offline = cli.source.demo || cli.source.from_dir.is_some();
    // The credential chain is only built when something live needs it; building it fetches no
    // token.
    let credential = if !offline || settings.model.is_some() {
        Some(live::credential(&env, cli.auth.as_deref()).context("credentials")?)
    } else {
        None
    };
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

    let mut builder = Auditor::builder(source.clone()).model_deadline(cli.model_deadline);
    if let Some(model) = &model {
        info!(model = %model.describe(), "model configured");
        let (assessor, limits) = live::model_assessor(model.clone(), settings.model_limits);
        builder = builder.assessor(assessor).model_limits(limits);
    }
    let auditor = Arc::new(builder.build());

    let info = source.info();
    let mut options = SessionOptions::default();
    if let Some(hours) = cli.hours {
        options.hours = hours;
    }
    if let Some(max_repairs) = cli.max_repairs {
        options.max_repairs = max_repairs;
    }
    let tables: Vec<String> = cli
        .allowed_tables
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tables.is_empty() {
        anyhow::bail!("--allowed-tables / PIM_ALLOWED_TABLES names no table");
    }
    options.query_policy.allowed_tables = tables;
    // Fixed data (the demo tenant) has a fixed end; live data ends at each request's "now".
    options.end = end.or(info.default_end);
    info!(source = %info.description, kind = info.kind.as_str(), hours = options.hours, "session starting");
    let session = Session::new(auditor, source, model, options);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if std::io::stdin().is_terminal() {
        repl::interactive(&runtime, session)
    } else {
        repl::piped(&runtime, session, std::io::stdin().lock())
    }
}
