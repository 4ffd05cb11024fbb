//! Tables. Additive changes only: each statement is idempotent so that every
//! start brings an older database up to date.

use sqlx::AnyPool;

use super::{Backend, Schema, StoreError};

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
    // Which replica runs each controller, until when (see consumer.rs).
    "CREATE TABLE IF NOT EXISTS controller_leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)",
    // Lookups kept with the objects (see index.rs).
    "CREATE TABLE IF NOT EXISTS object_index (
        idx TEXT NOT NULL, value TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL,
        name TEXT NOT NULL, PRIMARY KEY (idx, value, kind, namespace, name))",
    "CREATE INDEX IF NOT EXISTS object_index_by_object ON object_index (kind, namespace, name)",
    "CREATE INDEX IF NOT EXISTS object_index_by_namespace ON object_index (namespace)",
];

/// Bookkeeping that is not objects. `{bytes}` is the backend's binary
/// column type.
const BOOKKEEPING: &[&str] = &[
    // Values a server keeps for all its replicas (see server_keys.rs).
    "CREATE TABLE IF NOT EXISTS server_keys (name TEXT PRIMARY KEY, value {bytes} NOT NULL)",
    // Webhook deliveries (see webhooks.rs): the replay guard and history.
    "CREATE TABLE IF NOT EXISTS webhook_deliveries (
        namespace TEXT NOT NULL, config TEXT NOT NULL, delivery TEXT NOT NULL,
        provider TEXT NOT NULL, received_at BIGINT NOT NULL, claimed_at BIGINT NOT NULL,
        done BIGINT NOT NULL, code BIGINT NOT NULL, outcome TEXT NOT NULL, build TEXT,
        PRIMARY KEY (namespace, config, delivery))",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_by_time ON webhook_deliveries (namespace, config, received_at)",
];

pub(super) async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    for tables in [TABLES, BOOKKEEPING] {
        let schema = Schema {
            tables,
            added_columns: &[],
            after: &[],
        };
        schema.apply(pool, backend).await?;
    }
    Ok(())
}
