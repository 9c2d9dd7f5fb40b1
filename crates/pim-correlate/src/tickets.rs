//! Ticket references in justifications.
//!
//! A hand-written scanner rather than a regex: it runs once per activation over untrusted text
//! of any length, in one linear pass, and needs no fallible compilation step.

/// ServiceNow-style prefixes. They match in any case (`inc0042` is written by real people) and
/// come out upper-cased; a dash between prefix and number is allowed (`SR-123`, `SR123`).
const SERVICE_DESK_PREFIXES: &[&str] = &[
    "SCTASK", "CTASK", "RITM", "TASK", "INC", "CHG", "REQ", "PRB", "CS", "SR",
];

/// Digits a service-desk prefix needs: `CS2` or `INC1` are more likely prose than tickets.
const MIN_SERVICE_DESK_DIGITS: usize = 3;

/// Upper-case `WORD-123` tokens that are standards, algorithms or identifiers rather than Jira
/// keys (`SHA-256`, `AES-128`, `TLS-1`, `CVE-2024-…`, `ISO-27001`, `RFC-3339`, ...).
const NOT_JIRA_KEYS: &[&str] = &[
    "AES", "ARM", "CHACHA", "CVE", "CWE", "DES", "ECDSA", "ECDH", "ED", "GPT", "HMAC", "HTTP",
    "HTTPS", "IEC", "IPV", "ISO", "MD", "NIST", "PBKDF", "PKCS", "RC", "RFC", "RSA", "SHA", "SSL",
    "TLS", "UTF", "WIN", "X",
];

/// Most tickets kept from one justification; anything past that is noise or an attack.
const MAX_TICKETS: usize = 32;

