//! Untrusted text, cut and neutralised by one set of rules.
//!
//! Justifications, log fields, service error bodies and model answers are written by people
//! (or programs) we audit, so every crate that shows such text to a terminal, a log line or a
//! Markdown report goes through this module. It does two jobs (see issue 11, item 7):
//!
//! - **Cutting**, always on character boundaries, never inside a UTF-8 sequence: [`cut`] says
//!   how many characters were dropped, so the caller can show a visible `…(N more chars)`
//!   marker ([`Cut::marker`]); [`clip`] fits text into a fixed number of characters with a
//!   final `…`.
//! - **Neutralising** the characters that can forge or hide what a reader sees
//!   ([`is_unsafe`]): control characters ([`is_control`]: escape sequences, carriage returns,
//!   backspaces, NUL), direction changers ([`is_bidi`]: the overrides, embeddings and isolates
//!   that reorder text) and invisible characters ([`is_invisible`]: zero-width spaces and
//!   joiners, the BOM, tag characters, fillers, line and paragraph separators).
//!
//! Each destination gets one function:
//!
//! | destination | function | unsafe characters become | bound |
//! |---|---|---|---|
//! | terminal, keeping line breaks | [`terminal`] | visible `\u{XXXX}`, `\r`, `\t` | `max` input characters per line, then `…(N more chars)` |
//! | terminal status line | [`terminal_line`] | the same, and `\n` too | `max` input characters, then `…(N more chars)` |
//! | log field, error message, table column | [`log_field`] | a space (runs of space fold to one) | `max` characters in all, `…` included |
//! | Markdown | `pim_report::escape` | [`visible_form`], then Markdown-escaped | `max` input characters, then the marker |
//!
//! Markdown *syntax* (which punctuation to backslash, the `<wbr>` after `@`) is the report
//! crate's job; the character rules it applies are these.
//!
//! Secrets are a different job: scrub them (`pim_http::secret::scrub`) *before* cutting, so a cut
//! can never leave half a key behind.
//!
//! ```
//! use pim_domain::text;
//!
//! // A terminal sees what was logged, not what it would do.
//! assert_eq!(text::terminal_line("evil\u{202E}txt.exe\u{1b}[2J", 100), r"evil\u{202E}txt.exe\u{001B}[2J");
//! // A log field stays one line: no CR/LF to forge a line, no ESC to start an ANSI sequence.
//! assert_eq!(text::log_field(" a\r\nfake: ok\u{1b}[31m ", 100), "a fake: ok [31m");
//! assert_eq!(text::log_field("abcdef", 4), "abc…");
//! // Cutting counts characters, never splits one, and says how much went.
//! let cut = text::cut("ééééé", 2);
//! assert_eq!((cut.kept, cut.dropped), ("éé", 3));
//! assert_eq!(cut.marker().as_deref(), Some("…(3 more chars)"));
//! ```

use std::fmt::Write as _;

/// The mark of a cut: one character, so it fits any bound of at least one character.
pub const ELLIPSIS: char = '…';

/// The longest [`visible_form`] of one character, in characters (`\u{E0041}`): what one input
/// character can grow to in [`terminal`] and [`terminal_line`].
pub const MAX_VISIBLE_CHARS: usize = 9;

/// Text cut after a number of characters: what is kept and how many characters were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut<'a> {
    /// The first characters of the text, at most the number asked for.
    pub kept: &'a str,
    /// How many characters followed them (0 when nothing was cut).
    pub dropped: usize,
}

impl Cut<'_> {
    /// Whether anything was cut.
    pub fn is_cut(&self) -> bool {
        self.dropped > 0
    }

    /// The visible marker of a cut, `…(N more chars)`, or `None` when nothing was cut.
    pub fn marker(&self) -> Option<String> {
        self.is_cut()
            .then(|| format!("{ELLIPSIS}({} more chars)", self.dropped))
    }
}

/// Keeps the first `max_chars` characters of `text` and counts the rest. Never panics and never
/// splits a character; the whole text is kept when it is short enough.
///
/// ```
/// let cut = pim_domain::text::cut("a€b", 2);
/// assert_eq!(cut.kept, "a€");
/// assert_eq!(cut.dropped, 1);
/// assert!(!pim_domain::text::cut("ab", 2).is_cut());
/// ```
pub fn cut(text: &str, max_chars: usize) -> Cut<'_> {
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => Cut {
            kept: &text[..byte],
            dropped: text[byte..].chars().count(),
        },
        None => Cut {
            kept: text,
            dropped: 0,
        },
    }
}

