//! The control plane's side of the node protocol, without HTTP: which
//! Pending build a node is offered (and everything the offer carries —
//! its registry token, its resolved secrets and config maps), what a
//! heartbeat renews and stops, and how a node's report changes its Build.
//! The server's handlers authenticate the node, parse, call one of these
//! and render the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podspace_api::auth::{AuthError, Authenticator, Principal};
use podspace_api::model::build::{BuildStatusOutput, BuildStatusOutputTo};
use podspace_api::model::{Build, ConfigMap, Secret};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{Store, StoreError, UpdateScope};

use crate::bookkeeping::{BuildLease, BuildStore};
use crate::controller::{terminal_refusal, token_description, transition};
use crate::phase;
use crate::protocol::{
    BuildReport, GitAuth, HeartbeatReply, InputFiles, InputKind, LeaseGrant, RegistryAuth,
};

/// How long binary input may take to arrive before its build is given up.
const BINARY_INPUT_TIMEOUT: i64 = 300;
/// How long a build's registry token may live at most (its lease ends it
/// sooner).
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("encoding the build: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("node {node:?} does not hold the lease of build {namespace}/{name}")]
    NotHolder {
        node: String,
        namespace: String,
        name: String,
    },
}

/// What every offer says besides the build.
#[derive(Debug, Clone)]
pub struct LeaseTerms {
    pub lease: Duration,
    /// `host:port` of our registry as the nodes' engines reach it.
    pub registry: String,
    pub max_context_bytes: u64,
    pub max_context_entries: u64,
    pub allow_root_assemble: bool,
}

