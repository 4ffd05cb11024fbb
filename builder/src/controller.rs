//! The build controller: follows the event log (its own durable cursor)
//! and, for every BuildConfig whose builds or spec changed, applies
//! cancellations of queued builds, the run policy (New → Pending, where
//! nodes find them) and the history limits. It also ends builds whose
//! node stopped renewing its lease: `Error` / `NodeLost`.
//!
//! A build whose node vanished is not retried: it may already have run
//! RUN steps with side effects or pushed its image, and "never run twice"
//! is the promise users can rely on; they re-run it with `psc start-build
//! --from-build`.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use podspace_api::model::{Build, BuildConfig};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Change, Store, StoreError, UpdateScope};
use podspace_api::Status;
use podspace_runtime::{Action, Controller};

use crate::bookkeeping::BuildStore;
use crate::instantiate::BUILD_CONFIG;
use crate::phase::{self, NEW, PENDING, RUNNING};
use crate::policy;

/// The description of the registry token issued with a lease of build
/// `uid`: how it is found and deleted once the build ends or the offer
/// lapses.
pub fn token_description(uid: &str) -> String {
    format!("build {uid}")
}

/// How often expired leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often Running builds without any lease are looked for (a crash
/// between claiming and reporting leaves one).
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The build controller, run by `podspace_runtime`. A key is a config's
/// builds (namespace, config, "") or one build without a config
/// (namespace, None, build).
pub struct BuildController {
    lease: Duration,
    builds: BuildStore,
    started: Instant,
    last_orphans: Mutex<Instant>,
}

impl BuildController {
    /// `lease`: the build nodes' lease period.
    pub fn new(lease: Duration, builds: BuildStore) -> Self {
        BuildController {
            lease,
            builds,
            started: Instant::now(),
            last_orphans: Mutex::new(Instant::now()),
        }
    }
}

type Key = (String, Option<String>, String);

#[podspace_runtime::async_trait]
impl Controller for BuildController {
    type Key = Key;

    fn name(&self) -> &'static str {
        "builds"
    }

    fn watches(&self) -> &'static [&'static str] {
        &["BuildConfig", "Build"]
    }

    async fn keys_for(&self, store: &Store, change: &Change) -> Result<Vec<Key>, StoreError> {
        let (ns, name) = (change.namespace.clone(), change.name.clone());
        if change.kind == "BuildConfig" {
            return Ok(vec![(ns, Some(name), String::new())]);
        }
        Ok(match store.find_as::<Build>(&ns, &name).await? {
            Some(b) => vec![owner(&b)],
            // A deleted build frees its config's queue.
            None => match name.rsplit_once('-') {
                Some((bc, _)) => vec![(ns, Some(bc.to_string()), String::new())],
                None => Vec::new(),
            },
        })
    }

    async fn all_keys(&self, store: &Store) -> Result<Vec<Key>, StoreError> {
        let (all, _) = store
            .list_as::<Build>("", &LabelSelector::everything())
            .await?;
        let keys: BTreeSet<Key> = all.iter().map(owner).collect();
        Ok(keys.into_iter().collect())
    }

    async fn reconcile(&self, store: &Store, key: &Key) -> Result<Action, StoreError> {
        reconcile(store, &key.0, key.1.as_deref(), &key.2).await?;
        Ok(Action::Done)
    }

    fn period(&self) -> Option<Duration> {
        Some(SWEEP_EVERY)
    }

    /// Leases that ran out while this process (or the API that nodes talk
    /// to) was down are not the nodes' fault: they get one lease period to
    /// renew before anything is declared lost.
    async fn tick(&self, store: &Store) -> Result<Vec<Key>, StoreError> {
        if self.started.elapsed() >= self.lease {
            sweep_leases(store, &self.builds).await?;
        }
        let orphans_due = {
            let mut last = self
                .last_orphans
                .lock()
                .map_err(|_| StoreError::Config("orphan sweep clock poisoned".into()))?;
            let due = last.elapsed() >= ORPHAN_SWEEP_EVERY.max(self.lease);
            if due {
                *last = Instant::now();
            }
            due
        };
        if orphans_due {
            sweep_orphans(store, &self.builds, self.lease).await?;
        }
        Ok(Vec::new())
    }
}

