//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Scan Log Analytics for PIM activations and judge whether what each elevated identity did fits
/// the justification it typed. The report goes to stdout (or --output); logs go to stderr.
///
/// Exit codes: 0 success; 1 the scan could not be completed; 2 bad arguments; 3 --fail-on met.
///
/// Flags override the variables listed below (see `--help`), which come from the environment
/// or a `.env` file in the working directory.
#[derive(Debug, Parser)]
#[command(name = "pim-batch", version, about, long_about, after_long_help = pim_core::config::variables_help())]
pub struct Cli {
    /// Without a command, a scan runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Length of the scan window in hours, ending at --end [default: PIM_SCAN_HOURS or 24].
    #[arg(long, value_name = "N")]
    pub hours: Option<u32>,

    /// End of the scan window (RFC 3339, e.g. 2026-11-20T18:00:00Z). Defaults to now, or to the
    /// demo tenant's fixed end with --demo.
    #[arg(long, value_name = "RFC3339")]
    pub end: Option<String>,

    /// How far before the scan window to look for activations still active in it, in hours
    /// (the longest activation duration your PIM policies allow) [default: PIM_LOOKBACK_HOURS or
    /// 24].
    #[arg(long, value_name = "N")]
    pub lookback_hours: Option<u32>,

    /// Days of history before the window for the behaviour baseline: first-time operations
    /// (flag first_time_operation) and activation counts; 0 turns it off [default:
    /// PIM_BASELINE_DAYS or 30].
    #[arg(long, value_name = "N")]
    pub baseline_days: Option<u32>,

    /// Write the report to this file instead of stdout.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,

    /// A tera template that replaces the embedded Markdown template.
    #[arg(long, value_name = "PATH")]
    pub template: Option<PathBuf>,

    /// Include failed operations (marked as failed) in each identity's activity.
    #[arg(long)]
    pub include_failed: bool,

    /// Most operations kept per activation; beyond it the activation is flagged
    /// activity_truncated [default: PIM_MAX_ACTIVITIES or 5000].
    #[arg(long, value_name = "N")]
    pub max_activities: Option<usize>,

    /// Most activities listed per activation in the Markdown report (the JSON lists all).
    #[arg(long, default_value_t = 50)]
    pub max_listed: usize,

    /// Name fragments that make a role or group privileged (comma-separated, case-insensitive);
    /// replaces the defaults (admin, priv, tier0, global, owner, ...) [default:
    /// PIM_PRIVILEGED_PATTERNS or the built-in list].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub privileged_patterns: Option<Vec<String>>,

    /// Exit with code 3 when an activation meets this: a verdict (not_aligned, partial,
    /// no_activity, unknown, aligned) or a risk level (low, medium, high, critical: that level or
    /// above). Repeat or comma-separate to give several.
    #[arg(long, value_delimiter = ',', value_name = "VERDICT_OR_RISK")]
    pub fail_on: Vec<String>,

    /// Send the findings on after the scan: `logs-ingestion` (Azure Monitor Logs Ingestion into
    /// the PimAudit_CL table, for an alert rule and an Action Group: see docs/alerting.md),
    /// `webhook` (the URL in PIM_WEBHOOK_URL) or `webhook=URL`. Repeat for several.
    #[arg(long, value_name = "TARGET")]
    pub send: Vec<String>,

    /// Which activations a webhook summary lists: `findings` (default), verdicts, or risk
    /// levels (that level or above), comma-separated.
    #[arg(long, value_name = "LIST", default_value = "findings")]
    pub send_threshold: String,

    /// Logs Ingestion: the data collection endpoint (or the DCR's logs ingestion endpoint)
    /// [default: PIM_DCR_ENDPOINT].
    #[arg(long, value_name = "URL")]
    pub dcr_endpoint: Option<String>,

    /// Logs Ingestion: the data collection rule's immutable id (dcr-…) [default:
    /// PIM_DCR_RULE_ID].
    #[arg(long, value_name = "ID")]
    pub dcr_rule_id: Option<String>,

    /// Logs Ingestion: the stream declared in the rule [default: PIM_DCR_STREAM or
    /// Custom-PimAudit_CL].
    #[arg(long, value_name = "STREAM")]
    pub dcr_stream: Option<String>,

