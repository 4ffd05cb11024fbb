//! Start-up, configuration, health, metrics, logs and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use podspace_e2e::{bin, Api, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_one_time_admin_password() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("podspace.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
            dir.path().join("data")
        ),
    )?;
    let start = |dir: &std::path::Path| {
        Command::new(bin("podspace"))
            .args(["serve", "--config"])
            .arg(dir.join("podspace.toml"))
            .env("PODSPACE_REGISTRY_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    let mut child = start(dir.path())?;
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut password = None;
    for line in stdout.lines() {
        let line = line?;
        if let Some(pw) = line.split("one-time password: ").nth(1) {
            password = Some(pw.trim().to_string());
            break;
        }
    }
    let password = password.expect("a password is printed");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut stderr_rest = stderr;
    for line in (&mut stderr_rest).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if v["fields"]["message"] == "API listening" {
            url = Some(format!("http://{}", v["fields"]["addr"].as_str().unwrap()));
            break;
        }
    }
    let url = url.expect("the server listens");
    // Keep draining the rest of the output.
    std::thread::spawn(move || for _ in stderr_rest.lines() {});
    let admin = Api::login(&url, "admin", &password).await?;
    assert_eq!(
        admin.get("/apis/user.openshift.io/v1/users/~").await?.body["metadata"]["name"],
        "admin"
    );
    assert!(
        std::fs::metadata(dir.path().join("data/podspace.db")).is_ok(),
        "the data dir from the config file is used"
    );
    child.kill()?;
    child.wait()?;

    // The second start keeps the password and prints none.
    let mut child = start(dir.path())?;
    std::thread::sleep(Duration::from_millis(800));
    child.kill()?;
    let output = child.wait_with_output()?;
    assert!(!String::from_utf8_lossy(&output.stdout).contains("one-time password"));
    Ok(())
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(bin("podspace"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--listen",
        "--registry-listen",
        "--admin-password",
        "--db",
        "--config",
        "PODSPACE_DB",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn a_bad_config_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "listne = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(bin("podspace"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `listne`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_logs_and_graceful_shutdown() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let anon = Api::anonymous(&server.url);
    assert_eq!(anon.get("/healthz").await?.text, "ok");
    assert_eq!(anon.get("/readyz").await?.text, "ok");
    assert_eq!(
        anon.get("/apis").await?.status,
        401,
        "discovery needs a login"
    );
    assert_eq!(anon.get("/no/such/path").await?.status, 401);
    let admin = Api::admin(&server.url).await?;
    let token = admin.token.clone().unwrap();
    admin.new_project("m").await?;
    assert_eq!(admin.get("/no/such/path").await?.status, 404);
    let groups = admin.get("/apis").await?.body;
    assert!(groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "build.openshift.io"));
    let resources = admin.get("/apis/image.openshift.io/v1").await?.body;
    assert!(resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "imagestreams" && r["shortNames"][0] == "is"));

    let metrics = anon.get("/metrics").await?.text;
    assert!(metrics.contains("podspace_http_requests_total{method=\"POST\",resource=\"projectrequests\",code=\"201\"} 1"), "{metrics}");
    assert!(metrics.contains("podspace_http_request_duration_seconds_bucket"));

    // One structured line per request, with status and duration; no token.
    let log = server.log_text();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["path"] == "/apis/project.openshift.io/v1/projectrequests")
        .expect("the request was logged");
    assert_eq!(line["fields"]["status"], 201);
    assert!(line["fields"]["duration_ms"].as_f64().is_some());
    assert_eq!(line["fields"]["user"], "admin");
    assert!(!log.contains(&token), "the log holds a token");
    assert!(
        !log.contains(podspace_e2e::ADMIN_PASSWORD),
        "the log holds a password"
    );

    // SIGTERM ends the process even with a watch open.
    let watch = admin
        .request(
            reqwest::Method::GET,
            "/apis/image.openshift.io/v1/namespaces/m/imagestreams?watch=true",
        )
        .send()
        .await?;
    assert_eq!(watch.status(), 200);
    let status = server.terminate()?;
    assert!(status.success(), "exit status {status:?}");
    assert!(server.log_text().contains("stopped"));
    Ok(())
}
