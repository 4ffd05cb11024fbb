//! Registry benchmark: push and pull over HTTP against our registry and
//! against Debian's docker-registry (CNCF distribution 2.8) on the same
//! kind of storage, with the same client, side by side. Prints ops/s, MB/s,
//! p50/p99 and each server's peak RSS. Run through scripts/bench-registry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;
use podspace_e2e::{Api, Server};
use serde_json::json;
use sha2::Digest;

#[derive(Parser)]
struct Args {
    /// Seconds for each read measurement
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Scale the push counts down (e.g. 0.1) for a quick run
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Only our registry (skip docker-registry)
    #[arg(long)]
    ours_only: bool,
}

/// Pushes in the docker way and counts the S3 requests each operation makes.
async fn s3_requests() -> Result<()> {
    let moto = podspace_e2e::Moto::start().await?;
    let args = moto.serve_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_with(&args)?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("bench").await?;
    let t = Target {
        name: "podspace-s3",
        base: format!("http://{}", server.registry),
        auth: Some(format!("Bearer {}", admin.token.clone().context("token")?)),
        pid: server.pid(),
        http: reqwest::Client::new(),
    };
    let count = |label: &str, ops: usize, before: usize| {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(300)));
        let n = moto.requests.load(Ordering::SeqCst) - before;
        println!(
            "{:<16} {label:<40} {:>6.2} S3 requests per operation ({n} for {ops})",
            t.name,
            n as f64 / ops as f64
        );
    };
    let before = moto.requests.load(Ordering::SeqCst);
    for i in 0..50u32 {
        let mut data = format!("small blob {i} ").into_bytes();
        data.resize(4096, b'.');
        t.push_blob("bench/s3", data).await?;
    }
    count("push of a 4 KiB blob (POST + PUT)", 50, before);
    // Chunked as docker sends a big layer: PATCH of 1 MiB pieces, then PUT.
    let before = moto.requests.load(Ordering::SeqCst);
    let mut digests = Vec::new();
    for i in 0..4u8 {
        let data: Vec<u8> = (0..(12 << 20))
            .map(|b: u32| (b as u8) ^ i.wrapping_mul(37))
            .collect();
        let digest = sha256(&data);
        let r = t
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/bench/s3/blobs/uploads/", t.base),
            )
            .send()
            .await?;
        let mut loc = format!("{}{}", t.base, r.headers()["location"].to_str()?);
        for chunk in data.chunks(1 << 20) {
            let r = t
                .req(reqwest::Method::PATCH, &loc)
                .body(chunk.to_vec())
                .send()
                .await?;
            loc = format!("{}{}", t.base, r.headers()["location"].to_str()?);
        }
        let r = t
            .req(reqwest::Method::PUT, &format!("{loc}?digest={digest}"))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("12 MiB push: {}", r.status());
        }
        digests.push(digest);
    }
    count("push of a 12 MiB blob (3 parts of 5 MiB)", 4, before);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    t.push_blob("bench/s3", config.clone()).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digests[0], "size": 12 << 20}],
    }))?;
    let r = t
        .req(
            reqwest::Method::PUT,
            &format!("{}/v2/bench/s3/manifests/v1", t.base),
        )
        .header("content-type", MANIFEST)
        .body(manifest)
        .send()
        .await?;
    if r.status() != 201 {
        bail!("manifest: {}", r.status());
    }
    t.req(
        reqwest::Method::GET,
        &format!("{}/v2/bench/s3/manifests/v1", t.base),
    )
    .send()
    .await?;
    let before = moto.requests.load(Ordering::SeqCst);
    for _ in 0..200 {
        t.req(
            reqwest::Method::GET,
            &format!("{}/v2/bench/s3/manifests/v1", t.base),
        )
        .header("accept", MANIFEST)
        .send()
        .await?
        .bytes()
        .await?;
    }
    count("manifest GET by tag (warm)", 200, before);
    let before = moto.requests.load(Ordering::SeqCst);
    for _ in 0..200 {
        t.req(
            reqwest::Method::HEAD,
            &format!("{}/v2/bench/s3/blobs/{}", t.base, digests[0]),
        )
        .send()
        .await?;
    }
    count("blob HEAD (warm)", 200, before);
    let before = moto.requests.load(Ordering::SeqCst);
    for _ in 0..10 {
        t.req(
            reqwest::Method::GET,
            &format!("{}/v2/bench/s3/blobs/{}", t.base, digests[1]),
        )
        .send()
        .await?
        .bytes()
        .await?;
    }
    count("blob GET of 12 MiB", 10, before);
    // The driver has no CopyObject or UploadPartCopy call at all.
    println!(
        "{:<16} server-side copies: none (the S3 driver never calls CopyObject)",
        t.name
    );
    Ok(())
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[derive(Clone)]
struct Target {
    name: &'static str,
    base: String,
    auth: Option<String>,
    pid: u32,
    http: reqwest::Client,
}

