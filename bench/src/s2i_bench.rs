//! S2I build benchmark on the real engine, with the shipped python builder
//! (made by `scripts/builder-images` against a fresh server): the median of
//! `--runs` builds each, start → Complete through the API, of
//! 1. a clean Source build of a sample app whose requirements come from the
//!    package index this machine reaches (the host's pip settings, carried
//!    into the builder's base image);
//! 2. an incremental Source rebuild, the requirements unchanged (the
//!    previous environment and wheels from save-artifacts);
//! 3. a Docker-strategy build of the same app FROM the same builder image
//!    with a hand-written Dockerfile doing the same work as assemble.
//!
//! Every run changes a source file, so BuildKit's cache never skips the work.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use podspace_e2e::{unique, Api, Psc, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The sample's requirements.txt lines
    #[arg(long, default_value = "flask==3.1.0,gunicorn==23.0.0")]
    requirements: String,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn create_bc(admin: &Api, ns: &str, name: &str, strategy: Value) -> Result<()> {
    let r = admin
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
            &json!({"metadata": {"name": name}, "spec": {
                "source": {"binary": {}},
                "strategy": strategy,
                "output": {"to": {"kind": "ImageStreamTag", "name": format!("{name}:latest")}}}}),
        )
        .await?;
    if r.status != 201 {
        bail!("bc {name}: {}", r.text);
    }
    Ok(())
}

/// One binary build of `dir` by `bc`: seconds from the upload to Complete.
async fn build(admin: &Api, ns: &str, bc: &str, dir: &Path) -> Result<(f64, String)> {
    let mut tarball = Vec::new();
    {
        let mut t = tar::Builder::new(&mut tarball);
        t.follow_symlinks(false);
        t.append_dir_all(".", dir)?;
        t.finish()?;
    }
    let t = Instant::now();
    let r = admin
        .request(
            reqwest::Method::POST,
            &format!(
                "/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{bc}/instantiatebinary"
            ),
        )
        .header("content-type", "application/octet-stream")
        .body(tarball)
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("instantiatebinary {bc}: {}", r.text().await?);
    }
    let b: Value = r.json().await?;
    let name = b["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    loop {
        let b = admin
            .get(&format!(
                "/apis/build.openshift.io/v1/namespaces/{ns}/builds/{name}"
            ))
            .await?
            .body;
        match b["status"]["phase"].as_str() {
            Some("Complete") => return Ok((t.elapsed().as_secs_f64(), name)),
            Some("Failed" | "Error" | "Cancelled") => {
                let log = podspace_e2e::build_log(admin, ns, &name).await?;
                bail!("{name}: {}\n{log}", b["status"])
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn write_app(dir: &Path, requirements: &str) -> Result<()> {
    std::fs::write(
        dir.join("app.py"),
        format!(
            "# {}\nimport os, flask\napp = flask.Flask(__name__)\n@app.get('/')\ndef hello():\n    return 'hello'\napp.run(host='0.0.0.0', port=int(os.environ.get('PORT', '8080')))\n",
            unique("run")
        ),
    )?;
    std::fs::write(
        dir.join("requirements.txt"),
        requirements.replace(',', "\n") + "\n",
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = Server::start_with(&["--node-slots", "1"])?;
    let admin = Api::admin(&server.url).await?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let t = Instant::now();
    let out = std::process::Command::new(root.join("scripts/builder-images"))
        .arg(&server.url)
        .env("PSC", podspace_e2e::bin("psc"))
        .env("PSC_CONFIG", &psc.config)
        .output()
        .context("scripts/builder-images")?;
    if !out.status.success() {
        bail!(
            "scripts/builder-images: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("builder images ready in {:.1} s", t.elapsed().as_secs_f64());
    let builder = admin
        .get("/apis/image.openshift.io/v1/namespaces/openshift/imagestreamtags/python:3.11")
        .await?
        .body["image"]["dockerImageReference"]
        .as_str()
        .context("python:3.11 has no image")?
        .to_string();

    let ns = "s2ibench";
    admin.new_project(ns).await?;
    let from = json!({"kind": "ImageStreamTag", "namespace": "openshift", "name": "python:3.11"});
    create_bc(
        &admin,
        ns,
        "clean",
        json!({"type": "Source", "sourceStrategy": {"from": from}}),
    )
    .await?;
    create_bc(
        &admin,
        ns,
        "incr",
        json!({"type": "Source", "sourceStrategy": {"from": from, "incremental": true}}),
    )
    .await?;
    create_bc(
        &admin,
        ns,
        "docker",
        json!({"type": "Docker", "dockerStrategy": {}}),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let docker_dir = tempfile::tempdir()?;
    // What assemble does, by hand.
    std::fs::write(
        docker_dir.path().join("Dockerfile"),
        format!(
            "FROM {builder}\n\
             COPY --chown=1001:0 app.py requirements.txt /tmp/src/\n\
             RUN cp -Rf /tmp/src/. ./ && \
             pip wheel -q --wheel-dir /opt/app-root/wheels --find-links /opt/app-root/wheels -r requirements.txt && \
             pip install -q --no-index --find-links /opt/app-root/wheels -r requirements.txt\n\
             CMD [\"python\", \"app.py\"]\n"
        ),
    )?;

    // The incremental config's first build has nothing to reuse.
    write_app(dir.path(), &args.requirements)?;
    build(&admin, ns, "incr", dir.path()).await?;

    let (mut clean, mut incr, mut docker) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_incremental_log = String::new();
    for run in 0..args.runs {
        write_app(dir.path(), &args.requirements)?;
        let (c, _) = build(&admin, ns, "clean", dir.path()).await?;
        write_app(dir.path(), &args.requirements)?;
        let (i, name) = build(&admin, ns, "incr", dir.path()).await?;
        let log = podspace_e2e::build_log(&admin, ns, &name).await?;
        if !log.contains("reusing the previous build's environment") {
            bail!("{name} did not install from the restored wheels:\n{log}");
        }
        last_incremental_log = log;
        write_app(docker_dir.path(), &args.requirements)?;
        let (d, _) = build(&admin, ns, "docker", docker_dir.path()).await?;
        println!(
            "run {run}: clean S2I {c:.2} s, incremental S2I {i:.2} s, Docker strategy {d:.2} s"
        );
        clean.push(c);
        incr.push(i);
        docker.push(d);
    }
    // Where an incremental build spends its time (BuildKit's step lines).
    println!("the last incremental build's steps:");
    let mut step = String::new();
    for line in last_incremental_log.lines() {
        if line.starts_with('#') && line.contains(" [") || line.contains("exporting") {
            step = line.to_string();
        }
        if let Some(rest) = line.split_once(" DONE ").map(|(_, t)| t) {
            if !step.is_empty() {
                println!("  {rest:>6}  {step}");
                step.clear();
            }
        }
    }
    let (c, i, d) = (median(&mut clean), median(&mut incr), median(&mut docker));
    println!(
        "median of {} (requirements: {}): clean S2I {c:.2} s; incremental {i:.2} s = {:.2} x clean (target <= 0.5); Docker strategy {d:.2} s; clean S2I = {:.2} x Docker (target <= 1.2)",
        args.runs,
        args.requirements,
        i / c,
        c / d
    );
    Ok(())
}
