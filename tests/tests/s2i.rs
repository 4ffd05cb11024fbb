//! Source-to-image builds on the real Docker engine: builder images made by
//! our own Docker strategy from a busybox base, the Source strategy turning
//! a directory into a runnable image (image scripts, `.s2i/environment`
//! under the build env, the assemble user, `run` as the command), source
//! scripts taking precedence, and the refusals (root assemble user, no
//! scripts anywhere).

use podspace_e2e::{unique, Api, DockerCli, Psc, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

struct Env {
    server: Server,
    admin: Api,
    psc: Psc,
    ns: String,
}

impl Env {
    async fn start() -> anyhow::Result<Env> {
        Self::start_with(&[]).await
    }

    async fn start_with(extra: &[&str]) -> anyhow::Result<Env> {
        let mut args = vec!["--node-slots", "2"];
        args.extend_from_slice(extra);
        let server = Server::start_with(&args)?;
        let admin = Api::admin(&server.url).await?;
        let ns = unique("s2i");
        admin.new_project(&ns).await?;
        podspace_e2e::push_busybox_bases(
            &server.registry,
            admin.token.as_deref().unwrap_or_default(),
            &[&ns],
        )?;
        let psc = Psc::new()?;
        psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
        psc.ok(&["project", &ns]);
        Ok(Env {
            server,
            admin,
            psc,
            ns,
        })
    }

    async fn create_bc(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        podspace_e2e::create_build_config(&self.admin, &self.ns, name, spec).await
    }

    async fn wait_done(&self, build: &str) -> anyhow::Result<Value> {
        podspace_e2e::wait_build(&self.admin, &self.ns, build).await
    }

    async fn log(&self, build: &str) -> anyhow::Result<String> {
        podspace_e2e::build_log(&self.admin, &self.ns, build).await
    }

    /// A builder image built by our Docker strategy: scripts under
    /// /usr/libexec/s2i (named by the label when `label`), USER `user`.
    async fn builder(&self, name: &str, label: bool, user: Option<&str>) -> anyhow::Result<()> {
        self.builder_with(name, label, user, "").await
    }

    /// [`Env::builder`] with `extra` Dockerfile lines before its USER.
    async fn builder_with(
        &self,
        name: &str,
        label: bool,
        user: Option<&str>,
        extra: &str,
    ) -> anyhow::Result<()> {
        let base = format!("{}/{}/base:1", self.server.registry, self.ns);
        let mut dockerfile = format!(
            "FROM {base}\n\
             RUN busybox mkdir -p /usr/libexec/s2i /opt/app /tmp && busybox chown 1001:0 /opt/app && busybox chmod 1777 /tmp && \
             echo '#!/bin/sh' > /usr/libexec/s2i/assemble && \
             echo 'busybox cp -R /tmp/src/. /opt/app/ && echo \"assembled by image script as $(id -u)\"' >> /usr/libexec/s2i/assemble && \
             echo '#!/bin/sh' > /usr/libexec/s2i/run && \
             echo 'cat /opt/app/hello.txt; echo \"greeting=$GREETING other=$OTHER\"' >> /usr/libexec/s2i/run && \
             busybox chmod 755 /usr/libexec/s2i/assemble /usr/libexec/s2i/run\n"
        );
        if label {
            dockerfile.push_str("LABEL io.openshift.s2i.scripts-url=image:///usr/libexec/s2i\n");
        }
        dockerfile.push_str(extra);
        if let Some(u) = user {
            dockerfile.push_str(&format!("USER {u}\n"));
        }
        self.create_bc(
            name,
            json!({"source": {"dockerfile": dockerfile}, "strategy": {"type": "Docker", "dockerStrategy": {}},
                   "output": {"to": {"kind": "ImageStreamTag", "name": format!("{name}:latest")}}}),
        )
        .await?;
        self.psc.ok(&["start-build", name, "--wait"]);
        Ok(())
    }

    async fn s2i_bc(&self, name: &str, builder: &str) -> anyhow::Result<()> {
        self.create_bc(
            name,
            json!({"source": {"binary": {}},
                   "strategy": {"type": "Source", "sourceStrategy": {
                       "from": {"kind": "ImageStreamTag", "name": format!("{builder}:latest")},
                       "env": [{"name": "GREETING", "value": "from-the-build"}]}},
                   "output": {"to": {"kind": "ImageStreamTag", "name": format!("{name}:latest")}}}),
        )
        .await
    }

    fn start_from(&self, bc: &str, dir: &std::path::Path) -> std::process::Output {
        self.psc.run(&[
            "start-build",
            bc,
            "--from-dir",
            &dir.display().to_string(),
            "--wait",
        ])
    }
}

fn app_dir(scripts: bool) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hello.txt"), "hello from s2i\n")?;
    std::fs::create_dir_all(dir.path().join(".s2i/bin"))?;
    std::fs::write(
        dir.path().join(".s2i/environment"),
        "# overridden by the build's env\nGREETING=from-the-file\nOTHER=kept\n",
    )?;
    if scripts {
        use std::os::unix::fs::PermissionsExt;
        for (name, body) in [
            ("assemble", "#!/bin/sh\nbusybox cp -R /tmp/src/. /opt/app/ && echo \"assembled by source script as $(id -u)\"\n"),
            ("run", "#!/bin/sh\ncat /opt/app/hello.txt\n"),
        ] {
            let p = dir.path().join(".s2i/bin").join(name);
            std::fs::write(&p, body)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn source_builds_with_image_scripts_and_source_scripts() -> anyhow::Result<()> {
    let e = Env::start().await?;
    e.builder("pybuilder", true, Some("1001")).await?;
    let out = e.psc.ok(&[
        "new-build",
        "--binary",
        "--name",
        "app",
        "--strategy",
        "source",
        "-i",
        "pybuilder",
        "-e",
        "GREETING=from-the-build",
    ]);
    assert!(
        out.contains("buildconfig.build.openshift.io \"app\" created"),
        "{out}"
    );
    let dir = app_dir(false)?;
    let out = e.start_from("app", dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = e.wait_done("app-1").await?;
    assert_eq!(
        b["status"]["phase"],
        "Complete",
        "{}\n{}",
        b["status"],
        e.log("app-1").await?
    );
    let log = e.log("app-1").await?;
    assert!(log.contains("assembled by image script as 1001"), "{log}");

    // The output runs `run`, as the builder's user, with the build env over
    // .s2i/environment.
    let docker = DockerCli::new()?;
    let token = e.admin.token.clone().unwrap_or_default();
    assert!(docker
        .login(&e.server.registry, "admin", &token)
        .status
        .success());
    let image = format!("{}/{}/app:latest", e.server.registry, e.ns);
    docker.ok(&["pull", &image]);
    let out = docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "hello from s2i\ngreeting=from-the-build other=kept\n");
    let inspect: Value = serde_json::from_str(&docker.ok(&["image", "inspect", &image]))?;
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "1001");
    assert_eq!(config["Cmd"], json!(["/usr/libexec/s2i/run"]));
    assert!(
        config["Labels"]["io.openshift.build.image"]
            .as_str()
            .unwrap_or_default()
            .contains("/pybuilder"),
        "{}",
        config["Labels"]
    );
    let _ = docker.run(&["rmi", &image]);

    // The same build reproduced by hand: --as-dockerfile writes the
    // Dockerfile and context, and the docker CLI builds an image that runs
    // the same way.
    let out_dir = tempfile::tempdir()?;
    let out = e.psc.ok(&[
        "start-build",
        "app",
        "--from-dir",
        &dir.path().display().to_string(),
        "--as-dockerfile",
        &out_dir.path().display().to_string(),
    ]);
    assert!(out.contains("Wrote"), "{out}");
    let text = std::fs::read_to_string(out_dir.path().join("Dockerfile"))?;
    assert!(
        text.contains(&format!(
            "FROM {}/{}/pybuilder@sha256:",
            e.server.registry, e.ns
        )),
        "{text}"
    );
    assert!(text.contains("RUN /usr/libexec/s2i/assemble"), "{text}");
    assert!(out_dir.path().join("upload/src/hello.txt").is_file());
    let by_hand = format!("{}:{}", unique("s2i-by-hand"), "1");
    let built = docker.run(&[
        "build",
        "--network",
        "host",
        "-t",
        &by_hand,
        &out_dir.path().display().to_string(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let out = docker.ok(&["run", "--rm", "--network", "none", &by_hand]);
    assert_eq!(out, "hello from s2i\ngreeting=from-the-build other=kept\n");
    let _ = docker.run(&["rmi", &by_hand]);

    // A builder without the scripts label: the source's .s2i/bin scripts
    // build it; without them the build names the label it looked at.
    e.builder("bare", false, Some("1001")).await?;
    e.s2i_bc("own", "bare").await?;
    let with_scripts = app_dir(true)?;
    let out = e.start_from("own", with_scripts.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = e.log("own-1").await?;
    assert!(log.contains("assembled by source script as 1001"), "{log}");
    let out = e.start_from("own", dir.path());
    assert!(!out.status.success());
    let b = e.wait_done("own-2").await?;
    podspace_e2e::assert_build_failed(
        &b,
        "BuilderImageHasNoScripts",
        "io.openshift.s2i.scripts-url",
    );

    // A failing assemble is AssembleFailed, its output in the log.
    let failing = app_dir(true)?;
    std::fs::write(
        failing.path().join(".s2i/bin/assemble"),
        "#!/bin/sh\necho assemble-is-failing-now\nexit 3\n",
    )?;
    let out = e.start_from("own", failing.path());
    assert!(!out.status.success());
    let b = e.wait_done("own-3").await?;
    assert_eq!(b["status"]["reason"], "AssembleFailed", "{}", b["status"]);
    assert!(e.log("own-3").await?.contains("assemble-is-failing-now"));

    // assemble never runs as root.
    e.builder("rooty", true, None).await?;
    e.s2i_bc("asroot", "rooty").await?;
    let out = e.start_from("asroot", dir.path());
    assert!(!out.status.success());
    let b = e.wait_done("asroot-1").await?;
    assert_eq!(
        b["status"]["reason"], "AssembleUserRootRefused",
        "{}",
        b["status"]
    );
    Ok(())
}

/// A named assemble user is resolved through the builder's own
/// `/etc/passwd`, read from its layers by the node (the newest layer that
/// has the file wins): a name for a non-root UID builds as that UID, a
/// name for UID 0 is refused as root, an unknown name is refused.
#[tokio::test(flavor = "multi_thread")]
async fn named_assemble_users_resolve_through_the_image_passwd() -> anyhow::Result<()> {
    let e = Env::start().await?;
    // The user is added in one layer, and a later layer leaves /etc alone.
    let users = "RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && \
                 echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd && \
                 echo 'app:x:1001:0::/opt/app:/bin/sh' >> /etc/passwd\n\
                 RUN busybox mkdir -p /var/empty-layer\n";
    e.builder_with("named", true, Some("app"), users).await?;
    e.s2i_bc("byname", "named").await?;
    let dir = app_dir(false)?;
    let out = e.start_from("byname", dir.path());
    let log = e.log("byname-1").await?;
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("assemble user \"app\" is UID 1001 in the image's /etc/passwd"),
        "{log}"
    );
    assert!(log.contains("assembled by image script as 1001"), "{log}");

    e.builder_with("rootname", true, Some("toor"), users)
        .await?;
    e.s2i_bc("bytoor", "rootname").await?;
    assert!(!e.start_from("bytoor", dir.path()).status.success());
    let b = e.wait_done("bytoor-1").await?;
    assert_eq!(
        b["status"]["reason"], "AssembleUserRootRefused",
        "{}",
        b["status"]
    );

    e.builder_with("nobody", true, Some("ghost"), users).await?;
    e.s2i_bc("byghost", "nobody").await?;
    assert!(!e.start_from("byghost", dir.path()).status.success());
    let b = e.wait_done("byghost-1").await?;
    assert_eq!(
        b["status"]["reason"], "AssembleUserNotAllowed",
        "{}",
        b["status"]
    );
    assert!(
        b["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"ghost\""),
        "{}",
        b["status"]
    );
    Ok(())
}

/// Labels assemble writes to `/tmp/.s2i/image_metadata.json` land on the
/// output image and win over the build's own; a malformed file, or labels
/// beyond 10 KiB in all, fail the build and push nothing.
#[tokio::test(flavor = "multi_thread")]
async fn image_metadata_labels_and_the_label_bound() -> anyhow::Result<()> {
    let e = Env::start().await?;
    e.builder("labeller", true, Some("1001")).await?;
    e.s2i_bc("labelled", "labeller").await?;
    let with_assemble = |body: &str| -> anyhow::Result<tempfile::TempDir> {
        use std::os::unix::fs::PermissionsExt;
        let dir = app_dir(false)?;
        let p = dir.path().join(".s2i/bin/assemble");
        std::fs::write(
            &p,
            format!("#!/bin/sh\nbusybox mkdir -p /tmp/.s2i\n{body}\n"),
        )?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    };
    let good = with_assemble(
        r#"echo '{"labels":[{"app.example/version":"1.2.3"},{"io.openshift.build.name":"renamed"}]}' > /tmp/.s2i/image_metadata.json"#,
    )?;
    let out = e.start_from("labelled", good.path());
    let log = e.log("labelled-1").await?;
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("Labels from /tmp/.s2i/image_metadata.json: app.example/version, io.openshift.build.name"),
        "{log}"
    );
    let istag: Value =
        serde_json::from_str(&e.psc.ok(&["get", "istag", "labelled:latest", "-o", "json"]))?;
    let labels = &istag["image"]["dockerImageMetadata"]["Config"]["Labels"];
    assert_eq!(labels["app.example/version"], "1.2.3", "{labels}");
    assert_eq!(labels["io.openshift.build.name"], "renamed", "{labels}");
    assert_eq!(
        labels["io.openshift.build.namespace"],
        e.ns.as_str(),
        "{labels}"
    );
    // Setting them kept the rest of the image as the build made it.
    let config = &istag["image"]["dockerImageMetadata"]["Config"];
    assert_eq!(config["Cmd"], json!(["/usr/libexec/s2i/run"]), "{config}");
    assert_eq!(config["User"], "1001", "{config}");
    assert!(
        config["Env"]
            .to_string()
            .contains("OPENSHIFT_BUILD_NAME=labelled-1"),
        "{config}"
    );
    let first = istag["image"]["metadata"]["name"].clone();

    let malformed =
        with_assemble("echo '{\"labels\":{\"a\":\"b\"}}' > /tmp/.s2i/image_metadata.json")?;
    assert!(!e.start_from("labelled", malformed.path()).status.success());
    let b = e.wait_done("labelled-2").await?;
    assert_eq!(
        b["status"]["reason"], "GenericBuildFailed",
        "{}",
        b["status"]
    );
    assert!(
        b["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("image_metadata.json"),
        "{}",
        b["status"]
    );

    let huge = with_assemble(&format!(
        "echo '{{\"labels\":[{{\"big\":\"{}\"}}]}}' > /tmp/.s2i/image_metadata.json",
        "x".repeat(11 * 1024)
    ))?;
    assert!(!e.start_from("labelled", huge.path()).status.success());
    let b = e.wait_done("labelled-3").await?;
    assert!(
        b["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 10240"),
        "{}",
        b["status"]
    );
    // Neither failed build moved the tag.
    let istag: Value =
        serde_json::from_str(&e.psc.ok(&["get", "istag", "labelled:latest", "-o", "json"]))?;
    assert_eq!(istag["image"]["metadata"]["name"], first);
    Ok(())
}

/// An incremental build gets the previous output's saved artifacts; the
/// first build (no previous image) is a clean build that says so;
/// `--incremental=false` turns it off for one build.
#[tokio::test(flavor = "multi_thread")]
async fn incremental_builds_restore_artifacts() -> anyhow::Result<()> {
    let e = Env::start().await?;
    let base = format!("{}/{}/base:1", e.server.registry, e.ns);
    // A builder whose assemble counts its runs in /opt/app/count, kept as
    // an artifact by save-artifacts.
    let dockerfile = format!(
        "FROM {base}\n\
         RUN busybox mkdir -p /usr/libexec/s2i /opt/app && busybox chown 1001:0 /opt/app && \
         busybox ln -s busybox /bin/tar && busybox chmod 1777 /tmp && \
         echo '#!/bin/sh' > /usr/libexec/s2i/assemble && \
         echo 'n=0; [ -f /tmp/artifacts/count ] && n=$(cat /tmp/artifacts/count); n=$((n+1)); echo $n > /opt/app/count; echo \"assemble run $n\"' >> /usr/libexec/s2i/assemble && \
         echo '#!/bin/sh' > /usr/libexec/s2i/run && echo 'cat /opt/app/count' >> /usr/libexec/s2i/run && \
         echo '#!/bin/sh' > /usr/libexec/s2i/save-artifacts && echo 'cd /opt/app && tar -cf - count' >> /usr/libexec/s2i/save-artifacts && \
         busybox chmod 755 /usr/libexec/s2i/assemble /usr/libexec/s2i/run /usr/libexec/s2i/save-artifacts\n\
         LABEL io.openshift.s2i.scripts-url=image:///usr/libexec/s2i\n\
         USER 1001\n"
    );
    e.create_bc(
        "counter",
        json!({"source": {"dockerfile": dockerfile}, "strategy": {"type": "Docker", "dockerStrategy": {}},
               "output": {"to": {"kind": "ImageStreamTag", "name": "counter:latest"}}}),
    )
    .await?;
    e.psc.ok(&["start-build", "counter", "--wait"]);
    e.create_bc(
        "incb",
        json!({"source": {"binary": {}},
               "strategy": {"type": "Source", "sourceStrategy": {
                   "from": {"kind": "ImageStreamTag", "name": "counter:latest"}, "incremental": true}},
               "output": {"to": {"kind": "ImageStreamTag", "name": "incb:latest"}}}),
    )
    .await?;
    let dir = app_dir(false)?;
    for (n, want) in [
        (1, "assemble run 1"),
        (2, "assemble run 2"),
        (3, "assemble run 3"),
    ] {
        let out = e.start_from("incb", dir.path());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = e.log(&format!("incb-{n}")).await?;
        assert!(log.contains(want), "build {n}: {log}");
        if n == 1 {
            assert!(
                log.contains("incremental: previous image unavailable"),
                "{log}"
            );
        } else {
            assert!(log.contains("incremental: artifacts from"), "{log}");
        }
    }
    Ok(())
}

/// A cluster admin may allow a root assemble user (`--s2i-allow-root`).
#[tokio::test(flavor = "multi_thread")]
async fn root_assemble_only_when_the_admin_allows_it() -> anyhow::Result<()> {
    let e = Env::start_with(&["--s2i-allow-root"]).await?;
    e.builder("rooty", true, None).await?;
    e.s2i_bc("asroot", "rooty").await?;
    let dir = app_dir(false)?;
    let out = e.start_from("asroot", dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = e.log("asroot-1").await?;
    assert!(log.contains("assembled by image script as 0"), "{log}");
    Ok(())
}

/// `source.secrets` and `source.configMaps`: assemble reads both where the
/// build placed them (a relative destination under the builder's
/// WorkingDir, an absolute one as given); the output image keeps the
/// ConfigMap's file and holds the Secret in no layer; the log never shows
/// its value. A Docker build finds them in its context. A missing Secret
/// fails the build before any node runs it.
#[tokio::test(flavor = "multi_thread")]
async fn build_time_secrets_and_config_maps() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::start().await?;
    let value = format!("tok-{}", unique("v"));
    e.builder_with("injector", true, Some("1001"), "WORKDIR /opt/app\n")
        .await?;
    let secrets = format!("/api/v1/namespaces/{}/secrets", e.ns);
    let maps = format!("/api/v1/namespaces/{}/configmaps", e.ns);
    for (path, body) in [
        (
            &secrets,
            json!({"metadata": {"name": "app-creds"},
                   "stringData": {"token": value, ".npmrc": "always-auth=true\n"}}),
        ),
        (
            &maps,
            json!({"metadata": {"name": "app-conf"}, "data": {"app.ini": "[app]\nmode=prod\n"}}),
        ),
    ] {
        let made = e.admin.post(path, &body).await?;
        assert_eq!(made.status, 201, "{}", made.text);
    }
    let bad = e
        .admin
        .post(
            &secrets,
            &json!({"metadata": {"name": "bad"}, "stringData": {"../x": "y"}}),
        )
        .await?;
    assert_eq!(bad.status, 422, "{}", bad.body);

    let inputs = json!({
        "secrets": [{"secret": {"name": "app-creds"}, "destinationDir": "creds"}],
        "configMaps": [{"configMap": {"name": "app-conf"}, "destinationDir": "/opt/app/conf"}]
    });
    let mut spec = json!({"source": {"binary": {}},
        "strategy": {"type": "Source", "sourceStrategy": {
            "from": {"kind": "ImageStreamTag", "name": "injector:latest"}}},
        "output": {"to": {"kind": "ImageStreamTag", "name": "injected:latest"}}});
    spec["source"]["secrets"] = inputs["secrets"].clone();
    spec["source"]["configMaps"] = inputs["configMaps"].clone();
    e.create_bc("injected", spec).await?;
    // The source (which the image keeps) knows the secret by its digest.
    let digest = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(value.as_bytes()))
    };
    let dir = app_dir(false)?;
    let assemble = dir.path().join(".s2i/bin/assemble");
    std::fs::write(
        &assemble,
        format!(
            "#!/bin/sh\nset -e\n\
             busybox sha256sum /opt/app/creds/token | busybox grep -q '^{digest} '\n\
             busybox test -s /opt/app/creds/.npmrc\n\
             echo \"assemble read $(busybox wc -c < /opt/app/creds/token) secret bytes\"\n\
             busybox cp /opt/app/conf/app.ini /opt/app/copied.ini\n\
             busybox cp -R /tmp/src/. /opt/app/\n"
        ),
    )?;
    std::fs::set_permissions(&assemble, std::fs::Permissions::from_mode(0o755))?;
    let run = dir.path().join(".s2i/bin/run");
    std::fs::write(
        &run,
        "#!/bin/sh\nbusybox cat /opt/app/conf/app.ini /opt/app/copied.ini\necho \"creds: $(busybox ls -A /opt/app/creds)\"\n",
    )?;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))?;
    let out = e.start_from("injected", dir.path());
    let log = e.log("injected-1").await?;
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("Injecting secret \"app-creds\" into /opt/app/creds (2 files"),
        "{log}"
    );
    assert!(
        log.contains("Injecting configMap \"app-conf\" into /opt/app/conf (1 files"),
        "{log}"
    );
    assert!(
        log.contains(&format!("assemble read {} secret bytes", value.len())),
        "{log}"
    );
    assert!(!log.contains(&value), "the log shows the secret: {log}");

    let docker = DockerCli::new()?;
    let token = e.admin.token.clone().unwrap_or_default();
    assert!(docker
        .login(&e.server.registry, "admin", &token)
        .status
        .success());
    let image = format!("{}/{}/injected:latest", e.server.registry, e.ns);
    docker.ok(&["pull", &image]);
    let out = docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "[app]\nmode=prod\n[app]\nmode=prod\ncreds: \n");
    // No layer holds the secret: the saved image's tars are searched.
    let saved = tempfile::tempdir()?;
    let tar = saved.path().join("image.tar");
    docker.ok(&["save", "-o", &tar.display().to_string(), &image]);
    let bytes = std::fs::read(&tar)?;
    assert!(bytes.len() > 1000);
    assert!(
        !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
        "the output image holds the secret"
    );
    let _ = docker.run(&["rmi", &image]);

    // --as-dockerfile writes the same inputs, the secrets in a private
    // directory, and mounts them as the node does.
    let out_dir = tempfile::tempdir()?;
    let printed = e.psc.ok(&[
        "start-build",
        "injected",
        "--from-dir",
        &dir.path().display().to_string(),
        "--as-dockerfile",
        &out_dir.path().display().to_string(),
    ]);
    assert!(printed.contains("docker buildx build"), "{printed}");
    let text = std::fs::read_to_string(out_dir.path().join("Dockerfile"))?;
    assert!(
        text.contains("COPY --chown=1001:0 [\"upload/configmaps/0\",\"/opt/app/conf\"]"),
        "{text}"
    );
    assert!(
        text.contains("--mount=type=bind,source=upload/secrets,target=/tmp/.s2i-secrets"),
        "{text}"
    );
    assert!(
        text.contains("rm -f '/opt/app/creds/.npmrc' '/opt/app/creds/token'"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("upload/secrets/0/token"))?,
        value
    );
    let mode = std::fs::metadata(out_dir.path())?.permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    // A Docker build: the files are in its context at destinationDir.
    let base = format!("{}/{}/base:1", e.server.registry, e.ns);
    let mut docker_spec = json!({"source": {"dockerfile": format!(
            "FROM {base}\nCOPY creds/token conf/app.ini /in/\n\
             RUN busybox sha256sum /in/token | busybox grep -q '^{digest} ' && busybox grep -q mode=prod /in/app.ini && busybox rm /in/token\n")},
        "strategy": {"type": "Docker", "dockerStrategy": {}},
        "output": {"to": {"kind": "ImageStreamTag", "name": "dockered:latest"}}});
    docker_spec["source"]["secrets"] = inputs["secrets"].clone();
    docker_spec["source"]["configMaps"] =
        json!([{"configMap": {"name": "app-conf"}, "destinationDir": "conf"}]);
    e.create_bc("dockered", docker_spec).await?;
    let out = e.psc.run(&["start-build", "dockered", "--wait"]);
    let log = e.log("dockered-1").await?;
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("Copying secret \"app-creds\" to \"creds\" in the build context (2 files)"),
        "{log}"
    );
    assert!(!log.contains(&value), "the log shows the secret: {log}");

    // An absolute destination is refused for a Docker build.
    let refused = e
        .admin
        .post(
            &format!(
                "/apis/build.openshift.io/v1/namespaces/{}/buildconfigs",
                e.ns
            ),
            &json!({"metadata": {"name": "abs"}, "spec": {"source": {"dockerfile": "FROM x\n",
                "secrets": [{"secret": {"name": "app-creds"}, "destinationDir": "/etc"}]},
                "strategy": {"type": "Docker", "dockerStrategy": {}}}}),
        )
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .to_string()
            .contains("spec.source.secrets[0].destinationDir"),
        "{}",
        refused.body
    );

    // A missing Secret: the build fails with what is missing.
    e.create_bc(
        "missing",
        json!({"source": {"dockerfile": format!("FROM {base}\n"),
               "secrets": [{"secret": {"name": "nope"}}]},
               "strategy": {"type": "Docker", "dockerStrategy": {}}}),
    )
    .await?;
    assert!(!e
        .psc
        .run(&["start-build", "missing", "--wait"])
        .status
        .success());
    let b = e.wait_done("missing-1").await?;
    assert_eq!(b["status"]["phase"], "Failed", "{}", b["status"]);
    assert_eq!(
        b["status"]["reason"], "MissingBuildInput",
        "{}",
        b["status"]
    );
    assert!(
        b["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("secret \"nope\" (spec.source.secrets[0]) not found"),
        "{}",
        b["status"]
    );
    Ok(())
}
