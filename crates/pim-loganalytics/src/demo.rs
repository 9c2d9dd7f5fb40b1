//! The embedded demo tenant (`--demo`).

use pim_domain::timestamp::{format_utc, parse_timestamp};
use pim_domain::{Column, DataProblem, Table};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::format::{ParsedExport, parse_export};
use crate::offline::wanted_table;
use crate::{
    Error, KqlSource, LogQuery, LogTable, QueryOutcome, Result, SourceCapabilities, SourceInfo,
    SourceKind,
};

const AUDIT_LOGS: &str = include_str!("../demo/AuditLogs.json");
const AZURE_ACTIVITY: &str = include_str!("../demo/AzureActivity.json");
const BULK: &str = include_str!("../demo/bulk.json");

/// Upper bound on generated rows, so a typo in `bulk.json` cannot exhaust memory.
const MAX_BULK_ROWS: usize = 1_000_000;

const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const UPN_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";

/// A small fictitious tenant compiled into the binary: `demo/AuditLogs.json` and
/// `demo/AzureActivity.json` (query API response shape) plus the rows `demo/bulk.json`
/// describes, so the demo can contain a runaway script without shipping megabytes.
///
/// Queries behave exactly like [`ExportDir`](crate::ExportDir) (same table choice and time
/// filter). [`SourceInfo::default_end`] is the fixed `reference_end` from `bulk.json`, so
/// `pim-batch --demo` gives the same report on every run.
#[derive(Debug, Clone)]
pub struct DemoTenant {
    audit_logs: DemoTable,
    azure_activity: DemoTable,
    reference_end: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct DemoTable {
    table: Table,
    partial_error: Option<String>,
    problems: Vec<DataProblem>,
}

impl DemoTenant {
    /// Loads the embedded demo data.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] if an embedded file is broken (a build of this crate with bad demo
    /// data), never a panic.
    pub fn new() -> Result<Self> {
        Self::from_documents(AUDIT_LOGS, AZURE_ACTIVITY, BULK)
    }

    /// Builds a demo tenant from the text of the three documents, e.g. to test new demo data
    /// before embedding it.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] naming the document (`demo/AuditLogs.json`, `demo/AzureActivity.json`
    /// or `demo/bulk.json`) that is broken.
    pub fn from_documents(audit_logs: &str, azure_activity: &str, bulk: &str) -> Result<Self> {
        let audit = parse_export(
            audit_logs.as_bytes(),
            "demo/AuditLogs.json",
            LogTable::AuditLogs,
        )?;
        let activity = parse_export(
            azure_activity.as_bytes(),
            "demo/AzureActivity.json",
            LogTable::AzureActivity,
        )?;
        let bulk = BulkFile::parse(bulk)?;
        let mut azure_activity = DemoTable::from(activity);
        bulk.expand_into(&mut azure_activity.table)?;
        let audit_logs = DemoTable::from(audit);
        Ok(Self {
            audit_logs,
            azure_activity,
            reference_end: bulk.reference_end,
        })
    }

    /// The fixed end of the demo's scan window (`reference_end` in `bulk.json`).
    pub fn reference_end(&self) -> OffsetDateTime {
        self.reference_end
    }
}

impl From<ParsedExport> for DemoTable {
    fn from(p: ParsedExport) -> Self {
        Self {
            table: p.table,
            partial_error: p.partial_error,
            problems: p.problems,
        }
    }
}

#[async_trait::async_trait]
impl KqlSource for DemoTenant {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Demo,
            description: "embedded demo tenant (contoso-demo.com)".to_owned(),
            default_end: Some(self.reference_end),
        }
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::WHOLE_TABLES
    }

    async fn query(&self, query: &LogQuery) -> Result<QueryOutcome> {
        let demo = match wanted_table(query, "demo tenant")? {
            LogTable::AuditLogs => &self.audit_logs,
            LogTable::AzureActivity => &self.azure_activity,
        };
        Ok(QueryOutcome {
            tables: vec![demo.table.clone()],
            partial_error: demo.partial_error.clone(),
            problems: demo.problems.clone(),
            // The demo's tables are small and already in memory: it answers with whole tables
            // and leaves the scope to the parser's own checks.
            scoped: None,
            // Offline answers cannot be split: a recorded cut stays a partial error.
            truncation: None,
        })
    }
}

/// `demo/bulk.json`: generated AzureActivity rows.
struct BulkFile {
    reference_end: OffsetDateTime,
    entries: Vec<BulkEntry>,
}

#[derive(Deserialize)]
struct RawBulkFile {
    reference_end: String,
    bulk: Vec<BulkEntry>,
}

