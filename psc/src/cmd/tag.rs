//! `psc tag SOURCE DEST...` and `psc tag -d DEST...`: spec tags written
//! through the ImageStreamTag resource, resolved as imagestreams.md §10 says.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Value};

use super::Session;
use crate::Global;

#[derive(Args)]
pub struct TagArgs {
    /// SOURCE DEST... (or DEST... with -d)
    #[arg(required = true)]
    refs: Vec<String>,
    /// Where SOURCE is: docker, istag/imagestreamtag, isimage/imagestreamimage
    #[arg(long)]
    source: Option<String>,
    /// Track SOURCE: DEST moves whenever SOURCE moves (same image stream)
    #[arg(long)]
    alias: bool,
    /// Do not import: the tag points at SOURCE as it is written
    #[arg(long)]
    reference: bool,
    /// Re-import the external image periodically
    #[arg(long)]
    scheduled: bool,
    /// Allow HTTP or unverified HTTPS for the external registry
    #[arg(long)]
    insecure: bool,
    /// source (pull from where the image lives) or local (through our registry)
    #[arg(long, value_parser = ["source", "local"])]
    reference_policy: Option<String>,
    /// Delete the tags named
    #[arg(short = 'd', long)]
    delete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Docker,
    Tag,
    Image,
}

/// `[ns/]is:tag` → (ns, is, tag).
fn parse_dest(s: &str, default_ns: &str) -> Result<(String, String, String)> {
    let (ns, rest) = match s.split_once('/') {
        Some((ns, rest)) if !rest.contains('/') => (ns.to_string(), rest),
        Some(_) => bail!("{s:?} is not a valid image stream tag: use [project/]stream:tag"),
        None => (default_ns.to_string(), s),
    };
    let (is, tag) = rest.split_once(':').unwrap_or((rest, "latest"));
    if is.is_empty() || tag.is_empty() || is.contains('@') {
        bail!("{s:?} is not a valid image stream tag: use [project/]stream:tag");
    }
    Ok((ns, is.to_string(), tag.to_string()))
}

fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn source_kind(args: &TagArgs, src: &str) -> Result<Source> {
    Ok(match args.source.as_deref() {
        Some("docker") => Source::Docker,
        Some("istag" | "imagestreamtag") => Source::Tag,
        Some("isimage" | "imagestreamimage") => Source::Image,
        Some(other) => bail!("--source must be docker, istag or isimage, not {other:?}"),
        None => {
            let first = src.split('/').next().unwrap_or_default();
            if src.contains('/')
                && looks_like_registry(first)
                && src.split('/').count() > 1
                && !src.starts_with(&format!("{first}:"))
            {
                Source::Docker
            } else if src.contains('@') {
                Source::Image
            } else if src.contains(':') {
                Source::Tag
            } else {
                Source::Docker
            }
        }
    })
}

fn shown(ns: &str, current: &str, rest: &str) -> String {
    if ns == current {
        rest.to_string()
    } else {
        format!("{ns}/{rest}")
    }
}

