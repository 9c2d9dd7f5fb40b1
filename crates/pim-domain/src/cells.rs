//! Reading one row's cells without owning them (issue 12).
//!
//! A parser reads a row through [`RowCells`], so that the same code reads the rows of a
//! [`Table`](crate::Table) (`&[Value]`) and the rows an export streams, whose string cells are
//! borrowed from the reader's buffer and never become a `serde_json::Value`.
//!
//! ```
//! use pim_domain::cells::{CellRef, RowCells};
//! use serde_json::json;
//!
//! let row = [json!("2026-11-20T09:00:00Z"), json!(null), json!(5)];
//! assert!(matches!(row.cell(0), Some(CellRef::Str("2026-11-20T09:00:00Z"))));
//! assert!(matches!(row.cell(1), Some(CellRef::Null)));
//! assert!(matches!(row.cell(2), Some(CellRef::Other(v)) if v == &json!(5)));
//! assert!(row.cell(3).is_none());
//! assert!(row.timestamp(0).is_some_and(|t| t.is_ok()));
//! ```

use serde_json::Value;
use time::OffsetDateTime;

use crate::timestamp::{TimestampError, parse_timestamp};

/// One cell, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum CellRef<'a> {
    /// JSON null.
    Null,
    /// A string.
    Str(&'a str),
    /// Any other JSON value: a number, a boolean, an array or an object.
    Other(&'a Value),
}

impl<'a> CellRef<'a> {
    /// The cell of a JSON value.
    pub fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => CellRef::Null,
            Value::String(s) => CellRef::Str(s),
            other => CellRef::Other(other),
        }
    }

    /// The cell as an owned JSON value.
    pub fn to_value(self) -> Value {
        match self {
            CellRef::Null => Value::Null,
            CellRef::Str(s) => Value::String(s.to_owned()),
            CellRef::Other(v) => v.clone(),
        }
    }
}

/// The cells of one row, in column order.
pub trait RowCells {
    /// Cell `index`; `None` past the end of the row (a short row, a missing column).
    fn cell(&self, index: usize) -> Option<CellRef<'_>>;

    /// The timestamp in cell `index` ([`parse_timestamp`]), when it is a string that is not
    /// blank; `None` for any other cell. A row may remember the answer, as several readers of
    /// one streamed row ask for the same cell's time.
    fn timestamp(&self, index: usize) -> Option<Result<OffsetDateTime, TimestampError>> {
        match self.cell(index)? {
            CellRef::Str(s) if !s.trim().is_empty() => Some(parse_timestamp(s)),
            _ => None,
        }
    }
}

impl RowCells for [Value] {
    fn cell(&self, index: usize) -> Option<CellRef<'_>> {
        self.get(index).map(CellRef::of)
    }
}
