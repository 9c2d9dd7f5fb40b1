//! `pim-chat`: the interactive audit session. Wiring only: arguments and settings in
//! (`pim_core::config`), one `pim_core::live::connect` call, a `pim_agent::Session` does the
//! work, and `repl` moves lines between it and the terminal
//! (or a pipe).

mod args;
mod repl;
mod serve;
mod telemetry;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use pim_agent::{Session, SessionOptions};
use pim_core::config::{self, ConfigError, Settings};
use pim_core::domain::timestamp::parse_timestamp;
use pim_core::live;
use tracing::info;

use crate::args::{Cli, Command, LogFormat};

// Scans allocate many small strings (one per log cell) and free them again; mimalloc handles
// that much faster than the system allocator (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code when the session could not start.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These need no configuration: both come from the argument definitions.
    if let Some(command @ (Command::Completions { .. } | Command::Man)) = &cli.command {
        let mut stdout = std::io::stdout().lock();
        let written = match command {
            Command::Completions { shell } => {
                pim_telemetry::generate::completions(*shell, Cli::command(), &mut stdout)
                    .context("writing the completion script")
            }
            _ => pim_telemetry::generate::man(Cli::command(), &mut stdout)
                .context("writing the man page"),
        };
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pim-chat: error: {e:#}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    // The one read of the environment: `.env` under the process's own variables, then the
    // flags over both (the same as pim-batch; issue 11).
    let env = match config::load_environment(Path::new(".env"), std::env::vars()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("pim-chat: error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let settings = Settings::from_env(&env.vars).and_then(|s| with_flags(s, &cli));
    let logging = match &settings {
        Ok(s) => s.logging.clone(),
        Err(_) => config::LogSettings {
            level: cli.log_level.clone(),
            format: cli.log_format.map(log_format).unwrap_or_default(),
        },
    };
    // OpenTelemetry (issue 16): nothing is built unless OTEL_EXPORTER_OTLP_ENDPOINT is set;
    // the guard lives to the end of main, so what is buffered leaves on every exit path.
    let telemetry = match settings.as_ref().map(|s| telemetry::start(&s.telemetry)) {
        Ok(Err(e)) => {
            eprintln!("pim-chat: error: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
        Ok(Ok(t)) => t,
        Err(_) => pim_telemetry::Telemetry::disabled(),
    };
    if let Err(e) = init_logging(&logging, cli.log_file.as_deref(), &telemetry) {
        eprintln!("pim-chat: error: {e:#}");
        return ExitCode::from(EXIT_FAILURE);
    }
    for warning in &env.warnings {
        tracing::warn!("{warning}");
    }
    // Every scan of the session (or of `serve`'s sessions) is a run of its own.
    let metrics = telemetry
        .meter()
        .map(|m| Arc::new(pim_core::ScanMetrics::new(&m)) as Arc<dyn pim_core::ScanObserver>);
    let code = match run(cli, settings, metrics) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pim-chat: error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    };
    telemetry::finish(telemetry);
    code
}

/// A closed stdout (`pim-chat … | head`) is the reader's choice, not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr (and the `--log-file`) only, so stdout carries nothing but the session's
/// answers; the default level keeps an interactive session quiet.
fn init_logging(
    logging: &config::LogSettings,
    file: Option<&Path>,
    telemetry: &pim_telemetry::Telemetry,
) -> anyhow::Result<()> {
    let options = pim_telemetry::LogOptions {
        level: logging.level.clone().unwrap_or_else(|| "warn".to_owned()),
        format: match logging.format {
            config::LogFormat::Text => pim_telemetry::LogFormat::Text,
            config::LogFormat::Json => pim_telemetry::LogFormat::Json,
        },
        ansi: std::io::stderr().is_terminal(),
        target: true,
        file: file.map(Path::to_path_buf),
    };
    let subscriber = pim_telemetry::subscriber_with(&options, std::io::stderr, telemetry)?;
    tracing::subscriber::set_global_default(subscriber).context("installing the logger")
}

fn log_format(format: LogFormat) -> config::LogFormat {
    match format {
        LogFormat::Text => config::LogFormat::Text,
        LogFormat::Json => config::LogFormat::Json,
    }
}

/// The flags given, over the settings from the environment.
fn with_flags(mut s: Settings, cli: &Cli) -> Result<Settings, ConfigError> {
    if let Some(deadline) = cli.model_deadline {
        s.scan.model_deadline = deadline;
    }
    if let Some(hours) = cli.hours {
        s.scan.hours = hours;
    }
    if let Some(max_repairs) = cli.max_repairs {
        s.chat.max_repairs = Some(max_repairs);
    }
    if let Some(tables) = &cli.allowed_tables {
        s.chat.allowed_tables = config::list(
            "--allowed-tables",
            tables.iter().map(String::as_str),
            "table",
        )?;
    }
    if let Some(auth) = &cli.auth {
        s.pin_auth(auth)?;
    }
    if let Some(level) = &cli.log_level {
        s.logging.level = Some(level.clone());
    }
    if let Some(format) = cli.log_format {
        s.logging.format = log_format(format);
    }
    Ok(s)
}

fn run(
    cli: Cli,
    settings: Result<Settings, ConfigError>,
    metrics: Option<Arc<dyn pim_core::ScanObserver>>,
) -> anyhow::Result<()> {
    // A bad --end is the cheapest mistake to report, so it is checked before anything is built.
    let end = cli
        .end
        .as_deref()
        .map(|text| parse_timestamp(text).with_context(|| format!("--end {text:?}")))
        .transpose()?;
    let settings = settings.context("configuration")?;
    let choice = match &cli.source.from_dir {
        _ if cli.source.demo => live::SourceChoice::Demo,
        Some(dir) => live::SourceChoice::Exports(dir.clone()),
        None => live::SourceChoice::Workspace,
    };
    let live::Connected {
        source,
        model,
        auditor,
        ..
    } = live::connect(&settings, &choice, metrics)?;

    let info = source.info();
    let mut options = SessionOptions {
        hours: settings.scan.hours,
        query_concurrency: settings.scan.query_concurrency,
        baseline_days: settings.scan.baseline_days,
        ..SessionOptions::default()
    };
    if let Some(max_repairs) = settings.chat.max_repairs {
        options.max_repairs = max_repairs;
    }
    options.query_policy.allowed_tables = settings.chat.allowed_tables.clone();
    // Fixed data (the demo tenant) has a fixed end; live data ends at each request's "now".
    options.end = end.or(info.default_end);
    info!(source = %info.description, kind = info.kind.as_str(), hours = options.hours, "session starting");
    if let Some(args::Command::Serve { listen }) = cli.command {
        return serve::run(&settings, source, model, auditor, options, listen);
    }
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
