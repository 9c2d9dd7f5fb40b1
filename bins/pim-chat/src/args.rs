//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Investigate PIM activations interactively: `scan` for elevated identities, ask what one of
/// them did and whether it fits the reason they gave, or ask a question in your own words.
///
/// With a terminal on stdin this is a line editor with history and Tab completion; with piped
/// stdin each line is one request and each answer goes to stdout as plain text, so a session
/// can be scripted. Logs go to stderr.
///
/// Exit codes: 0 the session ended normally; 1 it could not start (bad options or
/// configuration).
///
/// Flags override the variables listed below (see `--help`), which come from the environment
/// or a `.env` file in the working directory.
#[derive(Debug, Parser)]
#[command(name = "pim-chat", version, about, long_about, after_long_help = pim_core::config::variables_help())]
pub struct Cli {
    /// `serve`, `completions` or `man` (without one, a session starts).
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Longest time the whole model stage of a scan may take (e.g. 90s, 10m, 1h). Activations
    /// the model has not assessed by then are `unknown` ("model stage deadline reached"),
    /// keeping the rules' findings, and the report's warnings say how many [default:
    /// PIM_MODEL_DEADLINE or 10m].
    #[arg(long, value_name = "DURATION", value_parser = pim_core::config::parse_duration)]
    pub model_deadline: Option<std::time::Duration>,

    /// Length of the scan window in hours, ending at --end (`scan N` overrides it per scan)
    /// [default: PIM_SCAN_HOURS or 24].
    #[arg(long, value_name = "N")]
    pub hours: Option<u32>,

    /// End of the scan window (RFC 3339, e.g. 2026-11-20T18:00:00Z). Defaults to the time of
    /// each request, or to the demo tenant's fixed end with --demo.
    #[arg(long, value_name = "RFC3339")]
    pub end: Option<String>,

    /// Most corrections asked of the model when a query it wrote fails [default:
    /// PIM_MAX_REPAIRS or 3].
    #[arg(long, value_name = "N")]
    pub max_repairs: Option<usize>,

    /// Tables model-written queries may read (comma-separated); any other table is refused
    /// before the query runs [default: PIM_ALLOWED_TABLES or AuditLogs,AzureActivity].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub allowed_tables: Option<Vec<String>>,

    /// Pin one credential instead of trying the chain: env, workload-identity,
    /// managed-identity, cli, azd (or auto) [default: PIM_AUTH].
    #[arg(long, value_name = "METHOD")]
    pub auth: Option<String>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive). Logs go to
    /// stderr; the default keeps an interactive session quiet [default: LOG_LEVEL or warn].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format: text for people, json (one object per line) for log shippers [default:
    /// LOG_FORMAT or text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Append the logs to this file as well as stderr, in the --log-format (a new file is
    /// created readable by its owner only).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Commands other than the default session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print a shell completion script for pim-chat to stdout and exit, e.g.
    /// `pim-chat completions zsh > ~/.zfunc/_pim-chat`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the pim-chat man page (roff) to stdout and exit, e.g.
    /// `pim-chat man > /usr/local/share/man/man1/pim-chat.1`.
    Man,
    /// Serve the agent over HTTP: a JSON API and a web page for many users at once, signed in
    /// with Entra ID (PIM_SERVE_* variables; see docs/serve.md).
    Serve {
        /// Address to listen on. Anything but loopback requires Entra sign-in.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
}

/// Where the logs come from. With neither flag, the Log Analytics workspace(s) in
/// LOG_ANALYTICS_WORKSPACE_ID are queried.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct SourceArgs {
    /// Use the bundled demo tenant.
    #[arg(long)]
    pub demo: bool,

    /// Use offline exports in DIR: AuditLogs.json and AzureActivity.json (query API responses or
    /// `az monitor log-analytics query -o json` output).
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_and_from_dir_exclude_each_other() {
        let err = Cli::try_parse_from(["pim-chat", "--demo", "--from-dir", "x"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from([
            "pim-chat",
            "--demo",
            "--hours",
            "48",
            "--end",
            "2026-11-20T18:00:00Z",
            "--max-repairs",
            "5",
            "--log-level",
            "debug",
        ])
        .unwrap();
        assert!(cli.source.demo);
        assert_eq!(cli.hours, Some(48));
        assert_eq!(cli.end.as_deref(), Some("2026-11-20T18:00:00Z"));
        assert_eq!(cli.max_repairs, Some(5));
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn serve_listens_on_loopback_by_default() {
        let cli = Cli::try_parse_from(["pim-chat", "--demo", "serve"]).unwrap();
        let Some(Command::Serve { listen }) = cli.command else {
            panic!("serve")
        };
        assert_eq!(listen.to_string(), "127.0.0.1:8080");
        let cli = Cli::try_parse_from(["pim-chat", "serve", "--listen", "0.0.0.0:80"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve { listen }) if listen.port() == 80));
        assert!(Cli::try_parse_from(["pim-chat"]).unwrap().command.is_none());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        // Variables are read once, by pim_core::config::Settings (issue 11).
        for arg in command.get_arguments() {
            assert_eq!(
                arg.get_env(),
                None,
                "--{:?} binds a variable",
                arg.get_long()
            );
        }
    }
}
