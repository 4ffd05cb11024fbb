//! `psc describe` for image streams, image stream tags (in the shape cli.md
//! gives), build configs and builds: the `oc describe` layouts.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use std::collections::BTreeMap;

use podspace_api::model::{
    Build, BuildConfig, BuildSource, BuildStrategy, BuildTriggerPolicy, ImageStream,
    ObjectReference,
};
use podspace_api::ObjectMeta;
use podspace_webhooks::trigger::WebHook;
use serde_json::Value;

use crate::output::{ago, duration, s};

/// An object as the server sent it, read as its kind's type.
pub fn typed<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(v.clone())
        .map_err(|e| anyhow::anyhow!("the server sent a {what} this psc cannot read: {e}"))
}

fn meta_lines(out: &mut String, meta: &ObjectMeta) {
    let map = |m: &BTreeMap<String, String>| match m.is_empty() {
        false => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n\t\t\t"),
        true => "<none>".into(),
    };
    out.push_str(&format!("Labels:\t\t\t{}\n", map(&meta.labels)));
    out.push_str(&format!("Annotations:\t\t{}\n", map(&meta.annotations)));
}

/// `latest` first, then by version-aware comparison of the tag names.
fn tag_order(a: &str, b: &str) -> Ordering {
    match (a == "latest", b == "latest") {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let parts = |s: &str| {
        s.split(['.', '-', '_'])
            .map(|p| p.parse::<u64>().map_err(|_| p.to_string()))
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x, y) {
            (Ok(x), Ok(y)) => y.cmp(x),
            (Err(x), Err(y)) => x.cmp(y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

fn alias_of(is: &ImageStream, tag: &str) -> Option<String> {
    let from = is.spec.tag(tag)?.from.as_ref()?;
    let from_ns = from.namespace.as_deref().unwrap_or_default();
    if from.kind != "ImageStreamTag" || !(from_ns.is_empty() || from_ns == is.metadata.namespace) {
        return None;
    }
    let name = match from.name.split_once(':') {
        Some((stream, tag)) if stream == is.metadata.name => tag,
        Some(_) => return None,
        None => from.name.as_str(),
    };
    Some(name.to_string())
}

pub fn image_stream(is: &ImageStream) -> String {
    let mut out = String::new();
    let meta = &is.metadata;
    out.push_str(&format!("Name:\t\t\t{}\n", meta.name));
    out.push_str(&format!("Namespace:\t\t{}\n", meta.namespace));
    out.push_str(&format!("Created:\t\t{}\n", ago(&meta.creation_timestamp)));
    meta_lines(&mut out, meta);
    out.push_str(&format!(
        "Image Repository:\t{}\n",
        is.status.docker_image_repository
    ));
    let local = is.spec.lookup_policy.as_ref().is_some_and(|p| p.local);
    out.push_str(&format!("Image Lookup:\t\tlocal={local}\n"));
    let status_tags = is.status.tags.as_deref().unwrap_or_default();
    let mut names: BTreeSet<String> = status_tags.iter().map(|t| t.tag.clone()).collect();
    for t in is.spec.tags.iter().flatten() {
        names.insert(t.name.clone());
    }
    let images: BTreeSet<&str> = is
        .status
        .events()
        .map(|e| e.image.as_str())
        .filter(|i| !i.is_empty())
        .collect();
    out.push_str(&format!("Unique Images:\t\t{}\n", images.len()));
    out.push_str(&format!("Tags:\t\t\t{}\n\n", names.len()));
    if names.is_empty() {
        out.push_str("Tags: <none>\n");
        return out;
    }
    let mut order: Vec<String> = names.iter().cloned().collect();
    order.sort_by(|a, b| tag_order(a, b));
    // A tag that only tracks another of this stream is shown in its header.
    let folded: Vec<(String, String)> = order
        .iter()
        .filter_map(|t| alias_of(is, t).map(|src| (t.clone(), src)))
        .collect();
    for tag in &order {
        if folded.iter().any(|(t, _)| t == tag) {
            continue;
        }
        let aliases: Vec<&str> = folded
            .iter()
            .filter(|(_, src)| src == tag)
            .map(|(t, _)| t.as_str())
            .collect();
        if aliases.is_empty() {
            out.push_str(&format!("{tag}\n"));
        } else {
            out.push_str(&format!("{tag} ({})\n", aliases.join(", ")));
        }
        match is.spec.tag(tag) {
            None => out.push_str("  no spec tag\n"),
            Some(t) => {
                let from = t.from.clone().unwrap_or_default();
                let policy = t.import_policy.clone().unwrap_or_default();
                let registry = if from.kind == "DockerImage" {
                    "registry "
                } else {
                    ""
                };
                let line = match () {
                    _ if from.name.is_empty() => "tag without source image".to_string(),
                    _ if t.reference == Some(true) => {
                        format!("reference to {registry}{}", from.name)
                    }
                    _ if policy.scheduled() => {
                        format!("updates automatically from {registry}{}", from.name)
                    }
                    _ => format!("tagged from {}", from.name),
                };
                out.push_str(&format!("  {line}\n"));
                if policy.insecure() {
                    out.push_str("    will use insecure HTTPS or HTTP connections\n");
                }
                if t.reference_policy
                    .as_ref()
                    .is_some_and(|p| p.kind == "Local")
                {
                    out.push_str("    prefer registry pullthrough when referencing this tag\n");
                }
            }
        }
        let entry = is.status.tag(tag);
        for c in entry
            .and_then(|e| e.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            if c.kind == "ImportSuccess" && c.status == "False" {
                out.push_str(&format!(
                    "  ! error: Import failed ({}): {}\n      {}\n",
                    c.reason,
                    c.message,
                    ago(c.last_transition_time.as_deref().unwrap_or_default())
                ));
            }
        }
        out.push('\n');
        for (i, item) in entry.iter().flat_map(|e| &e.items).enumerate() {
            let mark = if i == 0 { "*" } else { " " };
            let reference = &item.docker_image_reference;
            if reference.contains('@') || item.image.is_empty() {
                out.push_str(&format!("  {mark} {reference}\n"));
            } else {
                out.push_str(&format!("  {mark} {reference} ({})\n", item.image));
            }
            out.push_str(&format!("      {}\n", ago(&item.created)));
        }
        out.push('\n');
    }
    out
}

fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.3}GB", b / 1e9),
        n if n >= 1 << 20 => format!("{:.3}MB", b / 1e6),
        n if n >= 1 << 10 => format!("{:.3}kB", b / 1e3),
        _ => format!("{bytes}B"),
    }
}

fn list(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr).and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => "<none>".into(),
    }
}

