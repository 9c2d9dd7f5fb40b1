//! Time and duration formatting for reports.

use time::{Duration, OffsetDateTime, UtcOffset};

/// RFC 3339 in UTC (`2026-11-20T09:13:58Z`), as the JSON report writes times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    pim_domain::timestamp::format_utc(t)
}

/// The compact form used in tables: `2026-11-20 09:13 UTC`.
///
/// ```
/// use time::macros::datetime;
/// assert_eq!(pim_report::format::compact(datetime!(2026-11-20 10:13:58 +01:00)), "2026-11-20 09:13 UTC");
/// ```
pub fn compact(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The form Mermaid's gantt `dateFormat YYYY-MM-DDTHH:mm:ss` reads, in UTC.
pub fn mermaid(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The duration of a scan from milliseconds: `850 ms` under a second, `12.4 s` under a minute,
/// then `3m 07s` and `2h 05m`.
///
/// ```
/// use pim_report::format::run_duration;
/// assert_eq!(run_duration(0), "0 ms");
/// assert_eq!(run_duration(12_449), "12.4 s");
/// assert_eq!(run_duration(187_000), "3m 07s");
/// assert_eq!(run_duration(7_500_000), "2h 05m");
/// ```
pub fn run_duration(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        // Tenths, truncated: `59.99 s` must not round up to a misleading `60.0 s`.
        return format!("{}.{} s", ms / 1_000, (ms % 1_000) / 100);
    }
    let secs = ms / 1_000;
    let (h, m, s) = (secs / 3_600, (secs % 3_600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// A human duration: `45s`, `12m`, `3h 12m` (hours keep counting past a day, as elevation
/// windows are read in hours).
///
/// ```
/// use time::Duration;
/// assert_eq!(pim_report::format::duration(Duration::minutes(192)), "3h 12m");
/// ```
pub fn duration(d: Duration) -> String {
    let secs = d.whole_seconds();
    let sign = if secs < 0 { "-" } else { "" };
    let secs = secs.unsigned_abs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{sign}{h}h {m}m")
    } else if m > 0 {
        format!("{sign}{m}m")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats() {
        let t = datetime!(2026-11-20 09:13:58.1234567 UTC);
        assert_eq!(rfc3339(t), "2026-11-20T09:13:58.1234567Z");
        assert_eq!(compact(t), "2026-11-20 09:13 UTC");
        assert_eq!(mermaid(t), "2026-11-20T09:13:58");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::seconds(45)), "45s");
        assert_eq!(duration(Duration::minutes(12)), "12m");
        assert_eq!(duration(Duration::hours(8)), "8h 0m");
        assert_eq!(duration(Duration::hours(50)), "50h 0m");
        assert_eq!(duration(Duration::minutes(-90)), "-1h 30m");
        assert_eq!(duration(Duration::MIN), duration(Duration::MIN));
    }
}
