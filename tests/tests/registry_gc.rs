//! Online garbage collection against the real service, on the filesystem
//! and on S3 (moto): collections run back to back while 20 clients push,
//! some of them reusing blobs the collector found unreferenced; every push
//! that got 201 pulls whole afterwards, and what nothing names is gone from
//! storage.

use std::time::Duration;

use anyhow::{bail, Result};
use podspace_e2e::{bin, Api, Moto, Server};
use serde_json::{json, Value};
use sha2::Digest;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Distinct, incompressible-enough bytes for blob `name`.
fn bytes(name: &str, len: usize) -> Vec<u8> {
    let seed = sha2::Sha256::digest(name.as_bytes());
    (0..len)
        .map(|i| seed[i % 32].wrapping_add((i / 32) as u8))
        .collect()
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    registry: String,
    token: String,
}

impl Client {
    async fn put_blob(&self, repo: &str, data: &[u8]) -> Result<u16> {
        Ok(self
            .http
            .post(format!(
                "http://{}/v2/{repo}/blobs/uploads/?digest={}",
                self.registry,
                sha256(data)
            ))
            .bearer_auth(&self.token)
            .body(data.to_vec())
            .send()
            .await?
            .status()
            .as_u16())
    }

    /// Mounts `digest` from `from`; false (and the session it opened
    /// cancelled) when the registry fell back to an upload.
    async fn mount(&self, repo: &str, from: &str, digest: &str) -> Result<bool> {
        let r = self
            .http
            .post(format!(
                "http://{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
                self.registry
            ))
            .bearer_auth(&self.token)
            .send()
            .await?;
        match r.status().as_u16() {
            201 => Ok(true),
            202 => {
                let location = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                self.http
                    .delete(format!("http://{}{location}", self.registry))
                    .bearer_auth(&self.token)
                    .send()
                    .await?;
                Ok(false)
            }
            other => bail!("mount answered {other}"),
        }
    }

    async fn head_blob(&self, repo: &str, digest: &str) -> Result<u16> {
        Ok(self
            .http
            .head(format!("http://{}/v2/{repo}/blobs/{digest}", self.registry))
            .bearer_auth(&self.token)
            .send()
            .await?
            .status()
            .as_u16())
    }

    async fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let r = self
            .http
            .get(format!("http://{}{path}", self.registry))
            .bearer_auth(&self.token)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await?;
        Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
    }

    /// PUTs an image manifest of `config` and `layers` under `tag` (by its
    /// digest without one); status, body and the manifest's digest.
    async fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        config: &[u8],
        layers: &[&[u8]],
    ) -> Result<(u16, String, String)> {
        let desc =
            |d: &[u8], t: &str| json!({"mediaType": t, "digest": sha256(d), "size": d.len()});
        let body = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc(config, "application/vnd.oci.image.config.v1+json"),
            "layers": layers.iter().map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar")).collect::<Vec<_>>(),
        })
        .to_string();
        let digest = sha256(body.as_bytes());
        let reference = tag.unwrap_or(&digest);
        let r = self
            .http
            .put(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.registry
            ))
            .bearer_auth(&self.token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body.clone())
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?, digest))
    }
}

async fn collect(api: &Api, query: &str) -> Result<Value> {
    let r = api
        .send(api.request(
            reqwest::Method::POST,
            &format!("/admin/registry/gc?{query}"),
        ))
        .await?;
    if r.status != 200 {
        bail!("gc answered {}: {}", r.status, r.body);
    }
    Ok(r.body.clone())
}