pub fn image_stream_tag(ist: &Value) -> String {
    let image = &ist["image"];
    let meta = &image["dockerImageMetadata"];
    let mut out = String::new();
    out.push_str(&format!("Image Name:\t{}\n", s(ist, "/metadata/name")));
    out.push_str(&format!(
        "Docker Image:\t{}\n",
        s(image, "/dockerImageReference")
    ));
    out.push_str(&format!("Name:\t\t{}\n", s(image, "/metadata/name")));
    out.push_str(&format!(
        "Created:\t{}\n",
        ago(s(ist, "/metadata/creationTimestamp"))
    ));
    let layers = image
        .get("dockerImageLayers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let size = meta
        .get("Size")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| layers.iter().filter_map(|l| l["size"].as_i64()).sum());
    out.push_str(&format!(
        "Image Size:\t{} in {} layers\n",
        human_size(size),
        layers.len()
    ));
    out.push_str("Layers:\t\t");
    for (i, l) in layers.iter().enumerate() {
        if i > 0 {
            out.push_str("\t\t");
        }
        out.push_str(&format!(
            "{}\t{}\n",
            human_size(l["size"].as_i64().unwrap_or(0)),
            s(l, "/name")
        ));
    }
    if layers.is_empty() {
        out.push('\n');
    }
    let created = s(meta, "/Created");
    out.push_str(&format!(
        "Image Created:\t{}\n",
        if created.is_empty() {
            "<unknown>".into()
        } else {
            ago(created)
        }
    ));
    out.push_str(&format!("Author:\t\t{}\n", or_none(s(meta, "/Author"))));
    out.push_str(&format!("Arch:\t\t{}\n", or_none(s(meta, "/Architecture"))));
    out.push_str(&format!(
        "Entrypoint:\t{}\n",
        list(meta, "/Config/Entrypoint")
    ));
    out.push_str(&format!("Command:\t{}\n", list(meta, "/Config/Cmd")));
    out.push_str(&format!(
        "Working Dir:\t{}\n",
        or_none(s(meta, "/Config/WorkingDir"))
    ));
    out.push_str(&format!("User:\t\t{}\n", or_none(s(meta, "/Config/User"))));
    let ports = meta
        .pointer("/Config/ExposedPorts")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    out.push_str(&format!("Exposes Ports:\t{}\n", or_none(&ports)));
    let labels = meta
        .pointer("/Config/Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n\t\t")
        })
        .unwrap_or_default();
    out.push_str(&format!("Docker Labels:\t{}\n", or_none(&labels)));
    out.push_str(&format!(
        "Environment:\t{}\n",
        match meta.pointer("/Config/Env").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n\t\t"),
            _ => "<none>".into(),
        }
    ));
    let volumes = meta
        .pointer("/Config/Volumes")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    out.push_str(&format!("Volumes:\t{}\n", or_none(&volumes)));
    out
}

