//! Running `pim-chat` with piped stdin, isolated from the caller's environment and `.env`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What one run printed, as text.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A fresh, empty directory under the test target dir: the working directory (no `.env`) and
/// `HOME` of one run.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "pim-chat-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `pim-chat args…` with `input` on stdin and waits for it to end.
pub fn chat(args: &[&str], input: &str) -> Run {
    chat_with_env(args, input, &[])
}

/// [`chat`] with exactly these environment variables (besides `HOME`).
pub fn chat_with_env(args: &[&str], input: &str, env: &[(String, String)]) -> Run {
    let dir = scratch_dir();
    // A clean environment: no workspace, no model, no credentials, no log settings leak in.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pim-chat"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("HOME", &dir)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    // Written from another thread so a chatty child can never block on a full stdout pipe
    // while the test blocks on its stdin.
    let writer = std::thread::spawn(move || {
        // The child may exit before reading everything (after `exit`): not an error here.
        let _ = stdin.write_all(input.as_bytes());
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Whether `line` looks like a tracing log line (`<timestamp>  INFO target: message`).
pub fn is_log_line(line: &str) -> bool {
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .iter()
        .any(|level| line.contains(&format!(" {level} ")))
}
