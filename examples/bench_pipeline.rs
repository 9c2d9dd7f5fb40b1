//! Pipeline benchmark: 5,000 activations and 500,000 AzureActivity rows, parsing included.
//!
//! ```sh
//! cargo run --release -p pim-examples --example bench_pipeline            # generate, then measure
//! cargo run --release -p pim-examples --example bench_pipeline -- --rows 100000 --activations 1000 --runs 3
//! cargo run --release -p pim-examples --example bench_pipeline -- --size 2.5GB --runs 3
//! ```
//!
//! The export is generated once into a temporary folder (query API response shape, realistic
//! columns, a few hundred bytes a row). The measured run happens in a child process so that the
//! peak memory it reports (`VmHWM`) is the pipeline's alone, not the generator's. Targets:
//! at most 3x the parse floor and at most 400 MB peak memory on a 2-core machine.
//!
//! The parse floor is measured in the same run, alternating with the pipeline: a child process
//! that reads both export files and parses them with serde_json while keeping nothing
//! (`IgnoredAny`), the least any reader of these files can do.
//!
//! `--size` pads `AzureActivity.json` to that size (`2.5GB`, `800MB`) with rows the scan does not
//! need: the month before the scan day, by the elevated users and by other callers, as an export
//! of a month scanned for its last day would hold. The activations and the scan day's rows stay
//! as without it, so the report is the same and only the file grows. That export is written to a
//! temporary folder and deleted after the runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pim_core::{Auditor, ScanOptions, export_source};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// The same allocator as the pim-batch binary, so the figures are the shipped binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);

