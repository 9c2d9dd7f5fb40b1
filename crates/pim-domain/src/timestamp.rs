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
    // Nearly every cell of a large export has the one shape Log Analytics writes; reading it
    // directly is several times faster than the general parser, which handles the rest.
    if let Some(t) = parse_utc_fast(s.as_bytes()) {
        return Ok(t);
    }
    let err = || TimestampError {
        input: crate::text::clip(s, 64),
    };
    if let Some(t) = parse_portal(s) {
        return Ok(t);
    }
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

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` only; `None` for anything else (the general parser decides).
fn parse_utc_fast(b: &[u8]) -> Option<OffsetDateTime> {
    if b.len() < 20 || b.len() > 30 || b[b.len() - 1] != b'Z' {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let day = u8::try_from(num(8..10)?).ok()?;
    let hour = u8::try_from(num(11..13)?).ok()?;
    let minute = u8::try_from(num(14..16)?).ok()?;
    let second = u8::try_from(num(17..19)?).ok()?;
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = num(20..20 + digits.len())?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // RFC 3339 allows a leap second (:60); leave that rare case to the general parser.
    if second > 59 {
        return None;
    }
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let clock = time::Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_utc())
}

/// The Azure portal's Logs-blade CSV export time: US month/day/year, a comma, a 12-hour clock
/// with optional fraction, and AM/PM, in UTC (the column is `TimeGenerated [UTC]`), e.g.
/// `4/28/2021, 2:32:14.029 PM`.
fn parse_portal(s: &str) -> Option<OffsetDateTime> {
    let (date, clock) = s.split_once(',').or_else(|| s.split_once(' '))?;
    let mut d = date.trim().split('/');
    let month: u8 = d.next()?.trim().parse().ok()?;
    let day: u8 = d.next()?.trim().parse().ok()?;
    let year: i32 = d.next()?.trim().parse().ok()?;
    if d.next().is_some() || !(1000..=9999).contains(&year) {
        return None;
    }
    let clock = clock.trim();
    let (hms, meridiem) = clock.rsplit_once(' ')?;
    let pm = if meridiem.eq_ignore_ascii_case("PM") {
        true
    } else if meridiem.eq_ignore_ascii_case("AM") {
        false
    } else {
        return None;
    };
    let mut parts = hms.trim().split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let sec_text = parts.next().unwrap_or("0");
    if parts.next().is_some() || !(1..=12).contains(&hour) {
        return None;
    }
    let (sec, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let second: u8 = sec.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    let hour = match (hour, pm) {
        (12, false) => 0,
        (12, true) => 12,
        (h, false) => h,
        (h, true) => h + 12,
    };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let clock = time::Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, clock).assume_utc())
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
    fn portal_csv_times_are_us_style_utc() {
        for (portal, iso) in [
            ("4/28/2021, 2:32:14.029 PM", "2021-04-28T14:32:14.029Z"),
            ("11/20/2026, 9:13:58 AM", "2026-11-20T09:13:58Z"),
            ("11/20/2026, 12:00:00.000 AM", "2026-11-20T00:00:00Z"),
            ("11/20/2026, 12:30:00 PM", "2026-11-20T12:30:00Z"),
            (
                "11/20/2026 9:13:58.1234567 pm",
                "2026-11-20T21:13:58.1234567Z",
            ),
        ] {
            assert_eq!(
                parse_timestamp(portal).unwrap(),
                parse_timestamp(iso).unwrap(),
                "{portal}"
            );
        }
        for bad in [
            "13/20/2026, 9:13:58 AM",
            "4/28/2021, 13:32:14 PM",
            "4/28/2021, 2:32:14 XM",
            "4/31/2021, 2:32 PM",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
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

    #[test]
    fn fast_path_agrees_with_the_general_parser() {
        let cases = [
            "2026-11-20T09:13:58Z",
            "2026-11-20T09:13:58.1Z",
            "2026-11-20T09:13:58.1234567Z",
            "2026-11-20T09:13:58.123456789Z",
            "2026-02-28T23:59:59.999Z",
            "2024-02-29T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9999999Z",
        ];
        for c in cases {
            let fast = parse_utc_fast(c.as_bytes()).unwrap();
            let general = OffsetDateTime::parse(c, &Rfc3339).unwrap();
            assert_eq!(fast, general, "{c}");
        }
        // Shapes the fast path must leave to the general parser (or reject).
        for c in [
            "2026-02-30T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T09:13:58.Z",
            "2026-11-20T09:13:58.1234567890Z",
            "2026-11-20T09:13:58+00:00",
            "2026-11-20 09:13:58Z",
            "2026-1a-20T09:13:58Z",
            "2026-11-20T09:13:60Z",
        ] {
            assert!(parse_utc_fast(c.as_bytes()).is_none(), "{c}");
        }
        assert!(parse_timestamp("2026-02-30T00:00:00Z").is_err());
    }
}
