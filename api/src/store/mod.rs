//! The metadata store: objects as JSON rows, a global resourceVersion, and a
//! durable event log written in the same transaction as each change.
//!
//! One code path serves SQLite and PostgreSQL (sqlx's `Any` driver). Every
//! write transaction begins by bumping the single row of `rv_counter`; that
//! row lock serializes writers until commit, so resourceVersions commit in
//! order and a reader that has seen event N has seen every event before it.
//! Watchers and controllers can therefore tail the log by `rv > last` and
//! never miss an event, on either backend and across replicas.

mod batch;
mod cache;
mod consumer;
mod credentials;
mod error;
mod index;
mod many;
mod owned;
mod schema;
mod server_keys;
#[cfg(feature = "testing")]
pub mod testing;
mod typed;
mod waiter;
mod webhooks;

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use cache::{Cached, ObjectCache};
pub use consumer::{Change, Pending};
pub use credentials::TokenRecord;
pub use error::StoreError;
pub use index::Indexer;
pub use owned::{Schema, Tx, TxStep};
pub use waiter::{stopped, ChangeWaiter};
pub use webhooks::{Claim, DeliveryRecord, KEEP_PER_CONFIG, REPLAY_WINDOW};

use crate::kinds::KindInfo;
use crate::meta::Object;
use crate::selector::LabelSelector;
use crate::status::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One entry of the durable event log.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: i64,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub event_type: EventType,
    /// The object as stored by this change (for DELETED: its last state,
    /// carrying the deletion's resourceVersion).
    pub body: Arc<str>,
}

/// Whether an update writes the object's main fields or only its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    Main,
    Status,
    /// Spec and status together: for server-side writers that own both
    /// (an ImageStreamTag update sets a spec tag and its first event).
    All,
}

/// Kinds whose changes can alter who may do what.
const RBAC_KINDS: &[&str] = &[
    "RoleBinding",
    "ClusterRoleBinding",
    "Project",
    "User",
    "ServiceAccount",
];

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    write: AnyPool,
    read: AnyPool,
    committed: tokio::sync::watch::Sender<i64>,
    rbac_epoch: AtomicU64,
    creates: tokio::sync::mpsc::Sender<batch::CreateRequest>,
    cache: Option<ObjectCache>,
    indexes: index::Indexes,
    /// With SQLite, this process owns the database file (the object cache
    /// depends on it); the lock is held as long as the store lives.
    _owner: Option<std::fs::File>,
}

/// How long a DELETE of a row-heavy namespace or a large list may take.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