/// `2.5GB`, `800MB`, `1GiB`, or plain bytes.
fn parse_size(text: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let (number, unit) = [
        ("GIB", 1u64 << 30),
        ("MIB", 1 << 20),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, unit)| {
        upper
            .strip_suffix(suffix)
            .map(|n| (n.trim().to_owned(), *unit))
    })
    .unwrap_or((upper.clone(), 1));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("--size {text:?}: expected e.g. 2.5GB"))?;
    Ok((n * unit as f64) as u64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        match args.iter().position(|a| a == flag) {
            Some(i) => Ok(args
                .get(i + 1)
                .ok_or(format!("{flag} needs a value"))?
                .parse()?),
            None => Ok(default),
        }
    };
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let dir = PathBuf::from(args.get(i + 1).ok_or("--measure needs a folder")?);
        return measure(&dir);
    }
    if let Some(i) = args.iter().position(|a| a == "--floor") {
        let dir = PathBuf::from(args.get(i + 1).ok_or("--floor needs a folder")?);
        return floor(&dir);
    }
    let rows = value("--rows", 500_000)?;
    let activations = value("--activations", 5_000)?;
    let size = match args.iter().position(|a| a == "--size") {
        Some(i) => Some(parse_size(args.get(i + 1).ok_or("--size needs a value")?)?),
        None => None,
    };
    let dir = match size {
        None => std::env::temp_dir().join(format!("pim-bench-{activations}-{rows}")),
        Some(bytes) => std::env::temp_dir().join(format!(
            "pim-bench-{activations}-{rows}-{bytes}-{}",
            std::process::id()
        )),
    };
    if !dir.join("AzureActivity.json").exists() {
        let t = Instant::now();
        std::fs::create_dir_all(&dir)?;
        generate(&dir, activations, rows, size.unwrap_or(0))?;
        eprintln!(
            "generated {} in {:.1} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let runs = value("--runs", 5)?;
    let result = bench(&dir, activations, rows, runs);
    if size.is_some() {
        // A padded export is gigabytes: never leave it behind.
        std::fs::remove_dir_all(&dir)?;
    }
    result
}

fn bench(
    dir: &Path,
    activations: usize,
    rows: usize,
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let size = std::fs::metadata(dir.join("AzureActivity.json"))?.len();
    let total = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>();
    println!(
        "export: {} activations, {} AzureActivity rows in the scan day, AzureActivity.json {:.1} MB, both files {:.1} MB",
        activations,
        rows,
        size as f64 / 1e6,
        total as f64 / 1e6
    );
    // Measured runs, each a fresh process, alternating with the parse floor so that both see
    // the same machine load; the first also pays for reading the export into the page cache
    // when it is not there yet.
    let mut walls = Vec::with_capacity(runs);
    let mut peaks = Vec::with_capacity(runs);
    let mut floors = Vec::with_capacity(runs);
    for run in 1..=runs {
        let line = child("--measure", dir, run)?;
        print!("run {run}: {line}");
        walls.extend(field(&line, "wall "));
        peaks.extend(field(&line, "peak RSS "));
        let line = child("--floor", dir, run)?;
        print!("floor {run}: {line}");
        floors.extend(field(&line, "wall "));
    }
    walls.sort_by(f64::total_cmp);
    peaks.sort_by(f64::total_cmp);
    floors.sort_by(f64::total_cmp);
    if let (Some(min), Some(max), Some(floor)) =
        (walls.first(), walls.last(), floors.get(floors.len() / 2))
    {
        let median = walls[walls.len() / 2];
        println!(
            "wall over {} runs: min {min:.3} s, median {median:.3} s, max {max:.3} s; parse floor median {floor:.3} s; ratio {:.2} (target <= 3); peak RSS max {:.0} MB (target <= 400 MB)",
            walls.len(),
            median / floor,
            peaks.last().copied().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// Runs this binary in `mode` on `dir` and returns its one line of figures.
fn child(mode: &str, dir: &Path, run: usize) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new(std::env::current_exe()?)
        .arg(mode)
        .arg(dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{mode} run {run} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn field(line: &str, name: &str) -> Option<f64> {
    line.split(", ")
        .find_map(|part| part.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One measured pipeline run: open the export, scan, count. Prints one line of figures.
fn measure(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PIM_BENCH_STAGES").is_some() {
        // Stage timings from pim-core's debug logs, on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "pim_core=debug,pim_loganalytics=debug",
            ))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let source = export_source(dir)?;
    let auditor = Auditor::builder(source).build();
    let report = runtime.block_on(auditor.scan(&ScanOptions::new(END), END))?;
    let elapsed = start.elapsed();
    let peak_kb = peak_rss_kb().unwrap_or(0);
    let correlated: usize = report.activations.iter().map(|a| a.activities.len()).sum();
    println!(
        "wall {:.3} s, peak RSS {:.0} MB, activations {}, correlated operations {}, findings {}, problems {}",
        elapsed.as_secs_f64(),
        peak_kb as f64 / 1024.0,
        report.summary.activations,
        correlated,
        report.summary.findings,
        report.summary.problems
    );
    Ok(())
}

/// The parse floor: read both export files and parse them with serde_json, keeping nothing.
/// Prints one line of figures.
fn floor(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut bytes_read = 0u64;
    for name in ["AuditLogs.json", "AzureActivity.json"] {
        let bytes = std::fs::read(dir.join(name))?;
        bytes_read += bytes.len() as u64;
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)?;
    }
    let elapsed = start.elapsed();
    println!(
        "wall {:.3} s, peak RSS {:.0} MB, read and parsed {:.1} MB",
        elapsed.as_secs_f64(),
        peak_rss_kb().unwrap_or(0) as f64 / 1024.0,
        bytes_read as f64 / 1e6
    );
    Ok(())
}

/// Peak resident set size of this process (Linux `VmHWM`), in kB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const OPERATIONS: &[&str] = &[
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/restart/action",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Resources/deployments/write",
    "Microsoft.Web/sites/write",
    "Microsoft.Resources/tags/write",
    "Microsoft.KeyVault/vaults/secrets/read",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Sql/servers/databases/write",
];

const JUSTIFICATIONS: &[&str] = &[
    "INC{n} restart the stuck VM in {rg}",
    "CHG{n} deploy release of the web app",
    "CHG{n} update storage account firewall rules",
    "INC{n} investigate failed deployment",
    "work",
    "CHG{n} scale out sql database for month end",
];

fn iso(t: OffsetDateTime) -> String {
    pim_core::domain::timestamp::format_utc(t)
}

fn generate(
    dir: &Path,
    activations: usize,
    rows: usize,
    size: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let users = (activations / 2).max(1);
    let sub = "11111111-2222-4333-8444-555555555555";
    let day_start = END - Duration::hours(24);

    // AuditLogs: one completed activation row per activation.
    let mut audit = String::with_capacity(activations * 1200);
    audit.push_str(r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"OperationName","type":"string"},{"name":"Category","type":"string"},{"name":"LoggedByService","type":"string"},{"name":"Result","type":"string"},{"name":"ResultReason","type":"string"},{"name":"CorrelationId","type":"string"},{"name":"Id","type":"string"},{"name":"InitiatedBy","type":"dynamic"},{"name":"TargetResources","type":"dynamic"},{"name":"AdditionalDetails","type":"dynamic"}],"rows":["#);
    let mut windows = Vec::with_capacity(activations);
    for i in 0..activations {
        let user = i % users;
        let start = day_start + Duration::seconds(rng.below(20 * 3600) as i64);
        let end = start + Duration::minutes(60 + rng.below(180) as i64);
        windows.push((user, start, end));
        let rg = format!("rg-app-{:03}", user % 400);
        let just = JUSTIFICATIONS[i % JUSTIFICATIONS.len()]
            .replace("{n}", &format!("{:07}", 1_000_000 + i))
            .replace("{rg}", &rg);
        let upn = format!("user{user:05}@contoso-bench.com");
        let oid = format!("00000000-0000-4000-8000-{user:012}");
        let initiated = serde_json::json!({"user": {"id": oid, "userPrincipalName": upn, "displayName": format!("User {user}")}}).to_string();
        let targets = serde_json::json!([
            {"type": "Role", "displayName": "Contributor", "id": "b24988ac-6180-42a0-ab88-20f7382dd24c"},
            {"type": "User", "displayName": format!("User {user}"), "id": oid, "userPrincipalName": upn},
            {"type": "Subscription", "displayName": "Bench-Sub", "id": format!("/subscriptions/{sub}")}
        ])
        .to_string();
        let details = serde_json::json!([
            {"key": "StartTime", "value": iso(start)},
            {"key": "ExpirationTime", "value": iso(end)},
            {"key": "Justification", "value": just}
        ])
        .to_string();
        let row = serde_json::json!([
            iso(start),
            "Add member to role completed (PIM activation)",
            "ResourceManagement",
            "PIM",
            "success",
            just,
            format!("corr-{i}"),
            format!("PIM_bench_{i}"),
            initiated,
            targets,
            details
        ]);
        if i > 0 {
            audit.push(',');
        }
        audit.push_str(&row.to_string());
    }
    audit.push_str("]}]}");
    std::fs::write(dir.join("AuditLogs.json"), audit)?;

    // AzureActivity: most rows inside some activation's window (Start + Success pairs), the
    // rest from identities that were not elevated.
    let file = std::fs::File::create(dir.join("AzureActivity.json"))?;
    let mut out = std::io::BufWriter::new(file);
    out.write_all(br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},{"name":"CallerIpAddress","type":"string"},{"name":"OperationNameValue","type":"string"},{"name":"ActivityStatusValue","type":"string"},{"name":"ActivitySubstatusValue","type":"string"},{"name":"CategoryValue","type":"string"},{"name":"ResourceProviderValue","type":"string"},{"name":"ResourceGroup","type":"string"},{"name":"SubscriptionId","type":"string"},{"name":"_ResourceId","type":"string"},{"name":"CorrelationId","type":"string"},{"name":"Claims_d","type":"dynamic"}],"rows":["#)?;
    let mut line = String::with_capacity(512);
    let mut written = 0usize;
    let mut op_index = 0usize;
    // With --size: the month before the scan day first, as a month's export is ordered, until
    // the file will reach the size once the scan day's rows (about 500 bytes each) are added.
    let day_bytes = rows as u64 * 500;
    let mut bytes = 0u64;
    let month = Duration::days(30);
    // Its own generator, so the scan day's rows are the same with and without padding.
    let mut pad = Rng(0x2545_f491_4f6c_dd1d);
    while bytes + day_bytes < size {
        let rng = &mut pad;
        let user = rng.below(users as u64);
        let (caller, oid) = if rng.below(2) == 0 {
            (
                format!("user{user:05}@contoso-bench.com"),
                format!("00000000-0000-4000-8000-{user:012}"),
            )
        } else {
            let other = rng.below(50_000);
            (
                format!("svc{other:05}@contoso-bench.com"),
                format!("00000000-0000-4000-9000-{other:012}"),
            )
        };
        // Before the scan day and the lookback: no window can hold these.
        let time = day_start
            - Duration::days(2)
            - Duration::seconds(rng.below(month.whole_seconds() as u64) as i64);
        let op = OPERATIONS[rng.below(OPERATIONS.len() as u64) as usize];
        let (rg, resource) = resource_of(op, sub, rng);
        line.clear();
        write_row(
            &mut line, time, &caller, &oid, op, "Success", "OK", &rg, &resource, op_index, sub,
        )?;
        if op_index > 0 {
            out.write_all(b",")?;
        }
        out.write_all(line.as_bytes())?;
        bytes += line.len() as u64 + 1;
        op_index += 1;
    }
    let padded = op_index > 0;
    while written < rows {
        let elevated = rng.below(10) < 8;
        let (caller, oid, time) = if elevated {
            let (user, start, end) = windows[rng.below(windows.len() as u64) as usize];
            let span = (end - start).whole_seconds().max(1) as u64;
            (
                format!("user{user:05}@contoso-bench.com"),
                format!("00000000-0000-4000-8000-{user:012}"),
                start + Duration::seconds(rng.below(span) as i64),
            )
        } else {
            let other = rng.below(50_000);
            (
                format!("svc{other:05}@contoso-bench.com"),
                format!("00000000-0000-4000-9000-{other:012}"),
                day_start + Duration::seconds(rng.below(24 * 3600) as i64),
            )
        };
        let op = OPERATIONS[rng.below(OPERATIONS.len() as u64) as usize];
        let statuses: &[(&str, &str, i64)] = if written + 1 < rows {
            &[("Start", "", 0), ("Success", "OK", 7)]
        } else {
            &[("Success", "OK", 0)]
        };
        let (rg, resource) = resource_of(op, sub, &mut rng);
        for (status, sub_status, offset) in statuses {
            line.clear();
            write_row(
                &mut line,
                time + Duration::seconds(*offset),
                &caller,
                &oid,
                op,
                status,
                sub_status,
                &rg,
                &resource,
                op_index,
                sub,
            )?;
            if written > 0 || padded {
                out.write_all(b",")?;
            }
            out.write_all(line.as_bytes())?;
            written += 1;
        }
        op_index += 1;
    }
    out.write_all(b"]}]}")?;
    out.flush()?;
    Ok(())
}

/// A random resource group and resource for `op`.
fn resource_of(op: &str, sub: &str, rng: &mut Rng) -> (String, String) {
    let rg = format!("rg-app-{:03}", rng.below(400));
    let resource = format!(
        "/subscriptions/{sub}/resourcegroups/{rg}/providers/{}/res{:05}",
        op.rsplit_once('/')
            .map_or(op, |(head, _)| head)
            .to_lowercase(),
        rng.below(100_000)
    );
    (rg, resource)
}

/// One AzureActivity row in the projected columns.
#[allow(clippy::too_many_arguments)]
fn write_row(
    line: &mut String,
    time: OffsetDateTime,
    caller: &str,
    oid: &str,
    op: &str,
    status: &str,
    sub_status: &str,
    rg: &str,
    resource: &str,
    op_index: usize,
    sub: &str,
) -> std::fmt::Result {
    let provider = op.split('/').next().unwrap_or("Microsoft.Resources");
    let claims = format!(
        "{{\\\"http://schemas.microsoft.com/identity/claims/objectidentifier\\\":\\\"{oid}\\\",\\\"ipaddr\\\":\\\"198.51.100.7\\\"}}"
    );
    write!(
        line,
        r#"["{}","{caller}","198.51.100.7","{op}","{status}","{sub_status}","Administrative","{provider}","{rg}","{sub}","{resource}","op-{op_index}","{claims}"]"#,
        iso(time),
    )
}
