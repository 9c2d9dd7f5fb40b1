//! What a line typed in the chat asks for: a command, a question about a user, or a free-form
//! question for the model. Pure functions, so the wording the session accepts is unit-tested.

/// Who a follow-up is about, before it is resolved against the session's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserRef {
    /// "they", "their", "that user", or no user at all: the user last discussed.
    Current,
    /// "2", "#2", "the second one": the user with this number (1-based) in the last listing.
    Index(usize),
    /// A UPN, display name or the part of a UPN before `@`, as typed.
    Name(String),
}

/// What one line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Intent {
    /// A blank line.
    Empty,
    /// `scan [hours]` (also `scan 48h`, `scan last 2 days`).
    Scan {
        /// The window length in hours, when given.
        hours: Option<u32>,
    },
    /// "what did `<user>` do".
    WhatDid(UserRef),
    /// `assess [user]`, "does their activity align with the reason?".
    Assess(UserRef),
    /// `report [path]`, or `report! path` to replace an existing file or write through a
    /// symlink.
    Report {
        /// Where to write the Markdown; `None` prints it.
        path: Option<String>,
        /// `report!`: the user asked to replace what is at `path`.
        overwrite: bool,
    },
    /// `show kql`: the last query run.
    ShowKql,
    /// `help`.
    Help,
    /// `exit` / `quit`.
    Exit,
    /// Anything else: a question for the model.
    Question(String),
}

/// Words a first word or filler can be, lower-cased, used by [`parse_intent`].
const PRONOUNS: &[&str] = &[
    "they",
    "them",
    "their",
    "theirs",
    "he",
    "him",
    "his",
    "she",
    "her",
    "it",
    "its",
    "that user",
    "this user",
    "that person",
    "this person",
    "the user",
    "that one",
    "this one",
    "that account",
    "this account",
    "that identity",
    "this identity",
];

const ORDINALS: &[(&str, usize)] = &[
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("sixth", 6),
    ("seventh", 7),
    ("eighth", 8),
    ("ninth", 9),
    ("tenth", 10),
];

/// Reads one line typed in the chat. Commands are matched case-insensitively and tolerate
/// filler words and trailing punctuation; names and paths keep the case they were typed in.
pub(crate) fn parse_intent(line: &str) -> Intent {
    if line.trim() == "?" {
        return Intent::Help;
    }
    let text = line.trim().trim_end_matches(['?', '!', '.']).trim();
    if text.is_empty() {
        return Intent::Empty;
    }
    let lower = text.to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower_words: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let first = lower_words.first().map(String::as_str).unwrap_or_default();

    match lower.as_str() {
        "exit" | "quit" | "q" | ":q" | "bye" | "goodbye" | "logout" => return Intent::Exit,
        "help" | "h" | "commands" | "what can you do" | "usage" => return Intent::Help,
        _ => {}
    }
    if is_show_kql(&lower_words) {
        return Intent::ShowKql;
    }
    if (first == "scan" || first == "rescan")
        && let Some(hours) = scan_hours(&lower_words[1..])
    {
        return Intent::Scan { hours };
    }
    if let Some((path, overwrite)) = report_path(&words, &lower_words) {
        return Intent::Report { path, overwrite };
    }
    if matches!(first, "assess" | "judge" | "verdict" | "evaluate") {
        let rest = words[1..].join(" ");
        let rest = strip_prefix_words(&rest, &["for", "of"]);
        if let Some(user) = user_ref(rest) {
            return Intent::Assess(user);
        }
    }
    if asks_alignment(&lower) {
        let user = alignment_subject(text).unwrap_or(UserRef::Current);
        return Intent::Assess(user);
    }
    if let Some(user) = what_did_subject(text, &lower) {
        return Intent::WhatDid(user);
    }
    // A bare "2", "#2", "the second one" or UPN picks that user, as "what did 2 do" would.
    let bare = lower
        .strip_prefix("what about ")
        .or_else(|| lower.strip_prefix("how about "))
        .or_else(|| lower.strip_prefix("and "))
        // Lower-casing can change byte lengths: slice the original only where it is safe.
        .and_then(|rest| text.get(text.len().checked_sub(rest.len())?..))
        .unwrap_or(text);
    let single_upn = bare.contains('@') && !bare.contains(char::is_whitespace);
    match user_ref(bare) {
        Some(user @ UserRef::Index(_)) => return Intent::WhatDid(user),
        Some(user @ UserRef::Name(_)) if single_upn => return Intent::WhatDid(user),
        _ => {}
    }
    Intent::Question(text.to_owned())
}

