//! The shipped builder images (`builder-images/`), made by
//! `scripts/builder-images` with our own Docker strategy from a
//! debootstrapped Debian base into the shared project `openshift`, used by
//! an ordinary user: `psc new-build` detects the builder from a local git
//! repository's files, each output image runs (`--network host`, `PORT`)
//! and answers HTTP with the app's content; the python build installs its
//! requirements from a package index on loopback; with that index gone an
//! incremental rebuild reuses the previous environment (same
//! requirements.txt) or installs from the previous image's wheels; a
//! new python builder image rebuilds each BuildConfig that uses it exactly
//! once; a builder in a project the build may not read fails it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use podspace_e2e::{unique, Api, DockerCli, GitDaemon, Psc, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `tests/fixtures/wheel-index.py`: a package index with `greeting` 1.0.
struct WheelIndex {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl WheelIndex {
    fn start() -> anyhow::Result<WheelIndex> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wheel-index.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the wheel index")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("the wheel index did not start");
        }
        Ok(WheelIndex {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for WheelIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `image` with `PORT` set and returns the body of `GET /`.
async fn serve(docker: &DockerCli, image: &str) -> anyhow::Result<String> {
    docker.ok(&["pull", "-q", image]);
    answer(docker, image).await
}

/// Runs the local `image` (then removes it) and returns its answer to `GET /`.
async fn answer(docker: &DockerCli, image: &str) -> anyhow::Result<String> {
    let port = free_port()?;
    let name = unique("podspace-app");
    docker.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "-e",
        &format!("PORT={port}"),
        image,
    ]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        match http
            .get(format!("http://127.0.0.1:{port}/"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break Ok(r.text().await?),
            _ if Instant::now() > deadline => {
                let logs = docker.run(&["logs", &name]);
                break Err(anyhow::anyhow!(
                    "{image} did not answer on port {port}: {}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    docker.run(&["rm", "-f", &name]);
    docker.run(&["rmi", image]);
    result
}

async fn builds_of(api: &Api, ns: &str, bc: &str) -> anyhow::Result<Vec<Value>> {
    let list = api
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds"
        ))
        .await?
        .body;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["metadata"]["labels"]["buildconfig"] == bc)
        .cloned()
        .collect())
}

async fn istag(api: &Api, ns: &str, tag: &str) -> anyhow::Result<Value> {
    let r = api
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{tag}"
        ))
        .await?;
    anyhow::ensure!(r.status == 200, "istag {ns}/{tag}: {} {}", r.status, r.text);
    Ok(r.body)
}

fn scripts_builder_images(psc: &Psc, url: &str) -> anyhow::Result<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts/builder-images"))
        .arg(url)
        .env("PSC", podspace_e2e::bin("psc"))
        .env("PSC_CONFIG", &psc.config)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("scripts/builder-images failed: {stderr}");
    }
    Ok(stderr)
}

const PY_APP: &str = r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import greeting


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"python app: {greeting.WORDS}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
"#;

const NODE_SERVER: &str = r#"const http = require('http');
const shout = require('shout');
http.createServer((req, res) => res.end(shout('node app') + '\n'))
  .listen(Number(process.env.PORT || 8080));
"#;

