//! `psc start-build NAME [--from-dir SRC | --commit C] [--incremental]
//! --as-dockerfile OUT`: instead of starting a Source build, writes the
//! Dockerfile and context (`OUT/Dockerfile`, `OUT/upload/src`,
//! `OUT/upload/scripts`, the build-time inputs' `OUT/upload/configmaps/` and
//! `OUT/upload/secrets/`) that reproduce it by hand with `docker build OUT` —
//! the same text the build node generates, from the builder's labels as the
//! image stream records them. The source is the directory given, else a
//! clone of the config's repository here; an incremental build starts from
//! the output tag's current image.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use podspace_api::model::{BuildConfig, ConfigMap, Secret};
use podspace_s2i::dockerfile::{render, Plan};
use podspace_s2i::injection::{self, Injection, CONFIG_MAPS_DIR, SECRETS_DIR};
use podspace_s2i::metadata::{BuilderMetadata, SCRIPTS_URL};
use podspace_s2i::scripts::{locate, Candidates, Script, ScriptSource, ScriptsUrl};
use podspace_s2i::users::{assemble_uid, AllowedUids};
use podspace_s2i::{environment, layout};
use serde_json::Value;

use super::builds::configs_path;
use crate::client::Client;
use crate::output::s;

/// The builder's pinned reference and its config (`Labels`, `Env`, `User`).
async fn builder(client: &Client, ns: &str, from: &Value) -> Result<(String, Value)> {
    let name = s(from, "/name");
    match s(from, "/kind") {
        "ImageStreamTag" | "" => {
            let from_ns = Some(s(from, "/namespace"))
                .filter(|n| !n.is_empty())
                .unwrap_or(ns);
            let istag = client
                .get(&format!(
                    "/apis/image.openshift.io/v1/namespaces/{from_ns}/imagestreamtags/{name}"
                ))
                .await
                .with_context(|| format!("the builder image {from_ns}/{name}"))?;
            Ok((
                s(&istag, "/image/dockerImageReference").to_string(),
                istag
                    .pointer("/image/dockerImageMetadata/Config")
                    .cloned()
                    .unwrap_or(Value::Null),
            ))
        }
        // Nothing is known of a DockerImage's labels without pulling it.
        "DockerImage" => Ok((name.to_string(), Value::Null)),
        other => bail!("sourceStrategy.from of kind {other:?} is not supported"),
    }
}

/// What `start-build` asked for.
pub struct Request<'a> {
    pub config: &'a str,
    pub from_dir: Option<&'a Path>,
    pub commit: Option<&'a str>,
    pub incremental: Option<bool>,
    pub env: &'a [(String, String)],
    pub out: &'a Path,
}

/// The source to build: the directory given, else a clone of the config's
/// repository (kept alive by the returned guard), with the labels a clone
/// tells.
async fn source(
    bc: &Value,
    req: &Request<'_>,
) -> Result<(
    std::path::PathBuf,
    Option<tempfile::TempDir>,
    Vec<(String, String)>,
)> {
    if let Some(dir) = req.from_dir {
        return Ok((dir.to_path_buf(), None, Vec::new()));
    }
    let uri = s(bc, "/spec/source/git/uri").to_string();
    if uri.is_empty() {
        bail!(
            "{} has no git source: give the source with --from-dir",
            req.config
        );
    }
    let git_ref = s(bc, "/spec/source/git/ref").to_string();
    let commit = req.commit.map(str::to_string);
    let dir = tempfile::tempdir()?;
    let into = dir.path().to_path_buf();
    let (u, r) = (uri.clone(), git_ref.clone());
    let id = tokio::task::spawn_blocking(move || {
        super::gitclone::clone(&u, Some(&r), commit.as_deref(), &into)
    })
    .await??;
    println!("Cloned {uri} at {id}");
    let mut labels = vec![
        ("io.openshift.build.commit.id".to_string(), id),
        ("io.openshift.build.source-location".to_string(), uri),
    ];
    if !git_ref.is_empty() {
        labels.push(("io.openshift.build.commit.ref".to_string(), git_ref));
    }
    Ok((dir.path().to_path_buf(), Some(dir), labels))
}

