//! Read-modify-write of many objects of one kind in one transaction: a
//! fan-out (one image tag, a hundred DeploymentConfigs watching it) costs
//! one commit instead of a hundred.

use std::sync::Arc;

use sqlx::Row;

use super::cache::Cached;
use super::{
    batch, insert_new, merge_update, next_rvs, now_rfc3339, write_modified, Store, StoreError,
    UpdateScope,
};
use crate::kinds::KindInfo;
use crate::meta::Object;
use crate::status::Status;

/// What one target came to: the object as stored and the objects created
/// with it, or why not (missing, refused by the edit).
pub type Outcome = Result<(Object, Vec<Object>), StoreError>;

impl Store {
    /// [`Store::mutate_spawning`] for each of `targets` (namespace, name),
    /// all under one writer transaction: `f(i, obj)` edits the i-th and
    /// returns what to create with it. A missing object or one `f` refuses
    /// is that target's error and the others go on; a database error fails
    /// them all (nothing is written).
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
        let indexes = &self.inner.indexes;
        let mut tx = self.begin_write().await?;
        let now = now_rfc3339();
        let mut out = Vec::with_capacity(targets.len());
        let mut written: Vec<(&'static str, String, String, i64, String)> = Vec::new();
        let mut last = 0;
        // Projects known to exist, for the objects spawned (one query each).
        let mut projects = std::collections::HashSet::new();
        for (i, (ns, name)) in targets.iter().enumerate() {
            let ns = if kind.namespaced { ns.as_str() } else { "" };
            let row = sqlx::query(
                "SELECT rv, body FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
            )
            .bind(kind.kind)
            .bind(ns)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                out.push(Err(StoreError::NotFound {
                    kind,
                    name: name.clone(),
                }));
                continue;
            };
            let stored_rv: i64 = row.try_get(0)?;
            let old: Object = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
            let mut new = old.clone();
            let children = match f(i, &mut new) {
                Ok(c) => c,
                Err(status) => {
                    out.push(Err(StoreError::Rejected(status)));
                    continue;
                }
            };
            let unchanged = merge_update(kind, &old, new.clone(), scope, stored_rv) == old;
            if unchanged && children.is_empty() {
                out.push(Ok((old, Vec::new())));
                continue;
            }
            // One draw from the counter for the object and what it spawns.
            let draws = i64::from(!unchanged) + children.len() as i64;
            let mut next = next_rvs(&mut tx, draws).await?;
            let result = if unchanged {
                old
            } else {
                next += 1;
                let rv = next;
                let new = merge_update(kind, &old, new, scope, rv);
                let body =
                    write_modified(&mut tx, indexes, kind, ns, name, rv, Some(&old), &new).await?;
                written.push((kind.kind, ns.to_string(), name.clone(), rv, body));
                last = rv;
                new
            };
            let mut created = Vec::with_capacity(children.len());
            if !children.is_empty() {
                let wanted: std::collections::BTreeSet<&str> = children
                    .iter()
                    .filter(|(k, _)| k.namespaced)
                    .map(|(_, o)| o.metadata.namespace.as_str())
                    .filter(|ns| !projects.contains(*ns))
                    .collect();
                if !wanted.is_empty() {
                    projects.extend(batch::existing_projects(&mut tx, &wanted).await?);
                }
                let mut child_rv = next;
                for (child_kind, mut obj) in children {
                    child_rv += 1;
                    let body = insert_new(
                        &mut tx, indexes, child_kind, &mut obj, child_rv, &now, &projects,
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
            out.push(Ok((result, created)));
        }
        if written.is_empty() {
            tx.rollback().await?;
            return Ok(out);
        }
        let kinds: Vec<&str> = written.iter().map(|w| w.0).collect();
        self.commit(tx, last, &kinds).await?;
        for (k, ns, name, rv, body) in written {
            self.cache_put(k, &ns, &name, rv, Cached::Present(Arc::from(body)));
        }
        Ok(out)
    }
}
