//! Raw tables as Log Analytics returns them.
//!
//! Every source (the query API, an offline export, the demo tenant) produces [`Table`]s with the
//! original column names and raw cell values, and the same parsing code turns them into domain
//! types. Cells are kept as `serde_json::Value`: `dynamic` columns arrive either as JSON-encoded
//! strings or as nested JSON, and parsers accept both.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A column of a result table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name, e.g. `TimeGenerated`.
    pub name: String,
    /// Kusto type name (`string`, `datetime`, `dynamic`, `long`, ...). Empty when unknown, as in
    /// exports of row objects.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// One result table: named columns and rows of raw cells in column order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Table name (`PrimaryResult` for query results, or the logical table, e.g. `AuditLogs`).
    #[serde(default)]
    pub name: String,
    /// The columns, in cell order.
    pub columns: Vec<Column>,
    /// The rows; each row has one cell per column (a short row's missing cells read as null).
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The index of a column, matched case-insensitively.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// A cell by row and column index; `None` when out of range or JSON null.
    pub fn cell(&self, row: usize, column: usize) -> Option<&Value> {
        self.rows
            .get(row)
            .and_then(|r| r.get(column))
            .filter(|v| !v.is_null())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_match_case_insensitively_and_short_rows_read_null() {
        let t: Table = serde_json::from_str(
            r#"{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},
                {"name":"Caller","type":"string"}],"rows":[["2026-11-20T09:00:00Z"]]}"#,
        )
        .unwrap();
        assert_eq!(t.column_index("caller"), Some(1));
        assert_eq!(t.column_index("nope"), None);
        assert!(t.cell(0, 0).is_some());
        assert!(t.cell(0, 1).is_none());
        assert!(t.cell(5, 0).is_none());
    }
}
