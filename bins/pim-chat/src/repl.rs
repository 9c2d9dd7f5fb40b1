//! Moving lines between the session and the user: a line editor on a terminal, plain lines on a
//! pipe.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use pim_agent::{Answer, BANNER, Session, render_text};
use reedline::{
    ColumnarMenu, Completer, CompletionResult, Emacs, FileBackedHistory, KeyCode, KeyModifiers,
    MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus, Reedline,
    ReedlineEvent, ReedlineMenu, Signal, Span, Suggestion, default_emacs_keybindings,
};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

/// Lines kept in the history file.
const HISTORY_CAPACITY: usize = 1000;
/// The menu name the Tab binding opens.
const COMPLETION_MENU: &str = "completion_menu";

/// A scripted session: one request per line of `input`, each answer as plain text on stdout,
/// until end of input or a request that ends the session.
pub fn piped(
    runtime: &Runtime,
    mut session: Session,
    mut input: impl BufRead,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_text(&mut out, BANNER)?;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let read = input.read_until(b'\n', &mut raw).context("reading stdin")?;
        if read == 0 {
            return Ok(());
        }
        // A stray invalid byte in a script should not end the session.
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let answer = runtime.block_on(session.handle_line(line, OffsetDateTime::now_utc()));
        write_text(&mut out, &render_text(&answer))?;
        if answer.ends_session() {
            return Ok(());
        }
    }
}

/// The interactive session: reedline with a history file, Tab completion of commands and of the
/// names found by the last scan, Ctrl-C to clear the line or cancel a request, Ctrl-D to leave.
pub fn interactive(runtime: &Runtime, mut session: Session) -> anyhow::Result<()> {
    let words = Arc::new(Mutex::new(session.completions()));
    let mut keybindings = default_emacs_keybindings();
    keybindings.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu(COMPLETION_MENU.to_owned()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let mut editor = Reedline::create()
        .with_history_exclusion_prefix(Some(" ".into()))
        .with_completer(Box::new(WordCompleter {
            words: words.clone(),
        }))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(
            ColumnarMenu::default().with_name(COMPLETION_MENU),
        )))
        .with_edit_mode(Box::new(Emacs::new(keybindings)));
    match history() {
        Ok(history) => editor = editor.with_history(Box::new(history)),
        Err(why) => eprintln!("pim-chat: running without a history file: {why:#}"),
    }

    // Yes/no questions get an editor of their own, without history.
    let mut asker = Reedline::create();
    let stdout = std::io::stdout();
    write_text(&mut stdout.lock(), BANNER)?;
    let prompt = ChatPrompt;
    loop {
        match editor.read_line(&prompt).context("reading the terminal")? {
            Signal::Success(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let now = OffsetDateTime::now_utc();
                let mut answer = runtime.block_on(cancellable(session.handle_line(&line, now)));
                // A request that would replace something (`report PATH` onto a file) is asked
                // about here, on the terminal; a pipe gets the refusal, which says how to insist.
                let mut declined = false;
                if let Some(confirm) = answer.as_ref().and_then(|a| a.confirm().cloned()) {
                    if ask(&mut asker, &confirm.question)? {
                        answer =
                            runtime.block_on(cancellable(session.handle_line(&confirm.line, now)));
                    } else {
                        declined = true;
                    }
                }
                let mut out = stdout.lock();
                match answer {
                    Some(_) if declined => write_text(&mut out, "Not written.")?,
                    Some(answer) => {
                        write_text(&mut out, &render_text(&answer))?;
                        if answer.ends_session() {
                            return Ok(());
                        }
                    }
                    None => write_text(&mut out, "cancelled")?,
                }
                *words.lock().unwrap_or_else(PoisonError::into_inner) = session.completions();
            }
            // Reedline has already cleared the line.
            Signal::CtrlC => {}
            Signal::CtrlD => return Ok(()),
            _ => {}
        }
    }
}

/// Runs `request` until it finishes (`Some`) or Ctrl-C arrives (`None`, and the request is
/// dropped where it stands).
async fn cancellable(request: impl Future<Output = Answer>) -> Option<Answer> {
    let interrupted = async {
        // Without a signal handler the request simply cannot be cancelled; it must not look
        // cancelled at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        answer = request => Some(answer),
        () = interrupted => None,
    }
}

