//! `psc new-build URL[#REF]`, `psc new-build BUILDER~URL[#REF]`,
//! `psc new-build --binary`: an output image stream and a BuildConfig
//! (cli.md): Docker strategy, or Source (S2I) when a builder image is given
//! with `~` or `--strategy=source -i BUILDER`. The Dockerfile is not read,
//! so its FROM gets no ImageChange trigger unless `--image-stream` names the
//! base image; a Source build's builder always gets one.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Value};

use super::builds::{configs_path, name_values, parse_kv};
use super::{Reported, Session};
use crate::client::error_code;
use crate::output;
use crate::Global;

#[derive(Args)]
pub struct NewBuildArgs {
    /// Git repository URL; a fragment selects the ref (URL#REF); BUILDER~URL
    /// makes a Source (S2I) build with that builder image stream tag
    #[arg(required_unless_present_any = ["binary", "code"])]
    source: Option<String>,
    /// The source: a Git URL, or a local clone (its `origin` remote is built)
    #[arg(long, value_name = "DIR|URL", conflicts_with_all = ["source", "binary"])]
    code: Option<String>,
    /// Name of the build config and image stream [default: from the URL]
    #[arg(long)]
    name: Option<String>,
    /// docker, or source (S2I: needs a builder, BUILDER~URL or --image-stream)
    #[arg(long, value_parser = ["docker", "source"])]
    pub(super) strategy: Option<String>,
    /// Builds get their input from 'psc start-build --from-*'
    #[arg(long, conflicts_with = "source")]
    pub(super) binary: bool,
    /// Sub-directory of the source holding the Dockerfile
    #[arg(long, value_name = "DIR")]
    pub(super) context_dir: Option<String>,
    /// Environment for the build
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = parse_kv)]
    env: Vec<(String, String)>,
    /// Docker build arguments
    #[arg(long = "build-arg", value_name = "K=V", value_parser = parse_kv)]
    build_args: Vec<(String, String)>,
    /// Output image stream tag [default: NAME:latest]
    #[arg(long, value_name = "IS[:TAG]")]
    to: Option<String>,
    /// Base image stream tag: replaces the Dockerfile's FROM and triggers builds when it changes
    #[arg(short = 'i', long = "image-stream", value_name = "[PROJECT/]IS[:TAG]")]
    image_stream: Option<String>,
    /// A Secret the build reads at build time only, as files in DIR
    /// (relative to the context for Docker, to the builder's working
    /// directory for Source, or absolute for Source)
    #[arg(long = "build-secret", value_name = "SECRET[:DIR]")]
    build_secrets: Vec<String>,
    /// A ConfigMap whose files the build reads in DIR
    #[arg(long = "build-config-map", value_name = "CONFIGMAP[:DIR]")]
    build_config_maps: Vec<String>,
    /// Print the objects instead of creating them
    #[arg(short = 'o', long = "output", value_parser = ["yaml", "json"])]
    output: Option<String>,
}

/// `--build-secret`/`--build-config-map` values: `NAME[:DIR]` → the
/// source entry (`{field: {name}, destinationDir}`), as `oc new-build`.
fn build_inputs(values: &[String], field: &str) -> Value {
    let items: Vec<Value> = values
        .iter()
        .map(|v| {
            let (name, dir) = v.split_once(':').unwrap_or((v, ""));
            let mut item = json!({field: {"name": name}});
            if !dir.is_empty() {
                item["destinationDir"] = json!(dir);
            }
            item
        })
        .collect();
    Value::Array(items)
}

/// `https://host/team/shop.git#release` → (`https://host/team/shop.git`, `release`).
fn split_ref(source: &str) -> (&str, Option<&str>) {
    match source.split_once('#') {
        Some((uri, r)) if !r.is_empty() => (uri, Some(r)),
        Some((uri, _)) => (uri, None),
        None => (source, None),
    }
}

/// The repository's last path segment without `.git`, made a valid name
/// (lower case, `-` for anything else, at most 63 characters as the
/// `build=NAME` label value must be).
fn name_from_url(uri: &str) -> Option<String> {
    let last = uri.trim_end_matches('/').rsplit(['/', ':']).next()?;
    let last = last.strip_suffix(".git").unwrap_or(last);
    let name: String = last
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let name: String = name.trim_matches('-').chars().take(63).collect();
    let name = name.trim_end_matches('-');
    (!name.is_empty()).then(|| name.to_string())
}

