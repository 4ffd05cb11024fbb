//! The import controller. A spec tag `from: DockerImage` (not a reference)
//! is imported when its generation is newer than the stream's history or
//! last failure shows; a scheduled one also whenever `interval` has passed.
//! The result lands as a tag event (history grows only for a new digest)
//! or an `ImportSuccess=False` condition. Work is found through the event
//! log, from a cursor saved in the store, and by a periodic sweep.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use podspace_api::selector::LabelSelector;
use podspace_api::store::{ChangeWaiter, Pending, Store, StoreError, UpdateScope};
use podspace_api::{imagestreams, Object};
use podspace_registry::manifest::Kind;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::remote::{Client, Imported, RemoteRef};

const CONSUMER: &str = "imports";

/// Runs until `shutdown` turns true; scheduled tags are re-checked every `interval`.
pub async fn run(store: Store, interval: Duration, shutdown: watch::Receiver<bool>) {
    let client = Client::new();
    let mut waiter = ChangeWaiter::new(&store, shutdown, Duration::from_millis(500).min(interval));
    let mut last_sweep = Instant::now();
    let mut checked: HashMap<(String, String), Instant> = HashMap::new();
    loop {
        let sweep = last_sweep.elapsed() >= interval.min(Duration::from_secs(60));
        if sweep {
            last_sweep = Instant::now();
        }
        if let Err(e) = pass(&store, &client, interval, sweep, &mut checked).await {
            tracing::warn!(error = %e, "import controller pass failed; retrying");
        }
        if !waiter.wait().await {
            return;
        }
    }
}

async fn pass(
    store: &Store,
    client: &Client,
    interval: Duration,
    sweep: bool,
    checked: &mut HashMap<(String, String), Instant>,
) -> Result<(), StoreError> {
    let is_kind = &podspace_api::kinds::IMAGE_STREAM;
    let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
    let first_pass = store.consumer_position(CONSUMER).await? == 0;
    let mut sweep = sweep || first_pass;
    let upto = match store.pending(CONSUMER, Some("ImageStream"), 1000).await? {
        Pending::Nothing if first_pass => Some(store.current_rv().await?),
        Pending::Nothing => None,
        Pending::Behind { upto } => {
            sweep = true;
            Some(upto)
        }
        Pending::Changed { upto, objects } => {
            touched.extend(objects.into_iter().map(|(_, ns, name)| (ns, name)));
            Some(upto)
        }
    };
    if sweep {
        let (all, _) = store
            .list(is_kind, "", &LabelSelector::everything())
            .await?;
        for s in all {
            touched.insert((s.metadata.namespace, s.metadata.name));
        }
    }
    for (ns, name) in touched {
        let key = (ns.clone(), name.clone());
        let due = checked.get(&key).is_none_or(|t| t.elapsed() >= interval);
        if import_stream(store, client, &ns, &name, due).await? {
            checked.insert(key, Instant::now());
        }
    }
    match upto {
        Some(rv) => store.set_consumer_position(CONSUMER, rv).await,
        None => Ok(()),
    }
}

