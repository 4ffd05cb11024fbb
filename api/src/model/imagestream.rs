//! `ImageStream` (image.openshift.io/v1): the tags a user asks for (spec)
//! and what each tag pointed at over time (status).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::resource::resource;
use crate::kinds;
use crate::meta::Object;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImportPolicy {
    pub fn insecure(&self) -> bool {
        self.insecure == Some(true)
    }

    pub fn scheduled(&self) -> bool {
        self.scheduled == Some(true)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageLookupPolicy {
    #[serde(default)]
    pub local: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagReferencePolicy {
    /// `Source` or `Local`; OpenShift reads an empty type as `Source`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagReference {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<bool>,
    /// The stream generation this tag was last changed at. Absent (legacy
    /// clients, every file in the wild) keeps the current tag's, or is
    /// assigned; 0 asks for a new import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_policy: Option<ImportPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_policy: Option<TagReferencePolicy>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_policy: Option<ImageLookupPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagReference>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageStreamSpec {
    /// The spec of `stream`; `None` when it has none or it is not shaped
    /// like one (validation reports that).
    pub fn of(stream: &Object) -> Option<ImageStreamSpec> {
        super::field(stream, "spec")
    }

    pub fn store_in(&self, stream: &mut Object) {
        super::set_field(stream, "spec", self);
    }

    pub fn tag(&self, name: &str) -> Option<&TagReference> {
        self.tags.as_deref()?.iter().find(|t| t.name == name)
    }

    pub fn tags_mut(&mut self) -> impl Iterator<Item = &mut TagReference> {
        self.tags.iter_mut().flatten()
    }
}

/// One entry of a tag's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagEvent {
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub docker_image_reference: String,
    /// The image's digest (`sha256:…`), the Image's name.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub generation: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagEventCondition {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default)]
    pub generation: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tag's history, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedTagEventList {
    #[serde(default)]
    pub tag: String,
    #[serde(default, deserialize_with = "crate::meta::null_as_default")]
    pub items: Vec<TagEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<TagEventCondition>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_image_repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_docker_image_repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<NamedTagEventList>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageStreamStatus {
    pub fn tag(&self, name: &str) -> Option<&NamedTagEventList> {
        self.tags.as_deref()?.iter().find(|t| t.tag == name)
    }

    /// `name`'s history, added (empty) when missing.
    pub fn tag_mut(&mut self, name: &str) -> &mut NamedTagEventList {
        let tags = self.tags.get_or_insert_with(Vec::new);
        let i = match tags.iter().position(|t| t.tag == name) {
            Some(i) => i,
            None => {
                tags.push(NamedTagEventList {
                    tag: name.into(),
                    ..Default::default()
                });
                tags.len() - 1
            }
        };
        &mut tags[i]
    }

    /// Every event of every tag.
    pub fn events(&self) -> impl Iterator<Item = &TagEvent> {
        self.tags.iter().flatten().flat_map(|t| &t.items)
    }
}

resource!(
    /// A named set of tags, each pointing at images.
    ImageStream,
    kinds::IMAGE_STREAM,
    spec: ImageStreamSpec,
    status: ImageStreamStatus
);

impl TagReference {
    /// Equal apart from the generation.
    fn same_intent(&self, other: &TagReference) -> bool {
        let strip = |t: &TagReference| TagReference {
            generation: None,
            ..t.clone()
        };
        strip(self) == strip(other)
    }
}

/// OpenShift's defaults for spec tags: a reference policy without a type
/// (or with `type: ""`) is `Source`.
pub fn default_tags(stream: &mut Object) {
    let Some(mut spec) = ImageStreamSpec::of(stream) else {
        return;
    };
    let mut changed = false;
    for t in spec.tags_mut() {
        match &mut t.reference_policy {
            Some(p) if !p.kind.is_empty() => {}
            Some(p) => {
                p.kind = "Source".into();
                changed = true;
            }
            None => {
                t.reference_policy = Some(TagReferencePolicy {
                    kind: "Source".into(),
                    extra: Map::new(),
                });
                changed = true;
            }
        }
    }
    if changed {
        spec.store_in(stream);
    }
}

/// Before an update is compared with `old`: a tag sent without a
/// generation that says what the stored tag says keeps the stored
/// generation (a re-applied file is no change, and imports nothing).
pub fn inherit_tag_generations(old: &Object, new: &mut Object) {
    let (Some(old_spec), Some(mut spec)) = (ImageStreamSpec::of(old), ImageStreamSpec::of(new))
    else {
        return;
    };
    let mut changed = false;
    for t in spec.tags_mut() {
        if t.generation.is_some() {
            continue;
        }
        if let Some(prev) = old_spec.tag(&t.name).filter(|p| p.same_intent(t)) {
            t.generation = prev.generation;
            changed = true;
        }
    }
    if changed {
        spec.store_in(new);
    }
}

/// Once the stream's generation is known: a tag with no generation (new or
/// changed) or generation 0 (asks for a new import) gets it, so the import
/// controller sees a tag newer than its history.
pub fn stamp_tag_generations(stream: &mut Object) {
    let generation = stream.metadata.generation;
    let Some(mut spec) = ImageStreamSpec::of(stream) else {
        return;
    };
    let mut changed = false;
    for t in spec.tags_mut() {
        if t.generation.is_none_or(|g| g == 0) {
            t.generation = Some(generation);
            changed = true;
        }
    }
    if changed {
        spec.store_in(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(generation: i64, tags: Value) -> Object {
        let mut s = Object::new("ImageStream", "p", "python").with("spec", json!({"tags": tags}));
        s.metadata.generation = generation;
        s
    }

    fn generations(s: &Object) -> Vec<Option<i64>> {
        ImageStreamSpec::of(s)
            .unwrap()
            .tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.generation)
            .collect()
    }

    #[test]
    fn reference_policy_defaults_to_source() {
        let mut s = stream(
            1,
            json!([{"name": "a", "referencePolicy": {"type": ""}},
                   {"name": "b"},
                   {"name": "c", "referencePolicy": {"type": "Local"}}]),
        );
        default_tags(&mut s);
        let kinds: Vec<String> = ImageStreamSpec::of(&s)
            .unwrap()
            .tags
            .unwrap()
            .into_iter()
            .map(|t| t.reference_policy.unwrap().kind)
            .collect();
        assert_eq!(kinds, ["Source", "Source", "Local"]);
    }

    #[test]
    fn generations_like_openshift() {
        // Created: every tag without one gets the stream's generation.
        let mut created = stream(
            1,
            json!([{"name": "3.11", "from": {"kind": "DockerImage", "name": "r/p:3.11"}},
                   {"name": "latest", "generation": 0}]),
        );
        stamp_tag_generations(&mut created);
        assert_eq!(generations(&created), [Some(1), Some(1)]);

        // The same file again: no generation change for the unchanged tag;
        // a changed tag and a new tag get the next generation.
        let mut next = stream(
            0,
            json!([{"name": "3.11", "from": {"kind": "DockerImage", "name": "r/p:3.11"}},
                   {"name": "latest", "from": {"kind": "DockerImage", "name": "r/p:3.12"}},
                   {"name": "new"}]),
        );
        inherit_tag_generations(&created, &mut next);
        assert_eq!(generations(&next), [Some(1), None, None]);
        next.metadata.generation = 2;
        stamp_tag_generations(&mut next);
        assert_eq!(generations(&next), [Some(1), Some(2), Some(2)]);
    }

    #[test]
    fn unknown_fields_survive() {
        let spec = json!({"lookupPolicy": {"local": false}, "dockerImageRepository": "",
            "tags": [{"name": "a", "annotations": {"k": "v"}, "importPolicy": {"scheduled": true},
                      "reference": false, "x-future": [1, 2], "from": {"kind": "DockerImage", "name": "i", "uid": "u"}}]});
        let s = Object::new("ImageStream", "p", "s").with("spec", spec.clone());
        let typed = ImageStreamSpec::of(&s).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), spec);
    }
}