/// At most `max_chars` characters of `text`: when it is longer, its first `max_chars - 1`
/// characters and [`ELLIPSIS`]. The mark is always shown, so text cut to a bound of 0 is `…`.
/// Characters are kept as they are: use [`log_field`] or [`terminal_line`] for untrusted text
/// that is shown, and this only to bound text that is quoted or escaped afterwards.
///
/// ```
/// use pim_domain::text::clip;
/// assert_eq!(clip("abcdef", 4), "abc…");
/// assert_eq!(clip("abcd", 4), "abcd");
/// assert_eq!(clip("abc", 0), "…");
/// ```
pub fn clip(text: &str, max_chars: usize) -> String {
    let whole = cut(text, max_chars);
    if !whole.is_cut() {
        return text.to_owned();
    }
    let mut out = cut(text, max_chars.saturating_sub(1)).kept.to_owned();
    out.push(ELLIPSIS);
    out
}

/// A control character (Unicode category Cc: C0, DEL and C1): escape sequences start with one,
/// and CR, LF, backspace and NUL rewrite what a terminal or a log shows.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// A character that changes the direction of the text around it: the Arabic letter mark, the
/// left-to-right and right-to-left marks, the embeddings and overrides U+202A..U+202E and the
/// isolates U+2066..U+2069 ("Trojan Source": `evil\u{202E}txt.exe` reads as `evilexe.txt`).
pub fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// A character that renders as nothing (or as a blank that is not a space) and can hide text
/// or split a word where no one sees it: format characters (Unicode category Cf) such as the
/// soft hyphen, the zero-width space, non-joiner and joiner (U+200B..U+200D), the word joiner
/// and invisible operators (U+2060..U+2064), the BOM / zero-width no-break space (U+FEFF),
/// interlinear annotation marks and the tag characters (U+E0000..U+E0FFF, which can smuggle
/// ASCII past a reader); the Hangul and Mongolian fillers and vowel separators; the line and
/// paragraph separators U+2028 and U+2029. Direction changers are [`is_bidi`]. Emoji variation
/// selectors (U+FE00..U+FE0F) are left alone: they are ordinary in emoji.
pub fn is_invisible(c: char) -> bool {
    !is_bidi(c)
        && matches!(
            u32::from(c),
            0x00AD
                | 0x034F
                | 0x115F
                | 0x1160
                | 0x17B4
                | 0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200D
                | 0x2028
                | 0x2029
                | 0x2060..=0x2065
                | 0x206A..=0x206F
                | 0x3164
                | 0xFEFF
                | 0xFFA0
                | 0xFFF9..=0xFFFB
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

/// Whether `c` must be neutralised before untrusted text is shown anywhere: a control, bidi or
/// invisible character ([`is_control`], [`is_bidi`], [`is_invisible`]).
pub fn is_unsafe(c: char) -> bool {
    is_control(c) || is_bidi(c) || is_invisible(c)
}

/// The visible stand-in for an unsafe character ([`is_unsafe`]), or `None` for an ordinary one:
/// `\n`, `\r` and `\t` for the common three, `\u{XXXX}` (upper-case hex, at least four digits)
/// for every other. At most [`MAX_VISIBLE_CHARS`] characters, all ASCII.
///
/// ```
/// use pim_domain::text::visible_form;
/// assert_eq!(visible_form('\u{202E}').as_deref(), Some(r"\u{202E}"));
/// assert_eq!(visible_form('\r').as_deref(), Some(r"\r"));
/// assert_eq!(visible_form('a'), None);
/// ```
pub fn visible_form(c: char) -> Option<String> {
    match c {
        '\n' => Some("\\n".to_owned()),
        '\r' => Some("\\r".to_owned()),
        '\t' => Some("\\t".to_owned()),
        _ if is_unsafe(c) => Some(format!("\\u{{{:04X}}}", u32::from(c))),
        _ => None,
    }
}

/// Makes untrusted text safe to print on a terminal, keeping its line breaks: every other
/// unsafe character ([`is_unsafe`]: escape sequences, carriage return, backspace, tab, bidi
/// overrides and isolates, zero-width characters, tag characters) is shown as its
/// [`visible_form`], so a reader sees exactly what was logged, and each line longer than
/// `max_line_chars` characters is cut with a visible `…(N more chars)` marker.
///
/// ```
/// use pim_domain::text::terminal;
/// assert_eq!(terminal("a\u{1b}[31mb\u{202E}c\nd\re", 100), "a\\u{001B}[31mb\\u{202E}c\nd\\re");
/// assert_eq!(terminal("abcdef", 3), "abc…(3 more chars)");
/// ```
pub fn terminal(text: &str, max_line_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_line_chars.saturating_mul(4)) + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        push_terminal_line(&mut out, line, max_line_chars);
    }
    out
}

