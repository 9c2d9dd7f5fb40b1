//! Timestamps as Log Analytics and PIM write them.
//!
//! Log Analytics returns `datetime` cells as RFC 3339 strings with up to 9 fractional digits
//! (`2026-08-27T00:30:00.000000000Z`); PIM's `AdditionalDetails` carry 7
//! (`2026-11-20T09:13:58.1234567Z`). Some exports drop the offset; those are read as UTC.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

/// A half-open-agnostic time range `[start, end]` (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// End.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

impl TimeRange {
    /// A range; `start` and `end` are swapped if given in the wrong order.
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Self {
        if start <= end {
            Self { start, end }
        } else {
            Self {
                start: end,
                end: start,
            }
        }
    }

    /// Whether `t` lies inside (both ends inclusive).
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        t >= self.start && t <= self.end
    }

    /// Whether the two ranges share at least one instant.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// The range as an ISO 8601 interval, as the Log Analytics `timespan` field takes it.
    pub fn to_iso_interval(&self) -> String {
        format!("{}/{}", format_utc(self.start), format_utc(self.end))
    }
}

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError {
    /// The text that was given (shortened to 64 characters).
    pub input: String,
}

impl std::fmt::Display for TimestampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an RFC 3339 timestamp: {:?}", self.input)
    }
}

impl std::error::Error for TimestampError {}

/// Parses an RFC 3339 / ISO 8601 timestamp with any number of fractional digits (up to 9 kept),
/// a `Z` or numeric offset, or no offset at all (read as UTC). A space may stand for the `T`.
///
/// ```
/// use pim_domain::timestamp::parse_timestamp;
/// let t = parse_timestamp("2026-11-20T09:13:58.1234567Z").unwrap();
/// assert_eq!(t.nanosecond(), 123_456_700);
/// assert!(parse_timestamp("2026-11-20T09:13:58").is_ok());
/// assert!(parse_timestamp("yesterday").is_err());
/// ```
pub fn parse_timestamp(input: &str) -> Result<OffsetDateTime, TimestampError> {
    let s = input.trim();
    let err = || TimestampError {
        input: s.chars().take(64).collect(),
    };
    if s.len() < 10 || s.len() > 64 {
        return Err(err());
    }
    let mut owned;
    let mut text = s;
    // RFC 3339 allows a space instead of 'T'; time's parser wants the 'T'.
    if text.as_bytes().get(10) == Some(&b' ') {
        owned = text.to_owned();
        owned.replace_range(10..11, "T");
        text = owned.as_str();
        if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
            return Ok(t.to_offset(time::UtcOffset::UTC));
        }
        return parse_without_offset(text).ok_or_else(err);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.to_offset(time::UtcOffset::UTC));
    }
    // Lower-case 'z' or 't' appear in some hand-made exports.
    if text.bytes().any(|b| b == b'z' || b == b't') {
        owned = text.to_ascii_uppercase();
        if let Ok(t) = OffsetDateTime::parse(&owned, &Rfc3339) {
            return Ok(t.to_offset(time::UtcOffset::UTC));
        }
        text = owned.as_str();
        return parse_without_offset(text).ok_or_else(err);
    }
    parse_without_offset(text).ok_or_else(err)
}

fn parse_without_offset(text: &str) -> Option<OffsetDateTime> {
    // Re-use the RFC 3339 parser by appending a UTC offset; it handles the fraction digits.
    let with_z = format!("{text}Z");
    if let Ok(t) = OffsetDateTime::parse(&with_z, &Rfc3339) {
        return Some(t);
    }
    // A bare date means midnight UTC.
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &fmt)
        .ok()
        .map(|d| PrimitiveDateTime::new(d, time::Time::MIDNIGHT).assume_utc())
}

/// Formats a time as RFC 3339 in UTC (`2026-11-20T09:13:58.1234567Z`; no fraction when zero).
pub fn format_utc(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fraction_length() {
        for s in [
            "2026-11-20T09:13:58Z",
            "2026-11-20T09:13:58.1Z",
            "2026-11-20T09:13:58.123Z",
            "2026-11-20T09:13:58.1234567Z",
            "2026-11-20T09:13:58.123456789Z",
        ] {
            let t = parse_timestamp(s).unwrap();
            assert_eq!(t.unix_timestamp(), 1_795_166_038, "{s}");
        }
    }

    #[test]
    fn offsets_become_utc() {
        let t = parse_timestamp("2026-11-20T10:13:58+01:00").unwrap();
        assert_eq!(format_utc(t), "2026-11-20T09:13:58Z");
    }

    #[test]
    fn no_offset_and_space_separator_are_utc() {
        assert_eq!(
            parse_timestamp("2026-11-20 09:13:58.5").unwrap(),
            parse_timestamp("2026-11-20T09:13:58.5Z").unwrap()
        );
        assert_eq!(
            parse_timestamp("2026-11-20t09:13:58z").unwrap(),
            parse_timestamp("2026-11-20T09:13:58Z").unwrap()
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for s in [
            "",
            "now",
            "2026-13-45T99:99:99Z",
            "\u{0}\u{1}",
            &"9".repeat(10_000),
            "2026-11-20Té",
        ] {
            assert!(parse_timestamp(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn interval_format() {
        let r = TimeRange::new(
            parse_timestamp("2026-11-21T00:00:00Z").unwrap(),
            parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
        );
        assert_eq!(
            r.to_iso_interval(),
            "2026-11-20T00:00:00Z/2026-11-21T00:00:00Z"
        );
    }
}