/// (namespace, config name if any, build name).
fn owner(b: &Build) -> Key {
    let bc = b
        .metadata
        .annotations
        .get(BUILD_CONFIG)
        .or_else(|| b.metadata.labels.get(BUILD_CONFIG))
        .cloned();
    let name = if bc.is_some() {
        String::new()
    } else {
        b.metadata.name.clone()
    };
    (b.metadata.namespace.clone(), bc, name)
}

async fn reconcile(
    store: &Store,
    ns: &str,
    bc: Option<&str>,
    build: &str,
) -> Result<(), StoreError> {
    let builds = match bc {
        Some(bc) => {
            let label: String = bc.chars().take(63).collect();
            let selector = LabelSelector::parse(&format!("{BUILD_CONFIG}={label}"))
                .map_err(|e| StoreError::Config(e.to_string()))?;
            let (mut builds, _) = store.list_as::<Build>(ns, &selector).await?;
            builds.retain(|b| {
                b.metadata
                    .annotations
                    .get(BUILD_CONFIG)
                    .is_none_or(|a| a == bc)
            });
            builds
        }
        None => match store.find_as::<Build>(ns, build).await? {
            Some(b) => vec![b],
            None => return Ok(()),
        },
    };
    // Queued builds whose cancellation was asked for end now; running ones
    // are stopped by their node, which sees the flag on its next heartbeat.
    for b in &builds {
        if phase::cancel_requested(b) && matches!(phase::phase(b), NEW | PENDING) {
            transition(store, b, |b| {
                phase::cancel(b);
            })
            .await?;
        }
    }
    let decision = match bc {
        Some(_) => policy::decide(&builds),
        None => policy::Decision {
            start: builds
                .iter()
                .filter(|b| phase::phase(b) == NEW && !phase::cancel_requested(b))
                .map(|b| b.metadata.name.clone())
                .collect(),
            cancel: Vec::new(),
        },
    };
    for name in &decision.cancel {
        if let Some(b) = builds.iter().find(|b| &b.metadata.name == name) {
            transition(store, b, |b| {
                phase::cancel(b);
            })
            .await?;
        }
    }
    for name in &decision.start {
        if let Some(b) = builds.iter().find(|b| &b.metadata.name == name) {
            transition(store, b, |b| {
                if phase::phase(b) == NEW && !phase::cancel_requested(b) {
                    phase::set(b, PENDING, "", "");
                }
            })
            .await?;
        }
    }
    if let Some(bc) = bc {
        prune(store, ns, bc, &builds).await?;
    }
    Ok(())
}

