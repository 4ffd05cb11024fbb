//! Tables. Additive changes only: each statement is idempotent so that every
//! start brings an older database up to date.

use sqlx::AnyPool;

use super::{Backend, StoreError};

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS rv_counter (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO rv_counter (id, value) VALUES (1, 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO store_meta (name, value) VALUES ('compacted_rv', 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS objects (
        kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        rv BIGINT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (kind, namespace, name))",
    "CREATE INDEX IF NOT EXISTS objects_by_namespace ON objects (namespace)",
    "CREATE TABLE IF NOT EXISTS events (
        rv BIGINT PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL,
        name TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, rv)",
    "CREATE TABLE IF NOT EXISTS credentials (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (
        hash TEXT PRIMARY KEY, username TEXT NOT NULL, expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL, description TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (username)",
];

pub(super) async fn migrate(pool: &AnyPool, _backend: Backend) -> Result<(), StoreError> {
    for stmt in TABLES {
        sqlx::query(stmt).execute(pool).await?;
    }
    Ok(())
}
