//! The server's requested wait before a retry, read from a response's headers.
//!
//! Azure services name it in one of three headers, checked in this order:
//! `retry-after-ms` and `x-ms-retry-after-ms` (milliseconds; Azure OpenAI, Cosmos-style
//! services), then the standard `Retry-After` (RFC 9110 §10.2.3: whole or fractional seconds, or
//! an HTTP-date). A date in the past means "now" (zero wait). Values that are negative, not
//! finite or unreadable are ignored, so a later header still counts.

use std::time::Duration;

use reqwest::header::HeaderMap;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// The millisecond headers, most specific first.
const MS_HEADERS: [&str; 2] = ["retry-after-ms", "x-ms-retry-after-ms"];

/// A wait longer than a day is read as a day: enough to fail any call's budget, small enough to
/// stay far from `Duration`'s limits.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// IMF-fixdate, the HTTP-date form every sender must use: `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// The wait the response's headers ask for, relative to the current UTC time.
pub fn from_headers(headers: &HeaderMap) -> Option<Duration> {
    from_headers_at(headers, OffsetDateTime::now_utc())
}

/// [`from_headers`] with an explicit "now", for HTTP-date values.
///
/// ```
/// use std::time::Duration;
/// use reqwest::header::HeaderMap;
/// use time::macros::datetime;
///
/// let now = datetime!(2021-01-01 0:00 UTC);
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "Fri, 01 Jan 2021 00:00:10 GMT".parse().unwrap());
/// assert_eq!(pim_http::retry_after::from_headers_at(&headers, now), Some(Duration::from_secs(10)));
/// headers.insert("x-ms-retry-after-ms", "1500".parse().unwrap());
/// assert_eq!(pim_http::retry_after::from_headers_at(&headers, now), Some(Duration::from_millis(1500)));
/// ```
pub fn from_headers_at(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    MS_HEADERS
        .iter()
        .find_map(|name| header(name).and_then(parse_millis))
        .or_else(|| header("retry-after").and_then(|v| parse_retry_after(v, now)))
}

/// A millisecond value (`retry-after-ms`, `x-ms-retry-after-ms`).
pub fn parse_millis(value: &str) -> Option<Duration> {
    non_negative(value).map(|ms| capped(ms / 1000.0))
}

/// A `Retry-After` value: seconds (whole or fractional) or an HTTP-date relative to `now`.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    if let Some(seconds) = non_negative(value) {
        return Some(capped(seconds));
    }
    let at = time::PrimitiveDateTime::parse(value.trim(), IMF_FIXDATE)
        .ok()?
        .assume_utc();
    let wait = at - now;
    Some(if wait.is_negative() {
        Duration::ZERO
    } else {
        Duration::try_from(wait).map_or(MAX_WAIT, |d| d.min(MAX_WAIT))
    })
}

fn non_negative(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn capped(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds.min(MAX_WAIT.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const NOW: OffsetDateTime = datetime!(2021-01-01 0:00 UTC);

    #[test]
    fn millisecond_headers_come_first_in_their_order() {
        let h = headers(&[
            ("retry-after-ms", "1500"),
            ("x-ms-retry-after-ms", "2500"),
            ("retry-after", "9"),
        ]);
        assert_eq!(from_headers_at(&h, NOW), Some(Duration::from_millis(1500)));
        let h = headers(&[("x-ms-retry-after-ms", "2500"), ("retry-after", "9")]);
        assert_eq!(from_headers_at(&h, NOW), Some(Duration::from_millis(2500)));
        let h = headers(&[("retry-after", "9")]);
        assert_eq!(from_headers_at(&h, NOW), Some(Duration::from_secs(9)));
        assert_eq!(from_headers_at(&HeaderMap::new(), NOW), None);
    }

    #[test]
    fn unreadable_values_fall_through_to_the_next_header() {
        let h = headers(&[("retry-after-ms", "abc"), ("retry-after", "3")]);
        assert_eq!(from_headers_at(&h, NOW), Some(Duration::from_secs(3)));
        let h = headers(&[("x-ms-retry-after-ms", "-5")]);
        assert_eq!(from_headers_at(&h, NOW), None);
        assert_eq!(parse_retry_after("1e400", NOW), None);
        assert_eq!(parse_retry_after("soon", NOW), None);
        assert_eq!(
            parse_retry_after(" 0.25 ", NOW),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_millis("1e300"), Some(MAX_WAIT));
    }

    #[test]
    fn http_dates_are_relative_to_now_and_never_negative() {
        assert_eq!(
            parse_retry_after("Fri, 01 Jan 2021 00:00:10 GMT", NOW),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Thu, 31 Dec 2020 23:59:50 GMT", NOW),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sat, 02 Jan 2021 00:00:00 GMT", NOW),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", NOW),
            Some(MAX_WAIT)
        );
        assert_eq!(
            parse_retry_after("Fri, 01 Jan 2021 00:00:10 UTC", NOW),
            None
        );
        assert_eq!(parse_retry_after("2021-01-01T00:00:10Z", NOW), None);
    }
}
