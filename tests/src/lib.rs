//! Test harness: starts a real `podspace serve` on a free port with its own
//! data directory, and runs the real `psc` against it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// Where cargo put the workspace's binaries (next to the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("deps dir");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target dir")
    } else {
        dir
    };
    dir.to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins; scripts/test does)",
        path.display()
    );
    path
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// `127.0.0.1:PORT` of the registry.
    pub registry: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub log: PathBuf,
    extra_args: Vec<String>,
    /// Listen on these (API, registry) addresses instead of free ports.
    fixed: Option<(String, String)>,
    /// Environment of the next start (e.g. `PODSPACE_FAULT`).
    pub env: Vec<(String, String)>,
}

impl Server {
    /// A server on the embedded default (SQLite + filesystem) in a temp dir.
    pub fn start() -> Result<Server> {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Result<Server> {
        Self::start_with_env(extra, &[])
    }

    /// [`Server::start_with`], the process's environment extended by `env`.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Result<Server> {
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().join("data");
        let log = tmp.path().join("server.log");
        let mut server = Server {
            child: None,
            url: String::new(),
            registry: String::new(),
            data_dir,
            _tmp: Some(tmp),
            log,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            fixed: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        let (api, registry) = self
            .fixed
            .clone()
            .unwrap_or_else(|| ("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        let mut cmd = Command::new(bin("podspace"));
        cmd.args([
            "serve",
            "--listen",
            &api,
            "--registry-listen",
            &registry,
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(&self.data_dir)
        .args(["--admin-password", ADMIN_PASSWORD]);
        // Only the build tests run builds: elsewhere no build node starts.
        if !self.extra_args.iter().any(|a| a == "--node-slots") {
            cmd.args(["--node-slots", "0"]);
        }
        cmd.args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting podspace")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = mpsc::channel();
        let log_path = self.log.clone();
        // Drains the server's log into a file and reports the bound address.
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let message = v.pointer("/fields/message").and_then(Value::as_str);
                    let addr = v.pointer("/fields/addr").and_then(Value::as_str);
                    if let (Some(m @ ("API listening" | "registry listening")), Some(addr)) =
                        (message, addr)
                    {
                        let _ = tx.send((m == "API listening", addr.to_string()));
                    }
                }
            }
        });
        for _ in 0..2 {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((true, addr)) => self.url = format!("http://{addr}"),
                Ok((false, addr)) => self.registry = addr,
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "podspace did not start; log:\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("podspace did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to end by itself (e.g. at a fault point).
    pub fn wait_exit(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().ok_or_else(|| anyhow!("not running"))?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("podspace did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (SIGKILL) and starts again on the same data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Stops gracefully (SIGTERM), stays down for `pause`, and starts again
    /// on the same addresses, as an operator's restart would (clients keep
    /// their URLs).
    pub fn restart_in_place(&mut self, pause: Duration) -> Result<()> {
        self.terminate()?;
        std::thread::sleep(pause);
        self.start_in_place()
    }

    /// Starts a stopped server again on the addresses it had.
    pub fn start_in_place(&mut self) -> Result<()> {
        let api = self.url.trim_start_matches("http://").to_string();
        self.fixed = Some((api, self.registry.clone()));
        self.spawn()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small HTTP client of the API for tests.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
}

/// What the API answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// An HTTP client that drops idle connections before the server's header
/// deadline closes them (10 s), so a test idle for longer does not send
/// its next request into a connection the server is closing.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

impl Api {
    pub fn anonymous(url: &str) -> Api {
        Api {
            http: http_client(),
            url: url.to_string(),
            token: None,
        }
    }

    pub async fn login(url: &str, user: &str, password: &str) -> Result<Api> {
        let http = http_client();
        let resp = http
            .post(format!("{url}/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("login of {user} failed: {}", resp.status());
        }
        let body: Value = resp.json().await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("no token"))?
            .to_string();
        Ok(Api {
            http,
            url: url.to_string(),
            token: Some(token),
        })
    }

    pub async fn admin(url: &str) -> Result<Api> {
        Self::login(url, "admin", ADMIN_PASSWORD).await
    }

    pub fn with_token(&self, token: &str) -> Api {
        Api {
            http: self.http.clone(),
            url: self.url.clone(),
            token: Some(token.to_string()),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Reply> {
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, body, text })
    }

    /// Sends and reads only the status line and headers (for streams).
    pub async fn status_only(&self, rb: reqwest::RequestBuilder) -> Result<Reply> {
        let resp = rb.send().await?;
        Ok(Reply {
            status: resp.status().as_u16(),
            body: Value::Null,
            text: String::new(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Reply> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Reply> {
        self.send(
            self.request(reqwest::Method::PATCH, path)
                .header("content-type", "application/merge-patch+json")
                .body(patch.to_string()),
        )
        .await
    }

    /// Creates a project through a project request.
    pub async fn new_project(&self, name: &str) -> Result<()> {
        let r = self
            .post(
                "/apis/project.openshift.io/v1/projectrequests",
                &json!({"kind": "ProjectRequest", "apiVersion": "project.openshift.io/v1", "metadata": {"name": name}}),
            )
            .await?;
        if r.status != 201 {
            bail!("creating project {name}: {} {}", r.status, r.text);
        }
        Ok(())
    }

    /// Creates a user (as cluster-admin) and logs them in.
    pub async fn create_user(&self, name: &str, password: &str) -> Result<Api> {
        let r = self
            .post(
                "/apis/user.openshift.io/v1/users",
                &json!({"kind": "User", "apiVersion": "user.openshift.io/v1", "metadata": {"name": name}, "password": password}),
            )
            .await?;
        if r.status != 201 {
            bail!("creating user {name}: {} {}", r.status, r.text);
        }
        Self::login(&self.url, name, password).await
    }

    /// Binds `role` to `user` in `ns` (as a binding of its own).
    pub async fn grant(&self, ns: &str, role: &str, user: &str) -> Result<()> {
        let r = self
            .post(
                &format!("/apis/authorization.openshift.io/v1/namespaces/{ns}/rolebindings"),
                &json!({"kind": "RoleBinding", "metadata": {"name": format!("{role}-{user}")}, "roleRef": {"name": role}, "subjects": [{"kind": "User", "name": user}]}),
            )
            .await?;
        if r.status != 201 {
            bail!("granting {role} to {user}: {} {}", r.status, r.text);
        }
        Ok(())
    }
}

/// Runs `psc` with its own config file.
pub struct Psc {
    pub config: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Psc {
    pub fn new() -> Result<Psc> {
        let tmp = tempfile::tempdir()?;
        Ok(Psc {
            config: tmp.path().join("psc-config"),
            _tmp: tmp,
        })
    }

    pub fn dir(&self) -> &Path {
        self._tmp.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(bin("psc"));
        cmd.args(args)
            .env("PSC_CONFIG", &self.config)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("psc runs");
        if let Some(input) = stdin {
            if let Some(mut s) = child.stdin.take() {
                s.write_all(input.as_bytes()).expect("write stdin");
            }
        }
        child.wait_with_output().expect("psc finishes")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "psc {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "psc {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Debian's docker CLI (another one on PATH may lack the classic builder).
pub const DOCKER: &str = "/usr/bin/docker";

/// The docker CLI with a config directory of its own, so that `docker
/// login` in a test touches nothing else.
pub struct DockerCli {
    config: tempfile::TempDir,
}

impl DockerCli {
    pub fn new() -> Result<DockerCli> {
        let cli = DockerCli {
            config: tempfile::tempdir()?,
        };
        let out = cli.run(&["info", "--format", "{{.ServerVersion}}"]);
        if !out.status.success() {
            bail!(
                "no Docker engine answers (scripts/setup/docker.sh starts one): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(cli)
    }

    /// The CLI's own `DOCKER_CONFIG` (its registry logins).
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(args)
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(Stdio::null())
            .output()
            .expect("docker runs")
    }

    /// `docker login` with the password on standard input.
    pub fn login(&self, registry: &str, user: &str, password: &str) -> Output {
        let mut child = Command::new(DOCKER)
            .args(["login", "-u", user, "--password-stdin", registry])
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker runs");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(password.as_bytes());
        }
        child.wait_with_output().expect("docker login finishes")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds a busybox image from Debian's busybox-static (nothing can be
    /// pulled from the internet here) and names it `name`.
    pub fn busybox_image(&self, name: &str) -> Result<()> {
        self.busybox_image_with(name, 0)
    }

    /// The same with an incompressible `/filler` of `filler` bytes.
    pub fn busybox_image_with(&self, name: &str, filler: usize) -> Result<()> {
        let root = tempfile::tempdir()?;
        let r = root.path();
        if filler > 0 {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let bytes: Vec<u8> = (0..filler)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(r.join("filler"), bytes)?;
        }
        for dir in ["bin", "etc", "tmp"] {
            std::fs::create_dir_all(r.join(dir))?;
        }
        std::fs::copy("/bin/busybox", r.join("bin/busybox"))
            .context("copying /bin/busybox (package busybox-static)")?;
        for applet in ["sh", "echo", "cat", "ls", "sleep", "env", "id", "true"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet))?;
        }
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )?;
        let tar = Command::new("tar")
            .arg("-C")
            .arg(r)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()?;
        let out = Command::new(DOCKER)
            .args(["import", "-c", "CMD [\"/bin/sh\"]", "-", name])
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(tar.stdout.ok_or_else(|| anyhow!("tar stdout"))?)
            .output()?;
        if !out.status.success() {
            bail!(
                "docker import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A moto S3 server on a free loopback port with one bucket; killed on drop.
/// `requests` counts the S3 requests it served (its access log has a line
/// per request).
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Moto {
    pub async fn start() -> Result<Moto> {
        let bin = std::env::var("PODSPACE_MOTO")
            .unwrap_or_else(|_| "/opt/podspace/moto/bin/moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {bin} (scripts/setup/moto.sh installs it)"))?;
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("moto stderr"))?;
        let counter = requests.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if ["\"GET ", "\"PUT ", "\"POST ", "\"DELETE ", "\"HEAD "]
                    .iter()
                    .any(|m| line.contains(m))
                {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto {
            child,
            endpoint,
            bucket: "podspace-e2e".into(),
            requests,
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http
                .put(format!("{}/{}", moto.endpoint, moto.bucket))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(moto);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("moto did not start")
    }

    /// `podspace serve` flags for a registry on this bucket.
    pub fn serve_args(&self) -> Vec<String> {
        [
            "--registry-storage",
            "s3",
            "--s3-endpoint",
            &self.endpoint,
            "--s3-bucket",
            &self.bucket,
            "--s3-access-key",
            "test",
            "--s3-secret-key",
            "test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's docker-registry (CNCF distribution 2.8) on a temp dir and a
/// free loopback port, without auth; killed on drop.
pub struct Distribution {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Distribution {
    pub async fn start() -> Result<Distribution> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (scripts/setup/docker.sh installs it)")?;
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("http://{addr}/v2/")).await.is_ok() {
                return Ok(Distribution {
                    child,
                    addr,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("docker-registry did not start")
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds (60 s at most: CI machines are slow).
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

/// The image ids in the history of `<ns>/<is>:<tag>`, newest first.
pub async fn tag_history(api: &Api, ns: &str, is: &str, tag: &str) -> Result<Vec<String>> {
    let s = api
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams/{is}"
        ))
        .await?
        .body;
    Ok(s["status"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["tag"] == tag)
        .map(|t| {
            t["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["image"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default())
}

/// `git daemon` on loopback serving bare repositories from a temp dir
/// (clone and push over `git://`).
pub struct GitDaemon {
    child: std::process::Child,
    root: tempfile::TempDir,
    work: tempfile::TempDir,
    pub port: u16,
}

impl GitDaemon {
    pub fn start() -> Result<GitDaemon> {
        let root = tempfile::tempdir()?;
        let work = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("git")
            .arg("daemon")
            .arg(format!("--base-path={}", root.path().display()))
            .args(["--export-all", "--enable=receive-pack", "--reuseaddr"])
            .args(["--listen=127.0.0.1", &format!("--port={port}")])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting git daemon")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(GitDaemon {
                    child,
                    root,
                    work,
                    port,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("git daemon did not start on port {port}")
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}.git", self.port)
    }

    fn git(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let out = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=Ada Builder",
                "-c",
                "user.email=ada@example.com",
            ])
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Writes `files` into repository `repo` (created on first use), commits
    /// with `message` on `main` and pushes; returns the commit id.
    pub fn commit(&self, repo: &str, files: &[(&str, &str)], message: &str) -> Result<String> {
        let bare = self.root.path().join(format!("{repo}.git"));
        let dir = self.work.path().join(repo);
        if !bare.exists() {
            self.git(
                self.root.path(),
                &["init", "--bare", "-q", &format!("{repo}.git")],
            )?;
            std::fs::create_dir_all(&dir)?;
            self.git(&dir, &["init", "-q"])?;
            self.git(
                &dir,
                &["remote", "add", "origin", &bare.display().to_string()],
            )?;
        }
        for (path, content) in files {
            let p = dir.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, content)?;
        }
        self.git(&dir, &["add", "-A"])?;
        self.git(&dir, &["commit", "-q", "-m", message])?;
        self.git(&dir, &["push", "-q", "origin", "HEAD:refs/heads/main"])?;
        self.git(&dir, &["rev-parse", "HEAD"])
    }
}

impl GitDaemon {
    /// Installs the server-side hook `name` (e.g. `post-receive`) of
    /// repository `repo` (which a first [`GitDaemon::commit`] created).
    pub fn hook(&self, repo: &str, name: &str, script: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.root.path().join(format!("{repo}.git/hooks/{name}"));
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }
}

/// The same repositories over smart HTTP behind Basic auth
/// (`tests/fixtures/git-http.py`: `git http-backend` as CGI).
pub struct GitHttp {
    child: std::process::Child,
    pub port: u16,
}

impl GitHttp {
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}.git", self.port)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GitDaemon {
    pub fn serve_http(&self, user: &str, password: &str) -> Result<GitHttp> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git-http.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(self.root.path())
            .arg(port.to_string())
            .args([user, password])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the git HTTP server")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("the git HTTP server did not start");
        }
        Ok(GitHttp { child, port })
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The smallest image there is, pushed over the registry protocol: an empty
/// config blob and a manifest without layers (annotated with `n`, so that
/// each `n` is another digest).
pub struct TinyImage {
    pub config: Vec<u8>,
    pub config_digest: String,
}

impl Default for TinyImage {
    fn default() -> Self {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let config_digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&config))
        );
        TinyImage {
            config,
            config_digest,
        }
    }
}

impl TinyImage {
    pub fn manifest(&self, n: usize) -> String {
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.config_digest, "size": self.config.len()},
            "layers": [], "annotations": {"n": n.to_string()}})
        .to_string()
    }

    /// POSTs the config blob whole into `repo`; the status code.
    pub async fn push_config(
        &self,
        http: &reqwest::Client,
        registry: &str,
        token: &str,
        repo: &str,
    ) -> Result<u16> {
        Ok(http
            .post(format!(
                "http://{registry}/v2/{repo}/blobs/uploads/?digest={}",
                self.config_digest
            ))
            .bearer_auth(token)
            .body(self.config.clone())
            .send()
            .await?
            .status()
            .as_u16())
    }

    /// PUTs manifest `n` as `repo:tag`.
    pub async fn push_manifest(
        &self,
        http: &reqwest::Client,
        registry: &str,
        token: &str,
        repo: &str,
        tag: &str,
        n: usize,
    ) -> reqwest::Result<reqwest::Response> {
        http.put(format!("http://{registry}/v2/{repo}/manifests/{tag}"))
            .bearer_auth(token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(self.manifest(n))
            .send()
            .await
    }
}

/// Pushes a busybox image as `<registry>/<ns>/base:1` for each of `projects`
/// (as `token`'s user, with the real docker CLI).
pub fn push_busybox_bases(registry: &str, token: &str, projects: &[&str]) -> Result<()> {
    let docker = DockerCli::new()?;
    let local = unique("podspace-base");
    docker.busybox_image(&local)?;
    let out = docker.login(registry, "admin", token);
    if !out.status.success() {
        bail!("docker login failed");
    }
    for ns in projects {
        let base = format!("{registry}/{ns}/base:1");
        docker.ok(&["tag", &local, &base]);
        docker.ok(&["push", &base]);
        docker.ok(&["rmi", &base]);
    }
    docker.ok(&["rmi", &local]);
    Ok(())
}

/// `POST /oauth/token` with the password grant.
pub async fn password_login(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{url}/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
}

/// Waits (up to two minutes) for build `ns/name` to reach a terminal phase.
pub async fn wait_build(api: &Api, ns: &str, name: &str) -> Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = api
            .get(&format!(
                "/apis/build.openshift.io/v1/namespaces/{ns}/builds/{name}"
            ))
            .await?;
        let phase = r.body["status"]["phase"].as_str().unwrap_or("New");
        if r.status == 200 && ["Complete", "Failed", "Error", "Cancelled"].contains(&phase) {
            return Ok(r.body);
        }
        if std::time::Instant::now() > deadline {
            bail!("build {ns}/{name} still {phase}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stored log of build `ns/name`.
pub async fn build_log(api: &Api, ns: &str, name: &str) -> Result<String> {
    Ok(api
        .get(&format!(
            "/apis/build.openshift.io/v1/namespaces/{ns}/builds/{name}/log?nowait=true"
        ))
        .await?
        .text)
}

/// Creates BuildConfig `name` with `spec` in `ns` (201 or an error).
pub async fn create_build_config(api: &Api, ns: &str, name: &str, spec: Value) -> Result<()> {
    let r = api
        .post(
            &format!("/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs"),
            &json!({"metadata": {"name": name}, "spec": spec}),
        )
        .await?;
    if r.status != 201 {
        bail!("create bc {name}: {} {}", r.status, r.text);
    }
    Ok(())
}

/// Asserts that `build` failed for `reason` with a message saying `says`.
pub fn assert_build_failed(build: &Value, reason: &str, says: &str) {
    let status = &build["status"];
    assert_eq!(status["reason"], reason, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains(says),
        "the message should say {says:?}: {status}"
    );
}

/// utime + stime of a process, in clock ticks (10 ms here): the benches'
/// measure of what a client cost the server.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// A new, empty PostgreSQL database on the server scripts/test starts
/// (`PODSPACE_TEST_POSTGRES_URL`); its URL. Without that variable the test
/// fails, saying so: a suite that cannot run is not reported as passed.
pub async fn postgres_database() -> Result<String> {
    let base = std::env::var("PODSPACE_TEST_POSTGRES_URL").map_err(|_| {
        anyhow!("PODSPACE_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL)")
    })?;
    sqlx::any::install_default_drivers();
    let name = format!("podspace_e2e_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let (prefix, _) = base
        .rsplit_once('/')
        .ok_or_else(|| anyhow!("PODSPACE_TEST_POSTGRES_URL names no database"))?;
    Ok(format!("{prefix}/{name}"))
}

/// A controller's durable cursor as `/metrics` reports it.
fn controller_cursors(metrics: &str) -> BTreeMap<String, i64> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("podspace_controller_cursor{controller=\"")?;
            let (name, value) = rest.split_once("\"} ")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Waits until every controller has handled everything written so far:
/// each one's durable cursor (which passes an event only once the keys it
/// touched are reconciled) is at or past the store's resourceVersion now.
/// Then whatever a controller would do because of those writes is done, so
/// a test may assert that something did *not* happen.
pub async fn controllers_caught_up(api: &Api) -> Result<()> {
    let list = api.get("/apis/project.openshift.io/v1/projects").await?;
    let rv: i64 = list.body["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no resourceVersion in {}", list.text))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = api.get("/metrics").await?.text;
        let cursors = controller_cursors(&metrics);
        if cursors.len() >= 4 && cursors.values().all(|c| *c >= rv) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("controllers did not reach resourceVersion {rv}: {cursors:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many reconciles `controller` has done, from `/metrics`.
pub async fn controller_reconciles(api: &Api, controller: &str) -> Result<u64> {
    let metrics = api.get("/metrics").await?.text;
    let prefix = format!("podspace_controller_reconciles_total{{controller=\"{controller}\"}} ");
    Ok(metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0))
}
