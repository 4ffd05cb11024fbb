//! Crash safety: the server is SIGKILLed in the middle of 20 concurrent
//! pushes. After a restart every blob the registry shows has the right
//! digest and every tag points at a manifest whose blobs are all there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use podspace_e2e::{Api, Server, TinyImage};
use serde_json::{json, Value};
use sha2::Digest;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

const PUSHES: usize = 20;
const LAYER: usize = 4 << 20;
const CHUNK: usize = 256 << 10;

/// One docker-style push: layer in chunks, config, manifest by tag.
async fn push(
    http: reqwest::Client,
    base: String,
    auth: String,
    i: usize,
    done: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let repo = format!("crash/app{}", i % 4);
    let layer: Vec<u8> = (0..LAYER).map(|b| ((b * (i + 7)) % 251) as u8).collect();
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "config": {"Labels": {"push": i.to_string()}}}),
    )?;
    let send = |rb: reqwest::RequestBuilder| rb.header("authorization", &auth).send();
    let start = send(http.post(format!("{base}/v2/{repo}/blobs/uploads/"))).await?;
    let mut loc = format!("{base}{}", start.headers()["location"].to_str()?);
    for (n, chunk) in layer.chunks(CHUNK).enumerate() {
        let range = format!("{}-{}", n * CHUNK, n * CHUNK + chunk.len() - 1);
        let r = send(
            http.patch(&loc)
                .header("content-range", range)
                .body(chunk.to_vec()),
        )
        .await?;
        anyhow::ensure!(r.status() == 202, "patch: {}", r.status());
        loc = format!("{base}{}", r.headers()["location"].to_str()?);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = send(http.put(format!("{loc}?digest={}", sha256(&layer)))).await?;
    anyhow::ensure!(r.status() == 201, "put layer: {}", r.status());
    let r = send(
        http.post(format!(
            "{base}/v2/{repo}/blobs/uploads/?digest={}",
            sha256(&config)
        ))
        .body(config.clone()),
    )
    .await?;
    anyhow::ensure!(r.status() == 201, "config: {}", r.status());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    });
    let r = send(
        http.put(format!("{base}/v2/{repo}/manifests/t{i}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(serde_json::to_vec(&manifest)?),
    )
    .await?;
    anyhow::ensure!(r.status() == 201, "manifest: {}", r.status());
    done.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn fetch(http: &reqwest::Client, auth: &str, url: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let r = http.get(url).header("authorization", auth).send().await?;
    Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_twenty_pushes_leaves_only_complete_content() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("crash").await?;
    let auth = format!("Bearer {}", admin.token.clone().unwrap());
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.registry);
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..PUSHES)
        .map(|i| {
            tokio::spawn(push(
                http.clone(),
                base.clone(),
                auth.clone(),
                i,
                done.clone(),
            ))
        })
        .collect();
    // Kill once some pushes have finished and the others are mid-way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let finished_before_kill = done.load(Ordering::SeqCst);
    let mut failed = 0;
    for t in tasks {
        if t.await?.is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "the kill came after every push had finished ({finished_before_kill} done): nothing was tested");

    server.restart()?;
    let admin = Api::admin(&server.url).await?;
    let auth = format!("Bearer {}", admin.token.clone().unwrap());
    let base = format!("http://{}", server.registry);
    let mut tags_seen = 0;
    let mut blobs_checked = 0;
    for app in 0..4 {
        let repo = format!("crash/app{app}");
        let (status, body) = fetch(&http, &auth, &format!("{base}/v2/{repo}/tags/list")).await?;
        if status == 404 {
            continue;
        }
        let tags: Value = serde_json::from_slice(&body)?;
        for tag in tags["tags"].as_array().cloned().unwrap_or_default() {
            tags_seen += 1;
            let (status, manifest) = fetch(
                &http,
                &auth,
                &format!("{base}/v2/{repo}/manifests/{}", tag.as_str().unwrap()),
            )
            .await?;
            assert_eq!(status, 200, "tag {tag} of {repo} points at nothing");
            let m: Value = serde_json::from_slice(&manifest)?;
            let mut refs = vec![m["config"].clone()];
            refs.extend(m["layers"].as_array().cloned().unwrap_or_default());
            for r in refs {
                let digest = r["digest"].as_str().unwrap();
                let (status, blob) =
                    fetch(&http, &auth, &format!("{base}/v2/{repo}/blobs/{digest}")).await?;
                assert_eq!(
                    status, 200,
                    "{repo}:{tag} references a missing blob {digest}"
                );
                assert_eq!(
                    sha256(&blob),
                    digest,
                    "a visible blob has the wrong content"
                );
                assert_eq!(blob.len() as i64, r["size"].as_i64().unwrap());
                blobs_checked += 1;
            }
        }
    }
    assert!(
        tags_seen >= finished_before_kill,
        "a push that had answered 201 was lost: {tags_seen} < {finished_before_kill}"
    );
    assert!(blobs_checked > 0);
    // Every layer blob that is visible at all is whole.
    for i in 0..PUSHES {
        let layer: Vec<u8> = (0..LAYER).map(|b| ((b * (i + 7)) % 251) as u8).collect();
        let digest = sha256(&layer);
        let (status, blob) = fetch(
            &http,
            &auth,
            &format!("{base}/v2/crash/app{}/blobs/{digest}", i % 4),
        )
        .await?;
        if status == 200 {
            assert_eq!(sha256(&blob), digest);
        } else {
            assert_eq!(status, 404);
        }
    }
    // And the registry takes pushes again.
    let done = Arc::new(AtomicUsize::new(0));
    push(http.clone(), base.clone(), auth.clone(), 0, done.clone()).await?;
    assert_eq!(done.load(Ordering::SeqCst), 1);
    Ok(())
}

