//! The shape every stored object shares: `apiVersion`, `kind`, `metadata`,
//! and the rest of the body (spec, status, kind-specific fields) kept as JSON
//! so that fields this version does not know survive a round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub generate_name: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub namespace: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub uid: String,
    /// Kubernetes sends resourceVersion as an opaque string; ours is the
    /// decimal form of the store's global counter.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub resource_version: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub generation: i64,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub creation_timestamp: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// ownerReferences, finalizers and anything else we pass through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `null` where a value may be left out means "left out": `oc` and the
/// OpenShift library files write `creationTimestamp: null`, and Kubernetes
/// accepts it.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub body: Map<String, Value>,
}

impl Object {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        let api_version = crate::kinds::by_kind(kind)
            .map(|k| k.api_version())
            .unwrap_or_else(|| "v1".into());
        Object {
            api_version,
            kind: kind.into(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: namespace.into(),
                ..Default::default()
            },
            body: Map::new(),
        }
    }

    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.body.insert(field.into(), value);
        self
    }

    pub fn resource_version(&self) -> Option<i64> {
        self.metadata.resource_version.parse().ok()
    }

    pub fn spec(&self) -> Option<&Value> {
        self.body.get("spec")
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn from_value(v: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_left_out_values() {
        let obj: Object = serde_json::from_str(
            r#"{"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": "python", "creationTimestamp": null, "labels": null,
                             "annotations": {"openshift.io/display-name": "Python"},
                             "ownerReferences": null},
                "spec": {"tags": []}}"#,
        )
        .unwrap();
        assert_eq!(obj.metadata.name, "python");
        assert!(obj.metadata.creation_timestamp.is_empty());
        assert!(obj.metadata.labels.is_empty());
        assert_eq!(obj.metadata.annotations.len(), 1);
        let none: Object = serde_json::from_str(r#"{"kind": "List", "metadata": null}"#).unwrap();
        assert!(none.metadata.name.is_empty());
        assert!(serde_json::from_str::<Object>(r#"{"metadata": {"name": 3}}"#).is_err());
    }
}
