//! Files as OpenShift ships them load: image streams shaped like the
//! openshift/library ones (a `List`, `creationTimestamp: null`, empty
//! reference policy types, tags without a generation, annotations, an
//! unsupported kind among the items) are created item by item like `oc
//! create -f`; tags without a generation are imported from a local
//! registry at once; what was given comes back on GET.

use podspace_e2e::{
    eventually, tag_history, unique, Api, Distribution, DockerCli, Psc, Server, ADMIN_PASSWORD,
};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/openshift");

/// Whether every field of `given` is in `got` with the same value; a
/// `null` given is a field left out.
fn given_fields_kept(given: &Value, got: &Value, path: &str, missing: &mut Vec<String>) {
    match (given, got) {
        (Value::Null, _) => {}
        (Value::Object(g), Value::Object(o)) => {
            for (k, v) in g {
                let p = format!("{path}/{k}");
                match o.get(k) {
                    Some(ov) => given_fields_kept(v, ov, &p, missing),
                    None if v.is_null() => {}
                    None => missing.push(p),
                }
            }
        }
        (Value::Array(g), Value::Array(o)) if g.len() == o.len() => {
            for (i, (gv, ov)) in g.iter().zip(o).enumerate() {
                given_fields_kept(gv, ov, &format!("{path}/{i}"), missing);
            }
        }
        (g, o) if g == o => {}
        (g, o) => missing.push(format!("{path}: gave {g}, got {o}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_image_streams_load_and_import() -> anyhow::Result<()> {
    let other = Distribution::start().await?;
    let docker = DockerCli::new()?;
    let local = unique("podspace-test/lib");
    docker.busybox_image_with(&local, 300)?;
    let remote = format!("{}/library/python:3.11", other.addr);
    docker.ok(&["tag", &local, &remote]);
    let pushed = docker.ok(&["push", &remote]);
    docker.ok(&["rmi", &local, &remote]);
    let digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_default()
        .to_string();

    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "lib"]);
    let text = std::fs::read_to_string(format!("{FIXTURES}/library-imagestreams.json"))?
        .replace("REGISTRY", &other.addr);
    let file = psc.dir().join("library.json");
    std::fs::write(&file, &text)?;

    // Like oc: each item its line, the unsupported one reported, exit 1.
    let out = psc.run(&["create", "-f", &file.display().to_string()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("imagestream.image.openshift.io/python created")
            && stdout.contains("imagestream.image.openshift.io/nodejs created"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("error: unable to recognize") && stderr.contains("\"Service\""),
        "{stderr}"
    );

    // A tag without a generation is imported at once; one whose source is
    // missing says so on the tag.
    eventually("the import of python:3.11-ubi9", async || {
        Ok(tag_history(&admin, "lib", "python", "3.11-ubi9").await? == [digest.clone()])
    })
    .await?;
    eventually("the failed import of nodejs:20 reported", async || {
        let s = admin
            .get("/apis/image.openshift.io/v1/namespaces/lib/imagestreams/nodejs")
            .await?
            .body;
        Ok(s.pointer("/status/tags/0/conditions/0/type") == Some(&"ImportSuccess".into()))
    })
    .await?;

    // Round trip: what the file gave comes back (an empty reference policy
    // type comes back as OpenShift's default, Source; status is the
    // server's).
    let given: Value = serde_json::from_str(&text)?;
    for item in given["items"].as_array().into_iter().flatten().take(2) {
        let mut item = item.clone();
        if let Some(o) = item.as_object_mut() {
            o.remove("status");
            o.remove("apiVersion");
        }
        for t in item["spec"]["tags"].as_array_mut().into_iter().flatten() {
            if t["referencePolicy"]["type"] == "" {
                t["referencePolicy"]["type"] = "Source".into();
            }
        }
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let got = admin
            .get(&format!(
                "/apis/image.openshift.io/v1/namespaces/lib/imagestreams/{name}"
            ))
            .await?
            .body;
        let mut missing = Vec::new();
        given_fields_kept(&item, &got, "", &mut missing);
        assert!(missing.is_empty(), "{name}: {missing:?}\n{got:#}");
        let generations: Vec<&Value> = got["spec"]["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| &t["generation"])
            .collect();
        assert!(generations.iter().all(|g| **g == 1), "{generations:?}");
    }

    // Applying the same file again changes no generation (nothing to
    // re-import); `apply` reports the unsupported item the same way.
    let before = admin
        .get("/apis/image.openshift.io/v1/namespaces/lib/imagestreams/python")
        .await?
        .body;
    let out = psc.run(&["apply", "-f", &file.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("imagestream.image.openshift.io/python configured")
            || stdout.contains("imagestream.image.openshift.io/python unchanged"),
        "{stdout}"
    );
    let after = admin
        .get("/apis/image.openshift.io/v1/namespaces/lib/imagestreams/python")
        .await?
        .body;
    assert_eq!(before["spec"]["tags"], after["spec"]["tags"]);
    Ok(())
}
