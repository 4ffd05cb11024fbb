//! Who may do what: anonymous / viewer / editor / admin / a user of another
//! project × get / list / create / update / delete / watch on every
//! namespaced kind. Every cell is asserted.

use podspace_e2e::{Api, Server};
use serde_json::{json, Value};

const NS: &str = "matrix";
const OTHER_NS: &str = "elsewhere";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    Viewer,
    Editor,
    Admin,
    Outsider,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Verb {
    Get,
    List,
    Create,
    Update,
    Delete,
    Watch,
}

struct Kind {
    path: &'static str,
    plural: &'static str,
    kind: &'static str,
    body: fn() -> Value,
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            path: "/apis/image.openshift.io/v1",
            plural: "imagestreams",
            kind: "ImageStream",
            body: || json!({"spec": {}}),
        },
        Kind {
            path: "/apis/build.openshift.io/v1",
            plural: "buildconfigs",
            kind: "BuildConfig",
            body: || json!({"spec": {"source": {"dockerfile": "FROM scratch"}, "strategy": {"type": "Docker", "dockerStrategy": {}}}}),
        },
        Kind {
            path: "/apis/build.openshift.io/v1",
            plural: "builds",
            kind: "Build",
            body: || json!({"spec": {"source": {"dockerfile": "FROM scratch"}, "strategy": {"type": "Docker", "dockerStrategy": {}}}}),
        },
        Kind {
            path: "/apis/apps.openshift.io/v1",
            plural: "deploymentconfigs",
            kind: "DeploymentConfig",
            body: || json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}}),
        },
        Kind {
            path: "/apis/authorization.openshift.io/v1",
            plural: "rolebindings",
            kind: "RoleBinding",
            body: || json!({"roleRef": {"name": "view"}, "subjects": [{"kind": "User", "name": "nobody"}]}),
        },
        Kind {
            path: "/api/v1",
            plural: "serviceaccounts",
            kind: "ServiceAccount",
            body: || json!({}),
        },
        Kind {
            path: "/api/v1",
            plural: "secrets",
            kind: "Secret",
            body: || json!({"data": {"k": "dg=="}}),
        },
        Kind {
            path: "/api/v1",
            plural: "configmaps",
            kind: "ConfigMap",
            body: || json!({"data": {"k": "v"}}),
        },
        Kind {
            path: "/api/v1",
            plural: "replicationcontrollers",
            kind: "ReplicationController",
            body: || json!({"spec": {"replicas": 0}}),
        },
    ]
}

/// The expected HTTP status of one cell.
fn expected(who: Who, verb: Verb, plural: &str) -> u16 {
    let read = matches!(verb, Verb::Get | Verb::List | Verb::Watch);
    let ok = match verb {
        Verb::Create => 201,
        _ => 200,
    };
    match who {
        Who::Anonymous => 401,
        Who::Outsider => 403,
        Who::Admin => ok,
        Who::Viewer if read && plural != "secrets" => ok,
        Who::Viewer => 403,
        Who::Editor if plural == "rolebindings" && !read => 403,
        Who::Editor => ok,
    }
}

