//! Webhook deliveries against a real server: a real `git push` whose
//! post-receive hook posts an HMAC-signed GitHub delivery (openssl, curl)
//! builds exactly the pushed commit on the real engine; each provider's
//! payload picks the right commit and branch; refusals are one uniform
//! 401; replays build once, also across a restart; bounds answer 413 and
//! 429; the URL secret appears in no log line; psc sets triggers, shows
//! them and posts Generic deliveries.

use podspace_e2e::{Api, GitDaemon, Psc, Server};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../webhooks/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hook_url(server: &Server, ns: &str, bc: &str, secret: &str, kind: &str) -> String {
    format!(
        "{}/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{bc}/webhooks/{secret}/{kind}",
        server.url
    )
}

fn sign(key: &str, body: &[u8]) -> String {
    podspace_webhooks::signature::sign(key.as_bytes(), body)
}

struct Delivery<'a> {
    headers: Vec<(&'a str, String)>,
    body: Vec<u8>,
}

async fn post(
    url: &str,
    d: &Delivery<'_>,
) -> anyhow::Result<(u16, Value, reqwest::header::HeaderMap)> {
    let mut rb = reqwest::Client::new().post(url).body(d.body.clone());
    for (k, v) in &d.headers {
        rb = rb.header(*k, v);
    }
    let resp = rb.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    ))
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body` as they are on a connection of its own, and reads the answer's
/// status code and body: for what an HTTP client library would not send
/// (a body that stops early, a large one whose answer comes first).
async fn raw(url: &str, head: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    // The server may answer and close before it all is written.
    let _ = conn.write_all(body).await;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        conn.read_to_end(&mut answer),
    )
    .await??;
    let text = String::from_utf8_lossy(&answer).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

fn github(event: &str, id: &str, body: Vec<u8>) -> Delivery<'static> {
    Delivery {
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-github-event", event.into()),
            ("x-github-delivery", id.into()),
        ],
        body,
    }
}

async fn builds(api: &Api, ns: &str) -> anyhow::Result<Vec<Value>> {
    let r = api
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds"
        ))
        .await?;
    Ok(r.body["items"].as_array().cloned().unwrap_or_default())
}

async fn config(
    api: &Api,
    ns: &str,
    name: &str,
    git_ref: &str,
    triggers: Value,
) -> anyhow::Result<()> {
    let bc = json!({"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig",
        "metadata": {"name": name},
        "spec": {"source": {"git": {"uri": "https://git.example.com/shop.git", "ref": git_ref}},
                 "strategy": {"type": "Docker", "dockerStrategy": {}},
                 "runPolicy": "Parallel",
                 "triggers": triggers}});
    let r = api
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
            &bc,
        )
        .await?;
    anyhow::ensure!(r.status == 201, "creating {name}: {}", r.text);
    Ok(())
}

/// A Secret `name` with `data`.
async fn secret(api: &Api, ns: &str, name: &str, data: Value) -> anyhow::Result<()> {
    let r = api
        .post(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "creating secret {name}: {}", r.text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_payloads_refusals_replays_and_bounds() -> anyhow::Result<()> {
    let mut server = Server::start_with(&[
        "--webhook-burst",
        "5",
        "--webhook-rate",
        "0.001",
        "--webhook-read-timeout",
        "2",
    ])?;
    let api = Api::admin(&server.url).await?;
    let ns = "hooks";
    api.new_project(ns).await?;
    let gh = json!([{"type": "GitHub", "github": {"secret": "gh-url-secret-1"}}]);
    config(&api, ns, "shop", "main", gh.clone()).await?;
    config(&api, ns, "dev", "dev", gh.clone()).await?;
    config(&api, ns, "tagged", "refs/tags/v1.0", gh.clone()).await?;
    config(
        &api,
        ns,
        "lab",
        "master",
        json!([{"type": "GitLab", "gitlab": {"secretReference": {"name": "lab-hook"}}}]),
    )
    .await?;
    secret(
        &api,
        ns,
        "lab-hook",
        json!({"WebHookSecretKey": "gl-url-secret-2"}),
    )
    .await?;
    config(
        &api,
        ns,
        "bucket",
        "main",
        json!([{"type": "Bitbucket", "bitbucket": {"secret": "bb-url-secret-3"}}]),
    )
    .await?;
    config(
        &api,
        ns,
        "server",
        "master",
        json!([{"type": "Bitbucket", "bitbucket": {"secret": "bb-url-secret-3"}}]),
    )
    .await?;
    config(
        &api,
        ns,
        "generic",
        "release",
        json!([{"type": "Generic", "generic": {"secret": "ge-url-secret-4", "allowEnv": true}}]),
    )
    .await?;
    config(&api, ns, "signed", "main", json!([
        {"type": "GitHub", "github": {"secret": "old-url-secret-5"}},
        {"type": "GitHub", "github": {"secret": "si-url-secret-6", "signatureSecretRef": {"name": "signing"}}}])).await?;
    secret(
        &api,
        ns,
        "signing",
        json!({"WebHookSignatureKey": "the-signing-key"}),
    )
    .await?;

    // GitHub: a push builds exactly its head commit, the cause recorded
    // without the secret.
    let url = hook_url(&server, ns, "shop", "gh-url-secret-1", "github");
    let (code, b, _) = post(&url, &github("push", "d-1", fixture("github-push.json"))).await?;
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["kind"], "Build");
    assert_eq!(b["metadata"]["name"], "shop-1");
    assert_eq!(
        b["spec"]["revision"]["git"]["commit"],
        "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    let cause = &b["spec"]["triggeredBy"][0];
    assert_eq!(cause["message"], "GitHub WebHook", "{cause}");
    assert_eq!(cause["githubWebHook"]["secret"], "<secret>", "{cause}");
    assert!(!b.to_string().contains("gh-url-secret-1"));
    // Another branch, a deletion, a ping: 200, nothing built.
    let url_dev = hook_url(&server, ns, "dev", "gh-url-secret-1", "github");
    let (code, b, _) = post(
        &url_dev,
        &github("push", "d-2", fixture("github-push.json")),
    )
    .await?;
    assert_eq!((code, b["status"].as_str()), (200, Some("Success")), "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match"),
        "{b}"
    );
    let (code, b, _) = post(&url, &github("push", "d-3", fixture("github-delete.json"))).await?;
    assert_eq!(code, 200);
    assert!(
        b["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deleted"),
        "{b}"
    );
    // The legacy /oapi/v1 path answers the same way.
    let legacy = format!(
        "{}/oapi/v1/namespaces/{ns}/buildconfigs/dev/webhooks/gh-url-secret-1/github",
        server.url
    );
    let (code, b, _) = post(
        &legacy,
        &github("push", "d-legacy", fixture("github-push.json")),
    )
    .await?;
    assert_eq!((code, b["status"].as_str()), (200, Some("Success")), "{b}");
    let (code, _, _) = post(
        &legacy.replace("gh-url-secret-1", "nope"),
        &github("push", "d-l2", fixture("github-push.json")),
    )
    .await?;
    assert_eq!(code, 401);
    let (code, _, _) = post(
        &url,
        &github(
            "ping",
            "d-4",
            b"{\"zen\":\"Keep it logically awesome.\"}".to_vec(),
        ),
    )
    .await?;
    assert_eq!(code, 200);
    // A tag push builds only the config whose ref is that tag.
    let (_, b, _) = post(&url, &github("push", "d-5", fixture("github-tag.json"))).await?;
    assert_eq!(b["kind"], "Status", "the main config ignores the tag: {b}");
    let tag_url = hook_url(&server, ns, "tagged", "gh-url-secret-1", "github");
    let (code, b, _) = post(&tag_url, &github("push", "d-6", fixture("github-tag.json"))).await?;
    assert_eq!(
        (code, b["metadata"]["name"].as_str()),
        (200, Some("tagged-1")),
        "{b}"
    );

    // GitLab: checkout_sha, not the last commit; the secret from a Secret.
    let lab = Delivery {
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-gitlab-event", "Push Hook".into()),
            ("x-gitlab-event-uuid", "g-1".into()),
        ],
        body: fixture("gitlab-push.json"),
    };
    let (code, b, _) = post(
        &hook_url(&server, ns, "lab", "gl-url-secret-2", "gitlab"),
        &lab,
    )
    .await?;
    assert_eq!(code, 200, "{b}");
    assert_eq!(
        b["spec"]["revision"]["git"]["commit"],
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    );
    assert_eq!(
        b["spec"]["triggeredBy"][0]["gitlabWebHook"]["secret"],
        "<secret>"
    );

    // Bitbucket Cloud and Server.
    for (bc, key, file, commit) in [
        (
            "bucket",
            "repo:push",
            "bitbucket-cloud-push.json",
            "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
        ),
        (
            "server",
            "repo:refs_changed",
            "bitbucket-server-refs-changed.json",
            "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
        ),
    ] {
        let d = Delivery {
            headers: vec![
                ("content-type", "application/json".into()),
                ("x-event-key", key.into()),
                ("x-request-uuid", format!("b-{bc}")),
            ],
            body: fixture(file),
        };
        let (code, b, _) = post(
            &hook_url(&server, ns, bc, "bb-url-secret-3", "bitbucket"),
            &d,
        )
        .await?;
        assert_eq!(code, 200, "{bc}: {b}");
        assert_eq!(b["spec"]["revision"]["git"]["commit"], commit, "{bc}");
    }

    // Generic YAML with env (allowEnv), and a plain empty delivery.
    let generic_url = hook_url(&server, ns, "generic", "ge-url-secret-4", "generic");
    let d = Delivery {
        headers: vec![("content-type", "application/yaml".into())],
        body: fixture("generic.yaml"),
    };
    let (code, b, _) = post(&generic_url, &d).await?;
    assert_eq!(code, 200, "{b}");
    assert_eq!(
        b["spec"]["revision"]["git"]["commit"],
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    );
    assert_eq!(
        b["spec"]["strategy"]["dockerStrategy"]["env"][0]["name"], "FEATURE_FLAGS",
        "{b}"
    );
    assert_eq!(
        b["spec"]["strategy"]["dockerStrategy"]["noCache"], true,
        "{b}"
    );
    let (code, b, headers) = post(
        &generic_url,
        &Delivery {
            headers: vec![],
            body: b"not yaml".to_vec(),
        },
    )
    .await?;
    assert_eq!((code, b["kind"].as_str()), (200, Some("Build")), "{b}");
    assert!(headers
        .get("warning")
        .is_some_and(|w| w.to_str().unwrap_or_default().contains("Content-Type")));

    // Refusals: one 401 body for all, no build.
    let before = builds(&api, ns).await?.len();
    let signed_push = fixture("github-push.json");
    let mut refusals = vec![
        (
            hook_url(&server, ns, "shop", "wrong", "github"),
            github("push", "r-1", signed_push.clone()),
        ),
        (
            hook_url(&server, ns, "nosuch", "gh-url-secret-1", "github"),
            github("push", "r-2", signed_push.clone()),
        ),
        (
            hook_url(&server, ns, "shop", "gh-url-secret-1", "gitlab"),
            github("push", "r-3", signed_push.clone()),
        ),
        // The signing trigger's URL secret without a signature, and with a wrong one.
        (
            hook_url(&server, ns, "signed", "si-url-secret-6", "github"),
            github("push", "r-4", signed_push.clone()),
        ),
    ];
    let mut wrong = github("push", "r-5", signed_push.clone());
    wrong
        .headers
        .push(("x-hub-signature-256", sign("not-the-key", &signed_push)));
    refusals.push((
        hook_url(&server, ns, "signed", "si-url-secret-6", "github"),
        wrong,
    ));
    let mut bodies = Vec::new();
    for (url, d) in &refusals {
        let (code, b, _) = post(url, d).await?;
        assert_eq!(code, 401, "{url}: {b}");
        bodies.push(
            b["message"]
                .as_str()
                .unwrap_or_default()
                .replace("nosuch", "X")
                .replace("signed", "X")
                .replace("shop", "X")
                .replace("gitlab", "github"),
        );
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one body for every refusal: {bodies:?}"
    );
    assert_eq!(
        builds(&api, ns).await?.len(),
        before,
        "a refusal builds nothing"
    );
    // Signed right: built. The other trigger's secret needs no signature.
    let mut good = github("push", "s-1", signed_push.clone());
    good.headers
        .push(("x-hub-signature-256", sign("the-signing-key", &signed_push)));
    let (code, b, _) = post(
        &hook_url(&server, ns, "signed", "si-url-secret-6", "github"),
        &good,
    )
    .await?;
    assert_eq!(
        (code, b["metadata"]["name"].as_str()),
        (200, Some("signed-1")),
        "{b}"
    );
    let (code, _, _) = post(
        &hook_url(&server, ns, "signed", "old-url-secret-5", "github"),
        &github("push", "s-2", signed_push.clone()),
    )
    .await?;
    assert_eq!(code, 200);

    // Replays: ten copies of one delivery, one build, each answered with it.
    let replay = github("push", "replayed-delivery", fixture("github-push.json"));
    let mut names = Vec::new();
    for _ in 0..10 {
        let (code, b, _) = post(&url, &replay).await?;
        assert_eq!(code, 200, "{b}");
        names.push(
            b["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(names.iter().all(|n| n == "shop-2"), "{names:?}");
    // Also after a restart.
    server.restart()?;
    let (code, b, _) = post(
        &hook_url(&server, ns, "shop", "gh-url-secret-1", "github"),
        &replay,
    )
    .await?;
    assert_eq!(
        (code, b["metadata"]["name"].as_str()),
        (200, Some("shop-2")),
        "{b}"
    );
    let api = Api::admin(&server.url).await?;
    let shop_builds = builds(&api, ns)
        .await?
        .into_iter()
        .filter(|b| {
            b["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("shop-"))
        })
        .count();
    assert_eq!(shop_builds, 2);
    let url = hook_url(&server, ns, "shop", "gh-url-secret-1", "github");

    // Bounds: 11 MiB is refused unread (the answer comes with no body
    // sent), and also when it arrives chunked; a body that stops arriving
    // is 408 after the read deadline; a sixth delivery in a burst of five
    // (buckets start full after the restart) is 429.
    let path = url.trim_start_matches(&server.url);
    let head = |extra: &str| {
        format!("POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n{extra}")
    };
    let (code, text) = raw(&url, &head(&format!("Content-Length: {}", 11 << 20)), b"").await?;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("larger than 10485760 bytes"), "{text}");
    let chunk = vec![b' '; 1 << 20];
    let mut chunked = Vec::new();
    for _ in 0..11 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (code, text) = raw(&url, &head("Transfer-Encoding: chunked"), &chunked).await?;
    assert_eq!(code, 413, "{text}");
    let started = std::time::Instant::now();
    let (code, text) = raw(&url, &head("Content-Length: 100"), b"{\"ref\":").await?;
    assert_eq!(code, 408, "{text}");
    assert!(text.contains("did not arrive in time"), "{text}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(
            post(
                &url_dev_at(&server, ns),
                &github("push", &format!("rate-{i}"), fixture("github-push.json")),
            )
            .await?
            .0,
        );
    }
    assert_eq!(
        codes,
        [200, 200, 200, 200, 200, 429],
        "a burst beyond 5 is limited"
    );

    // Refusals are written in batches, and at a graceful stop at the
    // latest: this one (the only one sent to the gitlab path) must be in
    // the history after the restart.
    let wrong = hook_url(&server, ns, "shop", "wrong-after-restart", "gitlab");
    let (code, _, _) = post(
        &wrong,
        &github("push", "refused-late", fixture("github-push.json")),
    )
    .await?;
    assert_eq!(code, 401);
    server.restart_in_place(std::time::Duration::ZERO)?;

    // The history: psc describe shows URLs with <secret> and the deliveries.
    let psc = Psc::new()?;
    psc.ok(&[
        "login",
        &server.url,
        "-u",
        "admin",
        "-p",
        podspace_e2e::ADMIN_PASSWORD,
    ]);
    let text = psc.ok(&["describe", "bc", "shop", "-n", ns]);
    assert!(
        text.contains("/buildconfigs/shop/webhooks/<secret>/github"),
        "{text}"
    );
    assert!(
        text.contains("github:replayed-delivery") && text.contains("build shop-2"),
        "{text}"
    );
    assert!(
        text.contains("refused: the URL secret matches no trigger")
            && text.contains("gitlab:refused-"),
        "{text}"
    );

    // The URL secrets are in no log line.
    let log = server.log_text();
    for s in [
        "gh-url-secret-1",
        "gl-url-secret-2",
        "bb-url-secret-3",
        "ge-url-secret-4",
        "si-url-secret-6",
        "the-signing-key",
    ] {
        assert!(!log.contains(s), "{s} is in the server log");
    }
    assert!(
        log.contains("/webhooks/***/github"),
        "the access log shows the redacted path"
    );
    Ok(())
}

fn url_dev_at(server: &Server, ns: &str) -> String {
    hook_url(server, ns, "tagged", "gh-url-secret-1", "github")
}

/// A real `git push` to a bare repository whose post-receive hook signs a
/// GitHub-shaped delivery with openssl and posts it with curl: the build
/// checks out exactly the pushed commit, runs on the engine, and its
/// image lands in the stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_git_push_builds_the_pushed_commit() -> anyhow::Result<()> {
    let server = Server::start_with(&["--node-slots", "1"])?;
    let api = Api::admin(&server.url).await?;
    let ns = "pushed";
    api.new_project(ns).await?;
    let token = api.token.clone().unwrap_or_default();
    podspace_e2e::push_busybox_bases(&server.registry, &token, &[ns])?;
    let git = GitDaemon::start()?;
    let dockerfile = format!(
        "FROM {}/{ns}/base:1\nCOPY hello.txt /hello.txt\n",
        server.registry
    );
    git.commit(
        "app",
        &[("Dockerfile", &dockerfile), ("hello.txt", "first\n")],
        "first",
    )?;
    let psc = Psc::new()?;
    psc.ok(&[
        "login",
        &server.url,
        "-u",
        "admin",
        "-p",
        podspace_e2e::ADMIN_PASSWORD,
    ]);
    psc.ok(&["project", ns]);
    let bc = json!({"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "metadata": {"name": "app"},
        "spec": {"source": {"git": {"uri": git.url("app"), "ref": "main"}},
                 "strategy": {"type": "Docker", "dockerStrategy": {}},
                 "output": {"to": {"kind": "ImageStreamTag", "name": "app:latest"}}}});
    api.post(
        &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
        &bc,
    )
    .await?;
    api.post(&format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams"),
        &json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "app"}})).await?;
    // psc makes the trigger, its URL secret and a signing key.
    let said = psc.ok(&["set", "triggers", "bc/app", "--from-github", "--sign"]);
    let url = said
        .lines()
        .find_map(|l| l.split_once("): ").map(|(_, u)| u.trim().to_string()))
        .ok_or_else(|| anyhow::anyhow!("no URL in {said}"))?;
    let key = said
        .lines()
        .find_map(|l| l.strip_prefix("GitHub signing secret (the hook's \"Secret\"): "))
        .ok_or_else(|| anyhow::anyhow!("no signing key in {said}"))?
        .trim()
        .to_string();
    let described = psc.ok(&["describe", "bc", "app"]);
    let secret = url.rsplit('/').nth(1).unwrap_or_default().to_string();
    assert!(
        !described.contains(&secret) && described.contains("webhooks/<secret>/github"),
        "{described}"
    );
    assert!(described.contains("Signature:\trequired"), "{described}");
    // --show-secrets: the whole URL for who may read the Secret; a viewer
    // sees why not.
    let shown = psc.ok(&["describe", "bc", "app", "--show-secrets"]);
    assert!(
        shown.contains(&format!("webhooks/{secret}/github")),
        "{shown}"
    );
    api.create_user("viewer", "viewer-password").await?;
    api.grant(ns, "view", "viewer").await?;
    let viewer = Psc::new()?;
    viewer.ok(&[
        "login",
        &server.url,
        "-u",
        "viewer",
        "-p",
        "viewer-password",
    ]);
    let seen = viewer.ok(&["describe", "bc", "app", "-n", ns, "--show-secrets"]);
    assert!(
        !seen.contains(&secret) && seen.contains("webhooks/<secret>/github"),
        "{seen}"
    );
    assert!(
        seen.contains("not shown: reading Secret app-github-webhook"),
        "{seen}"
    );

    let out_dir = tempfile::tempdir()?;
    let hook = format!(
        r#"#!/bin/sh
while read old new ref; do
  msg=$(git log -1 --format=%s "$new")
  an=$(git log -1 --format=%an "$new"); ae=$(git log -1 --format=%ae "$new")
  body=$(printf '{{"ref":"%s","before":"%s","after":"%s","deleted":false,"head_commit":{{"id":"%s","message":"%s","author":{{"name":"%s","email":"%s"}},"committer":{{"name":"%s","email":"%s"}}}}}}' "$ref" "$old" "$new" "$new" "$msg" "$an" "$ae" "$an" "$ae")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac '{key}' | sed 's/^.*= //')
  printf '%s' "$body" | curl -sS -o '{out}/body' -w '%{{http_code}}' -X POST \
    -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
    -H "X-GitHub-Delivery: $new" -H "X-Hub-Signature-256: sha256=$sig" \
    --data-binary @- '{url}' > '{out}/code'
done
"#,
        out = out_dir.path().display()
    );
    git.hook("app", "post-receive", &hook)?;
    let pushed = git.commit(
        "app",
        &[("hello.txt", "pushed through the hook\n")],
        "second",
    )?;
    let code = std::fs::read_to_string(out_dir.path().join("code"))?;
    let body = std::fs::read_to_string(out_dir.path().join("body"))?;
    assert_eq!(code.trim(), "200", "{body}");
    let answered: Value = serde_json::from_str(&body)?;
    let name = answered["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let done = podspace_e2e::wait_build(&api, ns, &name).await?;
    let log = podspace_e2e::build_log(&api, ns, &name).await?;
    assert_eq!(done["status"]["phase"], "Complete", "{log}");
    assert_eq!(done["spec"]["revision"]["git"]["commit"], pushed.as_str());
    assert_eq!(
        done["spec"]["triggeredBy"][0]["githubWebHook"]["secret"],
        "<secret>"
    );
    let istag = api
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/app:latest"
        ))
        .await?;
    let digest = done["status"]["output"]["to"]["imageDigest"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !digest.is_empty() && istag.body["image"]["metadata"]["name"] == digest,
        "{}",
        istag.text
    );

    // The Generic webhook from a post-receive hook's input, through psc.
    let said = psc.ok(&["set", "triggers", "bc/app", "--from-webhook"]);
    let generic = said
        .lines()
        .find_map(|l| l.split_once("): ").map(|(_, u)| u.trim().to_string()))
        .ok_or_else(|| anyhow::anyhow!("no URL in {said}"))?;
    assert!(psc
        .ok(&["describe", "bc", "app"])
        .contains("webhooks/<secret>/generic"));
    let input = out_dir.path().join("post-receive-input");
    std::fs::write(
        &input,
        format!("0000000000000000000000000000000000000000 {pushed} refs/heads/main\n"),
    )?;
    let said = psc.ok(&[
        "start-build",
        "--from-webhook",
        &generic,
        "--git-post-receive",
        &input.display().to_string(),
    ]);
    let name = said
        .trim()
        .strip_prefix("build.build.openshift.io/")
        .and_then(|s| s.strip_suffix(" started"))
        .ok_or_else(|| anyhow::anyhow!("{said}"))?;
    let b = api
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds/{name}"
        ))
        .await?;
    assert_eq!(
        b.body["spec"]["revision"]["git"]["commit"],
        pushed.as_str(),
        "{}",
        b.text
    );
    assert_eq!(
        b.body["spec"]["triggeredBy"][0]["message"],
        "Generic WebHook"
    );
    Ok(())
}
