use std::sync::Arc;
use std::time::Duration;

use pim_agent::{ScanCache, SessionOptions};
use pim_core::Auditor;
use pim_serve::{Agent, AuthConfig, EntraConfig, Limits, ServeConfig};
use pim_testkit::OidcFake;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const AUDIENCE: &str = "api://pim-test";
pub const ROLE: &str = "PIM.Auditor";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A server on 127.0.0.1 that stops when dropped.
pub struct Server {
    pub url: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _task: JoinHandle<pim_serve::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The demo tenant's agent, without a model.
pub fn agent() -> Agent {
    let source = pim_core::demo_source().unwrap();
    Agent {
        auditor: Arc::new(Auditor::builder(source.clone()).build()),
        options: SessionOptions {
            end: source.info().default_end,
            ..SessionOptions::default()
        },
        source,
        model: None,
        scans: Arc::new(ScanCache::new(Duration::from_secs(60))),
        clock: Arc::new(time::OffsetDateTime::now_utc),
    }
}

pub async fn start(auth: AuthConfig, limits: Limits) -> Server {
    start_with(auth, limits, agent()).await
}

pub async fn start_with(auth: AuthConfig, limits: Limits, agent: Agent) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServeConfig { auth, limits };
    let task = tokio::spawn(pim_serve::serve(listener, config, agent, async {
        stopped.await.ok();
    }));
    Server {
        url,
        http: reqwest::Client::new(),
        stop: Some(stop),
        _task: task,
    }
}

pub fn entra(fake: &OidcFake) -> AuthConfig {
    AuthConfig::Entra(EntraConfig::new(
        fake.authority(),
        vec![AUDIENCE.to_owned()],
        ROLE,
    ))
}

/// A server signing in with `fake`'s tokens.
pub async fn entra_server(fake: &OidcFake, limits: Limits) -> Server {
    start(entra(fake), limits).await
}

/// A good token for user `oid`.
pub fn token(fake: &OidcFake, oid: &str) -> String {
    fake.mint(&fake.claims(AUDIENCE, oid, ROLE))
}

impl Server {
    pub async fn create(&self, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/sessions", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn session(&self, token: &str) -> String {
        let r = self.create(token).await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn say(&self, token: &str, id: &str, text: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/sessions/{id}/messages", self.url))
            .bearer_auth(token)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}
