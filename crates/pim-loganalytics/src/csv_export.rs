//! Reading the Azure portal's CSV exports (Logs blade, "Export to CSV").
//!
//! The portal writes one header row and one record per result row:
//!
//! - datetime column names carry a ` [UTC]` suffix (`TimeGenerated [UTC]`), which is removed
//!   so that the shared parsers find the column;
//! - times are US-style, `4/28/2021, 2:32:14.029 PM` (UTC), which
//!   [`parse_timestamp`](pim_domain::timestamp::parse_timestamp) reads;
//! - `dynamic` columns (`InitiatedBy`, `TargetResources`, `AdditionalDetails`, `Properties_d`,
//!   ...) are JSON text, which the shared parsers read as they read a JSON-string cell;
//! - an empty field is an empty cell (read as null).
//!
//! A record that cannot be read (invalid UTF-8, broken quoting) becomes a problem naming its row;
//! the other records are read. A record with more fields than the header has its extra fields
//! dropped and reported.
//!
//! [`read_csv_export`] streams a file with the `csv` crate's reader and keeps only the records a
//! [`RowScope`] keeps (every unreadable record is still reported); [`parse_csv_export`] reads
//! from memory. Both go through the same record loop.

use std::io::BufRead;
use std::path::Path;

use pim_domain::{Column, DataProblem, Table};
use serde_json::Value;

use crate::format::ParsedExport;
use crate::format::stream::{Meta, Reader, Target, deliver_at};
use crate::offline::Cell;
use crate::{Error, LogTable, Result, RowScope};

/// Most per-row problems listed per file (as for JSON exports).
const MAX_ROW_PROBLEMS: usize = 100;

/// Parses a portal CSV export of `table` read from `source_name` (e.g. `AuditLogs.csv`).
///
/// ```
/// use pim_loganalytics::{csv_export::parse_csv_export, LogTable};
///
/// let csv = "TimeGenerated [UTC],Caller,Properties_d\n\
///            \"4/28/2021, 2:32:14.029 PM\",jane@contoso.com,\"{\"\"a\"\":1}\"\n";
/// let parsed = parse_csv_export(csv.as_bytes(), "AzureActivity.csv", LogTable::AzureActivity).unwrap();
/// assert_eq!(parsed.table.columns[0].name, "TimeGenerated");
/// assert_eq!(parsed.table.rows[0][2], "{\"a\":1}");
/// ```
///
/// # Errors
///
/// [`Error::Format`] naming `source_name` when the file is empty or its header row cannot be
/// read.
pub fn parse_csv_export(bytes: &[u8], source_name: &str, table: LogTable) -> Result<ParsedExport> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::format(source_name, "the file is empty"));
    }
    read_records(bytes, None, source_name, table, None)
}

/// Reads the portal CSV export at `path` as a stream, keeping only the rows `scope` keeps (all
/// rows without one): the result [`parse_csv_export`] gives for the whole file, filtered, with
/// the kept rows' positions in [`ParsedExport::scoped`]. Every record that cannot be read is
/// reported, whatever the scope.
///
/// # Errors
///
/// [`Error::Io`] naming `path` when it cannot be read; otherwise as [`parse_csv_export`].
pub fn read_csv_export(
    path: &Path,
    source_name: &str,
    table: LogTable,
    scope: Option<&RowScope>,
) -> Result<ParsedExport> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    // Skip a byte-order mark; a file that is only whitespace is empty (the first buffer tells,
    // unless the file opens with a megabyte of blanks, which is then read whole to find out).
    let head = reader.fill_buf().map_err(io)?;
    let bom = head.starts_with(b"\xEF\xBB\xBF");
    if bom {
        reader.consume(3);
    }
    let head = reader.fill_buf().map_err(io)?;
    if head.iter().all(u8::is_ascii_whitespace) {
        let bytes = std::fs::read(path).map_err(io)?;
        return parse_csv_export(&bytes, source_name, table);
    }
    read_records(reader, Some(path), source_name, table, scope)
}

/// Reads the records of `input` (the file at `path`, when it is one), keeping what `scope`
/// keeps.
fn read_records<R: std::io::Read>(
    input: R,
    path: Option<&Path>,
    source_name: &str,
    table: LogTable,
    scope: Option<&RowScope>,
) -> Result<ParsedExport> {
    let mut readers = [Reader::new(
        scope,
        Target::Collect {
            rows: Vec::new(),
            positions: Vec::new(),
        },
    )];
    let meta = stream_records(input, path, source_name, &mut readers)?;
    let [mut only] = readers;
    let scoped = only.scoped();
    let rows = match only.target {
        Target::Collect { rows, .. } => rows,
        Target::Sink(_) => Vec::new(),
    };
    Ok(ParsedExport {
        table: Table {
            name: table.name().to_owned(),
            columns: meta.columns,
            rows,
        },
        partial_error: None,
        problems: meta.problems,
        scoped,
    })
}

