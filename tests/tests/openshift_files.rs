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
        // A Kubernetes quantity given as a number (`cpu: 1`) comes back as
        // its string, as the Kubernetes API returns it.
        (Value::Number(n), Value::String(s)) if n.to_string() == *s => {}
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
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = admin
        .get("/apis/image.openshift.io/v1/namespaces/lib/imagestreams/python")
        .await?
        .body;
    assert_eq!(before["spec"]["tags"], after["spec"]["tags"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_process_and_new_app() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let file = format!("{FIXTURES}/application-template-dockerbuild.json");

    // Processing a file needs no server: parameters, generated values,
    // ${{…}} as JSON, the template's labels on every object.
    let nobody = Psc::new()?;
    let out = nobody.ok(&[
        "process",
        "-f",
        &file,
        "-p",
        "SOURCE_REPOSITORY_URL=git://127.0.0.1:9/app.git",
        "-p",
        "MYSQL_DATABASE=shop",
    ]);
    let list: Value = serde_json::from_str(&out)?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(list["kind"], "List");
    assert_eq!(items.len(), 6);
    assert!(items
        .iter()
        .all(|i| i["metadata"]["labels"]["template"] == "application-template-dockerbuild"));
    let dc = &items[5];
    assert_eq!(
        dc["spec"]["replicas"], 2,
        "${{FRONTEND_REPLICAS}} is a number"
    );
    let env = &dc["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[4]["value"], "shop");
    let user = env[0]["value"].as_str().unwrap_or_default();
    assert!(user.len() == 8 && user.starts_with("admin"), "{user}");
    assert_eq!(env[1]["value"].as_str().map(str::len), Some(8));
    let bc = &items[4];
    assert_eq!(
        bc["spec"]["source"]["git"]["uri"],
        "git://127.0.0.1:9/app.git"
    );
    let secret = bc["spec"]["triggers"][0]["github"]["secret"]
        .as_str()
        .unwrap_or_default();
    assert!(secret.len() == 40 && !secret.contains('$'), "{secret}");
    let yaml = nobody.ok(&[
        "process",
        "-f",
        &file,
        "-p",
        "SOURCE_REPOSITORY_URL=x",
        "-o",
        "yaml",
    ]);
    assert!(yaml.contains("kind: List"), "{yaml}");
    // Bad values are refused, naming the parameter.
    let err = nobody.fails(&["process", "-f", &file]);
    assert!(
        err.contains("parameter SOURCE_REPOSITORY_URL is required"),
        "{err}"
    );
    let err = nobody.fails(&[
        "process",
        "-f",
        &file,
        "-p",
        "SOURCE_REPOSITORY_URL=x",
        "-p",
        "NOPE=1",
    ]);
    assert!(err.contains("unknown parameter name \"NOPE\""), "{err}");

    // Stored in the shared project by an admin; every user may read it
    // there, nobody but admins may write it.
    let admin_psc = Psc::new()?;
    admin_psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    let said = admin_psc.ok(&["create", "-f", &file, "-n", "openshift"]);
    assert!(
        said.contains("template.template.openshift.io/application-template-dockerbuild created"),
        "{said}"
    );
    let stored = admin
        .get("/apis/template.openshift.io/v1/namespaces/openshift/templates/application-template-dockerbuild")
        .await?
        .body;
    let mut given: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    if let Some(o) = given.as_object_mut() {
        o.remove("apiVersion");
    }
    let mut missing = Vec::new();
    given_fields_kept(&given, &stored, "", &mut missing);
    assert!(missing.is_empty(), "{missing:?}");
    let bad = admin
        .post(
            "/apis/template.openshift.io/v1/namespaces/openshift/templates",
            &serde_json::json!({"apiVersion": "template.openshift.io/v1", "kind": "Template",
                "metadata": {"name": "bad"}, "objects": [],
                "parameters": [{"name": "A B"}, {"name": "X"}, {"name": "X"}]}),
        )
        .await?;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(
        bad.text.contains("parameters[0].name") && bad.text.contains("Duplicate value"),
        "{}",
        bad.text
    );

    let dev = admin.create_user("dev", "dev-password").await?;
    let dev_psc = Psc::new()?;
    dev_psc.ok(&["login", &server.url, "-u", "dev", "-p", "dev-password"]);
    dev_psc.ok(&["new-project", "shop"]);
    let listed = dev
        .get("/apis/template.openshift.io/v1/namespaces/openshift/templates")
        .await?;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let refused = dev
        .post(
            "/apis/template.openshift.io/v1/namespaces/openshift/templates",
            &serde_json::json!({"apiVersion": "template.openshift.io/v1", "kind": "Template",
                "metadata": {"name": "mine"}, "objects": []}),
        )
        .await?;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let by_name = dev_psc.ok(&[
        "process",
        "application-template-dockerbuild",
        "-p",
        "SOURCE_REPOSITORY_URL=x",
    ]);
    assert!(by_name.contains("\"kind\": \"List\""), "{by_name}");

    // new-app: what this service serves is created, each of the others
    // reported; the exit status says not everything was.
    let params = psc_dir_file(
        &dev_psc,
        "params.env",
        "# values\nSOURCE_REPOSITORY_URL=git://127.0.0.1:9/app.git\n\nFRONTEND_REPLICAS=3\n",
    )?;
    let out = dev_psc.run(&[
        "new-app",
        "--template",
        "application-template-dockerbuild",
        "--param-file",
        &params,
        "-p",
        "MYSQL_DATABASE=orders",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    for want in [
        "imagestream.image.openshift.io \"origin-ruby-sample\" created",
        "imagestream.image.openshift.io \"ruby-27-centos7\" created",
        "buildconfig.build.openshift.io \"ruby-sample-build\" created",
        "deploymentconfig.apps.openshift.io \"frontend\" created",
        "The application is being built. Administrator: admin",
    ] {
        assert!(stdout.contains(want), "{want:?} in {stdout}{stderr}");
    }
    assert!(
        stderr.contains("no matches for kind \"Service\"")
            && stderr.contains("no matches for kind \"Route\""),
        "{stderr}"
    );
    let dc = dev
        .get("/apis/apps.openshift.io/v1/namespaces/shop/deploymentconfigs/frontend")
        .await?
        .body;
    assert_eq!(dc["spec"]["replicas"], 3, "the param file's value");
    assert_eq!(
        dc["metadata"]["labels"]["template"],
        "application-template-dockerbuild"
    );
    assert_eq!(
        dc["spec"]["template"]["spec"]["containers"][0]["env"][4]["value"],
        "orders"
    );
    Ok(())
}

/// Origin's other sample-app shape: a Source (S2I) build from the shared
/// project's builder stream, two DeploymentConfigs with full pod templates
/// (probes, resources, volumes, env from a Secret), a Secret, Services and
/// a Route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_build_template_creates_what_is_served() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let file = format!("{FIXTURES}/application-template-stibuild.json");
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    psc.ok(&["new-project", "ruby"]);

    let processed = psc.ok(&[
        "process",
        "-f",
        &file,
        "-p",
        "SOURCE_REPOSITORY_URL=git://127.0.0.1:9/ruby.git",
        "-p",
        "MEMORY_LIMIT=256Mi",
    ]);
    let list: Value = serde_json::from_str(&processed)?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 8);
    let user = items[5]["stringData"]["mysql-user"]
        .as_str()
        .unwrap_or_default();
    assert!(user.len() == 7 && user.starts_with("user"), "{user}");
    assert_eq!(
        items[3]["spec"]["strategy"]["sourceStrategy"]["from"]["name"],
        "ruby:2.7"
    );

    let out = psc.run(&[
        "new-app",
        "-f",
        &file,
        "-p",
        "SOURCE_REPOSITORY_URL=git://127.0.0.1:9/ruby.git",
        "-p",
        "MEMORY_LIMIT=256Mi",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    for want in [
        "imagestream.image.openshift.io \"origin-ruby-sample\" created",
        "buildconfig.build.openshift.io \"ruby-sample-build\" created",
        "deploymentconfig.apps.openshift.io \"frontend\" created",
        "deploymentconfig.apps.openshift.io \"database\" created",
        "secret \"dbsecret\" created",
        "The application is being built from source. Database user: user",
    ] {
        assert!(stdout.contains(want), "{want:?} in {stdout}{stderr}");
    }
    assert_eq!(
        stderr.matches("no matches for kind \"Service\"").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("no matches for kind \"Route\""), "{stderr}");

    // What was given comes back: the processed objects against the stored.
    for (path, given) in [
        (
            "/apis/build.openshift.io/v1/namespaces/ruby/buildconfigs/ruby-sample-build",
            &items[3],
        ),
        (
            "/apis/apps.openshift.io/v1/namespaces/ruby/deploymentconfigs/frontend",
            &items[4],
        ),
        (
            "/apis/apps.openshift.io/v1/namespaces/ruby/deploymentconfigs/database",
            &items[7],
        ),
    ] {
        let got = admin.get(path).await?.body;
        let mut given = given.clone();
        if let Some(o) = given.as_object_mut() {
            // Controller-owned, and the generated secrets differ per run.
            o.remove("status");
        }
        let mut missing = Vec::new();
        given_fields_kept(
            &given["spec"]["template"],
            &got["spec"]["template"],
            path,
            &mut missing,
        );
        given_fields_kept(
            &given["spec"]["strategy"],
            &got["spec"]["strategy"],
            path,
            &mut missing,
        );
        given_fields_kept(
            &given["metadata"]["labels"],
            &got["metadata"]["labels"],
            path,
            &mut missing,
        );
        assert!(missing.is_empty(), "{missing:?}\n{got:#}");
    }

    // A field Kubernetes does not define in a pod template is refused by
    // its path, not silently dropped; nothing is created.
    let mut typo = items[4].clone();
    typo["metadata"]["name"] = "typo".into();
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always".into();
    let typo_file = psc_dir_file(&psc, "typo.json", &typo.to_string())?;
    let err = psc.fails(&["create", "-f", &typo_file]);
    assert!(
        err.contains(
            "spec.template.spec.containers[0].imagePullPolice: Invalid value: unknown field"
        ),
        "{err}"
    );
    let gone = admin
        .get("/apis/apps.openshift.io/v1/namespaces/ruby/deploymentconfigs/typo")
        .await?;
    assert_eq!(gone.status, 404, "{}", gone.text);
    Ok(())
}

fn psc_dir_file(psc: &Psc, name: &str, text: &str) -> anyhow::Result<String> {
    let path = psc.dir().join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// The objects of a YAML file: every document, `List` items flattened.
fn yaml_objects(text: &str) -> anyhow::Result<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc)?;
        match v["kind"].as_str() {
            Some("List") => out.extend(v["items"].as_array().cloned().unwrap_or_default()),
            Some(_) => out.push(v),
            None => {}
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_round_trips() -> anyhow::Result<()> {
    let server = Server::start()?;
    let psc = Psc::new()?;
    psc.ok(&["login", &server.url, "-u", "admin", "-p", ADMIN_PASSWORD]);
    for p in ["test", "infra", "examples"] {
        psc.ok(&["new-project", p]);
    }
    psc.ok(&["project", "examples"]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let mut checked = 0;
    for file in &files {
        let path = file.display().to_string();
        psc.ok(&["create", "-f", &path]);
        for given in yaml_objects(&std::fs::read_to_string(file)?)? {
            let kind = given["kind"].as_str().unwrap_or_default().to_lowercase();
            let name = given["metadata"]["name"].as_str().unwrap_or_default();
            let ns = given["metadata"]["namespace"]
                .as_str()
                .unwrap_or("examples");
            let got: Value =
                serde_json::from_str(&psc.ok(&["get", &kind, name, "-n", ns, "-o", "json"]))?;
            // What the server owns is its own: identity, status, versions.
            let mut given = given.clone();
            if let Some(o) = given.as_object_mut() {
                o.remove("status");
                o.remove("apiVersion");
            }
            if let Some(m) = given["metadata"].as_object_mut() {
                for server_set in [
                    "uid",
                    "resourceVersion",
                    "creationTimestamp",
                    "selflink",
                    "generation",
                ] {
                    m.remove(server_set);
                }
            }
            let mut missing = Vec::new();
            given_fields_kept(&given, &got, "", &mut missing);
            assert!(
                missing.is_empty(),
                "{path} {kind}/{name}: {missing:?}\n{got:#}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} objects");

    // The example template makes what a newcomer needs: an image stream, a
    // build and a deployment that follows the build's images.
    let out = psc.ok(&[
        "new-app",
        "-f",
        &format!("{dir}/template.yaml"),
        "-p",
        "NAME=hello",
        "-p",
        "SOURCE_REPOSITORY_URL=git://127.0.0.1:9/hello.git",
        "-p",
        "REPLICAS=2",
    ]);
    assert!(out.contains("--> Success"), "{out}");
    let dc: Value = serde_json::from_str(&psc.ok(&["get", "dc", "hello", "-o", "json"]))?;
    assert_eq!(dc["spec"]["replicas"], 2);
    assert_eq!(
        dc["spec"]["triggers"][1]["imageChangeParams"]["from"]["name"],
        "hello:latest"
    );
    assert_eq!(dc["metadata"]["labels"]["app"], "hello");
    Ok(())
}
