//! What one client can make the server hold is bounded: upload sessions
//! (capped per principal, idle ones hold no descriptor), connections (per
//! address, header and body deadlines), nesting depth of bodies, password
//! guesses, annotation size; and an object's identity cannot be changed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use podspace_e2e::{unique, Api, Psc, Server, TinyImage, ADMIN_PASSWORD};
use serde_json::json;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn upload_post(
    http: &reqwest::Client,
    registry: &str,
    repo: &str,
    token: &str,
) -> reqwest::Response {
    http.post(format!("http://{registry}/v2/{repo}/blobs/uploads/"))
        .bearer_auth(token)
        .send()
        .await
        .expect("POST reaches the registry")
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_sessions_are_capped_and_idle_ones_hold_no_descriptor() -> anyhow::Result<()> {
    let server = Server::start_with(&["--max-uploads-per-user", "50"])?;
    let admin = Api::admin(&server.url).await?;
    let (pa, pb) = (unique("upa"), unique("upb"));
    admin.new_project(&pa).await?;
    admin.new_project(&pb).await?;
    let user = unique("uploader");
    let mallory = admin.create_user(&user, "pw-uploader-1").await?;
    admin.grant(&pa, "edit", &user).await?;
    let token = mallory.token.clone().unwrap_or_default();
    let http = reqwest::Client::new();
    let before = open_fds(server.pid());
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..80 {
        let r = upload_post(&http, &server.registry, &format!("{pa}/app"), &token).await;
        match r.status().as_u16() {
            202 => accepted += 1,
            429 => {
                refused = Some((r.headers().get("retry-after").cloned(), r.text().await?));
            }
            other => anyhow::bail!("unexpected {other}: {}", r.text().await?),
        }
    }
    assert_eq!(accepted, 50, "the per-user cap");
    let (retry, body) = refused.expect("the sessions past the cap are refused");
    assert!(retry.is_some(), "429 has a Retry-After");
    assert!(body.contains("TOOMANYREQUESTS"), "{body}");
    // 50 idle sessions: no descriptor each (a few for other work at most).
    let after = open_fds(server.pid());
    assert!(
        after < before + 10,
        "idle upload sessions hold descriptors: {before} → {after}"
    );
    // Another tenant pushes a blob and a manifest meanwhile.
    let admin_token = admin.token.clone().unwrap_or_default();
    let image = TinyImage::default();
    let repo = format!("{pb}/other");
    let status = image
        .push_config(&http, &server.registry, &admin_token, &repo)
        .await?;
    assert_eq!(status, 201);
    let r = image
        .push_manifest(&http, &server.registry, &admin_token, &repo, "v1", 0)
        .await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    Ok(())
}

/// Reads until the server closes the connection; returns what it sent.
fn read_to_close(mut s: TcpStream, limit: Duration) -> anyhow::Result<String> {
    s.set_read_timeout(Some(limit))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(String::from_utf8_lossy(&out).into_owned())
            }
            Err(e) => anyhow::bail!("the server kept the connection open: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off() -> anyhow::Result<()> {
    let server = Server::start_with(&[
        "--header-timeout",
        "2",
        "--body-idle-timeout",
        "2",
        "--max-connections-per-ip",
        "20",
    ])?;
    let addr = server.url.trim_start_matches("http://").to_string();
    // 20 connections that never finish their headers; the 21st and later
    // are refused at once with 429.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr)?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")?;
        held.push(s);
    }
    let extra = TcpStream::connect(&addr)?;
    let answer = read_to_close(extra, Duration::from_secs(5))?;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(answer.contains("Retry-After"), "{answer:?}");
    // The header deadline closes the half-open ones.
    let started = Instant::now();
    for s in held {
        read_to_close(s, Duration::from_secs(10))?;
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // Then the address may connect again.
    let mut s = TcpStream::connect(&addr)?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let answer = read_to_close(s, Duration::from_secs(5))?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // A chunked body that stalls is cut off by the body idle deadline.
    let admin = Api::admin(&server.url).await?;
    admin.new_project("slow").await?;
    let token = admin.token.clone().unwrap_or_default();
    let reg = server.registry.clone();
    let http = reqwest::Client::new();
    let r = upload_post(&http, &reg, "slow/app", &token).await;
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut s = TcpStream::connect(&reg)?;
    write!(
        s,
        "PATCH {location} HTTP/1.1\r\nHost: {reg}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )?;
    let answer = read_to_close(s, Duration::from_secs(10))?;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a stalled body ends with an error or a close: {answer:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_documents_are_refused_before_parsing() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("deep").await?;
    let path = "/apis/image.openshift.io/v1/namespaces/deep/imagestreams";
    let deep_yaml = format!(
        "kind: ImageStream\nmetadata: {{name: x}}\nspec: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_json = format!(
        "{{\"kind\":\"ImageStream\",\"metadata\":{{\"name\":\"y\"}},\"spec\":{}1{}}}",
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    for (ct, body) in [
        ("application/yaml", &deep_yaml),
        ("application/json", &deep_json),
    ] {
        let r = admin
            .send(
                admin
                    .request(reqwest::Method::POST, path)
                    .header("content-type", ct)
                    .body(body.clone()),
            )
            .await?;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.body["kind"], "Status");
        assert!(
            r.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("nests deeper than 128 levels"),
            "{}",
            r.text
        );
    }
    assert_eq!(admin.get(path).await?.body["items"], json!([]));
    // psc refuses it too, before sending.
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("deep.yaml");
    std::fs::write(&file, &deep_yaml)?;
    let err = psc.fails(&["create", "-n", "deep", "-f", &file.display().to_string()]);
    assert!(err.contains("nests deeper than 128 levels"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn password_guessing_is_throttled_without_locking_the_user_out() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let user = unique("alice");
    admin.create_user(&user, "the-real-password").await?;
    let attacker = reqwest::Client::new();
    let (mut refused, mut throttled) = (0, 0);
    for i in 0..50 {
        let r = podspace_e2e::password_login(&attacker, &server.url, &user, &format!("guess-{i}"))
            .await?;
        match r.status().as_u16() {
            401 => refused += 1,
            429 => {
                throttled += 1;
                assert!(r.headers().contains_key("retry-after"));
                let body: serde_json::Value = r.json().await?;
                assert_eq!(body["error"], "temporarily_unavailable");
            }
            other => anyhow::bail!("unexpected {other}"),
        }
    }
    // Five guesses, then a wait (a slow machine may see the first wait of
    // 1 s end once or twice during the loop, which doubles it).
    assert!(
        (5..=7).contains(&refused) && throttled >= 43,
        "{refused} refused, {throttled} throttled"
    );
    // The right password from the attacker's address waits too...
    let r =
        podspace_e2e::password_login(&attacker, &server.url, &user, "the-real-password").await?;
    assert_eq!(r.status(), 429);
    // ...the registry's token endpoint shares the count...
    let r = attacker
        .get(format!("{}/v2/token?service=podspace-registry", server.url))
        .basic_auth(&user, Some("another-guess"))
        .send()
        .await?;
    assert_eq!(r.status(), 429);
    assert!(r.text().await?.contains("TOOMANYREQUESTS"));
    // ...but the real user, from another address, logs in.
    let elsewhere = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse()?))
        .build()?;
    let r =
        podspace_e2e::password_login(&elsewhere, &server.url, &user, "the-real-password").await?;
    assert_eq!(r.status(), 200, "the real user is not locked out");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn annotation_size_and_immutable_identity() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("ids").await?;
    let path = "/apis/image.openshift.io/v1/namespaces/ids/imagestreams";
    let big = "x".repeat(300 * 1024);
    let r = admin
        .post(
            path,
            &json!({"metadata": {"name": "big", "annotations": {"a": big}}}),
        )
        .await?;
    assert_eq!(r.status, 422, "{}", &r.text[..r.text.len().min(300)]);
    assert!(
        r.text.contains("metadata.annotations"),
        "{}",
        &r.text[..200]
    );
    let r = admin
        .post(path, &json!({"metadata": {"name": "web"}}))
        .await?;
    assert_eq!(r.status, 201);
    let uid = r.body["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A merge patch that renames: 422, nothing changed.
    let r = admin
        .send(
            admin
                .request(reqwest::Method::PATCH, &format!("{path}/web"))
                .header("content-type", "application/merge-patch+json")
                .body(json!({"metadata": {"name": "other"}}).to_string()),
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("metadata.name"), "{}", r.text);
    for (field, value) in [("namespace", "elsewhere"), ("uid", "0000-forged")] {
        let r = admin
            .send(
                admin
                    .request(reqwest::Method::PATCH, &format!("{path}/web"))
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({"metadata": {field: value}}).to_string()),
            )
            .await?;
        assert_eq!(r.status, 422, "{field}: {}", r.text);
    }
    // A PUT with another uid: 422 too.
    let mut obj = admin.get(&format!("{path}/web")).await?.body;
    obj["metadata"]["uid"] = json!("1111-forged");
    let r = admin.put(&format!("{path}/web"), &obj).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let now = admin.get(&format!("{path}/web")).await?.body;
    assert_eq!(now["metadata"]["uid"], uid.as_str());
    Ok(())
}

/// `--upload-ttl` is honoured within seconds, not at a daily sweep: an
/// abandoned session (with bytes in it) is gone, its slot under the cap is
/// free again.
#[tokio::test(flavor = "multi_thread")]
async fn abandoned_upload_sessions_expire_and_free_their_slot() -> anyhow::Result<()> {
    let server = Server::start_with(&["--upload-ttl", "2", "--max-uploads-per-user", "1"])?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("ttl").await?;
    let token = admin.token.clone().unwrap_or_default();
    let http = reqwest::Client::new();
    let r = upload_post(&http, &server.registry, "ttl/app", &token).await;
    assert_eq!(r.status(), 202);
    let location = format!(
        "http://{}{}",
        server.registry,
        r.headers()["location"].to_str()?
    );
    let r = http
        .patch(&location)
        .bearer_auth(&token)
        .header("content-range", "0-4")
        .body("hello")
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    // The cap of one is reached.
    let r = upload_post(&http, &server.registry, "ttl/app", &token).await;
    assert_eq!(r.status(), 429);
    // Abandoned: the sweep removes it, and the slot is free again.
    let started = Instant::now();
    podspace_e2e::eventually("the abandoned upload expires", async || {
        let r = http.get(&location).bearer_auth(&token).send().await?;
        Ok(r.status() == 404)
    })
    .await?;
    assert!(started.elapsed() < Duration::from_secs(60));
    let r = upload_post(&http, &server.registry, "ttl/app", &token).await;
    assert_eq!(r.status(), 202, "the slot is free");
    Ok(())
}