/// The generation the history (or the last failure) has seen for `tag`.
fn observed(stream: &Object, tag: &str) -> i64 {
    let entry = stream
        .body
        .get("status")
        .and_then(|s| s.get("tags"))
        .and_then(Value::as_array)
        .and_then(|tags| {
            tags.iter()
                .find(|t| t.get("tag").and_then(Value::as_str) == Some(tag))
        });
    let from_items = entry
        .and_then(|e| e.pointer("/items/0/generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let from_conditions = entry
        .and_then(|e| e.get("conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("generation").and_then(Value::as_i64))
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
    let is_kind = &podspace_api::kinds::IMAGE_STREAM;
    let stream = match store.get(is_kind, ns, name).await {
        Ok(s) => s,
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let spec_tags = stream
        .body
        .get("spec")
        .and_then(|s| s.get("tags"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut results: Vec<(String, i64, Outcome)> = Vec::new();
    let mut checked_scheduled = false;
    for t in &spec_tags {
        let tag = t
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let importable = t.pointer("/from/kind").and_then(Value::as_str) == Some("DockerImage")
            && t.get("reference").and_then(Value::as_bool) != Some(true);
        if !importable {
            continue;
        }
        let generation = t.get("generation").and_then(Value::as_i64).unwrap_or(0);
        let scheduled = t
            .pointer("/importPolicy/scheduled")
            .and_then(Value::as_bool)
            == Some(true);
        if !(generation > observed(&stream, &tag) || scheduled && scheduled_due) {
            continue;
        }
        checked_scheduled |= scheduled;
        let from = t
            .pointer("/from/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let insecure = t.pointer("/importPolicy/insecure").and_then(Value::as_bool) == Some(true);
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
            match store
                .create(&podspace_api::kinds::IMAGE, image_object(imported))
                .await
            {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let result = store
        .mutate(is_kind, ns, name, None, UpdateScope::Status, |s| {
            for (tag, generation, outcome) in &results {
                match outcome {
                    Outcome::Done(imported) => {
                        imagestreams::add_event(
                            s,
                            tag,
                            json!({"created": now, "dockerImageReference": imported.reference, "image": imported.digest, "generation": generation}),
                        );
                        clear_conditions(s, tag);
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
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (secrets, _) = store
        .list(
            &podspace_api::kinds::SECRET,
            ns,
            &LabelSelector::everything(),
        )
        .await?;
    for secret in secrets {
        let ty = secret
            .body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = match ty {
            "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
            "kubernetes.io/dockercfg" => ".dockercfg",
            _ => continue,
        };
        let Some(raw) = secret
            .body
            .get("data")
            .and_then(|d| d.get(field))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let Ok(config) = b64
            .decode(raw)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|_| ()))
        else {
            continue;
        };
        let auths = config.get("auths").unwrap_or(&config);
        let Some(entries) = auths.as_object() else {
            continue;
        };
        for (host, entry) in entries {
            let host = host
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            if host != registry {
                continue;
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(Value::as_str),
                entry.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some((u.to_string(), p.to_string())));
            }
            let decoded = entry
                .get("auth")
                .and_then(Value::as_str)
                .and_then(|a| b64.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Ok(Some((u.to_string(), p.to_string())));
            }
        }
    }
    Ok(None)
}

fn status_entry<'a>(s: &'a mut Object, tag: &str) -> Option<&'a mut Value> {
    let status = s.body.entry("status").or_insert_with(|| json!({}));
    if !status.get("tags").is_some_and(Value::is_array) {
        status["tags"] = json!([]);
    }
    let tags = status.get_mut("tags")?.as_array_mut()?;
    let i = match tags
        .iter()
        .position(|t| t.get("tag").and_then(Value::as_str) == Some(tag))
    {
        Some(i) => i,
        None => {
            tags.push(json!({"tag": tag, "items": []}));
            tags.len() - 1
        }
    };
    tags.get_mut(i)
}

fn clear_conditions(s: &mut Object, tag: &str) {
    if let Some(entry) = status_entry(s, tag) {
        if let Some(obj) = entry.as_object_mut() {
            obj.remove("conditions");
        }
    }
}

fn fail(s: &mut Object, tag: &str, generation: i64, message: &str, now: &str) {
    if let Some(entry) = status_entry(s, tag) {
        entry["conditions"] = json!([{
            "type": "ImportSuccess", "status": "False", "reason": "ImportFailed",
            "message": message, "generation": generation, "lastTransitionTime": now,
        }]);
    }
}

/// The Image record of an import.
pub fn image_object(imported: &Imported) -> Object {
    let mut image = Object::new("Image", "", &imported.digest);
    let mut size = imported.manifest_size as i64;
    if let Kind::Image { config, layers } = &imported.manifest.kind {
        size += config.size + layers.iter().map(|l| l.size).sum::<i64>();
        image.body.insert(
            "dockerImageLayers".into(),
            Value::Array(layers.iter().map(|l| json!({"name": l.digest.to_string(), "size": l.size, "mediaType": l.media_type})).collect()),
        );
    }
    image.body.insert(
        "dockerImageMetadata".into(),
        podspace_registry::manifest::image_metadata(&imported.digest, &imported.config, size),
    );
    image
        .body
        .insert("dockerImageReference".into(), json!(imported.reference));
    image.body.insert(
        "dockerImageManifestMediaType".into(),
        json!(imported.media_type),
    );
    image
        .body
        .insert("dockerImageMetadataVersion".into(), json!("1.0"));
    image
}
