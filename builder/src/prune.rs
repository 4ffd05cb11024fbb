//! Build pruning (`oc adm prune builds`): per BuildConfig, finished builds
//! beyond the newest `keep_complete` successes and `keep_failed` failures
//! (failed, error, cancelled) and older than `keep_younger_than` go; with
//! `orphans`, so do the finished builds whose BuildConfig is gone. Builds
//! that have not finished are never touched. Their logs, leases and inputs
//! follow through the bookkeeping sweep. Without `confirm` it only reports.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use podspace_api::kinds;
use podspace_api::model::{build, Build, BuildConfig};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Store, StoreError};
use serde::Serialize;

use crate::instantiate::BUILD_CONFIG;

#[derive(Debug, Clone, Copy)]
pub struct PruneBuilds {
    pub keep_complete: usize,
    pub keep_failed: usize,
    pub keep_younger_than: Duration,
    pub orphans: bool,
    pub confirm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedBuild {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub config: String,
}

/// The BuildConfig a build came from (empty: none).
fn config_of(b: &Build) -> String {
    if let Some(c) = &b.status.config {
        return c.name.clone();
    }
    b.metadata
        .labels
        .get(BUILD_CONFIG)
        .cloned()
        .unwrap_or_default()
}

/// `<config>-<n>`'s number, to order builds made in the same second.
fn number(b: &Build) -> u64 {
    b.metadata
        .name
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn old_enough(b: &Build, keep_younger_than: Duration, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(&b.metadata.creation_timestamp)
        .map(|t| now.signed_duration_since(t).to_std().unwrap_or_default() >= keep_younger_than)
        .unwrap_or(false)
}

pub async fn prune_builds(
    store: &Store,
    opts: PruneBuilds,
) -> Result<Vec<PrunedBuild>, StoreError> {
    let now = Utc::now();
    let all = LabelSelector::everything();
    let (builds, _) = store.list_as::<Build>("", &all).await?;
    let (configs, _) = store.list_as::<BuildConfig>("", &all).await?;
    let existing: HashSet<(String, String)> = configs
        .iter()
        .map(|c| (c.metadata.namespace.clone(), c.metadata.name.clone()))
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&Build>> = BTreeMap::new();
    for b in &builds {
        let config = config_of(b);
        if !config.is_empty() {
            groups
                .entry((b.metadata.namespace.clone(), config))
                .or_default()
                .push(b);
        }
    }
    let mut doomed = Vec::new();
    for ((ns, config), mut list) in groups {
        list.sort_by(|a, b| {
            (&b.metadata.creation_timestamp, number(b))
                .cmp(&(&a.metadata.creation_timestamp, number(a)))
        });
        let orphaned = !existing.contains(&(ns.clone(), config.clone()));
        let (mut complete, mut failed) = (0, 0);
        for b in list {
            let phase = b.status.phase();
            let over = match phase {
                build::COMPLETE => {
                    complete += 1;
                    complete > opts.keep_complete
                }
                build::FAILED | build::ERROR | build::CANCELLED => {
                    failed += 1;
                    failed > opts.keep_failed
                }
                _ => continue,
            };
            if (over || (orphaned && opts.orphans)) && old_enough(b, opts.keep_younger_than, now) {
                doomed.push(PrunedBuild {
                    namespace: ns.clone(),
                    name: b.metadata.name.clone(),
                    phase: phase.to_string(),
                    config: config.clone(),
                });
            }
        }
    }
    if opts.confirm {
        for b in &doomed {
            match store
                .delete(&kinds::BUILD, &b.namespace, &b.name, None)
                .await
            {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(doomed)
}
