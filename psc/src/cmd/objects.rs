//! get / describe / create / apply / delete.

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use podspace_api::kinds::{self, KindInfo};
use podspace_api::model::{BuildConfig, Secret};
use serde_json::{json, Map, Value};

use super::{Reported, Session};
use crate::client::{error_code, ServerError};
use crate::manifest;
use crate::output::{self, s, Format};
use crate::Global;

/// Where `kubectl apply` keeps what it applied last, so that a field removed
/// from the file is removed from the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn kind_of(name: &str) -> Result<&'static KindInfo> {
    kinds::lookup(name).ok_or_else(|| anyhow!("the server doesn't have a resource type {name:?}"))
}

/// `is/web` or (`is`, `web`).
fn split_kind_name(
    kind: &str,
    names: &[String],
) -> Result<Vec<(&'static KindInfo, Option<String>)>> {
    if let Some((k, n)) = kind.split_once('/') {
        let mut out = vec![(kind_of(k)?, Some(n.to_string()))];
        for extra in names {
            let (k, n) = extra
                .split_once('/')
                .ok_or_else(|| anyhow!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"))?;
            out.push((kind_of(k)?, Some(n.to_string())));
        }
        return Ok(out);
    }
    let info = kind_of(kind)?;
    if names.is_empty() {
        return Ok(vec![(info, None)]);
    }
    Ok(names.iter().map(|n| (info, Some(n.clone()))).collect())
}

fn namespace_for<'a>(session: &'a Session, kind: &KindInfo) -> Result<&'a str> {
    if kind.namespaced {
        session.namespace()
    } else {
        Ok("")
    }
}

#[derive(Args)]
pub struct GetArgs {
    /// Kind (is, bc, build, dc, projects, ...) or KIND/NAME
    kind: String,
    names: Vec<String>,
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
    /// Label selector, e.g. app=web,tier!=db
    #[arg(short = 'l', long = "selector")]
    selector: Option<String>,
    /// List across all projects (cluster-admin)
    #[arg(short = 'A', long = "all-namespaces")]
    all_namespaces: bool,
}

