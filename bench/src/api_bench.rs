//! API benchmark: creates, gets and lists objects over HTTP with 1 and 32
//! concurrent clients, on SQLite and (with --postgres or
//! PODSPACE_TEST_POSTGRES_URL) on PostgreSQL. Prints ops/s, p50/p99 and the
//! server's RSS. Build with --release: it starts the podspace binary next
//! to itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use podspace_e2e::{Api, Server};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// PostgreSQL server URL (a database of its own is created for the run)
    #[arg(long, env = "PODSPACE_TEST_POSTGRES_URL")]
    postgres: Option<String>,
    /// Seconds per measurement
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrency levels
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    clients: Vec<usize>,
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Get,
    List,
}

struct Figures {
    ops: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

const NS: &str = "bench";
const LIST_NS: &str = "bench-list";
const LIST_SIZE: usize = 50;

async fn measure(
    api: &Api,
    op: Op,
    clients: usize,
    seconds: u64,
    counter: Arc<AtomicUsize>,
) -> Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let existing = counter.load(Ordering::Relaxed).max(1);
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..clients {
        let api = api.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(16384);
            let mut errors = 0usize;
            let mut i = c;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match op {
                    Op::Create => {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let body = json!({"kind": "ImageStream", "metadata": {"name": format!("s{n}"), "labels": {"app": "bench"}}, "spec": {"tags": []}});
                        api.request(reqwest::Method::POST, &format!("/apis/image.openshift.io/v1/namespaces/{NS}/imagestreams"))
                            .json(&body)
                            .send()
                            .await
                            .map(|r| r.status() == 201)
                    }
                    Op::Get => {
                        i = (i * 7919 + 13) % existing;
                        match api
                            .request(reqwest::Method::GET, &format!("/apis/image.openshift.io/v1/namespaces/{NS}/imagestreams/s{i}"))
                            .send()
                            .await
                        {
                            Ok(r) => {
                                let ok = r.status() == 200;
                                r.bytes().await.map(|_| ok)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Op::List => match api
                        .request(reqwest::Method::GET, &format!("/apis/image.openshift.io/v1/namespaces/{LIST_NS}/imagestreams"))
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let ok = r.status() == 200;
                            r.bytes().await.map(|_| ok)
                        }
                        Err(e) => Err(e),
                    },
                };
                match ok {
                    Ok(true) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Figures {
        ops: all.len(),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    })
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn fresh_postgres_db(base: &str) -> Result<String> {
    let db = format!("podspace_bench_{}", std::process::id());
    let status = std::process::Command::new("psql")
        .arg(base)
        .args(["-qc", &format!("DROP DATABASE IF EXISTS {db}")])
        .status()
        .context("running psql")?;
    if !status.success() {
        bail!("psql could not reach {base}");
    }
    std::process::Command::new("psql")
        .arg(base)
        .args(["-qc", &format!("CREATE DATABASE {db}")])
        .status()?;
    let (prefix, _) = base.rsplit_once('/').context("database URL")?;
    Ok(format!("{prefix}/{db}"))
}

async fn run_backend(name: &str, extra: &[&str], args: &Args) -> Result<()> {
    let server = Server::start_with(extra)?;
    let admin = Api::admin(&server.url).await?;
    // One connection pool shared by all clients, as a real client library would.
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        ..admin
    };
    api.new_project(NS).await?;
    api.new_project(LIST_NS).await?;
    for i in 0..LIST_SIZE {
        api.post(
            &format!("/apis/image.openshift.io/v1/namespaces/{LIST_NS}/imagestreams"),
            &json!({"kind": "ImageStream", "metadata": {"name": format!("l{i}")}}),
        )
        .await?;
    }
    let counter = Arc::new(AtomicUsize::new(0));
    for &clients in &args.clients {
        for (label, op) in [
            ("create", Op::Create),
            ("get", Op::Get),
            (&format!("list({LIST_SIZE})"), Op::List),
        ] {
            let f = measure(&api, op, clients, args.seconds, counter.clone()).await?;
            println!(
                "{name:<10} {label:<10} {clients:>3} clients {:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
                f.ops as f64 / f.elapsed.as_secs_f64(),
                f.p50.as_secs_f64() * 1000.0,
                f.p99.as_secs_f64() * 1000.0,
                f.errors
            );
        }
    }
    println!(
        "{name:<10} server RSS after the run: {:.1} MiB (peak {:.1} MiB), {} objects created",
        rss_kib(server.pid(), "VmRSS:") as f64 / 1024.0,
        rss_kib(server.pid(), "VmHWM:") as f64 / 1024.0,
        counter.load(Ordering::Relaxed)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for real figures");
    }
    println!(
        "API benchmark: {} s per measurement, {} cores",
        args.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    run_backend("sqlite", &[], &args).await?;
    match &args.postgres {
        Some(base) => {
            let url = fresh_postgres_db(base)?;
            run_backend("postgres", &["--db", &url], &args).await?;
        }
        None => {
            println!("postgres   skipped: pass --postgres URL or set PODSPACE_TEST_POSTGRES_URL")
        }
    }
    Ok(())
}
