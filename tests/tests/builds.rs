//! Builds end to end on the real Docker engine: git (through `git daemon`)
//! and binary sources, `psc new-build` / `start-build --follow`, the image
//! pulled back with the docker CLI, run policies, history limits, cancel,
//! a node killed mid-build, failures, and the binary upload limit.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use podspace_e2e::{
    unique, Api, Distribution, DockerCli, GitDaemon, Moto, Psc, Server, ADMIN_PASSWORD,
};
use serde_json::{json, Value};

struct Env {
    server: Server,
    admin: Api,
    psc: Psc,
    docker: DockerCli,
    ns: String,
}

/// A server with a build node, a project, a logged-in psc, and a busybox
/// base image `base:1` pushed into the project's registry.
async fn env(extra: &[&str]) -> anyhow::Result<Env> {
    let mut args = Vec::new();
    if !extra.contains(&"--node-slots") {
        args.extend_from_slice(&["--node-slots", "2"]);
    }
    args.extend_from_slice(extra);
    let server = Server::start_with(&args)?;
    let admin = Api::admin(&server.url).await?;
    let ns = unique("b");
    admin.new_project(&ns).await?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["project", &ns]);
    let token = admin.token.as_deref().unwrap_or_default();
    podspace_e2e::push_busybox_bases(&server.registry, token, &[&ns])?;
    let docker = DockerCli::new()?;
    let out = docker.login(&server.registry, "admin", token);
    anyhow::ensure!(out.status.success(), "docker login failed");
    Ok(Env {
        server,
        admin,
        psc,
        docker,
        ns,
    })
}

impl Env {
    fn base(&self) -> String {
        format!("{}/{}/base:1", self.server.registry, self.ns)
    }

    async fn build(&self, name: &str) -> anyhow::Result<Value> {
        let r = self
            .admin
            .get(&format!(
                "/apis/build.openshift.io/v1/namespaces/{}/builds/{name}",
                self.ns
            ))
            .await?;
        anyhow::ensure!(r.status == 200, "get build {name}: {} {}", r.status, r.text);
        Ok(r.body)
    }

    async fn builds(&self, bc: &str) -> anyhow::Result<Vec<Value>> {
        let r = self
            .admin
            .get(&format!(
                "/apis/build.openshift.io/v1/namespaces/{}/builds?labelSelector=openshift.io/build-config.name={bc}",
                self.ns
            ))
            .await?;
        let mut items = r.body["items"].as_array().cloned().unwrap_or_default();
        items.sort_by_key(number);
        Ok(items)
    }

