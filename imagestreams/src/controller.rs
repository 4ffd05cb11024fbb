//! The import controller. A spec tag `from: DockerImage` (not a reference)
//! is imported when its generation is newer than the stream's history or
//! last failure shows; a scheduled one also whenever `interval` has passed.
//! The result lands as a tag event (history grows only for a new digest)
//! or an `ImportSuccess=False` condition. Work is found through the event
//! log, from a cursor saved in the store, and by a periodic sweep.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use podspace_api::imagestreams;
use podspace_api::model::{
    Image, ImageLayer, ImageStream, NamedTagEventList, Resource, Secret, TagEvent,
    TagEventCondition,
};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Change, Store, StoreError, UpdateScope};
use podspace_oci::manifest::Kind;
use podspace_runtime::{Action, Controller};

use crate::remote::{Client, Imported, RemoteRef};

/// The import controller, run by `podspace_runtime`; a key is an
/// ImageStream (namespace, name).
pub struct Imports {
    client: Client,
    interval: Duration,
    /// When each stream's scheduled tags were last checked.
    checked: Mutex<HashMap<(String, String), Instant>>,
}

impl Imports {
    /// Scheduled tags are re-checked every `interval`.
    pub fn new(interval: Duration) -> Self {
        Imports {
            client: Client::new(),
            interval,
            checked: Mutex::default(),
        }
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Instant>> {
        // The map only holds timestamps: a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is still good.
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[podspace_runtime::async_trait]
impl Controller for Imports {
    type Key = (String, String);

    fn name(&self) -> &'static str {
        "imports"
    }

    fn watches(&self) -> &'static [&'static str] {
        &["ImageStream"]
    }

    async fn keys_for(
        &self,
        _store: &Store,
        change: &Change,
    ) -> Result<Vec<Self::Key>, StoreError> {
        Ok(vec![(change.namespace.clone(), change.name.clone())])
    }

    async fn all_keys(&self, store: &Store) -> Result<Vec<Self::Key>, StoreError> {
        let (all, _) = store
            .list_as::<ImageStream>("", &LabelSelector::everything())
            .await?;
        Ok(all
            .into_iter()
            .map(|s| (s.metadata.namespace, s.metadata.name))
            .collect())
    }

    async fn reconcile(&self, store: &Store, key: &Self::Key) -> Result<Action, StoreError> {
        let due = self
            .checked()
            .get(key)
            .is_none_or(|t| t.elapsed() >= self.interval);
        if import_stream(store, &self.client, &key.0, &key.1, due).await? {
            self.checked().insert(key.clone(), Instant::now());
        }
        Ok(Action::Done)
    }

    /// Scheduled tags: every stream is looked at this often (its own due
    /// time decides).
    fn period(&self) -> Option<Duration> {
        Some(self.interval.min(Duration::from_secs(60)))
    }

    async fn tick(&self, store: &Store) -> Result<Vec<Self::Key>, StoreError> {
        self.all_keys(store).await
    }
}

/// The generation the history (or the last failure) has seen for `tag`.
fn observed(stream: &ImageStream, tag: &str) -> i64 {
    let Some(entry) = stream.status.tag(tag) else {
        return 0;
    };
    let from_items = entry.items.first().map_or(0, |e| e.generation);
    let from_conditions = entry
        .conditions
        .iter()
        .flatten()
        .map(|c| c.generation)
        .max()
        .unwrap_or(0);
    from_items.max(from_conditions)
}

enum Outcome {
    Done(Box<Imported>),
    Failed(String),
}

/// Imports what is due in one stream; returns whether scheduled tags were checked.
async fn import_stream(
    store: &Store,
    client: &Client,
    ns: &str,
    name: &str,
    scheduled_due: bool,
) -> Result<bool, StoreError> {
    let Some(stream) = store.find_as::<ImageStream>(ns, name).await? else {
        return Ok(false);
    };
    let mut results: Vec<(String, i64, Outcome)> = Vec::new();
    let mut checked_scheduled = false;
    for t in stream.spec.tags.iter().flatten() {
        let tag = t.name.clone();
        let Some(from) = t.from.as_ref().filter(|f| f.kind == "DockerImage") else {
            continue;
        };
        if t.reference == Some(true) {
            continue;
        }
        let generation = t.generation.unwrap_or(0);
        let policy = t.import_policy.clone().unwrap_or_default();
        let scheduled = policy.scheduled();
        if !(generation > observed(&stream, &tag) || scheduled && scheduled_due) {
            continue;
        }
        checked_scheduled |= scheduled;
        let from = from.name.as_str();
        let insecure = policy.insecure();
        let outcome = match RemoteRef::parse(from) {
            Err(e) => Outcome::Failed(e.to_string()),
            Ok(r) => match client
                .import(
                    &r,
                    insecure,
                    pull_secret(store, ns, &r.registry).await?.as_ref(),
                )
                .await
            {
                Ok(imported) => Outcome::Done(Box::new(imported)),
                Err(e) => Outcome::Failed(e.to_string()),
            },
        };
        results.push((tag, generation, outcome));
    }
    if results.is_empty() {
        return Ok(checked_scheduled);
    }
    for (_, _, outcome) in &results {
        if let Outcome::Done(imported) = outcome {
            match store.create_as(&image_object(imported)).await {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let now = imagestreams::now();
    let result = store
        .mutate_as::<ImageStream, _>(ns, name, None, UpdateScope::Status, |s| {
            for (tag, generation, outcome) in &results {
                match outcome {
                    Outcome::Done(imported) => {
                        let event = TagEvent {
                            created: now.clone(),
                            docker_image_reference: imported.reference.clone(),
                            image: imported.digest.clone(),
                            generation: *generation,
                            ..Default::default()
                        };
                        imagestreams::add_event(s, tag, event);
                        s.status.tag_mut(tag).conditions = None;
                    }
                    Outcome::Failed(message) => {
                        tracing::info!(namespace = ns, stream = name, tag, error = %message, "import failed");
                        fail(s, tag, *generation, message, &now);
                    }
                }
            }
            Ok(())
        })
        .await;
    match result {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(checked_scheduled),
        Err(e) => Err(e),
    }
}

/// Credentials for `registry` from the project's pull secrets: Secrets of
/// type `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`) or
/// `kubernetes.io/dockercfg` (`.dockercfg`) whose `auths` name the host.
pub async fn pull_secret(
    store: &Store,
    ns: &str,
    registry: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let (secrets, _) = store
        .list_as::<Secret>(ns, &LabelSelector::everything())
        .await?;
    for secret in secrets {
        let pull = matches!(
            secret.secret_type.as_deref(),
            Some("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg")
        );
        if !pull {
            continue;
        }
        if let Some(creds) = secret.registry_credentials().remove(registry) {
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

fn fail(s: &mut ImageStream, tag: &str, generation: i64, message: &str, now: &str) {
    let entry: &mut NamedTagEventList = s.status.tag_mut(tag);
    entry.conditions = Some(vec![TagEventCondition {
        kind: "ImportSuccess".into(),
        status: "False".into(),
        reason: "ImportFailed".into(),
        message: message.into(),
        generation,
        last_transition_time: Some(now.into()),
        ..Default::default()
    }]);
}

/// The Image record of an import.
pub fn image_object(imported: &Imported) -> Image {
    let mut image = Image::named("", &imported.digest);
    let mut size = imported.manifest_size as i64;
    if let Kind::Image { config, layers } = &imported.manifest.kind {
        size += config.size + layers.iter().map(|l| l.size).sum::<i64>();
        image.docker_image_layers = layers
            .iter()
            .map(|l| ImageLayer {
                name: l.digest.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect();
    }
    image.docker_image_metadata =
        podspace_oci::manifest::image_metadata(&imported.digest, &imported.config, size);
    image.docker_image_reference = imported.reference.clone();
    image.docker_image_manifest_media_type = imported.media_type.clone();
    image.docker_image_metadata_version = "1.0".into();
    image
}
