//! Group commit for creates. Concurrent `Store::create` calls queue here; one
//! task drains the queue and writes each batch in a single transaction with
//! multi-row statements, so the per-statement cost (a thread hop for
//! SQLite, a network round trip for PostgreSQL) is paid once per batch
//! instead of once per object. Each object still gets its own
//! resourceVersion and event; a failure of one (name taken, no such
//! namespace) does not fail the others.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::{next_rvs, now_rfc3339, random_suffix, Cached, EventType, Store, StoreError};
use crate::kinds::KindInfo;
use crate::meta::Object;
use crate::status::{Reason, Status};

/// Rows per statement: 5 parameters each stays far below both databases'
/// parameter limits.
const MAX_BATCH: usize = 128;

pub(super) struct CreateRequest {
    pub kind: &'static KindInfo,
    pub obj: Object,
    pub reply: oneshot::Sender<Result<Object, StoreError>>,
}

pub(super) fn spawn(store: std::sync::Weak<super::Inner>, mut rx: mpsc::Receiver<CreateRequest>) {
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let Some(inner) = store.upgrade() else { return };
            let store = Store { inner };
            let (replies, reqs): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|r| (r.reply, (r.kind, r.obj)))
                .unzip();
            let results = match write_batch(&store, reqs).await {
                Ok(results) => results,
                Err(e) => {
                    let msg = e.to_string();
                    tracing::error!(error = %msg, "a batch of creates failed");
                    replies
                        .iter()
                        .map(|_| Err(StoreError::Corrupt(msg.clone())))
                        .collect()
                }
            };
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
    });
}

/// An object about to be written with its event, in a multi-row statement.
pub(super) struct Row_ {
    pub index: usize,
    pub kind: &'static KindInfo,
    pub obj: Object,
    pub body: String,
    pub rv: i64,
    pub event: EventType,
}

/// Rows per multi-row statement: far below both backends' bound on bound
/// parameters (SQLite 32,766, PostgreSQL 65,535) at six columns.
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

async fn write_batch(
    store: &Store,
    reqs: Vec<(&'static KindInfo, Object)>,
) -> Result<Vec<Result<Object, StoreError>>, StoreError> {
    let pool: &AnyPool = store.write_pool();
    let mut tx = pool.begin().await?;
    let start = next_rvs(&mut tx, reqs.len() as i64).await?;
    let namespaces: BTreeSet<&str> = reqs
        .iter()
        .filter(|(k, o)| k.namespaced && !o.metadata.namespace.is_empty())
        .map(|(_, o)| o.metadata.namespace.as_str())
        .collect();
    let existing = existing_projects(&mut tx, &namespaces).await?;
    let now = now_rfc3339();
    let mut results: Vec<Option<Result<Object, StoreError>>> =
        (0..reqs.len()).map(|_| None).collect();
    let mut rows: Vec<Row_> = Vec::with_capacity(reqs.len());
    let mut seen: HashSet<(&'static str, String, String)> = HashSet::new();
    for (index, (kind, mut obj)) in reqs.into_iter().enumerate() {
        let rv = start + 1 + index as i64;
        if let Err(e) = prepare(kind, &mut obj, rv, &now, &existing) {
            results[index] = Some(Err(e));
            continue;
        }
        if !seen.insert((
            kind.kind,
            obj.metadata.namespace.clone(),
            obj.metadata.name.clone(),
        )) {
            results[index] = Some(Err(StoreError::AlreadyExists {
                kind,
                name: obj.metadata.name,
            }));
            continue;
        }
        let body = serde_json::to_string(&obj)?;
        rows.push(Row_ {
            index,
            kind,
            obj,
            body,
            rv,
            event: EventType::Added,
        });
    }
    let inserted = insert_objects(&mut tx, &rows).await?;
    let (written, taken): (Vec<Row_>, Vec<Row_>) =
        rows.into_iter().partition(|r| inserted.contains(&r.rv));
    insert_events(&mut tx, &written.iter().collect::<Vec<_>>()).await?;
    for r in &written {
        let (ns, name) = (&r.obj.metadata.namespace, &r.obj.metadata.name);
        store
            .inner
            .indexes
            .reindex(&mut tx, r.kind.kind, ns, name, Some(&r.obj))
            .await?;
    }
    let kinds: Vec<&str> = written.iter().map(|r| r.kind.kind).collect();
    let last = written.iter().map(|r| r.rv).max().unwrap_or(start);
    store.commit(tx, &kinds).await?;
    for r in taken {
        results[r.index] = Some(Err(StoreError::AlreadyExists {
            kind: r.kind,
            name: r.obj.metadata.name,
        }));
    }
    for r in written {
        store.cache_put(
            r.kind.kind,
            &r.obj.metadata.namespace,
            &r.obj.metadata.name,
            r.rv,
            Cached::Present(Arc::from(r.body.as_str())),
        );
        results[r.index] = Some(Ok(r.obj));
    }
    store.publish(last);
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(StoreError::Corrupt("a create was lost in its batch".into())))
        })
        .collect())
}

