//! The tokenizer behind [`crate::check_query`]: KQL text to tokens, with every literal and
//! comment form Kusto knows, and the bracket pairs.
//!
//! Decisions, each in the refusing direction when Kusto's reading could differ from ours:
//! - String literals: `'..'` and `".."` with backslash escapes, verbatim `@'..'`/`@".."` (a
//!   doubled quote is a quote), obfuscated `h'..'`, `H".."`, `h@'..'`, and multi-line
//!   ```` ``` ```` and `~~~` literals (also with `h`). A one-line literal that reaches a line
//!   break is refused. Missing one form would let a row cap land inside a literal.
//! - `//` comments run to the end of the line; `\r` ends a comment as `\n` does.
//! - Outside literals and comments only printable ASCII is accepted: a full-width `｜`, a
//!   non-breaking space or a control character there is refused, so an operator look-alike can
//!   never hide a pipe from the checker. Unicode line separators (U+0085, U+2028, U+2029) are
//!   refused everywhere, since tools disagree on whether they end a line or a comment.
//! - Dashed operator names (`mv-apply`, `project-away`, …) are one token.
//! - `['name']` and `["name"]` become one identifier token, so a quoted name is checked like a
//!   bare one.

use crate::check::QueryRejection;

/// Bracket nesting deeper than this is refused, so the recursive walk cannot exhaust the stack.
pub(crate) const MAX_NESTING: usize = 64;

/// Operator names written with dashes; the lexer joins `mv`, `-`, `apply` into `mv-apply`.
const DASHED: &[&str] = &[
    "mv-apply",
    "mv-expand",
    "make-series",
    "make-graph",
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "project-smart",
    "parse-where",
    "parse-kv",
    "top-nested",
    "top-hitters",
    "sample-distinct",
    "graph-match",
    "graph-merge",
    "graph-to-table",
    "graph-shortest-paths",
    "graph-mark-components",
    "macro-expand",
    "assert-schema",
    "execute-and-cache",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ident,
    Str,
    Num,
    Punct,
}

#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub(crate) kind: Kind,
    /// Identifier name (unquoted for `['x']`), punctuation, or number text; the decoded value
    /// for strings.
    pub(crate) value: String,
    /// Byte offsets into the query text.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// First token on its line: a `.` there starts a management command.
    pub(crate) line_start: bool,
}

impl Tok {
    pub(crate) fn is_punct(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.value == p
    }
    pub(crate) fn is_ident(&self, name: &str) -> bool {
        self.kind == Kind::Ident && self.value == name
    }
    pub(crate) fn is_open(&self) -> bool {
        self.kind == Kind::Punct && matches!(self.value.as_str(), "(" | "[" | "{")
    }
}

fn unsupported(message: impl Into<String>) -> QueryRejection {
    QueryRejection::Unsupported(message.into())
}

fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Splits `src` into tokens.
///
/// # Errors
///
/// An unterminated literal, a character outside printable ASCII where code belongs, or a
/// Unicode line separator anywhere.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Tok>, QueryRejection> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(src.len(), |&(o, _)| o);
    let line_of = |i: usize| src[..offset(i)].matches('\n').count() + 1;
    if let Some((pos, c)) = src.chars().enumerate().find(|&(_, c)| is_line_separator(c)) {
        return Err(unsupported(format!(
            "the query holds the line separator U+{:04X} at character {pos}; use a plain line break",
            u32::from(c)
        )));
    }
    let mut toks: Vec<Tok> = Vec::new();
    let mut line_start = true;
    let mut i = 0;
    while let Some(c) = at(i) {
        if c == '\n' || c == '\r' {
            line_start = true;
            i += 1;
            continue;
        }
        if c == ' ' || c == '\t' {
            i += 1;
            continue;
        }
        if c == '/' && at(i + 1) == Some('/') {
            while at(i).is_some_and(|c| c != '\n' && c != '\r') {
                i += 1;
            }
            continue;
        }
        let begin = i;
        // String literals: optional h/H (obfuscated), optional @ (verbatim), then a quote;
        // or a ``` multi-line literal.
        let mut q = i;
        if matches!(c, 'h' | 'H') {
            q += 1;
        }
        let verbatim = at(q) == Some('@');
        if verbatim {
            q += 1;
        }
        let kind;
        let mut value = String::new();
        let fence = |j: usize| {
            at(j)
                .filter(|&f| f == '`' || f == '~')
                .filter(|&f| at(j + 1) == Some(f) && at(j + 2) == Some(f))
        };
        let fenced = if matches!(c, 'h' | 'H') {
            fence(i + 1).map(|f| (f, i + 1))
        } else {
            fence(i).map(|f| (f, i))
        };
        if let Some((f, open)) = fenced {
            i = open + 3;
            loop {
                match at(i) {
                    None => {
                        return Err(unsupported(format!(
                            "unterminated {f}{f}{f} string literal starting on line {}",
                            line_of(begin)
                        )));
                    }
                    Some(ch) if ch == f && at(i + 1) == Some(f) && at(i + 2) == Some(f) => {
                        i += 3;
                        break;
                    }
                    Some(ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            kind = Kind::Str;
        } else if let Some(quote @ ('"' | '\'')) = at(q)
            && (q > i || matches!(c, '"' | '\''))
        {
            i = q + 1;
            loop {
                match at(i) {
                    None | Some('\n' | '\r') => {
                        return Err(unsupported(format!(
                            "unterminated string literal starting on line {}; a string must close on the same line (use ``` for multi-line text)",
                            line_of(begin)
                        )));
                    }
                    Some('\\') if !verbatim => {
                        if let Some(next) = at(i + 1)
                            && next != '\n'
                            && next != '\r'
                        {
                            value.push(next);
                            i += 2;
                        } else {
                            i += 1;
                        }
                    }
                    Some(ch) if ch == quote => {
                        if verbatim && at(i + 1) == Some(quote) {
                            value.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            kind = Kind::Str;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            i += 1;
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                i += 1;
            }
            value = src[offset(begin)..offset(i)].to_string();
            kind = Kind::Ident;
        } else if c.is_ascii_digit() {
            i += 1;
            while let Some(ch) = at(i) {
                let decimal = ch == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit());
                if ch.is_ascii_alphanumeric() || ch == '_' || decimal {
                    i += 1;
                } else {
                    break;
                }
            }
            value = src[offset(begin)..offset(i)].to_string();
            kind = Kind::Num;
        } else if c.is_ascii_graphic() {
            let two: String = [Some(c), at(i + 1)].into_iter().flatten().collect();
            i += if matches!(
                two.as_str(),
                "==" | "!=" | "<=" | ">=" | "=~" | "!~" | "<|" | ".." | "=>" | "<>"
            ) {
                2
            } else {
                1
            };
            value = src[offset(begin)..offset(i)].to_string();
            kind = Kind::Punct;
        } else {
            let what = if c.is_control() {
                "the control character"
            } else {
                "the non-ASCII character"
            };
            return Err(unsupported(format!(
                "{what} U+{:04X} on line {} is outside a string literal; write operators, names and spaces in plain ASCII (a look-alike of `|` or another operator is refused)",
                u32::from(c),
                line_of(begin)
            )));
        }
        toks.push(Tok {
            kind,
            value,
            start: offset(begin),
            end: offset(i),
            line_start,
        });
        line_start = false;
    }
    Ok(merge_bracketed_names(join_dashed(toks)))
}

/// Joins `mv`, `-`, `apply` (written without spaces) into the one operator token `mv-apply`.
fn join_dashed(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let mut joined: Option<(Tok, usize)> = None;
        if toks[i].kind == Kind::Ident {
            let mut name = toks[i].value.clone();
            let mut j = i;
            while j + 2 < toks.len()
                && toks[j + 1].is_punct("-")
                && toks[j + 1].start == toks[j].end
                && toks[j + 2].kind == Kind::Ident
                && toks[j + 2].start == toks[j + 1].end
            {
                name = format!("{name}-{}", toks[j + 2].value);
                j += 2;
                if DASHED.contains(&name.as_str()) {
                    joined = Some((
                        Tok {
                            kind: Kind::Ident,
                            value: name.clone(),
                            start: toks[i].start,
                            end: toks[j].end,
                            line_start: toks[i].line_start,
                        },
                        j + 1,
                    ));
                }
            }
        }
        match joined {
            Some((tok, next)) => {
                out.push(tok);
                i = next;
            }
            None => {
                out.push(toks[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// Turns `['name']` / `["name"]` into one identifier token.
fn merge_bracketed_names(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if toks[i].is_punct("[")
            && toks.get(i + 1).is_some_and(|t| t.kind == Kind::Str)
            && toks.get(i + 2).is_some_and(|t| t.is_punct("]"))
        {
            out.push(Tok {
                kind: Kind::Ident,
                value: toks[i + 1].value.clone(),
                start: toks[i].start,
                end: toks[i + 2].end,
                line_start: toks[i].line_start,
            });
            i += 3;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
}

/// For each opening bracket, the index of its closing one (`usize::MAX` for other tokens).
///
/// # Errors
///
/// Unbalanced or mismatched brackets, or nesting deeper than [`MAX_NESTING`].
pub(crate) fn match_brackets(toks: &[Tok]) -> Result<Vec<usize>, QueryRejection> {
    let mut matching = vec![usize::MAX; toks.len()];
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        if tok.kind != Kind::Punct {
            continue;
        }
        match tok.value.as_str() {
            "(" | "[" | "{" => {
                stack.push((i, tok.value.as_str()));
                if stack.len() > MAX_NESTING {
                    return Err(unsupported(format!(
                        "brackets are nested more than {MAX_NESTING} deep"
                    )));
                }
            }
            close @ (")" | "]" | "}") => {
                let expected = match close {
                    ")" => "(",
                    "]" => "[",
                    _ => "{",
                };
                match stack.pop() {
                    Some((open, kind)) if kind == expected => matching[open] = i,
                    _ => return Err(unsupported(format!("unbalanced `{close}`"))),
                }
            }
            _ => {}
        }
    }
    if let Some((_, open)) = stack.pop() {
        return Err(unsupported(format!("unclosed `{open}`")));
    }
    Ok(matching)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, String)> {
        tokenize(src)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.value))
            .collect()
    }

    #[test]
    fn knows_every_literal_form() {
        let toks = kinds(
            r#"'a|b' "c\"d" @'e''f' @"g\" h'union T' H"x" h@'y''z' ```multi
line | union T``` ~~~a | union T // ~~~ h```b``` H~~~c~~~"#,
        );
        let strings: Vec<&str> = toks
            .iter()
            .filter(|(k, _)| *k == Kind::Str)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            strings,
            [
                "a|b",
                "c\"d",
                "e'f",
                "g\\",
                "union T",
                "x",
                "y'z",
                "multi\nline | union T",
                "a | union T // ",
                "b",
                "c"
            ]
        );
        assert_eq!(toks.len(), 11, "{toks:?}");
    }

    #[test]
    fn comments_end_at_any_line_break() {
        let toks = kinds("A // x | union B\r| union C\n// y\nD");
        let idents: Vec<&str> = toks
            .iter()
            .filter(|(k, _)| *k == Kind::Ident)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(idents, ["A", "union", "C", "D"]);
    }

    #[test]
    fn refuses_look_alikes_and_line_separators() {
        for src in [
            "AuditLogs \u{ff5c} take 1",
            "AuditLogs\u{a0}| take 1",
            "AuditLogs | take 1 \u{1}",
            "Audit\u{0430}Logs",
            "AuditLogs // x\u{2028}| union T",
            "AuditLogs | where x == 'a\u{2029}'",
        ] {
            let err = tokenize(src).unwrap_err().to_string();
            assert!(err.contains("U+"), "{src:?}: {err}");
        }
        // Non-ASCII inside literals and comments is data.
        assert!(tokenize("AuditLogs | where x == '\u{ff5c}' // \u{ff5c}").is_ok());
    }

    #[test]
    fn dashed_operators_and_bracketed_names_are_one_token() {
        let toks = kinds("T | mv-apply x on (take 1) | project-away y | ['Signin Logs'] | a-b");
        let values: Vec<&str> = toks.iter().map(|(_, v)| v.as_str()).collect();
        assert!(values.contains(&"mv-apply"), "{values:?}");
        assert!(values.contains(&"project-away"));
        assert!(values.contains(&"Signin Logs"));
        // `a-b` is a subtraction, not an operator.
        assert!(values.ends_with(&["a", "-", "b"]), "{values:?}");
    }

    #[test]
    fn brackets_must_match() {
        let toks = tokenize("(a[b]{c})").unwrap();
        let m = match_brackets(&toks).unwrap();
        assert_eq!(m[0], 8);
        assert!(match_brackets(&tokenize("(]").unwrap()).is_err());
        assert!(match_brackets(&tokenize("((").unwrap()).is_err());
    }
}
