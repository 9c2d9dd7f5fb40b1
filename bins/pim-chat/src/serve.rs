//! `pim-chat serve`: wiring only. The settings' `PIM_SERVE_*` part becomes a
//! `pim_serve::ServeConfig`; the source, model and auditor `live::connect` built become the
//! shared `pim_serve::Agent`; `pim_serve::serve` does the rest until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pim_agent::{ScanCache, SessionOptions};
use pim_core::config::Settings;
use pim_core::{Auditor, KqlSource};
use pim_serve::{Agent, ServeConfig};

/// How long a finished scan is shared with the sessions that ask for the same window.
const SCAN_CACHE_TTL: Duration = Duration::from_secs(60);

pub fn run(
    settings: &Settings,
    source: Arc<dyn KqlSource>,
    model: Option<Arc<dyn pim_serve::ChatModel>>,
    auditor: Arc<Auditor>,
    options: SessionOptions,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let config = ServeConfig::from_settings(&settings.serve).context("configuration")?;
    let agent = Agent {
        auditor,
        source,
        model,
        options,
        scans: Arc::new(ScanCache::new(SCAN_CACHE_TTL)),
        clock: Arc::new(time::OffsetDateTime::now_utc),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        eprintln!(
            "pim-chat serve: listening on http://{}",
            listener.local_addr()?
        );
        pim_serve::serve(listener, config, agent, shutdown())
            .await
            .context("serving")
    })
}

/// Ctrl-C, or SIGTERM (what a container platform sends to stop a replica).
async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
