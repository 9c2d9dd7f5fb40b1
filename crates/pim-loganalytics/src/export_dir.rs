//! The export-directory adapter (`--from-dir DIR`).

use std::path::{Path, PathBuf};

use tracing::debug;

use crate::csv_export::{read_csv_export, stream_csv_rows};
use crate::format::{read_export, stream_export_rows};

fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
use crate::offline::wanted_table;
use crate::{
    Error, KqlSource, LogQuery, LogTable, QueryOutcome, Result, RowConsumer, RowStream,
    SourceCapabilities, SourceInfo, SourceKind, StreamedAnswer,
};

/// A directory of exported query results: `AuditLogs.json` and `AzureActivity.json`, at least
/// one of them, each in either shape [`parse_export`](crate::format::parse_export) reads. File names match
/// case-insensitively. `AzureActivity.json` alone is enough: Azure resource-role PIM events are
/// also in the Activity Log (the scan then warns that directory roles and groups cannot be seen).
///
/// Files are streamed on every query (nothing is cached), so a directory can be refreshed
/// between scans; a query's [`RowScope`](crate::RowScope) decides which rows are kept. Without `AzureActivity.json`, AzureActivity queries fail with
/// [`Error::MissingTable`]: the scan then marks the affected activations unknown rather than
/// reporting "no activity".
#[derive(Debug, Clone)]
pub struct ExportDir {
    dir: PathBuf,
}

impl ExportDir {
    /// Opens `dir`, checking that it is a directory holding `AuditLogs.json` or
    /// `AzureActivity.json`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be read (naming it), [`Error::MissingTable`]
    /// (for `AuditLogs`) when it holds neither file.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let meta = std::fs::metadata(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::Io {
                path: dir,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "not a directory (--from-dir expects a directory holding AuditLogs.json and/or AzureActivity.json)",
                ),
            });
        }
        let this = Self { dir };
        if let Err(missing) = this.file_for(LogTable::AuditLogs) {
            this.file_for(LogTable::AzureActivity)
                .map_err(|_| missing)?;
        }
        Ok(this)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The export file for `table`: `<Table>.json` or the portal's `<Table>.csv`, matched
    /// case-insensitively. Both forms of one table in one folder is an error: which one is the
    /// truth cannot be guessed.
    fn file_for(&self, table: LogTable) -> Result<PathBuf> {
        let exact = self.dir.join(table.file_name());
        let csv_name = format!("{}.csv", table.name());
        let entries = std::fs::read_dir(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut json = None;
        let mut csv = None;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !entry.path().is_file() {
                continue;
            }
            if name.eq_ignore_ascii_case(table.file_name()) {
                json = Some(entry.path());
            } else if name.eq_ignore_ascii_case(&csv_name) {
                csv = Some(entry.path());
            }
        }
        match (json, csv) {
            (Some(j), Some(c)) => Err(Error::format(
                table.file_name(),
                format!(
                    "{} holds both {} and {}: keep one form of the {} export",
                    self.dir.display(),
                    file_label(&j),
                    file_label(&c),
                    table.name()
                ),
            )),
            (Some(path), None) | (None, Some(path)) => Ok(path),
            (None, None) => Err(Error::MissingTable { table, path: exact }),
        }
    }
}

#[async_trait::async_trait]
impl KqlSource for ExportDir {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Export,
            description: self.dir.display().to_string(),
            default_end: None,
        }
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::WHOLE_TABLES
    }

    fn table_label(&self, table: LogTable) -> String {
        table.file_name().to_owned()
    }

    fn row_stream(&self) -> Option<std::sync::Arc<dyn RowStream>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    async fn query(&self, query: &LogQuery) -> Result<QueryOutcome> {
        let table = wanted_table(query, "export directory")?;
        let path = self.file_for(table)?;
        // Local files: a blocking read here is simpler than a tokio::fs dependency and costs
        // the same for one file per query. The file is streamed, keeping only the rows the
        // query's scope keeps, so memory follows the rows the scan needs (issue 12).
        let started = std::time::Instant::now();
        let source_name = path.file_name().map_or_else(
            || table.file_name().to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let scope = query.scope.as_ref();
        let mut parsed = if is_csv {
            read_csv_export(&path, &source_name, table, scope)?
        } else {
            read_export(&path, &source_name, table, scope)?
        };
        // The file's own name, so that problems found later name the file (JSON or CSV).
        parsed.table.name = source_name.clone();
        debug!(
            query = %query.label,
            file = %path.display(),
            rows = parsed.table.rows.len(),
            left_out = parsed.scoped.as_ref().map_or(0, |s| s.left_out),
            total_ms = started.elapsed().as_millis() as u64,
            "export read"
        );
        Ok(QueryOutcome {
            tables: vec![parsed.table],
            partial_error: parsed.partial_error,
            problems: parsed.problems,
            scoped: parsed.scoped,
            // Offline answers cannot be split: a recorded cut stays a partial error.
            truncation: None,
        })
    }
}