/// The output tag's current image, for an incremental build.
async fn previous_image(client: &Client, ns: &str, bc: &Value) -> Option<String> {
    let to = bc.pointer("/spec/output/to")?;
    if s(to, "/kind") != "ImageStreamTag" {
        return None;
    }
    let to_ns = Some(s(to, "/namespace"))
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    let name = s(to, "/name");
    let tag = if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    };
    let istag = client
        .get(&format!(
            "/apis/image.openshift.io/v1/namespaces/{to_ns}/imagestreamtags/{tag}"
        ))
        .await
        .ok()?;
    Some(s(&istag, "/image/dockerImageReference").to_string()).filter(|r| !r.is_empty())
}

pub async fn write(client: &Client, ns: &str, req: &Request<'_>) -> Result<()> {
    let (bc_name, out, extra_env) = (req.config, req.out, req.env);
    let bc = client
        .get(&format!("{}/{bc_name}", configs_path(ns)))
        .await?;
    let Some(strategy) = bc.pointer("/spec/strategy/sourceStrategy") else {
        bail!("--as-dockerfile writes Source (S2I) builds; {bc_name} is not one");
    };
    let (src, _clone, mut labels_from_source) = source(&bc, req).await?;
    let (reference, config) = builder(client, ns, &strategy["from"]).await?;
    let labels: BTreeMap<String, String> = config["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let env: Vec<String> = config["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut image = BuilderMetadata::read(&labels, &env, config["User"].as_str())?;
    if image.scripts_url.is_none() {
        // As s2i --as-dockerfile does for an image that says nothing.
        image.scripts_url = Some((ScriptsUrl::Image("/usr/libexec/s2i".into()), SCRIPTS_URL));
    }
    let context = src.join(s(&bc, "/spec/source/contextDir"));
    let explicit = match s(strategy, "/scripts") {
        "" => None,
        url => Some(ScriptsUrl::parse(url)?),
    };
    if matches!(explicit, Some(ScriptsUrl::Http(_))) {
        bail!("--as-dockerfile does not download scripts: put them in the source's .s2i/bin/");
    }
    let located = locate(
        &Candidates {
            explicit: explicit.as_ref(),
            explicit_has: &|sc: Script| match &explicit {
                Some(ScriptsUrl::File(rel)) => context.join(rel).join(sc.name()).is_file(),
                _ => true,
            },
            source_path: &|sc| layout::source_script(&context, sc),
            image: image.scripts_url.as_ref().map(|(u, _)| u),
            image_has: &|_| true,
        },
        image.scripts_url.as_ref().map_or(SCRIPTS_URL, |(_, l)| *l),
    )?;
    let uid = assemble_uid(
        &reference,
        image.assemble_user.as_deref(),
        &AllowedUids::non_root(),
        &|_| None,
    )?;
    let file_env = match std::fs::read_to_string(context.join(".s2i/environment")) {
        Ok(text) => environment::parse(&text)?,
        Err(_) => Vec::new(),
    };
    let mut build_env: Vec<(String, String)> = strategy["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_string(),
                e.get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ))
        })
        .collect();
    build_env.extend(extra_env.iter().cloned());
    let upload = out.join("upload");
    layout::copy_source(&context, &upload.join("src"))
        .with_context(|| format!("copying {}", context.display()))?;
    for (script, found) in &located {
        let from = match (found, &explicit) {
            (ScriptSource::Source(rel), _) => context.join(rel),
            (ScriptSource::Url(_), Some(ScriptsUrl::File(rel))) => {
                context.join(rel).join(script.name())
            }
            _ => continue,
        };
        layout::write_script(
            &upload.join("scripts").join(script.name()),
            &std::fs::read(&from)?,
        )?;
    }
    let incremental = req
        .incremental
        .unwrap_or(strategy.get("incremental") == Some(&Value::Bool(true)));
    let has_save = located.iter().any(|(s, _)| *s == Script::SaveArtifacts);
    let previous = match (incremental, has_save) {
        (true, true) => match previous_image(client, ns, &bc).await {
            Some(p) => {
                println!("incremental: artifacts from {p}");
                Some(p)
            }
            None => {
                println!("incremental: the output tag has no image yet; a clean build");
                None
            }
        },
        (true, false) => {
            println!("incremental: the builder has no save-artifacts script; a clean build");
            None
        }
        _ => None,
    };
    let mut image_labels = vec![("io.openshift.build.image".to_string(), reference.clone())];
    image_labels.append(&mut labels_from_source);
    let working_dir = config["WorkingDir"].as_str().filter(|w| !w.is_empty());
    let (config_maps, secrets) =
        build_inputs(client, ns, &bc, out, working_dir, &image.destination).await?;
    let text = render(&Plan {
        // `docker build` with or without BuildKit reads it, unless secrets
        // need its step-scoped mounts.
        buildkit: !secrets.is_empty(),
        builder: &reference,
        previous: previous.as_deref(),
        destination: &image.destination,
        assemble_uid: uid,
        image_user: image.image_user.as_deref(),
        scripts: &located,
        labels: &image_labels,
        env: &environment::merge(&file_env, &build_env),
        config_maps: &config_maps,
        secrets: &secrets,
    });
    let dockerfile = out.join("Dockerfile");
    std::fs::write(&dockerfile, text)
        .with_context(|| format!("writing {}", dockerfile.display()))?;
    // The secrets' step mounts need BuildKit (`docker buildx build`).
    let how = if secrets.is_empty() {
        "docker build"
    } else {
        "docker buildx build"
    };
    println!(
        "Wrote {} and its context in {}: build it with '{how} {}'",
        dockerfile.display(),
        out.display(),
        out.display()
    );
    if !secrets.is_empty() {
        println!(
            "{} holds the secrets' values: remove it once the image is built",
            out.join(SECRETS_DIR).display()
        );
    }
    Ok(())
}

