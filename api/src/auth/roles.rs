use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// A project-scoped role. Cluster-admin is not one of these: it is bound
/// cluster-wide and allows everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Edit,
    View,
    /// The `builder` service account: push images, read streams.
    ImageBuilder,
    /// The `default` service account: pull images.
    ImagePuller,
    /// The `deployer` service account: write deployment records.
    Deployer,
    /// Everyone, in the shared `openshift` project: read image streams and
    /// templates, pull images.
    SharedResourceViewer,
}

impl Role {
    pub const NAMES: &'static [&'static str] = &[
        "admin",
        "edit",
        "view",
        "system:image-builder",
        "system:image-puller",
        "system:deployer",
        "shared-resource-viewer",
    ];

    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "admin" => Role::Admin,
            "edit" => Role::Edit,
            "view" => Role::View,
            "system:image-builder" => Role::ImageBuilder,
            "system:image-puller" => Role::ImagePuller,
            "system:deployer" => Role::Deployer,
            "shared-resource-viewer" => Role::SharedResourceViewer,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Edit => "edit",
            Role::View => "view",
            Role::ImageBuilder => "system:image-builder",
            Role::ImagePuller => "system:image-puller",
            Role::Deployer => "system:deployer",
            Role::SharedResourceViewer => "shared-resource-viewer",
        }
    }

    /// Whether holding this role makes one a member of the project (it is
    /// listed, and may be read).
    pub fn makes_member(self) -> bool {
        self != Role::SharedResourceViewer
    }

    /// Whether this role allows `verb` on `resource` inside its project.
    /// `resource` is a plural, optionally with a subresource
    /// (`builds/log`); `imagestreams/layers` stands for registry access
    /// (get = pull, update = push, delete = delete).
    pub fn allows(self, verb: Verb, resource: &str) -> bool {
        let base = resource.split('/').next().unwrap_or(resource);
        match self {
            Role::Admin => true,
            Role::Edit => match resource {
                "rolebindings" | "projects" => verb.is_read(),
                "imagestreams/layers" => verb != Verb::Delete,
                _ => true,
            },
            Role::View => verb.is_read() && base != "secrets",
            Role::ImageBuilder => match resource {
                "imagestreams/layers" => matches!(verb, Verb::Get | Verb::Update),
                "imagestreammappings" => verb == Verb::Create,
                "imagestreams" | "images" | "projects" => verb.is_read(),
                _ => false,
            },
            Role::ImagePuller => {
                verb == Verb::Get && matches!(resource, "imagestreams/layers" | "projects")
            }
            Role::Deployer => match base {
                "replicationcontrollers" => true,
                "deploymentconfigs" => verb.is_read() || resource == "deploymentconfigs/status",
                "imagestreams" | "projects" => verb.is_read(),
                _ => false,
            },
            Role::SharedResourceViewer => match resource {
                "imagestreams/layers" => verb == Verb::Get,
                "imagestreams" | "imagestreamtags" | "imagestreamimages" | "templates" => {
                    verb.is_read()
                }
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix() {
        assert!(Role::View.allows(Verb::Get, "buildconfigs"));
        assert!(Role::View.allows(Verb::Get, "imagestreams/layers"));
        assert!(!Role::View.allows(Verb::Get, "secrets"));
        assert!(!Role::View.allows(Verb::Create, "buildconfigs"));
        assert!(Role::Edit.allows(Verb::Create, "buildconfigs"));
        assert!(Role::Edit.allows(Verb::Update, "imagestreams/layers"));
        assert!(!Role::Edit.allows(Verb::Delete, "imagestreams/layers"));
        assert!(!Role::Edit.allows(Verb::Create, "rolebindings"));
        assert!(!Role::Edit.allows(Verb::Delete, "projects"));
        assert!(Role::Admin.allows(Verb::Delete, "projects"));
        assert!(Role::ImageBuilder.allows(Verb::Update, "imagestreams/layers"));
        assert!(!Role::ImageBuilder.allows(Verb::Delete, "buildconfigs"));
        assert!(!Role::ImagePuller.allows(Verb::Update, "imagestreams/layers"));
        assert!(Role::SharedResourceViewer.allows(Verb::List, "templates"));
        assert!(Role::SharedResourceViewer.allows(Verb::Get, "imagestreams/layers"));
        assert!(!Role::SharedResourceViewer.allows(Verb::Get, "buildconfigs"));
        assert!(!Role::SharedResourceViewer.allows(Verb::Create, "templates"));
        for name in Role::NAMES {
            assert_eq!(Role::parse(name).map(Role::name), Some(*name));
        }
    }
}