/// `[PROJECT/]IS[:TAG]` → (project, `IS:TAG`).
fn stream_tag(arg: &str) -> (Option<&str>, String) {
    let (ns, rest) = match arg.split_once('/') {
        Some((ns, rest)) => (Some(ns), rest),
        None => (None, arg),
    };
    let tag = if rest.contains(':') {
        rest.to_string()
    } else {
        format!("{rest}:latest")
    };
    (ns, tag)
}

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"build": name_label(name)},
        "annotations": {"openshift.io/generated-by": "OpenShiftNewBuild"},
    })
}

fn name_label(name: &str) -> String {
    name.chars().take(63).collect()
}

/// What the arguments say about the source and the builder, before the
/// server and the source are consulted ([`resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePlan {
    /// The builder or base image stream tag: (project, `IS:TAG`).
    pub base: Option<(Option<String>, String)>,
    pub source_strategy: bool,
    /// A Git URL, or a local directory until [`resolve`] reads its remote.
    pub uri: String,
    pub git_ref: Option<String>,
}

fn plan(args: &NewBuildArgs) -> Result<SourcePlan> {
    let given = args.source.as_deref().or(args.code.as_deref());
    // BUILDER~URL: a Source build from that builder.
    let (builder, source_arg) = match given.map(|s| s.split_once('~')) {
        Some(Some(("", _))) => {
            bail!("BUILDER~URL needs a builder image stream tag before the ~")
        }
        Some(Some((b, url))) => (Some(b), Some(url)),
        Some(None) => (None, given),
        None => (None, None),
    };
    let source_strategy = match (args.strategy.as_deref(), builder) {
        (Some("docker"), Some(_)) => {
            bail!("BUILDER~URL makes a Source build; it cannot be --strategy=docker")
        }
        (Some("source"), _) | (None, Some(_)) => true,
        _ => false,
    };
    if builder.is_some() && args.image_stream.is_some() {
        bail!("name the builder once: BUILDER~URL or --image-stream, not both");
    }
    let (uri, git_ref) = source_arg.map(split_ref).unwrap_or(("", None));
    let base = builder
        .or(args.image_stream.as_deref())
        .map(stream_tag)
        .map(|(ns, tag)| (ns.map(str::to_string), tag));
    if source_strategy && !args.build_args.is_empty() {
        bail!("--build-arg is for Docker builds; a Source build takes -e");
    }
    Ok(SourcePlan {
        base,
        source_strategy,
        uri: uri.to_string(),
        git_ref: git_ref.map(str::to_string),
    })
}

