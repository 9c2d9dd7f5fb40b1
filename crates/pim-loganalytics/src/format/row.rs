//! One streamed row, decoded without a `serde_json::Value` per cell (issue 12, item 4).
//!
//! A row of the query API shape is an array of cells, nearly all of them strings. The
//! [`RowDecoder`] reads a row of strings and nulls itself, in one walk that also finds where
//! the row ends ([`RowDecoder::split`]), and hands any other row to serde_json, read as a
//! `Vec<Value>` would be. Either way the same rows are accepted and refused with the same
//! cells (`tests::any_row_reads_as_serde_reads_it`). A string without escapes stays a `&str`
//! into the reader's buffer; the others are unescaped into one text reused from row to row,
//! and a `Value` is built only for numbers, booleans and nested arrays or objects (rare in
//! exports, which write `dynamic` columns as JSON text). The buffers are reused, so a row
//! costs no allocation.

use std::cell::OnceCell;
use std::fmt;

use pim_domain::cells::{CellRef, RowCells};
use pim_domain::timestamp::{TimestampError, parse_timestamp};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use time::OffsetDateTime;

/// One cell as decoded.
#[derive(Debug, Clone, Copy)]
enum Repr<'de> {
    Null,
    /// A string without escapes, in the reader's buffer.
    Str(&'de str),
    /// A string with escapes: its range in the row's text.
    Text(usize, usize),
    /// Any other value: its index in the row's values.
    Other(usize),
}

/// A parsed timestamp, remembered for the row.
type Stamp = Option<Result<OffsetDateTime, TimestampError>>;

/// One row of a streamed export, as the readers of the stream see it ([`RowSink::row_cells`]).
///
/// [`RowSink::row_cells`]: crate::RowSink::row_cells
pub struct StreamedRow<'a> {
    cells: &'a [Repr<'a>],
    text: &'a str,
    values: &'a [Value],
    /// Each cell's timestamp, parsed when first asked for: the scopes and the parsers of one
    /// pass read the same `TimeGenerated`.
    stamps: &'a [OnceCell<Stamp>],
}

impl StreamedRow<'_> {
    /// The number of cells (at most the table's width).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the row has no cells.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cells as JSON values, as the whole-file reader holds them.
    pub fn to_values(&self) -> Vec<Value> {
        (0..self.cells.len())
            .map(|i| self.cell(i).map_or(Value::Null, CellRef::to_value))
            .collect()
    }
}

impl fmt::Debug for StreamedRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((0..self.cells.len()).filter_map(|i| self.cell(i)))
            .finish()
    }
}

impl RowCells for StreamedRow<'_> {
    fn cell(&self, index: usize) -> Option<CellRef<'_>> {
        Some(match *self.cells.get(index)? {
            Repr::Null => CellRef::Null,
            Repr::Str(s) => CellRef::Str(s),
            Repr::Text(start, end) => CellRef::Str(self.text.get(start..end).unwrap_or("")),
            Repr::Other(i) => match self.values.get(i) {
                Some(v) => CellRef::Other(v),
                None => CellRef::Null,
            },
        })
    }

    fn timestamp(&self, index: usize) -> Option<Result<OffsetDateTime, TimestampError>> {
        let parse = || match self.cell(index)? {
            CellRef::Str(s) if !s.trim().is_empty() => Some(parse_timestamp(s)),
            _ => None,
        };
        match self.stamps.get(index) {
            Some(stamp) => stamp.get_or_init(parse).clone(),
            None => parse(),
        }
    }
}

/// A cell of a plain row as [`split_plain`] finds it.
#[derive(Debug, Clone, Copy)]
enum Span {
    Null,
    /// A string without escapes: its range in the row's bytes.
    Raw(usize, usize),
    /// A string with escapes: its range in the unescaped text.
    Unescaped(usize, usize),
}