/// `Label:` and the value, aligned at the third tab stop as the rest.
fn line(out: &mut String, label: &str, value: &str) {
    let label = format!("{label}:");
    let tabs = 24usize.saturating_sub(label.len()).div_ceil(8);
    out.push_str(&label);
    out.push_str(&"\t".repeat(tabs.max(1)));
    out.push_str(&value.replace('\n', "\n\t\t\t"));
    out.push('\n');
}

fn or_none(v: &str) -> &str {
    if v.is_empty() {
        "<none>"
    } else {
        v
    }
}

fn parse_time(ts: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `Mon, 06 Mar 2017 14:37:11 UTC`, as oc prints a start time.
fn when(ts: &str) -> String {
    parse_time(ts).map_or_else(
        || or_none(ts).to_string(),
        |t| t.format("%a, %d %b %Y %H:%M:%S UTC").to_string(),
    )
}

fn seconds_since(ts: &str) -> Option<i64> {
    parse_time(ts).map(|t| (chrono::Utc::now() - t).num_seconds().max(0))
}

/// `1m2s`, `running for 5s`, `waiting for 3s`.
fn duration_text(b: &Build) -> String {
    let st = &b.status;
    if let Some(ns) = st.duration.filter(|d| *d > 0) {
        return duration((ns + 500_000_000) / 1_000_000_000);
    }
    let start = st.start_timestamp.as_deref().unwrap_or_default();
    match st.phase() {
        "New" | "Pending" => seconds_since(&b.metadata.creation_timestamp)
            .map(|t| format!("waiting for {}", duration(t)))
            .unwrap_or_default(),
        "Running" => seconds_since(start)
            .map(|t| format!("running for {}", duration(t)))
            .unwrap_or_default(),
        _ => match (
            parse_time(start),
            parse_time(st.completion_timestamp.as_deref().unwrap_or_default()),
        ) {
            (Some(a), Some(z)) => duration((z - a).num_seconds().max(0)),
            _ => String::new(),
        },
    }
}

/// `ImageStreamTag project/name:tag`, for `from` and `output.to`.
fn object_ref(r: Option<&ObjectReference>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    match r.namespace.as_deref().unwrap_or_default() {
        "" => format!("{} {}", r.kind, r.name),
        ns => format!("{} {ns}/{}", r.kind, r.name),
    }
}

fn name_meta(out: &mut String, meta: &ObjectMeta) {
    line(out, "Name", &meta.name);
    line(out, "Namespace", &meta.namespace);
    line(out, "Created", &ago(&meta.creation_timestamp));
    meta_lines(out, meta);
}

/// The strategy's type, from `type` or from which strategy is set.
fn strategy_type(strategy: &BuildStrategy) -> &str {
    match () {
        _ if !strategy.kind.is_empty() => &strategy.kind,
        _ if strategy.docker_strategy.is_some() => "Docker",
        _ if strategy.source_strategy.is_some() => "Source",
        _ if strategy.custom_strategy.is_some() => "Custom",
        _ => "",
    }
}

/// Strategy, source and base image of a BuildConfig's or a Build's spec.
fn source_lines(out: &mut String, source: Option<&BuildSource>, strategy: &BuildStrategy) {
    line(out, "Strategy", or_none(strategy_type(strategy)));
    let src = source.cloned().unwrap_or_default();
    if let Some(git) = &src.git {
        line(out, "URL", &git.uri);
        if let Some(r) = git.reference.as_deref().filter(|r| !r.is_empty()) {
            line(out, "Ref", r);
        }
    }
    if let Some(dir) = src.context_dir.as_deref().filter(|d| !d.is_empty()) {
        line(out, "ContextDir", dir);
    }
    if let Some(binary) = &src.binary {
        match binary.as_file.as_deref().unwrap_or_default() {
            "" => line(out, "Binary", "provided on build"),
            f => line(out, "Binary", &format!("provided as file {f:?} on build")),
        }
    }
    let from = object_ref(strategy.from());
    if !from.is_empty() {
        line(out, "From Image", &from);
    }
    if let Some(source) = &strategy.source_strategy {
        // Where assemble and run come from: an explicit URL, else the
        // source's .s2i/bin, else the builder image's label.
        let scripts = match source.scripts.as_deref().unwrap_or_default() {
            "" => "the source's .s2i/bin, else the builder image (io.openshift.s2i.scripts-url)"
                .to_string(),
            url => display_url(url),
        };
        line(out, "Scripts", &scripts);
        let incremental = source.incremental == Some(true);
        line(
            out,
            "Incremental Build",
            if incremental { "yes" } else { "no" },
        );
    }
}

/// A URL without the credentials it may carry.
fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn output_line(out: &mut String, to: Option<&ObjectReference>) {
    line(out, "Output to", or_none(&object_ref(to)));
}

/// Creation time the way Go prints one: `2024-01-01 10:00:00 +0000 UTC`.
fn creation_time(ts: &str) -> String {
    parse_time(ts).map_or_else(
        || ts.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
    )
}

/// `psc describe bc NAME`; `builds` newest first.
/// Where a config's webhooks are reached, and what they received.
pub struct Hooks<'a> {
    /// The API's URL as this client reaches it.
    pub server: &'a str,
    /// `GET buildconfigs/NAME/webhooks` items, newest first.
    pub deliveries: &'a [Value],
    /// With `--show-secrets`: each trigger's URL secret by its index in
    /// `spec.triggers`, or why it could not be read.
    pub secrets: Option<&'a [Result<String, String>]>,
}

