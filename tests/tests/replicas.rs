//! Two `podspace serve` replicas over one PostgreSQL: each controller runs
//! on exactly one of them (a lease row), every trigger fires once whichever
//! replica the writes reach, and killing the replica that runs a
//! controller moves it to the other within one lease period; an upload
//! whose chunks reach both replicas is whole.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podspace_e2e::{eventually, postgres_database, Api, Moto, Server};
use serde_json::json;
use sha2::Digest as _;

const LEASE_SECS: u64 = 2;

fn digest(n: u32) -> String {
    format!("sha256:{:064x}", n)
}

async fn map(api: &Api, is: &str, n: u32) -> anyhow::Result<()> {
    let d = digest(n);
    let r = api
        .post(
            "/apis/image.openshift.io/v1/namespaces/ha/imagestreammappings",
            &json!({"metadata": {"name": is}, "tag": "live", "image": {"metadata": {"name": d}, "dockerImageReference": format!("registry.test/ha/{is}@{d}")}}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "mapping: {} {}", r.status, r.text);
    Ok(())
}

/// Each DeploymentConfig's versions: version → image.
async fn versions(api: &Api) -> anyhow::Result<BTreeMap<String, BTreeMap<i64, String>>> {
    let rcs = api
        .get("/api/v1/namespaces/ha/replicationcontrollers")
        .await?
        .body;
    let mut out: BTreeMap<String, BTreeMap<i64, String>> = BTreeMap::new();
    for rc in rcs["items"].as_array().into_iter().flatten() {
        let a = &rc["metadata"]["annotations"];
        let dc = a["openshift.io/deployment-config.name"]
            .as_str()
            .unwrap_or_default();
        let v: i64 = a["openshift.io/deployment-config.latest-version"]
            .as_str()
            .unwrap_or_default()
            .parse()?;
        let image = rc["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        out.entry(dc.into()).or_default().insert(v, image.into());
    }
    Ok(out)
}

/// Whether this replica runs `controller`, from its metrics.
async fn leads(api: &Api, controller: &str) -> anyhow::Result<bool> {
    let metrics = api.get("/metrics").await?.text;
    Ok(metrics.contains(&format!(
        "podspace_controller_leader{{controller=\"{controller}\"}} 1"
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_run_once_across_replicas_and_fail_over() -> anyhow::Result<()> {
    let db = postgres_database().await?;
    let lease = LEASE_SECS.to_string();
    let args = ["--db", db.as_str(), "--controller-lease", lease.as_str()];
    let mut a = Server::start_with(&args)?;
    // Replicas share the registry token key (as the server insists).
    let key = a.data_dir.join("registry-token.key").display().to_string();
    let mut b_args = args.to_vec();
    b_args.extend(["--registry-token-key", key.as_str()]);
    let mut b = Server::start_with(&b_args)?;
    let (api_a, api_b) = (Api::admin(&a.url).await?, Api::admin(&b.url).await?);
    api_a.new_project("ha").await?;
    for s in ["s0", "s1"] {
        let r = api_b
            .post(
                "/apis/image.openshift.io/v1/namespaces/ha/imagestreams",
                &json!({"kind": "ImageStream", "metadata": {"name": s}}),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.text);
        for d in 0..3 {
            let dc = json!({
                "apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig",
                "metadata": {"name": format!("{s}-d{d}")},
                "spec": {"replicas": 1, "selector": {"app": s},
                    "template": {"metadata": {"labels": {"app": s}}, "spec": {"containers": [{"name": "app", "image": "placeholder"}]}},
                    "triggers": [{"type": "ImageChange", "imageChangeParams": {"automatic": true, "containerNames": ["app"], "from": {"kind": "ImageStreamTag", "name": format!("{s}:live")}}}]}
            });
            let r = api_a
                .post(
                    "/apis/apps.openshift.io/v1/namespaces/ha/deploymentconfigs",
                    &dc,
                )
                .await?;
            assert_eq!(r.status, 201, "{}", r.text);
        }
    }
    // Each controller has one leader.
    for c in ["deployments", "build-triggers", "builds", "imports"] {
        eventually(&format!("one replica runs {c}"), async || {
            Ok(leads(&api_a, c).await? ^ leads(&api_b, c).await?)
        })
        .await?;
    }
    // Writes through both replicas: each image deploys once per config.
    for n in 0..4u32 {
        let api = if n % 2 == 0 { &api_a } else { &api_b };
        map(api, "s0", n).await?;
        map(api, "s1", 100 + n).await?;
    }
    let want = |s: &str, first: u32| -> BTreeMap<i64, String> {
        (0..4)
            .map(|n| {
                (
                    n as i64 + 1,
                    format!("registry.test/ha/{s}@{}", digest(first + n)),
                )
            })
            .collect()
    };
    let expected: BTreeMap<String, BTreeMap<i64, String>> = (0..3)
        .flat_map(|d| {
            [
                (format!("s0-d{d}"), want("s0", 0)),
                (format!("s1-d{d}"), want("s1", 100)),
            ]
        })
        .collect();
    // The mappings race the controller: a config may skip an image that was
    // replaced before it fired. What must hold: no image deployed twice,
    // versions consecutive, the newest image last.
    eventually("every config at its stream's newest image", async || {
        let got = versions(&api_a).await?;
        Ok(expected.iter().all(|(dc, want)| {
            got.get(dc)
                .and_then(|v| v.values().last())
                .is_some_and(|img| Some(img) == want.values().last())
        }))
    })
    .await?;
    for (dc, v) in versions(&api_a).await? {
        let images: Vec<&String> = v.values().collect();
        let mut unique = images.clone();
        unique.dedup();
        assert_eq!(images, unique, "{dc}: an image deployed twice: {v:?}");
        let numbers: Vec<i64> = v.keys().copied().collect();
        assert_eq!(
            numbers,
            (1..=numbers.len() as i64).collect::<Vec<_>>(),
            "{dc}"
        );
    }

    // Kill (no graceful release) the replica running the deployments: the
    // other takes over within a lease period, and a new image deploys once.
    let (dead, alive, alive_api) = if leads(&api_a, "deployments").await? {
        (&mut a, &b, &api_b)
    } else {
        (&mut b, &a, &api_a)
    };
    dead.kill();
    let killed = Instant::now();
    eventually("the other replica takes the deployments over", async || {
        leads(alive_api, "deployments").await
    })
    .await?;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(LEASE_SECS * 2 + 2),
        "took {took:?} with a {LEASE_SECS} s lease"
    );
    map(alive_api, "s0", 50).await?;
    eventually("the new image deploys", async || {
        let got = versions(alive_api).await?;
        Ok(got["s0-d0"].values().last() == Some(&format!("registry.test/ha/s0@{}", digest(50))))
    })
    .await?;
    let got = versions(alive_api).await?;
    let newest: Vec<&String> = got["s0-d1"]
        .values()
        .filter(|i| i.ends_with(&digest(50)))
        .collect();
    assert!(newest.len() <= 1, "{got:?}");
    assert!(!alive.url.is_empty());
    Ok(())
}

/// The `Range` an upload response reports.
fn range(r: &reqwest::Response) -> String {
    r.headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_patched_through_both_replicas_is_whole() -> anyhow::Result<()> {
    let db = postgres_database().await?;
    let moto = Moto::start().await?;
    let mut args: Vec<String> = vec!["--db".into(), db.clone()];
    args.extend(moto.serve_args());
    let a_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::start_with(&a_args)?;
    let key = a.data_dir.join("registry-token.key").display().to_string();
    let mut b_args = a_args.clone();
    b_args.extend(["--registry-token-key", key.as_str()]);
    let b = Server::start_with(&b_args)?;
    let admin = Api::admin(&a.url).await?;
    admin.new_project("hu").await?;
    let token = admin.token.clone().unwrap_or_default();
    let http = reqwest::Client::new();
    let replicas = [a.registry.clone(), b.registry.clone()];

    // 13 MiB in 3 MiB chunks: chunks end inside S3 parts and cross them.
    let blob: Vec<u8> = (0..13 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)));
    let r = http
        .post(format!("http://{}/v2/hu/app/blobs/uploads/", replicas[0]))
        .bearer_auth(&token)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "POST on A: {}", r.status());
    let path = r.headers()["location"].to_str()?.to_string();
    let at = |i: usize| format!("http://{}{path}", replicas[i % 2]);
    let chunks: Vec<&[u8]> = blob.chunks(3 * 1024 * 1024).collect();
    let mut offset = 0usize;
    for (i, chunk) in chunks[..chunks.len() - 1].iter().enumerate() {
        // Chunk i goes to B, A, B, ...: the session was opened on A.
        let end = offset + chunk.len();
        let r = http
            .patch(at(i + 1))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{}", end - 1))
            .body(chunk.to_vec())
            .send()
            .await?;
        anyhow::ensure!(
            r.status() == 202,
            "PATCH {i}: {} {}",
            r.status(),
            r.text().await?
        );
        assert_eq!(range(&r), format!("0-{}", end - 1));
        offset = end;
        // The other replica knows where the upload stands.
        let r = http.get(at(i)).bearer_auth(&token).send().await?;
        assert_eq!(r.status(), 204);
        assert_eq!(
            range(&r),
            format!("0-{}", offset - 1),
            "status on the other replica"
        );
    }
    // A chunk sent again (a stale Content-Range) is refused and changes nothing.
    let r = http
        .patch(at(0))
        .bearer_auth(&token)
        .header("content-range", format!("0-{}", chunks[0].len() - 1))
        .body(chunks[0].to_vec())
        .send()
        .await?;
    assert_eq!(r.status(), 416);
    assert!(r.text().await?.contains("RANGE_INVALID"));

    // The last chunk goes with the PUT, on B.
    let last = chunks[chunks.len() - 1];
    let put_range = format!("{offset}-{}", offset + last.len() - 1);
    // Finished on B, read on A: every byte, in order.
    let r = http
        .put(format!("{}?digest={digest}", at(1)))
        .bearer_auth(&token)
        .header("content-range", put_range)
        .body(last.to_vec())
        .send()
        .await?;
    anyhow::ensure!(
        r.status() == 201,
        "PUT on B: {} {}",
        r.status(),
        r.text().await?
    );
    let r = http
        .get(format!("http://{}/v2/hu/app/blobs/{digest}", replicas[0]))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let got = r.bytes().await?;
    assert_eq!(got.len(), blob.len());
    assert!(got[..] == blob[..], "the blob read on A is the one sent");
    // The session is gone on both.
    for i in 0..2 {
        let r = http.get(at(i)).bearer_auth(&token).send().await?;
        assert_eq!(r.status(), 404);
    }
    Ok(())
}
