//! `psc describe is/NAME` and `psc describe istag/IS[:TAG]` in the shape
//! cli.md gives (the `oc describe` layout).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::output::{ago, s};

fn meta_lines(out: &mut String, obj: &Value) {
    let map = |ptr: &str| match obj.pointer(ptr).and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n\t\t\t"),
        _ => "<none>".into(),
    };
    out.push_str(&format!("Labels:\t\t\t{}\n", map("/metadata/labels")));
    out.push_str(&format!(
        "Annotations:\t\t{}\n",
        map("/metadata/annotations")
    ));
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

fn spec_tag<'a>(is: &'a Value, tag: &str) -> Option<&'a Value> {
    is.pointer("/spec/tags")?
        .as_array()?
        .iter()
        .find(|t| s(t, "/name") == tag)
}

fn alias_of(is: &Value, tag: &str) -> Option<String> {
    let t = spec_tag(is, tag)?;
    let from_ns = s(t, "/from/namespace");
    if s(t, "/from/kind") != "ImageStreamTag"
        || !(from_ns.is_empty() || from_ns == s(is, "/metadata/namespace"))
    {
        return None;
    }
    let name = s(t, "/from/name");
    let name = match name.split_once(':') {
        Some((stream, tag)) if stream == s(is, "/metadata/name") => tag,
        Some(_) => return None,
        None => name,
    };
    Some(name.to_string())
}

pub fn image_stream(is: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!("Name:\t\t\t{}\n", s(is, "/metadata/name")));
    out.push_str(&format!("Namespace:\t\t{}\n", s(is, "/metadata/namespace")));
    out.push_str(&format!(
        "Created:\t\t{}\n",
        ago(s(is, "/metadata/creationTimestamp"))
    ));
    meta_lines(&mut out, is);
    out.push_str(&format!(
        "Image Repository:\t{}\n",
        s(is, "/status/dockerImageRepository")
    ));
    let local = is
        .pointer("/spec/lookupPolicy/local")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    out.push_str(&format!("Image Lookup:\t\tlocal={local}\n"));
    let status_tags = is
        .pointer("/status/tags")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut names: BTreeSet<String> = status_tags
        .iter()
        .map(|t| s(t, "/tag").to_string())
        .collect();
    for t in is
        .pointer("/spec/tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        names.insert(s(t, "/name").to_string());
    }
    let images: BTreeSet<String> = status_tags
        .iter()
        .flat_map(|t| t["items"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| {
            i.get("image")
                .and_then(Value::as_str)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
        })
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
        match spec_tag(is, tag) {
            None => out.push_str("  no spec tag\n"),
            Some(t) => {
                let from = s(t, "/from/name");
                let kind = s(t, "/from/kind");
                let reference = t.get("reference").and_then(Value::as_bool).unwrap_or(false);
                let scheduled = t
                    .pointer("/importPolicy/scheduled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let registry = if kind == "DockerImage" {
                    "registry "
                } else {
                    ""
                };
                let line = match () {
                    _ if from.is_empty() => "tag without source image".to_string(),
                    _ if reference => format!("reference to {registry}{from}"),
                    _ if scheduled => format!("updates automatically from {registry}{from}"),
                    _ => format!("tagged from {from}"),
                };
                out.push_str(&format!("  {line}\n"));
                if t.pointer("/importPolicy/insecure").and_then(Value::as_bool) == Some(true) {
                    out.push_str("    will use insecure HTTPS or HTTP connections\n");
                }
                if s(t, "/referencePolicy/type") == "Local" {
                    out.push_str("    prefer registry pullthrough when referencing this tag\n");
                }
            }
        }
        let entry = status_tags.iter().find(|t| s(t, "/tag") == tag);
        for c in entry
            .and_then(|e| e["conditions"].as_array())
            .into_iter()
            .flatten()
        {
            if s(c, "/type") == "ImportSuccess" && s(c, "/status") == "False" {
                out.push_str(&format!(
                    "  ! error: Import failed ({}): {}\n      {}\n",
                    s(c, "/reason"),
                    s(c, "/message"),
                    ago(s(c, "/lastTransitionTime"))
                ));
            }
        }
        out.push('\n');
        let items = entry
            .and_then(|t| t["items"].as_array().cloned())
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let mark = if i == 0 { "*" } else { " " };
            let reference = s(item, "/dockerImageReference");
            let image = s(item, "/image");
            if reference.contains('@') || image.is_empty() {
                out.push_str(&format!("  {mark} {reference}\n"));
            } else {
                out.push_str(&format!("  {mark} {reference} ({image})\n"));
            }
            out.push_str(&format!("      {}\n", ago(s(item, "/created"))));
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
    let or_none = |v: &str| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.to_string()
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = image_stream(&is);
        assert!(text.contains("Unique Images:\t\t2"), "{text}");
        assert!(text.contains("3.6 (latest)\n  updates automatically from registry docker.io/centos/python-36-centos7:latest\n    prefer registry pullthrough when referencing this tag"), "{text}");
        assert!(text.contains("  * docker.io/x@sha256:bb\n"), "{text}");
        assert!(!text.contains("\nlatest\n"), "{text}");
    }
}
