//! Image stream tags: ImageStreamMapping, ImageStreamTag, ImageStreamImage,
//! and `psc tag` in every form, with history, tracking tags and rollback.

use podspace_e2e::{tag_history, Api, Psc, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

fn digest(n: u8) -> String {
    format!("sha256:{}", hex::encode([n; 32]))
}

async fn map(admin: &Api, ns: &str, is: &str, tag: &str, n: u8) -> anyhow::Result<()> {
    let d = digest(n);
    let r = admin
        .post(
            &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreammappings"),
            &json!({
                "apiVersion": "image.openshift.io/v1", "kind": "ImageStreamMapping",
                "metadata": {"name": is}, "tag": tag,
                "image": {"metadata": {"name": d}, "dockerImageReference": format!("registry.example:5000/{ns}/{is}@{d}")}
            }),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "mapping: {} {}", r.status, r.text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_history_tracking_and_rollback() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "other"]);
    psc.ok(&["new-project", "img"]);

    // A mapping needs the stream.
    let r = admin.post("/apis/image.openshift.io/v1/namespaces/img/imagestreammappings", &json!({"metadata": {"name": "web"}, "tag": "v1", "image": {"metadata": {"name": digest(1)}, "dockerImageReference": "x@y"}})).await?;
    assert_eq!(r.status, 404, "{}", r.text);
    let created = admin
        .post(
            "/apis/image.openshift.io/v1/namespaces/img/imagestreams",
            &json!({"kind": "ImageStream", "metadata": {"name": "web"}}),
        )
        .await?;
    assert_eq!(
        created.body["status"]["dockerImageRepository"],
        format!("{}/img/web", server.registry),
        "a new stream knows its repository"
    );
    map(&admin, "img", "web", "v1", 1).await?;
    map(&admin, "img", "web", "v2", 2).await?;
    assert!(
        admin
            .get(&format!("/apis/image.openshift.io/v1/images/{}", digest(1)))
            .await?
            .status
            == 200,
        "the Image was recorded"
    );

    // ImageStreamTag and ImageStreamImage views.
    let istag = admin
        .get("/apis/image.openshift.io/v1/namespaces/img/imagestreamtags/web:v1")
        .await?;
    assert_eq!(istag.status, 200, "{}", istag.text);
    assert_eq!(istag.body["image"]["metadata"]["name"], digest(1).as_str());
    assert!(istag.body["tag"].is_null(), "a pushed tag has no spec tag");
    let prefix = &digest(2)[..15];
    let isimage = admin
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/img/imagestreamimages/web@{prefix}"
        ))
        .await?;
    assert_eq!(
        isimage.body["image"]["metadata"]["name"],
        digest(2).as_str(),
        "a unique prefix finds the image"
    );
    assert_eq!(
        admin
            .get("/apis/image.openshift.io/v1/namespaces/img/imagestreamtags/web:nope")
            .await?
            .status,
        404
    );
    assert_eq!(
        admin
            .get("/apis/image.openshift.io/v1/namespaces/img/imagestreamtags/no-colon")
            .await?
            .status,
        400
    );
    let table = psc.ok(&["get", "istag"]);
    assert!(
        table.contains("web:v1") && table.contains("web:v2"),
        "{table}"
    );

    // Permanent tags copy the image; history grows newest first.
    assert_eq!(
        psc.ok(&["tag", "web:v1", "web:prod"]).trim(),
        format!("Tag web:prod set to web@{}.", digest(1))
    );
    assert_eq!(
        psc.ok(&["tag", &format!("web@{}", digest(2)), "web:prod"])
            .trim(),
        format!("Tag web:prod set to web@{}.", digest(2))
    );
    assert_eq!(
        tag_history(&admin, "img", "web", "prod").await?,
        [digest(2), digest(1)]
    );
    // Rollback: tag the older image back.
    psc.ok(&["tag", &format!("web@{}", digest(1)), "web:prod"]);
    assert_eq!(
        tag_history(&admin, "img", "web", "prod").await?,
        [digest(1), digest(2), digest(1)]
    );
    // Moving v1 later does not move the permanent copy.
    map(&admin, "img", "web", "v1", 9).await?;
    assert_eq!(
        tag_history(&admin, "img", "web", "prod").await?[0],
        digest(1)
    );

    // Tracking tags follow their source, on pushes too.
    assert_eq!(
        psc.ok(&["tag", "--alias", "web:v2", "web:latest"]).trim(),
        "Tag web:latest set up to track web:v2."
    );
    assert_eq!(
        tag_history(&admin, "img", "web", "latest").await?,
        [digest(2)]
    );
    map(&admin, "img", "web", "v2", 3).await?;
    assert_eq!(
        tag_history(&admin, "img", "web", "latest").await?,
        [digest(3), digest(2)]
    );
    let err = psc.fails(&["tag", "--alias", "web:v2", "api:latest"]);
    assert!(
        err.contains("cannot set alias across different Image Streams"),
        "{err}"
    );

    // describe folds the tracking tag into its source and marks the current entry.
    let described = psc.ok(&["describe", "is", "web"]);
    assert!(
        described.contains("v2 (latest)\n  no spec tag\n"),
        "{described}"
    );
    assert!(
        described.contains(&format!("  * registry.example:5000/img/web@{}", digest(3))),
        "{described}"
    );
    assert!(
        described.contains("prod\n  tagged from web@"),
        "{described}"
    );
    let istag = psc.ok(&["describe", "istag", "web:v2"]);
    assert!(
        istag.contains(&format!("Name:\t\t{}", digest(3))),
        "{istag}"
    );

    // Across projects.
    assert_eq!(
        psc.ok(&["tag", "web:v2", "other/web:prod"]).trim(),
        format!("Tag other/web:prod set to img/web@{}.", digest(3))
    );
    assert_eq!(
        tag_history(&admin, "other", "web", "prod").await?,
        [digest(3)]
    );

    // External images: import flags, references.
    assert_eq!(
        psc.ok(&["tag", "--scheduled", "quay.io/team/app:1", "web:ext"])
            .trim(),
        "Tag web:ext set to import quay.io/team/app:1 periodically."
    );
    let s = admin
        .get("/apis/image.openshift.io/v1/namespaces/img/imagestreams/web")
        .await?
        .body;
    let ext = s["spec"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ext")
        .unwrap()
        .clone();
    assert_eq!(
        ext["from"],
        json!({"kind": "DockerImage", "name": "quay.io/team/app:1"})
    );
    assert_eq!(ext["importPolicy"]["scheduled"], true);
    psc.ok(&["tag", "--reference", "quay.io/team/app:2", "web:ref"]);
    assert_eq!(
        admin
            .get("/apis/image.openshift.io/v1/namespaces/img/imagestreamtags/web:ref")
            .await?
            .status,
        404,
        "a reference tag has no image"
    );
    let err = psc.fails(&["tag", "--scheduled", "web:v1", "web:x"]);
    assert!(
        err.contains("only container images can have importing flags set"),
        "{err}"
    );
    let err = psc.fails(&["tag", "web:nothing", "web:x"]);
    assert!(
        err.contains("\"web:nothing\" is not currently pointing to an image"),
        "{err}"
    );

    // Spec changes bump the stream generation; spec tags carry theirs.
    let s = admin
        .get("/apis/image.openshift.io/v1/namespaces/img/imagestreams/web")
        .await?
        .body;
    let gen = s["metadata"]["generation"].as_i64().unwrap();
    let prod = s["spec"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "prod")
        .unwrap()
        .clone();
    assert!(
        gen > 1 && prod["generation"].as_i64().unwrap() <= gen,
        "{s}"
    );

    // Deleting a tag removes spec and history.
    assert_eq!(
        psc.ok(&["tag", "-d", "web:prod"]).trim(),
        "Deleted tag img/web:prod."
    );
    assert!(tag_history(&admin, "img", "web", "prod").await?.is_empty());
    let s = admin
        .get("/apis/image.openshift.io/v1/namespaces/img/imagestreams/web")
        .await?
        .body;
    assert!(!s["spec"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "prod"));
    let err = psc.fails(&["tag", "-d", "web:prod"]);
    assert!(err.contains("(NotFound)"), "{err}");

    // A viewer cannot tag.
    admin.create_user("viewer", "viewer-password").await?;
    admin.grant("img", "view", "viewer").await?;
    let viewer = Psc::new()?;
    viewer.ok(&[
        "login",
        &server.url,
        "-u",
        "viewer",
        "-p",
        "viewer-password",
    ]);
    let err = viewer.fails(&["tag", "web:v1", "web:mine", "-n", "img"]);
    assert!(err.contains("(Forbidden)"), "{err}");
    let istags: Value =
        serde_json::from_str(&viewer.ok(&["get", "istag", "-n", "img", "-o", "json"]))?;
    assert!(istags["items"].as_array().unwrap().len() >= 3);
    Ok(())
}
