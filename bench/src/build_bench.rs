//! Build benchmarks on the real engine.
//!
//! 1. Latency: `instantiate` → `Complete` for a small Dockerfile (FROM a base
//!    in our registry, COPY, RUN echo), against `docker build` + `docker
//!    push` of the same context run by hand, alternately, each run with a
//!    fresh RUN line so that neither side hits the cache.
//! 2. Throughput: N builds of a trivial Dockerfile on the embedded node's
//!    slots; every build must complete, each leased exactly once.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use podspace_e2e::{unique, Api, DockerCli, Psc, Server, ADMIN_PASSWORD, DOCKER};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 7)]
    runs: usize,
    #[arg(long, default_value_t = 200)]
    builds: usize,
    #[arg(long, default_value_t = 2)]
    slots: usize,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn phase_of(admin: &Api, ns: &str, name: &str) -> Result<Value> {
    Ok(admin
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds/{name}"
        ))
        .await?
        .body)
}

async fn instantiate(admin: &Api, ns: &str, bc: &str) -> Result<String> {
    let r = admin
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{bc}/instantiate"),
            &json!({"kind": "BuildRequest", "metadata": {"name": bc}}),
        )
        .await?;
    if r.status != 201 {
        bail!("instantiate {bc}: {} {}", r.status, r.text);
    }
    Ok(r.body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let slots = args.slots.to_string();
    let server = Server::start_with(&["--node-slots", &slots])?;
    let admin = Api::admin(&server.url).await?;
    let ns = "bench";
    admin.new_project(ns).await?;
    let docker = DockerCli::new()?;
    let local = unique("bench-base");
    docker.busybox_image(&local)?;
    let token = admin.token.clone().context("token")?;
    if !docker
        .login(&server.registry, "admin", &token)
        .status
        .success()
    {
        bail!("docker login failed");
    }
    let base = format!("{}/{ns}/base:1", server.registry);
    docker.ok(&["tag", &local, &base]);
    docker.ok(&["push", &base]);

    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["project", ns]);

    // 1. Latency, side by side.
    let ctx = tempfile::tempdir()?;
    std::fs::write(ctx.path().join("app.txt"), vec![b'x'; 64 << 10])?;
    let mut ours = Vec::new();
    let mut hand = Vec::new();
    let mut cli = Vec::new();
    for run in 0..args.runs {
        let marker = unique("run");
        let dockerfile = format!("FROM {base}\nCOPY app.txt /app.txt\nRUN echo {marker}\n");
        std::fs::write(ctx.path().join("Dockerfile"), &dockerfile)?;
        // By hand: Debian's CLI with BuildKit, host network, then push.
        let image = format!("{}/{ns}/hand:latest", server.registry);
        let t = Instant::now();
        let out = std::process::Command::new(DOCKER)
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", docker.config_dir())
            .args(["build", "-q", "--network", "host", "-t", &image])
            .arg(ctx.path())
            .output()?;
        if !out.status.success() {
            bail!("docker build: {}", String::from_utf8_lossy(&out.stderr));
        }
        docker.ok(&["push", "-q", &image]);
        let by_hand = t.elapsed().as_secs_f64();

        // Ours: the same context as a binary-free inline build would not
        // COPY, so the config carries the Dockerfile and the file inline
        // through a git-less binary upload of the same directory.
        let bc = format!("lat{run}");
        let r = admin
            .post(
                &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
                &json!({"metadata": {"name": bc}, "spec": {
                    "source": {"binary": {}},
                    "strategy": {"dockerStrategy": {}},
                    "output": {"to": {"kind": "ImageStreamTag", "name": "ours:latest"}}}}),
            )
            .await?;
        if r.status != 201 {
            bail!("bc: {}", r.text);
        }
        let tarball = {
            let mut b = Vec::new();
            {
                let mut t = tar_builder(&mut b);
                t.append_dir_all(".", ctx.path())?;
                t.finish()?;
            }
            b
        };
        let t = Instant::now();
        let r = admin
            .request(
                reqwest::Method::POST,
                &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{bc}/instantiatebinary"),
            )
            .header("content-type", "application/octet-stream")
            .body(tarball)
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("instantiatebinary: {}", r.text().await?);
        }
        let name = format!("{bc}-1");
        loop {
            let b = phase_of(&admin, ns, &name).await?;
            match b["status"]["phase"].as_str() {
                Some("Complete") => break,
                Some("Failed" | "Error" | "Cancelled") => bail!("{name}: {}", b["status"]),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let ours_secs = t.elapsed().as_secs_f64();

        // The same through the CLI, as a user runs it: psc start-build
        // --from-dir --follow (process start, tar.gz, upload, live log,
        // exit once Complete).
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!(
                "FROM {base}\nCOPY app.txt /app.txt\nRUN echo {}\n",
                unique("cli")
            ),
        )?;
        let t = Instant::now();
        let out = psc.run(&[
            "start-build",
            &bc,
            "--from-dir",
            &ctx.path().display().to_string(),
            "--follow",
        ]);
        if !out.status.success() {
            bail!("psc start-build: {}", String::from_utf8_lossy(&out.stderr));
        }
        let cli_secs = t.elapsed().as_secs_f64();
        println!(
            "run {run}: by hand {by_hand:.3} s, API instantiatebinary→Complete {ours_secs:.3} s, psc start-build --from-dir --follow {cli_secs:.3} s"
        );
        hand.push(by_hand);
        ours.push(ours_secs);
        cli.push(cli_secs);
    }
    let (h, o, c) = (median(&mut hand), median(&mut ours), median(&mut cli));
    println!(
        "latency (median of {}): docker build + push {h:.3} s; podspace via the API {o:.3} s ({:.2}x), via psc {c:.3} s ({:.2}x) (target <= 1.3x)",
        args.runs,
        o / h,
        c / h
    );

    // 2. Throughput.
    let r = admin
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
            &json!({"metadata": {"name": "many"}, "spec": {
                "runPolicy": "Parallel",
                "successfulBuildsHistoryLimit": args.builds,
                "failedBuildsHistoryLimit": args.builds,
                "source": {"dockerfile": format!("FROM {base}\nLABEL trivial=yes\n")},
                "strategy": {"dockerStrategy": {}},
                "output": {"to": {"kind": "ImageStreamTag", "name": "many:latest"}}}}),
        )
        .await?;
    if r.status != 201 {
        bail!("bc: {}", r.text);
    }
    let t = Instant::now();
    for _ in 0..args.builds {
        instantiate(&admin, ns, "many").await?;
    }
    let queued = t.elapsed().as_secs_f64();
    loop {
        let list = admin
            .get(&format!(
                "/apis/build.openshift.io/v1/namespaces/{ns}/builds?labelSelector=openshift.io/build-config.name=many"
            ))
            .await?
            .body;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let done = items
            .iter()
            .filter(|b| b["status"]["phase"] == "Complete")
            .count();
        let bad: Vec<&Value> = items
            .iter()
            .filter(|b| {
                matches!(
                    b["status"]["phase"].as_str(),
                    Some("Failed" | "Error" | "Cancelled")
                )
            })
            .collect();
        if let Some(b) = bad.first() {
            bail!(
                "a build did not complete: {} {}",
                b["metadata"]["name"],
                b["status"]
            );
        }
        if done == args.builds {
            break;
        }
        if t.elapsed() > Duration::from_secs(3600) {
            bail!("only {done} of {} builds completed", args.builds);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = t.elapsed().as_secs_f64();
    // Each build leased exactly once: one "build leased" line per build.
    let log = server.log_text();
    let mut leases = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines().filter(|l| l.contains("build leased")) {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if let Some(b) = v.pointer("/fields/build").and_then(Value::as_str) {
                if b.starts_with("many-") {
                    *leases.entry(b.to_string()).or_default() += 1;
                }
            }
        }
    }
    let twice = leases.values().filter(|n| **n > 1).count();
    println!(
        "throughput: {} builds on {} slots: queued in {queued:.1} s, all Complete after {total:.1} s ({:.2} builds/s); leased {} builds, {twice} more than once, 0 lost",
        args.builds,
        args.slots,
        args.builds as f64 / total,
        leases.len()
    );
    if leases.len() != args.builds || twice > 0 {
        bail!("lease accounting is off");
    }
    let _ = docker.run(&["rmi", &local, &base]);
    Ok(())
}

fn tar_builder(out: &mut Vec<u8>) -> tar::Builder<&mut Vec<u8>> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b
}