/// The BuildConfig and the name of its output image stream.
fn build_config(
    args: &NewBuildArgs,
    ns: &str,
    plan: &SourcePlan,
) -> Result<(Value, String, String)> {
    let source_strategy = plan.source_strategy;
    let uri = plan.uri.as_str();
    let git_ref = plan.git_ref.as_deref();
    let base = plan
        .base
        .as_ref()
        .map(|(ns, tag)| (ns.as_deref(), tag.clone()));
    if source_strategy && base.is_none() {
        bail!("a Source build needs a builder image: BUILDER~URL, or --strategy=source with --image-stream BUILDER");
    }
    let name = match (&args.name, name_from_url(uri), &base) {
        (Some(n), _, _) => n.clone(),
        (None, Some(n), _) => n,
        (None, _, Some((_, tag))) => name_from_url(tag.split(':').next().unwrap_or_default())
            .ok_or_else(|| anyhow!("name the build config with --name"))?,
        _ => bail!("name the build config with --name"),
    };
    let (out_stream, out_tag) = match &args.to {
        Some(to) => match stream_tag(to) {
            (Some(_), _) => bail!("--to names an image stream tag of this project: IS[:TAG]"),
            (None, tag) => (tag.split(':').next().unwrap_or_default().to_string(), tag),
        },
        None => (name.clone(), format!("{name}:latest")),
    };
    let mut source = if args.binary {
        json!({"type": "Binary", "binary": {}})
    } else {
        let mut git = json!({"uri": uri});
        if let Some(r) = git_ref {
            git["ref"] = json!(r);
        }
        json!({"type": "Git", "git": git})
    };
    if let Some(dir) = &args.context_dir {
        source["contextDir"] = json!(dir);
    }
    if !args.build_secrets.is_empty() {
        source["secrets"] = build_inputs(&args.build_secrets, "secret");
    }
    if !args.build_config_maps.is_empty() {
        source["configMaps"] = build_inputs(&args.build_config_maps, "configMap");
    }
    let mut docker = json!({});
    if !args.env.is_empty() {
        docker["env"] = name_values(&args.env);
    }
    if !args.build_args.is_empty() {
        docker["buildArgs"] = name_values(&args.build_args);
    }
    let mut triggers = Vec::new();
    if !args.binary {
        triggers.push(json!({"type": "ConfigChange"}));
    }
    if let Some((from_ns, from_tag)) = &base {
        if from_ns.is_none_or(|n| n == ns) && *from_tag == out_tag {
            if args.to.is_none() {
                bail!("the input and output image stream tags are identical ({from_tag}): a build would trigger itself; use --to to choose another output");
            }
            eprintln!("WARNING: the input and output image stream tags are identical ({from_tag})");
        }
        let mut from = json!({"kind": "ImageStreamTag", "name": from_tag});
        if let Some(n) = from_ns {
            from["namespace"] = json!(n);
        }
        docker["from"] = from;
        // A binary build started by an image change would have no input.
        if !args.binary {
            triggers.push(json!({"type": "ImageChange", "imageChange": {}}));
        }
    }
    let strategy = if source_strategy {
        json!({"type": "Source", "sourceStrategy": docker})
    } else {
        json!({"type": "Docker", "dockerStrategy": docker})
    };
    let bc = json!({
        "apiVersion": "build.openshift.io/v1",
        "kind": "BuildConfig",
        "metadata": metadata(&name),
        "spec": {
            "runPolicy": "Serial",
            "source": source,
            "strategy": strategy,
            "output": {"to": {"kind": "ImageStreamTag", "name": out_tag}},
            "triggers": triggers,
        },
    });
    Ok((bc, name, out_stream))
}

pub async fn run(g: &Global, args: NewBuildArgs) -> Result<()> {
    let session = Session::load(g)?;
    let ns = session.namespace()?;
    let plan = super::detect::resolve(&session.client, ns, &args, plan(&args)?).await?;
    let (bc, name, stream) = build_config(&args, ns, &plan)?;
    let mut is_meta = metadata(&stream);
    // The label names the build, whatever the stream is called.
    is_meta["labels"]["build"] = json!(name_label(&name));
    let is = json!({
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": is_meta,
        "spec": {"lookupPolicy": {"local": false}},
    });
    if let Some(format) = &args.output {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [is, bc]});
        match format.as_str() {
            "json" => print!("{}", output::json(&list)),
            _ => print!("{}", output::yaml(&list)),
        }
        return Ok(());
    }
    println!(
        "--> Creating resources with label build={} ...",
        name_label(&name)
    );
    let client = &session.client;
    let streams = format!("/apis/image.openshift.io/v1/namespaces/{ns}/imagestreams");
    match client.post(&streams, &is).await {
        Ok(_) => println!("    imagestream.image.openshift.io {stream:?} created"),
        // An existing output stream is used as it is.
        Err(e) if error_code(&e) == Some(409) => {}
        Err(e) => return failed(&e),
    }
    match client.post(&configs_path(ns), &bc).await {
        Ok(_) => println!("    buildconfig.build.openshift.io {name:?} created"),
        Err(e) => return failed(&e),
    }
    println!("--> Success");
    if args.binary {
        println!("    Use 'psc start-build {name}' to start a build.");
    } else {
        println!("    Build scheduled, use 'psc logs -f bc/{name}' to track its progress.");
    }
    Ok(())
}