fn swept(report: &Value) -> Vec<String> {
    report["blobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["digest"].as_str().map(str::to_string))
        .collect()
}

/// One push into `gc/app`: a fresh config and layer, and `shared` from
/// `gc/pool` (mounted when `mount_first`, else uploaded again). A manifest
/// refused because a blob was collected meanwhile is pushed again, as a
/// client's retry would.
async fn push(c: Client, i: usize, shared: Vec<u8>, mount_first: bool) -> Result<(String, usize)> {
    let repo = "gc/app";
    let config = bytes(&format!("config {i}"), 300);
    let layer = bytes(&format!("layer {i}"), 40_000);
    for attempt in 0..5 {
        for blob in [&config, &layer] {
            let s = c.put_blob(repo, blob).await?;
            if s != 201 {
                bail!("blob upload answered {s}");
            }
        }
        let mounted = mount_first && c.mount(repo, "gc/pool", &sha256(&shared)).await?;
        if !mounted {
            let s = c.put_blob(repo, &shared).await?;
            // 400 BLOB_UPLOAD_INVALID if the collector held it too long: retry.
            if s != 201 {
                continue;
            }
        }
        let (status, body, digest) = c
            .put_manifest(repo, Some(&format!("t{i}")), &config, &[&shared, &layer])
            .await?;
        match status {
            201 => return Ok((digest, attempt)),
            400 if body.contains("MANIFEST_BLOB_UNKNOWN") => continue,
            other => bail!("manifest PUT answered {other}: {body}"),
        }
    }
    bail!("push {i} never succeeded")
}

/// Where the blob bytes lie, to count them.
enum Stored {
    Fs(std::path::PathBuf),
    /// A ListObjectsV2 URL of the blobs' prefix.
    S3(String),
}

impl Stored {
    async fn count(&self) -> Result<usize> {
        Ok(match self {
            Stored::Fs(dir) => std::fs::read_dir(dir)?.count(),
            Stored::S3(url) => reqwest::get(url)
                .await?
                .text()
                .await?
                .matches("<Key>")
                .count(),
        })
    }
}

async fn gc_during_pushes(server: &Server, stored: &Stored) -> Result<()> {
    let admin = Api::admin(&server.url).await?;
    admin.new_project("gc").await?;
    let c = Client {
        http: reqwest::Client::new(),
        registry: server.registry.clone(),
        token: admin.token.clone().unwrap_or_default(),
    };
    // In a repository nobody pushes to while collections run (a push in
    // progress keeps the recently used blobs of its own): blobs nothing names,
    // older than the grace at the collections below, 20 that the pushes
    // reuse and 5 that nobody does, and images that lost their tag.
    let repo = "gc/pool".to_string();
    let shared: Vec<Vec<u8>> = (0..20)
        .map(|i| bytes(&format!("shared {i}"), 20_000))
        .collect();
    let garbage: Vec<Vec<u8>> = (0..5)
        .map(|i| bytes(&format!("garbage {i}"), 10_000))
        .collect();
    for b in shared.iter().chain(&garbage) {
        assert_eq!(c.put_blob(&repo, b).await?, 201);
    }
    let loose_config = bytes("loose config", 100);
    assert_eq!(c.put_blob(&repo, &loose_config).await?, 201);
    let (s, body, loose) = c
        .put_manifest(&repo, Some("loose"), &loose_config, &[])
        .await?;
    assert_eq!(s, 201, "{body}");
    // Retag: "loose" now names another image; the stream's history still
    // names the first, so it stays.
    let keep_config = bytes("keeper config", 100);
    assert_eq!(c.put_blob(&repo, &keep_config).await?, 201);
    assert_eq!(
        c.put_manifest(&repo, Some("loose"), &keep_config, &[])
            .await?
            .0,
        201
    );
    // A manifest pushed by digest only is named by nothing.
    let orphan_config = bytes("orphan config", 100);
    assert_eq!(c.put_blob(&repo, &orphan_config).await?, 201);
    let (s, body, orphan_digest) = c.put_manifest(&repo, None, &orphan_config, &[]).await?;
    assert_eq!(s, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let gc_api = admin.with_token(&c.token);
    let collector = tokio::spawn(async move {
        let mut runs = Vec::new();
        let mut freed = Vec::new();
        loop {
            let started = std::time::Instant::now();
            let r = collect(&gc_api, "graceSeconds=1").await?;
            freed.extend(swept(&r));
            runs.push((started, std::time::Instant::now()));
            if *done_rx.borrow_and_update() {
                return Ok::<_, anyhow::Error>((runs, freed));
            }
        }
    });
    let pushes_began = std::time::Instant::now();
    let mut pushes = tokio::task::JoinSet::new();
    for (i, b) in shared.iter().enumerate() {
        pushes.spawn(push(c.clone(), i, b.clone(), i % 2 == 0));
    }
    let mut results = Vec::new();
    while let Some(r) = pushes.join_next().await {
        results.push(r??);
    }
    let pushes_ended = std::time::Instant::now();
    done_tx.send(true)?;
    let (runs, freed) = collector.await??;
    let retried = results.iter().filter(|(_, attempts)| *attempts > 0).count();
    println!(
        "{} collections during 20 pushes ({:?}); {retried} pushes retried a collected blob",
        runs.len(),
        pushes_ended - pushes_began
    );
    assert!(
        runs.iter()
            .any(|(s, e)| *s < pushes_ended && *e > pushes_began),
        "a collection ran while the pushes did"
    );
    for g in &garbage {
        assert!(freed.contains(&sha256(g)), "old garbage is collected");
    }

    // Every push that got 201 pulls whole.
    assert_eq!(results.len(), 20);
    for (digest, _) in &results {
        let (s, body) = c.get(&format!("/v2/gc/app/manifests/{digest}")).await?;
        assert_eq!(s, 200, "manifest {digest}");
        let m: Value = serde_json::from_slice(&body)?;
        let blobs =
            std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
        for b in blobs {
            let d = b["digest"].as_str().unwrap_or_default();
            let (s, data) = c.get(&format!("/v2/gc/app/blobs/{d}")).await?;
            assert_eq!(s, 200, "blob {d} of {digest}");
            assert_eq!(sha256(&data), d, "blob {d} is whole");
        }
    }
    for g in &garbage {
        assert_eq!(c.head_blob(&repo, &sha256(g)).await?, 404);
    }
    assert_eq!(
        c.get(&format!("/v2/{repo}/manifests/{orphan_digest}"))
            .await?
            .0,
        404,
        "the untagged, unnamed manifest is gone"
    );
    assert_eq!(c.head_blob(&repo, &sha256(&orphan_config)).await?, 404);
    assert_eq!(
        c.get(&format!("/v2/{repo}/manifests/{loose}")).await?.0,
        200,
        "history keeps the retagged image"
    );
    assert_eq!(c.head_blob(&repo, &sha256(&loose_config)).await?, 200);

    // Storage holds exactly the live blobs: 20 pushes × (config, layer,
    // shared) and the two configs of the images that stay; no copy of a
    // collected or re-uploaded blob is left behind.
    assert_eq!(stored.count().await?, 62, "blob objects in storage");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_during_pushes_on_the_filesystem() -> Result<()> {
    let mut server = Server::start()?;
    let blobs = server.data_dir.join("registry/blobs/sha256");
    let stored = Stored::Fs(blobs.clone());
    gc_during_pushes(&server, &stored).await?;

    // `podspace gc` on the same data directory while the service is down
    // (SQLite is for one process; on PostgreSQL it runs beside replicas).
    let admin = Api::admin(&server.url).await?;
    let token = admin.token.clone().unwrap_or_default();
    let late = bytes("late garbage", 1000);
    let c = Client {
        http: reqwest::Client::new(),
        registry: server.registry.clone(),
        token: token.clone(),
    };
    assert_eq!(c.put_blob("gc/app", &late).await?, 201);
    // Row times are whole seconds: two pass before a 1 s grace is over.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    server.terminate()?;
    let data_dir = server.data_dir.to_string_lossy().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["gc", "--grace", "1", "--data-dir", &data_dir];
        args.extend_from_slice(extra);
        std::process::Command::new(bin("podspace"))
            .args(&args)
            .output()
    };
    let dry = run(&["--dry-run"])?;
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        out.contains(&format!("would delete blob {}", sha256(&late))),
        "{out}"
    );
    assert_eq!(stored.count().await?, 63, "a dry run deletes nothing");
    let wet = run(&[])?;
    let out = String::from_utf8_lossy(&wet.stdout);
    assert!(
        wet.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&wet.stderr)
    );
    assert!(
        out.contains(&format!("deleted blob {}", sha256(&late))),
        "{out}"
    );
    assert_eq!(stored.count().await?, 62);
    server.start_in_place()?;
    assert_eq!(c.head_blob("gc/app", &sha256(&late)).await?, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_during_pushes_on_s3() -> Result<()> {
    let moto = Moto::start().await?;
    let args = moto.serve_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_with(&args)?;
    let stored = Stored::S3(format!(
        "{}/{}?list-type=2&prefix=registry/blobs/",
        moto.endpoint, moto.bucket
    ));
    gc_during_pushes(&server, &stored).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cluster_admins_collect_and_bad_parameters_are_refused() -> Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let bob = admin.create_user("bob", "bob-password").await?;
    let r = bob
        .send(bob.request(reqwest::Method::POST, "/admin/registry/gc?dryRun=true"))
        .await?;
    assert_eq!(r.status, 403, "{}", r.body);
    let anonymous = Api::anonymous(&server.url);
    let r = anonymous
        .send(anonymous.request(reqwest::Method::POST, "/admin/registry/gc"))
        .await?;
    assert_eq!(r.status, 401);
    for bad in ["dryRun=maybe", "graceSeconds=-1", "grace=1"] {
        let r = admin
            .send(admin.request(reqwest::Method::POST, &format!("/admin/registry/gc?{bad}")))
            .await?;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["kind"], "Status", "{bad}");
    }
    let r = collect(&admin, "dryRun=true").await?;
    assert_eq!(r["dryRun"], true);
    Ok(())
}

/// `psc adm prune images`: the newest N revisions of a tag and the image a
/// DeploymentConfig runs stay; a dry run changes nothing; confirmed, the
/// other revisions, their Images and (after the grace) their manifests go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_the_newest_revisions_and_what_deployments_use() -> Result<()> {
    let server = Server::start_with(&["--gc-grace", "1"])?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("pr").await?;
    let c = Client {
        http: reqwest::Client::new(),
        registry: server.registry.clone(),
        token: admin.token.clone().unwrap_or_default(),
    };
    let config = bytes("prune config", 200);
    assert_eq!(c.put_blob("pr/app", &config).await?, 201);
    let mut digests = Vec::new();
    for n in 0..5 {
        let layer = bytes(&format!("prune layer {n}"), 1000);
        assert_eq!(c.put_blob("pr/app", &layer).await?, 201);
        let (s, body, d) = c
            .put_manifest("pr/app", Some("latest"), &config, &[&layer])
            .await?;
        assert_eq!(s, 201, "{body}");
        digests.push(d);
    }
    let history = podspace_e2e::tag_history(&admin, "pr", "app", "latest").await?;
    assert_eq!(history.len(), 5);
    // A deployment runs the second-oldest image.
    let dc = json!({"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig",
        "metadata": {"name": "web", "namespace": "pr"},
        "spec": {"replicas": 1, "selector": {"app": "web"}, "triggers": [],
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web",
                    "image": format!("{}/pr/app@{}", server.registry, digests[1])}]}}}});
    let r = admin
        .post(
            "/apis/apps.openshift.io/v1/namespaces/pr/deploymentconfigs",
            &dc,
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    // Whole seconds: let the grace of 1 s pass for the manifests.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let psc = podspace_e2e::Psc::new()?;
    psc.ok(&[
        "login",
        &server.url,
        "-u",
        "admin",
        "-p",
        podspace_e2e::ADMIN_PASSWORD,
    ]);
    let prune = [
        "adm",
        "prune",
        "images",
        "--keep-tag-revisions=2",
        "--keep-younger-than=0",
    ];
    let out = psc.ok(&prune);
    for d in [&digests[0], &digests[2]] {
        assert!(out.contains(d.as_str()), "the dry run names {d}: {out}");
    }
    for d in [&digests[1], &digests[3], &digests[4]] {
        assert!(!out.contains(d.as_str()), "{d} is kept: {out}");
    }
    assert!(
        out.contains("Would delete 2 revisions and 2 images."),
        "{out}"
    );
    assert_eq!(
        podspace_e2e::tag_history(&admin, "pr", "app", "latest").await?,
        history,
        "a dry run changes nothing"
    );
    assert_eq!(
        c.get(&format!("/v2/pr/app/manifests/{}", digests[0]))
            .await?
            .0,
        200
    );

    let mut confirm = prune.to_vec();
    confirm.push("--confirm");
    let out = psc.ok(&confirm);
    assert!(out.contains("Deleted 2 revisions and 2 images."), "{out}");
    let after = podspace_e2e::tag_history(&admin, "pr", "app", "latest").await?;
    let want: Vec<String> = [4, 3, 1].iter().map(|i| digests[*i].clone()).collect();
    assert_eq!(
        after, want,
        "the newest two and the deployed one stay, in order"
    );
    for (i, d) in digests.iter().enumerate() {
        let image = admin
            .get(&format!("/apis/image.openshift.io/v1/images/{d}"))
            .await?
            .status;
        let manifest = c.get(&format!("/v2/pr/app/manifests/{d}")).await?.0;
        if i == 0 || i == 2 {
            assert_eq!((image, manifest), (404, 404), "revision {i} is pruned");
        } else {
            assert_eq!((image, manifest), (200, 200), "revision {i} stays");
        }
    }
    // A second prune finds nothing; a non-admin may not prune.
    assert!(psc
        .ok(&confirm)
        .contains("No image stream revisions to prune."));
    let bob = admin.create_user("bob", "bob-password").await?;
    let r = bob
        .send(bob.request(reqwest::Method::POST, "/admin/prune/images?confirm=true"))
        .await?;
    assert_eq!(r.status, 403);
    let r = admin
        .send(admin.request(
            reqwest::Method::POST,
            "/admin/prune/images?keepTagRevisions=0",
        ))
        .await?;
    assert_eq!(r.status, 400, "{}", r.text);
    Ok(())
}

