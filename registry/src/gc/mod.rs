//! Online garbage collection, safe beside pushes (distribution needs a
//! read-only registry for it). Mark from the store: manifests that registry
//! tags, ImageStream history, deployments and unfinished builds name, the
//! children of reachable indexes and the referrers of reachable manifests.
//! Sweep what is unreachable and untouched for the grace period, each row
//! with a conditional delete (`meta::gc`): a push that touches a row at the
//! same time either wins, and the row stays, or finds it claimed, and is
//! refused with an error it can retry. A manifest is never left pointing at
//! a deleted blob.

mod in_use;
mod prune;
mod schedule;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podspace_api::store::{Store, StoreError};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use crate::meta::{GcGraph, GcRef, ManifestRefs, RegistryStore};
use crate::storage::{BlobStorage, StorageError};

pub use in_use::{by_digest, InUse};
pub use prune::{prune_images, PruneImages, PruneImagesReport, PrunedRevision};
pub use schedule::ScheduledGc;

#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// What was created or touched more recently than this is kept.
    pub grace: Duration,
    /// Report what would be freed; change nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptManifest {
    pub repository: String,
    pub digest: String,
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptBlob {
    pub digest: String,
    pub size: i64,
}

/// What one collection freed (or, dry, would free).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub dry_run: bool,
    pub grace_seconds: u64,
    pub manifests: Vec<SweptManifest>,
    pub blobs: Vec<SweptBlob>,
    /// Bytes of the blobs (and manifests) freed.
    pub freed_bytes: i64,
    pub kept_manifests: usize,
    pub kept_blobs: usize,
    /// Candidates a push gave a new use while the sweep ran.
    pub spared: usize,
    /// Blobs whose bytes could not be deleted (retried by the next run).
    pub errors: Vec<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored manifest {repo}@{digest} does not parse: {why}")]
    Corrupt {
        repo: String,
        digest: String,
        why: String,
    },
}

/// What collections did in this process, as Prometheus counters the
/// server registers (dry runs are not counted).
#[derive(Clone, Debug, Default)]
pub struct GcTotals {
    pub runs: Counter,
    pub manifests_deleted: Counter,
    pub blobs_deleted: Counter,
    pub bytes_freed: Counter,
    pub spared: Counter,
    pub errors: Counter,
}

impl GcTotals {
    fn add(&self, r: &GcReport) {
        self.runs.inc();
        self.manifests_deleted.inc_by(r.manifests.len() as u64);
        self.blobs_deleted.inc_by(r.blobs.len() as u64);
        self.bytes_freed.inc_by(r.freed_bytes.max(0) as u64);
        self.spared.inc_by(r.spared as u64);
        self.errors.inc_by(r.errors.len() as u64);
    }
}

/// The collector: the registry's tables, the objects that name images,
/// and the blob storage.
#[derive(Clone)]
pub struct Collector {
    meta: RegistryStore,
    store: Store,
    storage: Arc<dyn BlobStorage>,
    totals: GcTotals,
}

impl Collector {
    pub fn new(
        meta: RegistryStore,
        store: Store,
        storage: Arc<dyn BlobStorage>,
        totals: GcTotals,
    ) -> Collector {
        Collector {
            meta,
            store,
            storage,
            totals,
        }
    }

