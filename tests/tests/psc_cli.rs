//! `psc` end to end against a real server on a free port.

use std::path::PathBuf;

use podspace_e2e::{Api, Psc, Server, ADMIN_PASSWORD};

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_projects_and_objects() -> anyhow::Result<()> {
    let server = Server::start()?;
    let psc = Psc::new()?;
    let url = server.url.as_str();

    let err = psc.fails(&["login", url, "-u", "admin", "-p", "wrong"]);
    assert!(err.contains("Login failed"), "{err}");
    assert!(!psc.config.exists(), "a failed login writes no config");
    // Prompts read standard input when it is not a terminal.
    let out = psc.run_stdin(&["login", url], Some(&format!("admin\n{ADMIN_PASSWORD}\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login successful."));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&psc.config)?.permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the config holds a token: mode {mode:o}"
        );
    }
    assert_eq!(psc.ok(&["whoami"]).trim(), "admin");
    let token = psc.ok(&["whoami", "-t"]).trim().to_string();
    assert!(token.starts_with("psc_"));

    let out = psc.ok(&[
        "new-project",
        "test",
        "--display-name",
        "Test Project",
        "--description",
        "for tests",
    ]);
    assert_eq!(
        out.trim(),
        format!("Now using project \"test\" on server \"{url}\".")
    );
    psc.ok(&["new-project", "second"]);
    let out = psc.ok(&["projects"]);
    assert!(
        out.contains("  * second") && out.contains("    test"),
        "{out}"
    );
    assert!(psc
        .ok(&["project", "test"])
        .contains("Now using project \"test\""));
    assert!(psc.ok(&["project"]).contains("Using project \"test\""));
    let err = psc.fails(&["project", "nope"]);
    assert!(
        err.contains("You are not a member of project \"nope\""),
        "{err}"
    );
    let table = psc.ok(&["get", "projects"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("test") && l.contains("Test Project") && l.contains("Active")),
        "{table}"
    );

    // The documentation's seed examples load unchanged.
    for f in [
        "imagestream.yaml",
        "deploymentconfig.yaml",
        "buildconfig.yaml",
        "grouped-api.yaml",
    ] {
        psc.ok(&["create", "-f", &example(f)]);
    }
    let is = psc.ok(&["get", "is"]);
    assert!(
        is.contains("origin-ruby-sample") && is.contains("hello-openshift"),
        "{is}"
    );
    let bc = psc.ok(&["get", "bc"]);
    assert!(
        bc.lines().any(|l| l.starts_with("ruby-sample-build")
            && l.contains("Source")
            && l.contains("Git")),
        "{bc}"
    );
    assert!(
        bc.lines().any(|l| l.starts_with("hello-docker")
            && l.contains("Docker")
            && l.contains("Dockerfile")),
        "{bc}"
    );
    let dc = psc.ok(&["get", "dc"]);
    assert!(
        dc.contains("frontend") && dc.contains("config,image(hello-openshift:latest)"),
        "{dc}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&psc.ok(&["get", "dc", "frontend", "-o", "json"]))?;
    assert_eq!(
        json["spec"]["triggers"][1]["imageChangeParams"]["from"]["kind"],
        "ImageStreamTag"
    );
    assert_eq!(
        json["spec"]["triggers"][1]["imageChangeParams"]["containerNames"][0],
        "helloworld"
    );
    assert_eq!(json["spec"]["replicas"], 5);
    let yaml: serde_json::Value =
        serde_yaml::from_str(&psc.ok(&["get", "bc/ruby-sample-build", "-o", "yaml"]))?;
    assert_eq!(
        yaml["spec"]["strategy"]["type"], "Source",
        "the strategy type is inferred"
    );
    assert_eq!(
        yaml["spec"]["postCommit"]["script"],
        "bundle exec rake test"
    );
    let is: serde_json::Value =
        serde_json::from_str(&psc.ok(&["get", "imagestream", "origin-ruby-sample", "-o", "json"]))?;
    assert_eq!(is["metadata"]["labels"]["app"], "ruby-sample-build");
    assert_ne!(
        is["metadata"]["uid"], "ee2b9405-c68c-11e5-8a99-525400f25e34",
        "server-set fields are the server's"
    );
    assert_eq!(
        psc.ok(&["get", "bc", "-l", "app=hello", "-o", "name"])
            .trim(),
        "buildconfig.build.openshift.io/hello-docker"
    );
    let described = psc.ok(&["describe", "dc", "frontend"]);
    assert!(
        described.contains("Name:\t\tfrontend") && described.contains("Namespace:\ttest"),
        "{described}"
    );

    // Creating again: one clear error per object, non-zero exit.
    let err = psc.fails(&["create", "-f", &example("buildconfig.yaml")]);
    assert!(
        err.contains("AlreadyExists") && err.contains("\"ruby-sample-build\" already exists"),
        "{err}"
    );

    // apply: unchanged, configured, and a field removed from the file goes.
    let applied = psc.dir().join("applied.yaml");
    std::fs::write(
        &applied,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1', b: '2'}\n",
    )?;
    assert_eq!(
        psc.ok(&["apply", "-f", applied.to_str().unwrap()]).trim(),
        "configmap/settings created"
    );
    assert_eq!(
        psc.ok(&["apply", "-f", applied.to_str().unwrap()]).trim(),
        "configmap/settings unchanged"
    );
    std::fs::write(
        &applied,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '3'}\n",
    )?;
    assert_eq!(
        psc.ok(&["apply", "-f", applied.to_str().unwrap()]).trim(),
        "configmap/settings configured"
    );
    let cm: serde_json::Value =
        serde_json::from_str(&psc.ok(&["get", "cm", "settings", "-o", "json"]))?;
    assert_eq!(cm["data"], serde_json::json!({"a": "3"}));

    // From standard input, into another project with -n.
    let out = psc.run_stdin(&["create", "-n", "second", "-f", "-"], Some("{\"apiVersion\": \"v1\", \"kind\": \"ImageStream\", \"metadata\": {\"name\": \"piped\"}}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(psc.ok(&["get", "is", "-n", "second"]).contains("piped"));

    psc.ok(&["delete", "is", "hello-openshift"]);
    let err = psc.fails(&["get", "is", "hello-openshift"]);
    assert!(
        err.contains("(NotFound)") && err.contains("\"hello-openshift\" not found"),
        "{err}"
    );
    let err = psc.fails(&["get", "pods"]);
    assert!(
        err.contains("the server doesn't have a resource type \"pods\""),
        "{err}"
    );

    // Logging out revokes the token on the server.
    assert!(psc.ok(&["logout"]).contains("Logged \"admin\" out"));
    let api = Api::anonymous(url).with_token(&token);
    assert_eq!(
        api.get("/apis/project.openshift.io/v1/projects")
            .await?
            .status,
        401
    );
    psc.fails(&["whoami"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_roles() -> anyhow::Result<()> {
    let server = Server::start()?;
    let url = server.url.as_str();
    let admin = Psc::new()?;
    admin.ok(&["login", url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    admin.ok(&["new-project", "shop"]);
    assert_eq!(
        admin
            .ok(&["create", "user", "alice", "--password", "alice-secret"])
            .trim(),
        "user.user.openshift.io/alice created"
    );
    admin.ok(&["create", "-f", &example("deploymentconfig.yaml")]);

    let alice = Psc::new()?;
    let out = alice.ok(&["login", url, "-u", "alice", "-p", "alice-secret"]);
    assert!(out.contains("You don't have any projects"), "{out}");
    let err = alice.fails(&["get", "dc", "-n", "shop"]);
    assert!(err.contains("(Forbidden)"), "{err}");

    assert_eq!(
        admin
            .ok(&["policy", "add-role-to-user", "view", "alice"])
            .trim(),
        "role \"view\" added: \"alice\""
    );
    // Adding twice changes nothing.
    admin.ok(&["policy", "add-role-to-user", "view", "alice"]);
    let rb = admin.ok(&["get", "rolebindings"]);
    assert!(
        rb.lines()
            .any(|l| l.starts_with("view ") && l.contains("alice")),
        "{rb}"
    );
    assert!(alice.ok(&["projects"]).contains("shop"));
    alice.ok(&["project", "shop"]);
    assert!(alice.ok(&["get", "dc"]).contains("frontend"));
    let err = alice.fails(&["delete", "dc", "frontend"]);
    assert!(
        err.contains("(Forbidden)") && err.contains("User \"alice\" cannot delete"),
        "{err}"
    );

    admin.ok(&["policy", "add-role-to-user", "edit", "alice"]);
    alice.ok(&["delete", "dc", "frontend"]);
    let err = alice.fails(&["policy", "add-role-to-user", "admin", "alice"]);
    assert!(
        err.contains("(Forbidden)"),
        "an editor cannot grant roles: {err}"
    );

    admin.ok(&["policy", "remove-role-from-user", "view", "alice"]);
    admin.ok(&["policy", "remove-role-from-user", "edit", "alice"]);
    let err = alice.fails(&["get", "dc"]);
    assert!(err.contains("(Forbidden)"), "{err}");

    // A service account token from `psc create token`.
    let token = admin.ok(&["create", "token", "builder"]).trim().to_string();
    let builder = Api::anonymous(url).with_token(&token);
    assert_eq!(
        builder
            .get("/apis/user.openshift.io/v1/users/~")
            .await?
            .body["metadata"]["name"],
        "system:serviceaccount:shop:builder"
    );

    // Deleting a user ends their sessions.
    admin.ok(&["delete", "user", "alice"]);
    let err = alice.fails(&["whoami"]);
    assert!(err.contains("Unauthorized"), "{err}");
    let out = alice.run(&["login", url, "-u", "alice", "-p", "alice-secret"]);
    assert!(!out.status.success());
    Ok(())
}