/// Longest line printed, in characters; longer ones are cut with a visible marker. The widest
/// legitimate line (a Markdown table row of the report) stays well below it.
const MAX_LINE_CHARS: usize = 4_000;

/// Writes `text` with exactly one line ending and flushes, so each answer reaches a pipe reader
/// before the next request is read. Answers quote logs and model output, so control, bidi and
/// zero-width characters are shown escaped and overlong lines are cut (issue 9).
fn write_text(out: &mut impl Write, text: &str) -> anyhow::Result<()> {
    let text = pim_core::terminal_text(text.trim_end_matches(['\n', '\r']), MAX_LINE_CHARS);
    writeln!(out, "{text}").context("writing to stdout")?;
    out.flush().context("writing to stdout")
}

/// Whether an answer to a yes/no question is yes (the default is no).
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Puts a yes/no `question` (default no) on the terminal with a line editor of its own, with
/// no history (the answer is not a command) and the question escaped like every answer.
fn ask(asker: &mut Reedline, question: &str) -> anyhow::Result<bool> {
    let prompt = QuestionPrompt(format!(
        "{} [y/N]",
        pim_core::terminal_line(question, MAX_LINE_CHARS)
    ));
    Ok(
        match asker.read_line(&prompt).context("reading the terminal")? {
            Signal::Success(answer) => is_yes(&answer),
            _ => false,
        },
    )
}

/// The prompt of a yes/no question: the question, then a space.
struct QuestionPrompt(String);

impl Prompt for QuestionPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed(" ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_history_search_indicator(&self, _search: PromptHistorySearch) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
}

/// The history file, created with its folder if missing.
fn history() -> anyhow::Result<FileBackedHistory> {
    let path = history_path(
        std::env::var_os("XDG_DATA_HOME").as_deref().map(Path::new),
        std::env::var_os("HOME").as_deref().map(Path::new),
    )
    .context("neither XDG_DATA_HOME nor HOME is set")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    FileBackedHistory::with_file(HISTORY_CAPACITY, path.clone())
        .with_context(|| format!("opening {}", path.display()))
}

/// `$XDG_DATA_HOME/pim-audit/history.txt`, else `$HOME/.local/share/pim-audit/history.txt`.
/// The XDG spec says to ignore an empty or relative `XDG_DATA_HOME`.
fn history_path(xdg_data_home: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    let data = match xdg_data_home.filter(|p| p.is_absolute()) {
        Some(dir) => dir.to_path_buf(),
        None => home
            .filter(|p| !p.as_os_str().is_empty())?
            .join(".local")
            .join("share"),
    };
    Some(data.join("pim-audit").join("history.txt"))
}

/// The prompt: `pim> `, nothing else.
struct ChatPrompt;

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed("pim")
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("> ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({failing}search: {}) ", search.term))
    }
}

/// Completes from a word list the loop refreshes after each request (the session's commands
/// and the names from its last scan).
struct WordCompleter {
    words: Arc<Mutex<Vec<String>>>,
}

impl Completer for WordCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let words = self
            .words
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        CompletionResult::fresh(suggestions(&words, line, pos))
    }
}

