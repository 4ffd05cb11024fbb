//! Role lookups, cached per (principal, namespace) and dropped whenever the
//! store's RBAC epoch moves.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::{Principal, Role, Verb};
use crate::meta::Object;
use crate::selector::LabelSelector;
use crate::store::{Store, StoreError};

const CACHE_MAX: usize = 100_000;

type RoleCache = HashMap<(String, String), (u64, Arc<[Role]>)>;
type ClusterBindings = HashMap<String, BTreeSet<String>>;

/// The cluster role of build nodes: lease builds, report on them.
pub const BUILD_NODE_ROLE: &str = "system:build-node";

#[derive(Clone)]
pub struct Authorizer {
    store: Store,
    roles: Arc<RwLock<RoleCache>>,
    /// Cluster role → the principals bound to it.
    cluster: Arc<RwLock<(u64, Arc<ClusterBindings>)>>,
}

/// Every authenticated caller, as OpenShift names it: bound to a role in a
/// shared project (`openshift`), it lets everyone pull the builder images.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Every service account; `system:serviceaccounts:<ns>`, those of one project.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// Whether `p` is in the virtual group `group`. Users belong to no other
/// groups: there is no group object to put them in.
fn in_group(group: &str, p: &Principal) -> bool {
    if group == AUTHENTICATED_GROUP {
        return true;
    }
    match group.strip_prefix(SERVICE_ACCOUNTS_GROUP) {
        Some("") => p.as_service_account().is_some(),
        Some(rest) => rest
            .strip_prefix(':')
            .is_some_and(|ns| p.as_service_account().is_some_and(|(n, _)| n == ns)),
        None => false,
    }
}

/// Whether a binding's subjects name `p`. Both the `subjects` list and
/// OpenShift 3's `userNames` (and `groupNames`) are honoured.
pub fn binding_names(binding: &Object, p: &Principal) -> bool {
    let subjects = binding.body.get("subjects").and_then(Value::as_array);
    let by_subject = subjects.into_iter().flatten().any(|s| {
        let kind = s.get("kind").and_then(Value::as_str).unwrap_or("User");
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "User" => name == p.name,
            "ServiceAccount" => {
                let ns = s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&binding.metadata.namespace);
                p.as_service_account() == Some((ns, name))
            }
            "Group" | "SystemGroup" => in_group(name, p),
            _ => false,
        }
    });
    let names = |field: &str| {
        binding
            .body
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
    };
    by_subject
        || names("userNames").contains(&p.name.as_str())
        || names("groupNames").into_iter().any(|g| in_group(g, p))
}

pub fn binding_role(binding: &Object) -> Option<&str> {
    binding.body.get("roleRef")?.get("name")?.as_str()
}

impl Authorizer {
    pub fn new(store: Store) -> Self {
        Authorizer {
            store,
            roles: Arc::default(),
            cluster: Arc::new(RwLock::new((0, Arc::default()))),
        }
    }

    pub async fn is_cluster_admin(&self, p: &Principal) -> Result<bool, StoreError> {
        self.has_cluster_role(p, "cluster-admin").await
    }

    /// Whether a ClusterRoleBinding binds `p` to the cluster role `role`.
    pub async fn has_cluster_role(&self, p: &Principal, role: &str) -> Result<bool, StoreError> {
        Ok(self
            .cluster_bindings()
            .await?
            .get(role)
            .is_some_and(|names| names.contains(&p.name)))
    }