/// A push by tag is one transaction: a crash anywhere inside it (the
/// server aborts at a named fault point) leaves neither the registry tag
/// nor the stream's tag nor an event, and the same push afterwards records
/// all of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_by_tag_is_all_or_nothing() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("atomic").await?;
    let token = admin.token.clone().unwrap_or_default();
    let http = reqwest::Client::new();
    let image = TinyImage::default();
    let status = image
        .push_config(&http, &server.registry, &token, "atomic/app")
        .await?;
    assert_eq!(status, 201);
    let put = |registry: String, tag: String, n: usize| {
        let (http, token, image) = (http.clone(), token.clone(), &image);
        async move {
            image
                .push_manifest(&http, &registry, &token, "atomic/app", &tag, n)
                .await
        }
    };
    let stream_path = "/apis/image.openshift.io/v1/namespaces/atomic/imagestreams/app";
    let points = [
        // The stream does not exist yet: its creation is rolled back. The
        // retried push creates it, so the others roll back an update.
        "push:before-commit",
        "push:after-registry-tag",
        "push:after-image",
        "push:before-commit",
    ];
    for (i, point) in points.iter().enumerate() {
        let admin = Api::admin(&server.url).await?;
        let stream_before = admin.get(stream_path).await?;
        let rv_before = stream_before.body["metadata"]["resourceVersion"].clone();
        server.env = vec![("PODSPACE_FAULT".into(), point.to_string())];
        server.restart()?;
        let tag = format!("t{i}");
        let r = put(server.registry.clone(), tag.clone(), i).await;
        assert!(r.is_err(), "the server died at {point} before answering");
        let st = server.wait_exit(Duration::from_secs(10))?;
        assert!(!st.success(), "aborted at {point}");
        server.env.clear();
        server.restart()?;
        let admin = Api::admin(&server.url).await?;
        let (registry_tag, stream_tag) = tag_states(&http, &server, &admin, &token, &tag).await?;
        assert_eq!(
            (registry_tag, stream_tag),
            (404, 404),
            "registry and stream tag {tag} after a crash at {point}"
        );
        let stream_after = admin.get(stream_path).await?;
        assert_eq!(stream_after.status, stream_before.status, "{point}");
        assert_eq!(
            stream_after.body["metadata"]["resourceVersion"], rv_before,
            "no stream event after a crash at {point}"
        );
        // The same push now lands whole.
        let r = put(server.registry.clone(), tag.clone(), i).await?;
        assert_eq!(r.status(), 201);
        let states = tag_states(&http, &server, &admin, &token, &tag).await?;
        assert_eq!(states, (200, 200), "{tag} after the retried push");
    }
    Ok(())
}

/// The status of `atomic/app:<tag>` in the registry and as a stream tag.
async fn tag_states(
    http: &reqwest::Client,
    server: &Server,
    admin: &Api,
    token: &str,
    tag: &str,
) -> anyhow::Result<(u16, u16)> {
    let registry = http
        .get(format!(
            "http://{}/v2/atomic/app/manifests/{tag}",
            server.registry
        ))
        .bearer_auth(token)
        .send()
        .await?
        .status()
        .as_u16();
    let stream = admin
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/atomic/imagestreamtags/app:{tag}"
        ))
        .await?
        .status;
    Ok((registry, stream))
}