    pub async fn run(&self, opts: GcOptions) -> Result<GcReport, GcError> {
        let started = Instant::now();
        let cutoff = crate::meta::now() - opts.grace.as_secs() as i64;
        // What objects name is read before the graph: an image named after
        // this point was pushed or touched after it, within the grace.
        let in_use = InUse::read(&self.store).await?;
        let grace = opts.grace.as_secs() as i64;
        let mut graph = self.meta.gc_graph(grace).await?;
        self.record_missing_refs(&mut graph, opts.dry_run).await?;
        let live = mark(&graph, &in_use);

        let doomed: Vec<SweptManifest> = graph
            .manifests
            .iter()
            .filter(|m| m.at < cutoff && !live.contains(&(m.repo.clone(), m.digest.clone())))
            .map(|m| SweptManifest {
                repository: m.repo.clone(),
                digest: m.digest.clone(),
                size: m.size,
            })
            .collect();
        let doomed_keys: HashSet<(&str, &str)> = doomed
            .iter()
            .map(|m| (m.repository.as_str(), m.digest.as_str()))
            .collect();
        let needed: HashSet<&str> = graph
            .refs
            .iter()
            .filter(|r| !r.is_manifest && !doomed_keys.contains(&(&r.repo, &r.manifest)))
            .map(|r| r.digest.as_str())
            .collect();
        let mut protected: HashSet<String> = graph.uploading.iter().cloned().collect();
        for repo in &in_use.pushing {
            protected.extend(self.meta.linked_blobs(repo).await?);
        }
        let candidates: Vec<_> = graph
            .blobs
            .iter()
            .filter(|b| {
                b.deleting
                    || (b.at < cutoff
                        && !needed.contains(b.digest.as_str())
                        && !protected.contains(&b.digest))
            })
            .collect();

        let mut report = GcReport {
            dry_run: opts.dry_run,
            grace_seconds: opts.grace.as_secs(),
            kept_manifests: graph.manifests.len() - doomed.len(),
            kept_blobs: graph.blobs.len() - candidates.len(),
            ..GcReport::default()
        };
        if opts.dry_run {
            report.freed_bytes = doomed.iter().map(|m| m.size).sum::<i64>()
                + candidates.iter().map(|b| b.size).sum::<i64>();
            report.manifests = doomed;
            report.blobs = candidates
                .iter()
                .map(|b| SweptBlob {
                    digest: b.digest.clone(),
                    size: b.size,
                })
                .collect();
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }
        // Manifests first: their reference rows go with them, so the blobs
        // only they named pass the sweep's re-check.
        for m in doomed {
            if self
                .meta
                .sweep_manifest(&m.repository, &m.digest, cutoff)
                .await?
            {
                report.freed_bytes += m.size;
                report.manifests.push(m);
            } else {
                report.spared += 1;
                report.kept_manifests += 1;
            }
        }
        for b in candidates {
            let location = if b.deleting {
                Some(b.location.clone())
            } else {
                self.meta
                    .claim_blob_for_deletion(&b.digest, cutoff, grace)
                    .await?
            };
            let Some(location) = location else {
                report.spared += 1;
                report.kept_blobs += 1;
                continue;
            };
            match self.storage.delete(&location).await {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(e) => {
                    // Left claimed: the next run tries again.
                    report.errors.push(format!("deleting {}: {e}", b.digest));
                    continue;
                }
            }
            self.meta.forget_blob(&b.digest).await?;
            report.freed_bytes += b.size;
            report.blobs.push(SweptBlob {
                digest: b.digest.clone(),
                size: b.size,
            });
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        self.totals.add(&report);
        Ok(report)
    }

    /// Manifests stored before references were recorded get them now
    /// (in memory only on a dry run).
    async fn record_missing_refs(&self, graph: &mut GcGraph, dry_run: bool) -> Result<(), GcError> {
        for m in self.meta.unrecorded_manifests().await? {
            let parsed =
                podspace_oci::manifest::parse(Some(&m.media_type), &m.body).map_err(|e| {
                    GcError::Corrupt {
                        repo: m.repo.clone(),
                        digest: m.digest.clone(),
                        why: e.0,
                    }
                })?;
            let refs = ManifestRefs::of(&parsed);
            if !dry_run {
                self.meta.record_refs(&m.repo, &m.digest, &refs).await?;
            }
            let rows = refs
                .blobs
                .iter()
                .map(|d| (d, false))
                .chain(refs.manifests.iter().map(|d| (d, true)));
            for (digest, is_manifest) in rows {
                graph.refs.push(GcRef {
                    repo: m.repo.clone(),
                    manifest: m.digest.clone(),
                    digest: digest.clone(),
                    is_manifest,
                });
            }
        }
        Ok(())
    }
}

/// Every `(repo, digest)` reachable from tags and from what objects name,
/// through index children and referrers.
fn mark(graph: &GcGraph, in_use: &InUse) -> HashSet<(String, String)> {
    let exists: HashSet<(&str, &str)> = graph
        .manifests
        .iter()
        .map(|m| (m.repo.as_str(), m.digest.as_str()))
        .collect();
    let mut next: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for r in graph.refs.iter().filter(|r| r.is_manifest) {
        next.entry((&r.repo, &r.manifest))
            .or_default()
            .push(&r.digest);
    }
    for m in &graph.manifests {
        if let Some(subject) = &m.subject {
            next.entry((&m.repo, subject)).or_default().push(&m.digest);
        }
    }
    let roots = graph
        .tags
        .iter()
        .chain(&in_use.history)
        .chain(&in_use.workloads)
        .map(|(r, d)| (r.as_str(), d.as_str()));
    let mut live: HashSet<(&str, &str)> = HashSet::new();
    let mut queue: Vec<(&str, &str)> = Vec::new();
    for root in roots {
        if exists.contains(&root) && live.insert(root) {
            queue.push(root);
        }
    }
    while let Some((repo, digest)) = queue.pop() {
        for d in next.get(&(repo, digest)).into_iter().flatten() {
            if exists.contains(&(repo, d)) && live.insert((repo, d)) {
                queue.push((repo, d));
            }
        }
    }
    live.into_iter()
        .map(|(r, d)| (r.to_string(), d.to_string()))
        .collect()
}
