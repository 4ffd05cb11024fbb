//! The Source (S2I) strategy: the builder image resolved with the build's
//! credentials, its labels read, the scripts located (explicit URL, the
//! source's `.s2i/bin/`, the image), the assemble user checked (never root),
//! `.s2i/environment` under the build env, the previous output's artifacts
//! for an incremental build; then a build context (`upload/src`,
//! `upload/scripts`, the build-time Secrets and ConfigMaps) and the Dockerfile `podspace-s2i` writes for it.

use std::collections::BTreeMap;
use std::path::Path;

use podspace_s2i::dockerfile::{self as s2i_dockerfile, Plan};
use podspace_s2i::metadata::{BuilderMetadata, SCRIPTS_URL};
use podspace_s2i::scripts::{locate, Candidates, LocateError, Script, ScriptSource, ScriptsUrl};
use podspace_s2i::users::{self, assemble_uid, AllowedUids, UserError};
use podspace_s2i::{environment, layout, output};
use serde_json::Value;

use super::build_inputs;
use super::dockerfile;
use super::engine::ContainerEngine;
use super::inputs::Inputs;
use super::log::BuildLog;
use super::pull::{self, Purpose};
use super::run::{build_env, pairs, BuildMeta, Outcome};
use super::source;
use super::strategy::BuildPlan;
use podspace_builder::protocol::LeaseGrant;

/// The most a fetched script may be.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

pub struct SourceContext<'a> {
    pub grant: &'a LeaseGrant,
    pub engine: &'a dyn ContainerEngine,
    pub log: &'a BuildLog,
    pub work: &'a Path,
    /// The output image reference (the previous image of an incremental build).
    pub output: Option<&'a str>,
}

fn failed(reason: &'static str, message: impl Into<String>) -> Outcome {
    Outcome::Failed(reason, message.into())
}

fn config_labels(config: &Value) -> BTreeMap<String, String> {
    config
        .pointer("/config/Labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn config_env(config: &Value) -> Vec<String> {
    config
        .pointer("/config/Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Fetches `<url>/<script>` for each script over HTTP(S); what is missing is
/// simply not there.
async fn fetch_scripts(url: &str, into: &Path) -> Result<Vec<Script>, Outcome> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Outcome::Error("FetchSourceFailed", e.to_string()))?;
    let mut found = Vec::new();
    for script in Script::ALL {
        let resp = match http.get(format!("{url}/{}", script.name())).send().await {
            Ok(r) if r.status().is_success() => r,
            _ => continue,
        };
        if resp.content_length().is_some_and(|n| n > MAX_SCRIPT_BYTES) {
            continue;
        }
        let Ok(bytes) = resp.bytes().await else {
            continue;
        };
        if bytes.len() as u64 > MAX_SCRIPT_BYTES {
            continue;
        }
        write_script(&into.join(script.name()), &bytes)?;
        found.push(script);
    }
    Ok(found)
}

fn write_script(path: &Path, bytes: &[u8]) -> Result<(), Outcome> {
    layout::write_script(path, bytes)
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))
}

