//! Where the supergraph comes from, and hot reload: the source is polled, and a changed
//! supergraph that loads is swapped in atomically. Requests in flight finish on the
//! supergraph they started with; a supergraph that fails to load is logged and ignored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::gateway::{Gateway, Limits, Supergraph};
use crate::subgraph::SubgraphClients;

/// Where a supergraph SDL is read from.
#[derive(Clone, Debug)]
pub enum SupergraphSource {
    /// A local file.
    File(PathBuf),
    /// An `http(s)://` URL answering the SDL as the body.
    Url(String),
}

impl SupergraphSource {
    /// A URL source for `http(s)://…`, a file source otherwise.
    pub fn parse(raw: &str) -> Self {
        if raw.starts_with("http://") || raw.starts_with("https://") {
            Self::Url(raw.to_owned())
        } else {
            Self::File(PathBuf::from(raw))
        }
    }

    /// Reads the SDL.
    pub async fn read(&self, http: &reqwest::Client) -> Result<String, String> {
        match self {
            Self::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("reading {}: {e}", path.display())),
            Self::Url(url) => {
                let response = http
                    .get(url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| format!("fetching {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("fetching {url}: HTTP {}", response.status()));
                }
                response
                    .text()
                    .await
                    .map_err(|e| format!("fetching {url}: {e}"))
            }
        }
    }
}

/// Makes the subgraph clients for a newly loaded supergraph (its URLs may have changed).
pub type ClientsFor = Arc<dyn Fn(&Supergraph) -> Result<SubgraphClients, String> + Send + Sync>;

/// Polls `source` every `interval` and swaps in each changed supergraph that loads, with
/// clients made by `clients_for`.
pub fn watch(
    gateway: Arc<Gateway>,
    source: SupergraphSource,
    http: reqwest::Client,
    interval: Duration,
    clients_for: ClientsFor,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let sdl = match source.read(&http).await {
                Ok(sdl) => sdl,
                Err(err) => {
                    tracing::warn!(error = %err, "supergraph source unreadable; keeping the current one");
                    continue;
                }
            };
            if sdl == gateway.current().supergraph.sdl {
                continue;
            }
            let limits: Limits = gateway.limits().clone();
            // Loading plans nothing yet but builds the planner graph: keep it off the reactor.
            let loaded = tokio::task::spawn_blocking(move || Supergraph::load(&sdl, &limits)).await;
            match loaded {
                Ok(Ok(supergraph)) => match clients_for(&supergraph) {
                    Ok(clients) => {
                        gateway.replace(supergraph, clients);
                        tracing::info!("supergraph reloaded");
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "no clients for the changed supergraph; keeping the current one");
                    }
                },
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "changed supergraph does not load; keeping the current one");
                }
                Err(err) => tracing::error!(error = %err, "supergraph loading task failed"),
            }
        }
    })
}
