//! Indexes kept in the same transaction as the objects they index. A
//! registered [`Indexer`] says under which values an object of its kind is
//! found (a BuildConfig under the image streams its triggers follow); every
//! write of that kind rewrites the object's rows before it commits, so a
//! controller looks up what one change touches instead of listing a kind.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};
use crate::meta::Object;

pub trait Indexer: Send + Sync + 'static {
    /// The index's name (`image-triggers`).
    fn index(&self) -> &'static str;
    /// The kind it indexes.
    fn kind(&self) -> &'static str;
    /// The values an object is found under.
    fn values(&self, obj: &Object) -> Vec<String>;
}

/// The registered indexers (registered once at start, read on every write).
#[derive(Clone, Default)]
pub(super) struct Indexes(Arc<RwLock<Vec<Arc<dyn Indexer>>>>);

impl Indexes {
    fn for_kind(&self, kind: &str) -> Vec<Arc<dyn Indexer>> {
        self.0
            .read()
            .map(|all| all.iter().filter(|i| i.kind() == kind).cloned().collect())
            .unwrap_or_default()
    }

    fn any(&self) -> bool {
        self.0.read().is_ok_and(|all| !all.is_empty())
    }

    /// [`Indexes::reindex`] after an update from `old`: nothing is written
    /// when the object is found under the same values as before.
    pub(super) async fn reindex_update(
        &self,
        tx: &mut Transaction<'static, Any>,
        kind: &str,
        ns: &str,
        name: &str,
        old: Option<&Object>,
        new: &Object,
    ) -> Result<(), StoreError> {
        let indexers = self.for_kind(kind);
        if indexers.is_empty() {
            return Ok(());
        }
        if let Some(old) = old {
            let same = indexers.iter().all(|ix| {
                let before: BTreeSet<String> = ix.values(old).into_iter().collect();
                let after: BTreeSet<String> = ix.values(new).into_iter().collect();
                before == after
            });
            if same {
                return Ok(());
            }
        }
        self.reindex(tx, kind, ns, name, Some(new)).await
    }

    /// Rewrites the rows of `kind/ns/name`: `obj` as it is now, `None`
    /// when deleted.
    pub(super) async fn reindex(
        &self,
        tx: &mut Transaction<'static, Any>,
        kind: &str,
        ns: &str,
        name: &str,
        obj: Option<&Object>,
    ) -> Result<(), StoreError> {
        let indexers = self.for_kind(kind);
        if indexers.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM object_index WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind)
            .bind(ns)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        let Some(obj) = obj else { return Ok(()) };
        for ix in indexers {
            let values: BTreeSet<String> = ix.values(obj).into_iter().collect();
            for value in values {
                sqlx::query(
                    "INSERT INTO object_index (idx, value, kind, namespace, name) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(ix.index())
                .bind(&value)
                .bind(kind)
                .bind(ns)
                .bind(name)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Drops every row of a namespace being deleted.
    pub(super) async fn drop_namespace(
        &self,
        tx: &mut Transaction<'static, Any>,
        ns: &str,
    ) -> Result<(), StoreError> {
        if self.any() {
            sqlx::query("DELETE FROM object_index WHERE namespace = $1")
                .bind(ns)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// Adds an index and (re)builds it from the objects stored now, in one
    /// write transaction; from then on every write keeps it. Called at
    /// start, before the controllers that read it.
    pub async fn register_indexer(&self, indexer: Arc<dyn Indexer>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM object_index WHERE idx = $1 AND kind = $2")
            .bind(indexer.index())
            .bind(indexer.kind())
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query("SELECT body FROM objects WHERE kind = $1")
            .bind(indexer.kind())
            .fetch_all(&mut *tx)
            .await?;
        if let Ok(mut all) = self.inner.indexes.0.write() {
            all.retain(|i| !(i.index() == indexer.index() && i.kind() == indexer.kind()));
            all.push(indexer.clone());
        }
        let only = Indexes(Arc::new(RwLock::new(vec![indexer.clone()])));
        for row in rows {
            let obj: Object = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
            let (ns, name) = (obj.metadata.namespace.clone(), obj.metadata.name.clone());
            only.reindex(&mut tx, indexer.kind(), &ns, &name, Some(&obj))
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The (namespace, name) of the `kind` objects found under `value` in
    /// `index`.
    pub async fn indexed(
        &self,
        index: &str,
        kind: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT namespace, name FROM object_index WHERE idx = $1 AND value = $2 AND kind = $3 ORDER BY namespace, name",
        )
        .bind(index)
        .bind(value)
        .bind(kind)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
