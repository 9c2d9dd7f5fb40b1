//! Escaping of untrusted text for Markdown (GitHub Flavored) and Mermaid.
//!
//! Every function here returns text that stays on one line and cannot open any Markdown
//! construct (heading, list, quote, table row, link, image, HTML, code span, math, footnote,
//! autolink, e-mail address or @mention) nor close one the template opened. The only HTML it
//! ever writes is [`WORD_BREAK`] after an `@`. Control characters and invisible or
//! direction-changing code points are shown as visible `\u{XXXX}` text, so a reader sees exactly
//! what was logged and a bidi override cannot reorder what they read.
//!
//! Which characters those are, how they are shown and where text is cut are the shared rules of
//! [`pim_domain::text`]; this module adds only the Markdown and Mermaid *syntax*. The terminal
//! functions [`terminal`] and [`terminal_line`] are re-exported from there.

use pim_domain::text::{self, visible_form};

pub use pim_domain::text::{terminal, terminal_line};

/// Default cap, in characters, for [`md`] in body text.
pub const MD_MAX_CHARS: usize = 2000;
/// Default cap, in characters, for table cells ([`md_cell`], and [`md_code`] in cells).
pub const CELL_MAX_CHARS: usize = 200;
/// Default cap, in characters, for a Mermaid label.
pub const MERMAID_MAX_CHARS: usize = 60;

/// Escapes untrusted text for inline Markdown, truncating it to `max_chars` characters with a
/// visible `…(N more chars)` marker.
///
/// Leading and trailing whitespace is dropped (it could start an indented code block or a hard
/// line break); the JSON report keeps the exact text.
///
/// ```
/// use pim_report::escape::md;
/// assert_eq!(md("# [x](javascript:alert(1))", 100), r"\# \[x\]\(javascript:alert\(1\)\)");
/// assert_eq!(md("a\nb", 100), r"a\\nb");
/// ```
pub fn md(text: &str, max_chars: usize) -> String {
    let cut = text::cut(text.trim(), max_chars);
    let (head, more) = (cut.kept, cut.dropped);
    let mut out = String::with_capacity(head.len() + head.len() / 4 + 8);
    let chars: Vec<char> = head.chars().collect();
    // Only the start of the field can begin a block: newlines never survive below.
    let digit_prefix = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    for (i, &c) in chars.iter().enumerate() {
        if let Some(visible) = visible_form(c) {
            // The visible form contains `\`, `{` and `}`, which Markdown would eat.
            push_escaped_ascii(&mut out, &visible);
            continue;
        }
        let escape = match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '!' | '|' | '<'
            | '>' | '{' | '}' | '~' | '&' | '@' | '$' | '^' => true,
            // Setext underline or an ordered list marker at the start of the field.
            '=' => i == 0,
            '.' => (i == digit_prefix && i > 0) || follows_www(&chars, i),
            // Breaks `scheme://` so GitHub's extended autolinks do not fire.
            ':' => chars.get(i + 1) == Some(&'/') && chars.get(i + 2) == Some(&'/'),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
        if c == '@' {
            // GitHub joins text split by backslash escapes before it looks for e-mail addresses
            // and @mentions, so `x\@contoso.com` still became a live `mailto:` link (and
            // `\@team` a mention). An empty `<wbr>` element (allowed by GitHub, rendering
            // nothing) keeps the text apart; see issue 9.
            out.push_str(WORD_BREAK);
        }
    }
    if more > 0 {
        out.push_str(&format!("…\\({more} more chars\\)"));
    }
    out
}

/// What [`md`] puts after every `@`: a word-break opportunity, which renders as nothing but
/// ends the text run, so no e-mail autolink or @mention can span it.
pub const WORD_BREAK: &str = "<wbr>";

/// [`md`] for a table cell: the same escaping (which already covers `|`, and keeps an escaped
/// pipe escaped after GitHub's table parser removes one backslash), an em dash for empty text so
/// the cell stays visible, and a shorter default cap via `max_chars`.
///
/// ```
/// use pim_report::escape::md_cell;
/// assert_eq!(md_cell("a | b", 100), r"a \| b");
/// assert_eq!(md_cell("   ", 100), "—");
/// ```
pub fn md_cell(text: &str, max_chars: usize) -> String {
    let escaped = md(text, max_chars);
    if escaped.is_empty() {
        "—".to_owned()
    } else {
        escaped
    }
}