/// Fills the server-set metadata of a new object.
pub(super) fn prepare(
    kind: &'static KindInfo,
    obj: &mut Object,
    rv: i64,
    now: &str,
    projects: &HashSet<String>,
) -> Result<(), StoreError> {
    if obj.metadata.name.is_empty() && !obj.metadata.generate_name.is_empty() {
        obj.metadata.name = format!("{}{}", obj.metadata.generate_name, random_suffix());
    }
    if obj.metadata.name.is_empty() {
        return Err(StoreError::Rejected(Status::new(
            Reason::Invalid,
            format!(
                "{} is invalid: metadata.name: Required value: name or generateName is required",
                kind.qualified_plural()
            ),
        )));
    }
    if !kind.namespaced {
        obj.metadata.namespace.clear();
    } else if !projects.contains(&obj.metadata.namespace) {
        return Err(StoreError::NamespaceNotFound(
            obj.metadata.namespace.clone(),
        ));
    }
    obj.api_version = kind.api_version();
    obj.kind = kind.kind.to_string();
    obj.metadata.uid = uuid::Uuid::new_v4().to_string();
    obj.metadata.resource_version = rv.to_string();
    obj.metadata.generation = 1;
    obj.metadata.creation_timestamp = now.to_string();
    if kind.kind == "ImageStream" {
        crate::model::imagestream::stamp_tag_generations(obj);
    }
    Ok(())
}

/// `sql` (an `INSERT INTO objects (kind, namespace, name, rv, body)
/// VALUES …` of `rows.len()` rows) with the rows bound.
pub(super) fn bind_objects<'q>(
    sql: &'q str,
    rows: impl Iterator<Item = &'q Row_>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    rows.fold(sqlx::query(sql), |q, r| {
        q.bind(r.kind.kind)
            .bind(&r.obj.metadata.namespace)
            .bind(&r.obj.metadata.name)
            .bind(r.rv)
            .bind(&r.body)
    })
}

pub(super) fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn existing_projects(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    names: &BTreeSet<&str>,
) -> Result<HashSet<String>, StoreError> {
    if names.is_empty() {
        return Ok(HashSet::new());
    }
    let list: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT name FROM objects WHERE kind = 'Project' AND namespace = '' AND name IN ({})",
        list.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for n in names {
        q = q.bind(*n);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}

pub(super) async fn insert_objects(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rows: &[Row_],
) -> Result<HashSet<i64>, StoreError> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO objects (kind, namespace, name, rv, body) VALUES {} ON CONFLICT DO NOTHING RETURNING rv",
        placeholders(rows.len(), 5)
    );
    let returned = bind_objects(&sql, rows.iter()).fetch_all(&mut **tx).await?;
    returned
        .iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(StoreError::from))
        .collect()
}

pub(super) async fn insert_events(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rows: &[&Row_],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO events (rv, kind, namespace, name, type, body) VALUES {}",
        placeholders(rows.len(), 6)
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q
            .bind(r.rv)
            .bind(r.kind.kind)
            .bind(&r.obj.metadata.namespace)
            .bind(&r.obj.metadata.name)
            .bind(r.event.as_str())
            .bind(&r.body);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}
