//! The processes under test: five `portal serve <subgraph>` and two `portal serve gateway`
//! (field-level authorization on, and off for comparison),
//! each on its own local port, killed when the cluster is dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, portal_binary, wait_healthy};

/// The internal token secret shared by the benchmark's processes.
pub const SECRET: &str = "benchmark-secret-benchmark-secret-benchmark";

const SUBGRAPHS: [&str; 5] = [
    "identity",
    "accounts",
    "reports",
    "messages",
    "integrations",
];

/// The running processes.
pub struct Cluster {
    children: Vec<Child>,
    gateway_pid: u32,
    /// The gateway's GraphQL URL (field-level authorization on, as by default).
    pub gateway_url: String,
    /// A second gateway over the same subgraphs with field-level authorization off.
    pub open_gateway_url: String,
    /// The accounts subgraph's GraphQL URL (for the direct baseline).
    pub accounts_url: String,
    /// Time from spawning the gateway to its first healthy answer.
    pub gateway_startup: Duration,
    /// The job worker's process id (when started).
    pub worker_pid: Option<u32>,
}

/// What [`Cluster::start_full`] starts besides the subgraphs and the gateway.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// A second gateway with field-level authorization off.
    pub open_gateway: bool,
    /// A job worker process (`serve worker`).
    pub worker: bool,
    /// Environment for every process.
    pub envs: Vec<(String, String)>,
}

/// Spawns `portal <args>` over `database_url` with the benchmark's secret, quiet logs to
/// `log`, and the extra environment `envs`.
fn spawn(
    binary: &Path,
    args: &[&str],
    database_url: &str,
    envs: &[(String, String)],
    log: std::fs::File,
) -> anyhow::Result<Child> {
    Ok(Command::new(binary)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("PORTAL_INTERNAL_TOKEN_SECRET", SECRET)
        .env("PORTAL_DATA_KEY", SECRET)
        .env("PORTAL_PUBLIC_URL", "http://127.0.0.1:4000")
        .env("RUST_LOG", "warn")
        // Load generators are one client address hammering on purpose.
        .env("PORTAL_RATE_LIMITS", "off")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

impl Cluster {
    /// Starts the subgraphs, then the gateways, over `database_url`; logs go to `workdir`.
    pub async fn start(workdir: &Path, database_url: &str) -> anyhow::Result<Self> {
        Self::start_with(workdir, database_url, true).await
    }

    /// [`Cluster::start`], with the second gateway (authorization off) only when `open`.
    pub async fn start_with(
        workdir: &Path,
        database_url: &str,
        open: bool,
    ) -> anyhow::Result<Self> {
        let extras = Extras {
            open_gateway: open,
            ..Extras::default()
        };
        Self::start_full(workdir, database_url, &extras).await
    }

    /// Starts the subgraphs, the gateway and `extras` over `database_url`.
    pub async fn start_full(
        workdir: &Path,
        database_url: &str,
        extras: &Extras,
    ) -> anyhow::Result<Self> {
        let open = extras.open_gateway;
        // The gateway's port is chosen first: the subgraphs and the worker reach the
        // gateway too (report runs read through it as their owners).
        let port = free_port()?;
        let mut common = extras.envs.clone();
        common.push((
            "PORTAL_GATEWAY_URL".into(),
            format!("http://127.0.0.1:{port}/graphql"),
        ));
        let common = &common;
        let binary = portal_binary()?;
        let mut children = Vec::new();
        let mut subgraph_urls = Vec::new();
        let mut accounts_url = String::new();
        for name in SUBGRAPHS {
            let port = free_port()?;
            let log = std::fs::File::create(workdir.join(format!("{name}.log")))?;
            let listen = format!("127.0.0.1:{port}");
            children.push(spawn(
                &binary,
                &["serve", name, "--listen", &listen],
                database_url,
                common,
                log,
            )?);
            let url = format!("http://127.0.0.1:{port}/graphql");
            wait_healthy(&url.replace("/graphql", "/health"), Duration::from_secs(30)).await?;
            if name == "accounts" {
                accounts_url = url.clone();
            }
            subgraph_urls.push((format!("PORTAL_SUBGRAPH_{}_URL", name.to_uppercase()), url));
        }
        let open_port = free_port()?;
        if open {
            let mut open_envs = subgraph_urls.clone();
            open_envs.extend(common.iter().cloned());
            open_envs.push(("PORTAL_AUTHORIZATION".into(), "off".into()));
            let open_listen = format!("127.0.0.1:{open_port}");
            children.push(spawn(
                &binary,
                &["serve", "gateway", "--demo", "--listen", &open_listen],
                database_url,
                &open_envs,
                std::fs::File::create(workdir.join("gateway-open.log"))?,
            )?);
        }
        let mut worker_pid = None;
        if extras.worker {
            let port = free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let child = spawn(
                &binary,
                &["serve", "worker", "--listen", &listen],
                database_url,
                common,
                std::fs::File::create(workdir.join("worker.log"))?,
            )?;
            worker_pid = Some(child.id());
            children.push(child);
            wait_healthy(
                &format!("http://127.0.0.1:{port}/health"),
                Duration::from_secs(30),
            )
            .await?;
        }
        let listen = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let mut gateway_envs = subgraph_urls.clone();
        gateway_envs.extend(common.iter().cloned());
        let child = spawn(
            &binary,
            &["serve", "gateway", "--demo", "--listen", &listen],
            database_url,
            &gateway_envs,
            std::fs::File::create(workdir.join("gateway.log"))?,
        )?;
        let gateway_pid = child.id();
        children.push(child);
        let mut cluster = Self {
            children,
            gateway_pid,
            gateway_url: format!("http://127.0.0.1:{port}/graphql"),
            open_gateway_url: format!("http://127.0.0.1:{open_port}/graphql"),
            accounts_url,
            gateway_startup: Duration::ZERO,
            worker_pid,
        };
        wait_healthy(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_secs(30),
        )
        .await?;
        cluster.gateway_startup = started.elapsed();
        if open {
            wait_healthy(
                &format!("http://127.0.0.1:{open_port}/health"),
                Duration::from_secs(30),
            )
            .await?;
        }
        Ok(cluster)
    }

    /// The gateway's process id.
    pub fn gateway_pid(&self) -> u32 {
        self.gateway_pid
    }

    /// The gateway process's peak resident set size (Linux `VmHWM`), in MiB.
    pub fn gateway_peak_rss_mib(&self) -> Option<f64> {
        crate::memory_kib(self.gateway_pid, "VmHWM:").map(|kib| kib as f64 / 1024.0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