/// Wraps untrusted text in an inline code span whose backtick fence is longer than any backtick
/// run inside, with control and invisible characters shown as `\u{XXXX}`.
///
/// With `in_table_cell`, text containing `|` is rendered with [`md`] instead: GitHub's table
/// parser splits on a pipe even inside a code span, and a backslash before it could pair with a
/// backslash from the text, so an escaped span cannot be both exact and safe there.
///
/// ```
/// use pim_report::escape::md_code;
/// assert_eq!(md_code("a`b", 100, false), "``a`b``");
/// assert_eq!(md_code("`x", 100, false), "`` `x ``");
/// assert_eq!(md_code("web01", 100, false), "`web01`");
/// assert_eq!(md_code("", 100, false), "—");
/// ```
pub fn md_code(text: &str, max_chars: usize, in_table_cell: bool) -> String {
    if in_table_cell && text.contains('|') {
        return md_cell(text, max_chars);
    }
    let cut = text::cut(text, max_chars);
    let (head, more) = (cut.kept, cut.dropped);
    if head.is_empty() && more == 0 {
        return "—".to_owned();
    }
    let mut content = String::with_capacity(head.len() + 8);
    for c in head.chars() {
        match visible_form(c) {
            Some(visible) => content.push_str(&visible),
            None => content.push(c),
        }
    }
    let fence = "`".repeat(longest_run(&content, '`') + 1);
    // A backtick at either end would merge with the fence, so pad with a space; the parser strips
    // one space from each side when both sides have one, so text that itself starts and ends
    // with a space is padded too, to keep its spaces.
    let pad = content.starts_with('`')
        || content.ends_with('`')
        || (content.starts_with(' ') && content.ends_with(' ') && content.trim() != "");
    let space = if pad { " " } else { "" };
    let mut out = format!("{fence}{space}{content}{space}{fence}");
    if more > 0 {
        out.push_str(&format!("…\\({more} more chars\\)"));
    }
    out
}

/// Makes untrusted text safe as a Mermaid gantt task name or section title.
///
/// Keeps letters, digits, spaces and `.,-_/()@+'&=`; everything else (including `:`, `;`, `#`,
/// `%`, quotes, brackets, backticks, angle brackets, control and invisible characters) becomes a
/// space. Runs of spaces collapse, the result is cut to `max_chars` with `…`, a leading Mermaid
/// keyword is defused with `_`, and empty text becomes `unnamed`.
///
/// ```
/// use pim_report::escape::mermaid_label;
/// assert_eq!(mermaid_label("Owner: a;b#c", 60), "Owner a b c");
/// assert_eq!(mermaid_label("click a1 call x()", 60), "_click a1 call x()");
/// ```
pub fn mermaid_label(text: &str, max_chars: usize) -> String {
    let mut cleaned = String::with_capacity(text.len().min(max_chars * 4));
    let mut last_space = true;
    let mut kept = 0usize;
    let mut cut = false;
    for c in text.chars() {
        let keep = (c.is_alphanumeric() && !text::is_unsafe(c))
            || matches!(
                c,
                '.' | ',' | '-' | '_' | '/' | '(' | ')' | '@' | '+' | '\'' | '&' | '='
            );
        if keep {
            if kept >= max_chars {
                cut = true;
                break;
            }
            cleaned.push(c);
            kept += 1;
            last_space = false;
        } else if !last_space {
            if kept >= max_chars {
                cut = true;
                break;
            }
            cleaned.push(' ');
            kept += 1;
            last_space = true;
        }
    }
    let mut label = cleaned.trim_end().to_owned();
    if cut {
        label.push('…');
    }
    if label.is_empty() {
        return "unnamed".to_owned();
    }
    let first = label
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    const KEYWORDS: &[&str] = &[
        "gantt",
        "section",
        "title",
        "dateformat",
        "axisformat",
        "tickinterval",
        "excludes",
        "includes",
        "todaymarker",
        "weekday",
        "weekend",
        "click",
        "acctitle",
        "accdescr",
        "inclusiveenddates",
        "topaxis",
        "displaymode",
    ];
    if KEYWORDS.iter().any(|k| first.starts_with(k)) {
        label.insert(0, '_');
    }
    label
}