fn is_show_kql(words: &[String]) -> bool {
    const FILLER: &[&str] = &[
        "show", "print", "display", "me", "the", "last", "that", "your",
    ];
    let content: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !FILLER.contains(w))
        .collect();
    matches!(content.as_slice(), ["kql"] | ["query"])
}

/// The hours of `scan` arguments: `None` inside when no length was given; `None` outside when
/// the words are not a window length at all.
fn scan_hours(rest: &[String]) -> Option<Option<u32>> {
    let mut hours = None;
    let mut unit_days = false;
    for word in rest {
        let w = word.as_str();
        if matches!(
            w,
            "last" | "the" | "past" | "for" | "of" | "window" | "over" | "again" | "now"
        ) {
            continue;
        }
        if matches!(w, "h" | "hr" | "hrs" | "hour" | "hours") {
            continue;
        }
        if matches!(w, "d" | "day" | "days") {
            unit_days = true;
            continue;
        }
        let (digits, suffix) = w.split_at(w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len()));
        if digits.is_empty() || hours.is_some() {
            return None;
        }
        match suffix {
            "" | "h" | "hr" | "hrs" | "hour" | "hours" => {}
            "d" | "day" | "days" => unit_days = true,
            _ => return None,
        }
        hours = Some(digits.parse::<u32>().unwrap_or(u32::MAX));
    }
    Some(hours.map(|h| if unit_days { h.saturating_mul(24) } else { h }))
}

/// The path of a report command and whether it was `report!` (overwrite).
fn report_path(words: &[&str], lower: &[String]) -> Option<(Option<String>, bool)> {
    // `report!` asks to replace an existing file (see `save`); a bare `report!` is `report`.
    let overwrite = lower.first().is_some_and(|w| w == "report!");
    let start = match lower.first().map(String::as_str) {
        Some("report" | "report!") => 1,
        Some("write" | "save" | "export") if lower.get(1).map(String::as_str) == Some("report") => {
            2
        }
        Some("write" | "save" | "export")
            if lower.get(1).map(String::as_str) == Some("the")
                && lower.get(2).map(String::as_str) == Some("report") =>
        {
            3
        }
        _ => return None,
    };
    let mut rest = &words[start..];
    if let Some(first) = rest.first()
        && matches!(first.to_lowercase().as_str(), "to" | "into" | "as" | "in")
    {
        rest = &rest[1..];
    }
    match rest {
        [] => Some((None, false)),
        // A path is one word; more words read as a question ("report on what alice did").
        [path] => Some((Some((*path).to_owned()), overwrite)),
        _ => None,
    }
}

fn asks_alignment(lower: &str) -> bool {
    lower.contains("align")
        || lower.contains("match the reason")
        || lower.contains("match the justification")
        || lower.contains("fit the reason")
        || lower.contains("fit the justification")
        || lower.contains("consistent with the")
        || lower.contains("justified")
}

/// The user an alignment question names: a UPN, `#2`, or the words before "activity".
fn alignment_subject(text: &str) -> Option<UserRef> {
    for word in text.split_whitespace() {
        let w = word.trim_matches(|c: char| matches!(c, '?' | ',' | '.' | '!' | '"' | '\''));
        let w = w.strip_suffix("'s").unwrap_or(w);
        if w.contains('@') {
            return Some(UserRef::Name(w.to_owned()));
        }
        if let Some(n) = w.strip_prefix('#').and_then(|n| n.parse().ok()) {
            return Some(UserRef::Index(n));
        }
    }
    let lower = text.to_lowercase();
    for (word, n) in ORDINALS {
        if lower.contains(&format!("the {word} one")) || lower.contains(&format!("the {word} user"))
        {
            return Some(UserRef::Index(*n));
        }
    }
    None
}

fn what_did_subject(text: &str, lower: &str) -> Option<UserRef> {
    const FORMS: &[(&str, &str)] = &[
        ("what did ", " do"),
        ("what has ", " done"),
        ("what have ", " done"),
        ("what was ", " doing"),
        ("what were ", " doing"),
        ("show activity of ", ""),
        ("show activity for ", ""),
        ("show the activity of ", ""),
        ("show the activity for ", ""),
        ("activity of ", ""),
        ("activity for ", ""),
        ("activities of ", ""),
        ("activities for ", ""),
        ("show activities of ", ""),
        ("show activities for ", ""),
    ];
    for (prefix, suffix) in FORMS {
        if lower.starts_with(prefix) && lower.ends_with(suffix) {
            // Lower-casing can change byte lengths, so slice the original defensively.
            let end = text.len().checked_sub(suffix.len())?;
            let middle = text.get(prefix.len()..end)?;
            return user_ref(middle.trim());
        }
    }
    // "show 2's activity", "show their activity".
    let rest = lower.strip_prefix("show ")?;
    let subject = rest
        .strip_suffix("'s activity")
        .or_else(|| rest.strip_suffix("'s activities"))
        .or_else(|| rest.strip_suffix(" activity"))
        .or_else(|| rest.strip_suffix(" activities"))?;
    let original = text.get("show ".len()..("show ".len() + subject.len()).min(text.len()))?;
    user_ref(original.trim())
}