impl ExportDir {
    /// The file read for `table`, and how problems name it.
    fn source_of(&self, table: LogTable) -> Result<(PathBuf, String, bool)> {
        let path = self.file_for(table)?;
        let source_name = path.file_name().map_or_else(
            || table.file_name().to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        Ok((path, source_name, is_csv))
    }
}

impl RowStream for ExportDir {
    fn file_label(&self, table: LogTable) -> Result<String> {
        Ok(self.source_of(table)?.1)
    }

    fn stream(&self, table: LogTable, consumers: &mut [RowConsumer<'_>]) -> Result<StreamedAnswer> {
        let (path, source_name, is_csv) = self.source_of(table)?;
        let started = std::time::Instant::now();
        let answer = if is_csv {
            stream_csv_rows(&path, &source_name, table, consumers)?
        } else {
            stream_export_rows(&path, &source_name, table, consumers)?
        };
        debug!(
            file = %path.display(),
            readers = answer.stats.len(),
            kept = ?answer.stats.iter().map(|s| s.kept).collect::<Vec<_>>(),
            total_ms = started.elapsed().as_millis() as u64,
            "export streamed"
        );
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::TimeRange;
    use pim_domain::timestamp::parse_timestamp;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique temporary directory, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "pim-loganalytics-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub(crate) fn write(&self, name: &str, text: &str) {
            std::fs::write(self.0.join(name), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const AUDIT: &str = r#"{"tables":[{"name":"PrimaryResult",
        "columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"OperationName","type":"string"}],
        "rows":[["2026-11-20T09:00:00Z","in"],["2026-11-22T09:00:00Z","out"],[null,"undated"]]}]}"#;