/// One generated burst: `count` successful operations by one caller, `interval_ms` apart, each
/// on its own resource `{resource_prefix}{index:04}`.
#[derive(Deserialize)]
struct BulkEntry {
    caller: String,
    #[serde(default)]
    caller_object_id: Option<String>,
    operation: String,
    subscription_id: String,
    resource_group: String,
    resource_type: String,
    resource_prefix: String,
    start: String,
    interval_ms: u64,
    count: usize,
    #[serde(default)]
    caller_ip: Option<String>,
}

/// The columns a generated row fills, with their Kusto types (used when the embedded table
/// lacks one of them).
const BULK_COLUMNS: [(&str, &str); 19] = [
    ("TimeGenerated", "datetime"),
    ("Caller", "string"),
    ("CallerIpAddress", "string"),
    ("OperationNameValue", "string"),
    ("ActivityStatusValue", "string"),
    ("ActivitySubstatusValue", "string"),
    ("CategoryValue", "string"),
    ("ResourceProviderValue", "string"),
    ("ResourceGroup", "string"),
    ("SubscriptionId", "string"),
    ("_ResourceId", "string"),
    ("ResourceId", "string"),
    ("CorrelationId", "string"),
    ("OperationId", "string"),
    ("EventDataId", "string"),
    ("Level", "string"),
    ("Claims_d", "dynamic"),
    ("Properties_d", "dynamic"),
    ("Authorization_d", "dynamic"),
];

const BULK_SOURCE: &str = "demo/bulk.json";

impl BulkFile {
    fn parse(text: &str) -> Result<Self> {
        let raw: RawBulkFile = serde_json::from_str(text.trim_start_matches('\u{FEFF}'))
            .map_err(|e| Error::format(BULK_SOURCE, e.to_string()))?;
        let reference_end = parse_timestamp(&raw.reference_end)
            .map_err(|e| Error::format(BULK_SOURCE, format!("reference_end: {e}")))?;
        let mut total = 0usize;
        for (i, entry) in raw.bulk.iter().enumerate() {
            total = total.saturating_add(entry.count);
            if total > MAX_BULK_ROWS {
                return Err(entry_error(
                    i,
                    format!("asks for more than {MAX_BULK_ROWS} generated rows in total"),
                ));
            }
        }
        Ok(Self {
            reference_end,
            entries: raw.bulk,
        })
    }

    /// Appends the generated rows to `table` by column name; columns the table lacks are added
    /// (earlier rows read null there), table columns a generated row does not fill stay null.
    fn expand_into(&self, table: &mut Table) -> Result<()> {
        let targets: Vec<usize> = BULK_COLUMNS
            .iter()
            .map(|(name, kind)| {
                table.column_index(name).unwrap_or_else(|| {
                    table.columns.push(Column {
                        name: (*name).to_owned(),
                        kind: (*kind).to_owned(),
                    });
                    table.columns.len() - 1
                })
            })
            .collect();
        let width = table.columns.len();
        for row in &mut table.rows {
            row.resize(width.max(row.len()), Value::Null);
        }
        // Generated dynamic cells follow the embedded rows: JSON strings if those are strings
        // (as the query API sends them), nested JSON otherwise.
        let dynamic_as_text = table.column_index("Claims_d").is_some_and(|c| {
            table
                .rows
                .iter()
                .find_map(|r| r.get(c).filter(|v| !v.is_null()))
                .is_some_and(Value::is_string)
        });
        table
            .rows
            .reserve(self.entries.iter().map(|e| e.count).sum());
        for (e, entry) in self.entries.iter().enumerate() {
            let start = parse_timestamp(&entry.start)
                .map_err(|err| entry_error(e, format!("start: {err}")))?;
            let interval = i64::try_from(entry.interval_ms)
                .map_err(|_| entry_error(e, "interval_ms is too large"))?;
            for i in 0..entry.count {
                let at = i64::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_mul(interval))
                    .and_then(|ms| start.checked_add(Duration::milliseconds(ms)))
                    .ok_or_else(|| entry_error(e, "the generated times run out of range"))?;
                let mut row = vec![Value::Null; width];
                for (k, value) in entry.row(e, i, at, dynamic_as_text).into_iter().enumerate() {
                    row[targets[k]] = value;
                }
                table.rows.push(row);
            }
        }
        Ok(())
    }
}

fn entry_error(index: usize, message: impl std::fmt::Display) -> Error {
    Error::format(BULK_SOURCE, format!("bulk entry {index}: {message}"))
}