/// Streams the portal CSV export at `path` to every one of `consumers` in one pass, as
/// [`crate::format::stream_export_rows`] streams a JSON export: each gets the records its scope
/// keeps, and every record that cannot be read is reported.
///
/// # Errors
///
/// As [`read_csv_export`].
pub fn stream_csv_rows(
    path: &Path,
    source_name: &str,
    table: LogTable,
    consumers: &mut [crate::RowConsumer<'_>],
) -> Result<crate::StreamedAnswer> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let head = reader.fill_buf().map_err(io)?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let head = reader.fill_buf().map_err(io)?;
    if head.iter().all(u8::is_ascii_whitespace) {
        // Empty, or a megabyte of blanks first: the whole-file reader says which.
        let bytes = std::fs::read(path).map_err(io)?;
        let parsed = parse_csv_export(&bytes, source_name, table)?;
        return Ok(crate::format::feed_table(parsed, consumers));
    }
    let mut readers: Vec<Reader<'_>> = consumers
        .iter_mut()
        .map(|c| Reader::new(c.scope.as_ref(), Target::Sink(&mut *c.sink)))
        .collect();
    let meta = stream_records(reader, Some(path), source_name, &mut readers)?;
    Ok(crate::StreamedAnswer {
        columns: meta.columns,
        partial_error: None,
        problems: meta.problems,
        stats: readers.iter().map(Reader::stats).collect(),
    })
}

/// The record loop: every record to the readers whose scope keeps it.
fn stream_records<R: std::io::Read>(
    input: R,
    path: Option<&Path>,
    source_name: &str,
    readers: &mut [Reader<'_>],
) -> Result<Meta> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| {
            Error::format(
                source_name,
                format!("the CSV header row cannot be read: {e}"),
            )
        })?
        .clone();
    let columns: Vec<Column> = headers
        .iter()
        .map(|h| Column {
            name: column_name(h),
            kind: String::new(),
        })
        .collect();
    let width = columns.len();
    for r in readers.iter_mut() {
        r.bind(&columns);
        r.tell(&columns);
    }
    let mut keeps = vec![true; readers.len()];
    let mut good = 0usize;
    let mut bad: Vec<(usize, String)> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut index = 0usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if record.len() > width {
                    bad.push((
                        index,
                        format!(
                            "row has {} fields but the header has {width}; the extra fields were ignored",
                            record.len()
                        ),
                    ));
                }
                let mut any = false;
                for (keep, r) in keeps.iter_mut().zip(readers.iter()) {
                    *keep = r.active().is_none_or(|scope| {
                        scope.keep(|c| match record.get(c) {
                            _ if c >= width => Cell::Absent,
                            None | Some("") => Cell::Null,
                            Some(field) => Cell::Str(field),
                        })
                    });
                    any |= *keep;
                }
                let cells: Vec<Value> = if any {
                    let mut cells: Vec<Value> = record
                        .iter()
                        .take(width)
                        .map(|field| {
                            if field.is_empty() {
                                Value::Null
                            } else {
                                Value::String(field.to_owned())
                            }
                        })
                        .collect();
                    cells.resize(width, Value::Null);
                    cells
                } else {
                    Vec::new()
                };
                deliver_at(readers, good, cells, &keeps);
                good += 1;
            }
            Err(e) => {
                if let (Some(path), csv::ErrorKind::Io(_)) = (path, e.kind()) {
                    return Err(Error::Io {
                        path: path.to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
                // A broken record does not stop the reader: the next call reads the next one.
                bad.push((
                    index,
                    format!("the CSV record cannot be read ({e}); the row is skipped"),
                ));
            }
        }
        index += 1;
    }
    let mut problems = Vec::new();
    let total = bad.len();
    for (row, message) in bad.into_iter().take(MAX_ROW_PROBLEMS) {
        problems.push(DataProblem::row(source_name, row, message));
    }
    if total > MAX_ROW_PROBLEMS {
        problems.push(DataProblem::source(
            source_name,
            format!(
                "{} more malformed rows were skipped",
                total - MAX_ROW_PROBLEMS
            ),
        ));
    }
    Ok(Meta {
        columns,
        partial_error: None,
        problems,
    })
}