/// `source.configMaps` and `source.secrets`, read from the project and
/// written under `out/upload/` as the build node writes them. `out` is
/// made private to its owner when it holds secrets.
async fn build_inputs(
    client: &Client,
    ns: &str,
    bc: &Value,
    out: &Path,
    working_dir: Option<&str>,
    destination: &str,
) -> Result<(Vec<Injection>, Vec<Injection>)> {
    use std::os::unix::fs::PermissionsExt;
    let bc: BuildConfig = serde_json::from_value(bc.clone()).context("decoding the BuildConfig")?;
    let source = bc.spec.source.unwrap_or_default();
    let (mut maps, mut secrets) = (Vec::new(), Vec::new());
    for (i, m) in source.config_maps.iter().flatten().enumerate() {
        let name = &m.config_map.name;
        let map: ConfigMap = serde_json::from_value(
            client
                .get(&format!("/api/v1/namespaces/{ns}/configmaps/{name}"))
                .await
                .with_context(|| format!("configMap {name:?} (spec.source.configMaps[{i}])"))?,
        )?;
        let dest = m.destination_dir.as_deref().unwrap_or_default();
        maps.push(inject(
            out,
            CONFIG_MAPS_DIR,
            i,
            map.files(),
            dest,
            working_dir,
            destination,
        )?);
    }
    let with_secrets = source.secrets.as_ref().is_some_and(|s| !s.is_empty());
    if with_secrets {
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", out.display()))?;
    }
    for (i, s) in source.secrets.iter().flatten().enumerate() {
        let name = &s.secret.name;
        let secret: Secret = serde_json::from_value(
            client
                .get(&format!("/api/v1/namespaces/{ns}/secrets/{name}"))
                .await
                .with_context(|| format!("secret {name:?} (spec.source.secrets[{i}])"))?,
        )?;
        let dest = s.destination_dir.as_deref().unwrap_or_default();
        secrets.push(inject(
            out,
            SECRETS_DIR,
            i,
            secret.files(),
            dest,
            working_dir,
            destination,
        )?);
    }
    Ok((maps, secrets))
}

fn inject(
    out: &Path,
    base: &str,
    i: usize,
    files: BTreeMap<String, Vec<u8>>,
    dest: &str,
    working_dir: Option<&str>,
    destination: &str,
) -> Result<Injection> {
    let target = injection::target(dest, working_dir, destination)?;
    let files: Vec<(String, Vec<u8>)> = files.into_iter().collect();
    let dir = out.join(base).join(i.to_string());
    injection::write_files(&dir, &files).with_context(|| format!("writing {}", dir.display()))?;
    println!("{} -> {target} ({} files)", dir.display(), files.len());
    Ok(Injection {
        target,
        files: files.into_iter().map(|(k, _)| k).collect(),
    })
}
