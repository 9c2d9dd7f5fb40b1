//! `pim-chat serve` under load: 50 analysts signed in at once, each holding a conversation
//! over HTTP, compared with one analyst alone; then the memory an idle session costs.
//!
//! ```sh
//! cargo run --release -p pim-examples --example bench_serve
//! ```
//!
//! The server is `pim_serve::serve` in this process on 127.0.0.1, with Entra ID sign-in
//! against pim-testkit's fake authority (every user its own RS256 token, sent as
//! `Authorization: Bearer` by its own HTTP client, so every request is validated), over the
//! demo tenant served by the Log Analytics fake (200 ms per query) and the OpenAI fake (300 ms
//! per model call), as `bench_chat` does without HTTP. Every round starts a fresh server (a
//! fresh scan cache), so the single analyst and the fifty each pay for their first scan;
//! single-user and fifty-user rounds alternate. A turn is timed from sending the message to
//! having read and checked the whole answer (a scan's is about 4 MB: every operation of every
//! activation, as in the JSON report). It prints the p95 of each line of the script, and the
//! CPU the fifty-user rounds used.
//!
//! Target (issue 15, item 6): the p95 turn latency with 50 concurrent users at most 1.2x a
//! single user's. Then 500 sessions are opened (100 users, 5 each) and left idle, and again
//! after each ran `scan` and `what did 2 do`: the resident memory they add, per session.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pim_agent::{ScanCache, SessionOptions};
use pim_core::{Auditor, KqlSource};
use pim_openai::ChatModel;
use pim_serve::{Agent, AuthConfig, EntraConfig, Limits, ServeConfig};
use pim_testkit::OidcFake;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

#[path = "support/chat_fakes.rs"]
mod chat_fakes;
use chat_fakes::ChatFakes;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error + Send + Sync>;

const END: OffsetDateTime = datetime!(2026-11-20 18:00 UTC);
const USERS: usize = 50;
/// A multiple of `MANY_ROUNDS`: the two kinds of round alternate.
const SINGLE_ROUNDS: usize = 20;
const MANY_ROUNDS: usize = 5;
const IDLE_USERS: usize = 100;
const IDLE_PER_USER: usize = 5;
const QUERY_LATENCY: Duration = Duration::from_millis(200);
const MODEL_LATENCY: Duration = Duration::from_millis(300);
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const AUDIENCE: &str = "api://pim-bench";
const ROLE: &str = "PIM.Auditor";

/// One analyst's conversation, as in `bench_chat`: a scan, follow-ups with ordinals and
/// pronouns, a free-form question (model-written KQL, checked, run, answered in words), and
/// an assessment.
const SCRIPT: &[&str] = &[
    "scan",
    "what did 2 do",
    "does their activity align with the reason?",
    "which users deleted resources yesterday?",
    "assess the second one",
];

/// What every round's server is built from.
struct Bench {
    oidc: OidcFake,
    auditor: Arc<Auditor>,
    source: Arc<dyn KqlSource>,
    model: Arc<dyn ChatModel>,
    known: Arc<KnownScan>,
}

/// A server on loopback that stops when dropped.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<pim_serve::Result<()>>,
}