/// A client that found a blob (HEAD) may name it in a manifest next: the
/// read touches it, and the next collection spares it; unread, it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_just_read_is_spared() -> Result<()> {
    let server = Server::start_with(&["--gc-grace", "1"])?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("rd").await?;
    let c = Client {
        http: reqwest::Client::new(),
        registry: server.registry.clone(),
        token: admin.token.clone().unwrap_or_default(),
    };
    let (read, unread) = (bytes("read me", 500), bytes("leave me", 500));
    for b in [&read, &unread] {
        assert_eq!(c.put_blob("rd/app", b).await?, 201);
    }
    // Whole seconds: two pass, so both are older than the 1 s grace.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(c.head_blob("rd/app", &sha256(&read)).await?, 200);
    let freed = swept(&collect(&admin, "").await?);
    assert!(freed.contains(&sha256(&unread)), "{freed:?}");
    assert!(
        !freed.contains(&sha256(&read)),
        "the blob just read is spared"
    );
    assert_eq!(c.head_blob("rd/app", &sha256(&read)).await?, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let freed = swept(&collect(&admin, "").await?);
    assert!(
        freed.contains(&sha256(&read)),
        "unread for the grace, it goes"
    );
    assert_eq!(c.head_blob("rd/app", &sha256(&read)).await?, 404);
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await?
        .text()
        .await?;
    // Ours, and the scheduled one at start.
    let runs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("podspace_registry_gc_runs_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(runs >= 2, "{metrics}");
    assert!(
        metrics.contains("podspace_registry_gc_blobs_deleted_total 2"),
        "{metrics}"
    );
    Ok(())
}
