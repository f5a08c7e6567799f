//! `portal-bench`: a rerunnable load benchmark of the gateway.
//!
//! Starts the five subgraphs and the gateway as separate `portal` processes over a seeded
//! SQLite database, then drives each scenario of a fixed query mix with a closed-loop load
//! generator (N connections, each sending its next request when the previous answers) and
//! prints throughput, latency percentiles, errors and the gateway's peak RSS. The
//! single-subgraph query is also sent straight to its subgraph in the same run, so the
//! gateway's overhead is a ratio measured on the same machine at the same time.
//!
//! Run it with `bash bench/run.sh` (builds in release first); see bench/README.md.

mod load;
mod seed;

use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::load::{Scenario, Target};

/// Load benchmark of the Portal gateway.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Concurrent connections (each a closed loop of requests).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Open loop: total requests per second to offer (spread over the connections); 0
    /// means closed loop (each connection sends as fast as it is answered).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of measurement per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up per scenario (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Extra demo accounts to seed (the 100-entity scenario needs at least 100).
    #[arg(long, default_value_t = 150)]
    accounts: usize,
    /// Directory for the benchmark's database and logs (a temporary one by default).
    #[arg(long)]
    workdir: Option<std::path::PathBuf>,
    /// Closed loop: after the scenarios, measure the single-subgraph query direct and
    /// through the gateway in this many alternating pairs of short runs, so that a
    /// machine whose speed drifts during the run affects both sides alike (0: skip).
    #[arg(long, default_value_t = 5)]
    pairs: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let args = Args::parse();
    let workdir = match &args.workdir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("portal-bench-{}", uuid::Uuid::now_v7())),
    };
    std::fs::create_dir_all(&workdir)?;
    let database_url = format!("sqlite://{}?mode=rwc", workdir.join("bench.db").display());

    println!("# Portal gateway benchmark");
    println!("machine: {} cores, {}", cores(), os());
    let mode = if args.rate > 0.0 {
        format!("open loop at {:.0} req/s", args.rate)
    } else {
        "closed loop".to_owned()
    };
    println!(
        "{} connections, {mode}, {} s per scenario after {} s warm-up\n",
        args.concurrency, args.duration, args.warmup
    );
    let demo = seed::prepare(&database_url, args.accounts).await?;
    let cluster = portal_bench::processes::Cluster::start(&workdir, &database_url).await?;
    println!(
        "gateway ready {:.0} ms after its process started\n",
        cluster.gateway_startup.as_secs_f64() * 1000.0
    );

    let headers = vec![
        ("x-portal-tenant-id".to_owned(), demo.tenant_id.to_string()),
        ("x-portal-user-id".to_owned(), demo.user_id.to_string()),
        ("x-portal-roles".to_owned(), "customer_user".to_owned()),
    ];
    let single = json!({ "query": "{ accounts(first: 10) { edges { node { number name balance currency } } } }" });
    let join = json!({ "query": "{ me { displayName email accounts { edges { node { number balance reports { edges { node { name format } } } } } } } }" });
    let list = json!({ "query": "{ accounts(first: 100) { edges { node { number balance owner { displayName email } } } } }" });
    let scenarios = [
        Scenario {
            name: "single subgraph, direct to accounts",
            target: Target::direct(&cluster.accounts_url, &demo),
            bodies: vec![single.clone()],
        },
        Scenario {
            name: "single subgraph, through the gateway",
            target: Target::gateway(&cluster.gateway_url, headers.clone()),
            bodies: vec![single.clone()],
        },
        Scenario {
            name: "3-subgraph entity join (identity > accounts > reports)",
            target: Target::gateway(&cluster.gateway_url, headers.clone()),
            bodies: vec![join.clone()],
        },
        Scenario {
            name: "100 accounts, each joined to its owner (accounts > identity)",
            target: Target::gateway(&cluster.gateway_url, headers.clone()),
            bodies: vec![list.clone()],
        },
        Scenario {
            name: "the mix: the three gateway queries in turn",
            target: Target::gateway(&cluster.gateway_url, headers.clone()),
            bodies: vec![single.clone(), join.clone(), list.clone()],
        },
        Scenario {
            name: "the mix with field-level authorization off",
            target: Target::gateway(&cluster.open_gateway_url, headers.clone()),
            bodies: vec![single, join, list],
        },
    ];

    let mut results = Vec::new();
    for scenario in &scenarios {
        let result = load::run(
            scenario,
            args.concurrency,
            args.rate,
            Duration::from_secs(args.warmup),
            Duration::from_secs(args.duration),
        )
        .await?;
        println!("{}", result.line());
        results.push(result);
    }
    let rss = cluster.gateway_peak_rss_mib();
    println!();
    if let [.., with, without] = results.as_slice() {
        let ratio = with.rps / without.rps;
        println!(
            "field-level authorization: the mix runs at {:.1}% of its throughput without it (cost {:.1}%)",
            ratio * 100.0,
            (1.0 - ratio) * 100.0
        );
    }
    if let ([direct, through, ..], true) = (results.as_slice(), args.rate <= 0.0) {
        let ratio = through.rps / direct.rps;
        println!(
            "gateway throughput on the single-subgraph query: {:.1}% of direct (overhead {:.1}%)",
            ratio * 100.0,
            (1.0 - ratio) * 100.0
        );
    }
    if args.rate <= 0.0 && args.pairs > 0 {
        let (direct, through) = (&scenarios[0], &scenarios[1]);
        let half = Duration::from_secs(args.duration.div_ceil(2).max(2));
        let warm = Duration::from_secs(1);
        let mut ratios = Vec::new();
        for _ in 0..args.pairs {
            let d = load::run(direct, args.concurrency, 0.0, warm, half).await?;
            let g = load::run(through, args.concurrency, 0.0, warm, half).await?;
            ratios.push(g.rps / d.rps);
        }
        ratios.sort_by(f64::total_cmp);
        let middle = ratios.len() / 2;
        let median = if ratios.len() % 2 == 0 {
            (ratios[middle - 1] + ratios[middle]) / 2.0
        } else {
            ratios[middle]
        };
        let shown: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.1}%", r * 100.0))
            .collect();
        println!(
            "  in {} alternating pairs: median {:.1}% of direct (overhead {:.1}%); pairs: {}",
            args.pairs,
            median * 100.0,
            (1.0 - median) * 100.0,
            shown.join(" ")
        );
    }
    match rss {
        Some(mib) => println!("gateway peak RSS: {mib:.1} MiB"),
        None => println!("gateway peak RSS: unavailable"),
    }
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    println!("errors across all scenarios: {errors}");
    drop(cluster);
    if args.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn os() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}
