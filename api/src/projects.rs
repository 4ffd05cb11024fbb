//! What a new project is made of: the Project, an admin RoleBinding for its
//! requester, and the `builder`, `deployer` and `default` service accounts
//! with their bindings. Created in one transaction by the caller.

use crate::auth::{Principal, PROJECT_SERVICE_ACCOUNTS};
use crate::kinds::KindInfo;
use crate::meta::Object;
use crate::model::{Project, Resource, RoleBinding, Subject};
use crate::status::Status;

pub const DISPLAY_NAME: &str = "openshift.io/display-name";
pub const DESCRIPTION: &str = "openshift.io/description";
pub const REQUESTER: &str = "openshift.io/requester";

pub fn role_binding(ns: &str, name: &str, role: &str, subject: &Principal) -> Object {
    let subject = match subject.as_service_account() {
        Some((sa_ns, sa)) => Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: sa_ns.into(),
            ..Default::default()
        },
        None => Subject {
            kind: "User".into(),
            name: subject.name.clone(),
            ..Default::default()
        },
    };
    binding(ns, name, role, subject)
}

fn binding(ns: &str, name: &str, role: &str, subject: Subject) -> Object {
    let mut b = RoleBinding::named(ns, name);
    b.role_ref.name = role.into();
    b.subjects = vec![subject];
    untyped(&b)
}

fn untyped<T: Resource>(value: &T) -> Object {
    // Serializing these structs cannot fail: they hold only strings, maps
    // and lists.
    value.to_object().unwrap_or_default()
}

/// The project every user may read image streams and templates from.
pub const SHARED_PROJECT: &str = "openshift";

/// The shared project, made like any project with `owner` as its admin,
/// plus a binding that gives every authenticated user
/// `shared-resource-viewer` in it.
pub fn shared_project(owner: &Principal) -> Result<Vec<(&'static KindInfo, Object)>, Status> {
    let mut objs = new_project(SHARED_PROJECT, "Shared resources", "", owner)?;
    let viewers = binding(
        SHARED_PROJECT,
        "shared-resource-viewers",
        "shared-resource-viewer",
        Subject {
            kind: "Group".into(),
            name: crate::auth::AUTHENTICATED_GROUP.into(),
            ..Default::default()
        },
    );
    objs.push((&crate::kinds::ROLE_BINDING, viewers));
    Ok(objs)
}

/// The objects of a new project, in creation order.
pub fn new_project(
    name: &str,
    display_name: &str,
    description: &str,
    requester: &Principal,
) -> Result<Vec<(&'static KindInfo, Object)>, Status> {
    crate::validation::dns1123_label(name)
        .map_err(|e| Status::new(crate::status::Reason::Invalid, format!("projects.project.openshift.io {name:?} is invalid: metadata.name: Invalid value: {name:?}: {e}")))?;
    let mut project = Project::named("", name);
    project.spec.finalizers = vec!["kubernetes".into()];
    project.status.phase = "Active".into();
    let notes = &mut project.metadata.annotations;
    notes.insert(REQUESTER.into(), requester.name.clone());
    if !display_name.is_empty() {
        notes.insert(DISPLAY_NAME.into(), display_name.into());
    }
    if !description.is_empty() {
        notes.insert(DESCRIPTION.into(), description.into());
    }
    let mut objs = vec![
        (&crate::kinds::PROJECT, untyped(&project)),
        (
            &crate::kinds::ROLE_BINDING,
            role_binding(name, "admin", "admin", requester),
        ),
    ];
    for (sa, role) in PROJECT_SERVICE_ACCOUNTS {
        objs.push((
            &crate::kinds::SERVICE_ACCOUNT,
            Object::new("ServiceAccount", name, sa),
        ));
        if let Some(role) = role {
            let binding = format!(
                "{}s",
                role.name().replace(':', "-").trim_start_matches("system-")
            );
            objs.push((
                &crate::kinds::ROLE_BINDING,
                role_binding(
                    name,
                    &format!("system:{binding}"),
                    role.name(),
                    &Principal::service_account(name, sa),
                ),
            ));
        }
    }
    Ok(objs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_has_requester_admin_and_service_accounts() {
        let objs = new_project("shop", "Shop", "", &Principal::user("alice")).unwrap();
        let names: Vec<_> = objs
            .iter()
            .map(|(k, o)| format!("{}/{}", k.kind, o.metadata.name))
            .collect();
        assert!(names.contains(&"Project/shop".to_string()));
        assert!(names.contains(&"RoleBinding/admin".to_string()));
        assert!(names.contains(&"ServiceAccount/builder".to_string()));
        assert!(names.contains(&"RoleBinding/system:image-builders".to_string()));
        assert!(names.contains(&"RoleBinding/system:deployers".to_string()));
        assert!(new_project("Bad_Name", "", "", &Principal::user("a")).is_err());
    }
}
