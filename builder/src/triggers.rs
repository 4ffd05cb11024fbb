//! BuildConfig triggers (triggers.md §2, §4, §5): an ImageChange trigger
//! whose tag now resolves to another pull spec than its
//! `lastTriggeredImageID` requests a build; a ConfigChange trigger requests
//! the first one. At most one build per evaluation, with every firing
//! trigger as a cause. Exactly once like the deployment triggers: the
//! check, the config update and the Build are one transaction on the
//! stored config, and the event log is read from a saved cursor.
//!
//! (psc) loop guard: an image that a build of this same config produced
//! (labels `io.openshift.build.name` = `<bc>-<n>` and
//! `io.openshift.build.namespace` = its project) is recorded, not built.

use podspace_api::model::build::ImageChangeCause;
use podspace_api::model::{
    Build, BuildConfig, BuildRequest, BuildTriggerCause, Image, ImageStream, ObjectReference,
    Resource,
};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Change, Store, StoreError, UpdateScope};
use podspace_api::{imagestreams, KindInfo, Object, Status};
use podspace_runtime::{Action, Controller};

use crate::instantiate;

/// The build trigger controller, run by `podspace_runtime`; a key is a
/// BuildConfig (namespace, name).
pub struct BuildTriggers;

#[podspace_runtime::async_trait]
impl Controller for BuildTriggers {
    type Key = (String, String);

    fn name(&self) -> &'static str {
        "build-triggers"
    }

    fn watches(&self) -> &'static [&'static str] {
        &["ImageStream", "BuildConfig"]
    }

    async fn keys_for(&self, store: &Store, change: &Change) -> Result<Vec<Self::Key>, StoreError> {
        if change.kind == "BuildConfig" {
            return Ok(vec![(change.namespace.clone(), change.name.clone())]);
        }
        // The configs whose triggers follow this stream, in any project.
        let stream = format!("{}/{}", change.namespace, change.name);
        store.indexed(IMAGE_TRIGGERS, "BuildConfig", &stream).await
    }

    async fn all_keys(&self, store: &Store) -> Result<Vec<Self::Key>, StoreError> {
        let (bcs, _) = store
            .list_as::<BuildConfig>("", &LabelSelector::everything())
            .await?;
        Ok(bcs
            .into_iter()
            .map(|bc| (bc.metadata.namespace, bc.metadata.name))
            .collect())
    }

    async fn reconcile(&self, store: &Store, key: &Self::Key) -> Result<Action, StoreError> {
        reconcile(store, &key.0, &key.1).await?;
        Ok(Action::Done)
    }
}

/// The index of BuildConfigs by the image streams (`namespace/name`) their
/// ImageChange triggers follow.
pub const IMAGE_TRIGGERS: &str = "image-triggers";

pub struct ImageTriggerIndex;

impl podspace_api::store::Indexer for ImageTriggerIndex {
    fn index(&self) -> &'static str {
        IMAGE_TRIGGERS
    }

    fn kind(&self) -> &'static str {
        "BuildConfig"
    }

    fn values(&self, obj: &Object) -> Vec<String> {
        let Ok(bc) = BuildConfig::from_object(obj) else {
            return Vec::new();
        };
        image_refs(&bc)
            .into_iter()
            .flatten()
            .map(|(is, _, ns)| format!("{ns}/{is}"))
            .collect()
    }
}

/// `(stream, tag, project)` watched by each ImageChange trigger (None: not an image trigger).
fn image_refs(bc: &BuildConfig) -> Vec<Option<(String, String, String)>> {
    let spec = &bc.spec;
    spec.triggers()
        .iter()
        .map(|t| {
            let from = spec.followed_image(t)?;
            if from.kind != "ImageStreamTag" {
                return None;
            }
            let ns = from
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(&bc.metadata.namespace)
                .to_string();
            let (is, tag) = imagestreams::split_istag(&from.name)?;
            Some((is.to_string(), tag.to_string(), ns))
        })
        .collect()
}

/// Where a config's image triggers and strategy `from` stand now.
struct Images {
    refs: Vec<Option<(String, String, String)>>,
    resolved: Vec<Option<Resolved>>,
    strategy_image: Option<String>,
}

async fn images(store: &Store, bc: &BuildConfig, ns: &str) -> Result<Images, StoreError> {
    let refs = image_refs(bc);
    let mut resolved = Vec::with_capacity(refs.len());
    for r in &refs {
        resolved.push(match r {
            Some((is, tag, from_ns)) => resolve(store, bc, from_ns, is, tag).await?,
            None => None,
        });
    }
    let strategy_image = strategy_pull_spec(store, bc, ns).await?;
    Ok(Images {
        refs,
        resolved,
        strategy_image,
    })
}

