//! Values a server keeps for all its replicas (a key's fingerprint, say):
//! the first replica's value wins.

use super::{Store, StoreError};

impl Store {
    /// The value stored under `name`, storing `candidate` if there is none
    /// (the first replica's value wins).
    pub async fn server_value(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.inner.write)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_one(&self.inner.write)
                .await?,
        )
    }

    /// The value under `name`, if any (e.g. a key kept in the store by an
    /// older version, to be moved out).
    pub async fn stored_server_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.inner.write)
                .await?,
        )
    }

    pub async fn delete_server_value(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM server_keys WHERE name = $1")
            .bind(name)
            .execute(&self.inner.write)
            .await?;
        Ok(())
    }
}
