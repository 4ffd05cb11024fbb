//! What a builder image says about itself through its labels (and, for old
//! images, its environment).

use std::collections::BTreeMap;

use crate::scripts::{ScriptsUrl, ScriptsUrlError};

pub const SCRIPTS_URL: &str = "io.openshift.s2i.scripts-url";
pub const DESTINATION: &str = "io.openshift.s2i.destination";
pub const ASSEMBLE_USER: &str = "io.openshift.s2i.assemble-user";
pub const DISPLAY_NAME: &str = "io.k8s.display-name";
pub const DESCRIPTION: &str = "io.k8s.description";
const DEPRECATED_SCRIPTS_URL: &str = "io.s2i.scripts-url";
const DEPRECATED_DESTINATION: &str = "io.s2i.destination";
const ENV_SCRIPTS_URL: &str = "STI_SCRIPTS_URL";
const ENV_LOCATION: &str = "STI_LOCATION";

/// Where the input tar is unpacked when the image does not say.
pub const DEFAULT_DESTINATION: &str = "/tmp";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderMetadata {
    /// The image's scripts, and which label or variable named them.
    pub scripts_url: Option<(ScriptsUrl, &'static str)>,
    pub destination: String,
    /// `io.openshift.s2i.assemble-user`, else the image's `USER`.
    pub assemble_user: Option<String>,
    /// The image's own `USER` (the output image keeps it).
    pub image_user: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

impl BuilderMetadata {
    /// From an image config's `Labels`, `Env` (`K=V` strings) and `User`.
    pub fn read(
        labels: &BTreeMap<String, String>,
        env: &[String],
        user: Option<&str>,
    ) -> Result<BuilderMetadata, ScriptsUrlError> {
        let env_var = |name: &str| {
            env.iter()
                .find_map(|e| e.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .filter(|v| !v.is_empty())
        };
        let label = |name: &str| {
            labels
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let scripts_url = match (
            label(SCRIPTS_URL),
            label(DEPRECATED_SCRIPTS_URL),
            env_var(ENV_SCRIPTS_URL),
        ) {
            (Some(u), _, _) => Some((ScriptsUrl::parse(u)?, SCRIPTS_URL)),
            (None, Some(u), _) => Some((ScriptsUrl::parse(u)?, DEPRECATED_SCRIPTS_URL)),
            (None, None, Some(u)) => Some((ScriptsUrl::parse(u)?, ENV_SCRIPTS_URL)),
            (None, None, None) => None,
        };
        let destination = label(DESTINATION)
            .or_else(|| label(DEPRECATED_DESTINATION))
            .or_else(|| env_var(ENV_LOCATION))
            .unwrap_or(DEFAULT_DESTINATION)
            .trim_end_matches('/')
            .to_string();
        let image_user = user.filter(|u| !u.is_empty()).map(str::to_string);
        Ok(BuilderMetadata {
            scripts_url,
            destination: if destination.is_empty() {
                "/".into()
            } else {
                destination
            },
            assemble_user: label(ASSEMBLE_USER)
                .map(str::to_string)
                .or(image_user.clone()),
            image_user,
            display_name: label(DISPLAY_NAME).map(str::to_string),
            description: label(DESCRIPTION).map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_then_fallbacks_then_defaults() {
        let m = BuilderMetadata::read(
            &labels(&[
                (SCRIPTS_URL, "image:///usr/libexec/s2i"),
                (ASSEMBLE_USER, "1001"),
            ]),
            &[],
            Some("default"),
        )
        .unwrap();
        assert_eq!(
            m.scripts_url,
            Some((ScriptsUrl::Image("/usr/libexec/s2i".into()), SCRIPTS_URL))
        );
        assert_eq!(m.destination, "/tmp");
        assert_eq!(m.assemble_user.as_deref(), Some("1001"));
        assert_eq!(m.image_user.as_deref(), Some("default"));
        let old = BuilderMetadata::read(
            &labels(&[]),
            &[
                "PATH=/bin".into(),
                "STI_SCRIPTS_URL=image:///opt/s2i".into(),
                "STI_LOCATION=/opt/app/".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(old.scripts_url.unwrap().1, "STI_SCRIPTS_URL");
        assert_eq!(old.destination, "/opt/app");
        assert_eq!(old.assemble_user, None);
        let none = BuilderMetadata::read(&labels(&[]), &[], Some("1001")).unwrap();
        assert_eq!(none.scripts_url, None);
        assert_eq!(none.assemble_user.as_deref(), Some("1001"));
    }
}