impl BulkEntry {
    /// The cells of generated row `i` of entry `e`, in [`BULK_COLUMNS`] order. Ids derive from
    /// `(e, i)` only, so the demo is identical on every run.
    fn row(&self, e: usize, i: usize, at: OffsetDateTime, dynamic_as_text: bool) -> [Value; 19] {
        let name = format!("{}{i:04}", self.resource_prefix);
        let resource_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{}/{name}",
            self.subscription_id, self.resource_group, self.resource_type
        );
        let id = |kind: u8| format!("d3e0000{kind}-{:04x}-4000-8000-{i:012x}", e & 0xffff);
        let provider = self
            .operation
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut claims = serde_json::Map::new();
        if let Some(oid) = &self.caller_object_id {
            claims.insert(OBJECT_ID_CLAIM.to_owned(), json!(oid));
        }
        claims.insert(UPN_CLAIM.to_owned(), json!(self.caller));
        if let Some(ip) = &self.caller_ip {
            claims.insert("ipaddr".to_owned(), json!(ip));
        }
        let dynamic = |v: Value| {
            if dynamic_as_text {
                Value::String(v.to_string())
            } else {
                v
            }
        };
        [
            json!(format_utc(at)),
            json!(self.caller),
            self.caller_ip.as_ref().map_or(Value::Null, |ip| json!(ip)),
            json!(self.operation),
            json!("Success"),
            json!("OK"),
            json!("Administrative"),
            json!(provider),
            json!(self.resource_group),
            json!(self.subscription_id),
            json!(resource_id.to_lowercase()),
            json!(resource_id),
            json!(id(0)),
            json!(id(1)),
            json!(id(2)),
            json!("Informational"),
            dynamic(Value::Object(claims)),
            dynamic(json!({
                "eventCategory": "Administrative",
                "entity": resource_id,
                "message": self.operation,
                "statusCode": "OK",
            })),
            dynamic(json!({"action": self.operation, "scope": resource_id})),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::TimeRange;

    const AUDIT_EMPTY: &str = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"}],"rows":[]}]}"#;

    /// An AzureActivity table whose columns are in a different order than the generator's, with
    /// one column it does not fill and without `Level`, plus one real row.
    const ACTIVITY: &str = r#"{"tables":[{"name":"PrimaryResult","columns":[
        {"name":"CorrelationId","type":"string"},{"name":"Unrelated","type":"string"},
        {"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},
        {"name":"Claims_d","type":"dynamic"}],
        "rows":[["c-real","u","2026-11-20T10:00:00.100Z","real@contoso-demo.com","{\"ipaddr\":\"1.2.3.4\"}"]]}]}"#;

    const BULK_TWO: &str = r#"{"reference_end":"2026-11-20T18:00:00Z","bulk":[
        {"caller":"x@contoso-demo.com","caller_object_id":"11111111-0000-4000-8000-000000000001",
         "operation":"Microsoft.Resources/tags/write","subscription_id":"22222222-0000-4000-8000-000000000002",
         "resource_group":"rg-x","resource_type":"Microsoft.Compute/virtualMachines","resource_prefix":"vm-batch-",
         "start":"2026-11-20T10:00:00Z","interval_ms":250,"count":5200,"caller_ip":"203.0.113.9"},
        {"caller":"y@contoso-demo.com","operation":"Microsoft.Storage/storageAccounts/delete",
         "subscription_id":"s","resource_group":"rg-y","resource_type":"Microsoft.Storage/storageAccounts",
         "resource_prefix":"st","start":"2026-11-20T09:00:00Z","interval_ms":1000,"count":3}]}"#;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn cell<'a>(t: &'a Table, row: usize, col: &str) -> &'a Value {
        &t.rows[row][t.column_index(col).unwrap()]
    }

    #[test]
    fn embedded_demo_loads() {
        let demo = DemoTenant::new().unwrap();
        let info = demo.info();
        assert_eq!(info.kind, SourceKind::Demo);
        assert_eq!(info.kind.as_str(), "demo");
        assert_eq!(demo.capabilities(), SourceCapabilities::WHOLE_TABLES);
        assert_eq!(demo.table_label(LogTable::AuditLogs), "AuditLogs");
        assert_eq!(info.default_end, Some(demo.reference_end()));
        for (table, name) in [
            (&demo.audit_logs.table, "AuditLogs"),
            (&demo.azure_activity.table, "AzureActivity"),
        ] {
            assert_eq!(table.name, name);
            assert!(table.column_index("TimeGenerated").is_some());
        }
    }

    #[test]
    fn bulk_expands_by_column_name() {
        let demo = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, BULK_TWO).unwrap();
        let t = &demo.azure_activity.table;
        assert_eq!(t.rows.len(), 1 + 5200 + 3);
        assert!(t.rows.iter().all(|r| r.len() == t.columns.len()));
        // Missing generator columns were appended; the unrelated one stays null.
        assert!(t.column_index("Level").is_some());
        assert_eq!(t.columns.iter().filter(|c| c.name == "Caller").count(), 1);
        // Row order is the embedded rows, then each bulk entry's rows in order, so a problem's
        // row number points at the same row every time.
        assert_eq!(cell(t, 0, "CorrelationId"), "c-real");
        assert_eq!(cell(t, 0, "ActivityStatusValue"), &Value::Null);
        assert_eq!(cell(t, 1, "TimeGenerated"), "2026-11-20T10:00:00Z");
        assert_eq!(cell(t, 2, "TimeGenerated"), "2026-11-20T10:00:00.25Z");
        assert_eq!(cell(t, 2, "Unrelated"), &Value::Null);
        assert_eq!(cell(t, 2, "ActivityStatusValue"), "Success");
        let last_of_first = 5200;
        assert_eq!(
            cell(t, last_of_first, "_ResourceId"),
            "/subscriptions/22222222-0000-4000-8000-000000000002/resourcegroups/rg-x/providers/microsoft.compute/virtualmachines/vm-batch-5199"
        );
        assert_eq!(
            cell(t, last_of_first, "TimeGenerated"),
            "2026-11-20T10:21:39.75Z"
        );
        assert_eq!(cell(t, t.rows.len() - 1, "Caller"), "y@contoso-demo.com");
        // Claims_d follows the embedded rows' representation (a JSON string here).
        let claims: Value =
            serde_json::from_str(cell(t, last_of_first, "Claims_d").as_str().unwrap()).unwrap();
        assert_eq!(
            claims[OBJECT_ID_CLAIM],
            "11111111-0000-4000-8000-000000000001"
        );
        // Correlation ids are unique.
        let c = t.column_index("CorrelationId").unwrap();
        let ids: std::collections::HashSet<_> = t.rows.iter().map(|r| r[c].clone()).collect();
        assert_eq!(ids.len(), t.rows.len());
    }

    #[test]
    fn bulk_expansion_is_deterministic() {
        let a = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, BULK_TWO).unwrap();
        let b = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, BULK_TWO).unwrap();
        assert_eq!(a.azure_activity.table, b.azure_activity.table);
        assert_eq!(
            a.reference_end(),
            parse_timestamp("2026-11-20T18:00:00Z").unwrap()
        );
    }

    #[test]
    fn dynamic_cells_are_objects_when_embedded_rows_use_objects() {
        let activity = ACTIVITY.replace(r#""{\"ipaddr\":\"1.2.3.4\"}""#, r#"{"ipaddr":"1.2.3.4"}"#);
        let demo = DemoTenant::from_documents(AUDIT_EMPTY, &activity, BULK_TWO).unwrap();
        let t = &demo.azure_activity.table;
        assert!(cell(t, 0, "Claims_d").is_object());
    }

    #[test]
    fn queries_return_the_whole_table_in_row_order() {
        let demo = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, BULK_TWO).unwrap();
        let q = LogQuery {
            label: "azure-activity 1/1".into(),
            table: Some(LogTable::AzureActivity),
            kql: String::new(),
            timespan: TimeRange::new(
                parse_timestamp("2026-11-20T09:00:00Z").unwrap(),
                parse_timestamp("2026-11-20T09:59:59Z").unwrap(),
            ),
            scope: None,
        };
        let out = block_on(demo.query(&q)).unwrap();
        assert_eq!(out.tables[0].rows.len(), 1 + 5200 + 3);
        let free = LogQuery { table: None, ..q };
        assert!(matches!(
            block_on(demo.query(&free)),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn broken_documents_are_errors_naming_the_file() {
        let e = DemoTenant::from_documents("", ACTIVITY, BULK_TWO).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("demo/AuditLogs.json: the file is empty"),
            "{e}"
        );
        let e = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, "{\"bulk\":[]}").unwrap_err();
        assert!(
            e.to_string().contains("demo/bulk.json") && e.to_string().contains("reference_end"),
            "{e}"
        );
        let huge = BULK_TWO.replace("\"count\":5200", "\"count\":5000000");
        let e = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, &huge).unwrap_err();
        assert!(e.to_string().contains("bulk entry 0"), "{e}");
        let bad_start =
            BULK_TWO.replace("\"start\":\"2026-11-20T09:00:00Z\"", "\"start\":\"soon\"");
        let e = DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, &bad_start).unwrap_err();
        assert!(e.to_string().contains("bulk entry 1: start"), "{e}");
        let far = BULK_TWO.replace(
            "\"interval_ms\":1000",
            "\"interval_ms\":18446744073709551615",
        );
        assert!(DemoTenant::from_documents(AUDIT_EMPTY, ACTIVITY, &far).is_err());
    }
}
