//! The attacks of the hardening issue, repeated against a server with its
//! default limits, with what each cost the server: 20,000 upload session
//! POSTs by one editor (and another tenant's push meanwhile), 1,500
//! connections that never finish their headers, deep and wide 3 MiB
//! bodies, and 50 wrong passwords. Prints figures; asserts nothing timed.
//! Run with `--release` for real figures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use podspace_e2e::{unique, Api, Server, TinyImage};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    sessions: usize,
    #[arg(long, default_value_t = 1_500)]
    half_open: usize,
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn sessions(server: &Server, admin: &Api, n: usize) -> Result<()> {
    let (pa, pb) = (unique("atk"), unique("victim"));
    admin.new_project(&pa).await?;
    admin.new_project(&pb).await?;
    let user = unique("editor");
    let editor = admin.create_user(&user, "editor-password-1").await?;
    admin.grant(&pa, "edit", &user).await?;
    let token = editor.token.clone().context("token")?;
    let http = reqwest::Client::new();
    let pid = server.pid();
    let (rss0, fd0) = (proc_status_kib(pid, "VmRSS:"), open_fds(pid));
    let started = Instant::now();
    let (mut accepted, mut refused, mut other) = (0, 0, 0);
    for _ in 0..n {
        let r = http
            .post(format!(
                "http://{}/v2/{pa}/app/blobs/uploads/",
                server.registry
            ))
            .bearer_auth(&token)
            .send()
            .await?;
        match r.status().as_u16() {
            202 => accepted += 1,
            429 => refused += 1,
            _ => other += 1,
        }
    }
    let took = started.elapsed();
    let (rss1, fd1) = (proc_status_kib(pid, "VmRSS:"), open_fds(pid));
    println!(
        "upload sessions: {n} POSTs by one editor in {:.1} s: {accepted} accepted, {refused} refused with 429, {other} other",
        took.as_secs_f64()
    );
    println!(
        "  server: {fd0} → {fd1} open descriptors, RSS {:.1} → {:.1} MiB ({:.1} KiB per accepted session)",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        (rss1.saturating_sub(rss0)) as f64 / accepted.max(1) as f64
    );
    // Another tenant meanwhile: a blob and a manifest, and a password login.
    let admin_token = admin.token.clone().context("token")?;
    let image = TinyImage::default();
    let repo = format!("{pb}/app");
    let t = Instant::now();
    let blob = image
        .push_config(&http, &server.registry, &admin_token, &repo)
        .await?;
    let put = image
        .push_manifest(&http, &server.registry, &admin_token, &repo, "v1", 0)
        .await?
        .status();
    let push_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let login = Api::admin(&server.url).await.is_ok();
    println!(
        "  another tenant's push: blob {blob}, manifest {put} in {push_ms:.1} ms; a password login {} in {:.1} ms",
        if login { "succeeds" } else { "FAILS" },
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn half_open(server: &Server, n: usize) -> Result<()> {
    let addr = server.url.trim_start_matches("http://").to_string();
    let pid = server.pid();
    let fd0 = open_fds(pid);
    let mut held = Vec::with_capacity(n);
    let mut refused_at_once = 0;
    let started = Instant::now();
    for _ in 0..n {
        let mut s = TcpStream::connect(&addr)?;
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        held.push(s);
    }
    let fd1 = open_fds(pid);
    // Who is closed, and when.
    let mut closed_after = Vec::with_capacity(n);
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut buf = [0u8; 256];
        let mut first = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => first.extend_from_slice(&buf[..k]),
            }
        }
        if first.starts_with(b"HTTP/1.1 429") {
            refused_at_once += 1;
        }
        closed_after.push(started.elapsed());
    }
    let last = closed_after.iter().max().copied().unwrap_or_default();
    println!(
        "half-open connections: {n} opened; {refused_at_once} answered 429 at once; the server held {} descriptors more at the peak; all closed within {:.1} s",
        fd1.saturating_sub(fd0),
        last.as_secs_f64()
    );
    Ok(())
}