pub async fn run(g: &Global, args: TagArgs) -> Result<()> {
    let session = Session::load(g)?;
    let current = session.namespace()?.to_string();
    if args.delete {
        if args.alias {
            bail!("--alias and --delete may not be both specified");
        }
        for d in &args.refs {
            let (ns, is, tag) = parse_dest(d, &current)?;
            session
                .client
                .delete(&format!(
                    "/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{is}:{tag}"
                ))
                .await?;
            println!("Deleted tag {ns}/{is}:{tag}.");
        }
        return Ok(());
    }
    let (src, dests) = args
        .refs
        .split_first()
        .ok_or_else(|| anyhow!("a SOURCE and at least one DEST are required"))?;
    if dests.is_empty() {
        bail!("a SOURCE and at least one DEST are required");
    }
    let kind = source_kind(&args, src)?;
    if kind != Source::Docker && (args.scheduled || args.insecure) {
        bail!("only container images can have importing flags set");
    }
    // What every DEST will hold.
    let (from, said) = match kind {
        Source::Docker => {
            let from = json!({"kind": "DockerImage", "name": src});
            let said = if args.scheduled {
                format!("import {src} periodically")
            } else {
                src.to_string()
            };
            (from, said)
        }
        Source::Image => {
            let (ns, rest) = match src.split_once('/') {
                Some((ns, rest)) => (ns.to_string(), rest.to_string()),
                None => (current.clone(), src.clone()),
            };
            (
                json!({"kind": "ImageStreamImage", "name": rest, "namespace": ns}),
                rest,
            )
        }
        Source::Tag => {
            let (ns, is, tag) = parse_dest(src, &current)?;
            if args.alias {
                (
                    json!({"kind": "ImageStreamTag", "name": format!("{is}:{tag}"), "namespace": ns}),
                    String::new(),
                )
            } else {
                // A permanent tag: the image SOURCE points at now.
                let istag = session
                    .client
                    .get(&format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{is}:{tag}"))
                    .await
                    .map_err(|_| anyhow!("\"{is}:{tag}\" is not currently pointing to an image, cannot use it as the source of a tag"))?;
                let digest = istag
                    .pointer("/image/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = format!("{is}@{digest}");
                (
                    json!({"kind": "ImageStreamImage", "name": name, "namespace": ns}),
                    name,
                )
            }
        }
    };
    for d in dests {
        let (ns, is, tag) = parse_dest(d, &current)?;
        if args.alias {
            let same = from.get("namespace").and_then(Value::as_str) == Some(ns.as_str())
                && from
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| n.split_once(':'))
                    .is_some_and(|(s, _)| s == is);
            if !same {
                bail!("cannot set alias across different Image Streams");
            }
        }
        let mut spec = json!({"from": from});
        if kind == Source::Docker {
            spec["generation"] = json!(0);
            spec["importPolicy"] = json!({"scheduled": args.scheduled, "insecure": args.insecure});
        }
        if args.reference {
            spec["reference"] = json!(true);
        }
        if let Some(p) = &args.reference_policy {
            spec["referencePolicy"] =
                json!({"type": if p == "local" { "Local" } else { "Source" }});
        }
        let body = json!({
            "apiVersion": "image.openshift.io/v1",
            "kind": "ImageStreamTag",
            "metadata": {"name": format!("{is}:{tag}"), "namespace": ns},
            "tag": spec,
        });
        session
            .client
            .put(
                &format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{is}:{tag}"),
                &body,
            )
            .await?;
        let dest_shown = shown(&ns, &current, &format!("{is}:{tag}"));
        // The source is named with its project when it lies in another one
        // than the destination.
        let said = match from.get("namespace").and_then(Value::as_str) {
            Some(src_ns) if kind != Source::Docker => shown(src_ns, &ns, &said),
            _ => said.clone(),
        };
        if args.alias {
            let src_name = from.get("name").and_then(Value::as_str).unwrap_or_default();
            println!("Tag {dest_shown} set up to track {src_name}.");
        } else {
            println!("Tag {dest_shown} set to {said}.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(src: &str) -> Source {
        let args = TagArgs {
            refs: vec![],
            source: None,
            alias: false,
            reference: false,
            scheduled: false,
            insecure: false,
            reference_policy: None,
            delete: false,
        };
        source_kind(&args, src).unwrap()
    }

    #[test]
    fn source_resolution() {
        assert_eq!(kind("quay.io/team/app:1"), Source::Docker);
        assert_eq!(kind("127.0.0.1:5000/p/app:1"), Source::Docker);
        assert_eq!(kind("shop@sha256:abc"), Source::Image);
        assert_eq!(kind("shop:prod"), Source::Tag);
        assert_eq!(kind("other/shop:prod"), Source::Tag);
        assert_eq!(kind("busybox"), Source::Docker);
        assert_eq!(
            parse_dest("b/shop:prod", "a").unwrap(),
            ("b".into(), "shop".into(), "prod".into())
        );
        assert_eq!(
            parse_dest("shop", "a").unwrap(),
            ("a".into(), "shop".into(), "latest".into())
        );
        assert!(parse_dest("a/b/c:d", "a").is_err());
    }
}