pub async fn plan(
    meta: &BuildMeta<'_>,
    inputs: &Inputs,
    c: &SourceContext<'_>,
) -> Result<BuildPlan, Outcome> {
    let spec = meta.spec;
    let strategy = spec.strategy.source_strategy.clone().unwrap_or_default();
    let from = strategy.from.as_ref().map_or("", |f| f.name.as_str());
    if from.is_empty() || strategy.from.as_ref().map(|f| f.kind.as_str()) != Some("DockerImage") {
        return Err(failed(
            "GenericBuildFailed",
            "sourceStrategy.from names no builder image the build could resolve",
        ));
    }
    let ctx = source::context_path(&inputs.src, spec.context_dir())
        .map_err(|e| failed("InvalidContextDirectory", e.to_string()))?;
    c.log.line(&format!("Using builder image {from}"));
    let builder = pull::resolve(c.engine, c.grant, from, Purpose::Base).await?;
    let labels = config_labels(&builder.config);
    let image_user = builder
        .config
        .pointer("/config/User")
        .and_then(Value::as_str);
    let image = BuilderMetadata::read(&labels, &config_env(&builder.config), image_user)
        .map_err(|e| failed("BuilderImageHasNoScripts", e.to_string()))?;

    // Scripts.
    let upload = c.work.join("s2i/upload");
    let shipped = upload.join("scripts");
    let explicit = match strategy.scripts.as_deref().unwrap_or_default() {
        "" => None,
        url => {
            Some(ScriptsUrl::parse(url).map_err(|e| failed("GenericBuildFailed", e.to_string()))?)
        }
    };
    let explicit_found: Vec<Script> = match &explicit {
        Some(ScriptsUrl::Http(url)) => fetch_scripts(url, &shipped).await?,
        Some(ScriptsUrl::File(rel)) => Script::ALL
            .into_iter()
            .filter(|s| ctx.join(rel).join(s.name()).is_file())
            .collect(),
        Some(ScriptsUrl::Image(_)) => Script::ALL.to_vec(),
        None => Vec::new(),
    };
    let label = image.scripts_url.as_ref().map_or(SCRIPTS_URL, |(_, l)| *l);
    let located = locate(
        &Candidates {
            explicit: explicit.as_ref(),
            explicit_has: &|s| explicit_found.contains(&s),
            source_path: &|s| layout::source_script(&ctx, s),
            image: image.scripts_url.as_ref().map(|(u, _)| u),
            // An image's scripts cannot be seen without running it: an
            // `image://` directory is taken at its word, as s2i does.
            image_has: &|_| true,
        },
        label,
    )
    .map_err(|e| match e {
        LocateError::Missing { .. } => failed("BuilderImageHasNoScripts", e.to_string()),
        LocateError::NothingFromExplicitUrl(_) => failed("GenericBuildFailed", e.to_string()),
    })?;
    for (script, found) in &located {
        let from_source = match found {
            ScriptSource::Source(rel) => Some(ctx.join(rel)),
            ScriptSource::Url(_) => match &explicit {
                Some(ScriptsUrl::File(rel)) => Some(ctx.join(rel).join(script.name())),
                _ => None,
            },
            ScriptSource::Image(_) => None,
        };
        if let Some(path) = from_source {
            let bytes = std::fs::read(&path)
                .map_err(|e| failed("GenericBuildFailed", format!("{}: {e}", path.display())))?;
            write_script(&shipped.join(script.name()), &bytes)?;
        }
    }
    for (script, found) in &located {
        // A scripts URL may carry credentials: never shown.
        let place = match found {
            ScriptSource::Url(u) => source::display_uri(u),
            ScriptSource::Source(p) => format!("the source's {p}"),
            ScriptSource::Image(p) => format!("image://{p}"),
        };
        c.log.line(&format!("{} script: {place}", script.name()));
    }

    // The assemble user: never root, unless the cluster admin allowed it.
    let allowed = if c.grant.allow_root_assemble {
        AllowedUids::anyone()
    } else {
        AllowedUids::non_root()
    };
    let named = image
        .assemble_user
        .as_deref()
        .map(|u| u.split(':').next().unwrap_or_default().trim())
        .filter(|n| !n.is_empty() && n.parse::<u32>().is_err());
    let passwd_uid = match named {
        Some(name) => {
            let scratch = c.work.join("s2i/layers");
            match pull::read_file(
                c.engine,
                c.grant,
                &builder,
                Purpose::Base,
                "etc/passwd",
                &scratch,
            )
            .await
            {
                Ok(Some(text)) => {
                    let uid = users::passwd_uid(&String::from_utf8_lossy(&text), name);
                    if let Some(uid) = uid {
                        c.log.line(&format!(
                            "assemble user {name:?} is UID {uid} in the image's /etc/passwd"
                        ));
                    }
                    uid.map(|uid| (name, uid))
                }
                Ok(None) => None,
                Err(e) => {
                    c.log
                        .line(&format!("cannot read the image's /etc/passwd: {e}"));
                    None
                }
            }
        }
        None => None,
    };
    let lookup = |n: &str| passwd_uid.filter(|(name, _)| *name == n).map(|(_, u)| u);
    let uid = assemble_uid(from, image.assemble_user.as_deref(), &allowed, &lookup).map_err(
        |e| match e {
            UserError::Root { .. } => failed("AssembleUserRootRefused", e.to_string()),
            _ => failed("AssembleUserNotAllowed", e.to_string()),
        },
    )?;

    // Environment: .s2i/environment, then the build's (which wins).
    let file_env = match std::fs::read_to_string(ctx.join(".s2i/environment")) {
        Ok(text) => {
            environment::parse(&text).map_err(|e| failed("GenericBuildFailed", e.to_string()))?
        }
        Err(_) => Vec::new(),
    };
    let mut build_vars = pairs(strategy.env.as_deref().unwrap_or_default());
    build_vars.extend(build_env(meta, inputs));
    let env = environment::merge(&file_env, &build_vars);

    // Incremental: the previous output, if the build may read it.
    let incremental = strategy.incremental == Some(true);
    let has_save = located.iter().any(|(s, _)| *s == Script::SaveArtifacts);
    let previous = match (incremental, has_save, c.output) {
        (true, true, Some(output)) => {
            match pull::resolve(c.engine, c.grant, output, Purpose::PreviousOutput).await {
                Ok(p) => {
                    c.log
                        .line(&format!("incremental: artifacts from {}", p.reference));
                    Some(p.reference)
                }
                Err(Outcome::Failed(_, why)) => {
                    c.log.line(&format!(
                        "incremental: previous image unavailable ({why}); clean build"
                    ));
                    None
                }
                Err(other) => return Err(other),
            }
        }
        (true, false, _) => {
            c.log
                .line("incremental: the builder has no save-artifacts script; clean build");
            None
        }
        _ => None,
    };

    // The context: upload/src (+ upload/scripts) and the Dockerfile.
    let (src_from, src_to) = (ctx.clone(), upload.join("src"));
    tokio::task::spawn_blocking(move || layout::copy_source(&src_from, &src_to))
        .await
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?
        .map_err(|e| failed("FetchSourceFailed", format!("copying the source: {e}")))?;
    let mut image_labels: Vec<(String, String)> =
        vec![("io.openshift.build.image".into(), from.to_string())];
    if let Some(name) = c.output.or(image.display_name.as_deref()) {
        image_labels.push(("io.k8s.display-name".into(), name.to_string()));
    }
    // The failing step's command names the script (after the artifacts'
    // unpacking, in an incremental build's step).
    let assemble_step =
        s2i_dockerfile::script_path_of(&image.destination, &located, Script::Assemble);
    let context = c.work.join("s2i");
    let working_dir = builder
        .config
        .pointer("/config/WorkingDir")
        .and_then(Value::as_str)
        .filter(|w| !w.is_empty());
    let (config_maps, secrets) =
        build_inputs::write_for_s2i(&context, c.grant, working_dir, &image.destination, c.log)
            .await?;
    if !secrets.is_empty() && !c.engine.buildkit() {
        // The classic builder has no step-scoped mounts: a secret copied in
        // would stay in a layer of the output image.
        return Err(failed(
            "CannotInjectBuildInputs",
            "source.secrets needs a build node whose engine runs BuildKit: the classic builder would leave the secrets in the image's layers",
        ));
    }
    let mut text = s2i_dockerfile::render(&Plan {
        builder: &builder.reference,
        previous: previous.as_deref(),
        buildkit: c.engine.buildkit(),
        destination: &image.destination,
        assemble_uid: uid,
        image_user: image.image_user.as_deref(),
        scripts: &located,
        labels: &image_labels,
        env: &env,
        config_maps: &config_maps,
        secrets: &secrets,
    });
    let hook = match spec.post_commit.as_ref().map(dockerfile::post_commit) {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(failed("PostCommitHookFailed", e)),
        None => None,
    };
    if let Some((line, _)) = &hook {
        text.push_str(line);
        text.push('\n');
    }
    tokio::fs::write(context.join("Dockerfile"), text)
        .await
        .map_err(|e| Outcome::Error("CannotCreateBuildPod", e.to_string()))?;
    Ok(BuildPlan {
        context,
        dockerfile: "Dockerfile".into(),
        build_args: Default::default(),
        no_cache: false,
        force_pull: strategy.force_pull == Some(true),
        steps: hook
            .map(|(_, named)| (named, "PostCommitHookFailed"))
            .into_iter()
            .chain(assemble_step.map(|a| (a, "AssembleFailed")))
            .collect(),
        failure: "GenericBuildFailed",
        s2i: true,
    })
}