/// Applies `f` to the stored build's status (not the listed copy, which may
/// be stale); a build deleted meanwhile is left alone.
pub async fn transition<F>(store: &Store, b: &Build, f: F) -> Result<(), StoreError>
where
    F: FnOnce(&mut Build) + Send,
{
    let result = store
        .mutate_as::<Build, _>(
            &b.metadata.namespace,
            &b.metadata.name,
            None,
            UpdateScope::Status,
            |b| {
                f(b);
                Ok(())
            },
        )
        .await;
    match result {
        Ok(b) => {
            tracing::debug!(namespace = %b.metadata.namespace, build = %b.metadata.name, phase = phase::phase(&b), "build phase");
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// History limits (builds.md §7): keep the newest N complete and N failed
/// (Failed, Error, Cancelled) builds when the config sets the limits.
async fn prune(store: &Store, ns: &str, bc: &str, builds: &[Build]) -> Result<(), StoreError> {
    let Some(config) = store.find_as::<BuildConfig>(ns, bc).await? else {
        return Ok(());
    };
    let limit = |n: Option<i64>| n.map(|n| n.max(0) as usize);
    let groups: [(&[&str], Option<usize>); 2] = [
        (
            &[phase::COMPLETE],
            limit(config.spec.successful_builds_history_limit),
        ),
        (
            &[phase::FAILED, phase::ERROR, phase::CANCELLED],
            limit(config.spec.failed_builds_history_limit),
        ),
    ];
    for (phases, keep) in groups {
        let Some(keep) = keep else { continue };
        let mut done: Vec<&Build> = builds
            .iter()
            .filter(|b| phases.contains(&phase::phase(b)))
            .collect();
        // Newest first: by creation time, then by build number.
        done.sort_by(|a, b| {
            (&b.metadata.creation_timestamp, phase::number(b))
                .cmp(&(&a.metadata.creation_timestamp, phase::number(a)))
        });
        for old in done.into_iter().skip(keep) {
            match store
                .delete(&podspace_api::kinds::BUILD, ns, &old.metadata.name, None)
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace = ns, build = %old.metadata.name, "pruned build history")
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Ends the builds whose node stopped renewing its lease.
pub async fn sweep_leases(store: &Store, builds: &BuildStore) -> Result<(), StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    for lease in builds.build_leases().await? {
        if lease.expires_at > now {
            continue;
        }
        let build = store
            .find_as::<Build>(&lease.namespace, &lease.name)
            .await?
            .filter(|b| b.metadata.uid == lease.uid);
        if let Some(b) = build.filter(|b| phase::phase(b) == RUNNING) {
            let node = lease.node.clone();
            lose(store, &b, &node).await?;
        }
        // A Pending build claimed by a node that died before starting it
        // simply goes back to the queue. Either way the lease's registry
        // token is of no use to anyone any more.
        if builds
            .release_build(&lease.uid, Some(lease.expires_at))
            .await?
        {
            store
                .delete_tokens_described(&token_description(&lease.uid))
                .await?;
        }
    }
    Ok(())
}

/// Running builds with no lease at all (their node crashed between the
/// claim and the first heartbeat, and the lease row went with a restore):
/// ended like a lost node once they are older than a lease.
async fn sweep_orphans(
    store: &Store,
    builds: &BuildStore,
    lease: Duration,
) -> Result<(), StoreError> {
    let held: BTreeSet<String> = builds
        .build_leases()
        .await?
        .into_iter()
        .map(|l| l.uid)
        .collect();
    let (builds, _) = store
        .list_as::<Build>("", &LabelSelector::everything())
        .await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(lease).unwrap_or_default();
    for b in builds {
        if phase::phase(&b) != RUNNING || held.contains(&b.metadata.uid) {
            continue;
        }
        let started = b
            .status
            .start_timestamp
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        if started.is_some_and(|t| t < cutoff) {
            lose(store, &b, "unknown").await?;
        }
    }
    Ok(())
}

async fn lose(store: &Store, b: &Build, node: &str) -> Result<(), StoreError> {
    let message = format!("The build node {node:?} stopped reporting; the build was lost.");
    transition(store, b, move |b| {
        if phase::phase(b) != RUNNING {
            return;
        }
        if phase::cancel_requested(b) {
            phase::cancel(b);
        } else {
            phase::set(b, phase::ERROR, "NodeLost", &message);
        }
    })
    .await?;
    tracing::warn!(namespace = %b.metadata.namespace, build = %b.metadata.name, node, "build node lost");
    Ok(())
}

/// Refusal for a build that may not change any more.
pub fn terminal_refusal(b: &Build) -> Status {
    Status::new(
        podspace_api::Reason::Conflict,
        format!(
            "build {} is in phase {} and can no longer change",
            b.metadata.name,
            phase::phase(b)
        ),
    )
}