impl Server {
    async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

impl Bench {
    async fn server(&self, limits: Limits) -> Result<Server, Error> {
        let agent = Agent {
            auditor: self.auditor.clone(),
            source: self.source.clone(),
            model: Some(self.model.clone()),
            options: SessionOptions {
                end: Some(END),
                ..SessionOptions::default()
            },
            scans: Arc::new(ScanCache::new(Duration::from_secs(60))),
            clock: Arc::new(OffsetDateTime::now_utc),
        };
        let config = ServeConfig {
            auth: AuthConfig::Entra(EntraConfig::new(
                self.oidc.authority(),
                vec![AUDIENCE.to_owned()],
                ROLE,
            )),
            limits,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(pim_serve::serve(listener, config, agent, async {
            stopped.await.ok();
        }));
        Ok(Server {
            url,
            stop: Some(stop),
            task,
        })
    }

    fn token(&self, user: usize) -> String {
        self.oidc.mint(
            &self
                .oidc
                .claims(AUDIENCE, &format!("analyst-{user:04}"), ROLE),
        )
    }
}

/// What a turn's answer must hold, parsed: the reply, and the activations after a scan (each
/// one read through and checked as JSON, not kept).
#[derive(serde::Deserialize)]
struct Parsed {
    reply: String,
    #[serde(default)]
    activations: Option<Vec<serde::de::IgnoredAny>>,
}

/// One turn's answer: its size, the reply and how many activations it listed.
#[derive(Clone)]
struct Turn {
    bytes: usize,
    reply: String,
    activations: Option<usize>,
}

/// The first `scan` answer, parsed in full and checked. Every scan of the demo tenant at the
/// same end time answers the same bytes, so later answers are compared with it byte for byte
/// (a stronger check than parsing, at a fraction of the CPU: fifty clients parsing 4 MB each
/// on the server's own two cores would measure the clients). An answer that differs is
/// parsed in full.
#[derive(Default)]
struct KnownScan {
    answer: std::sync::OnceLock<(Vec<u8>, Turn)>,
    parsed_in_full: std::sync::atomic::AtomicUsize,
    compared: std::sync::atomic::AtomicUsize,
}

/// One signed-in analyst: their own HTTP client (connection) and token.
struct User {
    http: reqwest::Client,
    token: String,
    url: String,
    known: Arc<KnownScan>,
}

impl User {
    fn new(bench: &Bench, server: &Server, n: usize) -> Result<Self, Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            token: bench.token(n),
            url: server.url.clone(),
            known: bench.known.clone(),
        })
    }

    async fn open(&self) -> Result<String, Error> {
        let r = self
            .http
            .post(format!("{}/api/sessions", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if r.status() != 201 {
            return Err(format!("opening a session: HTTP {}", r.status()).into());
        }
        let body: serde_json::Value = r.json().await?;
        Ok(body["id"].as_str().ok_or("no session id")?.to_owned())
    }

    /// One turn, timed from sending the request to having read and checked the whole answer.
    async fn say(&self, id: &str, text: &str) -> Result<(Duration, Turn), Error> {
        let start = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/sessions/{id}/messages", self.url))
            .bearer_auth(&self.token)
            .json(&json!({ "text": text }))
            .send()
            .await?;
        let status = r.status();
        // Every answer is checked: a scan's compared with the first one as it arrives
        // (`KnownScan`), any other parsed into the fields the script needs (never a `Value`
        // tree of every operation).
        let known = (text == "scan" && status == 200)
            .then(|| self.known.answer.get())
            .flatten();
        let (same, bytes) = read_comparing(r, known.map(|(first, _)| &first[..])).await?;
        if status != 200 {
            return Err(format!(
                "{text:?}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
            .into());
        }
        let turn = match known {
            Some((_, turn)) if same => {
                self.known.compared.fetch_add(1, Ordering::Relaxed);
                turn.clone()
            }
            _ => {
                let parsed: Parsed = serde_json::from_slice(&bytes)?;
                let turn = Turn {
                    bytes: bytes.len(),
                    reply: parsed.reply,
                    activations: parsed.activations.map(|a| a.len()),
                };
                if text == "scan" {
                    self.known.parsed_in_full.fetch_add(1, Ordering::Relaxed);
                    let _ = self.known.answer.set((bytes, turn.clone()));
                }
                turn
            }
        };
        let elapsed = start.elapsed();
        if turn.reply.contains("could not") {
            return Err(format!("{text:?} failed: {}", turn.reply).into());
        }
        Ok((elapsed, turn))
    }

    /// The whole script in a new session; every turn's latency and answer size.
    async fn converse(self) -> Result<Vec<(Duration, usize)>, Error> {
        let id = self.open().await?;
        let mut turns = Vec::with_capacity(SCRIPT.len());
        for line in SCRIPT {
            let (latency, body) = self.say(&id, line).await?;
            if *line == "scan" && body.activations.is_none_or(|n| n == 0) {
                return Err("the scan listed no activations".into());
            }
            turns.push((latency, body.bytes));
        }
        Ok(turns)
    }
}

/// Reads the whole body of `r`. With `expected`, compares it chunk by chunk as it arrives and
/// keeps nothing while it matches: `(true, empty)` when the body is exactly `expected`;
/// otherwise `(false, the whole body)`.
async fn read_comparing(
    mut r: reqwest::Response,
    expected: Option<&[u8]>,
) -> Result<(bool, Vec<u8>), Error> {
    let mut matched = expected.map(|_| 0usize);
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        if let (Some(at), Some(expected)) = (matched, expected) {
            if expected.get(at..at + chunk.len()) == Some(&chunk[..]) {
                matched = Some(at + chunk.len());
                continue;
            }
            // Different: keep what matched so far and everything from here on.
            body.extend_from_slice(&expected[..at]);
            matched = None;
        }
        body.extend_from_slice(&chunk);
    }
    match (matched, expected) {
        (Some(at), Some(expected)) if at == expected.len() => Ok((true, body)),
        (Some(at), Some(expected)) => Ok((false, expected[..at].to_vec())),
        _ => Ok((false, body)),
    }
}

/// `users` analysts at once, each through the script on a fresh server; every turn's latency
/// and answer size, each conversation's in script order.
async fn round(bench: &Bench, users: usize) -> Result<Vec<(Duration, usize)>, Error> {
    let server = bench.server(Limits::default()).await?;
    // Every user's token is minted (an RSA signature each) before the first one starts.
    let users = (0..users)
        .map(|n| User::new(bench, &server, n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tasks = tokio::task::JoinSet::new();
    for user in users {
        tasks.spawn(user.converse());
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    server.stop().await?;
    Ok(latencies)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let (audit, activity) = pim_testkit::demo_tables().await?;
    let ChatFakes {
        la,
        oai,
        source,
        model,
    } = chat_fakes::start(audit, activity, QUERY_LATENCY, MODEL_LATENCY).await?;
    let bench = Bench {
        oidc: OidcFake::start(TENANT).await,
        auditor: Arc::new(Auditor::builder(source.clone()).build()),
        source,
        model,
        known: Arc::default(),
    };

    println!(
        "conversation of {} turns over HTTP with Entra sign-in; {} ms per query, {} ms per model call",
        SCRIPT.len(),
        QUERY_LATENCY.as_millis(),
        MODEL_LATENCY.as_millis()
    );
    // Warm-up: key fetch, connection pools, the allocator's first arenas.
    round(&bench, 1).await?;

    // Single-user and fifty-user rounds take turns, so a change in the machine's load
    // during the run weighs on both sides of the ratio alike.
    let mut single = Vec::new();
    let mut many = Vec::new();
    let (mut many_wall, mut many_cpu) = (Duration::ZERO, 0.0);
    for _ in 0..MANY_ROUNDS {
        for _ in 0..SINGLE_ROUNDS / MANY_ROUNDS {
            single.extend(round(&bench, 1).await?);
        }
        let (cpu, started) = (cpu_seconds()?, Instant::now());
        many.extend(round(&bench, USERS).await?);
        many_wall += started.elapsed();
        many_cpu += cpu_seconds()? - cpu;
    }
    let latencies = |all: &[(Duration, usize)]| all.iter().map(|t| t.0).collect::<Vec<_>>();
    let (p50_1, p95_1) = percentiles(&latencies(&single));
    let (p50_n, p95_n) = percentiles(&latencies(&many));
    println!(
        "1 user: {} turns in {SINGLE_ROUNDS} rounds, p50 {p50_1:.0} ms, p95 {p95_1:.0} ms",
        single.len()
    );
    println!(
        "{USERS} concurrent users: {} turns in {MANY_ROUNDS} rounds, p50 {p50_n:.0} ms, p95 {p95_n:.0} ms; p95 ratio {:.3} (target <= 1.2)",
        many.len(),
        p95_n / p95_1
    );
    let ratio = p95_n / p95_1;
    println!(
        "the {MANY_ROUNDS} rounds of {USERS} users: wall {:.2} s, CPU {many_cpu:.2} s (server, fakes and clients together, on {} cores)",
        many_wall.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    // Each conversation's turns come back in script order, so turn `i` of every conversation
    // is every `SCRIPT.len()`-th latency.
    for (i, line) in SCRIPT.iter().enumerate() {
        let of = |all: &[(Duration, usize)]| {
            let mine: Vec<(Duration, usize)> =
                all.iter().skip(i).step_by(SCRIPT.len()).copied().collect();
            let largest = mine.iter().map(|t| t.1).max().unwrap_or(0);
            (percentiles(&latencies(&mine)).1, largest)
        };
        let ((one, size), (fifty, _)) = (of(&single), of(&many));
        println!(
            "  {line:?} (answers up to {:.1} KiB): p95 1 user {one:.0} ms, {USERS} users {fifty:.0} ms",
            size as f64 / 1024.0
        );
    }

    println!(
        "scan answers checked: {} parsed in full, {} identical byte for byte to the first",
        bench.known.parsed_in_full.load(Ordering::Relaxed),
        bench.known.compared.load(Ordering::Relaxed)
    );

    idle_sessions(&bench).await?;
    println!(
        "queries served: {}, model calls served: {}",
        la.requests().len(),
        oai.calls().len()
    );
    if ratio > 1.2 {
        return Err(format!("p95 ratio {ratio:.3} is above the target 1.2").into());
    }
    Ok(())
}

/// Opens `IDLE_USERS * IDLE_PER_USER` sessions and measures the resident memory they add,
/// fresh and after a short conversation each.
async fn idle_sessions(bench: &Bench) -> Result<(), Error> {
    let sessions = IDLE_USERS * IDLE_PER_USER;
    let server = bench
        .server(Limits {
            sessions_per_user: IDLE_PER_USER,
            max_sessions: sessions + 1,
            ..Limits::default()
        })
        .await?;
    let users = (0..IDLE_USERS)
        .map(|n| User::new(bench, &server, 10_000 + n))
        .collect::<Result<Vec<_>, _>>()?;
    // Every client's connection and the scan the conversations share exist before the first
    // reading, so the differences are the sessions' own.
    let warm = users[0].open().await?;
    users[0].say(&warm, "scan").await?;
    for user in &users[1..] {
        let r = user
            .http
            .get(format!("{}/healthz", user.url))
            .send()
            .await?;
        if r.status() != 200 {
            return Err("healthz failed".into());
        }
    }
    let before = rss_bytes()?;
    let mut ids = Vec::with_capacity(sessions);
    for user in &users {
        let mine = if std::ptr::eq(user, &users[0]) {
            IDLE_PER_USER - 1
        } else {
            IDLE_PER_USER
        };
        for _ in 0..mine {
            ids.push((user, user.open().await?));
        }
    }
    let opened = rss_bytes()?;
    for (user, id) in &ids {
        user.say(id, "scan").await?;
        user.say(id, "what did 2 do").await?;
    }
    let used = rss_bytes()?;
    let n = ids.len() as f64;
    println!(
        "idle sessions: {} opened, resident memory +{:.1} KiB per session; after `scan` and `what did 2 do` in each, +{:.1} KiB per session (RSS {:.1} -> {:.1} -> {:.1} MiB)",
        ids.len(),
        opened.saturating_sub(before) as f64 / n / 1024.0,
        used.saturating_sub(before) as f64 / n / 1024.0,
        before as f64 / 1048576.0,
        opened as f64 / 1048576.0,
        used as f64 / 1048576.0,
    );
    server.stop().await?;
    Ok(())
}

/// This process's resident set, from `/proc/self/status` (Linux).
fn rss_bytes() -> Result<u64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

fn percentiles(latencies: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.95))
}

/// The CPU time this process has used, user and system, from `/proc/self/stat` (Linux; in
/// clock ticks of 1/100 s).
fn cpu_seconds() -> Result<f64, Error> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').ok_or("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime), counted after the command name.
    let ticks = |i: usize| -> Result<f64, Error> {
        Ok(f.get(i).ok_or("short /proc/self/stat")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
