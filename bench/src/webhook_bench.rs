//! Webhook benchmark against a fresh server without build slots (builds
//! are only created): signed GitHub deliveries at a fixed rate spread over
//! `--configs` BuildConfigs with a Parallel run policy — delivery → Build
//! stored (the 200 answer carries it), p50/p99; then `--forged` deliveries
//! with a bad signature — none may build — and the server's CPU time per
//! forged delivery (utime + stime from /proc).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use podspace_e2e::{Api, Server};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Signed deliveries per second
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Seconds of signed deliveries
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// BuildConfigs the deliveries are spread over
    #[arg(long, default_value_t = 50)]
    configs: usize,
    /// Forged deliveries
    #[arg(long, default_value_t = 10_000)]
    forged: usize,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn body(n: usize) -> Vec<u8> {
    // Never the all-zero SHA of a deleted branch.
    let n = n + 1;
    serde_json::to_vec(
        &json!({"ref": "refs/heads/main", "after": format!("{n:040x}"),
        "head_commit": {"id": format!("{n:040x}"), "message": "bench",
                        "author": {"name": "Bench", "email": "bench@example.com"}}}),
    )
    .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Each config takes `rate / configs` deliveries a second: its bucket
    // must not be the limit being measured.
    let server = Server::start_with(&["--webhook-rate", "100", "--webhook-burst", "100"])?;
    let admin = Api::admin(&server.url).await?;
    let ns = "bench";
    admin.new_project(ns).await?;
    admin
        .post(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sig"},
                    "stringData": {"WebHookSignatureKey": "bench-signing-key"}}),
        )
        .await?;
    for i in 0..args.configs {
        let r = admin
            .post(&format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
                &json!({"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig",
                    "metadata": {"name": format!("app{i}")},
                    "spec": {"runPolicy": "Parallel",
                        "source": {"git": {"uri": "https://git.example.com/app.git", "ref": "main"}},
                        "strategy": {"type": "Docker", "dockerStrategy": {}},
                        "triggers": [{"type": "GitHub", "github": {"secret": "bench-url-secret",
                            "signatureSecretRef": {"name": "sig"}}}]}}))
            .await?;
        if r.status != 201 {
            bail!("bc: {}", r.text);
        }
    }
    let url = |i: usize| {
        format!("{}/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/app{}/webhooks/bench-url-secret/github",
            server.url, i % args.configs)
    };
    let http = reqwest::Client::new();
    let send = |i: usize, signature: String| {
        let http = http.clone();
        let u = url(i);
        let b = body(i);
        async move {
            let start = Instant::now();
            let r = http
                .post(u)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", format!("bench-{i}"))
                .header("x-hub-signature-256", signature)
                .body(b)
                .send()
                .await?;
            let code = r.status().as_u16();
            let text = r.text().await?;
            anyhow::Ok((code, start.elapsed().as_secs_f64() * 1000.0, text))
        }
    };

    // Signed deliveries at a fixed rate.
    let total = (args.rate * args.seconds) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let sig = podspace_webhooks_sign(&body(i));
        tasks.push(tokio::spawn(send(i, sig)));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        let (code, ms, text) = t.await??;
        if code != 200 || !text.contains("\"kind\":\"Build\"") {
            bail!("a signed delivery was answered {code}: {text}");
        }
        latencies.push(ms);
    }
    println!(
        "signed deliveries: {total} at {}/s over {} configs: delivery → Build stored p50 {:.2} ms, p99 {:.2} ms",
        args.rate, args.configs, percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99)
    );

    // Forged deliveries: a wrong signature, as fast as 8 clients go.
    let before_builds = builds(&admin, ns).await?;
    let pid = server.pid();
    // The signed phase leaves work behind (500 new builds for the
    // controllers): measure from when the server is quiet again.
    for _ in 0..40 {
        let t0 = podspace_e2e::cpu_ticks(pid);
        tokio::time::sleep(Duration::from_millis(250)).await;
        if podspace_e2e::cpu_ticks(pid) - t0 <= 1 {
            break;
        }
    }
    let cpu0 = podspace_e2e::cpu_ticks(pid);
    let start = Instant::now();
    let mut next = 0usize;
    while next < args.forged {
        let batch: Vec<_> = (next..(next + 8).min(args.forged))
            .map(|i| tokio::spawn(send(total + i, "sha256=00".into())))
            .collect();
        next += batch.len();
        for t in batch {
            let (code, _, _) = t.await??;
            if code != 401 {
                bail!("a forged delivery was answered {code}");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_ms = (podspace_e2e::cpu_ticks(pid) - cpu0) as f64 * 10.0;
    let after_builds = builds(&admin, ns).await?;
    println!(
        "forged deliveries: {} in {elapsed:.1} s, {} builds made, server CPU {:.3} ms per forged delivery",
        args.forged,
        after_builds - before_builds,
        cpu_ms / args.forged as f64
    );
    Ok(())
}

fn podspace_webhooks_sign(body: &[u8]) -> String {
    podspace_webhooks::signature::sign(b"bench-signing-key", body)
}

async fn builds(admin: &Api, ns: &str) -> Result<usize> {
    let r = admin
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds"
        ))
        .await?;
    Ok(r.body["items"].as_array().map_or(0, Vec::len))
}
