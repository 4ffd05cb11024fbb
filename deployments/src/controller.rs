//! The trigger controller: follows the store's durable event log and keeps
//! every DeploymentConfig deployed at the images its ImageChange triggers
//! name and the template its ConfigChange trigger watches.
//!
//! Exactly once, across crashes and replicas: the log is read from a
//! cursor saved in the store (so an event may be seen twice, never missed),
//! and a firing is one transaction that re-checks, under the store's writer
//! lock, that the trigger's `lastTriggeredImage` differs from the stream's
//! *current* image before it records the new version and its deployment.
//! Replaying an event finds the firing already done and does nothing.

use std::collections::BTreeMap;

use podspace_api::model::deploymentconfig::DeploymentCauseImageTrigger;
use podspace_api::model::{
    DeploymentConfig, ImageStream, ObjectReference, ReplicationController, Resource,
};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Change, Store, StoreError, UpdateScope};
use podspace_api::{imagestreams, KindInfo, Object, Status};
use podspace_runtime::{Action, Controller};

use crate::rollout;

/// The deployment trigger controller, run by `podspace_runtime`; a key is a
/// DeploymentConfig (namespace, name).
pub struct DeploymentTriggers;

#[podspace_runtime::async_trait]
impl Controller for DeploymentTriggers {
    type Key = (String, String);

    fn name(&self) -> &'static str {
        "deployments"
    }

    fn watches(&self) -> &'static [&'static str] {
        &["ImageStream", "DeploymentConfig"]
    }

    async fn keys_for(&self, store: &Store, change: &Change) -> Result<Vec<Self::Key>, StoreError> {
        match change.kind.as_str() {
            "DeploymentConfig" => Ok(vec![(change.namespace.clone(), change.name.clone())]),
            // The configs whose triggers follow this stream, in any project.
            _ => {
                let stream = format!("{}/{}", change.namespace, change.name);
                store
                    .indexed(IMAGE_TRIGGERS, "DeploymentConfig", &stream)
                    .await
            }
        }
    }

    async fn all_keys(&self, store: &Store) -> Result<Vec<Self::Key>, StoreError> {
        let (dcs, _) = store
            .list_as::<DeploymentConfig>("", &LabelSelector::everything())
            .await?;
        Ok(dcs
            .into_iter()
            .map(|dc| (dc.metadata.namespace, dc.metadata.name))
            .collect())
    }

    async fn reconcile(&self, store: &Store, key: &Self::Key) -> Result<Action, StoreError> {
        let mut outcomes = reconcile_many(store, std::slice::from_ref(key)).await?;
        outcomes.pop().unwrap_or(Ok(Action::Done))
    }

    /// The configs one tag change touches fire in one transaction.
    async fn reconcile_many(
        &self,
        store: &Store,
        keys: &[Self::Key],
    ) -> Vec<Result<Action, StoreError>> {
        match reconcile_many(store, keys).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let why = e.to_string();
                keys.iter()
                    .map(|_| Err(StoreError::Config(why.clone())))
                    .collect()
            }
        }
    }
}

/// The index of DeploymentConfigs by the image streams (`namespace/name`)
/// their ImageChange triggers follow.
pub const IMAGE_TRIGGERS: &str = "image-triggers";

pub struct ImageTriggerIndex;

impl podspace_api::store::Indexer for ImageTriggerIndex {
    fn index(&self) -> &'static str {
        IMAGE_TRIGGERS
    }

    fn kind(&self) -> &'static str {
        "DeploymentConfig"
    }

    fn values(&self, obj: &Object) -> Vec<String> {
        let Ok(dc) = DeploymentConfig::from_object(obj) else {
            return Vec::new();
        };
        dc.spec
            .triggers()
            .iter()
            .filter_map(|t| t.image_source(&dc.metadata.namespace))
            .map(|(is, _, ns)| format!("{ns}/{is}"))
            .collect()
    }
}

/// The current pull spec of every ImageChange trigger's tag (None: no image yet).
async fn current_images(
    store: &Store,
    dc: &DeploymentConfig,
    resolved: &mut BTreeMap<(String, String, String), Option<String>>,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut out = Vec::new();
    for t in dc.spec.triggers() {
        let Some((is, tag, ns)) = t.image_source(&dc.metadata.namespace) else {
            out.push(None);
            continue;
        };
        // Many configs of one batch watch the same tag: it is read once.
        let key = (ns, is, tag);
        if let Some(image) = resolved.get(&key) {
            out.push(image.clone());
            continue;
        }
        let (ns, is, tag) = &key;
        let image = store
            .find_as::<ImageStream>(ns, is)
            .await?
            .and_then(|stream| {
                let event =
                    imagestreams::current_event(&stream, tag).filter(|e| !e.image.is_empty())?;
                Some(imagestreams::resolved_reference(&stream, tag, event))
            });
        resolved.insert(key, image.clone());
        out.push(image);
    }
    Ok(out)
}

/// What a config's firing is decided on, read before the write.
struct Seen {
    images: Vec<Option<String>>,
    deployed_hash: Option<String>,
    version: i64,
}