    async fn wait_phase(&self, name: &str, phases: &[&str], secs: u64) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            // A triggered build may not exist yet.
            let b = match self.build(name).await {
                Ok(b) => b,
                Err(e) if Instant::now() < deadline && e.to_string().contains(" 404 ") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if phases.contains(&phase(&b)) {
                return Ok(b);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "build {name} still {} after {secs}s; status: {}\nlog: {}",
                phase(&b),
                b["status"],
                self.log(name).await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn log(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .admin
            .get(&format!(
                "/apis/build.openshift.io/v1/namespaces/{}/builds/{name}/log?nowait=true",
                self.ns
            ))
            .await?
            .text)
    }

    async fn create_bc(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        podspace_e2e::create_build_config(&self.admin, &self.ns, name, spec).await
    }

    async fn instantiate(&self, bc: &str) -> anyhow::Result<String> {
        let r = self
            .admin
            .post(
                &format!(
                    "/apis/build.openshift.io/v1/namespaces/{}/buildconfigs/{bc}/instantiate",
                    self.ns
                ),
                &json!({"kind": "BuildRequest", "metadata": {"name": bc}}),
            )
            .await?;
        anyhow::ensure!(r.status == 201, "instantiate: {} {}", r.status, r.text);
        Ok(r.body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The Image behind an image stream tag.
    async fn istag(&self, tag: &str) -> anyhow::Result<Value> {
        let r = self
            .admin
            .get(&format!(
                "/apis/image.openshift.io/v1/namespaces/{}/imagestreamtags/{tag}",
                self.ns
            ))
            .await?;
        anyhow::ensure!(r.status == 200, "istag {tag}: {} {}", r.status, r.text);
        Ok(r.body)
    }
}

fn phase(b: &Value) -> &str {
    b["status"]["phase"].as_str().unwrap_or("New")
}

fn number(b: &Value) -> i64 {
    b["metadata"]["annotations"]["openshift.io/build.number"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// An inline-Dockerfile config building FROM the project's base image.
fn inline_spec(dockerfile: &str, output: &str, policy: &str) -> Value {
    json!({
        "runPolicy": policy,
        "source": {"dockerfile": dockerfile},
        "strategy": {"dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": "base:1"}}},
        "output": {"to": {"kind": "ImageStreamTag", "name": output}},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn git_build_with_psc_then_pull_and_run() -> anyhow::Result<()> {
    let e = env(&[]).await?;
    let git = GitDaemon::start()?;
    let dockerfile = format!(
        "FROM {}\nCOPY hello.txt /hello.txt\nRUN echo step-run-ok\nCMD [\"cat\", \"/hello.txt\"]\n",
        e.base()
    );
    let first = git.commit(
        "app",
        &[
            ("Dockerfile", &dockerfile),
            ("hello.txt", "hello from git v1\n"),
        ],
        "first version",
    )?;
    let second = git.commit(
        "app",
        &[("hello.txt", "hello from git v2\n")],
        "second version",
    )?;

    let out = e.psc.ok(&[
        "new-build",
        &format!("{}#main", git.url("app")),
        "--name",
        "app",
    ]);
    assert!(
        out.contains("buildconfig.build.openshift.io \"app\" created"),
        "{out}"
    );
    // The ConfigChange trigger builds once by itself.
    e.wait_phase("app-1", &["Complete"], 120).await?;

    let out = e.psc.run(&["start-build", "app", "--follow"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("build.build.openshift.io/app-2 started"),
        "{stdout}"
    );
    for step in [
        "Cloning",
        "COPY hello.txt",
        "step-run-ok",
        "Push successful",
    ] {
        assert!(stdout.contains(step), "--follow shows {step:?}: {stdout}");
    }
    let b = e.wait_phase("app-2", &["Complete"], 10).await?;
    assert_eq!(b["spec"]["revision"]["git"]["commit"], second.as_str());
    assert_eq!(
        b["spec"]["revision"]["git"]["author"]["name"],
        "Ada Builder"
    );
    let digest = b["status"]["output"]["to"]["imageDigest"]
        .as_str()
        .unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "{}", b["status"]);

    // The push landed in the image stream, with the build's labels.
    let tag = e.istag("app:latest").await?;
    assert_eq!(tag["image"]["metadata"]["name"], digest);
    let labels = &tag["image"]["dockerImageMetadata"]["Config"]["Labels"];
    assert_eq!(labels["io.openshift.build.commit.id"], second.as_str());
    assert_eq!(labels["io.openshift.build.commit.ref"], "main");
    assert_eq!(
        labels["io.openshift.build.commit.message"],
        "second version"
    );
    assert_eq!(
        labels["io.openshift.build.commit.author"],
        "Ada Builder <ada@example.com>"
    );
    assert_eq!(
        labels["io.openshift.build.source-location"],
        git.url("app").as_str()
    );
    assert_eq!(labels["io.openshift.build.name"], "app-2");
    assert_eq!(labels["io.openshift.build.namespace"], e.ns.as_str());

    // Pull it back with the docker CLI and run it.
    let image = format!("{}/{}/app@{digest}", e.server.registry, e.ns);
    e.docker.ok(&["pull", &image]);
    let name = unique("run");
    let out = e
        .docker
        .ok(&["run", "--name", &name, "--network", "none", &image]);
    assert_eq!(out, "hello from git v2\n");
    let env_out = e
        .docker
        .ok(&["run", "--rm", "--network", "none", &image, "env"]);
    assert!(env_out.contains("OPENSHIFT_BUILD_NAME=app-2"), "{env_out}");
    assert!(
        env_out.contains(&format!("OPENSHIFT_BUILD_COMMIT={second}")),
        "{env_out}"
    );
    let _ = e.docker.run(&["rm", "-f", &name]);

    // A given commit.
    let out = e
        .psc
        .ok(&["start-build", "app", "--commit", &first, "--wait"]);
    assert!(out.contains("app-3"), "{out}");
    let b = e.build("app-3").await?;
    assert_eq!(phase(&b), "Complete", "{}", b["status"]);
    assert_eq!(b["spec"]["revision"]["git"]["commit"], first.as_str());
    let image = format!("{}/{}/app:latest", e.server.registry, e.ns);
    e.docker.ok(&["pull", &image]);
    let out = e.docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "hello from git v1\n");

    // psc logs and describe.
    let out = e.psc.ok(&["logs", "bc/app"]);
    assert!(out.contains("Push successful"), "{out}");
    assert!(
        out.contains(&first),
        "bc/NAME is the newest build (at the first commit): {out}"
    );
    let out = e.psc.ok(&["logs", "bc/app", "--version", "2"]);
    assert!(out.contains(&second), "{out}");
    let out = e.psc.ok(&["logs", "build/app-3", "--previous"]);
    assert!(
        out.contains(&second),
        "the build before app-3 is app-2: {out}"
    );
    let out = e.psc.ok(&["describe", "build", "app-3"]);
    assert!(out.contains(&first), "{out}");
    let out = e.psc.ok(&["get", "builds"]);
    assert!(out.contains("app-3") && out.contains("Complete"), "{out}");
    let _ = e.docker.run(&["rmi", &image]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn context_dir_build_args_and_binary_from_dir() -> anyhow::Result<()> {
    let e = env(&[]).await?;
    let git = GitDaemon::start()?;
    let dockerfile = format!(
        "FROM {}\nARG FLAVOUR=plain\nCOPY msg /msg\nRUN echo \"$FLAVOUR\" > /flavour\nCMD [\"cat\", \"/msg\", \"/flavour\"]\n",
        e.base()
    );
    git.commit(
        "mono",
        &[
            ("web/Dockerfile", &dockerfile),
            ("web/msg", "from web\n"),
            ("README", "x\n"),
        ],
        "mono repo",
    )?;
    e.create_bc(
        "web",
        json!({
            "source": {"git": {"uri": git.url("mono")}, "contextDir": "web"},
            "strategy": {"dockerStrategy": {"buildArgs": [{"name": "FLAVOUR", "value": "mint"}]}},
            "output": {"to": {"kind": "ImageStreamTag", "name": "web:latest"}},
        }),
    )
    .await?;
    e.psc.ok(&["start-build", "web", "--wait"]);
    let b = e.build("web-1").await?;
    assert_eq!(phase(&b), "Complete");
    let labels = &e.istag("web:latest").await?["image"]["dockerImageMetadata"]["Config"]["Labels"];
    assert_eq!(labels["io.openshift.build.source-context-dir"], "web");
    let image = format!("{}/{}/web:latest", e.server.registry, e.ns);
    e.docker.ok(&["pull", &image]);
    let out = e.docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "from web\nmint\n");
    // A build argument given at start-build wins.
    e.psc.ok(&[
        "start-build",
        "web",
        "--build-arg",
        "FLAVOUR=lemon",
        "--wait",
    ]);
    e.docker.ok(&["pull", &image]);
    let out = e.docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "from web\nlemon\n");
    let _ = e.docker.run(&["rmi", &image]);

    // `from` pinned to one image of a stream by a digest prefix.
    let digest = e.istag("base:1").await?["image"]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prefix = &digest["sha256:".len().."sha256:".len() + 12];
    e.create_bc(
        "pinned",
        json!({
            "source": {"dockerfile": "FROM busybox\nRUN test -x /bin/busybox\n"},
            "strategy": {"dockerStrategy": {"from": {"kind": "ImageStreamImage", "name": format!("base@{prefix}")}}},
            "output": {"to": {"kind": "ImageStreamTag", "name": "pinned:latest"}},
        }),
    )
    .await?;
    e.instantiate("pinned").await?;
    let b = e.wait_phase("pinned-1", &["Complete"], 60).await?;
    assert_eq!(
        b["spec"]["strategy"]["dockerStrategy"]["from"],
        json!({"kind": "DockerImage", "name": format!("{}/{}/base@{digest}", e.server.registry, e.ns)})
    );

    // Binary: a local directory.
    let out = e.psc.ok(&["new-build", "--binary", "--name", "bin"]);
    assert!(
        out.contains("buildconfig.build.openshift.io \"bin\" created"),
        "{out}"
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY . /src\nCMD [\"cat\", \"/src/data.txt\"]\n",
            e.base()
        ),
    )?;
    std::fs::write(dir.path().join("data.txt"), "binary input\n")?;
    let out = e.psc.run(&[
        "start-build",
        "bin",
        "--from-dir",
        &dir.path().display().to_string(),
        "--follow",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let b = e.wait_phase("bin-1", &["Complete"], 10).await?;
    assert_eq!(b["spec"]["source"]["type"], "Binary");
    let image = format!("{}/{}/bin:latest", e.server.registry, e.ns);
    e.docker.ok(&["pull", &image]);
    let out = e.docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "binary input\n");
    // One file: kept as that file (here the Dockerfile itself).
    let single = dir.path().join("single");
    std::fs::create_dir(&single)?;
    std::fs::write(
        single.join("Dockerfile"),
        format!("FROM {}\nRUN echo from-file-ok\n", e.base()),
    )?;
    let out = e.psc.ok(&[
        "start-build",
        "bin",
        "--from-file",
        &single.join("Dockerfile").display().to_string(),
        "--wait",
    ]);
    assert!(out.contains("bin-2"), "{out}");
    assert_eq!(
        e.build("bin-2").await?["spec"]["source"]["binary"]["asFile"],
        "Dockerfile"
    );
    assert!(e.log("bin-2").await?.contains("from-file-ok"));

    // A git working copy at a given commit: its revision is recorded.
    let git = GitDaemon::start()?;
    let v1 = git.commit(
        "repo",
        &[
            (
                "Dockerfile",
                &format!("FROM {}\nCOPY v /v\nCMD [\"cat\", \"/v\"]\n", e.base()),
            ),
            ("v", "one\n"),
        ],
        "v one",
    )?;
    git.commit("repo", &[("v", "two\n")], "v two")?;
    let clone = tempfile::tempdir()?;
    let st = std::process::Command::new("git")
        .args(["clone", "-q", &git.url("repo")])
        .arg(clone.path().join("repo"))
        .status()?;
    assert!(st.success());
    let repo = clone.path().join("repo").display().to_string();
    e.psc.ok(&[
        "start-build",
        "bin",
        "--from-repo",
        &repo,
        "--commit",
        &v1,
        "--wait",
    ]);
    let b = e.build("bin-3").await?;
    assert_eq!(b["spec"]["revision"]["git"]["commit"], v1.as_str());
    assert_eq!(b["spec"]["revision"]["git"]["message"], "v one");
    e.docker.ok(&["pull", &image]);
    let out = e.docker.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "one\n");
    let _ = e.docker.run(&["rmi", &image]);

    // Without input a binary config does not build.
    let err = e.psc.fails(&["start-build", "bin"]);
    assert!(err.contains("no valid source inputs"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_policies_history_and_cancel() -> anyhow::Result<()> {
    let e = env(&[]).await?;
    let slow = |secs: u32| {
        format!(
            "FROM scratch\nRUN echo {} && sleep {secs}\n",
            unique("nocache")
        )
    };

    // Serial: one at a time, oldest first.
    e.create_bc("serial", inline_spec(&slow(2), "serial:latest", "Serial"))
        .await?;
    let names: Vec<String> = vec![
        e.instantiate("serial").await?,
        e.instantiate("serial").await?,
        e.instantiate("serial").await?,
    ];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let builds = e.builds("serial").await?;
        let running = builds.iter().filter(|b| phase(b) == "Running").count();
        assert!(running <= 1, "Serial ran {running} builds at once");
        if let Some(r) = builds.iter().find(|b| phase(b) == "Running") {
            assert!(
                builds
                    .iter()
                    .filter(|b| number(b) < number(r))
                    .all(|b| phase(b) == "Complete"),
                "Serial runs the oldest first"
            );
        }
        if builds.iter().all(|b| phase(b) == "Complete") && builds.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serial builds did not finish: {builds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(names, vec!["serial-1", "serial-2", "serial-3"]);

    // SerialLatestOnly: the queued older builds are cancelled, the running one is not.
    e.create_bc(
        "latest",
        inline_spec(&slow(4), "latest:latest", "SerialLatestOnly"),
    )
    .await?;
    e.instantiate("latest").await?;
    e.wait_phase("latest-1", &["Running"], 60).await?;
    for _ in 0..3 {
        e.instantiate("latest").await?;
    }
    e.wait_phase("latest-2", &["Cancelled"], 20).await?;
    e.wait_phase("latest-3", &["Cancelled"], 20).await?;
    e.wait_phase("latest-1", &["Complete"], 60).await?;
    e.wait_phase("latest-4", &["Complete"], 60).await?;

    // Parallel: both slots at once.
    e.create_bc("par", inline_spec(&slow(4), "par:latest", "Parallel"))
        .await?;
    e.instantiate("par").await?;
    e.instantiate("par").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let builds = e.builds("par").await?;
        if builds.iter().filter(|b| phase(b) == "Running").count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Parallel builds never ran together"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    e.wait_phase("par-1", &["Complete"], 60).await?;
    e.wait_phase("par-2", &["Complete"], 60).await?;

    // History: keep the newest complete build only.
    let mut spec = inline_spec("FROM scratch\nRUN true\n", "hist:latest", "Serial");
    spec["successfulBuildsHistoryLimit"] = json!(1);
    spec["failedBuildsHistoryLimit"] = json!(1);
    e.create_bc("hist", spec).await?;
    for n in 1..=3 {
        e.instantiate("hist").await?;
        e.wait_phase(&format!("hist-{n}"), &["Complete"], 60)
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = e
            .builds("hist")
            .await?
            .iter()
            .map(|b| {
                b["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if names == ["hist-3"] {
            break;
        }
        assert!(Instant::now() < deadline, "history not pruned: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Cancel a running build: stopped within 5 seconds.
    e.create_bc("long", inline_spec(&slow(60), "long:latest", "Serial"))
        .await?;
    e.instantiate("long").await?;
    e.wait_phase("long-1", &["Running"], 60).await?;
    // Let the engine get into the RUN step.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    let out = e.psc.ok(&["cancel-build", "long-1"]);
    assert!(out.contains("long-1"), "{out}");
    let b = e.wait_phase("long-1", &["Cancelled"], 5).await?;
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_eq!(b["status"]["reason"], "CancelledBuild");
    // The engine stopped too: the next build of the same config runs at once.
    e.create_bc(
        "after",
        inline_spec("FROM scratch\nRUN true\n", "after:latest", "Serial"),
    )
    .await?;
    e.instantiate("after").await?;
    e.wait_phase("after-1", &["Complete"], 60).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_reported_clearly() -> anyhow::Result<()> {
    let e = env(&[]).await?;
    e.create_bc(
        "broken",
        inline_spec(
            "FROM scratch\nRUN echo about-to-fail && exit 3\n",
            "broken:latest",
            "Serial",
        ),
    )
    .await?;
    e.instantiate("broken").await?;
    let b = e.wait_phase("broken-1", &["Failed"], 60).await?;
    assert_eq!(b["status"]["reason"], "DockerBuildFailed");
    let log = e.log("broken-1").await?;
    assert!(log.contains("about-to-fail"), "{log}");
    assert!(
        log.contains("exit code: 3") || log.contains("returned a non-zero code: 3"),
        "the engine's error is in the log: {log}"
    );
    assert!(b["status"]["logSnippet"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    e.create_bc(
        "nogit",
        json!({
            "source": {"git": {"uri": "git://127.0.0.1:9/nowhere.git"}},
            "strategy": {"dockerStrategy": {}},
            "output": {"to": {"kind": "ImageStreamTag", "name": "nogit:latest"}},
        }),
    )
    .await?;
    e.instantiate("nogit").await?;
    let b = e.wait_phase("nogit-1", &["Failed"], 60).await?;
    assert_eq!(b["status"]["reason"], "FetchSourceFailed");
    let message = b["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("git://127.0.0.1:9/nowhere.git"),
        "{message}"
    );

    // A postCommit hook runs in the built image; its failure fails the build.
    for (name, script, want) in [
        ("hookok", "test -x /bin/busybox", "Complete"),
        ("hookbad", "exit 7", "Failed"),
    ] {
        let mut spec = inline_spec(
            "FROM busybox\nRUN true\n",
            &format!("{name}:latest"),
            "Serial",
        );
        spec["postCommit"] = json!({"script": script});
        e.create_bc(name, spec).await?;
        e.instantiate(name).await?;
        let b = e.wait_phase(&format!("{name}-1"), &[want], 60).await?;
        if want == "Failed" {
            assert_eq!(
                b["status"]["reason"], "PostCommitHookFailed",
                "{}",
                b["status"]
            );
        }
    }

    // completionDeadlineSeconds: the node gives up and says why.
    let mut spec = inline_spec(
        &format!("FROM scratch\nRUN echo {} && sleep 60\n", unique("slow")),
        "deadline:latest",
        "Serial",
    );
    spec["completionDeadlineSeconds"] = json!(2);
    e.create_bc("deadline", spec).await?;
    e.instantiate("deadline").await?;
    let b = e.wait_phase("deadline-1", &["Failed"], 30).await?;
    assert_eq!(b["status"]["reason"], "DeadlineExceeded", "{}", b["status"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_input_over_the_limit_is_refused_before_it_is_stored() -> anyhow::Result<()> {
    let server = Server::start_with(&["--max-binary-input", "1048576"])?;
    let admin = Api::admin(&server.url).await?;
    let ns = unique("lim");
    admin.new_project(&ns).await?;
    let r = admin
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
            &json!({"metadata": {"name": "bin"}, "spec": {"source": {"binary": {}}, "strategy": {"dockerStrategy": {}}}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let path =
        format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/bin/instantiatebinary");
    let token = admin.token.clone().unwrap_or_default();

    // Declared 2 GB: refused from the headers, nothing read.
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 2147483648\r\n\r\n"
    )?;
    conn.write_all(&[0u8; 65536])?;
    let mut head = [0u8; 512];
    let n = conn.read(&mut head)?;
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("RequestEntityTooLarge"), "{head}");

    // Streamed without a length: refused once past the limit.
    let chunks = futures_util::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 64 << 10]))),
    );
    let r = admin
        .request(reqwest::Method::POST, &path)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(resp) = r {
        assert_eq!(resp.status().as_u16(), 413);
    }

    // Nothing changed: no build, no build number used, no bytes kept.
    let bc = admin
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/bin"
        ))
        .await?;
    assert_eq!(bc.body["status"]["lastVersion"].as_i64().unwrap_or(0), 0);
    let builds = admin
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds"
        ))
        .await?;
    assert_eq!(builds.body["items"].as_array().map(Vec::len), Some(0));
    let blobs = server.data_dir.join("registry");
    let stored = walk_files(&blobs);
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    Ok(())
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_loses_its_build_in_time() -> anyhow::Result<()> {
    // No embedded node: builds run on a separate `podspace node` process.
    let server = Server::start_with(&["--node-slots", "0", "--build-lease", "3"])?;
    let admin = Api::admin(&server.url).await?;
    let ns = unique("lost");
    admin.new_project(&ns).await?;
    // A node's own identity: a user bound to the build-node cluster role.
    let node_user = admin.create_user("node-doomed", "node-password").await?;
    let lease_path = "/apis/podspace.io/v1/nodes/doomed/lease";
    let r = node_user
        .post(lease_path, &json!({"waitSeconds": 0}))
        .await?;
    assert_eq!(r.status, 403, "not a build node yet: {}", r.text);
    let r = admin
        .post(
            "/apis/authorization.openshift.io/v1/clusterrolebindings",
            &json!({"metadata": {"name": "doomed-node"}, "roleRef": {"name": "system:build-node"},
                    "subjects": [{"kind": "User", "name": "node-doomed"}]}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = node_user
        .post(lease_path, &json!({"waitSeconds": 0}))
        .await?;
    assert_eq!(r.status, 204, "a build node with nothing to do: {}", r.text);
    let r = admin
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
            &json!({"metadata": {"name": "slow"}, "spec": {
                "source": {"dockerfile": format!("FROM scratch\nRUN echo {} && sleep 60\n", unique("x"))},
                "strategy": {"dockerStrategy": {}}}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/slow/instantiate"),
            &json!({"kind": "BuildRequest", "metadata": {"name": "slow"}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/apis/build.openshift.io/v1/namespaces/{ns}/builds/slow-1");
    // A node whose lease poll is answered but that never confirms (it died
    // meanwhile): the build is not started, and its offer expires.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ghost_token = loop {
        let r = node_user
            .post(
                "/apis/podspace.io/v1/nodes/ghost/lease",
                &json!({"waitSeconds": 1}),
            )
            .await?;
        if r.status == 200 {
            assert_eq!(r.body["build"]["metadata"]["name"], "slow-1");
            break r.body["registryToken"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        assert!(Instant::now() < deadline, "no lease offered: {}", r.status);
    };
    assert_eq!(phase(&admin.get(&path).await?.body), "Pending");
    let work = tempfile::tempdir()?;
    let mut node = std::process::Command::new(podspace_e2e::bin("podspace"))
        .args([
            "node",
            "--api",
            &server.url,
            "--name",
            "doomed",
            "--slots",
            "1",
        ])
        .arg("--work-dir")
        .arg(work.path())
        .env(
            "PODSPACE_NODE_TOKEN",
            node_user.token.as_deref().unwrap_or_default(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = admin.get(&path).await?.body;
        if phase(&b) == "Running" {
            assert_eq!(
                b["metadata"]["annotations"]["podspace.io/build-node"],
                "doomed"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never ran: {}", b["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The lapsed offer's registry token was deleted with it.
    assert!(!ghost_token.is_empty());
    let ghost = admin.with_token(&ghost_token);
    let r = ghost.get("/apis/user.openshift.io/v1/users/~").await?;
    assert_eq!(
        r.status, 401,
        "the lapsed offer's token still works: {}",
        r.text
    );
    let r = admin
        .put(
            &format!("/apis/podspace.io/v1/nodes/other/builds/{ns}/slow-1/details"),
            &json!({"phase": "Complete"}),
        )
        .await?;
    assert_eq!(r.status, 409, "only the lease holder reports: {}", r.text);
    node.kill()?;
    let _ = node.wait();
    let killed = Instant::now();
    loop {
        let b = admin.get(&path).await?.body;
        if phase(&b) == "Error" {
            assert_eq!(b["status"]["reason"], "NodeLost");
            break;
        }
        assert_eq!(phase(&b), "Running", "{}", b["status"]);
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "lease of 3 s: the build should be lost within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_may_only_cancel_and_queued_builds_cancel_at_once() -> anyhow::Result<()> {
    // No build node: the build stays queued.
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let ns = unique("q");
    admin.new_project(&ns).await?;
    let base = format!("/apis/build.openshift.io/v1/namespaces/{ns}");
    let r = admin
        .post(
            &format!("{base}/buildconfigs"),
            &json!({"metadata": {"name": "q"}, "spec": {"source": {"dockerfile": "FROM scratch\n"}, "strategy": {"dockerStrategy": {}}}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .post(
            &format!("{base}/buildconfigs/q/instantiate"),
            &json!({"kind": "BuildRequest", "metadata": {"name": "q"}, "env": [{"name": "A", "value": "1"}]}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["spec"]["strategy"]["dockerStrategy"]["env"],
        json!([{"name": "A", "value": "1"}])
    );
    assert_eq!(
        r.body["spec"]["triggeredBy"][0]["message"],
        "Manually triggered"
    );
    let build = format!("{base}/builds/q-1");
    let before = admin.get(&build).await?.body;

    for (path, patch) in [
        (
            format!("{build}/status"),
            json!({"status": {"phase": "Complete"}}),
        ),
        (
            build.clone(),
            json!({"spec": {"source": {"dockerfile": "FROM other\n"}}}),
        ),
    ] {
        let r = admin.merge_patch(&path, &patch).await?;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.body["reason"], "Invalid");
    }
    let after = admin.get(&build).await?.body;
    assert_eq!(before["spec"], after["spec"]);
    assert!(
        matches!(phase(&after), "New" | "Pending"),
        "still queued: {}",
        after["status"]
    );

    let r = admin
        .merge_patch(
            &format!("{build}/status"),
            &json!({"status": {"cancelled": true}}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = admin.get(&build).await?.body;
        if phase(&b) == "Cancelled" {
            assert_eq!(b["status"]["reason"], "CancelledBuild");
            break;
        }
        assert!(Instant::now() < deadline, "{}", b["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Logs of a build cancelled before it ran: a clear 400.
    let r = admin.get(&format!("{build}/log")).await?;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("was cancelled. No logs are available."),
        "{}",
        r.text
    );
    // A hook is a script or a command, not both.
    let r = admin
        .post(
            &format!("{base}/buildconfigs"),
            &json!({"metadata": {"name": "hook"}, "spec": {"source": {"dockerfile": "FROM scratch\n"},
                    "strategy": {"dockerStrategy": {}},
                    "postCommit": {"script": "make test", "command": ["rake"]}}}),
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("spec.postCommit"), "{}", r.text);
    // Builds of a config without input refuse to start from a binary config.
    let r = admin
        .post(
            &format!("{base}/buildconfigs"),
            &json!({"metadata": {"name": "bin"}, "spec": {"source": {"binary": {}}, "strategy": {"dockerStrategy": {}}}}),
        )
        .await?;
    assert_eq!(r.status, 201);
    let r = admin
        .post(
            &format!("{base}/buildconfigs/bin/instantiate"),
            &json!({"kind": "BuildRequest", "metadata": {"name": "bin"}}),
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("no valid source inputs"), "{}", r.text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn private_git_over_http_with_a_source_secret() -> anyhow::Result<()> {
    let e = env(&[]).await?;
    let git = GitDaemon::start()?;
    git.commit(
        "private",
        &[(
            "Dockerfile",
            &format!("FROM {}\nRUN echo private-ok\n", e.base()),
        )],
        "private code",
    )?;
    let password = unique("s3cret-token");
    let http = git.serve_http("ada", &password)?;
    let spec = |secret: Option<&str>| {
        let mut source = json!({"git": {"uri": http.url("private")}});
        if let Some(s) = secret {
            source["sourceSecret"] = json!({"name": s});
        }
        json!({"source": source, "strategy": {"dockerStrategy": {}},
               "output": {"to": {"kind": "ImageStreamTag", "name": "private:latest"}}})
    };

    e.create_bc("nocreds", spec(None)).await?;
    e.instantiate("nocreds").await?;
    let b = e.wait_phase("nocreds-1", &["Failed"], 60).await?;
    assert_eq!(
        b["status"]["reason"], "FetchSourceFailed",
        "{}",
        b["status"]
    );

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let r = e
        .admin
        .post(
            &format!("/api/v1/namespaces/{}/secrets", e.ns),
            &json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "gitcreds"},
                    "type": "kubernetes.io/basic-auth",
                    "data": {"username": b64("ada"), "password": b64(&password)}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    e.create_bc("withcreds", spec(Some("gitcreds"))).await?;
    e.instantiate("withcreds").await?;
    e.wait_phase("withcreds-1", &["Complete"], 60).await?;
    let log = e.log("withcreds-1").await?;
    assert!(log.contains("private-ok"), "{log}");
    assert!(!log.contains(&password), "the token never reaches the log");
    // Credentials written into the URI are not shown either.
    let with_userinfo = http
        .url("private")
        .replace("http://", &format!("http://ada:{password}@"));
    e.create_bc(
        "inuri",
        json!({"source": {"git": {"uri": with_userinfo}}, "strategy": {"dockerStrategy": {}},
               "output": {"to": {"kind": "ImageStreamTag", "name": "inuri:latest"}}}),
    )
    .await?;
    e.instantiate("inuri").await?;
    e.wait_phase("inuri-1", &["Complete"], 60).await?;
    let log = e.log("inuri-1").await?;
    assert!(!log.contains(&password), "{log}");
    let labels =
        &e.istag("inuri:latest").await?["image"]["dockerImageMetadata"]["Config"]["Labels"];
    assert_eq!(
        labels["io.openshift.build.source-location"],
        http.url("private")
            .replace("http://", "http://ada:***@")
            .as_str()
    );
    Ok(())
}

/// The whole pipeline on S3 blob storage: a new base image triggers the
/// build, the build's push moves the output tag, that deploys; binary
/// input lives in S3 too.
#[tokio::test(flavor = "multi_thread")]
async fn base_push_builds_and_deploys_on_s3() -> anyhow::Result<()> {
    let moto = Moto::start().await?;
    let s3_args = moto.serve_args();
    let args: Vec<&str> = s3_args.iter().map(String::as_str).collect();
    let e = env(&args).await?;
    let mut spec = inline_spec("FROM busybox\nRUN echo chained\n", "app:latest", "Serial");
    spec["triggers"] = json!([{"type": "ImageChange", "imageChange": {}}]);
    e.create_bc("app", spec).await?;
    // The base already has an image: the trigger builds at once.
    let first = e.wait_phase("app-1", &["Complete"], 60).await?;
    assert_eq!(first["spec"]["triggeredBy"][0]["message"], "Image change");
    let r = e
        .admin
        .post(
            &format!("/apis/apps.openshift.io/v1/namespaces/{}/deploymentconfigs", e.ns),
            &json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}},
                "triggers": [{"type": "ImageChange", "imageChangeParams": {"automatic": true, "containerNames": ["app"],
                               "from": {"kind": "ImageStreamTag", "name": "app:latest"}}}]}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);

    // A new base image.
    let local = unique("podspace-base2");
    e.docker.busybox_image_with(&local, 4096)?;
    e.docker.ok(&["tag", &local, &e.base()]);
    e.docker.ok(&["push", &e.base()]);
    let _ = e.docker.run(&["rmi", &local, &e.base()]);
    let second = e.wait_phase("app-2", &["Complete"], 60).await?;
    let digest = second["status"]["output"]["to"]["imageDigest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rc_path = format!("/api/v1/namespaces/{}/replicationcontrollers", e.ns);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rcs = e.admin.get(&rc_path).await?.body;
        let images: Vec<String> = rcs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|rc| {
                rc["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        if images.iter().any(|i| i.ends_with(&digest)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build's image was not deployed: {images:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The config's own output does not trigger it again (the loop guard).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(e.builds("app").await?.len(), 2);

    // Binary input through S3.
    e.psc.ok(&["new-build", "--binary", "--name", "bin"]);
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nCOPY . /src\nRUN test -f /src/payload\n", e.base()),
    )?;
    std::fs::write(dir.path().join("payload"), vec![b'p'; 300_000])?;
    let s3_requests = || moto.requests.load(std::sync::atomic::Ordering::SeqCst);
    let before = s3_requests();
    e.psc.ok(&[
        "start-build",
        "bin",
        "--from-dir",
        &dir.path().display().to_string(),
        "--wait",
    ]);
    assert_eq!(phase(&e.build("bin-1").await?), "Complete");
    assert!(s3_requests() > before, "the input and the image went to S3");
    let local = walk_files(&e.server.data_dir.join("registry"));
    assert!(local.is_empty(), "no blob on the local disk: {local:?}");
    Ok(())
}

/// A node on another "machine" (its own process) with the classic builder:
/// its build outlives the API being down for longer than a lease (the node
/// renews once the API is back; nothing is declared lost), and it pushes to
/// another registry.
#[tokio::test(flavor = "multi_thread")]
async fn remote_classic_node_outlives_an_api_restart() -> anyhow::Result<()> {
    let mut e = env(&["--node-slots", "0", "--build-lease", "4"]).await?;
    let work = tempfile::tempdir()?;
    let start_node = |url: &str| {
        std::process::Command::new(podspace_e2e::bin("podspace"))
            .args([
                "node",
                "--api",
                url,
                "--name",
                "classic",
                "--slots",
                "1",
                "--classic-builder",
            ])
            .arg("--work-dir")
            .arg(work.path())
            .env(
                "PODSPACE_NODE_TOKEN",
                e.admin.token.as_deref().unwrap_or_default(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let mut node = start_node(&e.server.url)?;
    let marker = unique("classic");
    e.create_bc(
        "classic",
        inline_spec(
            &format!("FROM busybox\nRUN echo {marker} && sleep 12\n"),
            "classic:latest",
            "Serial",
        ),
    )
    .await?;
    e.instantiate("classic").await?;
    e.wait_phase("classic-1", &["Running"], 60).await?;
    // Past the base image pull (the registry goes down with the API).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !e.log("classic-1").await?.contains(&marker) {
        assert!(Instant::now() < deadline, "the RUN step never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Down for longer than the 4 s lease.
    e.server.restart_in_place(Duration::from_secs(6))?;
    e.admin = Api::admin(&e.server.url).await?;
    let b = e
        .wait_phase("classic-1", &["Complete", "Failed", "Error"], 60)
        .await?;
    assert_eq!(phase(&b), "Complete", "{}", b["status"]);
    let log = e.log("classic-1").await?;
    assert!(
        log.contains("Step 1/"),
        "the classic builder's steps: {log}"
    );

    // Output to another registry (DockerImage), pushed without our credentials.
    let dist = Distribution::start().await?;
    let target = format!("{}/ext/app:1", dist.addr);
    e.create_bc(
        "external",
        json!({"source": {"dockerfile": "FROM busybox\nRUN true\n"},
               "strategy": {"dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": "base:1"}}},
               "output": {"to": {"kind": "DockerImage", "name": target}}}),
    )
    .await?;
    e.instantiate("external").await?;
    let b = e.wait_phase("external-1", &["Complete"], 60).await?;
    assert_eq!(b["status"]["outputDockerImageReference"], target.as_str());
    let manifest = reqwest::Client::new()
        .get(format!("http://{}/v2/ext/app/manifests/1", dist.addr))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await?;
    assert_eq!(manifest.status().as_u16(), 200);
    let _ = node.kill();
    let _ = node.wait();
    Ok(())
}

/// SIGTERM to a node: it takes no new build, finishes the running one,
/// reports it, and exits.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_drains_on_sigterm() -> anyhow::Result<()> {
    let e = env(&["--node-slots", "0"]).await?;
    let work = tempfile::tempdir()?;
    let mut node = std::process::Command::new(podspace_e2e::bin("podspace"))
        .args([
            "node",
            "--api",
            &e.server.url,
            "--name",
            "drain",
            "--slots",
            "1",
        ])
        .arg("--work-dir")
        .arg(work.path())
        .env(
            "PODSPACE_NODE_TOKEN",
            e.admin.token.as_deref().unwrap_or_default(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let spec = inline_spec(
        &format!("FROM busybox\nRUN echo {} && sleep 3\n", unique("drain")),
        "drain:latest",
        "Parallel",
    );
    e.create_bc("drain", spec).await?;
    e.instantiate("drain").await?;
    e.wait_phase("drain-1", &["Running"], 60).await?;
    e.instantiate("drain").await?;
    let st = std::process::Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()?;
    assert!(st.success());
    e.wait_phase("drain-1", &["Complete"], 60).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if node.try_wait()?.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = e.build("drain-2").await?;
    assert!(
        matches!(phase(&second), "New" | "Pending"),
        "a draining node takes no new build: {}",
        second["status"]
    );
    Ok(())
}

/// Another registry that wants credentials (a second PodSpace): the base
/// image is pulled with the strategy's `pullSecret`, the output pushed with
/// `output.pushSecret`, both Docker config Secrets.
#[tokio::test(flavor = "multi_thread")]
async fn pull_and_push_secrets_for_another_registry() -> anyhow::Result<()> {
    let e = env(&[]).await?;
    let other = Server::start()?;
    let other_admin = Api::admin(&other.url).await?;
    other_admin.new_project("ext").await?;
    // The base image in the other registry.
    let out = e.docker.login(&other.registry, "admin", ADMIN_PASSWORD);
    assert!(out.status.success());
    let local = unique("podspace-ext-base");
    e.docker.busybox_image(&local)?;
    let ext_base = format!("{}/ext/base:1", other.registry);
    e.docker.ok(&["tag", &local, &ext_base]);
    e.docker.ok(&["push", &ext_base]);
    let _ = e.docker.run(&["rmi", &local, &ext_base]);

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {other.registry.clone(): {"auth": b64(&format!("admin:{ADMIN_PASSWORD}"))}}});
    let r = e
        .admin
        .post(
            &format!("/api/v1/namespaces/{}/secrets", e.ns),
            &json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "ext-creds"},
                    "type": "kubernetes.io/dockerconfigjson",
                    "data": {".dockerconfigjson": b64(&config.to_string())}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let spec = |secrets: bool, tag: &str| {
        let mut strategy = json!({"from": {"kind": "DockerImage", "name": ext_base}});
        let mut output = json!({"to": {"kind": "DockerImage", "name": format!("{}/ext/app:{tag}", other.registry)}});
        if secrets {
            strategy["pullSecret"] = json!({"name": "ext-creds"});
            output["pushSecret"] = json!({"name": "ext-creds"});
        }
        json!({"source": {"dockerfile": format!("FROM busybox\nRUN echo {}\n", unique("ext"))},
               "strategy": {"dockerStrategy": strategy}, "output": output})
    };
    e.create_bc("noauth", spec(false, "a")).await?;
    e.instantiate("noauth").await?;
    let b = e.wait_phase("noauth-1", &["Failed"], 60).await?;
    assert_eq!(
        b["status"]["reason"], "PullBuilderImageFailed",
        "the base cannot be pulled: {}",
        b["status"]
    );
    let message = b["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&ext_base) && message.contains("access denied"),
        "refused for want of credentials: {message}"
    );

    e.create_bc("withauth", spec(true, "b")).await?;
    e.instantiate("withauth").await?;
    let b = e.wait_phase("withauth-1", &["Complete"], 60).await?;
    let digest = b["status"]["output"]["to"]["imageDigest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let tag = other_admin
        .get("/apis/image.openshift.io/v1/namespaces/ext/imagestreamtags/app:b")
        .await?;
    assert_eq!(tag.status, 200, "{}", tag.text);
    assert_eq!(tag.body["image"]["metadata"]["name"], digest.as_str());
    let log = e.log("withauth-1").await?;
    assert!(!log.contains(ADMIN_PASSWORD));
    Ok(())
}

/// A small archive that unpacks past `--max-binary-context` fails the
/// build with a clear reason; `.dockerignore` keeps a file out of what the
/// engine is sent (the image's `COPY . /src` does not see it).
#[tokio::test(flavor = "multi_thread")]
async fn binary_context_is_capped_and_dockerignore_honoured() -> anyhow::Result<()> {
    let e = env(&["--max-binary-context", "30000000"]).await?;
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    std::fs::create_dir(&src)?;
    std::fs::write(
        src.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY . /src\nRUN test ! -e /src/huge.bin && test -f /src/small.txt\n",
            e.base()
        ),
    )?;
    std::fs::write(src.join("small.txt"), "kept\n")?;
    // 40 MB of zeros: about 40 KB gzipped.
    std::fs::File::create(src.join("huge.bin"))?.set_len(40_000_000)?;
    let archive = |name: &str| -> anyhow::Result<Vec<u8>> {
        let out = dir.path().join(name);
        let st = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&out)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()?;
        anyhow::ensure!(st.success(), "tar failed");
        Ok(std::fs::read(out)?)
    };
    e.create_bc(
        "bomb",
        json!({"source": {"binary": {}}, "strategy": {"dockerStrategy": {}},
               "output": {"to": {"kind": "ImageStreamTag", "name": "bomb:latest"}}}),
    )
    .await?;
    let post = |body: Vec<u8>| {
        e.admin
            .request(
                reqwest::Method::POST,
                &format!(
                    "/apis/build.openshift.io/v1/namespaces/{}/buildconfigs/bomb/instantiatebinary",
                    e.ns
                ),
            )
            .header("content-type", "application/octet-stream")
            .body(body)
    };
    let bomb = archive("bomb.tgz")?;
    assert!(
        bomb.len() < 1_000_000,
        "the archive is small: {}",
        bomb.len()
    );
    let r = e.admin.send(post(bomb)).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = e.wait_phase("bomb-1", &["Failed"], 60).await?;
    let message = b["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--max-binary-context"), "{}", b["status"]);
    assert_eq!(b["status"]["reason"], "FetchSourceFailed");

    std::fs::write(src.join(".dockerignore"), "huge.bin\n")?;
    std::fs::remove_file(src.join("huge.bin"))?;
    std::fs::File::create(src.join("huge.bin"))?.set_len(20_000_000)?;
    let small_enough = archive("ok.tgz")?;
    let r = e.admin.send(post(small_enough)).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = e.wait_phase("bomb-2", &["Complete", "Failed"], 90).await?;
    assert_eq!(
        b["status"]["phase"],
        "Complete",
        "{}\n{}",
        b["status"],
        e.log("bomb-2").await?
    );
    Ok(())
}
