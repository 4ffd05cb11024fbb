//! Kinds as types: a [`Resource`] is a serde struct for one stored kind,
//! so code asks the store for a `Build` and cannot name a kind that does
//! not exist. Every struct keeps the fields it does not name.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kinds::KindInfo;
use crate::meta::{Object, ObjectMeta};

pub trait Resource: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: &'static KindInfo;

    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// A new object of this kind, with its apiVersion and kind set.
    fn named(namespace: &str, name: &str) -> Self
    where
        Self: Default,
    {
        let mut r = Self::default();
        r.set_type_meta();
        let meta = r.metadata_mut();
        meta.namespace = namespace.into();
        meta.name = name.into();
        r
    }

    fn set_type_meta(&mut self);

    /// This value as the store's untyped object (what validation, the REST
    /// layer and the event log see).
    fn to_object(&self) -> Result<Object, serde_json::Error> {
        serde_json::from_value(serde_json::to_value(self)?)
    }

    fn from_object(obj: &Object) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::to_value(obj)?)
    }
}

pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Declares a kind with `spec` and `status` (the common Kubernetes shape).
macro_rules! resource {
    ($(#[$doc:meta])* $name:ident, $kind:path, spec: $spec:ty, status: $status:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub api_version: String,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub kind: String,
            #[serde(default, deserialize_with = "crate::meta::null_as_default")]
            pub metadata: crate::meta::ObjectMeta,
            #[serde(
                default,
                deserialize_with = "crate::meta::null_as_default",
                skip_serializing_if = "crate::model::resource::is_default"
            )]
            pub spec: $spec,
            #[serde(
                default,
                deserialize_with = "crate::meta::null_as_default",
                skip_serializing_if = "crate::model::resource::is_default"
            )]
            pub status: $status,
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl crate::model::Resource for $name {
            const KIND: &'static crate::kinds::KindInfo = &$kind;

            fn metadata(&self) -> &crate::meta::ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut crate::meta::ObjectMeta {
                &mut self.metadata
            }

            fn set_type_meta(&mut self) {
                self.api_version = Self::KIND.api_version();
                self.kind = Self::KIND.kind.into();
            }
        }
    };
}

pub(crate) use resource;