/// Offers builds to nodes and takes their reports.
pub struct Leases {
    store: Store,
    builds: BuildStore,
    authn: Authenticator,
    terms: LeaseTerms,
    pending: PendingBuilds,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Leases {
    pub fn new(store: Store, builds: BuildStore, authn: Authenticator, terms: LeaseTerms) -> Self {
        Leases {
            store,
            builds,
            authn,
            terms,
            pending: PendingBuilds::default(),
        }
    }

    /// The build `ns/name` if `node` holds its lease.
    pub async fn leased_build(
        &self,
        node: &str,
        ns: &str,
        name: &str,
    ) -> Result<Build, LeaseError> {
        let build = self.store.get_as::<Build>(ns, name).await?;
        match self.builds.build_lease(&build.metadata.uid).await? {
            Some(l) if l.node == node => Ok(build),
            _ => Err(LeaseError::NotHolder {
                node: node.to_string(),
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// Claims the oldest runnable Pending build for `node` and makes its
    /// offer; `None` when there is none right now.
    pub async fn offer(&self, node: &str) -> Result<Option<LeaseGrant>, LeaseError> {
        let queue = self.pending.get(&self.store).await?;
        let lease_ms = self.terms.lease.as_millis() as i64;
        for b in queue.iter() {
            let binary = b.spec.is_binary();
            let input = match binary {
                true => self.builds.build_input(&b.metadata.uid).await?,
                false => None,
            };
            if binary && input.is_none() {
                self.give_up_on_missing_input(b).await?;
                continue;
            }
            let lease = BuildLease {
                uid: b.metadata.uid.clone(),
                namespace: b.metadata.namespace.clone(),
                name: b.metadata.name.clone(),
                node: node.to_string(),
                expires_at: now_ms() + lease_ms,
            };
            if !self.builds.claim_build(&lease).await? {
                continue;
            }
            match self.offer_claimed(b, input.is_some()).await {
                Ok(Some(grant)) => {
                    tracing::info!(namespace = %b.metadata.namespace, build = %b.metadata.name, node, "build leased");
                    return Ok(Some(grant));
                }
                Ok(None) => {
                    self.builds.release_build(&lease.uid, None).await?;
                }
                Err(e) => {
                    self.builds.release_build(&lease.uid, None).await?;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// The offer of a build this node just claimed, or `None` when it is
    /// no longer runnable (the caller then drops the claim). The claim is
    /// only an offer until the node confirms it (its first report,
    /// Running): a node that vanished while its lease poll was answered
    /// never starts the build, and the offer simply expires.
    async fn offer_claimed(
        &self,
        b: &Build,
        has_input: bool,
    ) -> Result<Option<LeaseGrant>, LeaseError> {
        let current = self
            .store
            .find_as::<Build>(&b.metadata.namespace, &b.metadata.name)
            .await?;
        let Some(build) = current.filter(|c| {
            c.metadata.uid == b.metadata.uid
                && phase::phase(c) == phase::PENDING
                && !phase::cancel_requested(c)
        }) else {
            return Ok(None);
        };
        let input_files = match self.input_files(&build).await? {
            Ok(files) => files,
            Err(missing) => {
                transition(&self.store, &build, |b| {
                    phase::set(b, phase::FAILED, "MissingBuildInput", &missing);
                })
                .await?;
                return Ok(None);
            }
        };
        let ns = &build.metadata.namespace;
        let token = self
            .authn
            .issue_token(
                &Principal::service_account(ns, "builder").name,
                TOKEN_TTL,
                &token_description(&build.metadata.uid),
            )
            .await?;
        Ok(Some(LeaseGrant {
            git_auth: self.git_auth(&build).await?,
            push_auths: self
                .registry_auths(&build, build.spec.push_secret())
                .await?,
            pull_auths: self
                .registry_auths(&build, build.spec.strategy.pull_secret())
                .await?,
            has_input,
            build: serde_json::to_value(&build)?,
            lease_seconds: self.terms.lease.as_secs(),
            registry: self.terms.registry.clone(),
            registry_token: token.token,
            max_context_bytes: self.terms.max_context_bytes,
            max_context_entries: self.terms.max_context_entries,
            allow_root_assemble: self.terms.allow_root_assemble,
            input_files,
        }))
    }

    /// A binary build whose upload never arrived (the uploader died
    /// between creating the build and recording the input) is cancelled
    /// after a while.
    async fn give_up_on_missing_input(&self, b: &Build) -> Result<(), StoreError> {
        let created = chrono::DateTime::parse_from_rfc3339(&b.metadata.creation_timestamp)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        if chrono::Utc::now().timestamp() - created < BINARY_INPUT_TIMEOUT {
            return Ok(());
        }
        transition(&self.store, b, |b| {
            if phase::cancel(b) {
                b.status.message = "The binary input never arrived.".into();
            }
        })
        .await
    }

    /// A Secret of the build's project.
    async fn build_secret(
        &self,
        build: &Build,
        name: Option<&str>,
    ) -> Result<Option<Secret>, StoreError> {
        let Some(name) = name else {
            return Ok(None);
        };
        self.store
            .find_as::<Secret>(&build.metadata.namespace, name)
            .await
    }

    /// `spec.source.secrets` and `configMaps`, read in the build's project;
    /// a missing one is the message the build fails with.
    async fn input_files(
        &self,
        build: &Build,
    ) -> Result<Result<Vec<InputFiles>, String>, StoreError> {
        use base64::Engine;
        let b64 = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> {
            files
                .into_iter()
                .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
                .collect()
        };
        let ns = &build.metadata.namespace;
        let Some(source) = build.spec.source.as_ref() else {
            return Ok(Ok(Vec::new()));
        };
        let mut out = Vec::new();
        for (i, s) in source.secrets.iter().flatten().enumerate() {
            let name = &s.secret.name;
            let Some(secret) = self.store.find_as::<Secret>(ns, name).await? else {
                return Ok(Err(format!(
                    "secret {name:?} (spec.source.secrets[{i}]) not found in project {ns:?}"
                )));
            };
            out.push(InputFiles {
                kind: InputKind::Secret,
                name: name.clone(),
                destination_dir: s.destination_dir.clone().unwrap_or_default(),
                files: b64(secret.files()),
            });
        }
        for (i, m) in source.config_maps.iter().flatten().enumerate() {
            let name = &m.config_map.name;
            let Some(map) = self.store.find_as::<ConfigMap>(ns, name).await? else {
                return Ok(Err(format!(
                    "configMap {name:?} (spec.source.configMaps[{i}]) not found in project {ns:?}"
                )));
            };
            out.push(InputFiles {
                kind: InputKind::ConfigMap,
                name: name.clone(),
                destination_dir: m.destination_dir.clone().unwrap_or_default(),
                files: b64(map.files()),
            });
        }
        Ok(Ok(out))
    }

    /// `spec.source.sourceSecret`: a basic-auth Secret (`username` and
    /// `password`, or a `token` used as the password).
    async fn git_auth(&self, build: &Build) -> Result<Option<GitAuth>, StoreError> {
        let Some(secret) = self.build_secret(build, build.spec.source_secret()).await? else {
            return Ok(None);
        };
        let password = secret.value("password").or_else(|| secret.value("token"));
        Ok(password.map(|password| GitAuth {
            username: secret.value("username").unwrap_or_else(|| "git".into()),
            password,
        }))
    }

    /// Credentials for other registries: `output.pushSecret` (push) and
    /// the strategy's `pullSecret` (base images), as Docker config Secrets.
    async fn registry_auths(
        &self,
        build: &Build,
        secret: Option<&str>,
    ) -> Result<BTreeMap<String, RegistryAuth>, StoreError> {
        let Some(secret) = self.build_secret(build, secret).await? else {
            return Ok(BTreeMap::new());
        };
        Ok(secret
            .registry_credentials()
            .into_iter()
            .map(|(host, (username, password))| (host, RegistryAuth { username, password }))
            .collect())
    }

    /// Renews the leases `node` holds on `uids`; says which it lost and
    /// which to stop (cancelled, deleted or already ended).
    pub async fn heartbeat(
        &self,
        node: &str,
        uids: &[String],
    ) -> Result<HeartbeatReply, StoreError> {
        let expires = now_ms() + self.terms.lease.as_millis() as i64;
        let held = self.builds.renew_leases(node, uids, expires).await?;
        let held_set: BTreeSet<&String> = held.iter().collect();
        let mut reply = HeartbeatReply {
            lost: uids
                .iter()
                .filter(|u| !held_set.contains(u))
                .cloned()
                .collect(),
            ..Default::default()
        };
        for uid in &held {
            let Some(lease) = self.builds.build_lease(uid).await? else {
                continue;
            };
            let stop = match self
                .store
                .find_as::<Build>(&lease.namespace, &lease.name)
                .await?
            {
                Some(b) => {
                    b.metadata.uid != *uid
                        || phase::cancel_requested(&b)
                        || phase::is_terminal(phase::phase(&b))
                }
                None => true,
            };
            if stop {
                reply.cancel.push(uid.clone());
            }
        }
        Ok(reply)
    }

    /// Applies `node`'s report `r` to the build it holds (`build`, as
    /// `leased_build` found it): confirming the lease (Pending → Running),
    /// or progress and the result. A terminal phase ends the lease and the
    /// build's registry token.
    pub async fn report(
        &self,
        node: &str,
        build: &Build,
        r: &BuildReport,
    ) -> Result<Build, StoreError> {
        if !matches!(
            r.phase.as_str(),
            phase::RUNNING | phase::COMPLETE | phase::FAILED | phase::ERROR | phase::CANCELLED
        ) {
            return Err(StoreError::Rejected(podspace_api::Status::bad_request(
                format!("a node cannot report phase {:?}", r.phase),
            )));
        }
        let (ns, name) = (&build.metadata.namespace, &build.metadata.name);
        let uid = build.metadata.uid.clone();
        let updated = self
            .store
            .mutate_as::<Build, _>(ns, name, None, UpdateScope::All, |b| {
                let current = phase::phase(b).to_string();
                // Pending → Running is the node confirming its lease; every
                // other report is about a build it runs.
                let confirming = current == phase::PENDING && r.phase == phase::RUNNING;
                if b.metadata.uid != uid
                    || phase::cancel_requested(b) && confirming
                    || !(confirming || current == phase::RUNNING)
                {
                    return Err(terminal_refusal(b));
                }
                if confirming {
                    let pod = format!("{}-build", b.metadata.name);
                    let annotations = &mut b.metadata.annotations;
                    annotations.insert("podspace.io/build-node".into(), node.to_string());
                    annotations.insert("openshift.io/build.pod-name".into(), pod);
                }
                if let Some(rev) = &r.revision {
                    b.spec.revision = Some(rev.clone());
                }
                if !phase::set(b, &r.phase, &r.reason, &r.message) {
                    return Err(terminal_refusal(b));
                }
                let status = &mut b.status;
                if let Some(reference) = &r.output_docker_image_reference {
                    status.output_docker_image_reference = Some(reference.clone());
                }
                if let Some(digest) = &r.image_digest {
                    status.output = Some(BuildStatusOutput {
                        to: Some(BuildStatusOutputTo {
                            image_digest: digest.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                if let Some(stages) = &r.stages {
                    status.extra.insert("stages".into(), stages.clone());
                }
                if let Some(snippet) = r.log_snippet.as_ref().filter(|s| !s.is_empty()) {
                    status.log_snippet = Some(snippet.clone());
                }
                Ok(())
            })
            .await?;
        if phase::is_terminal(&r.phase) {
            self.builds.release_build(&uid, None).await?;
            // The build's push token dies with it (a replica's token cache
            // may still accept it for its last few seconds).
            self.store
                .delete_tokens_described(&token_description(&uid))
                .await?;
        }
        Ok(updated)
    }
}

/// The Pending builds, oldest first, as of a local commit. Every waiting
/// lease poll of this replica is woken by the same commit; one of them
/// lists the builds and the others reuse that list (a stale entry only
/// costs a failed claim). Other replicas' commits are seen within the TTL.
#[derive(Default)]
struct PendingBuilds {
    cached: tokio::sync::Mutex<Option<PendingSnapshot>>,
}

struct PendingSnapshot {
    /// The local commit it was listed after.
    rv: i64,
    listed: Instant,
    builds: Arc<Vec<Build>>,
}

const PENDING_TTL: Duration = Duration::from_millis(500);

impl PendingBuilds {
    async fn get(&self, store: &Store) -> Result<Arc<Vec<Build>>, StoreError> {
        let rv = *store.subscribe_commits().borrow();
        let mut cached = self.cached.lock().await;
        if let Some(snap) = cached.as_ref() {
            if snap.rv == rv && snap.listed.elapsed() < PENDING_TTL {
                return Ok(snap.builds.clone());
            }
        }
        let (builds, _) = store
            .list_as::<Build>("", &LabelSelector::everything())
            .await?;
        let mut queue: Vec<Build> = builds
            .into_iter()
            .filter(|b| phase::phase(b) == phase::PENDING && !phase::cancel_requested(b))
            .collect();
        queue.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, phase::number(a))
                .cmp(&(&b.metadata.creation_timestamp, phase::number(b)))
        });
        let builds = Arc::new(queue);
        *cached = Some(PendingSnapshot {
            rv,
            listed: Instant::now(),
            builds: builds.clone(),
        });
        Ok(builds)
    }
}