/// The webhook triggers of `bc`: index in `spec.triggers`, the trigger, and
/// its field (also the URL's last segment).
pub fn webhook_triggers(bc: &BuildConfig) -> Vec<(usize, &BuildTriggerPolicy, &'static str)> {
    bc.spec
        .triggers()
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let field = match t.kind.as_str() {
                "GitHub" => "github",
                "GitLab" => "gitlab",
                "Bitbucket" => "bitbucket",
                "Generic" => "generic",
                _ => return None,
            };
            Some((i, t, field))
        })
        .collect()
}

/// A webhook trigger's settings (its `github`, `generic`… field).
pub fn webhook(t: &BuildTriggerPolicy, field: &str) -> WebHook {
    t.extra
        .get(field)
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default()
}

/// Each webhook trigger's URL (the secret as `<secret>`), a warning when
/// the config has no ref (a push is then matched against `master`), and
/// the recent deliveries.
fn webhook_lines(out: &mut String, bc: &BuildConfig, hooks: &Hooks<'_>) {
    let (ns, name) = (&bc.metadata.namespace, &bc.metadata.name);
    let triggers = webhook_triggers(bc);
    for (i, t, field) in &triggers {
        let (i, field) = (*i, *field);
        out.push_str(&format!("Webhook {}:\n", t.kind));
        let shown = hooks.secrets.and_then(|all| all.get(i));
        let secret = match shown {
            Some(Ok(secret)) => secret.as_str(),
            _ => "<secret>",
        };
        out.push_str(&format!(
            "\tURL:\t{}/apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{name}/webhooks/{secret}/{field}\n",
            hooks.server.trim_end_matches('/')
        ));
        if let Some(Err(why)) = shown {
            out.push_str(&format!("\tSecret:\tnot shown: {why}\n"));
        }
        let hook = webhook(t, field);
        if let Some(r) = &hook.secret_reference {
            out.push_str(&format!(
                "\tSecret:\tfrom Secret {} (key WebHookSecretKey)\n",
                r.name
            ));
        }
        if let Some(r) = &hook.signature_secret_ref {
            out.push_str(&format!(
                "\tSignature:\trequired, key from Secret {}\n",
                r.name
            ));
        }
        if field == "generic" {
            out.push_str(&format!("\tAllowEnv:\t{}\n", hook.allow_env));
        }
    }
    if triggers.is_empty() {
        return;
    }
    let git = bc.spec.source.as_ref().and_then(|s| s.git.as_ref());
    if git.is_some_and(|g| g.reference.as_deref().unwrap_or_default().is_empty()) {
        out.push_str(
            "Warning:\t\tthe source names no ref: webhooks build pushes to 'master' only; set spec.source.git.ref\n",
        );
    }
    if hooks.deliveries.is_empty() {
        line(out, "Webhook Deliveries", "<none>");
        return;
    }
    out.push_str("Webhook Deliveries:\n");
    for d in hooks.deliveries {
        out.push_str(&format!(
            "\t{}\t{}\t{}\t{}\n",
            creation_time(s(d, "/received")),
            s(d, "/id"),
            d.get("code").and_then(Value::as_i64).unwrap_or_default(),
            s(d, "/outcome")
        ));
    }
}