fn failed(e: &anyhow::Error) -> Result<()> {
    println!("    error: {e:#}");
    println!("--> Failed");
    Err(Reported.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: NewBuildArgs,
    }

    fn make(argv: &[&str]) -> Result<(Value, String, String)> {
        let cli = Cli::try_parse_from(std::iter::once("new-build").chain(argv.iter().copied()))?;
        build_config(&cli.args, "p", &plan(&cli.args)?)
    }

    #[test]
    fn refs_and_names_from_urls() {
        assert_eq!(
            split_ref("https://git.example.com/shop.git#release"),
            ("https://git.example.com/shop.git", Some("release"))
        );
        assert_eq!(
            split_ref("https://x/shop.git#"),
            ("https://x/shop.git", None)
        );
        assert_eq!(split_ref("https://x/shop"), ("https://x/shop", None));
        assert_eq!(
            name_from_url("https://x/team-a/shop.git").as_deref(),
            Some("shop")
        );
        assert_eq!(
            name_from_url("https://x/team-a/shop/").as_deref(),
            Some("shop")
        );
        assert_eq!(
            name_from_url("git@github.com:org/My_App.git").as_deref(),
            Some("my-app")
        );
        assert_eq!(name_from_url("https://x/.git"), None);
    }

    #[test]
    fn git_build_config() {
        let (bc, name, stream) = make(&[
            "https://x/team/shop.git#v2",
            "--context-dir",
            "app",
            "-e",
            "A=1",
            "--build-secret",
            "npm-creds:creds",
            "--build-secret",
            "ca",
            "--build-config-map",
            "settings:conf",
        ])
        .unwrap();
        assert_eq!((name.as_str(), stream.as_str()), ("shop", "shop"));
        assert_eq!(
            bc["spec"]["source"],
            json!({"type": "Git", "git": {"uri": "https://x/team/shop.git", "ref": "v2"}, "contextDir": "app",
                   "secrets": [{"secret": {"name": "npm-creds"}, "destinationDir": "creds"}, {"secret": {"name": "ca"}}],
                   "configMaps": [{"configMap": {"name": "settings"}, "destinationDir": "conf"}]})
        );
        assert_eq!(
            bc["spec"]["strategy"]["dockerStrategy"]["env"],
            json!([{"name": "A", "value": "1"}])
        );
        assert_eq!(bc["spec"]["triggers"], json!([{"type": "ConfigChange"}]));
        assert_eq!(bc["spec"]["output"]["to"]["name"], "shop:latest");
        assert_eq!(bc["metadata"]["labels"]["build"], "shop");
    }

    #[test]
    fn binary_and_base_image() {
        let (bc, name, _) = make(&["--binary", "--name", "web", "-i", "base:1"]).unwrap();
        assert_eq!(name, "web");
        assert_eq!(
            bc["spec"]["source"],
            json!({"type": "Binary", "binary": {}})
        );
        assert_eq!(bc["spec"]["triggers"], json!([]));
        assert_eq!(
            bc["spec"]["strategy"]["dockerStrategy"]["from"],
            json!({"kind": "ImageStreamTag", "name": "base:1"})
        );
        let (bc, _, stream) = make(&["https://x/shop", "-i", "base", "--to", "out:v1"]).unwrap();
        assert_eq!(stream, "out");
        assert_eq!(bc["spec"]["triggers"][1]["type"], "ImageChange");
        assert!(make(&["https://x/shop", "-i", "shop:latest"]).is_err());
        assert!(make(&["--binary"]).is_err());
    }

    #[test]
    fn source_builds() {
        let (bc, name, _) = make(&["openshift/python:3.11~https://x/team/shop.git#v2"]).unwrap();
        assert_eq!(name, "shop");
        assert_eq!(
            bc["spec"]["strategy"],
            json!({"type": "Source", "sourceStrategy": {"from": {"kind": "ImageStreamTag", "name": "python:3.11", "namespace": "openshift"}}})
        );
        assert_eq!(bc["spec"]["source"]["git"]["ref"], "v2");
        assert_eq!(bc["spec"]["triggers"][1]["type"], "ImageChange");
        let (bc, _, _) = make(&[
            "--binary",
            "--name",
            "site",
            "--strategy",
            "source",
            "-i",
            "static",
            "-e",
            "A=1",
        ])
        .unwrap();
        assert_eq!(
            bc["spec"]["strategy"]["sourceStrategy"]["from"]["name"],
            "static:latest"
        );
        assert_eq!(
            bc["spec"]["strategy"]["sourceStrategy"]["env"][0]["name"],
            "A"
        );
        assert!(
            make(&["--binary", "--name", "x", "--strategy", "source"]).is_err(),
            "no builder"
        );
        assert!(make(&["py~https://x/shop", "--strategy", "docker"]).is_err());
        assert!(make(&["py~https://x/shop", "--build-arg", "A=1"]).is_err());
        assert!(make(&["~https://x/shop"]).is_err());
    }

    #[test]
    fn bad_key_values_are_refused() {
        assert!(make(&["https://x/shop", "-e", "NOVALUE"]).is_err());
        assert!(make(&["https://x/shop", "--build-arg", "=x"]).is_err());
    }
}
