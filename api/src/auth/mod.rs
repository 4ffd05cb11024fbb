//! Who is calling (users, service accounts, tokens) and what they may do
//! (per-project roles bound by RoleBinding objects, cluster-admin bound by
//! ClusterRoleBinding objects).

pub mod authn;
mod authz;
mod roles;
mod throttle;

pub use authn::{AuthError, Authenticator, IssuedToken};
pub use authz::{Authorizer, AUTHENTICATED_GROUP, BUILD_NODE_ROLE};
pub use roles::{Role, Verb};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// A user name, or `system:serviceaccount:<ns>:<name>`.
    pub name: String,
}

pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl Principal {
    pub fn user(name: &str) -> Self {
        Principal { name: name.into() }
    }

    pub fn service_account(ns: &str, name: &str) -> Self {
        Principal {
            name: format!("{SERVICE_ACCOUNT_PREFIX}{ns}:{name}"),
        }
    }

    /// `(namespace, name)` for a service account.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        self.name
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)?
            .split_once(':')
    }
}

/// The service accounts every project gets, with the role each is bound to.
pub const PROJECT_SERVICE_ACCOUNTS: &[(&str, Option<Role>)] = &[
    ("builder", Some(Role::ImageBuilder)),
    ("deployer", Some(Role::Deployer)),
    ("default", Some(Role::ImagePuller)),
];