/// Decodes array rows one after the other into buffers it keeps.
#[derive(Default)]
pub(crate) struct RowDecoder {
    /// The cells' vector, empty between rows (its lifetime is the row's buffer).
    spare: Vec<Repr<'static>>,
    text: String,
    values: Vec<Value>,
    stamps: Vec<OnceCell<Stamp>>,
    /// The cells of the last plain row split, and the text of its escaped strings.
    spans: Vec<Span>,
    unescaped: Vec<u8>,
    /// Whether `spans` are those of the row [`RowDecoder::decode`] is given next.
    split: bool,
}

impl RowDecoder {
    /// The length of the plain row (an array of strings and nulls, see [`split_plain`]) that
    /// `bytes` start with, its cells kept for the next [`RowDecoder::decode`], which must then
    /// be given exactly those bytes. `None` when `bytes` do not start with a complete plain row:
    /// the caller then finds the row's end itself, and `decode` reads it as any other.
    ///
    /// This is the streamed reader's one pass over a row: finding where the row ends and
    /// where its cells are is the same walk.
    pub(crate) fn split(&mut self, bytes: &[u8]) -> Option<usize> {
        let len = split_plain(bytes, &mut self.spans, &mut self.unescaped);
        self.split = len.is_some();
        len
    }

    /// Decodes `bytes`, one JSON array, and hands `read` the row (its first `width` cells) and
    /// the number of cells it has.
    ///
    /// # Errors
    ///
    /// serde_json's, when `bytes` is not one JSON array that a `Vec<Value>` would accept.
    pub(crate) fn decode<T>(
        &mut self,
        bytes: &[u8],
        width: usize,
        read: impl FnOnce(&StreamedRow<'_>, usize) -> T,
    ) -> Result<T, serde_json::Error> {
        let split = std::mem::take(&mut self.split);
        let plain = split
            || split_plain(bytes, &mut self.spans, &mut self.unescaped)
                .and_then(|n| bytes.get(n..))
                .is_some_and(|rest| rest.iter().all(|&c| c == b' '));
        let mut cells = recycle(std::mem::take(&mut self.spare));
        self.values.clear();
        // Nearly every row: strings and nulls only, read without serde. A byte below 0x20 (an
        // error in a string, or whitespace other than spaces) and invalid UTF-8 go to serde.
        let plain_text = if plain && !has_control_byte(bytes) {
            match (
                std::str::from_utf8(bytes),
                std::str::from_utf8(&self.unescaped),
            ) {
                (Ok(row), Ok(unescaped)) => {
                    cells.extend(self.spans.iter().map(|span| match *span {
                        Span::Null => Repr::Null,
                        // Ranges start and end at ASCII bytes: always char boundaries.
                        Span::Raw(start, end) => Repr::Str(row.get(start..end).unwrap_or("")),
                        Span::Unescaped(start, end) => Repr::Text(start, end),
                    }));
                    Some(unescaped)
                }
                _ => None,
            }
        } else {
            None
        };
        let (decoded, text) = match plain_text {
            Some(text) => (Ok(()), text),
            None => {
                self.text.clear();
                let seed = RowSeed {
                    cells: &mut cells,
                    text: &mut self.text,
                    values: &mut self.values,
                };
                let decoded = match std::str::from_utf8(bytes) {
                    // Valid UTF-8, as nearly every row is: checked once for the whole row
                    // rather than string by string as the parser of bytes does.
                    Ok(text) => {
                        let mut de = serde_json::Deserializer::from_str(text);
                        seed.deserialize(&mut de).and_then(|()| de.end())
                    }
                    // serde_json says what is wrong, as it always has.
                    Err(_) => {
                        let mut de = serde_json::Deserializer::from_slice(bytes);
                        seed.deserialize(&mut de).and_then(|()| de.end())
                    }
                };
                (decoded, self.text.as_str())
            }
        };
        let out = decoded.map(|()| {
            let n = cells.len();
            cells.truncate(width);
            if self.stamps.len() < cells.len() {
                self.stamps.resize_with(cells.len(), OnceCell::new);
            }
            for stamp in &mut self.stamps {
                stamp.take();
            }
            let row = StreamedRow {
                cells: &cells,
                text,
                values: &self.values,
                stamps: &self.stamps,
            };
            read(&row, n)
        });
        self.spare = recycle(cells);
        out
    }
}

/// Splits the row most exports are made of, an array of strings and nulls, without serde:
/// one pass over each string for its closing quote. The length of the row `b` starts with
/// (from its `[` to its `]`), its cells in `spans` and its escaped strings unescaped into
/// `unescaped`. `None` for anything else, which serde then reads: numbers, booleans, nested
/// values, `\u` escapes, whitespace other than spaces, or no complete array. Bytes below 0x20
/// and UTF-8 are the caller's to check. What it splits, serde reads as the same cells; what
/// serde refuses, it never splits.
fn split_plain(b: &[u8], spans: &mut Vec<Span>, unescaped: &mut Vec<u8>) -> Option<usize> {
    spans.clear();
    unescaped.clear();
    let spaces = |mut i: usize| {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        i
    };
    let mut i = spaces(0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = spaces(i + 1);
    if b.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        match b.get(i) {
            Some(b'"') => {
                let (span, next) = plain_string(b, i + 1, unescaped)?;
                spans.push(span);
                i = next;
            }
            Some(b'n') if b.get(i..i + 4) == Some(b"null") => {
                spans.push(Span::Null);
                i += 4;
            }
            _ => return None,
        }
        i = spaces(i);
        match b.get(i)? {
            b',' => i = spaces(i + 1),
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Whether any byte is below 0x20, tested 32 bytes at a time without branching inside a block
/// (so the compiler vectorises it; `any` stops at each byte and does not).
fn has_control_byte(b: &[u8]) -> bool {
    let blocks = b.chunks_exact(32);
    let tail = blocks.remainder();
    blocks
        .map(|block| block.iter().fold(0u8, |acc, &c| acc | u8::from(c < 0x20)))
        .any(|found| found != 0)
        || tail.iter().any(|&c| c < 0x20)
}

/// The string whose text starts at `start` (after its opening quote) and the index after its
/// closing quote. `None` for a `\u` or unknown escape, or no closing quote in `b`. Every
/// range it cuts starts and ends at an ASCII byte.
fn plain_string(b: &[u8], start: usize, unescaped: &mut Vec<u8>) -> Option<(Span, usize)> {
    let mut at = start + memchr::memchr2(b'"', b'\\', b.get(start..)?)?;
    if b.get(at) == Some(&b'"') {
        return Some((Span::Raw(start, at), at + 1));
    }
    let from = unescaped.len();
    let mut run = start;
    loop {
        // `at` is a backslash, `run..at` plain text.
        unescaped.extend_from_slice(b.get(run..at)?);
        unescaped.push(match b.get(at + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => return None,
        });
        run = at + 2;
        at = run + memchr::memchr2(b'"', b'\\', b.get(run..)?)?;
        if b.get(at) == Some(&b'"') {
            unescaped.extend_from_slice(b.get(run..at)?);
            return Some((Span::Unescaped(from, unescaped.len()), at + 1));
        }
    }
}

/// An empty vector of cells of another lifetime, in the same allocation: the cells of one row
/// borrow its buffer, and the next row's are put in the same place. (`collect` reuses the
/// allocation of a `Vec` it iterates when the element types have one layout, as here.)
fn recycle<'b>(mut cells: Vec<Repr<'_>>) -> Vec<Repr<'b>> {
    cells.clear();
    // Empty: the closure never runs.
    cells.into_iter().map(|_| Repr::Null).collect()
}

/// Reads one array row into the decoder's buffers.
struct RowSeed<'r, 'de> {
    cells: &'r mut Vec<Repr<'de>>,
    text: &'r mut String,
    values: &'r mut Vec<Value>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row (an array of cells)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let RowSeed {
            cells,
            text,
            values,
        } = self;
        while let Some(cell) = seq.next_element_seed(CellSeed {
            text: &mut *text,
            values: &mut *values,
        })? {
            cells.push(cell);
        }
        Ok(())
    }
}