pub async fn get(g: &Global, args: GetArgs) -> Result<()> {
    let session = Session::load(g)?;
    let targets = split_kind_name(&args.kind, &args.names)?;
    let mut items = Vec::new();
    let mut failed = false;
    let kind = targets[0].0;
    let all_ns = args.all_namespaces && kind.namespaced;
    for (kind, name) in &targets {
        match name {
            Some(name) => {
                let ns = namespace_for(&session, kind)?;
                match session.client.get(&kind.object_path(ns, name)).await {
                    Ok(v) => items.push(v),
                    Err(e) if e.downcast_ref::<ServerError>().is_some() => {
                        eprintln!("{e}");
                        failed = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                let ns = if all_ns {
                    ""
                } else {
                    namespace_for(&session, kind)?
                };
                let mut path = kind.collection_path(ns);
                if let Some(sel) = &args.selector {
                    path.push_str(&format!("?labelSelector={}", urlencode(sel)));
                }
                let list = session.client.get(&path).await?;
                items.extend(list["items"].as_array().cloned().unwrap_or_default());
            }
        }
    }
    let single = targets.len() == 1 && targets[0].1.is_some();
    match args.output {
        Some(Format::Json) | Some(Format::Yaml) => {
            let value = if single && items.len() == 1 {
                items.remove(0)
            } else {
                json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
            };
            if args.output == Some(Format::Json) {
                print!("{}", output::json(&value));
            } else {
                print!("{}", output::yaml(&value));
            }
        }
        Some(Format::Name) => {
            for item in &items {
                println!("{}/{}", kind.qualified(), s(item, "/metadata/name"));
            }
        }
        _ => {
            if items.is_empty() && !failed {
                if kind.namespaced && !all_ns {
                    eprintln!("No resources found in {} namespace.", session.namespace()?);
                } else {
                    eprintln!("No resources found");
                }
            } else if !items.is_empty() {
                print!(
                    "{}",
                    output::table(kind, &items, args.output == Some(Format::Wide), all_ns)
                );
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn describe(g: &Global, kind: &str, name: &str, show_secrets: bool) -> Result<()> {
    let session = Session::load(g)?;
    let (kind, name) = match kind.split_once('/') {
        Some((k, n)) if name.is_empty() => (kind_of(k)?, n.to_string()),
        _ => (kind_of(kind)?, name.to_string()),
    };
    if name.is_empty() {
        bail!("name the object: psc describe KIND NAME or KIND/NAME");
    }
    let ns = namespace_for(&session, kind)?;
    // `istag/IS` means IS:latest.
    let name = if kind.kind == "ImageStreamTag" && !name.contains(':') {
        format!("{name}:latest")
    } else {
        name
    };
    let obj = session.client.get(&kind.object_path(ns, &name)).await?;
    use super::describe::{self, typed};
    let text = match kind.kind {
        "ImageStream" => describe::image_stream(&typed(&obj, kind.kind)?),
        "ImageStreamTag" => describe::image_stream_tag(&obj),
        "BuildConfig" => {
            let bc = typed(&obj, kind.kind)?;
            let builds = super::builds::of_config(&session.client, ns, &name).await?;
            let builds = builds
                .iter()
                .map(|b| typed(b, "Build"))
                .collect::<Result<Vec<_>>>()?;
            let deliveries = session
                .client
                .get(&format!("{}/webhooks", kind.object_path(ns, &name)))
                .await
                .ok()
                .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            let secrets = if show_secrets {
                Some(webhook_secrets(&session, ns, &bc).await)
            } else {
                None
            };
            let hooks = describe::Hooks {
                server: &session.client.server,
                deliveries: &deliveries,
                secrets: secrets.as_deref(),
            };
            describe::build_config(&bc, &builds, &hooks)
        }
        "Build" => describe::build(&typed(&obj, kind.kind)?),
        _ => describe_text(kind, &obj),
    };
    print!("{text}");
    Ok(())
}

/// Each trigger's webhook URL secret, by its index in `spec.triggers`:
/// inline in the config, or `WebHookSecretKey` of the Secret it names
/// (which the API lets only those who may read Secrets see).
async fn webhook_secrets(
    session: &Session,
    ns: &str,
    bc: &BuildConfig,
) -> Vec<Result<String, String>> {
    let count = bc.spec.triggers().len();
    let mut out: Vec<Result<String, String>> = vec![Err("not a webhook".into()); count];
    for (i, t, field) in super::describe::webhook_triggers(bc) {
        let hook = super::describe::webhook(t, field);
        out[i] = if let Some(inline) = hook.secret.filter(|s| !s.is_empty()) {
            Ok(inline)
        } else if let Some(r) = hook.secret_reference {
            let name = r.name;
            match session
                .client
                .get(&format!("/api/v1/namespaces/{ns}/secrets/{name}"))
                .await
            {
                Ok(secret) => serde_json::from_value::<Secret>(secret)
                    .ok()
                    .and_then(|s| s.value("WebHookSecretKey"))
                    .ok_or_else(|| format!("Secret {name} has no WebHookSecretKey")),
                Err(e) => Err(format!("reading Secret {name}: {e}")),
            }
        } else {
            Err("the trigger has no secret: it accepts nothing".into())
        };
    }
    out
}

fn map_text(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n\t\t"),
        _ => "<none>".into(),
    }
}

fn describe_text(kind: &KindInfo, obj: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!("Name:\t\t{}\n", s(obj, "/metadata/name")));
    if kind.namespaced {
        out.push_str(&format!("Namespace:\t{}\n", s(obj, "/metadata/namespace")));
    }
    out.push_str(&format!(
        "Created:\t{}\n",
        output::ago(s(obj, "/metadata/creationTimestamp"))
    ));
    out.push_str(&format!(
        "Labels:\t\t{}\n",
        map_text(obj.pointer("/metadata/labels"))
    ));
    out.push_str(&format!(
        "Annotations:\t{}\n",
        map_text(obj.pointer("/metadata/annotations"))
    ));
    let mut rest: Map<String, Value> = obj.as_object().cloned().unwrap_or_default();
    for k in ["apiVersion", "kind", "metadata"] {
        rest.remove(k);
    }
    for (key, value) in rest {
        if value.is_null() || value.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        let mut title = key.clone();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push_str(&format!("{title}:\n"));
        for line in output::yaml(&value).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// File with the objects (YAML or JSON; '-' for standard input)
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    #[command(subcommand)]
    what: Option<CreateWhat>,
}

#[derive(Subcommand)]
enum CreateWhat {
    /// Create a user (cluster-admin)
    User {
        name: String,
        #[arg(long)]
        password: String,
    },
    /// Issue a token for a service account of the project and print it
    Token {
        serviceaccount: String,
        /// Lifetime in seconds (default: one year)
        #[arg(long)]
        duration: Option<i64>,
    },
}

#[derive(Args)]
pub struct FileArgs {
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
}

pub(crate) struct Resolved {
    pub kind: &'static KindInfo,
    pub ns: String,
    pub name: String,
    pub value: Value,
    pub source: String,
}

pub(crate) fn resolve(session: &Session, m: manifest::Manifest) -> Result<Resolved> {
    let api_version = s(&m.value, "/apiVersion").to_string();
    let kind_name = s(&m.value, "/kind").to_string();
    let kind = kinds::by_api_version(&api_version, &kind_name).ok_or_else(|| {
        anyhow!(
            "unable to recognize {:?}: no matches for kind {kind_name:?} in version {api_version:?}",
            m.source
        )
    })?;
    let ns = if kind.namespaced {
        match s(&m.value, "/metadata/namespace") {
            "" => session.namespace()?.to_string(),
            ns if session.explicit_namespace && ns != session.namespace()? => bail!(
                "the namespace from the provided object {ns:?} does not match the namespace {:?}. You must pass '--namespace={ns}' to perform this operation.",
                session.namespace()?
            ),
            ns => ns.to_string(),
        }
    } else {
        String::new()
    };
    let name = s(&m.value, "/metadata/name").to_string();
    Ok(Resolved {
        kind,
        ns,
        name,
        value: m.value,
        source: m.source,
    })
}

fn read_all(files: &[String]) -> Result<Vec<manifest::Manifest>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(manifest::read(f)?);
    }
    Ok(all)
}

pub async fn create(g: &Global, args: CreateArgs) -> Result<()> {
    let session = Session::load(g)?;
    match args.what {
        Some(CreateWhat::User { name, password }) => {
            let body = json!({"apiVersion": "user.openshift.io/v1", "kind": "User", "metadata": {"name": name}, "password": password});
            session
                .client
                .post("/apis/user.openshift.io/v1/users", &body)
                .await?;
            println!("user.user.openshift.io/{name} created");
            return Ok(());
        }
        Some(CreateWhat::Token {
            serviceaccount,
            duration,
        }) => {
            let ns = session.namespace()?;
            let mut body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
            if let Some(d) = duration {
                body["spec"]["expirationSeconds"] = json!(d);
            }
            let resp = session
                .client
                .post(
                    &format!("/api/v1/namespaces/{ns}/serviceaccounts/{serviceaccount}/token"),
                    &body,
                )
                .await?;
            println!("{}", s(&resp, "/status/token"));
            return Ok(());
        }
        None => {}
    }
    if args.files.is_empty() {
        bail!("must specify one of -f, or a subcommand (user, token)");
    }
    let mut failed = false;
    for m in read_all(&args.files)? {
        match create_one(&session, m, "").await? {
            Some((kind, name)) => println!("{kind}/{name} created"),
            None => failed = true,
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// Creates one object read from a file or a template, like `oc`: what
/// cannot be sent or is refused is reported on stderr (lines indented by
/// `indent`) and `None` returned, so the caller goes on with the next.
/// `Some((qualified kind, name))` when created.
pub(crate) async fn create_one(
    session: &Session,
    m: manifest::Manifest,
    indent: &str,
) -> Result<Option<(String, String)>> {
    let r = match resolve(session, m) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{indent}error: {e:#}");
            return Ok(None);
        }
    };
    match session
        .client
        .post(&r.kind.collection_path(&r.ns), &r.value)
        .await
    {
        Ok(created) => Ok(Some((
            r.kind.qualified(),
            s(&created, "/metadata/name").to_string(),
        ))),
        Err(e) => {
            report(&e, "creating", &r.source)?;
            Ok(None)
        }
    }
}

/// Prints a per-object server error and goes on with the next object.
pub(crate) fn report(e: &anyhow::Error, doing: &str, source: &str) -> Result<()> {
    match e.downcast_ref::<ServerError>() {
        Some(se) => {
            eprintln!(
                "Error from server ({:?}): error when {doing} {source:?}: {}",
                se.0.reason, se.0.message
            );
            Ok(())
        }
        None => Err(anyhow!("{e:#}")),
    }
}

/// The fields `last` set that `new` no longer has, as a merge patch of nulls.
fn removals(last: &Value, new: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(l), Some(n)) = (last.as_object(), new.as_object()) {
        for (k, lv) in l {
            match n.get(k) {
                None => {
                    out.insert(k.clone(), Value::Null);
                }
                Some(nv) if lv.is_object() && nv.is_object() => {
                    let sub = removals(lv, nv);
                    if sub.as_object().is_some_and(|m| !m.is_empty()) {
                        out.insert(k.clone(), sub);
                    }
                }
                _ => {}
            }
        }
    }
    Value::Object(out)
}

fn deep_merge(base: &mut Value, extra: &Value) {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            match b.get_mut(k) {
                Some(bv) if bv.is_object() && v.is_object() => deep_merge(bv, v),
                None => {
                    b.insert(k.clone(), v.clone());
                }
                _ => {}
            }
        }
    }
}

pub async fn apply(g: &Global, args: FileArgs) -> Result<()> {
    let session = Session::load(g)?;
    let mut failed = false;
    for m in read_all(&args.files)? {
        let mut r = match resolve(&session, m) {
            Ok(r) => r,
            Err(e) => {
                failed = true;
                eprintln!("error: {e:#}");
                continue;
            }
        };
        if r.name.is_empty() {
            failed = true;
            eprintln!(
                "error: {}: apply needs metadata.name (generateName is for create)",
                r.source
            );
            continue;
        }
        let applied = serde_json::to_string(&r.value)?;
        r.value["metadata"]["annotations"][LAST_APPLIED] = Value::String(applied);
        let path = r.kind.object_path(&r.ns, &r.name);
        let outcome = match session.client.get(&path).await {
            Ok(live) => {
                let last: Value = live
                    .pointer(&format!(
                        "/metadata/annotations/{}",
                        LAST_APPLIED.replace('/', "~1")
                    ))
                    .and_then(Value::as_str)
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(Value::Null);
                let mut patch = r.value.clone();
                deep_merge(&mut patch, &removals(&last, &r.value));
                if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
                session
                    .client
                    .merge_patch(&path, &patch)
                    .await
                    .map(|updated| {
                        let same = s(&updated, "/metadata/resourceVersion")
                            == s(&live, "/metadata/resourceVersion");
                        if same {
                            "unchanged"
                        } else {
                            "configured"
                        }
                    })
            }
            Err(e) if error_code(&e) == Some(404) => session
                .client
                .post(&r.kind.collection_path(&r.ns), &r.value)
                .await
                .map(|_| "created"),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(what) => println!("{}/{} {what}", r.kind.qualified(), r.name),
            Err(e) => {
                failed = true;
                report(&e, "applying", &r.source)?;
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Kind, or KIND/NAME
    kind: Option<String>,
    names: Vec<String>,
    /// Delete the objects named in a file
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
}

pub async fn delete(g: &Global, args: DeleteArgs) -> Result<()> {
    let session = Session::load(g)?;
    let mut targets: Vec<(&'static KindInfo, String, String)> = Vec::new();
    for m in read_all(&args.files)? {
        let r = resolve(&session, m)?;
        targets.push((r.kind, r.ns, r.name));
    }
    if let Some(kind) = &args.kind {
        for (k, name) in split_kind_name(kind, &args.names)? {
            let name = name
                .ok_or_else(|| anyhow!("resource(s) were provided, but no name was specified"))?;
            let ns = namespace_for(&session, k)?.to_string();
            targets.push((k, ns, name));
        }
    }
    if targets.is_empty() {
        bail!("you must provide one or more resources by argument or filename");
    }
    let mut failed = false;
    for (kind, ns, name) in targets {
        match session.client.delete(&kind.object_path(&ns, &name)).await {
            Ok(_) => println!("{} {name:?} deleted", kind.qualified()),
            Err(e) if e.downcast_ref::<ServerError>().is_some() => {
                eprintln!("{e}");
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_removes_fields_dropped_from_the_file() {
        let last = json!({"spec": {"a": 1, "b": {"c": 2, "d": 3}}, "x": 1});
        let new = json!({"spec": {"a": 1, "b": {"c": 2}}});
        assert_eq!(
            removals(&last, &new),
            json!({"spec": {"b": {"d": null}}, "x": null})
        );
        let mut patch = new.clone();
        deep_merge(&mut patch, &removals(&last, &new));
        assert_eq!(
            patch,
            json!({"spec": {"a": 1, "b": {"c": 2, "d": null}}, "x": null})
        );
    }
}
