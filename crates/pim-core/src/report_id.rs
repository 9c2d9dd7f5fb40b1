//! Stable report ids.

use pim_domain::ActivationReport;
use time::OffsetDateTime;

/// An id that is the same for the same inputs and settings and differs when they differ:
/// `pim-20261120T180000Z-24h-<16 hex digits>`.
pub(crate) fn report_id(
    end: OffsetDateTime,
    hours: u32,
    source: &str,
    activations: &[ActivationReport],
) -> String {
    let mut h = Fnv1a::new();
    h.write(source.as_bytes());
    h.write(&end.unix_timestamp_nanos().to_le_bytes());
    h.write(&hours.to_le_bytes());
    for a in activations {
        h.write(a.id.as_bytes());
        h.write(a.assessment.verdict.as_str().as_bytes());
        h.write(&a.activity_count.to_le_bytes());
    }
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = end
        .to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| end.unix_timestamp().to_string());
    format!("pim-{stamp}-{hours}h-{:016x}", h.finish())
}

/// FNV-1a, 64 bit: tiny, and unlike std's `DefaultHasher` its output is fixed forever, which an
/// id that people paste into tickets needs.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate fields so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_input_sensitive() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_197_600).unwrap();
        let a = report_id(t, 24, "demo", &[]);
        assert_eq!(a, report_id(t, 24, "demo", &[]));
        assert!(a.starts_with("pim-20261120T"), "{a}");
        assert_ne!(a, report_id(t, 12, "demo", &[]));
        assert_ne!(a, report_id(t, 24, "export /x", &[]));
    }
}
