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

/// Registry metadata. `{bytes}` is the binary column type of the backend.
const REGISTRY_TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS registry_blobs (
        digest TEXT PRIMARY KEY, size BIGINT NOT NULL, location TEXT NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS registry_links (
        repo TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repo, digest))",
    "CREATE TABLE IF NOT EXISTS registry_manifests (
        repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, body {bytes} NOT NULL,
        subject TEXT, artifact_type TEXT, created_at BIGINT NOT NULL,
        PRIMARY KEY (repo, digest))",
    "CREATE INDEX IF NOT EXISTS registry_manifests_by_subject ON registry_manifests (repo, subject)",
    "CREATE TABLE IF NOT EXISTS registry_tags (
        repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (repo, tag))",
    "CREATE TABLE IF NOT EXISTS registry_uploads (
        id TEXT PRIMARY KEY, repo TEXT NOT NULL, size BIGINT NOT NULL, hash_state {bytes} NOT NULL,
        driver_state TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    // Each repository's tags, sorted, one per line: a tag list is one row.
    "CREATE TABLE IF NOT EXISTS registry_tag_lists (repo TEXT PRIMARY KEY, tags TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS server_keys (name TEXT PRIMARY KEY, value {bytes} NOT NULL)",
    // Build bookkeeping (see builds.rs): which node runs which build until
    // when, the build logs, and where a binary build's input lies.
    "CREATE TABLE IF NOT EXISTS build_leases (
        uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
        node TEXT NOT NULL, expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS build_logs (
        namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, pos BIGINT NOT NULL,
        data {bytes} NOT NULL, PRIMARY KEY (namespace, name, uid, pos))",
    "CREATE TABLE IF NOT EXISTS build_inputs (
        uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
        location TEXT NOT NULL, size BIGINT NOT NULL, digest TEXT NOT NULL, created_at BIGINT NOT NULL)",
    // Webhook deliveries (see webhooks.rs): the replay guard and history.
    "CREATE TABLE IF NOT EXISTS webhook_deliveries (
        namespace TEXT NOT NULL, config TEXT NOT NULL, delivery TEXT NOT NULL,
        provider TEXT NOT NULL, received_at BIGINT NOT NULL, claimed_at BIGINT NOT NULL,
        done BIGINT NOT NULL, code BIGINT NOT NULL, outcome TEXT NOT NULL, build TEXT,
        PRIMARY KEY (namespace, config, delivery))",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_by_time ON webhook_deliveries (namespace, config, received_at)",
];

/// Columns added to tables that older databases already have:
/// (table, column, declaration). `CREATE TABLE IF NOT EXISTS` cannot add
/// them and SQLite has no `ADD COLUMN IF NOT EXISTS`, so each is added when
/// selecting it fails.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Who opened an upload (per-user caps count rows, so they hold across
    // replicas) and which process writes to it until when (see uploads in
    // the registry crate).
    ("registry_uploads", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("registry_uploads", "writer", "TEXT NOT NULL DEFAULT ''"),
    (
        "registry_uploads",
        "writer_until",
        "BIGINT NOT NULL DEFAULT 0",
    ),
];

const AFTER_COLUMNS: &[&str] =
    &["CREATE INDEX IF NOT EXISTS registry_uploads_by_owner ON registry_uploads (owner)"];

pub(super) async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    for stmt in TABLES {
        sqlx::query(stmt).execute(pool).await?;
    }
    let bytes = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    for stmt in REGISTRY_TABLES {
        sqlx::query(&stmt.replace("{bytes}", bytes))
            .execute(pool)
            .await?;
    }
    for (table, column, decl) in ADDED_COLUMNS {
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
    for stmt in AFTER_COLUMNS {
        sqlx::query(stmt).execute(pool).await?;
    }
    Ok(())
}
