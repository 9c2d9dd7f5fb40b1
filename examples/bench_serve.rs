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
//! fresh scan cache), so the single analyst and the fifty each pay for their first scan.
//!
//! Target (issue 15, item 6): the p95 turn latency with 50 concurrent users at most 1.2x a
//! single user's. Then 500 sessions are opened (100 users, 5 each) and left idle, and again
//! after each ran `scan` and `what did 2 do`: the resident memory they add, per session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pim_agent::{ScanCache, SessionOptions};
use pim_core::{Auditor, KqlSource};
use pim_openai::ChatModel;
use pim_serve::{Agent, AuthConfig, EntraConfig, Limits, ServeConfig};
use pim_testkit::OidcFake;
use serde_json::{Value, json};
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
const SINGLE_ROUNDS: usize = 10;
const MANY_ROUNDS: usize = 3;
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

/// One signed-in analyst: their own HTTP client (connection) and token.
struct User {
    http: reqwest::Client,
    token: String,
    url: String,
}

impl User {
    fn new(bench: &Bench, server: &Server, n: usize) -> Result<Self, Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            token: bench.token(n),
            url: server.url.clone(),
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
        let body: Value = r.json().await?;
        Ok(body["id"].as_str().ok_or("no session id")?.to_owned())
    }

    /// One turn, timed from sending the request to having read the whole answer.
    async fn say(&self, id: &str, text: &str) -> Result<(Duration, Value), Error> {
        let start = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/sessions/{id}/messages", self.url))
            .bearer_auth(&self.token)
            .json(&json!({ "text": text }))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        let elapsed = start.elapsed();
        if status != 200 {
            return Err(format!("{text:?}: HTTP {status}: {body}").into());
        }
        let reply = body["reply"].as_str().unwrap_or_default();
        if reply.contains("could not") {
            return Err(format!("{text:?} failed: {reply}").into());
        }
        Ok((elapsed, body))
    }

    /// The whole script in a new session; every turn's latency.
    async fn converse(self) -> Result<Vec<Duration>, Error> {
        let id = self.open().await?;
        let mut turns = Vec::with_capacity(SCRIPT.len());
        for line in SCRIPT {
            let (latency, body) = self.say(&id, line).await?;
            if *line == "scan" && body["activations"].as_array().is_none_or(Vec::is_empty) {
                return Err("the scan listed no activations".into());
            }
            turns.push(latency);
        }
        Ok(turns)
    }
}

/// `users` analysts at once, each through the script on a fresh server; every turn's latency.
async fn round(bench: &Bench, users: usize) -> Result<Vec<Duration>, Error> {
    let server = bench.server(Limits::default()).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..users {
        tasks.spawn(User::new(bench, &server, n)?.converse());
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
    };

    println!(
        "conversation of {} turns over HTTP with Entra sign-in; {} ms per query, {} ms per model call",
        SCRIPT.len(),
        QUERY_LATENCY.as_millis(),
        MODEL_LATENCY.as_millis()
    );
    // Warm-up: key fetch, connection pools, the allocator's first arenas.
    round(&bench, 1).await?;

    let mut single = Vec::new();
    for _ in 0..SINGLE_ROUNDS {
        single.extend(round(&bench, 1).await?);
    }
    let mut many = Vec::new();
    for _ in 0..MANY_ROUNDS {
        many.extend(round(&bench, USERS).await?);
    }
    let (p50_1, p95_1) = percentiles(&single);
    let (p50_n, p95_n) = percentiles(&many);
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
