//! The ImageStream's status history, as a push changes it (the
//! ImageStreamMapping step): the registry calls this when a manifest is
//! pushed by tag. The image streams issue extends these rules (tracking
//! tags, imports); the object semantics stay here, next to the model, so
//! that every writer applies the same ones.

use serde_json::{json, Value};

use crate::kinds::by_kind;
use crate::meta::Object;
use crate::status::Status;
use crate::store::{Store, StoreError, UpdateScope};

/// An image just pushed into `<namespace>/<stream>`.
pub struct PushedImage {
    /// The Image object (cluster-scoped, named by digest).
    pub image: Object,
    /// `<registry host>/<namespace>/<stream>@<digest>`
    pub reference: String,
}

fn kind(name: &str) -> Result<&'static crate::KindInfo, StoreError> {
    by_kind(name).ok_or_else(|| StoreError::Config(format!("kind {name} missing")))
}

/// Records `pushed` and tags it as `<stream>:<tag>`, creating the stream if
/// needed. Pushing the image a tag already points at changes nothing.
pub async fn record_push(
    store: &Store,
    ns: &str,
    stream: &str,
    tag: &str,
    repository: &str,
    pushed: PushedImage,
) -> Result<(), StoreError> {
    let digest = pushed.image.metadata.name.clone();
    match store.create(kind("Image")?, pushed.image).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    let is = kind("ImageStream")?;
    for _ in 0..5 {
        let apply = |o: &mut Object| -> Result<(), Status> {
            add_tag_event(o, tag, &digest, &pushed.reference, repository);
            Ok(())
        };
        match store
            .mutate(is, ns, stream, None, UpdateScope::Status, apply)
            .await
        {
            Err(StoreError::NotFound { .. }) => {
                let mut fresh = Object::new("ImageStream", ns, stream).with("spec", json!({}));
                fresh.metadata.generation = 1;
                add_tag_event(&mut fresh, tag, &digest, &pushed.reference, repository);
                match store.create(is, fresh).await {
                    Ok(_) => return Ok(()),
                    Err(StoreError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            other => return other.map(|_| ()),
        }
    }
    Err(StoreError::Config(format!(
        "image stream {ns}/{stream} kept changing"
    )))
}

/// Prepends a history entry for `tag` unless it already points at `digest`.
pub fn add_tag_event(
    stream: &mut Object,
    tag: &str,
    digest: &str,
    reference: &str,
    repository: &str,
) {
    let generation = stream.metadata.generation.max(1);
    let status = stream.body.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status["dockerImageRepository"] = json!(repository);
    if !status.get("tags").is_some_and(Value::is_array) {
        status["tags"] = json!([]);
    }
    let Some(tags) = status.get_mut("tags").and_then(Value::as_array_mut) else {
        return;
    };
    let event = json!({
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "dockerImageReference": reference,
        "image": digest,
        "generation": generation,
    });
    match tags
        .iter_mut()
        .find(|t| t.get("tag").and_then(Value::as_str) == Some(tag))
    {
        Some(t) => {
            let items = t
                .as_object_mut()
                .map(|m| m.entry("items").or_insert_with(|| json!([])));
            let Some(items) = items.and_then(Value::as_array_mut) else {
                return;
            };
            if items
                .first()
                .and_then(|i| i.get("image"))
                .and_then(Value::as_str)
                == Some(digest)
            {
                return;
            }
            items.insert(0, event);
        }
        None => tags.push(json!({"tag": tag, "items": [event]})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_grows_newest_first_and_repeats_are_ignored() {
        let mut s = Object::new("ImageStream", "p", "web");
        add_tag_event(&mut s, "latest", "sha256:a", "r/p/web@sha256:a", "r/p/web");
        add_tag_event(&mut s, "latest", "sha256:b", "r/p/web@sha256:b", "r/p/web");
        add_tag_event(&mut s, "latest", "sha256:b", "r/p/web@sha256:b", "r/p/web");
        add_tag_event(&mut s, "v1", "sha256:a", "r/p/web@sha256:a", "r/p/web");
        let tags = &s.body["status"]["tags"];
        let latest: Vec<_> = tags[0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["image"].as_str().unwrap())
            .collect();
        assert_eq!(latest, ["sha256:b", "sha256:a"]);
        assert_eq!(tags[1]["tag"], "v1");
        assert_eq!(s.body["status"]["dockerImageRepository"], "r/p/web");
    }
}