/// A portal column name with its ` [UTC]` (or ` [Local Time]`) suffix removed.
fn column_name(header: &str) -> String {
    let h = header.trim();
    for suffix in [" [UTC]", " [Local Time]"] {
        if h.len() > suffix.len()
            && h.is_char_boundary(h.len() - suffix.len())
            && h[h.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        {
            return h[..h.len() - suffix.len()].trim_end().to_owned();
        }
    }
    h.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_shape_is_read_and_bad_records_cost_one_row() {
        let mut text = String::from(
            "TimeGenerated [UTC],OperationName,InitiatedBy,Result\n\
             \"4/28/2021, 2:32:14.029 PM\",Add member to role completed (PIM activation),\"{\"\"user\"\":{\"\"userPrincipalName\"\":\"\"jane@contoso.com\"\"}}\",success\n",
        );
        text.push_str("\"4/28/2021, 2:40:00.000 PM\",Other,,success,extra\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\"4/28/2021, 2:41:00.000 PM\",bad \xff utf8,,success\n");
        bytes.extend_from_slice(b"short\n");
        let p = parse_csv_export(&bytes, "AuditLogs.csv", LogTable::AuditLogs).unwrap();
        let names: Vec<&str> = p.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["TimeGenerated", "OperationName", "InitiatedBy", "Result"]
        );
        assert_eq!(p.table.rows.len(), 3);
        assert_eq!(
            p.table.rows[0][2],
            r#"{"user":{"userPrincipalName":"jane@contoso.com"}}"#
        );
        assert!(p.table.rows[1][2].is_null());
        assert!(p.table.rows[2][1].is_null());
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert_eq!(p.problems[0].row, Some(1));
        assert_eq!(p.problems[1].row, Some(2));
        assert!(p.problems.iter().all(|x| x.source == "AuditLogs.csv"));
    }

    #[test]
    fn a_streamed_file_keeps_the_records_in_scope_and_reports_every_bad_one() {
        let dir = std::env::temp_dir().join(format!("pim-csv-scope-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("AzureActivity.csv");
        let mut bytes = b"\xEF\xBB\xBFTimeGenerated [UTC],Caller\n".to_vec();
        bytes.extend_from_slice(b"\"11/20/2026, 10:05:00.000 AM\",jane@contoso.com\n");
        bytes.extend_from_slice(b"\"11/20/2026, 10:06:00.000 AM\",bob@contoso.com,extra\n");
        bytes.extend_from_slice(b"\"11/20/2026, 10:07:00.000 AM\",bad \xff\n");
        bytes.extend_from_slice(b",bob@contoso.com\n");
        bytes.extend_from_slice(b"\"11/20/2026, 3:00:00.000 PM\",jane@contoso.com\n");
        std::fs::write(&path, &bytes).unwrap();
        let scope = RowScope {
            time: Some(crate::TimeScope {
                columns: vec!["TimeGenerated".into()],
                span: pim_domain::TimeRange::new(
                    pim_domain::timestamp::parse_timestamp("2026-11-20T10:00:00Z").unwrap(),
                    pim_domain::timestamp::parse_timestamp("2026-11-20T11:00:00Z").unwrap(),
                ),
            }),
            identities: Some(crate::IdentityScope {
                fields: vec![crate::IdentityField::Column("Caller".into())],
                values: vec!["jane@contoso.com".into()],
            }),
            ..RowScope::default()
        };
        let p = read_csv_export(
            &path,
            "AzureActivity.csv",
            LogTable::AzureActivity,
            Some(&scope),
        )
        .unwrap();
        let whole = parse_csv_export(&bytes, "AzureActivity.csv", LogTable::AzureActivity).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // Jane in the span, and bob's record with no time; bob's other record and Jane's at 3 PM
        // are left out. The long record and the unreadable one are reported all the same.
        assert_eq!(p.table.rows.len(), 2);
        assert_eq!(p.table.rows[1][0], Value::Null);
        let scoped = p.scoped.unwrap();
        assert_eq!(scoped.positions, [0, 2]);
        assert_eq!(scoped.left_out, 2);
        assert_eq!(p.problems, whole.problems);
        assert_eq!(p.problems.len(), 2);
        assert_eq!(p.table.columns, whole.table.columns);
    }

    #[test]
    fn empty_file_is_an_error_naming_it() {
        let e =
            parse_csv_export(b"  \n", "AzureActivity.csv", LogTable::AzureActivity).unwrap_err();
        assert!(e.to_string().contains("AzureActivity.csv"), "{e}");
    }
}
