//! `RoleBinding` and `ClusterRoleBinding` (authorization.openshift.io/v1
//! and rbac): who holds a role. Both `subjects` and OpenShift 3's
//! `userNames`/`groupNames` are read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds;
use crate::meta::ObjectMeta;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// `User` (when absent), `ServiceAccount`, `Group`, `SystemUser`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Subject {
    pub fn kind(&self) -> &str {
        if self.kind.is_empty() {
            "User"
        } else {
            &self.kind
        }
    }
}

macro_rules! binding {
    ($(#[$doc:meta])* $name:ident, $kind:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub api_version: String,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub kind: String,
            #[serde(default, deserialize_with = "crate::meta::null_as_default")]
            pub metadata: ObjectMeta,
            #[serde(default)]
            pub role_ref: RoleRef,
            #[serde(default, deserialize_with = "crate::meta::null_as_default", skip_serializing_if = "Vec::is_empty")]
            pub subjects: Vec<Subject>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub user_names: Option<Vec<String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub group_names: Option<Vec<String>>,
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }

        impl super::Resource for $name {
            const KIND: &'static kinds::KindInfo = &$kind;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }

            fn set_type_meta(&mut self) {
                self.api_version = $kind.api_version();
                self.kind = $kind.kind.into();
            }
        }

        impl $name {
            pub fn user_names(&self) -> &[String] {
                self.user_names.as_deref().unwrap_or_default()
            }

            pub fn group_names(&self) -> &[String] {
                self.group_names.as_deref().unwrap_or_default()
            }
        }
    };
}

binding!(
    /// A role held in one project.
    RoleBinding,
    kinds::ROLE_BINDING
);
binding!(
    /// A cluster role (cluster-admin, build nodes).
    ClusterRoleBinding,
    kinds::CLUSTER_ROLE_BINDING
);
