//! Word-at-a-time text tests and digests the engine and the vocabulary run over every operation
//! name and resource id. They depend on nothing else in the crate, so both can use them without
//! importing each other.

use std::borrow::Cow;

/// `text` lower-cased, borrowed when it already is (resource ids usually are).
pub(crate) fn lowered(text: &str) -> Cow<'_, str> {
    if is_ascii_lower(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// Whether a text is ASCII without upper-case letters (so lower-casing leaves it as it is).
/// It runs over every resource id, so it looks at eight bytes at a time.
pub(crate) fn is_ascii_lower(text: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut chunks = text.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0x80; 8]));
        if word & HIGH != 0 {
            return false;
        }
        // Every byte is below 0x80, so adding at most 0x3f per byte cannot carry into the next:
        // the high bit of each byte then says whether it is at least `A` (0x41), respectively
        // at least `[` (0x5b, just past `Z`).
        let from_a = word + 0x3f * ONES;
        let past_z = word + 0x25 * ONES;
        if from_a & !past_z & HIGH != 0 {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
}

/// A cheap 64-bit digest of a text, to tell most unequal texts apart without comparing them.
/// Equal digests are always confirmed by comparing the texts.
pub(crate) fn fingerprint(text: &str) -> u64 {
    let mix =
        |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    let mut chunks = text.as_bytes().chunks_exact(8);
    let mut hash = (text.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for chunk in &mut chunks {
        hash = mix(
            hash,
            u64::from_le_bytes(chunk.try_into().unwrap_or_default()),
        );
    }
    let mut last = [0u8; 8];
    for (to, from) in last.iter_mut().zip(chunks.remainder()) {
        *to = *from;
    }
    mix(hash, u64::from_le_bytes(last))
}

/// The length and last (up to) eight bytes of a name: a cheap first test of equality, as
/// operation names that differ mostly differ in length or verb.
pub(crate) fn tail(name: &str) -> (usize, u64) {
    let bytes = name.as_bytes();
    let mut last = [0u8; 8];
    let start = bytes.len().saturating_sub(8);
    for (to, from) in last.iter_mut().zip(bytes.get(start..).unwrap_or_default()) {
        *to = *from;
    }
    (bytes.len(), u64::from_le_bytes(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_ascii_checks_agree_with_the_plain_definitions() {
        for text in [
            "",
            "a",
            "abcdefgh",
            "abcdefghi",
            "/subscriptions/s1/resourcegroups/rg-app-042/providers/x/y/web01",
            "/SUBSCRIPTIONS/s1/resourcegroups/rg",
            "abcdefgZ",
            "@[`{",
            "ü-web01",
            "web01-ÜBER",
            "Z",
        ] {
            assert_eq!(
                is_ascii_lower(text),
                text.to_lowercase() == text && text.is_ascii(),
                "{text:?}"
            );
        }
        // Every byte counts, whether in a full chunk of eight or in the rest.
        let id = "/subscriptions/s1/resourcegroups/rg-app-042/providers/x/web01";
        for at in 0..id.len() {
            let mut other = id.as_bytes().to_vec();
            other[at] ^= 1;
            let other = String::from_utf8(other).unwrap();
            assert_ne!(fingerprint(id), fingerprint(&other), "byte {at}");
        }
        assert_eq!(tail("a"), (1, u64::from(b'a')));
    }
}