impl Store {
    /// Opens (and creates or migrates) the store at `url`:
    /// `sqlite://PATH` or `postgres://USER:PW@HOST/DB`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://...",
                redact_url(url)
            )));
        };
        let mut owner = None;
        let (write, read) = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                owner = Some(lock_owner(&url)?);
                // SQLite allows one writer at a time; one writer connection
                // avoids busy-waiting between our own connections, and WAL
                // lets the readers run beside it.
                let write = sqlite_pool(&url, 1).await?;
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&write)
                    .await?;
                let read = sqlite_pool(&url, 8).await?;
                (write, read)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        schema::migrate(&write, backend).await?;
        let current: i64 = sqlx::query_scalar("SELECT value FROM rv_counter WHERE id = 1")
            .fetch_one(&read)
            .await?;
        let (committed, _) = tokio::sync::watch::channel(current);
        let (creates, queue) = tokio::sync::mpsc::channel(1024);
        let inner = Arc::new(Inner {
            backend,
            write,
            read,
            committed,
            rbac_epoch: AtomicU64::new(1),
            creates,
            cache: (backend == Backend::Sqlite).then(ObjectCache::new),
            indexes: index::Indexes::default(),
            _owner: owner,
        });
        batch::spawn(Arc::downgrade(&inner), queue);
        Ok(Store { inner })
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The newest resourceVersion this process committed or observed.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.committed.subscribe()
    }

    /// Changes whenever something that can change an authorization decision
    /// was written (here, or by another replica once its event is tailed).
    pub fn rbac_epoch(&self) -> u64 {
        self.inner.rbac_epoch.load(Ordering::Acquire)
    }

    /// Called by the event tail for every event, including other replicas'.
    pub fn observe_event(&self, kind: &str) {
        if RBAC_KINDS.contains(&kind) {
            self.inner.rbac_epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.inner.read).await?;
        Ok(())
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.inner.write.begin().await?)
    }

    fn cache_put(&self, kind: &'static str, ns: &str, name: &str, rv: i64, value: Cached) {
        if let Some(cache) = &self.inner.cache {
            cache.put(kind, ns, name, rv, value);
        }
    }

    /// Commits a write of `kinds`. The caller then puts what it wrote in
    /// the object cache and only then calls [`Store::publish`]: whoever a
    /// commit wakes (a controller, a watch) must read what it committed,
    /// never the cache's older copy.
    async fn commit(
        &self,
        tx: Transaction<'static, Any>,
        kinds: &[&str],
    ) -> Result<(), StoreError> {
        tx.commit().await?;
        if kinds.iter().any(|k| RBAC_KINDS.contains(k)) {
            self.inner.rbac_epoch.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Tells waiters that everything up to `last_rv` is committed.
    fn publish(&self, last_rv: i64) {
        self.inner.committed.send_if_modified(|v| {
            if last_rv > *v {
                *v = last_rv;
                true
            } else {
                false
            }
        });
    }

    /// Creates an object. Fills uid, resourceVersion, generation,
    /// creationTimestamp, and a name from `generateName` when needed.
    /// Concurrent creates are committed together (see `batch.rs`).
    pub async fn create(&self, kind: &'static KindInfo, obj: Object) -> Result<Object, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .creates
            .send(batch::CreateRequest { kind, obj, reply })
            .await
            .map_err(|_| StoreError::Config("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Config("the store is closed".into()))?
    }

    /// Creates several objects in one transaction: all or none.
    pub async fn create_many(
        &self,
        objs: Vec<(&'static KindInfo, Object)>,
    ) -> Result<Vec<Object>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut rv = next_rvs(&mut tx, objs.len() as i64).await?;
        let now = now_rfc3339();
        // Checked inside the write transaction: a project deleted
        // concurrently cannot end up with orphans. Projects created earlier
        // in this same batch count.
        let wanted: std::collections::BTreeSet<&str> = objs
            .iter()
            .filter(|(k, _)| k.namespaced)
            .map(|(_, o)| o.metadata.namespace.as_str())
            .collect();
        let mut projects = batch::existing_projects(&mut tx, &wanted).await?;
        let mut out = Vec::with_capacity(objs.len());
        let mut kinds = Vec::with_capacity(objs.len());
        for (kind, mut obj) in objs {
            rv += 1;
            let body = insert_new(
                &mut tx,
                &self.inner.indexes,
                kind,
                &mut obj,
                rv,
                &now,
                &projects,
            )
            .await?;
            if kind.kind == "Project" {
                projects.insert(obj.metadata.name.clone());
            }
            kinds.push((
                kind.kind,
                obj.metadata.namespace.clone(),
                obj.metadata.name.clone(),
                rv,
                body,
            ));
            out.push(obj);
        }
        let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
        self.commit(tx, &names).await?;
        for (kind, ns, name, rv, body) in kinds {
            self.cache_put(kind, &ns, &name, rv, Cached::Present(Arc::from(body)));
        }
        self.publish(rv);
        Ok(out)
    }

    pub async fn get(
        &self,
        kind: &'static KindInfo,
        ns: &str,
        name: &str,
    ) -> Result<Object, StoreError> {
        let body = self.get_raw(kind, ns, name).await?;
        Ok(serde_json::from_str(&body)?)
    }

    /// The stored JSON, unparsed: the GET hot path sends it as it is.
    pub async fn get_raw(
        &self,
        kind: &'static KindInfo,
        ns: &str,
        name: &str,
    ) -> Result<Arc<str>, StoreError> {
        let ns = if kind.namespaced { ns } else { "" };
        let not_found = || StoreError::NotFound {
            kind,
            name: name.into(),
        };
        let generation = match &self.inner.cache {
            Some(cache) => match cache.get(kind.kind, ns, name) {
                Some(Cached::Present(body)) => return Ok(body),
                Some(Cached::Deleted) => return Err(not_found()),
                None => Some(cache.write_generation()),
            },
            None => None,
        };
        let row = sqlx::query(
            "SELECT rv, body FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(kind.kind)
        .bind(ns)
        .bind(name)
        .fetch_optional(&self.inner.read)
        .await?;
        let Some(row) = row else {
            return Err(not_found());
        };
        let rv: i64 = row.try_get(0)?;
        let body: Arc<str> = Arc::from(row.try_get::<String, _>(1)?);
        if let (Some(cache), Some(generation)) = (&self.inner.cache, generation) {
            cache.fill(kind.kind, ns, name, rv, body.clone(), generation);
        }
        Ok(body)
    }

    /// Lists objects of a kind (`ns` empty: every namespace) and the
    /// resourceVersion to watch from so as to miss nothing after the list.
    pub async fn list(
        &self,
        kind: &'static KindInfo,
        ns: &str,
        selector: &LabelSelector,
    ) -> Result<(Vec<Object>, i64), StoreError> {
        let mut tx = self.inner.read.begin().await?;
        // The counter is read first: a change racing with the list then has a
        // larger resourceVersion and is replayed to a watcher, never skipped.
        let rv: i64 = sqlx::query_scalar("SELECT value FROM rv_counter WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let rows = if kind.namespaced && !ns.is_empty() {
            sqlx::query("SELECT body FROM objects WHERE kind = $1 AND namespace = $2 ORDER BY name")
                .bind(kind.kind)
                .bind(ns)
                .fetch_all(&mut *tx)
                .await?
        } else {
            sqlx::query("SELECT body FROM objects WHERE kind = $1 ORDER BY namespace, name")
                .bind(kind.kind)
                .fetch_all(&mut *tx)
                .await?
        };
        tx.commit().await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.try_get(0)?;
            let obj: Object = serde_json::from_str(&body)?;
            if selector.matches(&obj.metadata.labels) {
                items.push(obj);
            }
        }
        Ok((items, rv))
    }

    /// Replaces an object. `obj.metadata.resourceVersion`, when set, must be
    /// the stored one (else Conflict). Immutable metadata is kept; for kinds
    /// with a status subresource the scope decides which half is written.
    pub async fn update(
        &self,
        kind: &'static KindInfo,
        obj: Object,
        scope: UpdateScope,
    ) -> Result<Object, StoreError> {
        self.update_checked(kind, obj, scope, |_, _| Ok(())).await
    }

    /// [`Store::update`], refused when `check(stored, new)` says so (under
    /// the writer lock).
    pub async fn update_checked(
        &self,
        kind: &'static KindInfo,
        obj: Object,
        scope: UpdateScope,
        check: impl FnOnce(&Object, &Object) -> Result<(), Status> + Send + 'static,
    ) -> Result<Object, StoreError> {
        let precondition = if obj.metadata.resource_version.is_empty() {
            None
        } else {
            Some(obj.resource_version().ok_or_else(|| {
                StoreError::Rejected(Status::bad_request(format!(
                    "metadata.resourceVersion: Invalid value: {:?}: must be an integer",
                    obj.metadata.resource_version
                )))
            })?)
        };
        let ns = obj.metadata.namespace.clone();
        let name = obj.metadata.name.clone();
        self.mutate(kind, &ns, &name, precondition, scope, move |cur| {
            check(cur, &obj)?;
            *cur = obj;
            Ok(())
        })
        .await
    }

    /// Read-modify-write under the writer lock: `f` sees the stored object and
    /// edits it; no other write can interleave, so no retry is ever needed.
    pub async fn mutate<F>(
        &self,
        kind: &'static KindInfo,
        ns: &str,
        name: &str,
        precondition: Option<i64>,
        scope: UpdateScope,
        f: F,
    ) -> Result<Object, StoreError>
    where
        F: FnOnce(&mut Object) -> Result<(), Status> + Send,
    {
        let (updated, _) = self
            .mutate_spawning(kind, ns, name, precondition, scope, |o| {
                f(o).map(|()| Vec::new())
            })
            .await?;
        Ok(updated)
    }

    /// Like [`Store::mutate`], and `f` may also return new objects, created
    /// in the same transaction: a controller's "update this and record that"
    /// happens entirely or not at all.
    pub async fn mutate_spawning<F>(
        &self,
        kind: &'static KindInfo,
        ns: &str,
        name: &str,
        precondition: Option<i64>,
        scope: UpdateScope,
        f: F,
    ) -> Result<(Object, Vec<Object>), StoreError>
    where
        F: FnOnce(&mut Object) -> Result<Vec<(&'static KindInfo, Object)>, Status> + Send,
    {
        let ns = if kind.namespaced { ns } else { "" };
        let mut tx = self.begin_write().await?;
        let rv = next_rvs(&mut tx, 1).await? + 1;
        let row = sqlx::query(
            "SELECT rv, body FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(kind.kind)
        .bind(ns)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                kind,
                name: name.into(),
            });
        };
        let stored_rv: i64 = row.try_get(0)?;
        if precondition.is_some_and(|p| p != stored_rv) {
            return Err(StoreError::Conflict {
                kind,
                name: name.into(),
            });
        }
        let old: Object = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
        let mut new = old.clone();
        let children = f(&mut new).map_err(StoreError::Rejected)?;
        let new = merge_update(kind, &old, new, scope, rv);
        let unchanged = merge_update(kind, &old, new.clone(), scope, stored_rv) == old;
        if unchanged && children.is_empty() {
            // Nothing changed: no new resourceVersion, no event.
            tx.rollback().await?;
            return Ok((old, Vec::new()));
        }
        let mut last = rv;
        let mut written: Vec<(&'static str, String, String, i64, String)> = Vec::new();
        let result = if unchanged {
            old
        } else {
            let body = write_modified(
                &mut tx,
                &self.inner.indexes,
                kind,
                ns,
                name,
                rv,
                Some(&old),
                &new,
            )
            .await?;
            written.push((kind.kind, ns.to_string(), name.to_string(), rv, body));
            new
        };
        let mut created = Vec::with_capacity(children.len());
        if !children.is_empty() {
            let now = now_rfc3339();
            let wanted: std::collections::BTreeSet<&str> = children
                .iter()
                .filter(|(k, _)| k.namespaced)
                .map(|(_, o)| o.metadata.namespace.as_str())
                .collect();
            let projects = batch::existing_projects(&mut tx, &wanted).await?;
            let mut child_rv = next_rvs(&mut tx, children.len() as i64).await?;
            for (child_kind, mut obj) in children {
                child_rv += 1;
                let body = insert_new(
                    &mut tx,
                    &self.inner.indexes,
                    child_kind,
                    &mut obj,
                    child_rv,
                    &now,
                    &projects,
                )
                .await?;
                written.push((
                    child_kind.kind,
                    obj.metadata.namespace.clone(),
                    obj.metadata.name.clone(),
                    child_rv,
                    body,
                ));
                created.push(obj);
            }
            last = child_rv;
        }
        let kinds: Vec<&str> = written.iter().map(|w| w.0).collect();
        self.commit(tx, &kinds).await?;
        for (k, ns, name, rv, body) in written {
            self.cache_put(k, &ns, &name, rv, Cached::Present(Arc::from(body)));
        }
        self.publish(last);
        Ok((result, created))
    }

    /// Where a durable consumer of the event log stands (0 if new).
    pub async fn consumer_position(&self, consumer: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = $1")
                .bind(format!("consumer:{consumer}"))
                .fetch_optional(self.read_pool())
                .await?
                .unwrap_or(0),
        )
    }

    pub async fn set_consumer_position(&self, consumer: &str, rv: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(format!("consumer:{consumer}"))
        .bind(rv)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// Deletes an object; `precondition` is an optional resourceVersion.
    pub async fn delete(
        &self,
        kind: &'static KindInfo,
        ns: &str,
        name: &str,
        precondition: Option<i64>,
    ) -> Result<Object, StoreError> {
        let ns = if kind.namespaced { ns } else { "" };
        let mut tx = self.begin_write().await?;
        let rv = next_rvs(&mut tx, 1).await? + 1;
        let Some(mut obj) = delete_row(&mut tx, kind, ns, name, precondition).await? else {
            return Err(StoreError::NotFound {
                kind,
                name: name.into(),
            });
        };
        obj.metadata.resource_version = rv.to_string();
        let body = serde_json::to_string(&obj)?;
        insert_event(&mut tx, rv, kind.kind, ns, name, EventType::Deleted, &body).await?;
        self.inner
            .indexes
            .reindex(&mut tx, kind.kind, ns, name, None)
            .await?;
        self.commit(tx, &[kind.kind]).await?;
        self.cache_put(kind.kind, ns, name, rv, Cached::Deleted);
        self.publish(rv);
        Ok(obj)
    }

    /// Deletes a project and everything in its namespace, in one transaction;
    /// every deleted object gets its own DELETED event.
    pub async fn delete_namespace(
        &self,
        project_kind: &'static KindInfo,
        ns: &str,
    ) -> Result<Object, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT kind, name, body FROM objects WHERE namespace = $1 ORDER BY kind, name",
        )
        .bind(ns)
        .fetch_all(&mut *tx)
        .await?;
        let mut rv = next_rvs(&mut tx, rows.len() as i64 + 1).await?;
        let mut kinds: Vec<&str> = vec![project_kind.kind];
        for row in &rows {
            let kind: String = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            let mut obj: Object = serde_json::from_str(&row.try_get::<String, _>(2)?)?;
            rv += 1;
            obj.metadata.resource_version = rv.to_string();
            let body = serde_json::to_string(&obj)?;
            insert_event(&mut tx, rv, &kind, ns, &name, EventType::Deleted, &body).await?;
            if let Some(k) = crate::kinds::by_kind(&kind) {
                kinds.push(k.kind);
            }
        }
        sqlx::query("DELETE FROM objects WHERE namespace = $1")
            .bind(ns)
            .execute(&mut *tx)
            .await?;
        self.inner.indexes.drop_namespace(&mut tx, ns).await?;
        let Some(mut project) = delete_row(&mut tx, project_kind, "", ns, None).await? else {
            return Err(StoreError::NotFound {
                kind: project_kind,
                name: ns.into(),
            });
        };
        rv += 1;
        project.metadata.resource_version = rv.to_string();
        let body = serde_json::to_string(&project)?;
        insert_event(
            &mut tx,
            rv,
            project_kind.kind,
            "",
            ns,
            EventType::Deleted,
            &body,
        )
        .await?;
        credentials::delete_namespace_tokens(&mut tx, ns).await?;
        self.commit(tx, &kinds).await?;
        if let Some(cache) = &self.inner.cache {
            cache.drop_namespace(ns);
        }
        self.cache_put(project_kind.kind, "", ns, rv, Cached::Deleted);
        self.publish(rv);
        Ok(project)
    }

    /// Events after `after`, oldest first, optionally for one kind and
    /// namespace. Fails with `Gone` when `after` predates the compacted log.
    pub async fn events_since(
        &self,
        after: i64,
        kind: Option<&str>,
        ns: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let compacted = self.compacted_rv().await?;
        if after < compacted {
            return Err(StoreError::Gone {
                requested: after,
                oldest: compacted,
            });
        }
        let rows = match (kind, ns) {
            (Some(kind), Some(ns)) => {
                sqlx::query("SELECT rv, kind, namespace, name, type, body FROM events WHERE rv > $1 AND kind = $2 AND namespace = $3 ORDER BY rv LIMIT $4")
                    .bind(after)
                    .bind(kind)
                    .bind(ns)
                    .bind(limit)
                    .fetch_all(&self.inner.read)
                    .await?
            }
            (Some(kind), None) => {
                sqlx::query("SELECT rv, kind, namespace, name, type, body FROM events WHERE rv > $1 AND kind = $2 ORDER BY rv LIMIT $3")
                    .bind(after)
                    .bind(kind)
                    .bind(limit)
                    .fetch_all(&self.inner.read)
                    .await?
            }
            _ => {
                sqlx::query("SELECT rv, kind, namespace, name, type, body FROM events WHERE rv > $1 ORDER BY rv LIMIT $2")
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.inner.read)
                    .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }

    /// The newest committed resourceVersion, read from the database.
    pub async fn current_rv(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM rv_counter WHERE id = 1")
                .fetch_one(&self.inner.read)
                .await?,
        )
    }

    pub(super) async fn compacted_rv(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = 'compacted_rv'")
                .fetch_optional(&self.inner.read)
                .await?
                .unwrap_or(0),
        )
    }

    /// Drops events so that at most `keep` remain; watchers behind the cut
    /// get 410 Gone and must re-list.
    pub async fn compact_events(&self, keep: i64) -> Result<i64, StoreError> {
        let current = self.current_rv().await?;
        let cut = current - keep;
        if cut <= self.compacted_rv().await? {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM events WHERE rv <= $1")
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE store_meta SET value = $1 WHERE name = 'compacted_rv'")
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() as i64)
    }

    fn read_pool(&self) -> &AnyPool {
        &self.inner.read
    }

    fn write_pool(&self) -> &AnyPool {
        &self.inner.write
    }
}

fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let t: String = row.try_get(4)?;
    Ok(Event {
        rv: row.try_get(0)?,
        kind: row.try_get(1)?,
        namespace: row.try_get(2)?,
        name: row.try_get(3)?,
        event_type: EventType::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("event type {t:?}")))?,
        body: Arc::from(row.try_get::<String, _>(5)?),
    })
}

/// Reserves `n` resourceVersions and returns the value before them. Taking
/// the counter row is what serializes writers (see the module docs).
async fn next_rvs(tx: &mut Transaction<'static, Any>, n: i64) -> Result<i64, StoreError> {
    let end: i64 =
        sqlx::query_scalar("UPDATE rv_counter SET value = value + $1 WHERE id = 1 RETURNING value")
            .bind(n)
            .fetch_one(&mut **tx)
            .await?;
    Ok(end - n)
}

/// Stores a new object with its ADDED event; returns the stored JSON.
#[allow(clippy::too_many_arguments)]
async fn insert_new(
    tx: &mut Transaction<'static, Any>,
    indexes: &index::Indexes,
    kind: &'static KindInfo,
    obj: &mut Object,
    rv: i64,
    now: &str,
    projects: &std::collections::HashSet<String>,
) -> Result<String, StoreError> {
    batch::prepare(kind, obj, rv, now, projects)?;
    let body = serde_json::to_string(&obj)?;
    let inserted = sqlx::query("INSERT INTO objects (kind, namespace, name, rv, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
        .bind(kind.kind)
        .bind(&obj.metadata.namespace)
        .bind(&obj.metadata.name)
        .bind(rv)
        .bind(&body)
        .execute(&mut **tx)
        .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::AlreadyExists {
            kind,
            name: obj.metadata.name.clone(),
        });
    }
    insert_event(
        tx,
        rv,
        kind.kind,
        &obj.metadata.namespace,
        &obj.metadata.name,
        EventType::Added,
        &body,
    )
    .await?;
    let (ns, name) = (&obj.metadata.namespace, &obj.metadata.name);
    indexes.reindex(tx, kind.kind, ns, name, Some(obj)).await?;
    Ok(body)
}