fn object(kind: &Kind, name: &str) -> Value {
    let mut body = (kind.body)();
    body["kind"] = json!(kind.kind);
    body["metadata"] = json!({"name": name});
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_times_every_verb_on_every_kind() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project(NS).await?;
    admin.new_project(OTHER_NS).await?;
    let viewer = admin.create_user("viewer", "viewer-password").await?;
    let editor = admin.create_user("editor", "editor-password").await?;
    let owner = admin.create_user("owner", "owner-password").await?;
    let outsider = admin.create_user("outsider", "outsider-password").await?;
    admin.grant(NS, "view", "viewer").await?;
    admin.grant(NS, "edit", "editor").await?;
    admin.grant(NS, "admin", "owner").await?;
    admin.grant(OTHER_NS, "admin", "outsider").await?;
    let anonymous = Api::anonymous(&server.url);
    let people = [
        (Who::Anonymous, &anonymous),
        (Who::Viewer, &viewer),
        (Who::Editor, &editor),
        (Who::Admin, &owner),
        (Who::Outsider, &outsider),
    ];

    let mut cells = 0;
    let mut failures = Vec::new();
    for kind in kinds() {
        let collection = format!("{}/namespaces/{NS}/{}", kind.path, kind.plural);
        for (who, api) in &people {
            let tag = format!("{who:?}").to_lowercase();
            // Fixtures made by the cluster admin for this cell's update and delete.
            for fixture in [
                format!("upd-{tag}"),
                format!("del-{tag}"),
                format!("get-{tag}"),
            ] {
                let r = admin.post(&collection, &object(&kind, &fixture)).await?;
                assert_eq!(r.status, 201, "fixture {fixture}: {}", r.text);
            }
            for verb in [
                Verb::Get,
                Verb::List,
                Verb::Create,
                Verb::Update,
                Verb::Delete,
                Verb::Watch,
            ] {
                let reply = match verb {
                    Verb::Get => api.get(&format!("{collection}/get-{tag}")).await?,
                    Verb::List => api.get(&collection).await?,
                    Verb::Watch => {
                        let rb = api.request(
                            reqwest::Method::GET,
                            &format!("{collection}?watch=true&timeoutSeconds=30"),
                        );
                        let r = api.status_only(rb).await?;
                        if r.status >= 400 {
                            api.get(&format!("{collection}?watch=true")).await?
                        } else {
                            r
                        }
                    }
                    Verb::Create => {
                        api.post(&collection, &object(&kind, &format!("new-{tag}")))
                            .await?
                    }
                    Verb::Update => {
                        // Read-modify-write as clients do: a controller may
                        // write the object in between (409), then read again.
                        let mut attempt = 0;
                        loop {
                            let mut current =
                                admin.get(&format!("{collection}/upd-{tag}")).await?.body;
                            current["metadata"]["labels"] = json!({"touched": "yes"});
                            let r = api
                                .put(&format!("{collection}/upd-{tag}"), &current)
                                .await?;
                            attempt += 1;
                            if r.status != 409 || attempt == 5 {
                                break r;
                            }
                        }
                    }
                    Verb::Delete => api.delete(&format!("{collection}/del-{tag}")).await?,
                };
                cells += 1;
                let want = expected(*who, verb, kind.plural);
                if reply.status != want {
                    failures.push(format!(
                        "{who:?} {verb:?} {}: got {} want {want}: {}",
                        kind.plural, reply.status, reply.text
                    ));
                    continue;
                }
                // A refusal is a Status and tells nothing about the object.
                if want >= 400 {
                    assert_eq!(reply.body["kind"], "Status", "{}", reply.text);
                    assert_eq!(reply.body["code"], want);
                }
                // And a refused write changed nothing.
                if want >= 400 {
                    match verb {
                        Verb::Create => {
                            let r = admin.get(&format!("{collection}/new-{tag}")).await?;
                            assert_eq!(
                                r.status, 404,
                                "{who:?} create {} was refused but stored",
                                kind.plural
                            );
                        }
                        Verb::Update => {
                            let r = admin.get(&format!("{collection}/upd-{tag}")).await?;
                            assert!(
                                r.body["metadata"]["labels"].is_null(),
                                "{who:?} update {} was refused but stored",
                                kind.plural
                            );
                        }
                        Verb::Delete => {
                            let r = admin.get(&format!("{collection}/del-{tag}")).await?;
                            assert_eq!(
                                r.status, 200,
                                "{who:?} delete {} was refused but done",
                                kind.plural
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, 9 * 5 * 6);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_visible_to_members_only() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    let alice = admin.create_user("alice", "alice-password").await?;
    let bob = admin.create_user("bob", "bob-password1").await?;
    alice.new_project("alice-private").await?;
    bob.new_project("bob-only").await?;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(
            &alice
                .get("/apis/project.openshift.io/v1/projects")
                .await?
                .body
        ),
        ["alice-private"]
    );
    assert_eq!(
        names(&bob.get("/oapi/v1/projects").await?.body),
        ["bob-only"]
    );
    let mut all = names(
        &admin
            .get("/apis/project.openshift.io/v1/projects")
            .await?
            .body,
    );
    all.sort();
    // The shared project exists from the first start; only admins list it.
    assert_eq!(all, ["alice-private", "bob-only", "openshift"]);
    // Bob learns nothing: an existing and a missing project answer alike.
    let existing = bob
        .get("/apis/project.openshift.io/v1/projects/alice-private")
        .await?;
    let missing = bob
        .get("/apis/project.openshift.io/v1/projects/no-such-project")
        .await?;
    assert_eq!((existing.status, missing.status), (403, 403));
    assert_eq!(existing.body["reason"], missing.body["reason"]);
    let existing = bob
        .get("/apis/image.openshift.io/v1/namespaces/alice-private/imagestreams")
        .await?;
    let missing = bob
        .get("/apis/image.openshift.io/v1/namespaces/no-such-project/imagestreams")
        .await?;
    assert_eq!((existing.status, missing.status), (403, 403));
    // Only the project's admin may delete it.
    alice.grant("alice-private", "edit", "bob").await?;
    assert_eq!(
        bob.delete("/apis/project.openshift.io/v1/projects/alice-private")
            .await?
            .status,
        403
    );
    assert_eq!(
        alice
            .delete("/apis/project.openshift.io/v1/projects/alice-private")
            .await?
            .status,
        200
    );
    assert_eq!(
        alice
            .get("/apis/project.openshift.io/v1/projects/alice-private")
            .await?
            .status,
        403
    );
    // Users are cluster-scoped: only a cluster admin lists them.
    assert_eq!(
        alice.get("/apis/user.openshift.io/v1/users").await?.status,
        403
    );
    assert_eq!(
        admin.get("/apis/user.openshift.io/v1/users").await?.status,
        200
    );
    assert_eq!(
        alice.get("/apis/user.openshift.io/v1/users/~").await?.body["metadata"]["name"],
        "alice"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_carry_their_role() -> anyhow::Result<()> {
    let server = Server::start()?;
    let admin = Api::admin(&server.url).await?;
    admin.new_project("sa").await?;
    let r = admin
        .post(
            "/api/v1/namespaces/sa/serviceaccounts/builder/token",
            &json!({}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let builder = admin.with_token(r.body["status"]["token"].as_str().unwrap());
    assert_eq!(
        builder
            .get("/apis/user.openshift.io/v1/users/~")
            .await?
            .body["metadata"]["name"],
        "system:serviceaccount:sa:builder"
    );
    assert_eq!(
        builder
            .get("/apis/image.openshift.io/v1/namespaces/sa/imagestreams")
            .await?
            .status,
        200
    );
    assert_eq!(
        builder
            .get("/apis/build.openshift.io/v1/namespaces/sa/buildconfigs")
            .await?
            .status,
        403
    );
    assert_eq!(
        builder
            .post(
                "/apis/project.openshift.io/v1/projectrequests",
                &json!({"metadata": {"name": "sa-made"}})
            )
            .await?
            .status,
        403
    );
    // A bad TokenRequest is refused clearly.
    let short = admin
        .post(
            "/api/v1/namespaces/sa/serviceaccounts/builder/token",
            &json!({"spec": {"expirationSeconds": 10}}),
        )
        .await?;
    assert_eq!(
        (short.status, short.body["reason"].as_str()),
        (422, Some("Invalid")),
        "{}",
        short.text
    );
    let plain = admin
        .send(
            admin
                .request(
                    reqwest::Method::POST,
                    "/api/v1/namespaces/sa/serviceaccounts/builder/token",
                )
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await?;
    assert_eq!(plain.status, 415, "{}", plain.text);
    // The token dies with its service account.
    assert_eq!(
        admin
            .delete("/api/v1/namespaces/sa/serviceaccounts/builder")
            .await?
            .status,
        200
    );
    assert_eq!(
        builder
            .get("/apis/image.openshift.io/v1/namespaces/sa/imagestreams")
            .await?
            .status,
        401
    );
    assert_eq!(
        admin
            .post(
                "/api/v1/namespaces/sa/serviceaccounts/builder/token",
                &json!({})
            )
            .await?
            .status,
        404
    );
    Ok(())
}
