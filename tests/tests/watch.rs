//! Watches over HTTP: replay from a resourceVersion, live events, resume
//! after a server restart, selectors, and the legacy prefix.

use std::time::Duration;

use futures_util::StreamExt;
use podspace_e2e::{Api, Server};
use serde_json::{json, Value};

const IS: &str = "/apis/image.openshift.io/v1/namespaces/w/imagestreams";

/// Reads watch lines until `n` events arrived (or 10 s passed).
async fn events(api: &Api, path: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let resp = api.request(reqwest::Method::GET, path).send().await?;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await;
        let Ok(Some(chunk)) = chunk else { break };
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let v: Value = serde_json::from_slice(&line)?;
            out.push((
                v["type"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}:{}",
                    v["object"]["apiVersion"].as_str().unwrap_or_default(),
                    v["object"]["metadata"]["name"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(out)
}

fn stream(name: &str, app: &str) -> Value {
    json!({"kind": "ImageStream", "metadata": {"name": name, "labels": {"app": app}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_live_and_resume_after_restart() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("w").await?;
    admin.post(IS, &stream("first", "a")).await?;
    let rv = admin.get(IS).await?.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // Live: open the watch, then change things.
    let watcher = {
        let admin = admin.clone();
        let path = format!("{IS}?watch=true&resourceVersion={rv}");
        tokio::spawn(async move { events(&admin, &path, 3).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin.post(IS, &stream("second", "b")).await?;
    admin
        .merge_patch(
            &format!("{IS}/second"),
            &json!({"metadata": {"labels": {"app": "c"}}}),
        )
        .await?;
    admin.delete(&format!("{IS}/first")).await?;
    let got = watcher.await??;
    let types: Vec<_> = got.iter().map(|(t, n)| format!("{t} {n}")).collect();
    assert_eq!(
        types,
        [
            "ADDED image.openshift.io/v1:second",
            "MODIFIED image.openshift.io/v1:second",
            "DELETED image.openshift.io/v1:first"
        ]
    );

    // Resume from the same resourceVersion after the server was killed.
    server.restart()?;
    let admin = Api::admin(&server.url).await?;
    admin.post(IS, &stream("third", "a")).await?;
    let got = events(&admin, &format!("{IS}?watch=true&resourceVersion={rv}"), 4).await?;
    let names: Vec<_> = got.iter().map(|(t, n)| format!("{t} {n}")).collect();
    assert_eq!(names[3], "ADDED image.openshift.io/v1:third", "{names:?}");
    assert_eq!(names.len(), 4);

    // Without a resourceVersion: the current objects first.
    let got = events(&admin, &format!("{IS}?watch=true"), 2).await?;
    let mut initial: Vec<_> = got.iter().map(|(t, n)| format!("{t} {n}")).collect();
    initial.sort();
    assert_eq!(
        initial,
        [
            "ADDED image.openshift.io/v1:second",
            "ADDED image.openshift.io/v1:third"
        ]
    );

    // Selectors filter, and the legacy prefix speaks apiVersion v1.
    let got = events(&admin, &format!("/oapi/v1/namespaces/w/imagestreams?watch=true&resourceVersion={rv}&labelSelector=app%3Da"), 2).await?;
    let got: Vec<_> = got.iter().map(|(t, n)| format!("{t} {n}")).collect();
    assert_eq!(got, ["DELETED v1:first", "ADDED v1:third"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_stops_at_its_timeout() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("w").await?;
    let start = std::time::Instant::now();
    let r = admin
        .get(&format!("{IS}?watch=true&timeoutSeconds=1"))
        .await?;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() < Duration::from_secs(5));
    Ok(())
}
