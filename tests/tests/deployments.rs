//! ImageChange and ConfigChange triggers and the deployment records.

use std::collections::BTreeMap;

use podspace_e2e::{
    controllers_caught_up, eventually, unique, Api, DockerCli, Server, ADMIN_PASSWORD,
};
use serde_json::{json, Value};

fn dc(name: &str, istag: &str, config_change: bool) -> Value {
    let mut triggers = vec![
        json!({"type": "ImageChange", "imageChangeParams": {"automatic": true, "containerNames": ["app"], "from": {"kind": "ImageStreamTag", "name": istag}}}),
    ];
    if config_change {
        triggers.push(json!({"type": "ConfigChange"}));
    }
    json!({
        "apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig",
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "placeholder"}]}},
                 "triggers": triggers}
    })
}

fn digest(n: u32) -> String {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    format!("sha256:{}", hex::encode(bytes))
}

async fn map(admin: &Api, ns: &str, is: &str, tag: &str, d: &str) -> anyhow::Result<()> {
    let r = admin
        .post(
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreammappings"),
            &json!({"metadata": {"name": is}, "tag": tag, "image": {"metadata": {"name": d}, "dockerImageReference": format!("registry.test/{ns}/{is}@{d}")}}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "mapping: {} {}", r.status, r.text);
    Ok(())
}

/// ReplicationControllers of a DeploymentConfig by version: their first container's image.
async fn deployments(admin: &Api, ns: &str, dc: &str) -> anyhow::Result<BTreeMap<i64, String>> {
    let list = admin
        .get(&format!("/api/v1/namespaces/{ns}/replicationcontrollers"))
        .await?
        .body;
    Ok(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rc| rc["metadata"]["annotations"]["openshift.io/deployment-config.name"] == dc)
        .map(|rc| {
            let v = rc["metadata"]["annotations"]["openshift.io/deployment-config.latest-version"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            (
                v,
                rc["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect())
}

async fn latest(admin: &Api, ns: &str, dc: &str) -> anyhow::Result<i64> {
    let dc = admin
        .get(&format!(
            "/apis/apps.openshift.io/v1/namespaces/{ns}/deploymentconfigs/{dc}"
        ))
        .await?
        .body;
    Ok(dc["status"]["latestVersion"].as_i64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_push_deploys_a_new_version() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("dep").await?;
    // Created before the tag exists: nothing to deploy yet.
    let r = admin
        .post(
            "/apis/apps.openshift.io/v1/namespaces/dep/deploymentconfigs",
            &dc("web", "web:latest", true),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    controllers_caught_up(&admin).await?;
    assert_eq!(
        latest(&admin, "dep", "web").await?,
        0,
        "no image, no deployment"
    );

    let docker = DockerCli::new()?;
    let reg = server.registry.clone();
    assert!(docker.login(&reg, "admin", ADMIN_PASSWORD).status.success());
    let mut pushed = Vec::new();
    for (i, filler) in [1000usize, 2000].iter().enumerate() {
        let local = unique("podspace-test/dep");
        docker.busybox_image_with(&local, *filler)?;
        let remote = format!("{reg}/dep/web:latest");
        docker.ok(&["tag", &local, &remote]);
        let out = docker.ok(&["push", &remote]);
        let d = out
            .split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .unwrap()
            .to_string();
        docker.ok(&["rmi", &local, &remote]);
        pushed.push(d.clone());
        let want = (i + 1) as i64;
        eventually("a new version", async || {
            Ok(latest(&admin, "dep", "web").await? == want)
        })
        .await?;
    }
    let deps = deployments(&admin, "dep", "web").await?;
    assert_eq!(deps.len(), 2);
    assert_eq!(deps[&1], format!("{reg}/dep/web@{}", pushed[0]));
    assert_eq!(deps[&2], format!("{reg}/dep/web@{}", pushed[1]));
    let is = admin
        .get("/apis/image.openshift.io/v1/namespaces/dep/imagestreams/web")
        .await?
        .body;
    assert_eq!(
        is["status"]["tags"][0]["items"].as_array().unwrap().len(),
        2,
        "the tag history grew"
    );
    let rc = admin
        .get("/api/v1/namespaces/dep/replicationcontrollers/web-2")
        .await?
        .body;
    assert_eq!(
        rc["metadata"]["annotations"]["openshift.io/deployment.status-reason"],
        "ImageChange"
    );
    assert_eq!(rc["spec"]["replicas"], 2);
    assert_eq!(rc["spec"]["selector"]["deployment"], "web-2");

    // The same image again: nothing fires.
    map(&admin, "dep", "web", "latest", pushed[1].as_str()).await?;
    controllers_caught_up(&admin).await?;
    assert_eq!(latest(&admin, "dep", "web").await?, 2);

    // A template change fires the ConfigChange trigger, once.
    let r = admin
        .merge_patch(
            "/apis/apps.openshift.io/v1/namespaces/dep/deploymentconfigs/web",
            &json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}}}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually("a config change deployment", async || {
        Ok(latest(&admin, "dep", "web").await? == 3)
    })
    .await?;
    controllers_caught_up(&admin).await?;
    assert_eq!(latest(&admin, "dep", "web").await?, 3, "no second firing");
    let rc = admin
        .get("/api/v1/namespaces/dep/replicationcontrollers/web-3")
        .await?
        .body;
    assert_eq!(
        rc["metadata"]["annotations"]["openshift.io/deployment.status-reason"],
        "ConfigChange"
    );
    assert_eq!(
        rc["spec"]["template"]["spec"]["containers"][0]["image"],
        deps[&2].as_str(),
        "the image stays"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_fire_exactly_once_across_a_controller_crash() -> anyhow::Result<()> {
    const STREAMS: u32 = 10;
    const PER_STREAM: u32 = 10;
    const CHANGES: u32 = 5;
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("once").await?;
    for s in 0..STREAMS {
        admin
            .post(
                "/apis/image.openshift.io/v1/namespaces/once/imagestreams",
                &json!({"kind": "ImageStream", "metadata": {"name": format!("s{s}")}}),
            )
            .await?;
        for d in 0..PER_STREAM {
            let r = admin
                .post(
                    "/apis/apps.openshift.io/v1/namespaces/once/deploymentconfigs",
                    &dc(&format!("s{s}-d{d}"), &format!("s{s}:live"), false),
                )
                .await?;
            assert_eq!(r.status, 201);
        }
    }
    // 50 tag changes, the streams concurrently; the server is killed midway.
    let half = tokio::sync::Barrier::new(STREAMS as usize + 1);
    let half = std::sync::Arc::new(half);
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let (admin, half) = (admin.clone(), half.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for c in 0..CHANGES {
                if c == 3 {
                    half.wait().await;
                }
                if map(
                    &admin,
                    "once",
                    &format!("s{s}"),
                    "live",
                    &digest(s * 100 + c),
                )
                .await
                .is_err()
                {
                    break;
                }
                done += 1;
            }
            done
        }));
    }
    half.wait().await;
    server.kill();
    let mut applied: Vec<u32> = Vec::new();
    for t in tasks {
        applied.push(t.await?);
    }
    server.restart()?;
    let admin = Api::admin(&server.url).await?;
    // Finish the changes that the kill interrupted.
    for s in 0..STREAMS {
        for c in applied[s as usize]..CHANGES {
            map(
                &admin,
                "once",
                &format!("s{s}"),
                "live",
                &digest(s * 100 + c),
            )
            .await?;
        }
    }
    // Quiet: every DC at its stream's current image.
    let want: BTreeMap<u32, String> = (0..STREAMS)
        .map(|s| {
            (
                s,
                format!("registry.test/once/s{s}@{}", digest(s * 100 + CHANGES - 1)),
            )
        })
        .collect();
    eventually("every DC at its stream's image", async || {
        let rcs = admin
            .get("/api/v1/namespaces/once/replicationcontrollers")
            .await?
            .body;
        let mut newest: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for rc in rcs["items"].as_array().unwrap() {
            let dc = rc["metadata"]["annotations"]["openshift.io/deployment-config.name"]
                .as_str()
                .unwrap()
                .to_string();
            let v: i64 = rc["metadata"]["annotations"]
                ["openshift.io/deployment-config.latest-version"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let img = rc["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string();
            if newest.get(&dc).is_none_or(|(n, _)| v > *n) {
                newest.insert(dc, (v, img));
            }
        }
        Ok(newest.len() == (STREAMS * PER_STREAM) as usize
            && newest.iter().all(|(dc, (_, img))| {
                let s: u32 = dc[1..dc.find('-').unwrap()].parse().unwrap();
                *img == want[&s]
            }))
    })
    .await?;
    controllers_caught_up(&admin).await?;
    // None twice: no image was deployed twice by one DC, versions are 1..=n
    // without gaps, and the DC's latestVersion is the newest record.
    for s in 0..STREAMS {
        for d in 0..PER_STREAM {
            let name = format!("s{s}-d{d}");
            let deps = deployments(&admin, "once", &name).await?;
            let images: std::collections::BTreeSet<&String> = deps.values().collect();
            assert_eq!(
                images.len(),
                deps.len(),
                "{name} deployed an image twice: {deps:?}"
            );
            assert_eq!(
                deps.keys().copied().collect::<Vec<_>>(),
                (1..=deps.len() as i64).collect::<Vec<_>>(),
                "{name}: {deps:?}"
            );
            assert_eq!(latest(&admin, "once", &name).await?, deps.len() as i64);
            assert!(deps.len() as u32 <= CHANGES);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psc_rollout_latest_history_and_undo() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let psc = podspace_e2e::Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "roll"]);
    admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/roll/imagestreams",
            &json!({"kind": "ImageStream", "metadata": {"name": "web"}}),
        )
        .await?;
    admin
        .post(
            "/apis/apps.openshift.io/v1/namespaces/roll/deploymentconfigs",
            &dc("web", "web:live", true),
        )
        .await?;
    map(&admin, "roll", "web", "live", &digest(1)).await?;
    eventually("version 1", async || {
        Ok(latest(&admin, "roll", "web").await? == 1)
    })
    .await?;
    map(&admin, "roll", "web", "live", &digest(2)).await?;
    eventually("version 2", async || {
        Ok(latest(&admin, "roll", "web").await? == 2)
    })
    .await?;

    let out = psc.ok(&["rollout", "latest", "dc/web"]);
    assert!(out.contains("rolled out (version 3)"), "{out}");
    let history = psc.ok(&["rollout", "history", "dc/web"]);
    let rows: Vec<&str> = history.lines().skip(2).collect();
    assert_eq!(rows.len(), 3, "{history}");
    assert!(
        rows[0].starts_with("1") && rows[0].contains("image change"),
        "{history}"
    );
    assert!(
        rows[2].starts_with("3") && rows[2].contains("manual change"),
        "{history}"
    );

    // Back to revision 1: its image comes back, and image triggers stop.
    let out = psc.ok(&["rollout", "undo", "dc/web", "--to-revision=1"]);
    assert!(out.contains("rolled back to revision 1"), "{out}");
    eventually("version 4", async || {
        Ok(latest(&admin, "roll", "web").await? == 4)
    })
    .await?;
    let deps = deployments(&admin, "roll", "web").await?;
    assert_eq!(deps[&4], deps[&1], "revision 4 runs revision 1's image");
    map(&admin, "roll", "web", "live", &digest(3)).await?;
    controllers_caught_up(&admin).await?;
    assert_eq!(
        latest(&admin, "roll", "web").await?,
        4,
        "the disabled image trigger did not fire"
    );
    let err = psc.fails(&["rollout", "undo", "dc/web", "--to-revision=9"]);
    assert!(err.contains("no revision 9"), "{err}");
    let err = psc.fails(&["rollout", "latest", "dc/nope"]);
    assert!(err.contains("(NotFound)"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_by_default_and_no_rollout_without_an_image() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("cfg").await?;
    let mut with_image = dc("ready", "unused:tag", false);
    with_image["spec"]
        .as_object_mut()
        .unwrap()
        .remove("triggers");
    with_image["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.test/cfg/app:1");
    let mut blank = with_image.clone();
    blank["metadata"]["name"] = json!("blank");
    blank["spec"]["template"]["spec"]["containers"][0]["image"] = json!(" ");
    let mut none = with_image.clone();
    none["metadata"]["name"] = json!("manual-only");
    none["spec"]["triggers"] = json!([]);
    for body in [&with_image, &blank, &none] {
        let r = admin
            .post(
                "/apis/apps.openshift.io/v1/namespaces/cfg/deploymentconfigs",
                body,
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let stored = admin
        .get("/apis/apps.openshift.io/v1/namespaces/cfg/deploymentconfigs/ready")
        .await?
        .body;
    assert_eq!(
        stored["spec"]["triggers"],
        json!([{"type": "ConfigChange"}]),
        "absent triggers default to ConfigChange"
    );
    eventually("the initial rollout", async || {
        Ok(latest(&admin, "cfg", "ready").await? == 1)
    })
    .await?;
    controllers_caught_up(&admin).await?;
    assert_eq!(
        latest(&admin, "cfg", "blank").await?,
        0,
        "a blank image postpones the rollout"
    );
    assert_eq!(
        latest(&admin, "cfg", "manual-only").await?,
        0,
        "no triggers, no rollout"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_follow_streams_of_other_projects() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("shared").await?;
    admin.new_project("team").await?;
    admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/shared/imagestreams",
            &json!({"kind": "ImageStream", "metadata": {"name": "base"}}),
        )
        .await?;
    let mut d = dc("app", "base:stable", false);
    d["spec"]["triggers"][0]["imageChangeParams"]["from"]["namespace"] = json!("shared");
    assert_eq!(
        admin
            .post(
                "/apis/apps.openshift.io/v1/namespaces/team/deploymentconfigs",
                &d
            )
            .await?
            .status,
        201
    );
    let bc = json!({"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "metadata": {"name": "app"},
        "spec": {"source": {"dockerfile": "FROM base"}, "strategy": {"type": "Docker", "dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": "base:stable", "namespace": "shared"}}},
                 "triggers": [{"type": "ImageChange", "imageChange": {}}]}});
    assert_eq!(
        admin
            .post(
                "/apis/build.openshift.io/v1/namespaces/team/buildconfigs",
                &bc
            )
            .await?
            .status,
        201
    );
    map(&admin, "shared", "base", "stable", &digest(42)).await?;
    eventually("the cross-project deployment", async || {
        Ok(latest(&admin, "team", "app").await? == 1)
    })
    .await?;
    let deps = deployments(&admin, "team", "app").await?;
    assert_eq!(
        deps[&1],
        format!("registry.test/shared/base@{}", digest(42))
    );
    eventually("the cross-project build", async || {
        let b = admin
            .get("/apis/build.openshift.io/v1/namespaces/team/builds/app-1")
            .await?;
        Ok(b.status == 200)
    })
    .await?;
    Ok(())
}

/// A controller that panics is restarted by the supervisor: the restart is
/// counted and logged, and the change it was handling is done once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_controller_is_restarted_and_fires_once() -> anyhow::Result<()> {
    let server = Server::start_with_env(&[], &[("PODSPACE_PANIC_ONCE", "controller:deployments")])?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("crash").await?;
    admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/crash/imagestreams",
            &json!({"kind": "ImageStream", "metadata": {"name": "web"}}),
        )
        .await?;
    let r = admin
        .post(
            "/apis/apps.openshift.io/v1/namespaces/crash/deploymentconfigs",
            &dc("web", "web:live", false),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    map(&admin, "crash", "web", "live", &digest(7)).await?;
    eventually("the deployment after the restart", async || {
        Ok(!deployments(&admin, "crash", "web").await?.is_empty())
    })
    .await?;
    let metrics = admin.get("/metrics").await?.text;
    assert!(
        metrics.contains("podspace_controller_restarts_total{controller=\"deployments\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("podspace_controller_up{controller=\"deployments\"} 1"),
        "{metrics}"
    );
    let ready = admin.get("/readyz").await?;
    assert_eq!(ready.status, 200, "{}", ready.text);
    // Exactly one version, with the mapped image, even though the first
    // attempt died mid-way.
    let versions = deployments(&admin, "crash", "web").await?;
    assert_eq!(
        versions,
        BTreeMap::from([(1, format!("registry.test/crash/web@{}", digest(7)))])
    );
    let log = std::fs::read_to_string(&server.log)?;
    assert!(log.contains("controller panicked; restarting"), "{log}");
    Ok(())
}