/// Stores `obj` as the new state of an existing object, with its event.
/// Writes `obj` over the stored object `old` (for the indexes: `None` when
/// the caller did not read it).
#[allow(clippy::too_many_arguments)]
async fn write_modified(
    tx: &mut Transaction<'static, Any>,
    indexes: &index::Indexes,
    kind: &'static KindInfo,
    ns: &str,
    name: &str,
    rv: i64,
    old: Option<&Object>,
    obj: &Object,
) -> Result<String, StoreError> {
    let body = serde_json::to_string(obj)?;
    sqlx::query(
        "UPDATE objects SET rv = $1, body = $2 WHERE kind = $3 AND namespace = $4 AND name = $5",
    )
    .bind(rv)
    .bind(&body)
    .bind(kind.kind)
    .bind(ns)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    insert_event(tx, rv, kind.kind, ns, name, EventType::Modified, &body).await?;
    indexes
        .reindex_update(tx, kind.kind, ns, name, old, obj)
        .await?;
    Ok(body)
}

async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    rv: i64,
    kind: &str,
    ns: &str,
    name: &str,
    event_type: EventType,
    body: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (rv, kind, namespace, name, type, body) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(rv)
        .bind(kind)
        .bind(ns)
        .bind(name)
        .bind(event_type.as_str())
        .bind(body)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn delete_row(
    tx: &mut Transaction<'static, Any>,
    kind: &'static KindInfo,
    ns: &str,
    name: &str,
    precondition: Option<i64>,
) -> Result<Option<Object>, StoreError> {
    let row = sqlx::query(
        "SELECT rv, body FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
    )
    .bind(kind.kind)
    .bind(ns)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored_rv: i64 = row.try_get(0)?;
    if precondition.is_some_and(|p| p != stored_rv) {
        return Err(StoreError::Conflict {
            kind,
            name: name.into(),
        });
    }
    let obj: Object = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
    sqlx::query("DELETE FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3")
        .bind(kind.kind)
        .bind(ns)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(Some(obj))
}

