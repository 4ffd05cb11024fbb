//! Read-modify-write of many objects of one kind in one transaction: a
//! fan-out (one image tag, a hundred DeploymentConfigs watching it) costs
//! one commit and a handful of statements instead of a hundred of each:
//! the targets are read in one query, edited in memory, and written back
//! with their events and what they spawn in multi-row statements.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sqlx::Row;

use super::batch::{self, Row_, ROWS_PER_STATEMENT};
use super::cache::Cached;
use super::{merge_update, next_rvs, now_rfc3339, EventType, Store, StoreError, UpdateScope};
use crate::kinds::KindInfo;
use crate::meta::Object;
use crate::status::Status;

/// What one target came to: the object as stored and the objects created
/// with it, or why not (missing, refused by the edit).
pub type Outcome = Result<(Object, Vec<Object>), StoreError>;

/// A target the edit changed or that spawns objects.
struct Planned {
    index: usize,
    old: Object,
    /// The edited object; `None` when the edit left it as it was.
    new: Option<Object>,
    children: Vec<(&'static KindInfo, Object)>,
}

impl Store {
    /// The stored bodies of `targets` (namespace, name) of one kind, each
    /// `None` when missing: one query per thousand, not one each.
    pub async fn find_many_raw(
        &self,
        kind: &'static KindInfo,
        targets: &[(String, String)],
    ) -> Result<Vec<Option<Arc<str>>>, StoreError> {
        let key = |ns: &str| {
            if kind.namespaced {
                ns.to_string()
            } else {
                String::new()
            }
        };
        // The object cache (SQLite) answers what it holds; the rest is read.
        let mut out: Vec<Option<Option<Arc<str>>>> = targets
            .iter()
            .map(|(ns, name)| match &self.inner.cache {
                Some(cache) => match cache.get(kind.kind, &key(ns), name) {
                    Some(Cached::Present(body)) => Some(Some(body)),
                    Some(Cached::Deleted) => Some(None),
                    None => None,
                },
                None => None,
            })
            .collect();
        let missed: Vec<(String, String)> = targets
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|((ns, name), _)| (key(ns), name.clone()))
            .collect();
        if !missed.is_empty() {
            let mut conn = self.read_pool().acquire().await?;
            let found = read_all(&mut conn, kind, &missed).await?;
            for (slot, (ns, name)) in out.iter_mut().zip(targets) {
                if slot.is_none() {
                    *slot = Some(
                        found
                            .get(&(key(ns), name.clone()))
                            .map(|(_, body)| Arc::from(body.as_str())),
                    );
                }
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// [`Store::mutate_spawning`] for each of `targets` (namespace, name),
    /// all under one writer transaction: `f(i, obj)` edits the i-th and
    /// returns what to create with it. A missing object or one `f` refuses
    /// is that target's error and the others go on; a database error, or a
    /// spawned object that exists already, fails them all (nothing is
    /// written).
    pub async fn mutate_many_spawning<F>(
        &self,
        kind: &'static KindInfo,
        targets: &[(String, String)],
        scope: UpdateScope,
        mut f: F,
    ) -> Result<Vec<Outcome>, StoreError>
    where
        F: FnMut(usize, &mut Object) -> Result<Vec<(&'static KindInfo, Object)>, Status> + Send,
    {
        let started = std::time::Instant::now();
        let mut tx = self.begin_write().await?;
        // Taking the counter row first keeps every other writer out until
        // this commits, so what is read here is what is overwritten.
        next_rvs(&mut tx, 0).await?;
        let stored = read_all(&mut tx, kind, targets).await?;
        let read = started.elapsed();
        let mut out: Vec<Option<Outcome>> = (0..targets.len()).map(|_| None).collect();
        let mut planned = Vec::new();
        for (index, (ns, name)) in targets.iter().enumerate() {
            let ns = if kind.namespaced { ns.as_str() } else { "" };
            let Some((stored_rv, body)) = stored.get(&(ns.to_string(), name.clone())) else {
                out[index] = Some(Err(StoreError::NotFound {
                    kind,
                    name: name.clone(),
                }));
                continue;
            };
            let old: Object = serde_json::from_str(body)?;
            let mut new = old.clone();
            let children = match f(index, &mut new) {
                Ok(c) => c,
                Err(status) => {
                    out[index] = Some(Err(StoreError::Rejected(status)));
                    continue;
                }
            };
            // Merged at the stored rv, an edit that changed nothing equals
            // what is stored; the rv is set once it is drawn.
            let merged = merge_update(kind, &old, new, scope, *stored_rv);
            let unchanged = merged == old;
            if unchanged && children.is_empty() {
                out[index] = Some(Ok((old, Vec::new())));
                continue;
            }
            planned.push(Planned {
                index,
                old,
                new: (!unchanged).then_some(merged),
                children,
            });
        }
        if planned.is_empty() {
            tx.rollback().await?;
            return Ok(finish(out));
        }
        let draws: usize = planned
            .iter()
            .map(|p| usize::from(p.new.is_some()) + p.children.len())
            .sum();
        let mut rv = next_rvs(&mut tx, draws as i64).await?;
        let wanted: BTreeSet<&str> = planned
            .iter()
            .flat_map(|p| &p.children)
            .filter(|(k, _)| k.namespaced)
            .map(|(_, o)| o.metadata.namespace.as_str())
            .collect();
        let projects = batch::existing_projects(&mut tx, &wanted).await?;
        let now = now_rfc3339();
        // In target order, each target's rv before its children's.
        let mut modified: Vec<(Row_, Object)> = Vec::new();
        let mut added: Vec<Row_> = Vec::new();
        for p in planned {
            if let Some(mut new) = p.new {
                rv += 1;
                new.metadata.resource_version = rv.to_string();
                let row = Row_ {
                    index: p.index,
                    kind,
                    body: serde_json::to_string(&new)?,
                    obj: new,
                    rv,
                    event: EventType::Modified,
                };
                modified.push((row, p.old.clone()));
            }
            for (child_kind, mut obj) in p.children {
                rv += 1;
                batch::prepare(child_kind, &mut obj, rv, &now, &projects)?;
                added.push(Row_ {
                    index: p.index,
                    kind: child_kind,
                    body: serde_json::to_string(&obj)?,
                    obj,
                    rv,
                    event: EventType::Added,
                });
            }
            // The target's own outcome is filled in below, once written;
            // unchanged targets that only spawn keep their stored object.
            out[p.index] = Some(Ok((p.old, Vec::new())));
        }
        let edited = started.elapsed();
        let updates: Vec<&Row_> = modified.iter().map(|(r, _)| r).collect();
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            overwrite_objects(&mut tx, chunk).await?;
        }
        for chunk in added.chunks(ROWS_PER_STATEMENT) {
            let inserted = batch::insert_objects(&mut tx, chunk).await?;
            if let Some(taken) = chunk.iter().find(|r| !inserted.contains(&r.rv)) {
                return Err(StoreError::AlreadyExists {
                    kind: taken.kind,
                    name: taken.obj.metadata.name.clone(),
                });
            }
        }
        let mut events: Vec<&Row_> = updates.iter().copied().chain(added.iter()).collect();
        events.sort_by_key(|r| r.rv);
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            batch::insert_events(&mut tx, chunk).await?;
        }
        let indexes = &self.inner.indexes;
        for (r, old) in &modified {
            let (ns, name) = (&r.obj.metadata.namespace, &r.obj.metadata.name);
            indexes
                .reindex_update(&mut tx, kind.kind, ns, name, Some(old), &r.obj)
                .await?;
        }
        for r in &added {
            let (ns, name) = (&r.obj.metadata.namespace, &r.obj.metadata.name);
            indexes
                .reindex(&mut tx, r.kind.kind, ns, name, Some(&r.obj))
                .await?;
        }
        let kinds: Vec<&str> = events.iter().map(|r| r.kind.kind).collect();
        let wrote = started.elapsed();
        self.commit(tx, &kinds).await?;
        tracing::debug!(
            targets = targets.len(),
            written = events.len(),
            read_ms = read.as_secs_f64() * 1e3,
            edited_ms = edited.as_secs_f64() * 1e3,
            wrote_ms = wrote.as_secs_f64() * 1e3,
            committed_ms = started.elapsed().as_secs_f64() * 1e3,
            "many objects written"
        );
        for r in events {
            let (ns, name) = (&r.obj.metadata.namespace, &r.obj.metadata.name);
            let body = Cached::Present(Arc::from(r.body.as_str()));
            self.cache_put(r.kind.kind, ns, name, r.rv, body);
        }
        self.publish(rv);
        for (r, _) in modified {
            if let Some(Ok((obj, _))) = out[r.index].as_mut() {
                *obj = r.obj;
            }
        }
        for r in added {
            if let Some(Ok((_, created))) = out[r.index].as_mut() {
                created.push(r.obj);
            }
        }
        Ok(finish(out))
    }
}

fn finish(out: Vec<Option<Outcome>>) -> Vec<Outcome> {
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err(StoreError::Corrupt("a target was lost".into()))))
        .collect()
}

