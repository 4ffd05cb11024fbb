//! Every kind the API serves: its group, plural, scope and short names.
//! The REST router, the authorizer and `psc` all read this one table.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: &'static str,
    /// Lower-case plural used in URLs (`imagestreams`).
    pub plural: &'static str,
    pub singular: &'static str,
    /// API group; empty for the Kubernetes core group (`/api/v1`).
    pub group: &'static str,
    pub namespaced: bool,
    /// Short names accepted by `psc` (`is`, `bc`, `dc`).
    pub short: &'static [&'static str],
    /// Whether `status` is owned by controllers and written only through the
    /// `/status` subresource (the main endpoint keeps the stored status).
    pub has_status: bool,
    /// Whether the main endpoint serves ordinary create/update/delete. Kinds
    /// that are only ever created through a dedicated flow (projects through
    /// projectrequests) say false.
    pub plain_create: bool,
    /// False for views computed from other objects (ImageStreamTag is a
    /// tag of an ImageStream): the REST layer serves them, the store never
    /// holds them.
    pub stored: bool,
}

pub const VERSION: &str = "v1";

impl KindInfo {
    /// `group/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            VERSION.to_string()
        } else {
            format!("{}/{}", self.group, VERSION)
        }
    }

    /// OpenShift kinds are also served under the legacy `/oapi/v1` prefix
    /// with `apiVersion: v1`.
    pub fn is_openshift(&self) -> bool {
        self.group.ends_with("openshift.io")
    }

    /// `imagestream.image.openshift.io`: the form `oc` prints resource names in.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// Path of the collection, `ns` ignored for cluster-scoped kinds.
    pub fn collection_path(&self, ns: &str) -> String {
        let prefix = if self.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", self.group, VERSION)
        };
        if self.namespaced && !ns.is_empty() {
            format!("{prefix}/namespaces/{ns}/{}", self.plural)
        } else {
            format!("{prefix}/{}", self.plural)
        }
    }

    pub fn object_path(&self, ns: &str, name: &str) -> String {
        format!("{}/{}", self.collection_path(ns), name)
    }

    /// Whether an `apiVersion` found in a body names this kind's group.
    pub fn accepts_api_version(&self, api_version: &str) -> bool {
        api_version.is_empty()
            || api_version == self.api_version()
            || (api_version == VERSION && (self.is_openshift() || self.group.is_empty()))
    }
}

const fn k(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    group: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    has_status: bool,
) -> KindInfo {
    KindInfo {
        kind,
        plural,
        singular,
        group,
        namespaced,
        short,
        has_status,
        plain_create: true,
        stored: true,
    }
}

const fn view(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        plain_create: false,
        stored: false,
        ..k(
            kind,
            plural,
            singular,
            "image.openshift.io",
            true,
            short,
            false,
        )
    }
}

pub const PROJECT_GROUP: &str = "project.openshift.io";

pub const PROJECT: KindInfo = KindInfo {
    plain_create: false,
    ..k(
        "Project",
        "projects",
        "project",
        PROJECT_GROUP,
        false,
        &["proj"],
        true,
    )
};

pub const IMAGE_STREAM: KindInfo = k(
    "ImageStream",
    "imagestreams",
    "imagestream",
    "image.openshift.io",
    true,
    &["is"],
    true,
);

pub const IMAGE: KindInfo = k(
    "Image",
    "images",
    "image",
    "image.openshift.io",
    false,
    &[],
    false,
);

pub const IMAGE_STREAM_TAG: KindInfo = view(
    "ImageStreamTag",
    "imagestreamtags",
    "imagestreamtag",
    &["istag"],
);

pub const IMAGE_STREAM_IMAGE: KindInfo = view(
    "ImageStreamImage",
    "imagestreamimages",
    "imagestreamimage",
    &["isimage"],
);

pub const IMAGE_STREAM_MAPPING: KindInfo = view(
    "ImageStreamMapping",
    "imagestreammappings",
    "imagestreammapping",
    &[],
);

pub const IMAGE_STREAM_IMPORT: KindInfo = view(
    "ImageStreamImport",
    "imagestreamimports",
    "imagestreamimport",
    &[],
);

pub const BUILD_CONFIG: KindInfo = k(
    "BuildConfig",
    "buildconfigs",
    "buildconfig",
    "build.openshift.io",
    true,
    &["bc"],
    true,
);

pub const BUILD: KindInfo = k(
    "Build",
    "builds",
    "build",
    "build.openshift.io",
    true,
    &[],
    true,
);

pub const DEPLOYMENT_CONFIG: KindInfo = k(
    "DeploymentConfig",
    "deploymentconfigs",
    "deploymentconfig",
    "apps.openshift.io",
    true,
    &["dc"],
    true,
);

