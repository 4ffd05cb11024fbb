//! Tables other crates own. A crate with bookkeeping of its own (the
//! registry's blobs, manifests and uploads) declares its `Schema` and
//! writes its SQL itself over the store's connections; the store only
//! creates the tables and, for a write that must commit together with
//! objects (a push by tag), runs the owner's rows inside its transaction.

use std::collections::BTreeSet;

use std::future::Future;
use std::pin::Pin;

use sqlx::{AnyPool, Row};

use super::cache::Cached;
use super::{
    batch, insert_new, merge_update, next_rvs, now_rfc3339, write_modified, Backend, Store,
    StoreError, UpdateScope,
};
use crate::Object;

/// A transaction on the store's writer.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The owner's part of a transaction, run inside it.
pub type TxStep<'t> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 't>>;

/// The tables a crate owns. Additive changes only: each statement is
/// idempotent, so every start brings an older database up to date.
/// `{bytes}` in a statement is the backend's binary column type.
pub struct Schema {
    pub tables: &'static [&'static str],
    /// Columns added to tables that older databases already have:
    /// (table, column, declaration).
    pub added_columns: &'static [(&'static str, &'static str, &'static str)],
    /// Statements that need the added columns (indexes over them).
    pub after: &'static [&'static str],
}

impl Schema {
    pub(super) async fn apply(&self, pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
        let bytes = match backend {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
        for stmt in self.tables {
            sqlx::query(&stmt.replace("{bytes}", bytes))
                .execute(pool)
                .await?;
        }
        // `CREATE TABLE IF NOT EXISTS` cannot add columns and SQLite has no
        // `ADD COLUMN IF NOT EXISTS`, so each is added when selecting it fails.
        for (table, column, decl) in self.added_columns {
            let probe = format!("SELECT {column} FROM {table} LIMIT 0");
            if sqlx::query(&probe).execute(pool).await.is_err() {
                let add = format!("ALTER TABLE {table} ADD COLUMN {column} {decl}");
                if let Err(e) = sqlx::query(&add).execute(pool).await {
                    // Another replica starting at the same time may have added it.
                    if sqlx::query(&probe).execute(pool).await.is_err() {
                        return Err(e.into());
                    }
                }
            }
        }
        for stmt in self.after {
            sqlx::query(stmt).execute(pool).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Creates or brings up to date the tables of `schema`.
    pub async fn ensure_schema(&self, schema: &Schema) -> Result<(), StoreError> {
        schema.apply(&self.inner.write, self.inner.backend).await
    }

    /// Connections for reads of an owner's tables.
    pub fn reader(&self) -> &AnyPool {
        &self.inner.read
    }

    /// The writer (with SQLite, the one connection every write shares).
    pub fn writer(&self) -> &AnyPool {
        &self.inner.write
    }

    /// A push by tag, whole or not at all (invariant 1): the owner's `rows`
    /// (the manifest and registry tag), the Image object (if new) and the
    /// image stream's tag event (`record` edits the stream's status; the
    /// stream is created if missing), with their events, in one
    /// transaction. A crash or an error at any point leaves all or none.
    pub async fn record_image_with<F, W>(
        &self,
        mut image: Object,
        stream_ns: &str,
        stream_name: &str,
        record: F,
        rows: W,
    ) -> Result<(), StoreError>
    where
        F: Fn(&mut Object) + Send,
        W: for<'t> FnOnce(&'t mut Tx) -> TxStep<'t> + Send,
    {
        let image_kind = &crate::kinds::IMAGE;
        let stream_kind = &crate::kinds::IMAGE_STREAM;
        let mut tx = self.begin_write().await?;
        let first_rv = next_rvs(&mut tx, 2).await?;
        rows(&mut tx).await?;
        crate::fault::point("push:after-registry-tag");
        let now = now_rfc3339();
        let projects = batch::existing_projects(&mut tx, &BTreeSet::from([stream_ns])).await?;
        let mut written: Vec<(&'static str, String, String, i64, String)> = Vec::new();
        let image_rv = first_rv + 1;
        let indexes = &self.inner.indexes;
        match insert_new(
            &mut tx, indexes, image_kind, &mut image, image_rv, &now, &projects,
        )
        .await
        {
            Ok(body) => written.push((
                image_kind.kind,
                String::new(),
                image.metadata.name.clone(),
                image_rv,
                body,
            )),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        crate::fault::point("push:after-image");
        let stream_rv = first_rv + 2;
        let row = sqlx::query(
            "SELECT rv, body FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(stream_kind.kind)
        .bind(stream_ns)
        .bind(stream_name)
        .fetch_optional(&mut *tx)
        .await?;
        let (new, changed) = match row {
            Some(row) => {
                let stored_rv: i64 = row.try_get(0)?;
                let old: Object = serde_json::from_str(&row.try_get::<String, _>(1)?)?;
                let mut new = old.clone();
                record(&mut new);
                let new = merge_update(stream_kind, &old, new, UpdateScope::Status, stream_rv);
                let unchanged = merge_update(
                    stream_kind,
                    &old,
                    new.clone(),
                    UpdateScope::Status,
                    stored_rv,
                ) == old;
                (Some(new), !unchanged)
            }
            None => (None, true),
        };
        let body = match new {
            Some(new) if changed => Some(
                write_modified(
                    &mut tx,
                    indexes,
                    stream_kind,
                    stream_ns,
                    stream_name,
                    stream_rv,
                    None,
                    &new,
                )
                .await?,
            ),
            Some(_) => None,
            None => {
                let mut fresh = Object::new("ImageStream", stream_ns, stream_name)
                    .with("spec", serde_json::json!({}));
                fresh.metadata.generation = 1;
                record(&mut fresh);
                Some(
                    insert_new(
                        &mut tx,
                        indexes,
                        stream_kind,
                        &mut fresh,
                        stream_rv,
                        &now,
                        &projects,
                    )
                    .await?,
                )
            }
        };
        if let Some(body) = body {
            written.push((
                stream_kind.kind,
                stream_ns.to_string(),
                stream_name.to_string(),
                stream_rv,
                body,
            ));
        }
        crate::fault::point("push:before-commit");
        let last = written.iter().map(|w| w.3).max().unwrap_or(first_rv);
        let kinds: Vec<&str> = written.iter().map(|w| w.0).collect();
        self.commit(tx, &kinds).await?;
        for (k, ns, name, rv, body) in written {
            self.cache_put(
                k,
                &ns,
                &name,
                rv,
                Cached::Present(std::sync::Arc::from(body)),
            );
        }
        self.publish(last);
        Ok(())
    }
}