/// Brings DeploymentConfigs up to date, all in one write transaction; a
/// no-op for those that are. One outcome per key.
pub async fn reconcile_many(
    store: &Store,
    keys: &[(String, String)],
) -> Result<Vec<Result<Action, StoreError>>, StoreError> {
    let mut outcomes: Vec<Result<Action, StoreError>> =
        keys.iter().map(|_| Ok(Action::Done)).collect();
    let started = std::time::Instant::now();
    let mut seen = Vec::with_capacity(keys.len());
    let mut resolved = BTreeMap::new();
    let mut targets = Vec::with_capacity(keys.len());
    let mut slots = Vec::with_capacity(keys.len());
    // One query for every config of the batch: most of them usually come
    // back unchanged (their own deploy's events), and those must be cheap.
    let configs = store.find_many_as::<DeploymentConfig>(keys).await?;
    for (i, ((ns, name), dc)) in keys.iter().zip(configs).enumerate() {
        let Some(dc) = dc else {
            continue;
        };
        let version = rollout::latest_version(&dc);
        let deployed_hash = if version > 0 && dc.spec.has_config_change() {
            store
                .find_as::<ReplicationController>(ns, &format!("{name}-{version}"))
                .await?
                .and_then(|rc| rc.metadata.annotations.get(rollout::TEMPLATE_HASH).cloned())
        } else {
            None
        };
        seen.push(Seen {
            images: current_images(store, &dc, &mut resolved).await?,
            deployed_hash,
            version,
        });
        targets.push((ns.clone(), name.clone()));
        slots.push(i);
    }
    if targets.is_empty() {
        return Ok(outcomes);
    }
    let read_took = started.elapsed();
    let written = store
        .mutate_many_spawning_as::<DeploymentConfig, _>(&targets, UpdateScope::All, |j, dc| {
            let s = &seen[j];
            // Another writer deployed since we looked: its events bring us back.
            if rollout::latest_version(dc) != s.version {
                return Ok(Vec::new());
            }
            fire(dc, &s.images, s.deployed_hash.as_deref())
        })
        .await?;
    tracing::debug!(
        configs = targets.len(),
        read_ms = read_took.as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "deployment triggers reconciled"
    );
    for (j, result) in written.into_iter().enumerate() {
        let (ns, name) = &targets[j];
        outcomes[slots[j]] = match result {
            Ok((_, created)) => {
                for rc in created {
                    tracing::info!(namespace = %ns, deploymentconfig = %name, deployment = %rc.metadata.name, "deployed");
                }
                Ok(Action::Done)
            }
            Err(StoreError::NotFound { .. }) => Ok(Action::Done),
            Err(e) => Err(e),
        };
    }
    Ok(outcomes)
}

/// Pull specs name the same image when their digests agree, wherever the
/// image is pulled from: a new reference alone does not redeploy.
fn same_image(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((_, da)), Some((_, db))) => da == db,
        _ => a == b,
    }
}

/// Decides, on the stored config, whether a new version is due.
fn fire(
    dc: &mut DeploymentConfig,
    images: &[Option<String>],
    deployed_hash: Option<&str>,
) -> Result<Vec<(&'static KindInfo, Object)>, Status> {
    let mut changed_by: Option<(String, String)> = None;
    let mut all_resolved = true;
    let ns = dc.metadata.namespace.clone();
    for (t, image) in dc.spec.triggers.iter_mut().flatten().zip(images) {
        let Some((is, tag, _)) = t.image_source(&ns) else {
            continue;
        };
        if !t.automatic() {
            continue;
        }
        let Some(params) = t.image_change_params.as_mut() else {
            continue;
        };
        let last = params.last_image().unwrap_or_default().to_string();
        match image {
            Some(img) if !same_image(img, &last) => {
                params.last_triggered_image = Some(img.clone());
                changed_by = Some((format!("{is}:{tag}"), img.clone()));
            }
            Some(_) => {}
            None if last.is_empty() => all_resolved = false,
            None => {}
        }
    }
    if !all_resolved {
        // A deployment waits for every image it needs; the triggers that
        // did resolve are remembered.
        return Ok(Vec::new());
    }
    // A container without an image cannot run: postpone.
    let template = rollout::resolved_template(dc);
    if rollout::lacks_an_image(&template) {
        return Ok(Vec::new());
    }
    let cause = match changed_by {
        Some((istag, image)) => {
            let mut cause = rollout::cause("ImageChange", &format!("image change: {image}"));
            cause.image_trigger = Some(DeploymentCauseImageTrigger {
                from: ObjectReference {
                    kind: "ImageStreamTag".into(),
                    name: istag,
                    ..Default::default()
                },
            });
            cause
        }
        None if dc.spec.has_config_change()
            && deployed_hash != Some(rollout::template_hash(&template).as_str()) =>
        {
            rollout::cause("ConfigChange", "config change")
        }
        None => return Ok(Vec::new()),
    };
    let rc = rollout::deploy(dc, cause)
        .to_object()
        .map_err(|e| Status::internal(format!("encoding the deployment: {e}")))?;
    Ok(vec![(ReplicationController::KIND, rc)])
}
