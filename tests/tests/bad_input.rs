//! Bad input gets a clear Status error and changes nothing.

use podspace_e2e::{Api, Psc, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

const IS: &str = "/apis/image.openshift.io/v1/namespaces/bad/imagestreams";

async fn state(admin: &Api) -> anyhow::Result<(usize, String)> {
    let list = admin.get(IS).await?.body;
    Ok((
        list["items"].as_array().map_or(0, Vec::len),
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

fn assert_status(r: &podspace_e2e::Reply, code: u16, reason: &str, says: &str) {
    assert_eq!(r.status, code, "{}", r.text);
    assert_eq!(r.body["kind"], "Status", "{}", r.text);
    assert_eq!(r.body["reason"], reason, "{}", r.text);
    assert_eq!(r.body["code"], code);
    let message = r.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "message {message:?} should mention {says:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_with_a_status() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("bad").await?;
    let ok = admin
        .post(
            IS,
            &json!({"kind": "ImageStream", "metadata": {"name": "keep"}}),
        )
        .await?;
    assert_eq!(ok.status, 201);
    let before = state(&admin).await?;
    let raw = |ct: &str, body: &str| {
        admin
            .request(reqwest::Method::POST, IS)
            .header("content-type", ct)
            .body(body.to_string())
    };

    assert_status(
        &admin
            .send(raw(
                "application/yaml",
                "kind: ImageStream\nmetadata: {name: [",
            ))
            .await?,
        400,
        "BadRequest",
        "not valid YAML",
    );
    assert_status(
        &admin.send(raw("application/json", "{\"kind\": ")).await?,
        400,
        "BadRequest",
        "not valid JSON",
    );
    assert_status(
        &admin.send(raw("application/json", "[1, 2]")).await?,
        400,
        "BadRequest",
        "must be a JSON object",
    );
    assert_status(
        &admin.send(raw("text/plain", "{}")).await?,
        415,
        "UnsupportedMediaType",
        "application/json",
    );
    let no_type = admin.request(reqwest::Method::POST, IS).body("{}");
    assert_status(
        &admin.send(no_type).await?,
        415,
        "UnsupportedMediaType",
        "application/json",
    );
    assert_status(
        &admin
            .post(
                IS,
                &json!({"kind": "BuildConfig", "metadata": {"name": "x"}}),
            )
            .await?,
        400,
        "BadRequest",
        "does not match",
    );
    assert_status(
        &admin.post(IS, &json!({"apiVersion": "build.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "x"}})).await?,
        400,
        "BadRequest",
        "apiVersion",
    );
    assert_status(
        &admin
            .post(
                IS,
                &json!({"kind": "ImageStream", "metadata": {"name": "x", "namespace": "other"}}),
            )
            .await?,
        400,
        "BadRequest",
        "namespace",
    );
    for name in ["Upper", "under_score", "-dash", &"a".repeat(64), ""] {
        let r = admin
            .post(
                IS,
                &json!({"kind": "ImageStream", "metadata": {"name": name}}),
            )
            .await?;
        assert_eq!(r.status, 422, "{name:?}: {}", r.text);
        assert_eq!(r.body["reason"], "Invalid");
        assert_eq!(
            r.body["details"]["causes"][0]["field"], "metadata.name",
            "{}",
            r.text
        );
    }
    let r = admin
        .post(IS, &json!({"kind": "ImageStream", "metadata": {"name": "tags"}, "spec": {"tags": [{"name": "bad tag", "from": {"kind": "Nope"}}]}}))
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<&str> = r.body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"spec.tags[0].name") && fields.contains(&"spec.tags[0].from.kind"),
        "{fields:?}"
    );

    // Oversized: refused before it is read whole.
    let huge = format!("{{\"kind\": \"ImageStream\", \"metadata\": {{\"name\": \"huge\", \"annotations\": {{\"a\": \"{}\"}}}}}}", "x".repeat(4 << 20));
    // (On a client of its own: the server closes a connection whose body it did not read.)
    let fresh = Api {
        http: reqwest::Client::new(),
        ..admin.clone()
    };
    let r = fresh
        .send(
            fresh
                .request(reqwest::Method::POST, IS)
                .header("content-type", "application/json")
                .body(huge),
        )
        .await?;
    assert_status(&r, 413, "RequestEntityTooLarge", "limit");

    // Unknown paths and kinds.
    assert_status(
        &admin
            .get("/apis/image.openshift.io/v1/namespaces/bad/widgets")
            .await?,
        404,
        "NotFound",
        "could not find",
    );
    assert_status(
        &admin
            .get("/apis/image.openshift.io/v2/namespaces/bad/imagestreams")
            .await?,
        404,
        "NotFound",
        "could not find",
    );
    assert_status(
        &admin
            .get("/apis/build.openshift.io/v1/namespaces/bad/imagestreams")
            .await?,
        404,
        "NotFound",
        "could not find",
    );
    // Wrong methods, selectors and versions.
    assert_status(
        &admin
            .send(admin.request(reqwest::Method::PUT, IS).json(&json!({})))
            .await?,
        405,
        "MethodNotAllowed",
        "does not allow",
    );
    assert_status(
        &admin
            .get(&format!("{IS}?labelSelector=a%20in%20(b"))
            .await?,
        400,
        "BadRequest",
        "label selector",
    );
    assert_status(
        &admin
            .get(&format!("{IS}?watch=true&resourceVersion=abc"))
            .await?,
        400,
        "BadRequest",
        "resourceVersion",
    );

    // Patches: the wrong type, and a patch that would make the object invalid.
    let plain_json = admin
        .request(reqwest::Method::PATCH, &format!("{IS}/keep"))
        .json(&json!({"metadata": {"labels": {"a": "b"}}}));
    assert_status(
        &admin.send(plain_json).await?,
        415,
        "UnsupportedMediaType",
        "merge-patch",
    );
    let r = admin
        .merge_patch(
            &format!("{IS}/keep"),
            &json!({"spec": {"tags": [{"name": "x y"}]}}),
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = admin
        .merge_patch(
            &format!("{IS}/keep"),
            &json!({"metadata": {"resourceVersion": "1"}, "spec": {"tags": []}}),
        )
        .await?;
    assert_status(&r, 409, "Conflict", "has been modified");
    // A stale update.
    let mut stale = admin.get(&format!("{IS}/keep")).await?.body;
    stale["metadata"]["resourceVersion"] = json!("2");
    assert_status(
        &admin.put(&format!("{IS}/keep"), &stale).await?,
        409,
        "Conflict",
        "has been modified",
    );

    // None of it changed anything.
    assert_eq!(state(&admin).await?, before);
    // A good merge patch does.
    let r = admin
        .merge_patch(
            &format!("{IS}/keep"),
            &json!({"metadata": {"labels": {"fine": "yes"}}}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["metadata"]["labels"]["fine"], "yes");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psc_reports_bad_files_clearly() -> anyhow::Result<()> {
    let server = Server::start()?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "files"]);
    let bad = psc.dir().join("bad.yaml");
    std::fs::write(&bad, "kind: ImageStream\nmetadata: {name: [\n")?;
    let err = psc.fails(&["create", "-f", bad.to_str().unwrap()]);
    assert!(
        err.starts_with("error: ") && err.contains("not valid YAML or JSON"),
        "{err}"
    );
    std::fs::write(&bad, "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n")?;
    let err = psc.fails(&["create", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("no matches for kind \"Widget\""), "{err}");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ImageStream\nmetadata: {name: Not_Valid}\n",
    )?;
    let err = psc.fails(&["create", "-f", bad.to_str().unwrap()]);
    assert!(
        err.contains("(Invalid)") && err.contains("metadata.name"),
        "{err}"
    );
    let out = psc.ok(&["get", "is", "-o", "json"]);
    let list: Value = serde_json::from_str(&out)?;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored"
    );
    Ok(())
}