fn strip_prefix_words<'a>(text: &'a str, words: &[&str]) -> &'a str {
    let trimmed = text.trim_start();
    for w in words {
        if let Some(head) = trimmed.get(..w.len())
            && head.eq_ignore_ascii_case(w)
            && trimmed[w.len()..].starts_with(char::is_whitespace)
        {
            return trimmed[w.len()..].trim_start();
        }
    }
    trimmed
}

/// Reads a user reference; `None` when the words are too many to be a name (then the line is
/// treated as a question for the model instead).
fn user_ref(text: &str) -> Option<UserRef> {
    let text = text
        .trim()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '`'));
    let text = text.strip_suffix("'s").unwrap_or(text).trim();
    let lower = text.to_lowercase();
    if lower.is_empty() || PRONOUNS.contains(&lower.as_str()) {
        return Some(UserRef::Current);
    }
    let bare = strip_prefix_words(&lower, &["user", "number", "no.", "no", "the"]);
    let bare = strip_prefix_words(bare, &["user", "number", "no.", "no"]);
    let bare = bare.strip_prefix('#').unwrap_or(bare);
    if let Ok(n) = bare.parse::<usize>() {
        return Some(UserRef::Index(n));
    }
    let ordinal = bare
        .strip_suffix(" one")
        .or_else(|| bare.strip_suffix(" user"))
        .or_else(|| bare.strip_suffix(" person"))
        .unwrap_or(bare)
        .trim();
    for (word, n) in ORDINALS {
        if ordinal == *word {
            return Some(UserRef::Index(*n));
        }
    }
    let numeric_ordinal = ordinal
        .strip_suffix("st")
        .or_else(|| ordinal.strip_suffix("nd"))
        .or_else(|| ordinal.strip_suffix("rd"))
        .or_else(|| ordinal.strip_suffix("th"));
    if let Some(n) = numeric_ordinal.and_then(|n| n.parse::<usize>().ok()) {
        return Some(UserRef::Index(n));
    }
    // A display name has a few words; a longer phrase is a question, not a name.
    if text.split_whitespace().count() > 3 {
        return None;
    }
    let name = strip_prefix_words(text, &["user"]);
    Some(UserRef::Name(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> UserRef {
        UserRef::Name(s.to_owned())
    }

    #[test]
    fn commands_are_case_insensitive_and_tolerant() {
        assert_eq!(parse_intent("  "), Intent::Empty);
        assert_eq!(parse_intent("EXIT"), Intent::Exit);
        assert_eq!(parse_intent("quit."), Intent::Exit);
        assert_eq!(parse_intent("Help"), Intent::Help);
        assert_eq!(parse_intent("?"), Intent::Help);
        assert_eq!(parse_intent("show kql"), Intent::ShowKql);
        assert_eq!(parse_intent("Show the KQL"), Intent::ShowKql);
        assert_eq!(parse_intent("show last query"), Intent::ShowKql);
        assert_eq!(parse_intent("kql"), Intent::ShowKql);
        assert_eq!(parse_intent("scan"), Intent::Scan { hours: None });
        assert_eq!(parse_intent("Scan 48"), Intent::Scan { hours: Some(48) });
        assert_eq!(parse_intent("scan 12h"), Intent::Scan { hours: Some(12) });
        assert_eq!(
            parse_intent("scan the last 2 days"),
            Intent::Scan { hours: Some(48) }
        );
        assert_eq!(
            parse_intent("scan last 6 hours"),
            Intent::Scan { hours: Some(6) }
        );
        assert_eq!(
            parse_intent("report"),
            Intent::Report {
                path: None,
                overwrite: false
            }
        );
        assert_eq!(
            parse_intent("report out/Audit.md"),
            Intent::Report {
                path: Some("out/Audit.md".into()),
                overwrite: false
            }
        );
        assert_eq!(
            parse_intent("save report to /tmp/R.md"),
            Intent::Report {
                path: Some("/tmp/R.md".into()),
                overwrite: false
            }
        );
        // Issue 9: replacing a file is asked for explicitly.
        assert_eq!(
            parse_intent("report! out/Audit.md"),
            Intent::Report {
                path: Some("out/Audit.md".into()),
                overwrite: true
            }
        );
        assert_eq!(
            parse_intent("report!"),
            Intent::Report {
                path: None,
                overwrite: false
            }
        );
    }

    #[test]
    fn lines_that_only_look_like_commands_are_questions() {
        for q in [
            "scan for deleted resource groups",
            "show query results for rg-prod",
            "report on what alice did in rg-prod",
            "which users deleted resources yesterday?",
            "what did the admins in rg-prod do yesterday",
        ] {
            assert!(matches!(parse_intent(q), Intent::Question(_)), "{q}");
        }
    }

    #[test]
    fn what_did_reads_names_numbers_ordinals_and_pronouns() {
        assert_eq!(
            parse_intent("what did 2 do"),
            Intent::WhatDid(UserRef::Index(2))
        );
        assert_eq!(
            parse_intent("What did #3 do?"),
            Intent::WhatDid(UserRef::Index(3))
        );
        assert_eq!(
            parse_intent("what did they do"),
            Intent::WhatDid(UserRef::Current)
        );
        assert_eq!(
            parse_intent("what did that user do?"),
            Intent::WhatDid(UserRef::Current)
        );
        assert_eq!(
            parse_intent("what did the second one do"),
            Intent::WhatDid(UserRef::Index(2))
        );
        assert_eq!(
            parse_intent("what did user 4 do"),
            Intent::WhatDid(UserRef::Index(4))
        );
        assert_eq!(
            parse_intent("what has the 3rd one done"),
            Intent::WhatDid(UserRef::Index(3))
        );
        assert_eq!(
            parse_intent("what did Mallory.Reed@contoso-demo.com do"),
            Intent::WhatDid(name("Mallory.Reed@contoso-demo.com"))
        );
        assert_eq!(
            parse_intent("show their activity"),
            Intent::WhatDid(UserRef::Current)
        );
        assert_eq!(
            parse_intent("activity of Ju Cho"),
            Intent::WhatDid(name("Ju Cho"))
        );
    }

    #[test]
    fn a_bare_reference_picks_a_user() {
        assert_eq!(parse_intent("2"), Intent::WhatDid(UserRef::Index(2)));
        assert_eq!(parse_intent("#3"), Intent::WhatDid(UserRef::Index(3)));
        assert_eq!(
            parse_intent("the second one"),
            Intent::WhatDid(UserRef::Index(2))
        );
        assert_eq!(
            parse_intent("what about 4?"),
            Intent::WhatDid(UserRef::Index(4))
        );
        assert_eq!(
            parse_intent("and Bob@X.org"),
            Intent::WhatDid(name("Bob@X.org"))
        );
        // A bare word that is not a UPN is a question, not a user.
        assert!(matches!(parse_intent("deletions"), Intent::Question(_)));
        assert!(matches!(parse_intent("and yesterday"), Intent::Question(_)));
    }

    #[test]
    fn alignment_questions_and_assess() {
        assert_eq!(
            parse_intent("does their activity align with the reason?"),
            Intent::Assess(UserRef::Current)
        );
        assert_eq!(
            parse_intent("Does it match the justification"),
            Intent::Assess(UserRef::Current)
        );
        assert_eq!(
            parse_intent("does alice@contoso.com's activity align?"),
            Intent::Assess(name("alice@contoso.com"))
        );
        assert_eq!(
            parse_intent("does #2 align"),
            Intent::Assess(UserRef::Index(2))
        );
        assert_eq!(parse_intent("assess"), Intent::Assess(UserRef::Current));
        assert_eq!(parse_intent("assess 5"), Intent::Assess(UserRef::Index(5)));
        assert_eq!(
            parse_intent("assess bob@x.org"),
            Intent::Assess(name("bob@x.org"))
        );
        assert_eq!(
            parse_intent("Assess them"),
            Intent::Assess(UserRef::Current)
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for line in [
            "\u{0}\u{1b}[31m",
            "what did  do",
            "what did ",
            "scan 99999999999999999999",
            "report a b c",
            "assess the",
            "#",
            "what did ü@ß do",
            "and İİİİ",
            "what about ẞẞ",
            &"x".repeat(100_000),
        ] {
            let _ = parse_intent(line);
        }
        assert_eq!(
            parse_intent("scan 99999999999999999999"),
            Intent::Scan {
                hours: Some(u32::MAX)
            }
        );
    }
}
