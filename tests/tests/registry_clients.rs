//! The real docker CLI and skopeo against our registry.

use std::process::Command;

use podspace_e2e::{unique, Api, DockerCli, Moto, Server};

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (package skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_login_push_pull_run_and_skopeo_round_trips() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("clients").await?;
    let alice = admin.create_user("alice", "alice-password").await?;
    admin.grant("clients", "edit", "alice").await?;
    let docker = DockerCli::new()?;
    let reg = server.registry.clone();
    let local = unique("podspace-test/busybox");
    docker.busybox_image(&local)?;
    let remote = format!("{reg}/clients/busybox:v1");

    // An API token as the password, as `docker login -p "$(psc whoami -t)"` does.
    let token = alice.token.clone().unwrap();
    assert!(
        !docker
            .login(&reg, "alice", "wrong-password")
            .status
            .success(),
        "a wrong password logs in"
    );
    let login = docker.login(&reg, "alice", &token);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );

    docker.ok(&["tag", &local, &remote]);
    let pushed = docker.ok(&["push", &remote]);
    let digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("push prints the digest")
        .to_string();
    docker.ok(&["rmi", &remote, &local]);
    docker.ok(&["pull", &remote]);
    let said = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &remote,
        "echo",
        "hello from our registry",
    ]);
    assert_eq!(said.trim(), "hello from our registry");

    // The push tagged the image into the image stream.
    let is = admin
        .get("/apis/image.openshift.io/v1/namespaces/clients/imagestreams/busybox")
        .await?;
    assert_eq!(is.status, 200, "{}", is.text);
    let item = &is.body["status"]["tags"][0];
    assert_eq!(item["tag"], "v1");
    assert_eq!(item["items"][0]["image"], digest.as_str());
    assert_eq!(
        item["items"][0]["dockerImageReference"],
        format!("{reg}/clients/busybox@{digest}")
    );
    let image = admin
        .get(&format!("/apis/image.openshift.io/v1/images/{digest}"))
        .await?;
    assert_eq!(
        image.body["dockerImageMetadata"]["Config"]["Cmd"][0], "/bin/sh",
        "{}",
        image.text
    );

    // skopeo: docker-daemon -> registry -> oci layout -> registry as OCI.
    let creds = format!("alice:{token}");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("docker-daemon:{remote}"),
        &format!("docker://{reg}/clients/copied:v1"),
    ]);
    let layout = tempfile::tempdir()?;
    let oci = format!("oci:{}:v1", layout.path().display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{reg}/clients/copied:v1"),
        &oci,
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        "--format",
        "oci",
        &oci,
        &format!("docker://{reg}/clients/back:v1"),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        "--raw",
        &format!("docker://{reg}/clients/back:v1"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json"))?)?;
    let in_layout = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let served = format!("sha256:{}", sha256_hex(raw.as_bytes()));
    assert_eq!(served, in_layout, "the manifest came back byte for byte");
    let manifest: serde_json::Value = serde_json::from_str(&raw)?;
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // Every layer in the layout has the digest the registry serves.
    for layer in manifest["layers"].as_array().unwrap() {
        let d = layer["digest"].as_str().unwrap();
        let file = layout
            .path()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        assert_eq!(format!("sha256:{}", sha256_hex(&std::fs::read(file)?)), d);
    }
    docker.ok(&["rmi", &remote]);
    // A user of another project cannot pull.
    let bob = admin.create_user("bob", "bob-password").await?;
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("bob:{}", bob.token.unwrap()),
            &format!("docker://{reg}/clients/back:v1"),
        ])
        .output()?;
    assert!(
        !out.status.success(),
        "bob pulled from a project he is not in"
    );
    Ok(())
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_push_and_pull_on_s3_storage() -> anyhow::Result<()> {
    let moto = Moto::start().await?;
    let args = moto.serve_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_with(&args)?;
    assert!(
        server.log_text().contains("\"driver\":\"s3\""),
        "the registry runs on S3"
    );
    let admin = Api::admin(&server.url).await?;
    admin.new_project("s3").await?;
    let docker = DockerCli::new()?;
    let reg = server.registry.clone();
    let local = unique("podspace-test/big");
    // 12 MiB that gzip cannot shrink: a multipart upload of three parts.
    docker.busybox_image_with(&local, 12 << 20)?;
    let remote = format!("{reg}/s3/big:v1");
    assert!(docker
        .login(&reg, "admin", podspace_e2e::ADMIN_PASSWORD)
        .status
        .success());
    docker.ok(&["tag", &local, &remote]);
    docker.ok(&["push", &remote]);
    docker.ok(&["rmi", &remote, &local]);
    docker.ok(&["pull", &remote]);
    let size = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &remote,
        "sh",
        "-c",
        "wc -c < /filler",
    ]);
    assert_eq!(size.trim(), (12 << 20).to_string());
    docker.ok(&["rmi", &remote]);
    Ok(())
}
