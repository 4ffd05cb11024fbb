//! The ImageStream's status history, as a push changes it (the
//! ImageStreamMapping step): the registry calls this when a manifest is
//! pushed by tag. The image streams issue extends these rules (tracking
//! tags, imports); the object semantics stay here, next to the model, so
//! that every writer applies the same ones.

use serde_json::{json, Value};

use crate::meta::Object;
use crate::store::{ManifestRecord, Store, StoreError};

/// An image just pushed into `<namespace>/<stream>`.
pub struct PushedImage {
    /// The Image object (cluster-scoped, named by digest).
    pub image: Object,
    /// `<registry host>/<namespace>/<stream>@<digest>`
    pub reference: String,
}

/// Records a push by tag in one transaction: the manifest and registry tag,
/// the Image, and the stream's tag event (the stream is created if
/// needed). Pushing the image a tag already points at changes nothing.
pub async fn record_push(
    store: &Store,
    manifest: &ManifestRecord,
    ns: &str,
    stream: &str,
    tag: &str,
    repository: &str,
    pushed: PushedImage,
) -> Result<(), StoreError> {
    let digest = pushed.image.metadata.name.clone();
    let reference = pushed.reference.clone();
    store
        .put_tagged_manifest(manifest, tag, pushed.image, ns, stream, |o| {
            add_tag_event(o, tag, &digest, &reference, repository)
        })
        .await
}

/// Records an event for `tag` (see [`add_event`]) with the stream's current
/// generation, as a push does, and sets the stream's repository.
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
    let event = json!({
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "dockerImageReference": reference,
        "image": digest,
        "generation": generation,
    });
    add_event(stream, tag, event);
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Adds a tag event to `tag`'s history by the rules of OpenShift's image
/// streams: the same image, reference and generation change nothing; the
/// same image and reference only update the generation; a change of only one
/// of image or reference patches the newest entry; anything else becomes
/// the new newest entry. Tags that track `tag` (`from.kind: ImageStreamTag`
/// in the same stream) get the event too. Returns whether anything changed.
pub fn add_event(stream: &mut Object, tag: &str, event: Value) -> bool {
    let mut changed = add_one(stream, tag, &event);
    // Tracking tags, followed transitively; `seen` stops alias loops.
    let mut queue = vec![tag.to_string()];
    let mut seen = vec![tag.to_string()];
    while let Some(source) = queue.pop() {
        for follower in trackers(stream, &source) {
            if seen.contains(&follower) {
                continue;
            }
            seen.push(follower.clone());
            changed |= add_one(stream, &follower, &event);
            queue.push(follower);
        }
    }
    changed
}

/// Spec tags of the same stream whose `from` is `<source>` as an ImageStreamTag.
pub fn trackers(stream: &Object, source: &str) -> Vec<String> {
    let own = &stream.metadata.name;
    let tags = stream
        .body
        .get("spec")
        .and_then(|s| s.get("tags"))
        .and_then(Value::as_array);
    tags.into_iter()
        .flatten()
        .filter(|t| {
            let from = t.get("from");
            let kind = from.and_then(|f| str_of(f, "kind"));
            let name = from.and_then(|f| str_of(f, "name")).unwrap_or_default();
            let other_ns = from
                .and_then(|f| str_of(f, "namespace"))
                .is_some_and(|n| !n.is_empty() && n != stream.metadata.namespace);
            let target = match name.split_once(':') {
                Some((is, t)) if is == own => t,
                Some(_) => return false,
                None => name,
            };
            kind == Some("ImageStreamTag") && !other_ns && target == source
        })
        .filter_map(|t| str_of(t, "name").map(str::to_string))
        .collect()
}