    fn query(table: Option<LogTable>) -> LogQuery {
        LogQuery {
            label: "test".into(),
            table,
            kql: String::new(),
            timespan: TimeRange::new(
                parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
                parse_timestamp("2026-11-21T00:00:00Z").unwrap(),
            ),
            scope: None,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn reads_the_whole_file_in_row_order_and_describes_itself() {
        let dir = TempDir::new("read");
        dir.write("AuditLogs.json", AUDIT);
        let src = ExportDir::open(&dir.0).unwrap();
        let info = src.info();
        assert_eq!(info.kind, SourceKind::Export);
        // An export runs no KQL: the scan must plan for whole tables named by their files.
        assert_eq!(src.capabilities(), SourceCapabilities::WHOLE_TABLES);
        assert_eq!(
            src.table_label(LogTable::AzureActivity),
            "AzureActivity.json"
        );
        assert_eq!(info.description, dir.0.display().to_string());
        assert_eq!(info.default_end, None);
        let out = block_on(src.query(&query(Some(LogTable::AuditLogs)))).unwrap();
        let t = &out.tables[0];
        // Named after the file, so that problems found later name it.
        assert_eq!(t.name, "AuditLogs.json");
        let ops: Vec<_> = t.rows.iter().map(|r| r[1].as_str().unwrap()).collect();
        // No time filtering offline: row numbers in problems must name the file's rows.
        assert_eq!(ops, ["in", "out", "undated"]);
    }

    #[test]
    fn file_names_match_case_insensitively() {
        let dir = TempDir::new("case");
        dir.write("auditlogs.JSON", AUDIT);
        dir.write("AZUREACTIVITY.json", "[]");
        let src = ExportDir::open(&dir.0).unwrap();
        let out = block_on(src.query(&query(Some(LogTable::AzureActivity)))).unwrap();
        assert!(out.tables[0].rows.is_empty());
        assert_eq!(out.tables[0].name, "AZUREACTIVITY.json");
    }

    #[test]
    fn missing_directory_and_missing_audit_logs_name_the_path() {
        let dir = TempDir::new("missing");
        let gone = dir.0.join("nope");
        let e = ExportDir::open(&gone).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains(&gone.display().to_string()), "{e}");

        let e = ExportDir::open(&dir.0).unwrap_err();
        assert!(matches!(
            e,
            Error::MissingTable {
                table: LogTable::AuditLogs,
                ..
            }
        ));
        assert!(e.to_string().contains("AuditLogs.json"), "{e}");

        dir.write("AuditLogs.json", AUDIT);
        let e = ExportDir::open(dir.0.join("AuditLogs.json")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn portal_csv_exports_are_read_and_may_mix_with_json_but_not_duplicate_it() {
        let dir = TempDir::new("csv");
        dir.write(
            "AzureActivity.csv",
            "TimeGenerated [UTC],Caller,OperationNameValue\n\"11/20/2026, 9:20:11.000 AM\",jane@contoso.com,MICROSOFT.COMPUTE/VIRTUALMACHINES/RESTART/ACTION\n",
        );
        dir.write("AuditLogs.json", AUDIT);
        let src = ExportDir::open(&dir.0).unwrap();
        let out = block_on(src.query(&query(Some(LogTable::AzureActivity)))).unwrap();
        let t = &out.tables[0];
        assert_eq!(t.name, "AzureActivity.csv");
        assert_eq!(t.column_index("TimeGenerated"), Some(0));
        assert_eq!(t.rows[0][1], "jane@contoso.com");
        assert_eq!(
            block_on(src.query(&query(Some(LogTable::AuditLogs))))
                .unwrap()
                .tables[0]
                .rows
                .len(),
            3
        );
        dir.write("azureactivity.JSON", "[]");
        let e = block_on(src.query(&query(Some(LogTable::AzureActivity)))).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("AzureActivity.csv") && text.contains("azureactivity.JSON"),
            "{text}"
        );
        assert!(text.contains("keep one form"), "{text}");
    }

    #[test]
    fn azure_activity_alone_is_enough_to_open() {
        let dir = TempDir::new("actonly");
        dir.write("AzureActivity.json", "[]");
        let src = ExportDir::open(&dir.0).unwrap();
        let e = block_on(src.query(&query(Some(LogTable::AuditLogs)))).unwrap_err();
        assert!(
            matches!(
                e,
                Error::MissingTable {
                    table: LogTable::AuditLogs,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_azure_activity_is_missing_table_not_empty() {
        let dir = TempDir::new("noact");
        dir.write("AuditLogs.json", AUDIT);
        let src = ExportDir::open(&dir.0).unwrap();
        let e = block_on(src.query(&query(Some(LogTable::AzureActivity)))).unwrap_err();
        match &e {
            Error::MissingTable { table, path } => {
                assert_eq!(*table, LogTable::AzureActivity);
                assert!(path.ends_with("AzureActivity.json"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.is_retryable());
    }

    #[test]
    fn free_form_kql_is_unsupported() {
        let dir = TempDir::new("free");
        dir.write("AuditLogs.json", AUDIT);
        let src = ExportDir::open(&dir.0).unwrap();
        let e = block_on(src.query(&query(None))).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }

    #[test]
    fn broken_file_is_a_format_error_naming_it_and_bad_rows_are_problems() {
        let dir = TempDir::new("broken");
        dir.write(
            "AuditLogs.json",
            r#"[{"TimeGenerated":"2026-11-20T01:00:00Z"}, 7]"#,
        );
        dir.write("AzureActivity.json", "{\"tables\": [");
        let src = ExportDir::open(&dir.0).unwrap();
        let out = block_on(src.query(&query(Some(LogTable::AuditLogs)))).unwrap();
        assert_eq!(out.tables[0].rows.len(), 1);
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].source, "AuditLogs.json");
        assert_eq!(out.problems[0].row, Some(1));
        let e = block_on(src.query(&query(Some(LogTable::AzureActivity)))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("AzureActivity.json: truncated JSON"),
            "{e}"
        );
    }
}