fn push_escaped_ascii(out: &mut String, visible: &str) {
    for c in visible.chars() {
        if matches!(c, '\\' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn follows_www(chars: &[char], i: usize) -> bool {
    i >= 3 && chars[i - 3..i].iter().all(|c| c.eq_ignore_ascii_case(&'w'))
}

fn longest_run(text: &str, wanted: char) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == wanted {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_escapes_every_inline_construct() {
        let out = md(
            "![x](http://evil) <script> `c` *b* _i_ ~s~ $m$ [^1] &amp; @team",
            500,
        );
        assert_eq!(
            out,
            r"\!\[x\]\(http\://evil\) \<script\> \`c\` \*b\* \_i\_ \~s\~ \$m\$ \[\^1\] \&amp; \@<wbr>team"
        );
    }

    #[test]
    fn md_defuses_block_starts() {
        assert_eq!(md("# h", 10), r"\# h");
        assert_eq!(md("> q", 10), r"\> q");
        assert_eq!(md("- l", 10), r"\- l");
        assert_eq!(md("12. l", 10), r"12\. l");
        assert_eq!(md("===", 10), r"\===");
        assert_eq!(md("    code", 10), "code");
        assert_eq!(md("v1.2", 10), "v1.2");
        assert_eq!(md("see www.evil.com", 30), r"see www\.evil.com");
    }

    #[test]
    fn md_makes_controls_and_bidi_visible() {
        assert_eq!(md("a\u{202E}b", 10), r"a\\u\{202E\}b");
        assert_eq!(md("a\u{0}b\r\nc", 20), r"a\\u\{0000\}b\\r\\nc");
        assert_eq!(md("x\u{E0041}", 20), r"x\\u\{E0041\}");
        assert!(!md("a\u{2028}b\u{200B}", 50).contains(['\u{2028}', '\u{200B}']));
    }

    #[test]
    fn md_truncates_with_marker() {
        let long = "é".repeat(5000);
        let out = md(&long, 100);
        assert!(out.starts_with(&"é".repeat(100)));
        assert!(out.ends_with(r"…\(4900 more chars\)"));
    }

    #[test]
    fn md_code_fence_is_longer_than_any_run() {
        assert_eq!(md_code("a``b", 50, false), "```a``b```");
        assert_eq!(md_code("`", 50, false), "`` ` ``");
        assert_eq!(md_code("x\ny", 50, false), r"`x\ny`");
        assert_eq!(md_code(" a ", 50, false), "`  a  `");
        assert_eq!(md_code("  ", 50, false), "`  `");
        assert_eq!(md_code("a|b", 50, false), "`a|b`");
        assert_eq!(md_code("a|b", 50, true), r"a\|b");
        assert_eq!(md_code("abcdef", 3, false), r"`abc`…\(3 more chars\)");
    }

    #[test]
    fn mermaid_label_strips_syntax_and_limits_length() {
        assert_eq!(mermaid_label(":;#%%{init}", 60), "init");
        assert_eq!(mermaid_label("a\nb\u{202E}c", 60), "a b c");
        assert_eq!(mermaid_label("```", 60), "unnamed");
        let long = mermaid_label(&"x".repeat(500), 10);
        assert_eq!(long, format!("{}…", "x".repeat(10)));
        assert_eq!(mermaid_label("Section Owner", 60), "_Section Owner");
    }

    // Issue 9: terminal output shows controls, bidi and zero-width characters, and cuts long
    // lines visibly.
    #[test]
    fn terminal_output_is_escaped_and_cut() {
        let hostile = "ok\u{1b}]0;pwned\u{7}\u{202E}gnp.exe\u{200B}\u{2066}x\u{8}\r\tz\u{85}";
        let out = terminal(hostile, 1000);
        assert_eq!(
            out,
            r"ok\u{001B}]0;pwned\u{0007}\u{202E}gnp.exe\u{200B}\u{2066}x\u{0008}\r\tz\u{0085}"
        );
        assert!(!out.chars().any(text::is_unsafe));
        assert_eq!(terminal("a\nb", 10), "a\nb");
        assert_eq!(terminal_line("a\nb", 10), r"a\nb");
        let huge = "x".repeat(10_000_000);
        let cut = terminal(&huge, 4000);
        assert!(cut.ends_with("…(9996000 more chars)"), "{}", &cut[3990..]);
        assert_eq!(cut.chars().filter(|c| *c == 'x').count(), 4000);
        let lines = terminal(&format!("{huge}\nshort"), 10);
        assert_eq!(lines, "xxxxxxxxxx…(9999990 more chars)\nshort");
    }
}
