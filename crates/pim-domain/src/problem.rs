//! Precise descriptions of input that could not be used.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Something wrong with the input, located as exactly as possible.
///
/// Displayed as `AuditLogs.json row 17, field AdditionalDetails: not valid JSON (…)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct DataProblem {
    /// The file or table the input came from, e.g. `AuditLogs.json` or `AuditLogs`.
    pub source: String,
    /// Zero-based row index within that source, when the problem is in one row.
    pub row: Option<usize>,
    /// The column or key, when the problem is in one field.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl DataProblem {
    /// A problem with a whole source (file or table).
    pub fn source(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            row: None,
            field: None,
            message: message.into(),
        }
    }

    /// A problem with one row.
    pub fn row(source: impl Into<String>, row: usize, message: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            row: Some(row),
            field: None,
            message: message.into(),
        }
    }

    /// A problem with one field of one row.
    pub fn field(
        source: impl Into<String>,
        row: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            row: Some(row),
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DataProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)?;
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}
