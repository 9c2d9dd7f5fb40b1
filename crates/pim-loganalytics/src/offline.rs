//! What the offline sources share.
//!
//! Offline sources do not run KQL: they answer a scan query with the whole table it reads, in
//! the export's own row order. They do not even apply the query's timespan, because a
//! [`pim_domain::DataProblem`] names a row by its position in the file, and filtering or
//! reordering would make "row 17" point at the wrong line. The shared parser re-checks every row
//! against its window and identity exactly as it does for live results, so the extra rows cost
//! a little time and change no result.

use crate::{Error, LogQuery, LogTable, Result};

/// The table an offline source must read for `query`, or [`Error::Unsupported`] for free-form
/// KQL.
pub(crate) fn wanted_table(query: &LogQuery, source: &str) -> Result<LogTable> {
    query.table.ok_or_else(|| Error::Unsupported {
        message: format!(
            "the {source} can only answer the built-in scan queries on AuditLogs and AzureActivity; free-form KQL (query {:?}) needs a Log Analytics workspace",
            query.label
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::TimeRange;
    use pim_domain::timestamp::parse_timestamp;

    fn range() -> TimeRange {
        TimeRange::new(
            parse_timestamp("2026-11-20T09:00:00Z").unwrap(),
            parse_timestamp("2026-11-20T13:00:00Z").unwrap(),
        )
    }

    #[test]
    fn free_form_kql_is_unsupported() {
        let q = LogQuery {
            label: "ask".into(),
            table: None,
            kql: "SigninLogs | take 1".into(),
            timespan: range(),
        };
        let e = wanted_table(&q, "export directory").unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }));
        assert!(
            e.to_string().contains("needs a Log Analytics workspace"),
            "{e}"
        );
        assert!(!e.is_retryable());
    }
}
