//! Image pruning (`oc adm prune images`): ImageStream history entries
//! beyond the newest N of each tag and older than a given age go, unless a
//! DeploymentConfig, a ReplicationController or an unfinished build uses
//! their image; Image objects no history names any more go with them; then
//! a collection frees the manifests and blobs only they used. Without
//! `confirm` it only reports.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use podspace_api::model::imagestream::{ImageStreamStatus, TagEvent};
use podspace_api::model::ImageStream;
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Store, UpdateScope};
use podspace_api::{kinds, Status};
use serde::Serialize;

use super::{by_digest, Collector, GcError, GcOptions, GcReport, InUse};

#[derive(Debug, Clone, Copy)]
pub struct PruneImages {
    /// The newest revisions of each tag always kept (at least 1).
    pub keep_tag_revisions: usize,
    /// Revisions (and Images) younger than this are kept.
    pub keep_younger_than: Duration,
    pub confirm: bool,
    /// The collection's grace after a confirmed prune.
    pub gc_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedRevision {
    pub namespace: String,
    pub stream: String,
    pub tag: String,
    pub image: String,
    pub created: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneImagesReport {
    pub confirm: bool,
    pub revisions: Vec<PrunedRevision>,
    /// Image objects deleted (or, unconfirmed, that would be).
    pub images: Vec<String>,
    /// The collection that followed a confirmed prune.
    pub gc: Option<GcReport>,
}

/// Whether history entry `i` of a tag (0 = newest) may go.
fn prunable(
    e: &TagEvent,
    i: usize,
    stream_repo: &str,
    opts: &PruneImages,
    in_use: &InUse,
    now: DateTime<Utc>,
) -> bool {
    if i < opts.keep_tag_revisions.max(1) {
        return false;
    }
    let young = DateTime::parse_from_rfc3339(&e.created)
        .map(|t| now.signed_duration_since(t).to_std().unwrap_or_default() < opts.keep_younger_than)
        // An unreadable time: keep it rather than guess.
        .unwrap_or(true);
    if young {
        return false;
    }
    let used = by_digest(&e.docker_image_reference)
        .into_iter()
        .chain([(stream_repo.to_string(), e.image.clone())])
        .any(|r| in_use.workloads.contains(&r));
    !used
}

/// The entries of `status` that may go, as (tag, image, created).
fn doomed(
    status: &ImageStreamStatus,
    stream_repo: &str,
    opts: &PruneImages,
    in_use: &InUse,
    now: DateTime<Utc>,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in status.tags.iter().flatten() {
        for (i, e) in t.items.iter().enumerate() {
            if prunable(e, i, stream_repo, opts, in_use, now) {
                out.push((t.tag.clone(), e.image.clone(), e.created.clone()));
            }
        }
    }
    out
}

fn drop_entries(status: &mut ImageStreamStatus, gone: &[(String, String, String)]) {
    for t in status.tags.iter_mut().flatten() {
        let tag = t.tag.clone();
        t.items.retain(|e| {
            !gone
                .iter()
                .any(|(gt, gi, gc)| *gt == tag && *gi == e.image && *gc == e.created)
        });
    }
}

pub async fn prune_images(
    store: &Store,
    collector: &Collector,
    opts: PruneImages,
) -> Result<PruneImagesReport, GcError> {
    let now = Utc::now();
    let in_use = InUse::read(store).await?;
    let all = LabelSelector::everything();
    let (streams, _) = store.list_as::<ImageStream>("", &all).await?;
    let mut report = PruneImagesReport {
        confirm: opts.confirm,
        ..Default::default()
    };
    // Digests history still names once the prune is done.
    let mut named: HashSet<String> = HashSet::new();
    for s in &streams {
        let (ns, name) = (&s.metadata.namespace, &s.metadata.name);
        let repo = format!("{ns}/{name}");
        let planned = doomed(&s.status, &repo, &opts, &in_use, now);
        let (removed, status) = if opts.confirm && !planned.is_empty() {
            // Decided again on the stored stream: a push meanwhile shifts
            // the revisions.
            let mut removed = Vec::new();
            let updated = store
                .mutate_as::<ImageStream, _>(ns, name, None, UpdateScope::Status, |is| {
                    removed = doomed(&is.status, &repo, &opts, &in_use, now);
                    drop_entries(&mut is.status, &removed);
                    Ok::<(), Status>(())
                })
                .await?;
            (removed, updated.status)
        } else {
            let mut kept = s.status.clone();
            drop_entries(&mut kept, &planned);
            (planned, kept)
        };
        for (tag, image, created) in removed {
            report.revisions.push(PrunedRevision {
                namespace: ns.clone(),
                stream: name.clone(),
                tag,
                image,
                created,
            });
        }
        named.extend(status.events().map(|e| e.image.clone()));
    }
    named.extend(in_use.workloads.iter().map(|(_, d)| d.clone()));
    // Images only the pruned revisions named.
    let pruned: HashSet<&str> = report.revisions.iter().map(|r| r.image.as_str()).collect();
    let mut images: Vec<String> = pruned
        .into_iter()
        .filter(|d| !named.contains(*d))
        .map(str::to_string)
        .collect();
    images.sort();
    if opts.confirm {
        for digest in &images {
            match store.delete(&kinds::IMAGE, "", digest, None).await {
                Ok(_) | Err(podspace_api::store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        report.gc = Some(
            collector
                .run(GcOptions {
                    grace: opts.gc_grace,
                    dry_run: false,
                })
                .await?,
        );
    }
    report.images = images;
    Ok(report)
}