    async fn cluster_bindings(&self) -> Result<Arc<ClusterBindings>, StoreError> {
        let epoch = self.store.rbac_epoch();
        if let Ok(cached) = self.cluster.read() {
            if cached.0 == epoch {
                return Ok(cached.1.clone());
            }
        }
        let kind = &crate::kinds::CLUSTER_ROLE_BINDING;
        let (bindings, _) = self
            .store
            .list(kind, "", &LabelSelector::everything())
            .await?;
        let mut all = ClusterBindings::new();
        for b in &bindings {
            let Some(role) = binding_role(b) else {
                continue;
            };
            let names = all.entry(role.to_string()).or_default();
            let subjects = b
                .body
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for s in subjects {
                if let Some(n) = s.get("name").and_then(Value::as_str) {
                    match s.get("kind").and_then(Value::as_str) {
                        Some("ServiceAccount") => {
                            let ns = s
                                .get("namespace")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            names.insert(Principal::service_account(ns, n).name);
                        }
                        _ => {
                            names.insert(n.to_string());
                        }
                    }
                }
            }
            for n in b
                .body
                .get("userNames")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = n.as_str() {
                    names.insert(n.to_string());
                }
            }
        }
        let all = Arc::new(all);
        if let Ok(mut cached) = self.cluster.write() {
            *cached = (epoch, all.clone());
        }
        Ok(all)
    }

    /// The roles `p` holds in project `ns`.
    pub async fn roles(&self, p: &Principal, ns: &str) -> Result<Arc<[Role]>, StoreError> {
        let epoch = self.store.rbac_epoch();
        let key = (p.name.clone(), ns.to_string());
        if let Ok(cache) = self.roles.read() {
            if let Some((e, roles)) = cache.get(&key) {
                if *e == epoch {
                    return Ok(roles.clone());
                }
            }
        }
        let kind = &crate::kinds::ROLE_BINDING;
        let (bindings, _) = self
            .store
            .list(kind, ns, &LabelSelector::everything())
            .await?;
        let mut roles: Vec<Role> = bindings
            .iter()
            .filter(|b| binding_names(b, p))
            .filter_map(|b| binding_role(b).and_then(Role::parse))
            .collect();
        roles.sort();
        roles.dedup();
        let roles: Arc<[Role]> = roles.into();
        if let Ok(mut cache) = self.roles.write() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (epoch, roles.clone()));
        }
        Ok(roles)
    }

    /// Whether `p` may do `verb` on `resource` (a plural, optionally
    /// `/subresource`) in namespace `ns` (`None`: cluster scope).
    pub async fn allowed(
        &self,
        p: &Principal,
        verb: Verb,
        resource: &str,
        ns: Option<&str>,
    ) -> Result<bool, StoreError> {
        if self.is_cluster_admin(p).await? {
            return Ok(true);
        }
        let Some(ns) = ns else { return Ok(false) };
        Ok(self
            .roles(p, ns)
            .await?
            .iter()
            .any(|r| r.allows(verb, resource)))
    }

    /// Whether `p` has any role at all in `ns` (may see that the project exists).
    /// (Reading the shared project's image streams and templates makes
    /// nobody a member of it.)
    pub async fn is_member(&self, p: &Principal, ns: &str) -> Result<bool, StoreError> {
        Ok(self.is_cluster_admin(p).await?
            || self.roles(p, ns).await?.iter().any(|r| r.makes_member()))
    }

    /// Namespaces in which `p` holds some role (for listing projects).
    pub async fn member_namespaces(&self, p: &Principal) -> Result<BTreeSet<String>, StoreError> {
        let kind = &crate::kinds::ROLE_BINDING;
        let (bindings, _) = self
            .store
            .list(kind, "", &LabelSelector::everything())
            .await?;
        Ok(bindings
            .into_iter()
            .filter(|b| {
                binding_names(b, p)
                    && binding_role(b)
                        .and_then(Role::parse)
                        .is_some_and(Role::makes_member)
            })
            .map(|b| b.metadata.namespace)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_groups() {
        let user = Principal::user("alice");
        let sa = Principal::service_account("shop", "builder");
        assert!(in_group(AUTHENTICATED_GROUP, &user));
        assert!(in_group(AUTHENTICATED_GROUP, &sa));
        assert!(!in_group(SERVICE_ACCOUNTS_GROUP, &user));
        assert!(in_group(SERVICE_ACCOUNTS_GROUP, &sa));
        assert!(in_group("system:serviceaccounts:shop", &sa));
        assert!(!in_group("system:serviceaccounts:other", &sa));
        assert!(!in_group("system:serviceaccountsshop", &sa));
        assert!(!in_group("developers", &user));
    }
}
