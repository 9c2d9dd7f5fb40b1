//! Issue 12: exports are streamed and keep only the rows a query's scope can use. Whatever the
//! export, the report must be the one the whole tables give.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pim_core::{
    Auditor, KqlSource, LogQuery, LogTable, QueryOutcome, ScanOptions, SourceCapabilities,
    SourceInfo,
};
use time::OffsetDateTime;
use time::macros::datetime;

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);

/// An export that reads whole tables, as before issue 12: the query's scope is dropped before
/// the export sees it. Records how many rows each query's scope left out otherwise.
#[derive(Debug)]
struct Export {
    inner: Arc<dyn KqlSource>,
    whole: bool,
    left_out: Mutex<Vec<(String, usize)>>,
}

impl Export {
    fn open(dir: &Path, whole: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: pim_core::export_source(dir).unwrap(),
            whole,
            left_out: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl KqlSource for Export {
    fn info(&self) -> SourceInfo {
        self.inner.info()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }

    fn table_label(&self, table: LogTable) -> String {
        self.inner.table_label(table)
    }

    async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
        let mut query = query.clone();
        if self.whole {
            query.scope = None;
        }
        let outcome = self.inner.query(&query).await?;
        self.left_out.lock().unwrap().push((
            query.label.clone(),
            outcome.scoped.as_ref().map_or(0, |s| s.left_out),
        ));
        Ok(outcome)
    }
}

/// The report as JSON without what may differ between a scoped and a whole read: how long it
/// took, how many queries and rows it read.
async fn report(
    source: Arc<dyn KqlSource>,
    end: OffsetDateTime,
) -> Result<serde_json::Value, String> {
    let report = Auditor::builder(source)
        .build()
        .scan(&ScanOptions::new(end), end)
        .await
        .map_err(|e| e.to_string())?;
    let mut json = serde_json::to_value(&report).unwrap();
    json.as_object_mut().unwrap().remove("run");
    Ok(json)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every fixture export (good, broken, partial, CSV, row objects, one bad cell, ...) gives the
/// same report, or the same error, scoped as whole.
#[tokio::test]
async fn scoped_exports_give_the_reports_whole_tables_give() {
    let mut compared = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for dir in entries {
        if pim_core::export_source(&dir).is_err() {
            continue;
        }
        let scoped = report(Export::open(&dir, false), END).await;
        let whole = report(Export::open(&dir, true), END).await;
        assert_eq!(scoped, whole, "{}", dir.display());
        // The export itself: its Activity Log read once, rows streamed into the parsers.
        let streamed = report(pim_core::export_source(&dir).unwrap(), END).await;
        assert_eq!(streamed, whole, "{} streamed", dir.display());
        compared += 1;
    }
    assert!(compared >= 10, "{compared} fixture exports compared");
}

/// A CSV field, quoted when it must be.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// Writes `rows` of `columns` as `<dir>/<table>.json` (query API shape, every cell a string or
/// null) or `.csv` (the portal's form; null is an empty field).
fn write_table(dir: &Path, table: &str, columns: &[&str], rows: &[Vec<Option<String>>], csv: bool) {
    if csv {
        let mut text = columns
            .iter()
            .map(|c| {
                if *c == "TimeGenerated" {
                    "TimeGenerated [UTC]"
                } else {
                    c
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| c.as_deref().map(csv_field).unwrap_or_default())
                .collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("{table}.csv")), text).unwrap();
    } else {
        let doc = serde_json::json!({"tables": [{
            "name": "PrimaryResult",
            "columns": columns.iter().map(|c| serde_json::json!({"name": c, "type": "string"})).collect::<Vec<_>>(),
            "rows": rows,
        }]});
        std::fs::write(dir.join(format!("{table}.json")), doc.to_string()).unwrap();
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Two activations (an Azure role and a directory role) and an Activity Log and directory log
/// full of rows the scan does not need: other people, other hours, a PIM row, and rows that
/// cannot be read.
fn write_export(dir: &Path, csv: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let user = |upn: &str, oid: &str| {
        serde_json::json!({"user": {"userPrincipalName": upn, "id": oid, "displayName": upn}})
            .to_string()
    };
    let details = |start: &str, end: &str| {
        serde_json::json!([
            {"key": "StartTime", "value": start},
            {"key": "ExpirationTime", "value": end},
            {"key": "Justification", "value": "CHG0001 maintenance"}
        ])
        .to_string()
    };
    let audit_columns = [
        "TimeGenerated",
        "ActivityDateTime",
        "OperationName",
        "Category",
        "LoggedByService",
        "Result",
        "CorrelationId",
        "Id",
        "InitiatedBy",
        "TargetResources",
        "AdditionalDetails",
    ];
    let mut audit = vec![
        vec![
            s("2026-11-20T10:00:00Z"),
            s("2026-11-20T10:00:00Z"),
            s("Add member to role completed (PIM activation)"),
            s("ResourceManagement"),
            s("PIM"),
            s("success"),
            s("corr-1"),
            s("PIM_1"),
            s(&user("jane@contoso.com", "oid-j")),
            s(&serde_json::json!([
                {"type": "Role", "displayName": "Contributor", "id": "b24988ac-6180-42a0-ab88-20f7382dd24c"},
                {"type": "User", "displayName": "Jane", "id": "oid-j", "userPrincipalName": "jane@contoso.com"},
                {"type": "Subscription", "displayName": "Sub", "id": "/subscriptions/11111111-2222-4333-8444-555555555555"}
            ])
            .to_string()),
            s(&details("2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z")),
        ],
        vec![
            s("2026-11-20T12:00:00Z"),
            s("2026-11-20T12:00:00Z"),
            s("Add member to role completed (PIM activation)"),
            s("RoleManagement"),
            s("PIM"),
            s("success"),
            s("corr-2"),
            s("PIM_2"),
            s(&user("kim@contoso.com", "oid-k")),
            s(&serde_json::json!([
                {"type": "Role", "displayName": "User Administrator", "id": "fe930be7-5e62-47db-91af-98c3a49a38b1"},
                {"type": "User", "displayName": "Kim", "id": "oid-k", "userPrincipalName": "kim@contoso.com"}
            ])
            .to_string()),
            s(&details("2026-11-20T12:00:00Z", "2026-11-20T13:00:00Z")),
        ],
    ];
    // Directory changes: Kim's in her window, then everything else.
    let change = |when: &str, upn: &str, oid: &str, op: &str| {
        vec![
            s(when),
            s(when),
            s(op),
            s("UserManagement"),
            s("Core Directory"),
            s("success"),
            s("c"),
            None,
            s(&user(upn, oid)),
            s("[]"),
            s("[]"),
        ]
    };
    audit.push(change(
        "2026-11-20T12:10:00Z",
        "kim@contoso.com",
        "oid-k",
        "Update user",
    ));
    audit.push(change(
        "2026-11-20T15:10:00Z",
        "kim@contoso.com",
        "oid-k",
        "Delete user",
    ));
    for i in 0..50 {
        audit.push(change(
            &format!("2026-11-20T12:{:02}:00Z", i),
            &format!("other{i}@contoso.com"),
            &format!("oid-o{i}"),
            "Update user",
        ));
    }
    // Who did this cannot be read: it counts against Kim's window.
    let mut broken = change("2026-11-20T12:20:00Z", "x", "y", "Update group");
    broken[8] = s("{not json");
    audit.push(broken);
    // Jane's activation logged twice: counted once, and the problem names the first copy's row
    // as the whole file numbers it.
    audit.push(audit[0].clone());
    // A change of Kim's with no operation name: reported, and unreadable evidence.
    let mut unnamed = change("2026-11-20T12:40:00Z", "kim@contoso.com", "oid-k", "x");
    unnamed[2] = None;
    audit.push(unnamed);
    // Someone else's change first, so that no kept row keeps its index.
    audit.insert(
        0,
        change(
            "2026-11-20T09:00:00Z",
            "first@contoso.com",
            "oid-f",
            "Update user",
        ),
    );
    write_table(dir, "AuditLogs", &audit_columns, &audit, csv);

    let activity_columns = [
        "TimeGenerated",
        "Caller",
        "OperationNameValue",
        "ActivityStatusValue",
        "CategoryValue",
        "_ResourceId",
        "CorrelationId",
        "Claims_d",
    ];
    let claims = |oid: &str| {
        format!(
            r#"{{"http://schemas.microsoft.com/identity/claims/objectidentifier":"{oid}","pad":"{}"}}"#,
            "x".repeat(300)
        )
    };
    let op = |when: &str,
              caller: Option<&str>,
              name: &str,
              status: Option<&str>,
              oid: &str,
              n: usize| {
        vec![
            s(when),
            caller.map(str::to_owned),
            s(name),
            status.map(str::to_owned),
            s("Administrative"),
            s(&format!(
                "/subscriptions/11111111-2222-4333-8444-555555555555/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm{n}"
            )),
            s(&format!("op-{n}")),
            s(&claims(oid)),
        ]
    };
    let write = "Microsoft.Compute/virtualMachines/write";
    let mut activity = vec![
        op(
            "2026-11-20T10:10:00Z",
            Some("jane@contoso.com"),
            write,
            Some("Start"),
            "oid-j",
            1,
        ),
        op(
            "2026-11-20T10:10:07Z",
            Some("jane@contoso.com"),
            write,
            Some("Success"),
            "oid-j",
            1,
        ),
        // Jane by her object-id claim only (a renamed UPN).
        op(
            "2026-11-20T10:20:00Z",
            Some("jane.old@contoso.com"),
            write,
            Some("Success"),
            "oid-j",
            2,
        ),
        // Jane outside her window.
        op(
            "2026-11-20T14:00:00Z",
            Some("jane@contoso.com"),
            write,
            Some("Success"),
            "oid-j",
            3,
        ),
        // No readable time, and no status: both can be Jane's.
        op(
            "-",
            Some("jane@contoso.com"),
            write,
            Some("Success"),
            "oid-j",
            4,
        ),
        op("2026-11-20T10:30:00Z", None, write, None, "", 5),
    ];
    // Null, not blank: a blank time string is skipped silently by the parser, while CSV has
    // only the empty field, which reads as null.
    activity[4][0] = None;
    activity[5][7] = None;
    for i in 0..300 {
        activity.push(op(
            &format!("2026-11-20T10:{:02}:00Z", i % 60),
            Some(&format!("svc{i}@contoso.com")),
            write,
            Some("Success"),
            &format!("oid-s{i}"),
            100 + i,
        ));
    }
    write_table(dir, "AzureActivity", &activity_columns, &activity, csv);
}

/// A streamed export leaves out other people's rows and rows outside every window, keeps the
/// rows it cannot read, and the report is the one the whole tables give, in JSON as in CSV.
#[tokio::test]
async fn streamed_exports_drop_what_cannot_matter_and_keep_what_cannot_be_read() {
    let base = std::env::temp_dir().join(format!("pim-core-streamed-{}", std::process::id()));
    let mut reports = Vec::new();
    for csv in [false, true] {
        let dir = base.join(if csv { "csv" } else { "json" });
        write_export(&dir, csv);
        let scoped = Export::open(&dir, false);
        let got = report(scoped.clone(), END).await.unwrap();
        let whole = report(Export::open(&dir, true), END).await.unwrap();
        assert_eq!(got, whole, "csv={csv}");
        let streamed = report(pim_core::export_source(&dir).unwrap(), END)
            .await
            .unwrap();
        assert_eq!(streamed, whole, "csv={csv} streamed");
        let left_out = scoped.left_out.lock().unwrap().clone();
        let by_label = |label: &str| {
            left_out
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, n)| *n)
                .unwrap()
        };
        // The Activity Log's PIM-events query keeps no ARM operation; its activity query keeps
        // Jane's three readable rows in the span and the two unreadable ones.
        assert_eq!(by_label("pim-events-activity"), 306, "{left_out:?}");
        assert_eq!(by_label("azure-activity"), 301, "{left_out:?}");
        // The directory query keeps Kim's change in her window and the two unreadable rows.
        // (Kim's own PIM row is in scope too; the parser skips it.)
        assert_eq!(by_label("directory-activity"), 54, "{left_out:?}");
        // The AuditLogs PIM-events query keeps the three PIM rows and the one with no readable
        // operation (which the parser reports).
        assert_eq!(by_label("pim-events"), 54, "{left_out:?}");
        reports.push(got);
    }
    let _ = std::fs::remove_dir_all(&base);

    let jane = |r: &serde_json::Value| -> serde_json::Value {
        r["activations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["principal"]["upn"] == "jane@contoso.com")
            .unwrap()
            .clone()
    };
    let j = jane(&reports[0]);
    let ops = j["activities"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{ops:#?}");
    // Both unreadable rows could be Jane's: they are named on her activation.
    let problems = j["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    let kim = reports[0]["activations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["principal"]["upn"] == "kim@contoso.com")
        .unwrap()
        .clone();
    assert_eq!(kim["activities"].as_array().unwrap().len(), 1);

    let problems = reports[0]["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["row"] == 56
            && p["message"].as_str().unwrap().contains("duplicates row 1 ")),
        "{problems:#?}"
    );

    // The same report from the CSV export, once folder and file names (and the report id,
    // which is derived from the folder) are set aside.
    let (json_dir, csv_dir) = (base.join("json"), base.join("csv"));
    let text = |r: &serde_json::Value| {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("report_id");
        r.to_string()
            .replace(
                &csv_dir.display().to_string(),
                &json_dir.display().to_string(),
            )
            .replace(".csv", ".json")
    };
    assert_eq!(text(&reports[0]), text(&reports[1]));
}