/// Applies the rules of an update: identity and creation metadata never
/// change; `generation` grows when anything but status and metadata changed;
/// the status subresource and the main resource each write only their half.
fn merge_update(
    kind: &KindInfo,
    old: &Object,
    mut new: Object,
    scope: UpdateScope,
    rv: i64,
) -> Object {
    if scope == UpdateScope::Status {
        let status = new.body.remove("status");
        new = old.clone();
        match status {
            Some(s) => new.body.insert("status".into(), s),
            None => new.body.remove("status"),
        };
    } else if kind.has_status && scope == UpdateScope::Main {
        match old.body.get("status") {
            Some(s) => new.body.insert("status".into(), s.clone()),
            None => new.body.remove("status"),
        };
    }
    new.api_version = kind.api_version();
    new.kind = kind.kind.to_string();
    new.metadata.name = old.metadata.name.clone();
    new.metadata.namespace = old.metadata.namespace.clone();
    new.metadata.uid = old.metadata.uid.clone();
    new.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
    new.metadata.generate_name = old.metadata.generate_name.clone();
    new.metadata.resource_version = rv.to_string();
    let image_stream = kind.kind == "ImageStream";
    if image_stream {
        crate::model::imagestream::inherit_tag_generations(old, &mut new);
    }
    let spec_changed = {
        let strip = |o: &Object| {
            let mut b = o.body.clone();
            b.remove("status");
            b
        };
        strip(old) != strip(&new)
    };
    new.metadata.generation = old.metadata.generation + i64::from(spec_changed);
    if image_stream {
        crate::model::imagestream::stamp_tag_generations(&mut new);
    }
    new
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Five characters from Kubernetes' generateName alphabet (no vowels, no
/// look-alikes), so generated names never spell words.
fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // NORMAL is crash-safe in WAL mode (a killed process loses
                // nothing committed); only an OS crash can drop the last
                // commits, which is the trade every WAL deployment makes.
                sqlx::query("PRAGMA synchronous=NORMAL")
                    .execute(&mut *conn)
                    .await?;
                // 1 MiB of page cache per connection (the default is 2):
                // hot objects are served from the object cache anyway.
                sqlx::query("PRAGMA cache_size=-1024")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA busy_timeout=10000")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// Adds `mode=rwc` so that a new data directory gets its database, and makes
/// sure the directory exists.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or(path);
    if let Some(parent) = std::path::Path::new(file).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", parent.display()))
                })?;
        }
    }
    // The database holds Secrets: created 0600 here, so that SQLite's WAL
    // and shared-memory files (made with the database file's mode) are too.
    if !file.is_empty() && !file.starts_with(':') {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(file)
            .map_err(|e| StoreError::Config(format!("cannot create {file}: {e}")))?;
    }
    Ok(if path.contains('?') {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}?mode=rwc")
    })
}

/// Takes `<database>.lock` exclusively, so that a second process cannot
/// open the same SQLite database behind this one's cache.
fn lock_owner(url: &str) -> Result<std::fs::File, StoreError> {
    let path = url.trim_start_matches("sqlite://");
    let path = path.split('?').next().unwrap_or(path);
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| StoreError::Config(format!("cannot open {lock_path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Config(format!(
            "{path} is in use by another podspace process (SQLite is for one process; use PostgreSQL to run several)"
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Config(format!("cannot lock {lock_path}: {e}"))),
    }
}

/// A database URL fit for a log line: the password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// For controllers: parse an event's body.
    pub fn event_object(event: &Event) -> Result<Object, StoreError> {
        Ok(serde_json::from_str(&event.body)?)
    }

    /// For the REST layer: an event as a watch line's `object`.
    pub fn event_value(event: &Event) -> Result<Value, StoreError> {
        Ok(serde_json::from_str(&event.body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
