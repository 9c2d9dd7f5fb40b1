//! Issue 9: pim-chat printed raw bidi and zero-width characters and echoed a huge value whole.
//! Here an export whose UPN holds a bidi override, a zero-width space, an escape sequence and a
//! megabyte of text goes through `scan`, `what did … do` and `assess`.

use std::path::PathBuf;

use crate::support::chat;

/// The `rowobjects` export with kim.lee's UPN replaced by `upn` (JSON-escaped).
fn hostile_export(upn_json: &str) -> PathBuf {
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/rowobjects");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pim-chat-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["AuditLogs.json", "AzureActivity.json"] {
        let text = std::fs::read_to_string(fixtures.join(name)).unwrap();
        let text = text.replace("kim.lee@contoso-demo.com", upn_json);
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[test]
fn hostile_names_are_shown_escaped_and_cut() {
    let filler = "k".repeat(1_000_000);
    let dir = hostile_export(&format!(
        "kim\\u202egnp.exe\\u200b\\u001b[2J{filler}@contoso-demo.com"
    ));
    let run = chat(
        &[
            "--from-dir",
            dir.to_str().unwrap(),
            "--end",
            "2026-11-20T18:00:00Z",
        ],
        "scan\nassess 4\nexit\n",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let out = &run.stdout;
    assert!(out.contains("kim"), "{out}");
    assert!(
        out.contains(r"kim\u{202E}gnp.exe\u{200B}\u{001B}[2Jkkk"),
        "{}",
        &out[..out.len().min(4_000)]
    );
    assert!(
        !out.chars()
            .any(|c| matches!(c, '\u{202E}' | '\u{200B}' | '\u{1b}')),
        "raw hostile characters reached the terminal"
    );
    assert!(out.contains(" more chars)"), "no cut marker");
    // Each line is cut: the megabyte is not echoed.
    assert!(out.len() < 200_000, "{} bytes printed", out.len());
}
