//! Safe KQL literals: every value spliced into query text goes through here.
//!
//! The escaping follows the Kusto string-literal rules: in a `"..."` literal a backslash
//! escapes the enclosing quote, `\t`, `\n` and the backslash itself (string data type
//! reference); the lexer grammar (`microsoft/Kusto-Query-Language:grammar/KqlTokens.g4`,
//! `STRINGLITERAL`) also accepts `\r`, forbids raw CR/LF inside the quotes, and allows the same
//! body after an `h`/`H` prefix (the obfuscated form, kept out of Kusto's query telemetry).
//!
//! Any other control character is refused rather than escaped: the grammar lists `\u`/`\x`
//! escapes, but the documentation does not define them, and we do not splice anything whose
//! decoding we have not verified. None of the values we quote (UPNs, object ids) can legitimately
//! contain one.

use time::{OffsetDateTime, UtcOffset};

use crate::{Error, Result};

/// A double-quoted KQL string literal for `value`, e.g. `"o'brien\"x@contoso.com"`.
///
/// Escapes `\`, `"`, newline, carriage return and tab. Single quotes, `//`, `|` and any
/// printable Unicode pass through unchanged: inside `"..."` they are plain characters.
///
/// # Errors
///
/// [`Error::UnsafeCharacter`] when `value` holds a control character other than `\n`, `\r`,
/// `\t` (including NUL and DEL), a Unicode line or paragraph separator, or a bidirectional
/// override (which would make the query text read differently from what runs).
///
/// ```
/// assert_eq!(pim_kql::string_literal(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
/// assert!(pim_kql::string_literal("nul\u{0}").is_err());
/// ```
pub fn string_literal(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len() + 2);
    push_literal(&mut out, value)?;
    Ok(out)
}

/// The obfuscated form `h"..."` of [`string_literal`], for UPNs, object ids and any other
/// personal data: Kusto masks obfuscated literals in its query logs and telemetry.
///
/// # Errors
///
/// The same as [`string_literal`].
///
/// ```
/// assert_eq!(
///     pim_kql::obfuscated_string_literal("jane@contoso.com").unwrap(),
///     r#"h"jane@contoso.com""#
/// );
/// ```
pub fn obfuscated_string_literal(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len() + 3);
    out.push('h');
    push_literal(&mut out, value)?;
    Ok(out)
}

/// A parenthesised list of obfuscated literals for `in` / `in~`, e.g. `(h"a", h"b")`.
///
/// # Errors
///
/// [`Error::EmptyList`] when `values` is empty (`in~ ()` is not valid KQL), or the error of the
/// first value [`obfuscated_string_literal`] refuses.
///
/// ```
/// assert_eq!(pim_kql::string_list(&["a", "b"]).unwrap(), r#"(h"a", h"b")"#);
/// ```
pub fn string_list(values: &[&str]) -> Result<String> {
    if values.is_empty() {
        return Err(Error::EmptyList);
    }
    let mut out = String::from("(");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('h');
        push_literal(&mut out, value)?;
    }
    out.push(')');
    Ok(out)
}

/// A KQL datetime literal in UTC with all seven fractional digits Kusto stores, e.g.
/// `datetime(2026-11-20T09:13:58.1234567Z)`.
///
/// Kusto datetimes have 100-nanosecond ticks, so finer digits are truncated (events are stored
/// at tick precision, so an inclusive bound keeps the same events). Times outside Kusto's range
/// (years 1 to 9999) are clamped to its ends.
///
/// ```
/// use time::macros::datetime;
/// assert_eq!(
///     pim_kql::datetime_literal(datetime!(2026-11-20 10:13:58.123456789 +01:00)),
///     "datetime(2026-11-20T09:13:58.1234567Z)"
/// );
/// ```
pub fn datetime_literal(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let (t, ticks) = if t.year() < 1 {
        (time::macros::datetime!(0001-01-01 00:00:00 UTC), 0)
    } else if t.year() > 9999 {
        (time::macros::datetime!(9999-12-31 23:59:59 UTC), 9_999_999)
    } else {
        (t, t.nanosecond() / 100)
    };
    format!(
        "datetime({:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z)",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ticks
    )
}

