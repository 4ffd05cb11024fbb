//! What the platform uses, read from its objects: the images that
//! collection must keep and that pruning must not remove from history.

use std::collections::HashSet;

use podspace_api::model::{build, Build, DeploymentConfig, ImageStream, ReplicationController};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Store, StoreError};

/// Images named by digest, per repository of this registry.
#[derive(Debug, Default, Clone)]
pub struct InUse {
    /// `(repo, digest)` in some ImageStream's history.
    pub history: HashSet<(String, String)>,
    /// `(repo, digest)` a DeploymentConfig, ReplicationController or
    /// unfinished build names.
    pub workloads: HashSet<(String, String)>,
    /// Repositories an unfinished build pushes to: its layers may be
    /// uploaded long before its manifest.
    pub pushing: HashSet<String>,
}

/// `(repo, digest)` of a pull spec by digest: `host/project/stream@sha256:…`
/// (the host is not compared: keeping too much is harmless).
pub fn by_digest(reference: &str) -> Option<(String, String)> {
    let (name, digest) = reference.rsplit_once('@')?;
    let mut parts = name.rsplit('/');
    let stream = parts.next()?;
    let project = parts.next()?;
    if stream.is_empty() || project.is_empty() || !digest.contains(':') {
        return None;
    }
    Some((format!("{project}/{stream}"), digest.to_string()))
}

impl InUse {
    pub async fn read(store: &Store) -> Result<InUse, StoreError> {
        let all = LabelSelector::everything();
        let mut in_use = InUse::default();
        let (streams, _) = store.list_as::<ImageStream>("", &all).await?;
        for s in &streams {
            let own = format!("{}/{}", s.metadata.namespace, s.metadata.name);
            for e in s.status.events() {
                if let Some(r) = by_digest(&e.docker_image_reference) {
                    in_use.history.insert(r);
                }
                if !e.image.is_empty() {
                    in_use.history.insert((own.clone(), e.image.clone()));
                }
            }
        }
        let (builds, _) = store.list_as::<Build>("", &all).await?;
        for b in &builds {
            if matches!(
                b.status.phase(),
                build::COMPLETE | build::FAILED | build::ERROR | build::CANCELLED
            ) {
                continue;
            }
            if let Some(from) = b.spec.strategy.from() {
                if let Some(r) = by_digest(&from.name) {
                    in_use.workloads.insert(r);
                }
            }
            if let Some(to) = b.spec.output_to() {
                let ns = to
                    .namespace
                    .clone()
                    .unwrap_or_else(|| b.metadata.namespace.clone());
                let stream = match to.kind.as_str() {
                    "ImageStreamTag" => to.name.split(':').next().unwrap_or_default(),
                    _ => "",
                };
                if !stream.is_empty() {
                    in_use.pushing.insert(format!("{ns}/{stream}"));
                }
            }
        }
        let (configs, _) = store.list_as::<DeploymentConfig>("", &all).await?;
        for c in &configs {
            let last = c
                .spec
                .triggers()
                .iter()
                .filter_map(|t| t.image_change_params.as_ref()?.last_image());
            for image in last {
                if let Some(r) = by_digest(image) {
                    in_use.workloads.insert(r);
                }
            }
        }
        let (controllers, _) = store.list_as::<ReplicationController>("", &all).await?;
        let templates = configs
            .iter()
            .filter_map(|c| c.spec.template.as_ref())
            .chain(controllers.iter().filter_map(|c| c.spec.template.as_ref()));
        for t in templates {
            let Some(spec) = &t.spec else { continue };
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            for c in containers {
                if let Some(r) = c.image.as_deref().and_then(by_digest) {
                    in_use.workloads.insert(r);
                }
            }
        }
        Ok(in_use)
    }
}

#[cfg(test)]
mod tests {
    use super::by_digest;

    #[test]
    fn pull_specs_by_digest() {
        assert_eq!(
            by_digest("127.0.0.1:5000/p/app@sha256:ab"),
            Some(("p/app".into(), "sha256:ab".into()))
        );
        assert_eq!(by_digest("127.0.0.1:5000/p/app:latest"), None);
        assert_eq!(by_digest("app@sha256:ab"), None);
        assert_eq!(by_digest("h/p/app@latest"), None);
    }
}