/// The words that extend the text before `pos`. A candidate may span several words (`show
/// kql`), so it is matched against each tail of the line that starts at a word boundary,
/// longest first, and replaces that tail. Matching ignores case.
fn suggestions(words: &[String], line: &str, pos: usize) -> Vec<Suggestion> {
    let Some(before) = line.get(..pos) else {
        return Vec::new();
    };
    let mut starts: Vec<usize> = vec![0];
    starts.extend(
        before
            .char_indices()
            .filter(|(_, c)| c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8()),
    );
    let mut out: Vec<Suggestion> = Vec::new();
    for word in words {
        let lower = word.to_lowercase();
        let start = starts.iter().copied().find(|&s| {
            let tail = &before[s..];
            !tail.starts_with(char::is_whitespace) && lower.starts_with(&tail.to_lowercase())
        });
        if let Some(start) = start
            && !out.iter().any(|s| s.value == *word)
        {
            out.push(Suggestion {
                value: word.clone(),
                span: Span { start, end: pos },
                append_whitespace: true,
                ..Suggestion::default()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(words: &[&str], line: &str) -> Vec<(String, usize)> {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        suggestions(&words, line, line.len())
            .into_iter()
            .map(|s| (s.value, s.span.start))
            .collect()
    }

    // Issue 9: answers are printed escaped and cut.
    #[test]
    fn answers_are_printed_escaped_and_cut() {
        let mut out = Vec::new();
        let huge = "v".repeat(10 * 1024 * 1024);
        write_text(
            &mut out,
            &format!("user: evil\u{202E}txt.exe\u{200B}\u{1b}[31m\nvalue: {huge}\n"),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r"user: evil\u{202E}txt.exe\u{200B}\u{001B}[31m");
        assert!(lines[1].ends_with(" more chars)"), "{}", &lines[1][3_990..]);
        assert!(text.len() < 5_000, "{}", text.len());
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202E}')
        );
    }

    #[test]
    fn a_question_defaults_to_no() {
        for (answer, yes) in [
            ("y", true),
            ("YES ", true),
            ("", false),
            ("n", false),
            ("yes please", false),
        ] {
            assert_eq!(is_yes(answer), yes, "{answer:?}");
        }
        let p = QuestionPrompt("r.md already exists. Overwrite it? [y/N]".into());
        assert_eq!(
            p.render_prompt_left(),
            "r.md already exists. Overwrite it? [y/N]"
        );
    }

    #[test]
    fn completes_a_command_from_its_start() {
        assert_eq!(
            values(&["scan", "show kql", "exit"], "sh"),
            [("show kql".to_owned(), 0)]
        );
    }

    #[test]
    fn completes_a_multi_word_command() {
        assert_eq!(
            values(&["show kql", "scan"], "show k"),
            [("show kql".to_owned(), 0)]
        );
    }

    #[test]
    fn completes_a_name_mid_line_ignoring_case() {
        assert_eq!(
            values(&["alice@contoso.com", "bob@contoso.com"], "what did AL"),
            [("alice@contoso.com".to_owned(), 9)]
        );
    }

    #[test]
    fn nothing_matches_nothing() {
        assert!(values(&["scan"], "what did zed").is_empty());
    }

    #[test]
    fn an_empty_word_offers_everything_once() {
        assert_eq!(
            values(&["scan", "scan", "help"], "assess "),
            [("scan".to_owned(), 7), ("help".to_owned(), 7)]
        );
    }

    #[test]
    fn odd_positions_do_not_panic() {
        let words = vec!["é".to_owned()];
        assert!(suggestions(&words, "é", 1).is_empty());
        assert!(suggestions(&words, "abc", 99).is_empty());
        assert_eq!(suggestions(&words, "", 0).len(), 1);
    }

    #[test]
    fn history_prefers_an_absolute_xdg_data_home() {
        assert_eq!(
            history_path(Some(Path::new("/data")), Some(Path::new("/home/a"))),
            Some(PathBuf::from("/data/pim-audit/history.txt"))
        );
        assert_eq!(
            history_path(Some(Path::new("rel")), Some(Path::new("/home/a"))),
            Some(PathBuf::from("/home/a/.local/share/pim-audit/history.txt"))
        );
        assert_eq!(
            history_path(None, Some(Path::new("/home/a"))),
            Some(PathBuf::from("/home/a/.local/share/pim-audit/history.txt"))
        );
        assert_eq!(history_path(None, None), None);
        assert_eq!(history_path(Some(Path::new("")), Some(Path::new(""))), None);
    }

    #[test]
    fn answers_end_with_one_newline() {
        let mut out = Vec::new();
        write_text(&mut out, "a\n\n").unwrap();
        write_text(&mut out, "b").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\nb\n");
    }

    #[test]
    fn prompt_is_pim() {
        let p = ChatPrompt;
        let text = format!(
            "{}{}",
            p.render_prompt_left(),
            p.render_prompt_indicator(PromptEditMode::Default)
        );
        assert_eq!(text, "pim> ");
    }
}