async fn bodies(server: &Server, admin: &Api) -> Result<()> {
    admin.new_project("bodies").await?;
    let path = "/apis/image.openshift.io/v1/namespaces/bodies/imagestreams";
    let three_mib = 3 * 1024 * 1024 - 4096;
    let shapes: Vec<(&str, &str, String)> = vec![
        (
            "YAML [ 100k deep",
            "application/yaml",
            format!("spec: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "YAML [ 200k deep",
            "application/yaml",
            format!("spec: {}{}\n", "[".repeat(200_000), "]".repeat(200_000)),
        ),
        (
            "YAML - - 1.5M deep",
            "application/yaml",
            "- ".repeat(three_mib / 2),
        ),
        (
            "JSON { 3 MiB deep",
            "application/json",
            format!(
                "{}1{}",
                "{\"a\":".repeat(three_mib / 12),
                "}".repeat(three_mib / 12)
            ),
        ),
        ("YAML 3 MiB wide map", "application/yaml", {
            let mut s =
                String::from("kind: ImageStream\nmetadata:\n  name: wide\n  annotations:\n");
            let mut i = 0;
            while s.len() < 200_000 {
                s.push_str(&format!("    k{i}: v\n"));
                i += 1;
            }
            s.push_str("spec:\n  tags:\n");
            while s.len() < three_mib {
                s.push_str(&format!("  - name: t{i}\n"));
                i += 1;
            }
            s
        }),
        ("JSON 3 MiB wide map", "application/json", {
            let tags: Vec<serde_json::Value> = (0..three_mib / 30)
                .map(|i| json!({"name": format!("t{i}")}))
                .collect();
            json!({"kind": "ImageStream", "metadata": {"name": "widejson"}, "spec": {"tags": tags}})
                .to_string()
        }),
        ("JSON 3 MiB flat list", "application/json", {
            let items = vec![json!("x".repeat(30)); three_mib / 34];
            json!({"kind": "ImageStream", "metadata": {"name": "flat"}, "spec": {"x": items}})
                .to_string()
        }),
    ];
    let server_pid = server.pid();
    for (name, ct, body) in shapes {
        let cpu0 = podspace_e2e::cpu_ticks(server_pid);
        let t = Instant::now();
        let r = admin
            .send(
                admin
                    .request(reqwest::Method::POST, path)
                    .header("content-type", ct)
                    .body(body.clone()),
            )
            .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let cpu = (podspace_e2e::cpu_ticks(server_pid) - cpu0) as f64 * 10.0;
        println!(
            "body {name:<22} {:>8} bytes: {} in {ms:.1} ms (server CPU {cpu:.0} ms)",
            body.len(),
            r.status
        );
    }
    Ok(())
}

async fn passwords(server: &Server, admin: &Api) -> Result<()> {
    let user = unique("victim");
    admin.create_user(&user, "the-real-password").await?;
    let http = reqwest::Client::new();
    let (mut wrong, mut throttled) = (0, 0);
    let t = Instant::now();
    for i in 0..50 {
        let r =
            podspace_e2e::password_login(&http, &server.url, &user, &format!("guess{i}")).await?;
        match r.status().as_u16() {
            401 => wrong += 1,
            429 => throttled += 1,
            _ => {}
        }
    }
    let took = t.elapsed();
    let elsewhere = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse()?))
        .build()?;
    let real = podspace_e2e::password_login(&elsewhere, &server.url, &user, "the-real-password")
        .await?
        .status();
    println!(
        "passwords: 50 wrong in {:.2} s: {wrong} checked (401), {throttled} refused unchecked (429); the real user from another address: {real}",
        took.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for real figures");
    }
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    println!("attack bench against a server with the default limits");
    sessions(&server, &admin, args.sessions).await?;
    half_open(&server, args.half_open)?;
    bodies(&server, &admin).await?;
    passwords(&server, &admin).await?;
    Ok(())
}