/// Appends `"value"` with escapes to `out`; on error `out` may hold a partial literal, which
/// callers discard.
fn push_literal(out: &mut String, value: &str) -> Result<()> {
    out.push('"');
    for (position, ch) in value.chars().enumerate() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                return Err(Error::UnsafeCharacter {
                    code_point: u32::from(c),
                    position,
                });
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

/// Characters refused in literals: C0/C1 controls and DEL (no verified escape), Unicode line
/// and paragraph separators (some tools end a line there, e.g. the KQL line-comment rule), and
/// bidirectional embedding/override/isolate controls (they reorder how the query is displayed).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    /// Decodes one KQL string literal at the start of `text` following the lexer grammar and
    /// returns the value plus the unconsumed rest, so tests can prove where a literal ends.
    pub(crate) fn decode_literal(text: &str) -> Option<(String, &str)> {
        let body = text.strip_prefix('h').unwrap_or(text);
        let mut chars = body.strip_prefix('"')?.char_indices();
        let start = body.len() - body.strip_prefix('"')?.len();
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((value, &body[start + i + 1..])),
                '\r' | '\n' => return None,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    '\'' => value.push('\''),
                    _ => return None,
                },
                c => value.push(c),
            }
        }
        None
    }

    const HOSTILE: &[&str] = &[
        "",
        "plain@contoso.com",
        "\"",
        "\\",
        "\\\"",
        "'",
        "''",
        "//",
        "|",
        "a\nb",
        "a\r\nb",
        "tab\there",
        "\" or 1==1 //",
        "o'brien\"x@contoso.com",
        "\\\" | take 1 //",
        "\"\"\"",
        "```",
        "@\"",
        "h\"x\"",
        "日本語 émoji 🦀 Ω",
        "ends with backslash\\",
        "\u{FEFF}bom",
    ];

    #[test]
    fn every_hostile_value_round_trips_and_the_literal_ends_where_it_should() {
        for value in HOSTILE {
            for lit in [
                string_literal(value).unwrap(),
                obfuscated_string_literal(value).unwrap(),
            ] {
                let (decoded, rest) = decode_literal(&lit).unwrap_or_else(|| panic!("{lit}"));
                assert_eq!(&decoded, value, "{lit}");
                assert_eq!(rest, "", "literal {lit} ended early");
                assert!(!lit.contains('\n') && !lit.contains('\r'), "{lit}");
            }
        }
    }

    #[test]
    fn exact_escapes() {
        assert_eq!(
            string_literal("\" or 1==1 //").unwrap(),
            r#""\" or 1==1 //""#
        );
        assert_eq!(string_literal("a\\b").unwrap(), r#""a\\b""#);
        assert_eq!(string_literal("a\r\n\tb").unwrap(), r#""a\r\n\tb""#);
        assert_eq!(string_literal("o'brien").unwrap(), r#""o'brien""#);
        assert_eq!(
            obfuscated_string_literal("o'brien\"x@contoso.com").unwrap(),
            r#"h"o'brien\"x@contoso.com""#
        );
    }

    #[test]
    fn refuses_unsafe_characters_with_their_position() {
        for (value, code_point, position) in [
            ("a\u{0}", 0, 1),
            ("\u{7F}", 0x7F, 0),
            ("ab\u{1B}[31m", 0x1B, 2),
            ("\u{85}", 0x85, 0),
            ("x\u{2028}", 0x2028, 1),
            ("\u{202E}moc.osotnoc", 0x202E, 0),
            ("é\u{2067}", 0x2067, 1),
        ] {
            let err = string_literal(value).unwrap_err();
            assert_eq!(
                err,
                Error::UnsafeCharacter {
                    code_point,
                    position
                },
                "{value:?}"
            );
            assert!(obfuscated_string_literal(value).is_err());
            assert!(string_list(&["ok", value]).is_err());
        }
        let msg = string_literal("a\u{0}").unwrap_err().to_string();
        assert!(
            msg.contains("U+0000") && msg.contains("position 1"),
            "{msg}"
        );
    }

    #[test]
    fn lists_are_obfuscated_and_refuse_empty() {
        assert_eq!(
            string_list(&["a@x.com", "b\"@x.com"]).unwrap(),
            r#"(h"a@x.com", h"b\"@x.com")"#
        );
        assert_eq!(string_list(&[]).unwrap_err(), Error::EmptyList);
    }

    #[test]
    fn datetimes_are_utc_with_seven_digits() {
        assert_eq!(
            datetime_literal(datetime!(2026-11-20 09:13:58.1234567 UTC)),
            "datetime(2026-11-20T09:13:58.1234567Z)"
        );
        assert_eq!(
            datetime_literal(datetime!(2026-11-20 00:00 -05:00)),
            "datetime(2026-11-20T05:00:00.0000000Z)"
        );
        assert_eq!(
            datetime_literal(datetime!(-0005-01-01 00:00 UTC)),
            "datetime(0001-01-01T00:00:00.0000000Z)"
        );
    }
}