/// [`terminal`] for text that must stay on one line (a status line, a table cell): line breaks
/// are shown as `\n` too.
///
/// ```
/// use pim_domain::text::terminal_line;
/// assert_eq!(terminal_line("querying a\nb", 100), "querying a\\nb");
/// ```
pub fn terminal_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)) + 16);
    push_terminal_line(&mut out, text, max_chars);
    out
}

fn push_terminal_line(out: &mut String, line: &str, max_chars: usize) {
    let head = cut(line, max_chars);
    for c in head.kept.chars() {
        match visible_form(c) {
            Some(visible) => out.push_str(&visible),
            None => out.push(c),
        }
    }
    if head.is_cut() {
        let _ = write!(out, "{ELLIPSIS}({} more chars)", head.dropped);
    }
}

/// Makes untrusted text safe as one field of a log line, an error message or a table column:
/// every unsafe character ([`is_unsafe`]) and every run of whitespace becomes a single space,
/// so no CR or LF can forge a line and no ESC can start an ANSI sequence; leading and trailing
/// space is dropped; and the result holds at most `max_chars` characters, a cut marked by a
/// final [`ELLIPSIS`] (always shown, so a bound of 0 gives `…` for non-blank text).
///
/// Use [`terminal_line`] instead where the reader must see exactly which characters were
/// there; a log field is for reading at a glance and for size-limited columns.
///
/// ```
/// use pim_domain::text::log_field;
/// assert_eq!(log_field(" a\u{0}b\r\nc\u{1b}[31m ", 100), "a b c [31m");
/// assert_eq!(log_field("ad\u{200B}min\u{202E}", 100), "ad min");
/// assert_eq!(log_field("é".repeat(50).as_str(), 10), format!("{}…", "é".repeat(9)));
/// ```
pub fn log_field(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)) + 4);
    let mut count = 0usize;
    let mut pending_space = false;
    let mut cut = false;
    for c in text.chars() {
        if c.is_whitespace() || is_unsafe(c) {
            pending_space = count > 0;
            continue;
        }
        let needed = usize::from(pending_space) + 1;
        if count + needed > max_chars {
            cut = true;
            break;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    if cut {
        // The mark takes the last place, so the result never exceeds `max_chars` (unless the
        // bound is 0). A space left before it would read as a word break that was not there.
        if count >= max_chars {
            out.pop();
        }
        let kept = out.trim_end().len();
        out.truncate(kept);
        out.push(ELLIPSIS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One example of every class the module knows, with its expected class.
    const CONTROLS: &[char] = &[
        '\u{0}', '\u{7}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1b}', '\u{7f}',
        '\u{80}', '\u{85}', '\u{9b}', '\u{9f}',
    ];
    const BIDI: &[char] = &[
        '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
        '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ];
    const INVISIBLE: &[char] = &[
        '\u{ad}',
        '\u{34f}',
        '\u{115f}',
        '\u{1160}',
        '\u{17b4}',
        '\u{180e}',
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{2028}',
        '\u{2029}',
        '\u{2060}',
        '\u{2064}',
        '\u{206a}',
        '\u{3164}',
        '\u{feff}',
        '\u{ffa0}',
        '\u{fff9}',
        '\u{1d173}',
        '\u{e0001}',
        '\u{e0041}',
        '\u{e007f}',
        '\u{e0fff}',
    ];
    const ORDINARY: &[char] = &[
        'a',
        ' ',
        '~',
        'é',
        '€',
        '中',
        '😀',
        '\u{fe0f}',
        '\u{a0}',
        '\u{301}',
        '\u{10ffff}',
    ];

    fn all_unsafe() -> impl Iterator<Item = char> {
        CONTROLS.iter().chain(BIDI).chain(INVISIBLE).copied()
    }

    #[test]
    fn every_class_is_recognised_and_exclusive() {
        for &c in CONTROLS {
            assert!(is_control(c) && !is_bidi(c) && !is_invisible(c), "{c:?}");
        }
        for &c in BIDI {
            assert!(is_bidi(c) && !is_control(c) && !is_invisible(c), "{c:?}");
        }
        for &c in INVISIBLE {
            assert!(is_invisible(c) && !is_control(c) && !is_bidi(c), "{c:?}");
        }
        for &c in ORDINARY {
            assert!(!is_unsafe(c), "{c:?}");
            assert_eq!(visible_form(c), None);
        }
        assert!(all_unsafe().all(is_unsafe));
    }

    #[test]
    fn visible_forms_are_short_ascii_and_exact() {
        assert_eq!(visible_form('\n').as_deref(), Some(r"\n"));
        assert_eq!(visible_form('\t').as_deref(), Some(r"\t"));
        assert_eq!(visible_form('\u{0}').as_deref(), Some(r"\u{0000}"));
        assert_eq!(visible_form('\u{1b}').as_deref(), Some(r"\u{001B}"));
        assert_eq!(visible_form('\u{feff}').as_deref(), Some(r"\u{FEFF}"));
        assert_eq!(visible_form('\u{e0041}').as_deref(), Some(r"\u{E0041}"));
        for c in all_unsafe() {
            let v = visible_form(c).unwrap();
            assert!(v.is_ascii() && v.len() <= MAX_VISIBLE_CHARS, "{v}");
            assert!(!v.chars().any(is_unsafe), "{v}");
        }
    }

    #[test]
    fn cut_counts_characters_and_never_splits_one() {
        assert_eq!(
            cut("", 3),
            Cut {
                kept: "",
                dropped: 0
            }
        );
        assert_eq!(
            cut("abc", 0),
            Cut {
                kept: "",
                dropped: 3
            }
        );
        assert_eq!(cut("abc", 3).marker(), None);
        // Two-, three- and four-byte characters, and a combining accent kept as its own char.
        let mixed = "é€😀e\u{301}";
        for n in 0..=6 {
            let c = cut(mixed, n);
            assert_eq!(c.kept.chars().count(), n.min(5));
            assert_eq!(c.kept.chars().count() + c.dropped, 5);
            assert!(mixed.starts_with(c.kept));
        }
        assert_eq!(cut(mixed, 3).kept, "é€😀");
        assert_eq!(
            cut(&"é".repeat(5000), 100).marker().as_deref(),
            Some("…(4900 more chars)")
        );
    }

    #[test]
    fn clip_fits_the_bound_with_the_mark() {
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("", 5), "");
        assert_eq!(clip("abc", 0), "…");
        assert_eq!(clip("abc", 1), "…");
        assert_eq!(clip("abc", 2), "a…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("😀😀😀", 2), "😀…");
        // clip only cuts; escaping is someone else's job.
        assert_eq!(clip("a\u{1b}b", 5), "a\u{1b}b");
    }

    #[test]
    fn terminal_shows_every_unsafe_character() {
        let hostile = "ok\u{1b}]0;pwned\u{7}\u{202E}gnp.exe\u{200B}\u{2066}x\u{8}\r\tz\u{85}";
        assert_eq!(
            terminal(hostile, 1000),
            r"ok\u{001B}]0;pwned\u{0007}\u{202E}gnp.exe\u{200B}\u{2066}x\u{0008}\r\tz\u{0085}"
        );
        assert_eq!(terminal("a\nb", 10), "a\nb");
        assert_eq!(terminal_line("a\nb", 10), r"a\nb");
        assert_eq!(terminal("", 10), "");
        assert_eq!(terminal_line("\u{200b}\u{feff}", 10), r"\u{200B}\u{FEFF}");
        for c in all_unsafe() {
            let line = terminal_line(&format!("x{c}y"), 10);
            assert!(!line.chars().any(is_unsafe), "{c:?}: {line}");
            assert!(line.starts_with('x') && line.ends_with('y'), "{line}");
        }
    }

    #[test]
    fn terminal_cuts_each_line_at_character_boundaries() {
        assert_eq!(terminal("abcdef", 3), "abc…(3 more chars)");
        assert_eq!(
            terminal_line("éé\u{202e}éé", 3),
            r"éé\u{202E}…(2 more chars)"
        );
        let huge = "x".repeat(1_000_000);
        let lines = terminal(&format!("{huge}\nshort\n😀😀😀"), 2);
        assert_eq!(
            lines,
            "xx…(999998 more chars)\nsh…(3 more chars)\n😀😀…(1 more chars)"
        );
    }

    #[test]
    fn log_field_is_one_clean_line() {
        assert_eq!(log_field(" a\u{0}b\r\nc\u{1b}[31m ", 100), "a b c [31m");
        assert_eq!(
            log_field("line 1\n2026-01-01 INFO forged", 100),
            "line 1 2026-01-01 INFO forged"
        );
        assert_eq!(log_field("a\n- b\r\n\u{1b}[2Jc\t", 100), "a - b [2Jc");
        assert_eq!(log_field("x\u{200b}\n\ty ", 100), "x y");
        assert_eq!(log_field("evil\u{202e}txt.exe", 100), "evil txt.exe");
        assert_eq!(log_field("", 10), "");
        assert_eq!(log_field("", 0), "");
        // All invisible: nothing is left, not even a space.
        let invisible: String = all_unsafe().collect();
        assert_eq!(log_field(&invisible, 100), "");
        assert_eq!(log_field(&invisible, 0), "");
        assert_eq!(log_field(" \u{3000}\u{a0} ", 10), "");
        for c in all_unsafe() {
            assert_eq!(log_field(&format!("x{c}y"), 10), "x y", "{c:?}");
        }
    }

    #[test]
    fn log_field_cuts_within_the_bound() {
        let cut = log_field(&"é".repeat(50), 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(log_field("abc", 0), "…");
        assert_eq!(log_field("abc", 1), "…");
        assert_eq!(log_field("abc", 3), "abc");
        assert_eq!(log_field("abcd", 3), "ab…");
        // No space is left dangling before the mark.
        assert_eq!(log_field("ab cd", 4), "ab…");
        assert_eq!(log_field("a b", 2), "a…");
        assert_eq!(log_field("😀 😀 😀", 4), "😀 😀…");
    }

    /// A small deterministic generator (xorshift64*): strings drawn from every class, with
    /// multibyte characters and whitespace, so the properties below see thousands of shapes.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn char(&mut self) -> char {
            let pools: [&[char]; 5] = [CONTROLS, BIDI, INVISIBLE, ORDINARY, &[' ', '\n', '\r']];
            match self.below(6) {
                5 => char::from_u32((self.next() % 0x11_0000) as u32).unwrap_or('?'),
                i => {
                    let pool = pools[i];
                    pool[self.below(pool.len())]
                }
            }
        }

        fn string(&mut self) -> String {
            let len = self.below(40);
            (0..len).map(|_| self.char()).collect()
        }
    }

    #[test]
    fn generated_strings_never_leak_an_unsafe_character_nor_exceed_the_bound() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5_000 {
            let text = g.string();
            let max = g.below(30);
            let total = text.chars().count();

            let c = cut(&text, max);
            assert!(c.kept.chars().count() <= max);
            assert_eq!(c.kept.chars().count() + c.dropped, total);
            assert!(text.starts_with(c.kept));

            let clipped = clip(&text, max);
            assert!(clipped.chars().count() <= max.max(1), "{text:?} {max}");
            assert_eq!(clipped == text, total <= max);

            let field = log_field(&text, max);
            assert!(!field.chars().any(is_unsafe), "{text:?} -> {field:?}");
            assert!(
                field.chars().count() <= max.max(1),
                "{text:?} {max} -> {field:?}"
            );
            assert_eq!(field, field.trim());
            assert!(!field.contains("  "), "{field:?}");

            // What a line can grow to: each kept character in its visible form, plus the marker.
            let marker = c.marker().map_or(0, |m| m.chars().count());
            let line = terminal_line(&text, max);
            assert!(!line.chars().any(is_unsafe), "{text:?} -> {line:?}");
            assert!(line.chars().count() <= max * MAX_VISIBLE_CHARS + marker);

            let lines = terminal(&text, max);
            assert!(!lines.chars().any(|ch| is_unsafe(ch) && ch != '\n'));
            assert_eq!(lines.matches('\n').count(), text.matches('\n').count());
            for (shown, raw) in lines.split('\n').zip(text.split('\n')) {
                let marker = cut(raw, max).marker().map_or(0, |m| m.chars().count());
                assert!(shown.chars().count() <= max * MAX_VISIBLE_CHARS + marker);
            }
        }
    }
}