/// After the engine built `image`: the labels assemble asked for in
/// `image_metadata.json` are set (they win over every other), then all the
/// image's labels are checked against the bound.
pub async fn finish(
    engine: &dyn ContainerEngine,
    image: &str,
    log: &BuildLog,
) -> Result<(), Outcome> {
    let metadata = engine
        .read_file(
            image,
            output::IMAGE_METADATA_PATH,
            output::MAX_IMAGE_METADATA_BYTES,
        )
        .await
        .map_err(|e| Outcome::Error("GenericBuildFailed", e.to_string()))?;
    if let Some(bytes) = metadata {
        let labels = output::metadata_labels(&bytes)
            .map_err(|e| failed("GenericBuildFailed", e.to_string()))?;
        if !labels.is_empty() {
            let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            log.line(&format!(
                "Labels from {}: {}",
                output::IMAGE_METADATA_PATH,
                names.join(", ")
            ));
            engine
                .add_labels(image, &labels, image)
                .await
                .map_err(|e| Outcome::Error("GenericBuildFailed", e.to_string()))?;
        }
    }
    let labels = engine
        .labels(image)
        .await
        .map_err(|e| Outcome::Error("GenericBuildFailed", e.to_string()))?;
    output::check_label_size(&labels).map_err(|e| failed("GenericBuildFailed", e.to_string()))
}
