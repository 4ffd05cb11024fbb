//! Trigger latency: from a manifest PUT's response to the watching
//! DeploymentConfigs' new versions being stored, over 200 pushes with 1,000
//! DeploymentConfigs in the store, 100 of them watching the tag. The times
//! come from a watch stream on the DeploymentConfigs, so measuring adds no
//! polling load.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::StreamExt;
use podspace_e2e::{Api, Server};
use serde_json::{json, Value};
use sha2::Digest;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    pushes: usize,
    #[arg(long, default_value_t = 1000)]
    configs: usize,
    #[arg(long, default_value_t = 100)]
    watching: usize,
    /// The store (`postgres://…`; an empty database); default: SQLite in a temp dir.
    #[arg(long)]
    db: Option<String>,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn dc(name: &str, istag: &str) -> Value {
    json!({
        "apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "x"}]}},
                 "triggers": [{"type": "ImageChange", "imageChangeParams": {"automatic": true, "containerNames": ["app"], "from": {"kind": "ImageStreamTag", "name": istag}}}]}
    })
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = match &args.db {
        Some(db) => Server::start_with(&["--db", db])?,
        None => Server::start()?,
    };
    let admin = Api::admin(&server.url).await?;
    admin.new_project("trig").await?;
    let reg = format!("http://{}", server.registry);
    let auth = format!("Bearer {}", admin.token.clone().context("token")?);
    let http = reqwest::Client::new();
    for i in 0..args.configs {
        let istag = if i < args.watching {
            "app:live".to_string()
        } else {
            format!("other{}:live", i % 50)
        };
        let r = admin
            .post(
                "/apis/apps.openshift.io/v1/namespaces/trig/deploymentconfigs",
                &dc(&format!("dc{i}"), &istag),
            )
            .await?;
        if r.status != 201 {
            bail!("creating dc{i}: {}", r.status);
        }
    }
    let config = br#"{"architecture":"amd64","os":"linux","config":{}}"#.to_vec();
    let layer = b"layer".to_vec();
    for blob in [&config, &layer] {
        let r = http
            .post(format!(
                "{reg}/v2/trig/app/blobs/uploads/?digest={}",
                sha256(blob)
            ))
            .header("authorization", &auth)
            .body(blob.clone())
            .send()
            .await?;
        if r.status() != 201 {
            bail!("blob: {}", r.status());
        }
    }
    // Watch the configs from now on.
    let rv = admin.get("/apis/apps.openshift.io/v1/namespaces/trig/deploymentconfigs?labelSelector=nothing%3Dmatches").await?.body["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64, Instant)>();
    let watch = admin
        .request(reqwest::Method::GET, &format!("/apis/apps.openshift.io/v1/namespaces/trig/deploymentconfigs?watch=true&resourceVersion={rv}"))
        .send()
        .await?;
    tokio::spawn(async move {
        let mut stream = watch.bytes_stream();
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    let name = v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let version = v["object"]["status"]["latestVersion"].as_i64().unwrap_or(0);
                    let _ = tx.send((name, version, Instant::now()));
                }
            }
        }
    });
    let mut first = Vec::new();
    let mut all = Vec::new();
    for i in 0..args.pushes {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
            "annotations": {"push": i.to_string()},
        }))?;
        let r = http
            .put(format!("{reg}/v2/trig/app/manifests/live"))
            .header("authorization", &auth)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .await?;
        let t0 = Instant::now();
        if r.status() != 201 {
            bail!("manifest: {}", r.status());
        }
        let want = i as i64 + 1;
        let mut done = std::collections::HashSet::new();
        let deadline = t0 + Duration::from_secs(30);
        while done.len() < args.watching {
            let Ok(got) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
                // Say which configs are behind, as stored, to tell a lost
                // firing from a lost watch event.
                let list = admin
                    .get("/apis/apps.openshift.io/v1/namespaces/trig/deploymentconfigs")
                    .await?;
                let behind: Vec<String> = list.body["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| {
                        let name = d["metadata"]["name"].as_str()?;
                        let v = d["status"]["latestVersion"].as_i64().unwrap_or(0);
                        let watching =
                            name.trim_start_matches("dc").parse::<usize>().ok()? < args.watching;
                        (watching && !done.contains(name)).then(|| format!("{name} at {v}"))
                    })
                    .collect();
                bail!(
                    "push {want}: {} of {} watching configs seen at their new version; stored: {}",
                    done.len(),
                    args.watching,
                    behind.join(", ")
                );
            };
            let (name, version, at) = got.context("watch ended")?;
            if version == want && done.insert(name) {
                if done.len() == 1 {
                    first.push(at.duration_since(t0));
                }
                if done.len() == args.watching {
                    all.push(at.duration_since(t0));
                }
            }
        }
    }
    println!(
        "trigger latency over {} pushes, {} DeploymentConfigs, {} watching the tag, on {}:",
        args.pushes,
        args.configs,
        args.watching,
        if args.db.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "  PUT response -> first watching DC at its new version: p50 {:.2} ms  p99 {:.2} ms",
        pct(&mut first, 0.5),
        pct(&mut first, 0.99)
    );
    println!(
        "  PUT response -> all {} watching DCs at their new version: p50 {:.2} ms  p99 {:.2} ms",
        args.watching,
        pct(&mut all, 0.5),
        pct(&mut all, 0.99)
    );
    Ok(())
}