#[tokio::test]
async fn shipped_builders_build_runnable_apps() -> anyhow::Result<()> {
    let server = Server::start_with(&["--node-slots", "2"])?;
    let admin = Api::admin(&server.url).await?;
    let admin_psc = Psc::new()?;
    admin_psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    let said = scripts_builder_images(&admin_psc, &server.url)?;
    assert!(
        said.contains("python: building openshift/python:3.11"),
        "{said}"
    );
    // Idempotent: nothing changed, nothing is built again.
    let again = scripts_builder_images(&admin_psc, &server.url)?;
    assert!(
        again.contains("openshift/python:3.11 is up to date"),
        "{again}"
    );
    assert_eq!(builds_of(&admin, "openshift", "python").await?.len(), 1);
    let builder = istag(&admin, "openshift", "python:latest").await?;
    let labels = &builder["image"]["dockerImageMetadata"]["Config"]["Labels"];
    assert_eq!(labels["io.openshift.s2i.assemble-user"], "1001");
    assert_eq!(
        labels["io.openshift.s2i.scripts-url"],
        "image:///usr/libexec/s2i"
    );

    // An ordinary user with a project of their own.
    let user = unique("dev");
    admin.create_user(&user, "dev-password").await?;
    let ns = unique("apps");
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", &user, "-p", "dev-password"]);
    psc.ok(&["new-project", &ns]);
    let git = GitDaemon::start()?;
    let index = WheelIndex::start()?;
    let docker = DockerCli::new()?;
    let token = admin.token.clone().unwrap_or_default();
    assert!(docker
        .login(&server.registry, "admin", &token)
        .status
        .success());

    // python: detected from requirements.txt, built from the local clone.
    git.commit(
        "pyapp",
        &[("app.py", PY_APP), ("requirements.txt", "greeting==1.0\n")],
        "python app",
    )?;
    let index_url = format!("PIP_INDEX_URL=http://127.0.0.1:{}/simple", index.port);
    let said = psc.ok(&[
        "new-build",
        &git.url("pyapp"),
        "--name",
        "py",
        "-e",
        &index_url,
        "-e",
        "PIP_TRUSTED_HOST=127.0.0.1",
    ]);
    assert!(
        said.contains("Found image stream tag openshift/python:latest for python source"),
        "{said}"
    );
    let done = podspace_e2e::wait_build(&admin, &ns, "py-1").await?;
    let log = podspace_e2e::build_log(&admin, &ns, "py-1").await?;
    assert_eq!(done["status"]["phase"], "Complete", "{log}");
    assert!(
        log.contains("Installing dependencies from requirements.txt"),
        "{log}"
    );
    let described = psc.ok(&["describe", "bc", "py"]);
    for want in [
        "Strategy:\t\tSource",
        "From Image:\t\tImageStreamTag openshift/python:latest",
        "Scripts:\t\tthe source's .s2i/bin, else the builder image",
    ] {
        assert!(described.contains(want), "{want:?} in\n{described}");
    }
    let out = istag(&admin, &ns, "py:latest").await?;
    let config = &out["image"]["dockerImageMetadata"]["Config"];
    assert_eq!(config["User"], "1001");
    assert!(config["Labels"]["io.openshift.build.image"]
        .as_str()
        .is_some_and(|i| i.contains("/openshift/python")));
    assert_eq!(config["Labels"]["io.openshift.build.name"], "py-1");
    assert_eq!(config["Cmd"], json!(["/usr/libexec/s2i/run"]));
    assert!(config["Env"]
        .as_array()
        .is_some_and(|env| env.iter().any(|e| e == "OPENSHIFT_BUILD_NAME=py-1")));
    let image = format!("{}/{ns}/py:latest", server.registry);
    assert_eq!(
        serve(&docker, &image).await?,
        "python app: greetings from a wheel\n"
    );

    // Incremental: the wheels come from the previous image; the index is
    // gone, so an install that reached for it would fail the build.
    drop(index);
    psc.ok(&["start-build", "py", "--incremental", "--wait"]);
    let log = podspace_e2e::build_log(&admin, &ns, "py-2").await?;
    assert!(
        log.contains("Restoring 1 wheels from the previous build"),
        "{log}"
    );
    assert!(
        log.contains("requirements.txt is unchanged: reusing the previous build's environment"),
        "{log}"
    );
    assert_eq!(
        serve(&docker, &image).await?,
        "python app: greetings from a wheel\n"
    );
    // Other requirements (the same package): installed from the wheels.
    git.commit(
        "pyapp",
        &[("requirements.txt", "# pinned\ngreeting==1.0\n")],
        "requirements",
    )?;
    psc.ok(&["start-build", "py", "--incremental", "--wait"]);
    let log = podspace_e2e::build_log(&admin, &ns, "py-3").await?;
    assert!(log.contains("Installed requirements.txt offline"), "{log}");
    assert_eq!(
        serve(&docker, &image).await?,
        "python app: greetings from a wheel\n"
    );

    // The incremental build reproduced by hand from the repository:
    // --as-dockerfile clones it, starts from the output's current image,
    // and `docker build` makes an image that answers the same.
    let by_hand = tempfile::tempdir()?;
    let said = psc.ok(&[
        "start-build",
        "py",
        "--incremental",
        "--as-dockerfile",
        &by_hand.path().display().to_string(),
    ]);
    assert!(
        said.contains("Cloned") && said.contains("incremental: artifacts from"),
        "{said}"
    );
    let text = std::fs::read_to_string(by_hand.path().join("Dockerfile"))?;
    assert!(
        text.contains(&format!("FROM {}/{ns}/py@sha256:", server.registry))
            && text.contains(" AS cached"),
        "{text}"
    );
    assert!(text.contains("\"io.openshift.build.commit.id\"="), "{text}");
    let tag = unique("podspace-by-hand").to_lowercase();
    let built = docker.run(&[
        "build",
        "--network",
        "host",
        "-t",
        &tag,
        &by_hand.path().display().to_string(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(
        answer(&docker, &tag).await?,
        "python app: greetings from a wheel\n"
    );

    // nodejs: package.json, a local dependency, npm start.
    git.commit(
        "nodeapp",
        &[
            (
                "package.json",
                r#"{"name": "nodeapp", "version": "1.0.0", "scripts": {"start": "node server.js"},
                   "dependencies": {"shout": "file:./shout"}}"#,
            ),
            ("server.js", NODE_SERVER),
            (
                "shout/package.json",
                r#"{"name": "shout", "version": "1.0.0", "main": "index.js"}"#,
            ),
            (
                "shout/index.js",
                "module.exports = (s) => s.toUpperCase() + '!';\n",
            ),
        ],
        "node app",
    )?;
    let said = psc.ok(&["new-build", &git.url("nodeapp"), "--name", "node"]);
    assert!(said.contains("openshift/nodejs:latest"), "{said}");
    let done = podspace_e2e::wait_build(&admin, &ns, "node-1").await?;
    let log = podspace_e2e::build_log(&admin, &ns, "node-1").await?;
    assert_eq!(done["status"]["phase"], "Complete", "{log}");
    assert!(log.contains("npm install"), "{log}");
    let image = format!("{}/{ns}/node:latest", server.registry);
    assert_eq!(serve(&docker, &image).await?, "NODE APP!\n");

    // static: index.html, served as it is.
    let page = "<html><body>static site</body></html>\n";
    git.commit("site", &[("index.html", page)], "site")?;
    let said = psc.ok(&["new-build", &git.url("site"), "--name", "site"]);
    assert!(said.contains("openshift/static:latest"), "{said}");
    let done = podspace_e2e::wait_build(&admin, &ns, "site-1").await?;
    assert_eq!(
        done["status"]["phase"],
        "Complete",
        "{}",
        podspace_e2e::build_log(&admin, &ns, "site-1").await?
    );
    let image = format!("{}/{ns}/site:latest", server.registry);
    assert_eq!(serve(&docker, &image).await?, page);

    // A second config on the python builder, named explicitly.
    psc.ok(&[
        "new-build",
        &format!("python~{}", git.url("pyapp")),
        "--name",
        "py2",
        "-e",
        "PIP_INDEX_URL=http://127.0.0.1:9/none",
        "--strategy",
        "source",
    ]);
    // Its index is unreachable: the first build fails, which does not
    // matter for the trigger below (the image change still fires).
    podspace_e2e::wait_build(&admin, &ns, "py2-1").await?;

    // A new python builder image: every config using it builds once.
    let changed = tempfile::tempdir()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builder-images");
    for dir in ["common", "python"] {
        let out = Command::new("cp")
            .arg("-a")
            .arg(root.join(dir))
            .arg(changed.path())
            .output()?;
        anyhow::ensure!(out.status.success(), "copying {dir}");
    }
    std::fs::write(
        changed.path().join("python/s2i/bin/usage"),
        "#!/bin/sh\necho 'a newer python builder'\n",
    )?;
    admin_psc.ok(&[
        "start-build",
        "python",
        "-n",
        "openshift",
        "--from-dir",
        &changed.path().display().to_string(),
        "--wait",
    ]);
    for (bc, expected) in [("py", 4), ("py2", 2)] {
        podspace_e2e::eventually(&format!("a rebuild of {bc}"), async || {
            Ok(builds_of(&admin, &ns, bc).await?.len() >= expected)
        })
        .await?;
        let last = format!("{bc}-{expected}");
        let done = podspace_e2e::wait_build(&admin, &ns, &last).await?;
        let cause = &done["spec"]["triggeredBy"][0];
        assert!(
            cause["imageChangeBuild"]["fromRef"]["name"] == "python:latest",
            "{last} was triggered by {cause}"
        );
    }
    // Exactly once each; and the configs on other builders did not build.
    assert_eq!(builds_of(&admin, &ns, "py").await?.len(), 4);
    assert_eq!(builds_of(&admin, &ns, "py2").await?.len(), 2);
    assert_eq!(builds_of(&admin, &ns, "node").await?.len(), 1);
    assert_eq!(builds_of(&admin, &ns, "site").await?.len(), 1);

    // A builder in a project this user's builds may not read.
    let other = unique("private");
    admin.new_project(&other).await?;
    docker.ok(&[
        "pull",
        "-q",
        &format!("{}/openshift/python:3.11", server.registry),
    ]);
    docker.ok(&[
        "tag",
        &format!("{}/openshift/python:3.11", server.registry),
        &format!("{}/{other}/secret-builder:1", server.registry),
    ]);
    docker.ok(&[
        "push",
        "-q",
        &format!("{}/{other}/secret-builder:1", server.registry),
    ]);
    podspace_e2e::create_build_config(
        &admin,
        &ns,
        "steal",
        json!({"source": {"git": {"uri": git.url("site")}},
               "strategy": {"type": "Source", "sourceStrategy": {"from": {"kind": "DockerImage",
                   "name": format!("{}/{other}/secret-builder:1", server.registry)}}},
               "output": {"to": {"kind": "ImageStreamTag", "name": "steal:latest"}}}),
    )
    .await?;
    psc.ok(&["start-build", "steal"]);
    let done = podspace_e2e::wait_build(&admin, &ns, "steal-1").await?;
    podspace_e2e::assert_build_failed(&done, "PullBuilderImageFailed", "secret-builder");
    for image in [
        format!("{}/openshift/python:3.11", server.registry),
        format!("{}/{other}/secret-builder:1", server.registry),
    ] {
        docker.run(&["rmi", &image]);
    }
    Ok(())
}
