//! The OCI distribution protocol over HTTP: every endpoint, its errors, and
//! who may do what.

use base64::Engine;
use podspace_e2e::{Api, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A registry client holding a bearer credential.
struct Reg {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

impl Reg {
    fn anonymous(server: &Server) -> Reg {
        Reg {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.registry),
            auth: None,
        }
    }

    /// Through the token flow, as docker does, for `scopes`.
    async fn token(server: &Server, user: &str, secret: &str, scopes: &[&str]) -> Reg {
        let mut url = format!("{}/v2/token?service=podspace-registry", server.url);
        for s in scopes {
            url.push_str(&format!("&scope={s}"));
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        let resp = reqwest::Client::new()
            .get(url)
            .header("authorization", format!("Basic {basic}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "token for {user}");
        let v: Value = resp.json().await.unwrap();
        Reg {
            auth: Some(format!("Bearer {}", v["token"].as_str().unwrap())),
            ..Reg::anonymous(server)
        }
    }

    /// With an API token used directly.
    fn api_token(server: &Server, api: &Api) -> Reg {
        Reg {
            auth: Some(format!("Bearer {}", api.token.as_ref().unwrap())),
            ..Reg::anonymous(server)
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut rb = self.http.request(method, url).body(body);
        if let Some(a) = &self.auth {
            rb = rb.header("authorization", a);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], vec![]).await
    }

    /// Monolithic upload.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> Answer {
        let d = sha256(data);
        self.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("content-type", "application/octet-stream")],
            data.to_vec(),
        )
        .await
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &Value,
    ) -> Answer {
        self.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes a config and a layer and returns an image manifest naming them.
async fn image(reg: &Reg, repo: &str, seed: &str) -> Value {
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"], "Labels": {"seed": seed}}})).unwrap();
    let layer = format!("layer bytes of {seed}").into_bytes();
    assert_eq!(reg.push_blob(repo, &config).await.status, 201);
    assert_eq!(reg.push_blob(repo, &layer).await.status, 201);
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_uploads_and_resume_after_restart() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("p").await?;
    let reg = Reg::api_token(&server, &admin);

    // The base endpoint and its challenge.
    let anon = Reg::anonymous(&server).get("/v2/").await;
    assert_eq!(anon.status, 401);
    assert_eq!(
        anon.header("docker-distribution-api-version"),
        "registry/2.0"
    );
    assert!(anon.header("www-authenticate").starts_with(&format!(
        "Bearer realm=\"{}/v2/token\",service=\"podspace-registry\"",
        server.url
    )));
    assert_eq!(anon.code(), "UNAUTHORIZED");
    assert_eq!(reg.get("/v2/").await.status, 200);

    // Monolithic, then HEAD, GET, ranges.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let d = sha256(&data);
    let r = reg.push_blob("p/s", &data).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("docker-content-digest"), d);
    assert_eq!(r.header("location"), format!("/v2/p/s/blobs/{d}"));
    let head = reg
        .send(Method::HEAD, &format!("/v2/p/s/blobs/{d}"), &[], vec![])
        .await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (StatusCode::OK, "100000".to_string())
    );
    assert!(head.body.is_empty());
    assert_eq!(reg.get(&format!("/v2/p/s/blobs/{d}")).await.body, data);
    let part = reg
        .send(
            Method::GET,
            &format!("/v2/p/s/blobs/{d}"),
            &[("range", "bytes=10-19")],
            vec![],
        )
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[10..20]);
    assert_eq!(part.header("content-range"), "bytes 10-19/100000");
    let bad = reg
        .send(
            Method::GET,
            &format!("/v2/p/s/blobs/{d}"),
            &[("range", "bytes=200000-")],
            vec![],
        )
        .await;
    assert_eq!(bad.status, 416);
    assert_eq!(
        reg.get(&format!("/v2/p/other/blobs/{d}")).await.code(),
        "BLOB_UNKNOWN",
        "blobs are per repository"
    );
    assert_eq!(
        reg.get("/v2/p/s/blobs/sha256:nothex").await.code(),
        "DIGEST_INVALID"
    );

    // Chunked with Content-Range; repeats and gaps are refused.
    let start = reg
        .send(Method::POST, "/v2/p/s/blobs/uploads/", &[], vec![])
        .await;
    assert_eq!(start.status, 202);
    let loc = start.header("location");
    assert!(!start.header("docker-upload-uuid").is_empty());
    let chunk = |a: usize, b: usize| (format!("{a}-{}", b - 1), data[a..b].to_vec());
    let (range, bytes) = chunk(0, 40_000);
    let r = reg
        .send(
            Method::PATCH,
            &loc,
            &[
                ("content-range", &range),
                ("content-type", "application/octet-stream"),
            ],
            bytes.clone(),
        )
        .await;
    assert_eq!(
        (r.status, r.header("range")),
        (StatusCode::ACCEPTED, "0-39999".to_string())
    );
    let again = reg
        .send(Method::PATCH, &loc, &[("content-range", &range)], bytes)
        .await;
    assert_eq!(again.status, 416, "a repeated chunk");
    let (range, bytes) = chunk(50_000, 60_000);
    assert_eq!(
        reg.send(Method::PATCH, &loc, &[("content-range", &range)], bytes)
            .await
            .status,
        416,
        "a gap"
    );
    let status = reg.get(&loc).await;
    assert_eq!(
        (status.status, status.header("range")),
        (StatusCode::NO_CONTENT, "0-39999".to_string())
    );

    // The server is killed; the session resumes where it stood.
    server.restart()?;
    let admin = Api::admin(&server.url).await?;
    let reg = Reg::api_token(&server, &admin);
    let loc = loc.replace(&loc[..0], "");
    let status = reg.get(&loc).await;
    assert_eq!(
        (status.status, status.header("range")),
        (StatusCode::NO_CONTENT, "0-39999".to_string()),
        "resumed after a restart"
    );
    // A streamed chunk without Content-Range, then the last one with the PUT.
    let r = reg
        .send(Method::PATCH, &loc, &[], data[40_000..90_000].to_vec())
        .await;
    assert_eq!(r.header("range"), "0-89999");
    let wrong = reg
        .send(
            Method::PUT,
            &format!("{loc}?digest={}", sha256(b"something else")),
            &[],
            vec![],
        )
        .await;
    assert_eq!(wrong.code(), "DIGEST_INVALID");
    assert_eq!(
        reg.get(&loc).await.code(),
        "BLOB_UPLOAD_UNKNOWN",
        "a failed digest ends the session"
    );

    let start = reg
        .send(Method::POST, "/v2/p/s2/blobs/uploads/", &[], vec![])
        .await;
    let loc = start.header("location");
    reg.send(Method::PATCH, &loc, &[], data[..90_000].to_vec())
        .await;
    let done = reg
        .send(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "90000-99999")],
            data[90_000..].to_vec(),
        )
        .await;
    assert_eq!(done.status, 201, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(reg.get(&format!("/v2/p/s2/blobs/{d}")).await.body, data);

    // Cancelling; unknown sessions.
    let start = reg
        .send(Method::POST, "/v2/p/s/blobs/uploads/", &[], vec![])
        .await;
    let loc = start.header("location");
    assert_eq!(
        reg.send(Method::DELETE, &loc, &[], vec![]).await.status,
        204
    );
    assert_eq!(reg.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        reg.get("/v2/p/s/blobs/uploads/not-a-session").await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    // A truncated upload does not become a blob.
    let truncated = reg
        .send(
            Method::POST,
            &format!(
                "/v2/p/s/blobs/uploads/?digest={}",
                sha256(b"complete content")
            ),
            &[],
            b"complete".to_vec(),
        )
        .await;
    assert_eq!(truncated.code(), "DIGEST_INVALID");
    assert_eq!(
        reg.send(
            Method::HEAD,
            &format!("/v2/p/s/blobs/{}", sha256(b"complete content")),
            &[],
            vec![]
        )
        .await
        .status,
        404
    );

    // sha512.
    let d512 = format!(
        "sha512:{}",
        hex::encode(sha2::Sha512::digest(b"five-twelve"))
    );
    assert_eq!(
        reg.send(
            Method::POST,
            &format!("/v2/p/s/blobs/uploads/?digest={d512}"),
            &[],
            b"five-twelve".to_vec()
        )
        .await
        .status,
        201
    );
    assert_eq!(
        reg.get(&format!("/v2/p/s/blobs/{d512}")).await.body,
        b"five-twelve"
    );

    // Cross-repository mount, and its fallback when `from` is not readable.
    let m = reg
        .send(
            Method::POST,
            &format!("/v2/p/mounted/blobs/uploads/?mount={d}&from=p/s"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(m.status, 201);
    assert_eq!(
        reg.get(&format!("/v2/p/mounted/blobs/{d}")).await.body,
        data
    );
    admin.new_project("q").await?;
    let alice = admin.create_user("alice", "alice-password").await?;
    admin.grant("q", "edit", "alice").await?;
    let alice_reg = Reg::api_token(&server, &alice);
    let m = alice_reg
        .send(
            Method::POST,
            &format!("/v2/q/x/blobs/uploads/?mount={d}&from=p/s"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(
        m.status, 202,
        "no mount from a repository alice cannot read"
    );
    assert_eq!(
        alice_reg.get(&format!("/v2/q/x/blobs/{d}")).await.status,
        404
    );
    // Without `from`: any repository holding the blob that the caller may
    // read (never one she may not: alice still gets an upload session).
    let auto = |repo: &str| format!("/v2/{repo}/blobs/uploads/?mount={d}");
    assert_eq!(
        alice_reg
            .send(Method::POST, &auto("q/y"), &[], vec![])
            .await
            .status,
        202,
        "p/s is not alice's to read"
    );
    assert_eq!(
        reg.send(Method::POST, &auto("q/auto"), &[], vec![])
            .await
            .status,
        201,
        "admin reads p/s"
    );
    assert_eq!(reg.get(&format!("/v2/q/auto/blobs/{d}")).await.body, data);
    assert_eq!(
        alice_reg
            .send(Method::POST, &auto("q/y"), &[], vec![])
            .await
            .status,
        201,
        "now q/auto holds it, alice reads q"
    );
    assert_eq!(
        alice_reg.get(&format!("/v2/q/y/blobs/{d}")).await.body,
        data
    );

    // Deleting a blob.
    assert_eq!(
        reg.send(
            Method::DELETE,
            &format!("/v2/p/mounted/blobs/{d}"),
            &[],
            vec![]
        )
        .await
        .status,
        202
    );
    assert_eq!(
        reg.get(&format!("/v2/p/mounted/blobs/{d}")).await.code(),
        "BLOB_UNKNOWN"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_tags_catalog_and_referrers() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("p").await?;
    let reg = Reg::api_token(&server, &admin);
    let m = image(&reg, "p/app", "one").await;
    let body = serde_json::to_vec(&m)?;
    let digest = sha256(&body);

    // Refusals first: nothing of them is stored.
    let mut missing = m.clone();
    missing["layers"][0]["digest"] = json!(sha256(b"never pushed"));
    assert_eq!(
        reg.put_manifest("p/app", "bad", OCI_MANIFEST, &missing)
            .await
            .code(),
        "MANIFEST_BLOB_UNKNOWN"
    );
    let schema1 = json!({"schemaVersion": 1, "name": "p/app", "tag": "x", "fsLayers": []});
    let r = reg
        .put_manifest(
            "p/app",
            "bad",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            &schema1,
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("schema 1"));
    let r = reg
        .send(
            Method::PUT,
            "/v2/p/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let huge = vec![b' '; 5 << 20];
    let r = reg
        .send(
            Method::PUT,
            "/v2/p/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            huge,
        )
        .await;
    assert_eq!(r.status, 413);
    let r = reg
        .put_manifest("p/app", &sha256(b"other"), OCI_MANIFEST, &m)
        .await;
    assert_eq!(
        r.code(),
        "DIGEST_INVALID",
        "a digest reference must match the body"
    );
    assert_eq!(
        reg.put_manifest("p/app", "bad tag!", OCI_MANIFEST, &m)
            .await
            .code(),
        "MANIFEST_INVALID"
    );
    assert_eq!(
        reg.get("/v2/p/app/manifests/bad").await.code(),
        "MANIFEST_UNKNOWN"
    );

    // A good one, by tag.
    let r = reg.put_manifest("p/app", "v1", OCI_MANIFEST, &m).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("docker-content-digest"), digest);
    assert_eq!(
        r.header("location"),
        format!("/v2/p/app/manifests/{digest}")
    );
    for reference in ["v1", digest.as_str()] {
        let got = reg.get(&format!("/v2/p/app/manifests/{reference}")).await;
        assert_eq!(got.body, body, "byte for byte by {reference}");
        assert_eq!(got.header("content-type"), OCI_MANIFEST);
        assert_eq!(got.header("docker-content-digest"), digest);
        let head = reg
            .send(
                Method::HEAD,
                &format!("/v2/p/app/manifests/{reference}"),
                &[],
                vec![],
            )
            .await;
        assert_eq!(
            (head.status, head.header("content-length")),
            (StatusCode::OK, body.len().to_string())
        );
    }
    // Content negotiation on Accept.
    let docker_only = reg
        .send(
            Method::GET,
            "/v2/p/app/manifests/v1",
            &[(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )],
            vec![],
        )
        .await;
    assert_eq!(
        docker_only.code(),
        "MANIFEST_UNKNOWN",
        "an OCI manifest is not a Docker schema 2 one"
    );
    let both = reg.send(Method::GET, "/v2/p/app/manifests/v1", &[("accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")], vec![]).await;
    assert_eq!(both.status, 200);
    assert_eq!(
        reg.send(
            Method::GET,
            "/v2/p/app/manifests/v1",
            &[("accept", "*/*")],
            vec![]
        )
        .await
        .status,
        200
    );
    // The push made an image stream tag.
    let is = admin
        .get("/apis/image.openshift.io/v1/namespaces/p/imagestreams/app")
        .await?;
    assert_eq!(
        is.body["status"]["tags"][0]["items"][0]["image"],
        digest.as_str()
    );

    // An index; one with a missing child is refused.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len()}]});
    assert_eq!(
        reg.put_manifest("p/app", "multi", OCI_INDEX, &index)
            .await
            .status,
        201
    );
    let mut orphan = index.clone();
    orphan["manifests"][0]["digest"] = json!(sha256(b"no such manifest"));
    assert_eq!(
        reg.put_manifest("p/app", "orphan", OCI_INDEX, &orphan)
            .await
            .code(),
        "MANIFEST_BLOB_UNKNOWN"
    );
    let list = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len(), "platform": {"architecture": "amd64", "os": "linux"}}]});
    assert_eq!(
        reg.put_manifest(
            "p/app",
            "list",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            &list
        )
        .await
        .status,
        201
    );

    // Referrers: an artifact with a subject.
    let empty = b"{}".to_vec();
    reg.push_blob("p/app", &empty).await;
    let sig = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": 2},
        "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len()},
        "annotations": {"who": "test"}
    });
    let sig_body = serde_json::to_vec(&sig)?;
    let r = reg
        .put_manifest("p/app", &sha256(&sig_body), OCI_MANIFEST, &sig)
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("oci-subject"), digest);
    let refs = reg.get(&format!("/v2/p/app/referrers/{digest}")).await;
    assert_eq!(refs.header("content-type"), OCI_INDEX);
    let found = refs.json();
    assert_eq!(
        found["manifests"][0]["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(found["manifests"][0]["annotations"]["who"], "test");
    let filtered = reg
        .get(&format!(
            "/v2/p/app/referrers/{digest}?artifactType=application/other"
        ))
        .await;
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
    assert_eq!(filtered.json()["manifests"], json!([]));

    // Tags, paginated.
    for t in ["a", "b", "c", "d"] {
        assert_eq!(
            reg.put_manifest("p/app", t, OCI_MANIFEST, &m).await.status,
            201
        );
    }
    let page = reg.get("/v2/p/app/tags/list?n=2").await;
    assert_eq!(page.json(), json!({"name": "p/app", "tags": ["a", "b"]}));
    assert_eq!(
        page.header("link"),
        "</v2/p/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    let page = reg.get("/v2/p/app/tags/list?n=2&last=b").await;
    assert_eq!(page.json()["tags"], json!(["c", "d"]));
    let all = reg.get("/v2/p/app/tags/list").await.json();
    assert_eq!(
        all["tags"],
        json!(["a", "b", "c", "d", "list", "multi", "v1"])
    );
    assert_eq!(
        reg.get("/v2/p/nothing/tags/list").await.code(),
        "NAME_UNKNOWN"
    );

    // Deleting a tag, then the manifest by digest.
    assert_eq!(
        reg.send(Method::DELETE, "/v2/p/app/manifests/a", &[], vec![])
            .await
            .status,
        202
    );
    assert_eq!(
        reg.get("/v2/p/app/manifests/a").await.code(),
        "MANIFEST_UNKNOWN"
    );
    let other = image(&reg, "p/app", "two").await;
    let other_digest = sha256(&serde_json::to_vec(&other)?);
    reg.put_manifest("p/app", "two", OCI_MANIFEST, &other).await;
    assert_eq!(
        reg.send(
            Method::DELETE,
            &format!("/v2/p/app/manifests/{other_digest}"),
            &[],
            vec![]
        )
        .await
        .status,
        202
    );
    assert_eq!(
        reg.get("/v2/p/app/manifests/two").await.code(),
        "MANIFEST_UNKNOWN",
        "its tags went with it"
    );

    // Names.
    for bad in [
        "/v2/P/app/tags/list",
        "/v2/p/a/b/tags/list",
        "/v2/p/../tags/list",
        "/v2/onlyone/tags/list",
    ] {
        assert_eq!(reg.get(bad).await.code(), "NAME_INVALID", "{bad}");
    }

    // The catalog shows what the caller may pull.
    admin.new_project("hidden").await?;
    let m2 = image(&reg, "hidden/secret", "x").await;
    reg.put_manifest("hidden/secret", "v1", OCI_MANIFEST, &m2)
        .await;
    let all = reg.get("/v2/_catalog").await.json();
    assert_eq!(all["repositories"], json!(["hidden/secret", "p/app"]));
    let page = reg.get("/v2/_catalog?n=1").await;
    assert_eq!(
        page.header("link"),
        "</v2/_catalog?n=1&last=hidden/secret>; rel=\"next\""
    );
    let alice = admin.create_user("alice", "alice-password").await?;
    admin.grant("p", "view", "alice").await?;
    let alice_reg = Reg::token(&server, "alice", "alice-password", &["registry:catalog:*"]).await;
    assert_eq!(
        alice_reg.get("/v2/_catalog").await.json()["repositories"],
        json!(["p/app"])
    );
    drop(alice);
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    Viewer,
    Editor,
    Admin,
    Outsider,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_pull_push_delete_catalog() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("team").await?;
    admin.new_project("elsewhere").await?;
    for (user, role, ns) in [
        ("viewer", "view", "team"),
        ("editor", "edit", "team"),
        ("owner", "admin", "team"),
        ("outsider", "admin", "elsewhere"),
    ] {
        admin.create_user(user, &format!("{user}-password")).await?;
        admin.grant(ns, role, user).await?;
    }
    let root = Reg::api_token(&server, &admin);
    let m = image(&root, "team/app", "seed").await;
    assert_eq!(
        root.put_manifest("team/app", "v1", OCI_MANIFEST, &m)
            .await
            .status,
        201
    );
    let scopes = ["repository:team/app:pull,push,delete", "registry:catalog:*"];
    let people = [
        (Who::Anonymous, Reg::anonymous(&server)),
        (
            Who::Viewer,
            Reg::token(&server, "viewer", "viewer-password", &scopes).await,
        ),
        (
            Who::Editor,
            Reg::token(&server, "editor", "editor-password", &scopes).await,
        ),
        (
            Who::Admin,
            Reg::token(&server, "owner", "owner-password", &scopes).await,
        ),
        (
            Who::Outsider,
            Reg::token(&server, "outsider", "outsider-password", &scopes).await,
        ),
    ];
    let mut failures = Vec::new();
    for (who, reg) in &people {
        let pull = reg.get("/v2/team/app/manifests/v1").await.status;
        let tag = format!("{who:?}").to_lowercase();
        let push = reg
            .put_manifest("team/app", &tag, OCI_MANIFEST, &m)
            .await
            .status;
        let delete_tag = format!("del-{tag}");
        root.put_manifest("team/app", &delete_tag, OCI_MANIFEST, &m)
            .await;
        let delete = reg
            .send(
                Method::DELETE,
                &format!("/v2/team/app/manifests/{delete_tag}"),
                &[],
                vec![],
            )
            .await
            .status;
        let catalog = reg.get("/v2/_catalog").await;
        let sees = catalog.json()["repositories"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("team/app")));
        let want = match who {
            Who::Anonymous => (401, 401, 401, false),
            Who::Viewer => (200, 401, 401, true),
            Who::Editor => (200, 201, 401, true),
            Who::Admin => (200, 201, 202, true),
            Who::Outsider => (401, 401, 401, false),
        };
        let got = (pull.as_u16(), push.as_u16(), delete.as_u16(), sees);
        if got != want {
            failures.push(format!("{who:?}: got {got:?}, want {want:?}"));
        }
        // A refused push stored nothing.
        if want.1 != 201 {
            assert_eq!(
                root.get(&format!("/v2/team/app/manifests/{tag}"))
                    .await
                    .status,
                404,
                "{who:?} push was refused but stored"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Refusals reveal nothing: the same answer for a repository that does not exist.
    let outsider = &people[4].1;
    let real = outsider.get("/v2/team/app/tags/list").await;
    let fake = outsider.get("/v2/team/nothing/tags/list").await;
    assert_eq!((real.status, real.code()), (fake.status, fake.code()));
    // A token never grants more than the roles: a viewer asking for push gets pull only.
    let viewer = Reg::token(
        &server,
        "viewer",
        "viewer-password",
        &["repository:team/app:push,pull"],
    )
    .await;
    assert_eq!(
        viewer
            .put_manifest("team/app", "sneaky", OCI_MANIFEST, &m)
            .await
            .status,
        401
    );
    // Bad credentials at the token endpoint.
    let basic = base64::engine::general_purpose::STANDARD.encode("viewer:wrong");
    let r = reqwest::Client::new()
        .get(format!("{}/v2/token?service=podspace-registry", server.url))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .get(format!("{}/v2/token?service=podspace-registry", server.url))
        .send()
        .await?;
    assert_eq!(r.status(), 401, "anonymous tokens are not handed out");
    // The builder service account can push.
    let sa = admin
        .post(
            "/api/v1/namespaces/team/serviceaccounts/builder/token",
            &json!({}),
        )
        .await?;
    let builder = Reg {
        auth: Some(format!(
            "Bearer {}",
            sa.body["status"]["token"].as_str().unwrap()
        )),
        ..Reg::anonymous(&server)
    };
    assert_eq!(
        builder
            .put_manifest("team/app", "built", OCI_MANIFEST, &m)
            .await
            .status,
        201
    );
    Ok(())
}
