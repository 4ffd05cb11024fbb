//! A build reads only images its own credentials can pull. User A builds
//! `pa/abuild` on a node, so the node's engine holds it; user B (edit on
//! `pb` only) then builds FROM it, or copies from it in a multi-stage
//! build: B's build fails with `PullBuilderImageFailed` naming the image,
//! nothing of A's reaches `pb`. With BuildKit and with the classic builder.

use podspace_e2e::{unique, Api, Psc, Server};
use serde_json::json;

struct Tenants {
    registry: String,
    pa: String,
    pb: String,
    a: Api,
    b: Api,
    psc_b: Psc,
}

async fn tenants(server: &Server) -> anyhow::Result<Tenants> {
    let admin = Api::admin(&server.url).await?;
    let (pa, pb) = (unique("pa"), unique("pb"));
    admin.new_project(&pa).await?;
    admin.new_project(&pb).await?;
    let (ua, ub) = (unique("usera"), unique("userb"));
    let a = admin.create_user(&ua, "a-password-1").await?;
    let b = admin.create_user(&ub, "b-password-1").await?;
    admin.grant(&pa, "edit", &ua).await?;
    admin.grant(&pb, "edit", &ub).await?;
    // A busybox base in each project (pushed by the admin).
    podspace_e2e::push_busybox_bases(
        &server.registry,
        admin.token.as_deref().unwrap_or_default(),
        &[&pa, &pb],
    )?;
    let psc_b = Psc::new()?;
    psc_b.ok(&["login", &server.url, "-u", &ub, "-p", "b-password-1"]);
    psc_b.ok(&["project", &pb]);
    Ok(Tenants {
        registry: server.registry.clone(),
        pa,
        pb,
        a,
        b,
        psc_b,
    })
}

fn bc_path(ns: &str) -> String {
    format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs")
}

async fn inline_build(api: &Api, ns: &str, name: &str, dockerfile: &str) -> anyhow::Result<()> {
    let r = api
        .post(
            &bc_path(ns),
            &json!({"metadata": {"name": name}, "spec": {
                "source": {"dockerfile": dockerfile},
                "strategy": {"type": "Docker", "dockerStrategy": {}},
                "output": {"to": {"kind": "ImageStreamTag", "name": format!("{name}:latest")}},
            }}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "create bc: {} {}", r.status, r.text);
    let r = api
        .post(
            &format!("{}/{name}/instantiate", bc_path(ns)),
            &json!({"kind": "BuildRequest", "metadata": {"name": name}}),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "instantiate: {} {}", r.status, r.text);
    Ok(())
}

async fn istag_status(api: &Api, ns: &str, tag: &str) -> anyhow::Result<u16> {
    Ok(api
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{tag}"
        ))
        .await?
        .status)
}

async fn scenario(server: &Server) -> anyhow::Result<()> {
    let t = tenants(server).await?;
    let (reg, pa, pb) = (&t.registry, &t.pa, &t.pb);
    let secret = unique("secret-of-a");

    // A builds pa/abuild: the node's engine now holds it.
    inline_build(
        &t.a,
        pa,
        "abuild",
        &format!("FROM {reg}/{pa}/base:1\nRUN echo {secret} > /secret.txt\n"),
    )
    .await?;
    let b = podspace_e2e::wait_build(&t.a, pa, "abuild-1").await?;
    assert_eq!(b["status"]["phase"], "Complete", "{}", b["status"]);
    let stolen = format!("{reg}/{pa}/abuild:latest");

    // B: a binary build FROM A's image.
    t.psc_b.ok(&["new-build", "--binary", "--name", "steal"]);
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {stolen}\nRUN cat /secret.txt\n"),
    )?;
    let out = t.psc_b.run(&[
        "start-build",
        "steal",
        "--from-dir",
        &dir.path().display().to_string(),
        "--wait",
    ]);
    assert!(!out.status.success(), "B's build must fail");
    let b = podspace_e2e::wait_build(&t.b, pb, "steal-1").await?;
    assert_eq!(b["status"]["phase"], "Failed", "{}", b["status"]);
    podspace_e2e::assert_build_failed(&b, "PullBuilderImageFailed", &stolen);
    let text = podspace_e2e::build_log(&t.b, pb, "steal-1").await?;
    assert!(!text.contains(&secret), "A's file was read: {text}");
    assert_eq!(istag_status(&t.b, pb, "steal:latest").await?, 404);

    // B: multi-stage, copying from A's image.
    inline_build(
        &t.b,
        pb,
        "copy",
        &format!(
            "FROM {reg}/{pb}/base:1 AS own\nRUN true\nFROM own\nCOPY --from={stolen} /secret.txt /stolen.txt\nRUN cat /stolen.txt\n"
        ),
    )
    .await?;
    let b = podspace_e2e::wait_build(&t.b, pb, "copy-1").await?;
    podspace_e2e::assert_build_failed(&b, "PullBuilderImageFailed", &stolen);
    assert!(!podspace_e2e::build_log(&t.b, pb, "copy-1")
        .await?
        .contains(&secret));
    assert_eq!(istag_status(&t.b, pb, "copy:latest").await?, 404);

    // Controls: B's own base builds, and A may copy from its own image
    // (pinned to the digest it resolved).
    inline_build(
        &t.b,
        pb,
        "own",
        &format!("FROM {reg}/{pb}/base:1\nRUN echo own-ok\n"),
    )
    .await?;
    let b = podspace_e2e::wait_build(&t.b, pb, "own-1").await?;
    assert_eq!(b["status"]["phase"], "Complete", "{}", b["status"]);
    inline_build(
        &t.a,
        pa,
        "reuse",
        &format!("FROM {reg}/{pa}/base:1\nCOPY --from={stolen} /secret.txt /again.txt\nRUN cat /again.txt\n"),
    )
    .await?;
    let b = podspace_e2e::wait_build(&t.a, pa, "reuse-1").await?;
    assert_eq!(b["status"]["phase"], "Complete", "{}", b["status"]);
    let text = podspace_e2e::build_log(&t.a, pa, "reuse-1").await?;
    assert!(
        text.contains(&format!(
            "Using image {stolen} as {reg}/{pa}/abuild@sha256:"
        )),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn another_projects_image_cannot_be_built_from_buildkit() -> anyhow::Result<()> {
    let server = Server::start_with(&["--node-slots", "2"])?;
    scenario(&server).await
}

#[tokio::test(flavor = "multi_thread")]
async fn another_projects_image_cannot_be_built_from_classic() -> anyhow::Result<()> {
    let server = Server::start_with(&["--node-slots", "0"])?;
    let admin = Api::admin(&server.url).await?;
    let work = tempfile::tempdir()?;
    let mut node = std::process::Command::new(podspace_e2e::bin("podspace"))
        .args(["node", "--api", &server.url, "--name", &unique("classic")])
        .args(["--slots", "2", "--classic-builder"])
        .arg("--work-dir")
        .arg(work.path())
        .env(
            "PODSPACE_NODE_TOKEN",
            admin.token.as_deref().unwrap_or_default(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = scenario(&server).await;
    let _ = node.kill();
    let _ = node.wait();
    result
}