impl Target {
    fn req(&self, m: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(m, url);
        match &self.auth {
            Some(a) => rb.header("authorization", a),
            None => rb,
        }
    }

    /// POST a session, then PUT the whole blob with its digest: the flow
    /// docker uses for a blob it sends in one piece.
    async fn push_blob(&self, repo: &str, data: Vec<u8>) -> Result<()> {
        let digest = sha256(&data);
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await?;
        if r.status() != 202 {
            bail!("{}: POST upload {}", self.name, r.status());
        }
        let loc = r.headers()["location"].to_str()?.to_string();
        let url = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", self.base)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let r = self
            .req(reqwest::Method::PUT, &format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await?;
        if r.status() != 201 {
            bail!("{}: PUT blob {}", self.name, r.status());
        }
        Ok(())
    }
}

struct Figures {
    ops: usize,
    bytes: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

fn print(target: &str, label: &str, clients: usize, f: &Figures) {
    println!(
        "{target:<16} {label:<26} {clients:>3} clients {:>9.0} ops/s {:>9.1} MiB/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
        f.ops as f64 / f.elapsed.as_secs_f64(),
        f.bytes as f64 / (1 << 20) as f64 / f.elapsed.as_secs_f64(),
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0
    );
}

fn summarize(mut lat: Vec<Duration>, bytes: u64, elapsed: Duration) -> Figures {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        ops: lat.len(),
        bytes,
        elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

/// `count` pushes of `size` random-ish bytes at `clients` concurrency.
async fn pushes(
    t: &Target,
    repo: &str,
    count: usize,
    size: usize,
    clients: usize,
    seed: u64,
) -> Result<Figures> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (t, next, repo) = (t.clone(), next.clone(), repo.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let mut x = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let data: Vec<u8> = (0..size)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let t0 = Instant::now();
                t.push_blob(&repo, data).await?;
                lat.push(t0.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = start.elapsed();
    Ok(summarize(all, (count * size) as u64, elapsed))
}

/// Repeats `url` with `method` for `seconds` at `clients` concurrency.
async fn reads(
    t: &Target,
    method: reqwest::Method,
    url: &str,
    accept: Option<&str>,
    clients: usize,
    seconds: u64,
) -> Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (t, url, method, accept) = (
            t.clone(),
            url.to_string(),
            method.clone(),
            accept.map(str::to_string),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bytes = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let mut rb = t.req(method.clone(), &url);
                if let Some(a) = &accept {
                    rb = rb.header("accept", a);
                }
                let r = rb.send().await?;
                if !r.status().is_success() {
                    bail!("{}: {} {url}: {}", t.name, method, r.status());
                }
                bytes += r.bytes().await?.len() as u64;
                lat.push(t0.elapsed());
            }
            Ok::<_, anyhow::Error>((lat, bytes))
        }));
    }
    let mut all = Vec::new();
    let mut bytes = 0;
    for task in tasks {
        let (l, b) = task.await??;
        all.extend(l);
        bytes += b;
    }
    Ok(summarize(all, bytes, start.elapsed()))
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn run(t: &Target, args: &Args) -> Result<()> {
    let n = |c: usize| ((c as f64 * args.scale) as usize).max(1);
    print(
        t.name,
        "push 4 KiB blobs",
        16,
        &pushes(t, "bench/small", n(1000), 4 << 10, 16, 1).await?,
    );
    print(
        t.name,
        "push 1 MiB blobs",
        8,
        &pushes(t, "bench/medium", n(200), 1 << 20, 8, 2).await?,
    );
    print(
        t.name,
        "push 64 MiB blobs",
        4,
        &pushes(t, "bench/large", n(8), 64 << 20, 4, 3).await?,
    );

    // An image to read: config + a 1 MiB layer, tagged 1,500 times.
    let config = br#"{"architecture":"amd64","os":"linux","config":{}}"#.to_vec();
    let layer: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    t.push_blob("bench/read", config.clone()).await?;
    t.push_blob("bench/read", layer.clone()).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    }))?;
    let tags: Vec<String> = (0..1500).map(|i| format!("t{i:04}")).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (t, next, tags, manifest) = (t.clone(), next.clone(), tags.clone(), manifest.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tag) = tags.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let r = t
                    .req(
                        reqwest::Method::PUT,
                        &format!("{}/v2/bench/read/manifests/{tag}", t.base),
                    )
                    .header("content-type", MANIFEST)
                    .body(manifest.clone())
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("{}: PUT manifest {}", t.name, r.status());
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let s = args.seconds;
    let base = &t.base;
    print(
        t.name,
        "manifest GET by tag",
        32,
        &reads(
            t,
            reqwest::Method::GET,
            &format!("{base}/v2/bench/read/manifests/t0001"),
            Some(MANIFEST),
            32,
            s,
        )
        .await?,
    );
    print(
        t.name,
        "blob HEAD",
        32,
        &reads(
            t,
            reqwest::Method::HEAD,
            &format!("{base}/v2/bench/read/blobs/{}", sha256(&layer)),
            None,
            32,
            s,
        )
        .await?,
    );
    print(
        t.name,
        "blob GET 1 MiB",
        16,
        &reads(
            t,
            reqwest::Method::GET,
            &format!("{base}/v2/bench/read/blobs/{}", sha256(&layer)),
            None,
            16,
            s,
        )
        .await?,
    );
    print(
        t.name,
        "tags list (1,500 tags)",
        8,
        &reads(
            t,
            reqwest::Method::GET,
            &format!("{base}/v2/bench/read/tags/list"),
            None,
            8,
            s,
        )
        .await?,
    );
    println!("{:<16} peak RSS {:.1} MiB", t.name, peak_rss_mib(t.pid));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; use scripts/bench-registry for real figures");
    }
    println!("registry benchmark on {} cores; ours with a bearer token, verifying every digest and fsyncing every blob", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    s3_requests().await?;

    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("bench").await?;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("admin:{}", podspace_e2e::ADMIN_PASSWORD));
    let mut token_url = format!("{}/v2/token?service=podspace-registry", server.url);
    for repo in ["bench/small", "bench/medium", "bench/large", "bench/read"] {
        token_url.push_str(&format!("&scope=repository:{repo}:pull,push"));
    }
    let token: serde_json::Value = http
        .get(&token_url)
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await?
        .json()
        .await?;
    let ours = Target {
        name: "podspace",
        base: format!("http://{}", server.registry),
        auth: Some(format!(
            "Bearer {}",
            token["token"].as_str().context("no token")?
        )),
        pid: server.pid(),
        http: http.clone(),
    };
    run(&ours, &args).await?;
    drop(server);

    if !args.ours_only {
        let d = podspace_e2e::Distribution::start().await?;
        let theirs = Target {
            name: "distribution-2.8",
            base: format!("http://{}", d.addr),
            auth: None,
            pid: d.child.id(),
            http,
        };
        run(&theirs, &args).await?;
    }
    Ok(())
}