pub const ROLE_BINDING: KindInfo = k(
    "RoleBinding",
    "rolebindings",
    "rolebinding",
    "authorization.openshift.io",
    true,
    &[],
    false,
);

pub const CLUSTER_ROLE_BINDING: KindInfo = k(
    "ClusterRoleBinding",
    "clusterrolebindings",
    "clusterrolebinding",
    "authorization.openshift.io",
    false,
    &[],
    false,
);

pub const USER: KindInfo = k(
    "User",
    "users",
    "user",
    "user.openshift.io",
    false,
    &[],
    false,
);

pub const SERVICE_ACCOUNT: KindInfo = k(
    "ServiceAccount",
    "serviceaccounts",
    "serviceaccount",
    "",
    true,
    &["sa"],
    false,
);

pub const TEMPLATE: KindInfo = k(
    "Template",
    "templates",
    "template",
    "template.openshift.io",
    true,
    &[],
    false,
);

pub const SECRET: KindInfo = k("Secret", "secrets", "secret", "", true, &[], false);

pub const CONFIG_MAP: KindInfo = k(
    "ConfigMap",
    "configmaps",
    "configmap",
    "",
    true,
    &["cm"],
    false,
);

pub const REPLICATION_CONTROLLER: KindInfo = k(
    "ReplicationController",
    "replicationcontrollers",
    "replicationcontroller",
    "",
    true,
    &["rc"],
    true,
);

/// Every kind, in the order the API lists them.
pub static KINDS: &[KindInfo] = &[
    PROJECT,
    IMAGE_STREAM,
    IMAGE,
    IMAGE_STREAM_TAG,
    IMAGE_STREAM_IMAGE,
    IMAGE_STREAM_MAPPING,
    IMAGE_STREAM_IMPORT,
    BUILD_CONFIG,
    BUILD,
    DEPLOYMENT_CONFIG,
    ROLE_BINDING,
    CLUSTER_ROLE_BINDING,
    USER,
    SERVICE_ACCOUNT,
    TEMPLATE,
    SECRET,
    CONFIG_MAP,
    REPLICATION_CONTROLLER,
];

pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// Resolves what a user types: `is`, `imagestream`, `imagestreams`,
/// `ImageStream`, `imagestreams.image.openshift.io`.
pub fn lookup(name: &str) -> Option<&'static KindInfo> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower, None),
    };
    KINDS.iter().find(|k| {
        let name_matches = k.plural == base
            || k.singular == base
            || k.kind.eq_ignore_ascii_case(&base)
            || k.short.contains(&base.as_str());
        name_matches && group.as_deref().is_none_or(|g| g == k.group)
    })
}

/// Finds a kind by the group and plural in a URL.
pub fn by_path(group: &str, plural: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.plural == plural && k.group == group)
}

/// Finds a kind by plural in the legacy `/oapi/v1` (OpenShift kinds) or
/// `/api/v1` (core kinds) prefixes.
pub fn by_legacy_path(openshift: bool, plural: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| {
        k.plural == plural && k.is_openshift() == openshift && (openshift || k.group.is_empty())
    })
}

/// Finds a kind from a body's `apiVersion` and `kind`.
pub fn by_api_version(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    by_kind(kind).filter(|k| k.accepts_api_version(api_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve() {
        assert_eq!(lookup("is").map(|k| k.kind), Some("ImageStream"));
        assert_eq!(lookup("bc").map(|k| k.kind), Some("BuildConfig"));
        assert_eq!(lookup("dc").map(|k| k.kind), Some("DeploymentConfig"));
        assert_eq!(lookup("builds").map(|k| k.kind), Some("Build"));
        assert_eq!(lookup("Build").map(|k| k.kind), Some("Build"));
        assert_eq!(
            lookup("imagestreams.image.openshift.io").map(|k| k.kind),
            Some("ImageStream")
        );
        assert_eq!(lookup("imagestreams.apps.openshift.io"), None);
        assert_eq!(lookup("pods"), None);
    }

    #[test]
    fn legacy_api_versions() {
        assert!(by_api_version("v1", "ImageStream").is_some());
        assert!(by_api_version("image.openshift.io/v1", "ImageStream").is_some());
        assert!(by_api_version("build.openshift.io/v1", "ImageStream").is_none());
        assert!(by_api_version("v1", "Secret").is_some());
        assert_eq!(
            by_legacy_path(true, "buildconfigs").map(|k| k.kind),
            Some("BuildConfig")
        );
        assert_eq!(by_legacy_path(false, "buildconfigs"), None);
        assert_eq!(
            by_legacy_path(false, "secrets").map(|k| k.kind),
            Some("Secret")
        );
    }
}