    /// The webhook for `--send webhook` [default: PIM_WEBHOOK_URL, which keeps it out of the
    /// process list; its signature is never logged].
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Longest time the whole model stage of a scan may take (e.g. 90s, 10m, 1h). Activations
    /// the model has not assessed by then are `unknown` ("model stage deadline reached"),
    /// keeping the rules' findings, and the report's warnings say how many [default:
    /// PIM_MODEL_DEADLINE or 10m].
    #[arg(long, value_name = "DURATION", value_parser = pim_core::config::parse_duration)]
    pub model_deadline: Option<std::time::Duration>,

    /// Check the set-up instead of scanning: configuration, a token for each scope and which
    /// credential supplied it, the workspace and both tables, the model, the destinations.
    /// One line per check; exit 0 when all pass, 1 otherwise.
    #[arg(long)]
    pub check: bool,

    /// Pin one credential instead of trying the chain: env, workload-identity,
    /// managed-identity, cli, azd (or auto) [default: PIM_AUTH].
    #[arg(long, value_name = "METHOD")]
    pub auth: Option<String>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive) [default:
    /// LOG_LEVEL or info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// The state store of scheduled runs: a SQLite file, created on first use, that remembers
    /// runs, each activation's assessment and what was delivered where, so findings are sent
    /// once and provisional verdicts are re-assessed [default: PIM_STATE]. See the runbook's
    /// scheduled recipes.
    #[arg(long, value_name = "PATH", global = true)]
    pub state: Option<PathBuf>,

    /// Wait for another run holding --state to finish, instead of refusing to start.
    #[arg(long)]
    pub wait_lock: bool,

    /// With --state: scan from the last successful run's window end minus --overlap to now
    /// (or --end) minus --settle; the first run uses --hours.
    #[arg(long)]
    pub since_last: bool,

    /// How far --since-last reaches back before the last successful run's end (e.g. 30m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = pim_core::config::parse_duration)]
    pub overlap: std::time::Duration,

    /// How long after an activation's window ends its activity may still arrive: until then
    /// its verdict is provisional (and --since-last stops this long before now).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = pim_core::config::parse_duration)]
    pub settle: std::time::Duration,

    /// Log format: text for people, json (one object per line) for log shippers [default:
    /// LOG_FORMAT or text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Append the logs to this file as well as stderr, in the --log-format (a new file is
    /// created readable by its owner only).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

/// Commands other than the default scan.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print the JSON report's JSON Schema (draft 2020-12, generated from the report types;
    /// the same as docs/report.schema.json) and exit.
    Schema,
    /// Print a shell completion script for pim-batch to stdout and exit, e.g.
    /// `pim-batch completions bash > /etc/bash_completion.d/pim-batch`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the pim-batch man page (roff) to stdout and exit, e.g.
    /// `pim-batch man > /usr/local/share/man/man1/pim-batch.1`.
    Man,
    /// What the state store (--state) remembers: every activation of the period with its
    /// verdict, risk and flags, and per identity the activations, findings and roles used.
    History(HistoryArgs),
}

/// `pim-batch history`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct HistoryArgs {
    /// Only this identity (UPN or object id, case-insensitive).
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,

    /// The period: activations of the last N days.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub days: u32,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the logs come from. With neither flag, the Log Analytics workspace(s) in
/// LOG_ANALYTICS_WORKSPACE_ID are scanned.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct SourceArgs {
    /// Scan the bundled demo tenant.
    #[arg(long)]
    pub demo: bool,

    /// Scan offline exports in DIR: AuditLogs.json and AzureActivity.json (query API responses or
    /// `az monitor log-analytics query -o json` output).
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown for people.
    Markdown,
    /// JSON for machines (docs/report.schema.json).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent_and_binds_no_variable() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        // Variables are read once, by pim_core::config::Settings; a clap `env` binding would
        // read the process environment before `.env` is loaded (issue 11).
        for arg in command.get_arguments() {
            assert_eq!(
                arg.get_env(),
                None,
                "--{:?} binds a variable",
                arg.get_long()
            );
        }
    }

    #[test]
    fn the_long_help_lists_every_variable() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for (name, _) in pim_core::config::VARIABLES {
            assert!(help.contains(name), "{name} missing from --help");
        }
    }
}