fn add_one(stream: &mut Object, tag: &str, event: &Value) -> bool {
    let status = stream.body.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    if !status.get("tags").is_some_and(Value::is_array) {
        status["tags"] = json!([]);
    }
    let Some(tags) = status.get_mut("tags").and_then(Value::as_array_mut) else {
        return false;
    };
    let entry = match tags.iter().position(|t| str_of(t, "tag") == Some(tag)) {
        Some(i) => &mut tags[i],
        None => {
            tags.push(json!({"tag": tag, "items": [event.clone()]}));
            return true;
        }
    };
    if !entry.get("items").is_some_and(Value::is_array) {
        entry["items"] = json!([]);
    }
    let Some(items) = entry.get_mut("items").and_then(Value::as_array_mut) else {
        return false;
    };
    let Some(newest) = items.first_mut() else {
        items.push(event.clone());
        return true;
    };
    let same_image = str_of(newest, "image") == str_of(event, "image");
    let same_ref = str_of(newest, "dockerImageReference") == str_of(event, "dockerImageReference");
    let same_gen = newest.get("generation") == event.get("generation");
    match (same_image, same_ref) {
        (true, true) if same_gen => false,
        (true, true) => {
            newest["generation"] = event["generation"].clone();
            true
        }
        (true, false) | (false, true) => {
            *newest = event.clone();
            true
        }
        (false, false) => {
            items.insert(0, event.clone());
            if let Some(conditions) = entry.get_mut("conditions") {
                *conditions = json!([]);
            }
            true
        }
    }
}

/// `is:tag` → (`is`, `tag`).
pub fn split_istag(name: &str) -> Option<(&str, &str)> {
    let (is, tag) = name.split_once(':')?;
    (!is.is_empty() && crate::validation::tag_name(tag)).then_some((is, tag))
}

/// `is@id` → (`is`, `id`).
pub fn split_isimage(name: &str) -> Option<(&str, &str)> {
    let (is, id) = name.split_once('@')?;
    (!is.is_empty() && !id.is_empty()).then_some((is, id))
}

pub fn spec_tag<'a>(stream: &'a Object, tag: &str) -> Option<&'a Value> {
    stream
        .body
        .get("spec")?
        .get("tags")?
        .as_array()?
        .iter()
        .find(|t| str_of(t, "name") == Some(tag))
}

/// The newest event of `tag`, if any.
pub fn current_event<'a>(stream: &'a Object, tag: &str) -> Option<&'a Value> {
    stream
        .body
        .get("status")?
        .get("tags")?
        .as_array()?
        .iter()
        .find(|t| str_of(t, "tag") == Some(tag))?
        .get("items")?
        .as_array()?
        .first()
}

/// Sets (or adds) the spec tag `tag`; its generation becomes the stream's
/// next generation, which the store assigns for this spec change.
pub fn set_spec_tag(stream: &mut Object, tag: &str, mut value: Value) {
    let generation = stream.metadata.generation + 1;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("name".into(), json!(tag));
        obj.insert("generation".into(), json!(generation));
    }
    let spec = stream.body.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    if !spec.get("tags").is_some_and(Value::is_array) {
        spec["tags"] = json!([]);
    }
    if let Some(tags) = spec.get_mut("tags").and_then(Value::as_array_mut) {
        match tags.iter_mut().find(|t| str_of(t, "name") == Some(tag)) {
            Some(t) => *t = value,
            None => tags.push(value),
        }
    }
}

/// Removes the spec tag and the history of `tag`; false when neither was there.
pub fn remove_tag(stream: &mut Object, tag: &str) -> bool {
    let mut removed = false;
    for (field, key) in [("spec", "name"), ("status", "tag")] {
        if let Some(tags) = stream
            .body
            .get_mut(field)
            .and_then(|s| s.get_mut("tags"))
            .and_then(Value::as_array_mut)
        {
            let before = tags.len();
            tags.retain(|t| str_of(t, key) != Some(tag));
            removed |= tags.len() != before;
        }
    }
    removed
}