pub fn build_config(bc: &BuildConfig, builds: &[Build], hooks: &Hooks<'_>) -> String {
    let mut out = String::new();
    name_meta(&mut out, &bc.metadata);
    match bc.status.last_version {
        Some(v) if v > 0 => line(&mut out, "Latest Version", &v.to_string()),
        _ => line(&mut out, "Latest Version", "Never built"),
    }
    out.push('\n');
    let strategy = bc.spec.strategy.clone().unwrap_or_default();
    source_lines(&mut out, bc.spec.source.as_ref(), &strategy);
    output_line(
        &mut out,
        bc.spec.output.as_ref().and_then(|o| o.to.as_ref()),
    );
    out.push('\n');
    line(&mut out, "Build Run Policy", bc.spec.run_policy());
    let triggers: Vec<&str> = bc
        .spec
        .triggers()
        .iter()
        .map(|t| match t.kind.as_str() {
            "ConfigChange" => "Config",
            other => other,
        })
        .collect();
    line(&mut out, "Triggered by", or_none(&triggers.join(", ")));
    webhook_lines(&mut out, bc, hooks);
    if builds.is_empty() {
        return out;
    }
    out.push('\n');
    let mut rows = vec![[
        "Build".to_string(),
        "Status".to_string(),
        "Duration".to_string(),
        "Creation Time".to_string(),
    ]];
    rows.extend(builds.iter().map(|b| {
        [
            b.metadata.name.clone(),
            b.status.phase.to_lowercase(),
            duration_text(b),
            creation_time(&b.metadata.creation_timestamp),
        ]
    }));
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    for r in &rows {
        let text = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `psc describe build NAME`.
pub fn build(b: &Build) -> String {
    let mut out = String::new();
    let st = &b.status;
    name_meta(&mut out, &b.metadata);
    out.push('\n');
    let status = match st.reason.as_str() {
        "" => st.phase.clone(),
        reason => format!("{} ({reason})", st.phase),
    };
    line(&mut out, "Status", &status);
    if !st.message.is_empty() {
        line(&mut out, "Message", &st.message);
    }
    line(
        &mut out,
        "Started",
        &when(st.start_timestamp.as_deref().unwrap_or_default()),
    );
    line(&mut out, "Duration", or_none(&duration_text(b)));
    out.push('\n');
    let config = match st.config.as_ref().map(|c| c.name.as_str()) {
        Some(c) if !c.is_empty() => c,
        _ => b
            .metadata
            .labels
            .get("openshift.io/build-config.name")
            .map(String::as_str)
            .unwrap_or_default(),
    };
    line(&mut out, "Build Config", or_none(config));
    if let Some(pod) = b.metadata.annotations.get("openshift.io/build.pod-name") {
        line(&mut out, "Build Pod", pod);
    }
    out.push('\n');
    source_lines(&mut out, b.spec.source.as_ref(), &b.spec.strategy);
    let revision = b.spec.revision.as_ref().and_then(|r| r.git.as_ref());
    if let Some(git) = revision.filter(|g| !g.commit.is_empty()) {
        match git.message.trim() {
            "" => line(&mut out, "Commit", &git.commit),
            m => line(&mut out, "Commit", &format!("{} ({m})", git.commit)),
        }
        let who = |u: &Option<podspace_api::model::build::SourceControlUser>| {
            u.as_ref().map(|u| u.name.clone()).unwrap_or_default()
        };
        let (author, committer) = (who(&git.author), who(&git.committer));
        if !author.is_empty() || !committer.is_empty() {
            line(
                &mut out,
                "Author/Committer",
                &format!("{author} / {committer}"),
            );
        }
    }
    output_line(&mut out, b.spec.output_to());
    if let Some(digest) = st.image_digest() {
        line(&mut out, "Digest", digest);
    }
    out.push('\n');
    let causes: Vec<&str> = b
        .spec
        .triggered_by
        .iter()
        .flatten()
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    line(&mut out, "Build trigger cause", or_none(&causes.join("\n")));
    if let Some(snippet) = st.log_snippet.as_deref().filter(|s| !s.is_empty()) {
        out.push('\n');
        line(&mut out, "Log Tail", snippet.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_urls_lose_their_credentials() {
        assert_eq!(
            display_url("https://u:pw@git.example.com/s2i/bin"),
            "https://git.example.com/s2i/bin"
        );
        assert_eq!(
            display_url("image:///usr/libexec/s2i"),
            "image:///usr/libexec/s2i"
        );
        assert_eq!(display_url("https://host/a@b/bin"), "https://host/a@b/bin");
    }

    #[test]
    fn build_layout() {
        let b = serde_json::json!({
            "metadata": {"name": "shop-2", "namespace": "p", "creationTimestamp": "2024-01-01T10:00:00Z",
                "labels": {"openshift.io/build-config.name": "shop"}},
            "spec": {"source": {"type": "Git", "git": {"uri": "https://x/shop", "ref": "main"}},
                "strategy": {"type": "Docker", "dockerStrategy": {"from": {"kind": "ImageStreamTag", "name": "base:1", "namespace": "lib"}}},
                "output": {"to": {"kind": "ImageStreamTag", "name": "shop:latest"}},
                "revision": {"git": {"commit": "abc", "message": "Fix", "author": {"name": "Ann"}, "committer": {"name": "Cid"}}},
                "triggeredBy": [{"message": "Manually triggered"}]},
            "status": {"phase": "Failed", "reason": "DockerBuildFailed", "duration": 5_000_000_000i64,
                "startTimestamp": "2024-01-01T10:00:01Z", "logSnippet": "a\nb", "output": {"to": {"imageDigest": "sha256:d"}}}
        });
        let b: Build = serde_json::from_value(b).unwrap();
        let text = build(&b);
        for want in [
            "Status:\t\t\tFailed (DockerBuildFailed)\n",
            "Started:\t\tMon, 01 Jan 2024 10:00:01 UTC\n",
            "Duration:\t\t5s\n",
            "Build Config:\t\tshop\n",
            "From Image:\t\tImageStreamTag lib/base:1\n",
            "Commit:\t\t\tabc (Fix)\nAuthor/Committer:\tAnn / Cid\n",
            "Output to:\t\tImageStreamTag shop:latest\nDigest:\t\t\tsha256:d\n",
            "Build trigger cause:\tManually triggered\n",
            "Log Tail:\t\ta\n\t\t\tb\n",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let bc = serde_json::json!({
            "metadata": {"name": "shop", "namespace": "p"},
            "spec": {"source": {"binary": {}}, "strategy": {"dockerStrategy": {}},
                "triggers": [{"type": "ConfigChange"}, {"type": "ImageChange"}]},
            "status": {"lastVersion": 2}
        });
        let bc: BuildConfig = serde_json::from_value(bc).unwrap();
        let text = build_config(
            &bc,
            &[b],
            &Hooks {
                server: "https://api",
                deliveries: &[],
                secrets: None,
            },
        );
        assert!(text.contains("Latest Version:\t\t2\n"), "{text}");
        assert!(text.contains("Binary:\t\t\tprovided on build\n"), "{text}");
        assert!(
            text.contains("Triggered by:\t\tConfig, ImageChange\n"),
            "{text}"
        );
        assert!(
            text.contains("Build   Status  Duration  Creation Time\nshop-2  failed  5s        2024-01-01 10:00:00 +0000 UTC\n"),
            "{text}"
        );
    }

    #[test]
    fn tags_sort_latest_first_then_by_version() {
        let mut tags = vec!["2.7", "3.10", "latest", "3.6", "beta"];
        tags.sort_by(|a, b| tag_order(a, b));
        assert_eq!(tags, ["latest", "3.10", "3.6", "2.7", "beta"]);
    }

    #[test]
    fn aliases_fold_into_their_source() {
        let is = serde_json::json!({
            "metadata": {"name": "python", "namespace": "p"},
            "spec": {"tags": [
                {"name": "3.6", "from": {"kind": "DockerImage", "name": "docker.io/centos/python-36-centos7:latest"}, "importPolicy": {"scheduled": true}, "referencePolicy": {"type": "Local"}},
                {"name": "latest", "from": {"kind": "ImageStreamTag", "name": "3.6"}}
            ]},
            "status": {"dockerImageRepository": "r/p/python", "tags": [
                {"tag": "3.6", "items": [{"created": "2020-01-01T00:00:00Z", "dockerImageReference": "docker.io/x@sha256:bb", "image": "sha256:bb"}, {"created": "2019-01-01T00:00:00Z", "dockerImageReference": "docker.io/x@sha256:aa", "image": "sha256:aa"}]},
                {"tag": "latest", "items": [{"created": "2020-01-01T00:00:00Z", "dockerImageReference": "docker.io/x@sha256:bb", "image": "sha256:bb"}]}
            ]}
        });
        let is: ImageStream = serde_json::from_value(is).unwrap();
        let text = image_stream(&is);
        assert!(text.contains("Unique Images:\t\t2"), "{text}");
        assert!(text.contains("3.6 (latest)\n  updates automatically from registry docker.io/centos/python-36-centos7:latest\n    prefer registry pullthrough when referencing this tag"), "{text}");
        assert!(text.contains("  * docker.io/x@sha256:bb\n"), "{text}");
        assert!(!text.contains("\nlatest\n"), "{text}");
    }
}
