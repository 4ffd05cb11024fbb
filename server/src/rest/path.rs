//! Turns a request path into what it names.

use podspace_api::kinds::{self, KindInfo, PROJECT_GROUP, VERSION};
use podspace_api::{Reason, Status};

use crate::http::{ApiError, ApiResult};

#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static KindInfo,
    /// Reached through `/oapi/v1` or `/api/v1`.
    pub legacy: bool,
    /// The namespace in the path; `None` for cluster-scoped kinds and for
    /// lists across all namespaces.
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    /// `plural` or `plural/subresource`, as roles name resources.
    pub fn resource(&self) -> String {
        match &self.sub {
            Some(sub) => format!("{}/{sub}", self.kind.plural),
            None => self.kind.plural.to_string(),
        }
    }

    pub fn ns_or_empty(&self) -> &str {
        self.ns.as_deref().unwrap_or("")
    }

    pub fn api_version(&self) -> String {
        if self.legacy {
            VERSION.to_string()
        } else {
            self.kind.api_version()
        }
    }
}

#[derive(Debug, Clone)]
pub enum Discovery {
    /// `GET /apis`
    Groups,
    /// `GET /api` or `/oapi`
    LegacyVersions,
    /// `GET /apis/<group>/v1`, `/api/v1` (group ""), `/oapi/v1` (group None)
    Resources(Option<String>),
}

#[derive(Debug, Clone)]
pub enum Route {
    Discovery(Discovery),
    ProjectRequests,
    Object(Target),
}

fn not_found() -> ApiError {
    ApiError(Status::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    ))
}

pub fn parse(path: &str) -> ApiResult<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest): (Option<&str>, &[&str]) = match segs.as_slice() {
        ["apis"] => return Ok(Route::Discovery(Discovery::Groups)),
        ["api"] | ["oapi"] => return Ok(Route::Discovery(Discovery::LegacyVersions)),
        ["apis", group, v, rest @ ..] if *v == VERSION => (Some(*group), rest),
        ["api", v, rest @ ..] if *v == VERSION => (Some(""), rest),
        ["oapi", v, rest @ ..] if *v == VERSION => (None, rest),
        _ => return Err(not_found()),
    };
    let legacy = segs[0] != "apis";
    if rest.is_empty() {
        return Ok(Route::Discovery(Discovery::Resources(
            group.map(str::to_string),
        )));
    }
    let (ns, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        other => (None, other),
    };
    let plural = rest[0];
    if plural == "projectrequests"
        && (group == Some(PROJECT_GROUP) || group.is_none())
        && rest.len() == 1
        && ns.is_none()
    {
        return Ok(Route::ProjectRequests);
    }
    let kind = match group {
        Some("") => kinds::by_legacy_path(false, plural),
        Some(g) => kinds::by_path(g, plural),
        None => kinds::by_legacy_path(true, plural),
    }
    .ok_or_else(not_found)?;
    if ns.is_some() && !kind.namespaced {
        return Err(not_found());
    }
    let name = rest.get(1).map(|s| s.to_string());
    let sub = (rest.len() > 2).then(|| rest[2..].join("/"));
    if name.as_deref() == Some("") {
        return Err(not_found());
    }
    Ok(Route::Object(Target {
        kind,
        legacy,
        ns,
        name,
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse(path).unwrap() {
            Route::Object(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn grouped_and_legacy_paths() {
        let t = target("/apis/image.openshift.io/v1/namespaces/p/imagestreams/web");
        assert_eq!(
            (t.kind.kind, t.ns.as_deref(), t.name.as_deref(), t.legacy),
            ("ImageStream", Some("p"), Some("web"), false)
        );
        let t = target("/oapi/v1/namespaces/p/buildconfigs");
        assert_eq!((t.kind.kind, t.legacy, t.name), ("BuildConfig", true, None));
        let t = target("/api/v1/namespaces/p/serviceaccounts/builder/token");
        assert_eq!(
            (t.kind.kind, t.sub.as_deref()),
            ("ServiceAccount", Some("token"))
        );
        let t = target("/apis/build.openshift.io/v1/builds");
        assert_eq!((t.kind.kind, t.ns), ("Build", None));
        assert!(matches!(
            parse("/apis/project.openshift.io/v1/projectrequests"),
            Ok(Route::ProjectRequests)
        ));
        assert!(parse("/apis/image.openshift.io/v2/imagestreams").is_err());
        assert!(parse("/apis/build.openshift.io/v1/namespaces/p/imagestreams").is_err());
        assert!(parse("/api/v1/namespaces/p/buildconfigs").is_err());
        assert!(parse("/apis/user.openshift.io/v1/namespaces/p/users/x").is_err());
    }
}