/// The event whose image id is `id` or starts with it (a unique prefix).
pub fn find_image(stream: &Object, id: &str) -> Result<Option<Value>, String> {
    let mut found: Option<&Value> = None;
    let tags = stream
        .body
        .get("status")
        .and_then(|s| s.get("tags"))
        .and_then(Value::as_array);
    for event in tags
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("items")?.as_array())
        .flatten()
    {
        let Some(image) = str_of(event, "image") else {
            continue;
        };
        let matches = image == id
            || image
                .strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(id.trim_start_matches("sha256:")))
                && id.len() >= 7;
        if matches {
            if found.is_some_and(|f| str_of(f, "image") != Some(image)) {
                return Err(format!("{id:?} matches more than one image"));
            }
            found = Some(event);
        }
    }
    Ok(found.cloned())
}

/// The pull spec a consumer should use for an event, by the spec tag's
/// reference policy: `Local` pulls through our registry.
pub fn resolved_reference(stream: &Object, tag: &str, event: &Value) -> String {
    let local = spec_tag(stream, tag)
        .and_then(|t| t.get("referencePolicy"))
        .and_then(|p| str_of(p, "type"))
        == Some("Local");
    let repo = stream
        .body
        .get("status")
        .and_then(|s| str_of(s, "dockerImageRepository"));
    match (local, repo, str_of(event, "image")) {
        (true, Some(repo), Some(image)) => format!("{repo}@{image}"),
        _ => str_of(event, "dockerImageReference")
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(image: &str, reference: &str, generation: i64) -> Value {
        json!({"created": "2026-01-01T00:00:00Z", "image": image, "dockerImageReference": reference, "generation": generation})
    }

    fn images(s: &Object, tag: &str) -> Vec<(String, i64)> {
        s.body["status"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == tag)
            .map(|t| {
                t["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| {
                        (
                            i["image"].as_str().unwrap().to_string(),
                            i["generation"].as_i64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn generation_rules() {
        let mut s = Object::new("ImageStream", "p", "web");
        assert!(add_event(&mut s, "t", event("a", "r@a", 1)));
        assert!(
            !add_event(&mut s, "t", event("a", "r@a", 1)),
            "identical: no change"
        );
        assert!(
            add_event(&mut s, "t", event("a", "r@a", 2)),
            "same image and reference: generation in place"
        );
        assert_eq!(images(&s, "t"), [("a".to_string(), 2)]);
        assert!(
            add_event(&mut s, "t", event("a", "mirror@a", 2)),
            "only the reference differs: patched in place"
        );
        assert_eq!(images(&s, "t").len(), 1);
        assert!(add_event(&mut s, "t", event("b", "r@b", 3)));
        assert_eq!(
            images(&s, "t"),
            [("b".to_string(), 3), ("a".to_string(), 2)]
        );
    }

    #[test]
    fn tracking_tags_follow_their_source() {
        let mut s = Object::new("ImageStream", "p", "web").with(
            "spec",
            json!({"tags": [
                {"name": "latest", "from": {"kind": "ImageStreamTag", "name": "v2"}},
                {"name": "stable", "from": {"kind": "ImageStreamTag", "name": "web:latest"}},
                {"name": "other", "from": {"kind": "ImageStreamTag", "name": "v2", "namespace": "elsewhere"}},
                {"name": "loop-a", "from": {"kind": "ImageStreamTag", "name": "loop-b"}},
                {"name": "loop-b", "from": {"kind": "ImageStreamTag", "name": "loop-a"}}
            ]}),
        );
        add_event(&mut s, "v2", event("x", "r@x", 1));
        assert_eq!(images(&s, "latest"), [("x".to_string(), 1)]);
        assert_eq!(
            images(&s, "stable"),
            [("x".to_string(), 1)],
            "followed transitively"
        );
        assert!(
            images(&s, "other").is_empty(),
            "another namespace's tag is not tracked"
        );
        add_event(&mut s, "loop-a", event("y", "r@y", 1));
        assert_eq!(images(&s, "loop-b"), [("y".to_string(), 1)], "a loop ends");
    }

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