/// The stored rv and body of each target that exists, by (namespace, name).
async fn read_all(
    conn: &mut sqlx::AnyConnection,
    kind: &'static KindInfo,
    targets: &[(String, String)],
) -> Result<HashMap<(String, String), (i64, String)>, StoreError> {
    let keys: Vec<(&str, &str)> = targets
        .iter()
        .map(|(ns, name)| {
            (
                if kind.namespaced { ns.as_str() } else { "" },
                name.as_str(),
            )
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let pairs: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "SELECT namespace, name, rv, body FROM objects WHERE kind = $1 AND (namespace, name) IN (VALUES {})",
            pairs.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(kind.kind);
        for (ns, name) in chunk {
            q = q.bind(*ns).bind(*name);
        }
        for row in q.fetch_all(&mut *conn).await? {
            found.insert(
                (row.try_get(0)?, row.try_get(1)?),
                (row.try_get(2)?, row.try_get(3)?),
            );
        }
    }
    Ok(found)
}

/// Writes new states of existing objects (read in this transaction under
/// the counter row, so each one is there).
async fn overwrite_objects(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rows: &[&Row_],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO objects (kind, namespace, name, rv, body) VALUES {}
         ON CONFLICT (kind, namespace, name) DO UPDATE SET rv = excluded.rv, body = excluded.body",
        batch::placeholders(rows.len(), 5)
    );
    batch::bind_objects(&sql, rows.iter().copied())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
