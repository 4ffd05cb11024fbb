//! Role lookups, cached per (principal, namespace) and dropped whenever the
//! store's RBAC epoch moves.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use super::{Principal, Role, Verb};
use crate::model::{ClusterRoleBinding, RoleBinding};
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
pub fn binding_names(binding: &RoleBinding, p: &Principal) -> bool {
    let by_subject = binding.subjects.iter().any(|s| match s.kind() {
        "User" => s.name == p.name,
        "ServiceAccount" => {
            let ns = match s.namespace.as_str() {
                "" => binding.metadata.namespace.as_str(),
                ns => ns,
            };
            p.as_service_account() == Some((ns, s.name.as_str()))
        }
        "Group" | "SystemGroup" => in_group(&s.name, p),
        _ => false,
    });
    by_subject
        || binding.user_names().contains(&p.name)
        || binding.group_names().iter().any(|g| in_group(g, p))
}

fn binding_role(binding: &RoleBinding) -> Option<Role> {
    Role::parse(&binding.role_ref.name)
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
        let (bindings, _) = self
            .store
            .list_as::<ClusterRoleBinding>("", &LabelSelector::everything())
            .await?;
        let mut all = ClusterBindings::new();
        for b in &bindings {
            if b.role_ref.name.is_empty() {
                continue;
            }
            let names = all.entry(b.role_ref.name.clone()).or_default();
            for s in b.subjects.iter().filter(|s| !s.name.is_empty()) {
                match s.kind() {
                    "ServiceAccount" => {
                        names.insert(Principal::service_account(&s.namespace, &s.name).name);
                    }
                    _ => {
                        names.insert(s.name.clone());
                    }
                }
            }
            names.extend(b.user_names().iter().cloned());
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
        let (bindings, _) = self
            .store
            .list_as::<RoleBinding>(ns, &LabelSelector::everything())
            .await?;
        let mut roles: Vec<Role> = bindings
            .iter()
            .filter(|b| binding_names(b, p))
            .filter_map(binding_role)
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
        let (bindings, _) = self
            .store
            .list_as::<RoleBinding>("", &LabelSelector::everything())
            .await?;
        Ok(bindings
            .into_iter()
            .filter(|b| binding_names(b, p) && binding_role(b).is_some_and(Role::makes_member))
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
