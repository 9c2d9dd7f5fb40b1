//! Pipeline benchmark: 5,000 activations and 500,000 AzureActivity rows, parsing included.
//!
//! ```sh
//! cargo run --release -p pim-examples --example bench_pipeline            # generate, then measure
//! cargo run --release -p pim-examples --example bench_pipeline -- --rows 100000 --activations 1000 --runs 3
//! ```
//!
//! The export is generated once into a temporary folder (query API response shape, realistic
//! columns, a few hundred bytes a row). The measured run happens in a child process so that the
//! peak memory it reports (`VmHWM`) is the pipeline's alone, not the generator's. Targets:
//! under 2 s wall and under 1 GB peak memory on a 2-core machine.

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
    let rows = value("--rows", 500_000)?;
    let activations = value("--activations", 5_000)?;
    let dir = std::env::temp_dir().join(format!("pim-bench-{activations}-{rows}"));
    if !dir.join("AzureActivity.json").exists() {
        let t = Instant::now();
        std::fs::create_dir_all(&dir)?;
        generate(&dir, activations, rows)?;
        eprintln!(
            "generated {} in {:.1} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(dir.join("AzureActivity.json"))?.len();
    println!(
        "export: {} activations, {} AzureActivity rows, {:.1} MB",
        activations,
        rows,
        size as f64 / 1e6
    );
    // Measured runs, each a fresh process; the first also pays for reading the export into the
    // page cache when it is not there yet.
    let runs = value("--runs", 5)?;
    let mut walls = Vec::with_capacity(runs);
    let mut peaks = Vec::with_capacity(runs);
    for run in 1..=runs {
        let out = Command::new(std::env::current_exe()?)
            .arg("--measure")
            .arg(&dir)
            .output()?;
        if !out.status.success() {
            return Err(
                format!("run {run} failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("run {run}: {line}");
        let field = |name: &str| -> Option<f64> {
            line.split(", ")
                .find_map(|part| part.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        walls.extend(field("wall "));
        peaks.extend(field("peak RSS "));
    }
    walls.sort_by(f64::total_cmp);
    peaks.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (walls.first(), walls.last()) {
        println!(
            "wall over {} runs: min {min:.3} s, median {:.3} s, max {max:.3} s; peak RSS max {:.0} MB (targets: < 2 s, < 1024 MB)",
            walls.len(),
            walls[walls.len() / 2],
            peaks.last().copied().unwrap_or(0.0)
        );
    }
    Ok(())
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

fn generate(dir: &Path, activations: usize, rows: usize) -> Result<(), Box<dyn std::error::Error>> {
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
        let provider = op.split('/').next().unwrap_or("Microsoft.Resources");
        let rg = format!("rg-app-{:03}", rng.below(400));
        let resource = format!(
            "/subscriptions/{sub}/resourcegroups/{rg}/providers/{}/res{:05}",
            op.rsplit_once('/')
                .map_or(op, |(head, _)| head)
                .to_lowercase(),
            rng.below(100_000)
        );
        let statuses: &[(&str, &str, i64)] = if written + 1 < rows {
            &[("Start", "", 0), ("Success", "OK", 7)]
        } else {
            &[("Success", "OK", 0)]
        };
        for (status, sub_status, offset) in statuses {
            line.clear();
            let claims = format!(
                "{{\\\"http://schemas.microsoft.com/identity/claims/objectidentifier\\\":\\\"{oid}\\\",\\\"ipaddr\\\":\\\"198.51.100.7\\\"}}"
            );
            write!(
                line,
                r#"["{}","{caller}","198.51.100.7","{op}","{status}","{sub_status}","Administrative","{provider}","{rg}","{sub}","{resource}","op-{op_index}","{claims}"]"#,
                iso(time + Duration::seconds(*offset)),
            )?;
            if written > 0 {
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
