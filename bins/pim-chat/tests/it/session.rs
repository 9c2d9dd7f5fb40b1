//! Scripted sessions against the bundled demo tenant, and start-up failures.

use pim_agent::BANNER;

use crate::support::{chat, is_log_line};

/// The lines of `text` that start (after indentation) with `n.` or `n)`.
fn numbered(text: &str, n: usize) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("{n}.")) || l.starts_with(&format!("{n})"))
        })
        .collect()
}

#[test]
fn scan_then_follow_up_on_the_second_identity() {
    let run = chat(
        &["--demo", "--log-level", "debug"],
        "scan\nwhat did 2 do\ndoes their activity align with the reason?\nshow kql\nexit\n",
    );
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let out = &run.stdout;
    assert!(out.starts_with(BANNER), "{out}");
    // The scan: a numbered list with who, what role, how long ago and why.
    assert!(
        !numbered(out, 1).is_empty(),
        "no numbered identities:\n{out}"
    );
    let second = numbered(out, 2);
    assert_eq!(second.len(), 1, "{out}");
    assert!(second[0].contains("mallory.reed@contoso-demo.com"), "{out}");
    assert!(
        second[0].contains("ago") && second[0].contains("reason"),
        "{out}"
    );
    // "what did 2 do": the activities in mallory's window.
    assert!(
        out.contains("Microsoft.Authorization/roleAssignments/write"),
        "no activities:\n{out}"
    );
    assert!(
        out.contains("Microsoft.Insights/diagnosticSettings/delete"),
        "{out}"
    );
    // "does their activity align": "their" resolves to mallory; a verdict, a risk, a rationale.
    assert!(out.contains("Verdict: not_aligned"), "no verdict:\n{out}");
    assert!(out.contains("risk: critical"), "no risk:\n{out}");
    assert!(out.contains("Rationale:"), "no rationale:\n{out}");
    // "show kql": the last query text.
    assert!(
        out.contains("AuditLogs\n| where TimeGenerated"),
        "no KQL:\n{out}"
    );
    let logs: Vec<&str> = out.lines().filter(|l| is_log_line(l)).collect();
    assert!(logs.is_empty(), "log lines on stdout: {logs:?}");
    assert!(
        run.stderr.contains("session starting"),
        "logs did not reach stderr: {}",
        run.stderr
    );
}

#[test]
fn a_free_form_question_without_a_model_says_one_is_needed() {
    let run = chat(
        &["--demo"],
        "which users deleted resources yesterday?\nexit\n",
    );
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("needs a model"), "{}", run.stdout);
    // ...and says how to configure one.
    assert!(
        run.stdout.contains("AZURE_OPENAI_ENDPOINT"),
        "{}",
        run.stdout
    );
}

#[test]
fn end_of_input_without_exit_ends_cleanly() {
    let run = chat(&["--demo"], "help\n");
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.starts_with(BANNER));
    assert!(run.stdout.contains("scan"), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn empty_input_prints_only_the_banner() {
    let run = chat(&["--demo"], "");
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout.trim_end(), BANNER.trim_end());
}

#[test]
fn lines_after_exit_are_not_run() {
    let run = chat(&["--demo"], "exit\nscan\n");
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(numbered(&run.stdout, 1).is_empty(), "{}", run.stdout);
}

#[test]
fn a_bad_end_stops_with_a_message() {
    let run = chat(&["--demo", "--end", "yesterday"], "scan\n");
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("pim-chat: error"), "{}", run.stderr);
    assert!(run.stderr.contains("--end \"yesterday\""), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn no_source_stops_with_a_message() {
    let run = chat(&[], "scan\n");
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no data source"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn completions_and_man_need_no_configuration() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = chat(&["completions", shell], "");
        assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
        for word in [
            "pim-chat",
            "demo",
            "max-repairs",
            "allowed-tables",
            "log-file",
        ] {
            assert!(run.stdout.contains(word), "{shell} script lacks {word}");
        }
    }
    let run = chat(&["man"], "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains(".TH pim-chat"), "{}", run.stdout);
    assert!(run.stdout.contains("completions"));
}

#[test]
fn log_file_gets_the_text_records_too() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pim-chat-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("chat.log");
    let _ = std::fs::remove_file(&log);
    let run = chat(
        &[
            "--demo",
            "--log-level",
            "info",
            "--log-file",
            log.to_str().unwrap(),
        ],
        "exit\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("session starting"), "{text}");
    assert!(run.stderr.contains("session starting"), "{}", run.stderr);
    assert!(!text.contains('\x1b'));
}
