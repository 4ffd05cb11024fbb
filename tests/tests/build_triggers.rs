//! BuildConfig triggers create Build requests: on an image change of the
//! strategy's base, once for a new config, never twice, and never for an
//! image the config's own build produced.

use std::time::{Duration, Instant};

use podspace_e2e::{controllers_caught_up, Api, Server};
use serde_json::{json, Value};

fn digest(n: u8) -> String {
    format!("sha256:{}", hex::encode([n; 32]))
}

async fn map(admin: &Api, is: &str, tag: &str, n: u8, labels: Value) -> anyhow::Result<()> {
    let d = digest(n);
    let r = admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/bt/imagestreammappings",
            &json!({"metadata": {"name": is}, "tag": tag, "image": {
                "metadata": {"name": d}, "dockerImageReference": format!("registry.test/bt/{is}@{d}"),
                "dockerImageMetadata": {"Config": {"Labels": labels}}}}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "mapping: {} {}", r.status, r.text);
    Ok(())
}

async fn builds(admin: &Api, bc: &str) -> anyhow::Result<Vec<Value>> {
    let list = admin
        .get("/apis/build.openshift.io/v1/namespaces/bt/builds")
        .await?
        .body;
    let mut items: Vec<Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["metadata"]["labels"]["buildconfig"] == bc)
        .cloned()
        .collect();
    items.sort_by_key(|b| {
        b["metadata"]["annotations"]["openshift.io/build.number"]
            .as_str()
            .unwrap_or("0")
            .parse::<i64>()
            .unwrap_or(0)
    });
    Ok(items)
}

async fn wait_builds(admin: &Api, bc: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = builds(admin, bc).await?;
        if b.len() >= n || Instant::now() > deadline {
            return Ok(b);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bc(name: &str, from: &str, output: &str, config_change: bool) -> Value {
    let mut triggers = vec![json!({"type": "ImageChange", "imageChange": {}})];
    if config_change {
        triggers.push(json!({"type": "ConfigChange"}));
    }
    json!({
        "apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "source": {"dockerfile": "FROM base\nRUN true"},
            "strategy": {"type": "Docker", "dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": from}}},
            "output": {"to": {"kind": "ImageStreamTag", "name": output}},
            "triggers": triggers
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_changes_request_builds_exactly_once() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("bt").await?;
    for is in ["base", "app", "self"] {
        admin
            .post(
                "/apis/image.openshift.io/v1/namespaces/bt/imagestreams",
                &json!({"kind": "ImageStream", "metadata": {"name": is}}),
            )
            .await?;
    }
    let r = admin
        .post(
            "/apis/build.openshift.io/v1/namespaces/bt/buildconfigs",
            &bc("app", "base:1", "app:latest", true),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    controllers_caught_up(&admin).await?;
    assert!(
        builds(&admin, "app").await?.is_empty(),
        "no base image yet: the config change cannot build"
    );

    map(&admin, "base", "1", 1, json!({})).await?;
    let b = wait_builds(&admin, "app", 1).await?;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["metadata"]["name"], "app-1");
    // Queued (no build node runs in this server): New, then Pending.
    assert!(
        matches!(b[0]["status"]["phase"].as_str(), Some("New" | "Pending")),
        "{}",
        b[0]["status"]
    );
    assert_eq!(
        b[0]["spec"]["strategy"]["dockerStrategy"]["from"],
        json!({"kind": "DockerImage", "name": format!("registry.test/bt/base@{}", digest(1))})
    );
    assert_eq!(
        b[0]["spec"]["triggeredBy"][0]["imageChangeBuild"]["imageID"],
        format!("registry.test/bt/base@{}", digest(1))
    );
    assert_eq!(
        b[0]["metadata"]["labels"]["app"], "app",
        "the config's labels are copied"
    );
    let stored = admin
        .get("/apis/build.openshift.io/v1/namespaces/bt/buildconfigs/app")
        .await?
        .body;
    assert_eq!(stored["status"]["lastVersion"], 1);
    assert_eq!(
        stored["spec"]["triggers"][0]["imageChange"]["lastTriggeredImageID"],
        format!("registry.test/bt/base@{}", digest(1))
    );

    // The same image again: nothing; a new one: the next build.
    map(&admin, "base", "1", 1, json!({})).await?;
    map(&admin, "base", "1", 2, json!({})).await?;
    let b = wait_builds(&admin, "app", 2).await?;
    assert_eq!(b.len(), 2);
    assert_eq!(
        b[1]["spec"]["triggeredBy"][0]["imageChangeBuild"]["imageID"],
        format!("registry.test/bt/base@{}", digest(2))
    );

    // A build's output that is its own input does not loop.
    admin
        .post(
            "/apis/build.openshift.io/v1/namespaces/bt/buildconfigs",
            &bc("self", "self:latest", "self:latest", false),
        )
        .await?;
    map(
        &admin,
        "self",
        "latest",
        7,
        json!({"io.openshift.build.name": "self-1", "io.openshift.build.namespace": "bt"}),
    )
    .await?;
    controllers_caught_up(&admin).await?;
    assert!(
        builds(&admin, "self").await?.is_empty(),
        "its own output did not trigger it"
    );
    let stored = admin
        .get("/apis/build.openshift.io/v1/namespaces/bt/buildconfigs/self")
        .await?
        .body;
    assert_eq!(
        stored["spec"]["triggers"][0]["imageChange"]["lastTriggeredImageID"],
        format!("registry.test/bt/self@{}", digest(7)),
        "but it is recorded"
    );
    map(&admin, "self", "latest", 8, json!({})).await?;
    assert_eq!(
        wait_builds(&admin, "self", 1).await?.len(),
        1,
        "another image does trigger"
    );

    // A config that needs no base image builds once on creation, not on edits.
    let plain = json!({"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "metadata": {"name": "plain"},
        "spec": {"source": {"dockerfile": "FROM scratch"}, "strategy": {"type": "Docker", "dockerStrategy": {}}, "triggers": [{"type": "ConfigChange"}]}});
    admin
        .post(
            "/apis/build.openshift.io/v1/namespaces/bt/buildconfigs",
            &plain,
        )
        .await?;
    let b = wait_builds(&admin, "plain", 1).await?;
    assert_eq!(
        b[0]["spec"]["triggeredBy"][0]["message"],
        "Build configuration change"
    );
    admin
        .merge_patch(
            "/apis/build.openshift.io/v1/namespaces/bt/buildconfigs/plain",
            &json!({"metadata": {"labels": {"edited": "yes"}}}),
        )
        .await?;

    // A restart replays the log from the saved cursor: nothing fires twice.
    server.restart()?;
    let admin = Api::admin(&server.url).await?;
    controllers_caught_up(&admin).await?;
    assert_eq!(builds(&admin, "app").await?.len(), 2);
    assert_eq!(builds(&admin, "self").await?.len(), 1);
    assert_eq!(builds(&admin, "plain").await?.len(), 1);
    Ok(())
}
