//! Times [`RulesEngine::assess`] on a load shaped like the pipeline benchmark: 5,000 activations
//! with 224,000 correlated Azure operations in total (about 45 each, a dozen distinct operation
//! names in mixed case, VM-style resource ids, ticket-prefixed and content-free justifications).
//!
//! Run with `cargo run --release -p pim-rules --example assess_bench`. Besides the time it prints
//! a digest of every assessment, so two builds can be checked for identical results.

use std::fmt::Write as _;
use std::time::Instant;

use pim_domain::{
    Activation, Activity, ActivitySource, ActivityStatus, ElevationWindow, EndReason, Principal,
    Role, RoleKind, Scope,
};
use pim_rules::{Case, RulesConfig, RulesEngine};
use time::{Duration, macros::datetime};

const ACTIVATIONS: usize = 5_000;
const OPERATIONS: usize = 224_000;

/// The operation names seen in the benchmark, with the case variations the log really has.
const OPERATION_NAMES: [&str; 12] = [
    "Microsoft.Compute/virtualMachines/restart/action",
    "MICROSOFT.COMPUTE/VIRTUALMACHINES/RESTART/ACTION",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/deallocate/action",
    "Microsoft.Resources/deployments/write",
    "Microsoft.Web/sites/restart/action",
    "Microsoft.Resources/tags/write",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "Microsoft.Network/networkSecurityGroups/securityRules/write",
    "Microsoft.Authorization/roleAssignments/write",
];

/// A small deterministic generator (64-bit LCG), so every run builds the same load.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        // n is small; the modulo bias does not matter for a benchmark.
        (self.next() % n as u64) as usize
    }
}

fn guid(rng: &mut Lcg) -> String {
    let a = rng.next();
    let b = rng.next();
    let c = rng.next();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a & 0xffff_ffff,
        b & 0xffff,
        (b >> 16) & 0xffff,
        c & 0xffff,
        (c << 16 | a >> 16) & 0xffff_ffff_ffff
    )
}

/// How many operations each activation gets: 30 to 59, then nudged so the total is exact.
fn counts(rng: &mut Lcg) -> Vec<usize> {
    let mut counts: Vec<usize> = (0..ACTIVATIONS).map(|_| 30 + rng.below(30)).collect();
    let mut total: usize = counts.iter().sum();
    let mut i = 0;
    while total != OPERATIONS {
        if total < OPERATIONS {
            counts[i] += 1;
            total += 1;
        } else if counts[i] > 1 {
            counts[i] -= 1;
            total -= 1;
        }
        i = (i + 1) % ACTIVATIONS;
    }
    counts
}

fn build() -> Vec<(Activation, Vec<Activity>)> {
    let mut rng = Lcg(0x5eed_0fa5_5e55);
    let start = datetime!(2026-11-20 08:00 UTC);
    counts(&mut rng)
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let subscription = guid(&mut rng);
            let group = format!("rg-app-{:03}", rng.below(200));
            let ticket = format!("{}{}", if i % 2 == 0 { "INC" } else { "CHG" }, 1_000_000 + i);
            let (justification, tickets) = match i % 3 {
                0 => {
                    // Half name the group the work happened in, half another one.
                    let named = if rng.below(2) == 0 {
                        group.clone()
                    } else {
                        format!("rg-app-{:03}", rng.below(200))
                    };
                    (
                        format!("{ticket} restart the stuck VM in {named}"),
                        vec![ticket],
                    )
                }
                1 => (
                    format!("{ticket} deploy release of the web app"),
                    vec![ticket],
                ),
                _ => ("work".to_owned(), vec![]),
            };
            let upn = format!("user{:04}@contoso.com", i % 700);
            let activated_at = start + Duration::minutes(i as i64);
            let activation = Activation {
                id: format!("PIM_{i}"),
                activated_at,
                principal: Principal {
                    upn: Some(upn.clone()),
                    ..Principal::default()
                },
                role: Role {
                    name: "Contributor".into(),
                    id: None,
                    kind: RoleKind::AzureResource,
                },
                scope: Scope::unknown(),
                justification,
                tickets,
                ticket_info: None,
                ticket_checks: Vec::new(),
                window: ElevationWindow {
                    start: activated_at,
                    end: activated_at + Duration::hours(4),
                    end_reason: EndReason::Expired,
                    scheduled_end: None,
                    assumed: false,
                },
                request_id: None,
                correlation_id: None,
                problems: vec![],
            };
            let activities = (0..n)
                .map(|k| {
                    let operation = OPERATION_NAMES[rng.below(OPERATION_NAMES.len())];
                    let resource = rng.below(12);
                    Activity {
                        time: activated_at + Duration::seconds(rng.below(14_400) as i64),
                        operation: operation.into(),
                        status: if k % 17 == 0 {
                            ActivityStatus::Failed
                        } else {
                            ActivityStatus::Succeeded
                        },
                        resource_id: Some(format!(
                            "/subscriptions/{subscription}/resourcegroups/{group}/providers/microsoft.compute/virtualmachines/res{:05}",
                            (i * 7 + resource) % 100_000
                        ).into()),
                        resource_group: Some(group.clone().into()),
                        subscription_id: Some(subscription.clone().into()),
                        provider: Some("Microsoft.Compute".into()),
                        source: ActivitySource::AzureActivity,
                        caller: Some(upn.clone().into()),
                        caller_object_id: None,
                        correlation_id: Some(guid(&mut rng).into()),
                        targets: vec![],
                    }
                })
                .collect();
            (activation, activities)
        })
        .collect()
}

/// FNV-1a over the debug form of every assessment: equal digests mean equal results.
fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() {
    // An optional argument repeats the timed run (e.g. for a profiler); the first result is kept.
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1)
        .max(1);
    let load = build();
    let operations: usize = load.iter().map(|(_, a)| a.len()).sum();
    let engine = RulesEngine::new(RulesConfig::default());

    let mut first = None;
    for _ in 0..rounds {
        let started = Instant::now();
        let assessments: Vec<_> = load
            .iter()
            .map(|(activation, activities)| {
                engine.assess(&Case {
                    activation,
                    activities,
                    activity_total: activities.len(),
                    truncated: false,
                    unassessable: None,
                    unreadable: &[],
                    baseline: None,
                })
            })
            .collect();
        let elapsed = started.elapsed();
        println!(
            "assessed {} activations / {operations} operations in {:.3} s",
            assessments.len(),
            elapsed.as_secs_f64(),
        );
        first.get_or_insert(assessments);
    }

    let mut text = String::new();
    for a in first.iter().flatten() {
        let _ = write!(text, "{a:?}");
    }
    println!("results digest {:016x}", digest(&text));
}