/// Finds ticket references in a justification, deduplicated, in order of appearance.
///
/// Recognised forms:
/// - service-desk numbers: `INC`, `CHG`, `RITM`, `REQ`, `PRB`, `TASK`, `SCTASK`, `CTASK`, `CS`, `SR`
///   followed (optionally after `-`) by at least three digits, in any case (returned upper-case);
/// - Jira keys: an upper-case project key of at least two characters (letters, then letters or
///   digits), a dash and a number (`OPS-42`), except well-known non-ticket words such as
///   `SHA-256`, `AES-128`, `CVE-2024-1234`, `ISO-27001`.
///
/// A reference must stand on its own: `XINC0042` or `INC0042X` is not a ticket.
///
/// ```
/// use pim_correlate::extract_tickets;
/// assert_eq!(
///     extract_tickets("INC0042 and ops-1, OPS-77, SHA-256, inc0042"),
///     vec!["INC0042".to_owned(), "OPS-77".to_owned()]
/// );
/// ```
pub fn extract_tickets(justification: &str) -> Vec<String> {
    let bytes = justification.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_TICKETS {
        let at_boundary = i == 0 || !is_word_byte(bytes[i - 1]);
        if !at_boundary || !bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        // The word: letters and digits up to the first other byte.
        let word_end = i + bytes[i..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(bytes.len() - i);
        match ticket_at(bytes, i, word_end) {
            Some((ticket, end)) => {
                if !out.contains(&ticket) {
                    out.push(ticket);
                }
                i = end;
            }
            None => i = word_end.max(i + 1),
        }
    }
    out
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A ticket starting at `start` whose leading alphanumeric word ends at `word_end`, and the index
/// just past it.
fn ticket_at(bytes: &[u8], start: usize, word_end: usize) -> Option<(String, usize)> {
    let word = &bytes[start..word_end];
    let letters = word.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let prefix = &word[..letters];

    if let Some(known) = SERVICE_DESK_PREFIXES
        .iter()
        .find(|p| p.as_bytes().eq_ignore_ascii_case(prefix))
    {
        // `INC0042`: the digits are part of the word.
        let digits = &word[letters..];
        if !digits.is_empty() {
            let all_digits = digits.iter().all(u8::is_ascii_digit);
            if all_digits
                && digits.len() >= MIN_SERVICE_DESK_DIGITS
                && ends_cleanly(bytes, word_end)
            {
                return Some((format!("{known}{}", ascii(digits)), word_end));
            }
            return None;
        }
        // `SR-123`.
        if let Some((num, end)) = dashed_number(bytes, word_end)
            && num.len() >= MIN_SERVICE_DESK_DIGITS
        {
            return Some((format!("{known}-{}", ascii(num)), end));
        }
        return None;
    }

    // Jira: KEY-123 with an upper-case key.
    let key_ok = word.len() >= 2
        && word[0].is_ascii_uppercase()
        && word
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !key_ok {
        return None;
    }
    let key = ascii(word);
    if NOT_JIRA_KEYS.contains(&key) {
        return None;
    }
    let (num, end) = dashed_number(bytes, word_end)?;
    // `ABC-2024-11-03` is a date-like code, not an issue key.
    if bytes.get(end) == Some(&b'-') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((format!("{key}-{}", ascii(num)), end))
}

/// `-` then digits then a clean end, starting at `at`; returns the digits and the end index.
fn dashed_number(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if bytes.get(at) != Some(&b'-') {
        return None;
    }
    let from = at + 1;
    let n = bytes[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    // Issue numbers beyond ten digits are not issue numbers.
    if n == 0 || n > 10 || !ends_cleanly(bytes, from + n) {
        return None;
    }
    Some((&bytes[from..from + n], from + n))
}

fn ends_cleanly(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_none_or(|b| !is_word_byte(*b))
}

/// The bytes as text; only ever called on ASCII alphanumerics.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        extract_tickets(s)
    }

    #[test]
    fn service_desk_numbers_in_any_case() {
        assert_eq!(
            t("INC0042 - restart stuck VM in rg-prod-web"),
            vec!["INC0042"]
        );
        assert_eq!(
            t(
                "chg1234567, RITM0001234; req555 (PRB000123) task1234 SCTASK0012345 cs0001234 ctask0001"
            ),
            vec![
                "CHG1234567",
                "RITM0001234",
                "REQ555",
                "PRB000123",
                "TASK1234",
                "SCTASK0012345",
                "CS0001234",
                "CTASK0001"
            ]
        );
    }

    #[test]
    fn sr_with_and_without_dash() {
        assert_eq!(
            t("SR-123 then SR123 and sr-881"),
            vec!["SR-123", "SR123", "SR-881"]
        );
    }

    #[test]
    fn jira_keys_need_upper_case_and_two_chars() {
        assert_eq!(
            t("OPS-42 ops-43 A-1 AB-1 K8S-99"),
            vec!["OPS-42", "AB-1", "K8S-99"]
        );
    }

    #[test]
    fn standards_and_algorithms_are_not_tickets() {
        assert!(
            t("rotate SHA-256 / AES-128 keys, TLS-1 off, CVE-2024-12345, ISO-27001, UTF-8")
                .is_empty()
        );
        assert!(t("batch ABC-2024-11-03").is_empty());
    }

    #[test]
    fn references_must_stand_alone() {
        assert!(t("XINC0042 INC0042X INC12 foo_INC0042 CS2").is_empty());
        assert_eq!(t("(INC0042)."), vec!["INC0042"]);
        assert_eq!(t("é INC0042 ü"), vec!["INC0042"]);
    }

    #[test]
    fn dedups_and_keeps_order() {
        assert_eq!(t("OPS-2 INC0001 OPS-2 inc0001"), vec!["OPS-2", "INC0001"]);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let many: String = (0..1_000).map(|i| format!("OPS-{i} ")).collect();
        assert_eq!(t(&many).len(), MAX_TICKETS);
        let huge = "\u{0}\u{7}ÿ-".repeat(200_000);
        assert!(t(&huge).is_empty());
        assert!(t("").is_empty());
        assert!(t("INC").is_empty());
        assert!(t("SR-").is_empty());
    }
}