/// Reads one cell: what `Value` would read, kept as a [`Repr`].
struct CellSeed<'r> {
    text: &'r mut String,
    values: &'r mut Vec<Value>,
}

impl CellSeed<'_> {
    fn other<'de>(self, v: Value) -> Repr<'de> {
        self.values.push(v);
        Repr::Other(self.values.len() - 1)
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Repr<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Repr<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Repr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Repr<'de>, E> {
        Ok(self.other(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Repr<'de>, E> {
        Ok(self.other(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Repr<'de>, E> {
        Ok(self.other(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Repr<'de>, E> {
        // As serde_json::Value reads it: a float that is not finite cannot occur in JSON text.
        Ok(self.other(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Repr<'de>, E> {
        Ok(Repr::Str(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Repr<'de>, E> {
        let start = self.text.len();
        self.text.push_str(v);
        Ok(Repr::Text(start, self.text.len()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Repr<'de>, E> {
        Ok(Repr::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Repr<'de>, E> {
        Ok(Repr::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Repr<'de>, A::Error> {
        let v = <Value as serde::Deserialize>::deserialize(
            serde::de::value::SeqAccessDeserializer::new(seq),
        )?;
        Ok(self.other(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Repr<'de>, A::Error> {
        let v = <Value as serde::Deserialize>::deserialize(
            serde::de::value::MapAccessDeserializer::new(map),
        )?;
        Ok(self.other(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_as_its_values_would() {
        let text = r#"["a", "b\"c", null, 1, -2, 2.5, true, [1, {"x": "\u00e9"}], {"k": null}, "", "\ud83d\ude00"]"#;
        let expected: Vec<Value> = serde_json::from_str(text).unwrap();
        let mut d = RowDecoder::default();
        for _ in 0..3 {
            let got = d
                .decode(text.as_bytes(), 100, |row, n| {
                    assert_eq!(n, expected.len());
                    assert!(matches!(row.cell(0), Some(CellRef::Str("a"))));
                    assert!(matches!(row.cell(1), Some(CellRef::Str("b\"c"))));
                    assert!(row.cell(expected.len()).is_none());
                    row.to_values()
                })
                .unwrap();
            assert_eq!(got, expected);
        }
        let short = d
            .decode(text.as_bytes(), 2, |row, n| (row.len(), n))
            .unwrap();
        assert_eq!(short, (2, expected.len()));
    }

    #[test]
    fn an_export_row_is_read_without_serde() {
        let text =
            r#"[ "2026-11-20T09:00:00Z", null ,"a\"b\\c\/d\b\f\n\r\t", "{\"k\":\"v\"}", "é"]"#;
        let (mut spans, mut unescaped) = (Vec::new(), Vec::new());
        assert_eq!(
            split_plain(text.as_bytes(), &mut spans, &mut unescaped),
            Some(text.len())
        );
        assert_eq!(spans.len(), 5);
        for text in [
            r#"["\u0041"]"#,
            r#"["a", 1]"#,
            "[\"a\",\n\"b\"]",
            r#"[["a"]]"#,
            r#"["a"] x"#,
        ] {
            assert!(
                split_plain(text.as_bytes(), &mut Vec::new(), &mut Vec::new()) != Some(text.len()),
                "{text}"
            );
        }
    }

    /// Rows made of pieces that are valid, invalid or unusual JSON, in random orders: the
    /// decoder accepts exactly what serde_json's `Vec<Value>` accepts, with the same cells,
    /// whichever of its paths reads the row.
    #[test]
    fn any_row_reads_as_serde_reads_it() {
        const PIECES: &[&str] = &[
            "\"",
            "\"",
            "\"",
            "a",
            "é",
            "\\\"",
            "\\\\",
            "\\/",
            "\\n",
            "\\t",
            "\\b",
            "\\u0041",
            "\\ud83d\\ude00",
            "\\x",
            "\\",
            ",",
            ",",
            " ",
            "\t",
            "\n",
            "\u{1}",
            "null",
            "nul",
            "nulll",
            "1",
            "-2.5",
            "true",
            "[",
            "]",
            "{",
            "}",
            ":",
            "\u{7f}",
        ];
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut d = RowDecoder::default();
        let (mut accepted, mut plain, mut split_rows) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut text = String::from("[");
            if next() % 4 != 0 {
                // Mostly well-formed cells, so that many rows are valid.
                for c in 0..(next() % 5) {
                    if c > 0 {
                        text.push(',');
                    }
                    match next() % 3 {
                        0 => text.push_str("null"),
                        _ => {
                            text.push('"');
                            for _ in 0..(next() % 4) {
                                // Not the bare quotes at the front.
                                text.push_str(PIECES[(next() % 17) as usize + 3]);
                            }
                            text.push('"');
                        }
                    }
                }
            } else {
                for _ in 0..(next() % 8) {
                    text.push_str(PIECES[(next() as usize) % PIECES.len()]);
                }
            }
            if next() % 8 != 0 {
                text.push(']');
            }
            let expected = serde_json::from_str::<Vec<Value>>(&text).ok();
            let got = d
                .decode(text.as_bytes(), 100, |row, _| row.to_values())
                .ok();
            assert_eq!(got, expected, "{text:?}");
            accepted += usize::from(expected.is_some());
            // As the streamed reader splits a row in its buffer, followed by more.
            let buffer = format!("{text},\"next\"]");
            if let Some(n) = d.split(buffer.as_bytes()) {
                let row = &buffer.as_bytes()[..n];
                let expected = serde_json::from_slice::<Vec<Value>>(row).ok();
                let got = d.decode(row, 100, |row, _| row.to_values()).ok();
                assert_eq!(got, expected, "{buffer:?} split at {n}");
                split_rows += 1;
            }
            let split = split_plain(text.as_bytes(), &mut Vec::new(), &mut Vec::new());
            plain += usize::from(split == Some(text.len()) && !has_control_byte(text.as_bytes()));
        }
        // Both paths were exercised, and refusals too.
        assert!(
            plain > 2_000 && accepted > plain + 500 && accepted < 19_000,
            "{plain} {accepted}"
        );
        assert!(split_rows > 2_000, "{split_rows}");
    }

    #[test]
    fn what_a_value_refuses_the_decoder_refuses() {
        let mut d = RowDecoder::default();
        for text in [
            r#"["\ud800"]"#,
            "[1e999]",
            r#"["a" "b"]"#,
            "[1,]",
            "[\"\u{1}\"]",
            "{}",
            "[] 1",
        ] {
            assert!(serde_json::from_str::<Vec<Value>>(text).is_err(), "{text}");
            assert!(d.decode(text.as_bytes(), 5, |_, _| ()).is_err(), "{text}");
        }
        assert!(
            d.decode(b"[]", 5, |row, n| row.is_empty() && n == 0)
                .unwrap()
        );
    }

    #[test]
    fn timestamps_are_parsed_once_and_as_parse_timestamp_does() {
        let text = r#"["2026-11-20T09:00:00Z", " ", "nope", 5]"#;
        let mut d = RowDecoder::default();
        d.decode(text.as_bytes(), 4, |row, _| {
            for _ in 0..2 {
                assert_eq!(
                    row.timestamp(0),
                    Some(parse_timestamp("2026-11-20T09:00:00Z"))
                );
                assert_eq!(row.timestamp(1), None);
                assert_eq!(row.timestamp(2), Some(parse_timestamp("nope")));
                assert_eq!(row.timestamp(3), None);
                assert_eq!(row.timestamp(4), None);
            }
        })
        .unwrap();
        // The next row does not see the last one's times.
        d.decode(br#"["2026-11-21T09:00:00Z"]"#, 4, |row, _| {
            assert_eq!(
                row.timestamp(0),
                Some(parse_timestamp("2026-11-21T09:00:00Z"))
            );
        })
        .unwrap();
    }
}
