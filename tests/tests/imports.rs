//! Importing from another registry (Debian's docker-registry on loopback):
//! a tag set from an external image is imported, a scheduled one follows
//! the source when it moves, and a failure is reported on the tag.

use podspace_e2e::{
    controller_reconciles, eventually, tag_history, unique, Api, Distribution, DockerCli, Psc,
    Server, ADMIN_PASSWORD,
};
use serde_json::Value;

/// Pushes a fresh busybox image to the other registry; returns its digest.
fn push_other(docker: &DockerCli, remote: &str, filler: usize) -> anyhow::Result<String> {
    let local = unique("podspace-test/imp");
    docker.busybox_image_with(&local, filler)?;
    docker.ok(&["tag", &local, remote]);
    let out = docker.ok(&["push", remote]);
    docker.ok(&["rmi", &local, remote]);
    Ok(out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_scheduled_import_from_another_registry() -> anyhow::Result<()> {
    let other = Distribution::start().await?;
    let docker = DockerCli::new()?;
    let remote = format!("{}/library/app:1", other.addr);
    let first = push_other(&docker, &remote, 500)?;

    let server = Server::start_with(&["--import-interval", "1"])?;
    let admin = Api::admin(&server.url).await?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "imp"]);
    psc.ok(&["tag", "--scheduled", &remote, "web:ext"]);
    eventually("the first import", async || {
        Ok(tag_history(&admin, "imp", "web", "ext").await? == [first.clone()])
    })
    .await?;
    let istag = admin
        .get("/apis/image.openshift.io/v1/namespaces/imp/imagestreamtags/web:ext")
        .await?
        .body;
    assert_eq!(
        istag["image"]["dockerImageReference"],
        format!("{}/library/app@{first}", other.addr)
    );
    assert_eq!(
        istag["image"]["dockerImageMetadata"]["Config"]["Cmd"][0], "/bin/sh",
        "metadata came along"
    );

    // Unchanged source: the history does not grow, after the controller
    // has looked again (each of its one-second ticks checks the stream).
    let before = controller_reconciles(&admin, "imports").await?;
    eventually("two more scheduled checks", async || {
        Ok(controller_reconciles(&admin, "imports").await? >= before + 2)
    })
    .await?;
    assert_eq!(
        tag_history(&admin, "imp", "web", "ext").await?,
        std::slice::from_ref(&first)
    );

    // The source moves: the scheduled tag follows.
    let second = push_other(&docker, &remote, 900)?;
    eventually("the scheduled re-import", async || {
        Ok(tag_history(&admin, "imp", "web", "ext").await? == [second.clone(), first.clone()])
    })
    .await?;

    // A one-time import (not scheduled) does not follow.
    psc.ok(&["tag", &remote, "web:once"]);
    eventually("the one-time import", async || {
        Ok(tag_history(&admin, "imp", "web", "once").await? == [second.clone()])
    })
    .await?;
    let third = push_other(&docker, &remote, 1300)?;
    eventually("the scheduled tag to move", async || {
        Ok(tag_history(&admin, "imp", "web", "ext").await?.first() == Some(&third))
    })
    .await?;
    assert_eq!(
        tag_history(&admin, "imp", "web", "once").await?,
        std::slice::from_ref(&second)
    );

    // A missing image: an ImportSuccess=False condition, no history.
    psc.ok(&[
        "tag",
        &format!("{}/library/missing:9", other.addr),
        "web:gone",
    ]);
    eventually("the failure condition", async || {
        let s = admin
            .get("/apis/image.openshift.io/v1/namespaces/imp/imagestreams/web")
            .await?
            .body;
        let gone = s["status"]["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["tag"] == "gone")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(gone["conditions"][0]["type"] == "ImportSuccess"
            && gone["conditions"][0]["status"] == "False")
    })
    .await?;
    assert!(tag_history(&admin, "imp", "web", "gone").await?.is_empty());
    let described = psc.ok(&["describe", "is", "web"]);
    assert!(
        described.contains("  ! error: Import failed (ImportFailed): "),
        "{described}"
    );
    assert!(
        described.contains(&format!("  updates automatically from registry {remote}")),
        "{described}"
    );

    // The ImageStreamImport resource: a dry run, then a real import.
    let request = |import: bool| {
        serde_json::json!({
            "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamImport", "metadata": {"name": "oneshot"},
            "spec": {"import": import, "images": [
                {"from": {"kind": "DockerImage", "name": remote}, "to": {"name": "v1"}},
                {"from": {"kind": "DockerImage", "name": format!("{}/library/missing:1", other.addr)}, "to": {"name": "v2"}}
            ]}
        })
    };
    let dry = admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/imp/imagestreamimports",
            &request(false),
        )
        .await?;
    assert_eq!(dry.status, 201, "{}", dry.text);
    assert_eq!(
        dry.body["status"]["images"][0]["status"]["status"],
        "Success"
    );
    assert_eq!(
        dry.body["status"]["images"][0]["image"]["metadata"]["name"],
        third.as_str()
    );
    assert_eq!(
        dry.body["status"]["images"][1]["status"]["status"],
        "Failure"
    );
    assert_eq!(
        admin
            .get("/apis/image.openshift.io/v1/namespaces/imp/imagestreams/oneshot")
            .await?
            .status,
        404,
        "a dry run stores nothing"
    );
    let real = admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/imp/imagestreamimports",
            &request(true),
        )
        .await?;
    assert_eq!(real.status, 201, "{}", real.text);
    let istag = admin
        .get("/apis/image.openshift.io/v1/namespaces/imp/imagestreamtags/oneshot:v1")
        .await?;
    assert_eq!(
        istag.body["image"]["metadata"]["name"],
        third.as_str(),
        "{}",
        istag.text
    );

    // psc import-image: a new stream needs --confirm; the result is printed.
    let err = psc.fails(&["import-image", "fresh:v1", "--from", &remote]);
    assert!(err.contains("--confirm"), "{err}");
    let out = psc.ok(&["import-image", "fresh:v1", "--from", &remote, "--confirm"]);
    assert!(
        out.starts_with("imagestream.image.openshift.io/fresh imported\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("  * {}/library/app@{third}", other.addr)),
        "{out}"
    );
    // A whole repository.
    push_other(&docker, &format!("{}/library/app:2", other.addr), 300)?;
    let out = psc.ok(&[
        "import-image",
        "whole",
        "--from",
        &format!("{}/library/app", other.addr),
        "--all",
        "--confirm",
    ]);
    assert!(
        out.starts_with("imagestream.image.openshift.io/whole imported\n"),
        "{out}"
    );
    assert_eq!(
        tag_history(&admin, "imp", "whole", "1").await?,
        std::slice::from_ref(&third)
    );
    assert_eq!(tag_history(&admin, "imp", "whole", "2").await?.len(), 1);
    let err = psc.fails(&["import-image", "whole:1", "--from", &remote, "--all"]);
    assert!(err.contains("without a tag"), "{err}");

    // Re-import of an existing tag without --from.
    psc.ok(&["import-image", "fresh:v1"]);
    let out = psc.run(&[
        "import-image",
        "broken",
        "--from",
        &format!("{}/library/missing:1", other.addr),
        "--confirm",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: tag latest failed: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Pushes a small image into a podspace registry over HTTP; returns its digest.
async fn push_into(server: &Server, token: &str, repo: &str, tag: &str) -> anyhow::Result<String> {
    use sha2::Digest;
    let sha = |d: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(d)));
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.registry);
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/app"]}}"#.to_vec();
    let layer = b"private layer".to_vec();
    for blob in [&config, &layer] {
        let r = http
            .post(format!(
                "{base}/v2/{repo}/blobs/uploads/?digest={}",
                sha(blob)
            ))
            .bearer_auth(token)
            .body(blob.clone())
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "blob: {}", r.status());
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len()}],
    }))?;
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .bearer_auth(token)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "manifest: {}", r.status());
    Ok(sha(&manifest))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_a_registry_that_needs_a_pull_secret() -> anyhow::Result<()> {
    use base64::Engine;
    let source = Server::start()?;
    let source_admin = Api::admin(&source.url).await?;
    source_admin.new_project("src").await?;
    let pushed = push_into(
        &source,
        source_admin.token.as_deref().unwrap(),
        "src/app",
        "v1",
    )
    .await?;

    let server = Server::start_with(&["--import-interval", "1"])?;
    let admin = Api::admin(&server.url).await?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "imp"]);
    let from = format!("{}/src/app:v1", source.registry);
    psc.ok(&["tag", &from, "web:priv"]);
    eventually("the refused anonymous import", async || {
        let s = admin
            .get("/apis/image.openshift.io/v1/namespaces/imp/imagestreams/web")
            .await?
            .body;
        let t = s["status"]["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["tag"] == "priv")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(t["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("401")))
    })
    .await?;

    // A pull secret for the source registry, then the import again.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    let config = serde_json::json!({"auths": {source.registry.clone(): {"auth": auth}}});
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "source-pull"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config.to_string())}
    });
    assert_eq!(
        admin
            .post("/api/v1/namespaces/imp/secrets", &secret)
            .await?
            .status,
        201
    );
    psc.ok(&["tag", &from, "web:priv"]);
    eventually("the authenticated import", async || {
        Ok(tag_history(&admin, "imp", "web", "priv").await? == std::slice::from_ref(&pushed))
    })
    .await?;
    Ok(())
}