struct Resolved {
    pull_spec: String,
    produced_by_self: bool,
}

async fn resolve(
    store: &Store,
    bc: &BuildConfig,
    ns: &str,
    is: &str,
    tag: &str,
) -> Result<Option<Resolved>, StoreError> {
    let Some(stream) = store.find_as::<ImageStream>(ns, is).await? else {
        return Ok(None);
    };
    let Some(event) = imagestreams::current_event(&stream, tag).filter(|e| !e.image.is_empty())
    else {
        return Ok(None);
    };
    let image = store
        .find_as::<Image>("", &event.image)
        .await
        .ok()
        .flatten();
    let label = |name: &str| {
        image
            .as_ref()
            .and_then(|i| i.label(name))
            .unwrap_or_default()
            .to_string()
    };
    let built_by = label("io.openshift.build.name");
    let built_in = label("io.openshift.build.namespace");
    let produced_by_self = built_in == bc.metadata.namespace
        && built_by
            .strip_prefix(&format!("{}-", bc.metadata.name))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    Ok(Some(Resolved {
        pull_spec: imagestreams::resolved_reference(&stream, tag, event),
        produced_by_self,
    }))
}

pub async fn reconcile(store: &Store, ns: &str, name: &str) -> Result<(), StoreError> {
    let Some(bc) = store.find_as::<BuildConfig>(ns, name).await? else {
        return Ok(());
    };
    let Images {
        refs,
        resolved,
        strategy_image,
    } = images(store, &bc, ns).await?;
    let result = store
        .mutate_spawning_as::<BuildConfig, _>(ns, name, None, UpdateScope::All, |bc| {
            evaluate(bc, &refs, &resolved, strategy_image.as_deref())
        })
        .await;
    match result {
        Ok((_, builds)) => {
            for b in builds {
                tracing::info!(namespace = ns, buildconfig = name, build = %b.metadata.name, "build requested");
            }
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Ok(()),
        Err(StoreError::Rejected(status)) => {
            tracing::info!(namespace = ns, buildconfig = name, reason = %status.message, "no build");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn evaluate(
    bc: &mut BuildConfig,
    refs: &[Option<(String, String, String)>],
    resolved: &[Option<Resolved>],
    strategy_image: Option<&str>,
) -> Result<Vec<(&'static KindInfo, Object)>, Status> {
    let mut causes: Vec<BuildTriggerCause> = Vec::new();
    let mut fired: Vec<(usize, String)> = Vec::new();
    let mut recorded_only = false;
    for (i, t) in bc.spec.triggers().iter().enumerate() {
        let (Some(Some((is, tag, _))), Some(Some(latest))) = (refs.get(i), resolved.get(i)) else {
            continue;
        };
        let last = t
            .image_change
            .as_ref()
            .and_then(|ic| ic.last_triggered_image_id.as_deref())
            .unwrap_or_default();
        if latest.pull_spec == last {
            continue;
        }
        if latest.produced_by_self {
            fired.push((i, latest.pull_spec.clone()));
            recorded_only = true;
            continue;
        }
        let from_ref = format!("{is}:{tag}");
        let seen = causes.iter().any(|c| {
            c.image_change_build
                .as_ref()
                .and_then(|ic| ic.from_ref.as_ref())
                .is_some_and(|f| f.name == from_ref)
        });
        if !seen {
            causes.push(BuildTriggerCause {
                message: "Image change".into(),
                image_change_build: Some(ImageChangeCause {
                    image_id: latest.pull_spec.clone(),
                    from_ref: Some(ObjectReference {
                        kind: "ImageStreamTag".into(),
                        name: from_ref,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        fired.push((i, latest.pull_spec.clone()));
    }
    let config_change = bc.spec.triggers().iter().any(|t| t.kind == "ConfigChange");
    if causes.is_empty() && config_change && instantiate::last_version(bc) == 0 {
        causes.push(instantiate::cause("Build configuration change"));
    }
    let record = |bc: &mut BuildConfig, all: bool| {
        for (i, t) in bc.spec.triggers.iter_mut().flatten().enumerate() {
            let newest = fired
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, p)| p.clone())
                .or_else(|| {
                    all.then(|| {
                        resolved
                            .get(i)
                            .and_then(|r| r.as_ref())
                            .map(|r| r.pull_spec.clone())
                    })
                    .flatten()
                });
            if let (Some(p), Some(ic)) = (newest, t.image_change.as_mut()) {
                ic.last_triggered_image_id = Some(p);
            }
        }
    };
    if causes.is_empty() {
        if recorded_only {
            record(bc, false);
        }
        return Ok(Vec::new());
    }
    // Every image trigger now records where its tag stands.
    record(bc, true);
    let build = instantiate::new_build(bc, causes, strategy_image)?;
    Ok(vec![child(&build)?])
}

fn child(build: &Build) -> Result<(&'static KindInfo, Object), Status> {
    let obj = build
        .to_object()
        .map_err(|e| Status::internal(format!("encoding the build: {e}")))?;
    Ok((&podspace_api::kinds::BUILD, obj))
}

/// How a requested build gets its source.
pub enum Input {
    /// From the config (git, inline Dockerfile).
    Config,
    /// Uploaded binary input.
    Binary {
        as_file: String,
        revision: Option<Box<podspace_api::model::build::SourceRevision>>,
    },
    /// Re-run of an existing build.
    Clone(Box<Build>),
}

/// `buildconfigs/NAME/instantiate` and friends (builds.md §4): resolve the
/// config's images, record them on every image trigger (a manual build
/// also consumes pending image changes), then number and create the build,
/// all in one transaction on the config. Returns the new Build.
pub async fn instantiate(
    store: &Store,
    ns: &str,
    name: &str,
    request: &BuildRequest,
    input: Input,
) -> Result<Build, StoreError> {
    let bc = store.get_as::<BuildConfig>(ns, name).await?;
    let Images {
        resolved,
        strategy_image,
        ..
    } = images(store, &bc, ns).await?;
    let causes = request
        .triggered_by
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec![instantiate::cause("Manually triggered")]);
    let expected_version = request.last_version;
    let (_, mut created) = store
        .mutate_spawning_as::<BuildConfig, _>(ns, name, None, UpdateScope::All, |bc| {
            if let Some(v) = expected_version {
                if v != instantiate::last_version(bc) {
                    return Err(Status::bad_request(format!(
                        "the build configuration's lastVersion is {}, not {v}",
                        instantiate::last_version(bc)
                    )));
                }
            }
            for (t, r) in bc.spec.triggers.iter_mut().flatten().zip(&resolved) {
                if let (Some(r), Some(ic)) = (r, t.image_change.as_mut()) {
                    ic.last_triggered_image_id = Some(r.pull_spec.clone());
                }
            }
            let mut build = match &input {
                Input::Config => instantiate::new_build(bc, causes, strategy_image.as_deref())?,
                Input::Binary { as_file, revision } => instantiate::new_binary_build(
                    bc,
                    causes,
                    strategy_image.as_deref(),
                    as_file,
                    revision.as_deref().cloned(),
                )?,
                Input::Clone(old) => instantiate::clone_build(bc, old, causes)?,
            };
            instantiate::apply_request(&mut build, request)?;
            Ok(vec![child(&build)?])
        })
        .await?;
    let build = created
        .pop()
        .ok_or_else(|| StoreError::Config("instantiate created no build".into()))?;
    Build::from_object(&build).map_err(StoreError::from)
}

async fn strategy_pull_spec(
    store: &Store,
    bc: &BuildConfig,
    ns: &str,
) -> Result<Option<String>, StoreError> {
    let Some(f) = bc.spec.strategy.as_ref().and_then(|s| s.from()) else {
        return Ok(None);
    };
    let from_ns = f
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    match f.kind.as_str() {
        "ImageStreamImage" => image_pull_spec(store, &f.name, from_ns).await,
        "ImageStreamTag" => {
            let Some((is, tag)) = imagestreams::split_istag(&f.name) else {
                return Ok(None);
            };
            Ok(resolve(store, bc, from_ns, is, tag)
                .await?
                .map(|r| r.pull_spec))
        }
        _ => Ok(None),
    }
}

/// An ImageStreamImage `from` (`stream@id`, id a digest or a unique prefix
/// of one) as the pull spec the stream's history recorded for that image.
async fn image_pull_spec(
    store: &Store,
    name: &str,
    from_ns: &str,
) -> Result<Option<String>, StoreError> {
    let Some((is, id)) = name.split_once('@') else {
        return Ok(None);
    };
    let Some(stream) = store.find_as::<ImageStream>(from_ns, is).await? else {
        return Ok(None);
    };
    let Ok(Some(event)) = imagestreams::find_image(&stream, id) else {
        return Ok(None);
    };
    let repo = &stream.status.docker_image_repository;
    Ok(if !repo.is_empty() && !event.image.is_empty() {
        Some(format!("{repo}@{}", event.image))
    } else {
        Some(event.docker_image_reference).filter(|r| !r.is_empty())
    })
}
