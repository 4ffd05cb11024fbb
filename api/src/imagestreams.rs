//! The ImageStream's status history, as a push changes it (the
//! ImageStreamMapping step): the registry calls this when a manifest is
//! pushed by tag. The image streams issue extends these rules (tracking
//! tags, imports); the object semantics stay here, next to the model, so
//! that every writer applies the same ones.

use crate::meta::Object;
use crate::model::{ImageStream, Resource, TagEvent, TagReference};

/// How a push by tag changes its stream (the stream is created if needed):
/// the tag event for `digest` pulled as `reference`, and the stream's
/// `repository`. Pushing the image a tag already points at changes nothing.
/// The registry applies it in the transaction that records the manifest.
pub fn push_event<'a>(
    tag: &'a str,
    digest: &'a str,
    reference: &'a str,
    repository: &'a str,
) -> impl Fn(&mut Object) + Send + 'a {
    move |o| edit(o, |s| add_tag_event(s, tag, digest, reference, repository))
}

/// Applies `f` to `obj` as an ImageStream. Validation admits only streams
/// that decode, so one that does not is left as it is.
pub fn edit(obj: &mut Object, f: impl FnOnce(&mut ImageStream)) {
    let Ok(mut stream) = ImageStream::from_object(obj) else {
        return;
    };
    f(&mut stream);
    if let Ok(o) = stream.to_object() {
        *obj = o;
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Records an event for `tag` (see [`add_event`]) with the stream's current
/// generation, as a push does, and sets the stream's repository.
pub fn add_tag_event(
    stream: &mut ImageStream,
    tag: &str,
    digest: &str,
    reference: &str,
    repository: &str,
) {
    let generation = stream.metadata.generation.max(1);
    stream.status.docker_image_repository = repository.into();
    let event = TagEvent {
        created: now(),
        docker_image_reference: reference.into(),
        image: digest.into(),
        generation,
        ..Default::default()
    };
    add_event(stream, tag, event);
}

/// Adds a tag event to `tag`'s history by the rules of OpenShift's image
/// streams: the same image, reference and generation change nothing; the
/// same image and reference only update the generation; a change of only one
/// of image or reference patches the newest entry; anything else becomes
/// the new newest entry. Tags that track `tag` (`from.kind: ImageStreamTag`
/// in the same stream) get the event too. Returns whether anything changed.
pub fn add_event(stream: &mut ImageStream, tag: &str, event: TagEvent) -> bool {
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
pub fn trackers(stream: &ImageStream, source: &str) -> Vec<String> {
    let own = &stream.metadata.name;
    let tags = stream.spec.tags.as_deref().unwrap_or_default();
    tags.iter()
        .filter(|t| {
            let Some(from) = &t.from else {
                return false;
            };
            let other_ns = from
                .namespace
                .as_deref()
                .is_some_and(|n| !n.is_empty() && n != stream.metadata.namespace);
            let target = match from.name.split_once(':') {
                Some((is, t)) if is == own => t,
                Some(_) => return false,
                None => from.name.as_str(),
            };
            from.kind == "ImageStreamTag" && !other_ns && target == source
        })
        .map(|t| t.name.clone())
        .collect()
}

fn add_one(stream: &mut ImageStream, tag: &str, event: &TagEvent) -> bool {
    let entry = stream.status.tag_mut(tag);
    let Some(newest) = entry.items.first_mut() else {
        entry.items.push(event.clone());
        return true;
    };
    let same_image = newest.image == event.image;
    let same_ref = newest.docker_image_reference == event.docker_image_reference;
    let same_gen = newest.generation == event.generation;
    match (same_image, same_ref) {
        (true, true) if same_gen => false,
        (true, true) => {
            newest.generation = event.generation;
            true
        }
        (true, false) | (false, true) => {
            *newest = event.clone();
            true
        }
        (false, false) => {
            entry.items.insert(0, event.clone());
            if let Some(conditions) = &mut entry.conditions {
                conditions.clear();
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

pub fn spec_tag<'a>(stream: &'a ImageStream, tag: &str) -> Option<&'a TagReference> {
    stream.spec.tag(tag)
}

/// The newest event of `tag`, if any.
pub fn current_event<'a>(stream: &'a ImageStream, tag: &str) -> Option<&'a TagEvent> {
    stream.status.tag(tag)?.items.first()
}

/// Sets (or adds) the spec tag `tag`; its generation becomes the stream's
/// next generation, which the store assigns for this spec change.
pub fn set_spec_tag(stream: &mut ImageStream, tag: &str, mut value: TagReference) {
    value.name = tag.into();
    value.generation = Some(stream.metadata.generation + 1);
    let tags = stream.spec.tags.get_or_insert_with(Vec::new);
    match tags.iter_mut().find(|t| t.name == tag) {
        Some(t) => *t = value,
        None => tags.push(value),
    }
}

/// Removes the spec tag and the history of `tag`; false when neither was there.
pub fn remove_tag(stream: &mut ImageStream, tag: &str) -> bool {
    let mut removed = false;
    if let Some(tags) = &mut stream.spec.tags {
        let before = tags.len();
        tags.retain(|t| t.name != tag);
        removed |= tags.len() != before;
    }
    if let Some(tags) = &mut stream.status.tags {
        let before = tags.len();
        tags.retain(|t| t.tag != tag);
        removed |= tags.len() != before;
    }
    removed
}

/// The event whose image id is `id` or starts with it (a unique prefix).
pub fn find_image(stream: &ImageStream, id: &str) -> Result<Option<TagEvent>, String> {
    let mut found: Option<&TagEvent> = None;
    for event in stream.status.events() {
        let image = &event.image;
        if image.is_empty() {
            continue;
        }
        let matches = *image == id
            || image
                .strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(id.trim_start_matches("sha256:")))
                && id.len() >= 7;
        if matches {
            if found.is_some_and(|f| f.image != *image) {
                return Err(format!("{id:?} matches more than one image"));
            }
            found = Some(event);
        }
    }
    Ok(found.cloned())
}

/// The pull spec a consumer should use for an event, by the spec tag's
/// reference policy: `Local` pulls through our registry.
pub fn resolved_reference(stream: &ImageStream, tag: &str, event: &TagEvent) -> String {
    let local = spec_tag(stream, tag)
        .and_then(|t| t.reference_policy.as_ref())
        .is_some_and(|p| p.kind == "Local");
    let repo = &stream.status.docker_image_repository;
    if local && !repo.is_empty() && !event.image.is_empty() {
        format!("{repo}@{}", event.image)
    } else {
        event.docker_image_reference.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn event(image: &str, reference: &str, generation: i64) -> TagEvent {
        TagEvent {
            created: "2026-01-01T00:00:00Z".into(),
            image: image.into(),
            docker_image_reference: reference.into(),
            generation,
            ..Default::default()
        }
    }

    fn images(s: &ImageStream, tag: &str) -> Vec<(String, i64)> {
        s.status
            .tag(tag)
            .map(|t| {
                t.items
                    .iter()
                    .map(|i| (i.image.clone(), i.generation))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stream(spec: serde_json::Value) -> ImageStream {
        serde_json::from_value(json!({"metadata": {"namespace": "p", "name": "web"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn generation_rules() {
        let mut s = stream(json!({}));
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
        let mut s = stream(json!({"tags": [
            {"name": "latest", "from": {"kind": "ImageStreamTag", "name": "v2"}},
            {"name": "stable", "from": {"kind": "ImageStreamTag", "name": "web:latest"}},
            {"name": "other", "from": {"kind": "ImageStreamTag", "name": "v2", "namespace": "elsewhere"}},
            {"name": "loop-a", "from": {"kind": "ImageStreamTag", "name": "loop-b"}},
            {"name": "loop-b", "from": {"kind": "ImageStreamTag", "name": "loop-a"}}
        ]}));
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
        let mut s = stream(json!({}));
        add_tag_event(&mut s, "latest", "sha256:a", "r/p/web@sha256:a", "r/p/web");
        add_tag_event(&mut s, "latest", "sha256:b", "r/p/web@sha256:b", "r/p/web");
        add_tag_event(&mut s, "latest", "sha256:b", "r/p/web@sha256:b", "r/p/web");
        add_tag_event(&mut s, "v1", "sha256:a", "r/p/web@sha256:a", "r/p/web");
        let tags = s.status.tags.as_ref().unwrap();
        let latest: Vec<_> = tags[0].items.iter().map(|i| i.image.as_str()).collect();
        assert_eq!(latest, ["sha256:b", "sha256:a"]);
        assert_eq!(tags[1].tag, "v1");
        assert_eq!(s.status.docker_image_repository, "r/p/web");
    }
}
