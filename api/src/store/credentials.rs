//! Password hashes and API tokens. Kept out of the object tables and the
//! event log on purpose: nothing secret is ever replayed to a watcher.

use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub username: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub description: String,
}

impl Store {
    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO credentials (username, password_hash) VALUES ($1, $2)
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(username)
        .bind(hash)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    pub async fn password_hash(&self, username: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM credentials WHERE username = $1")
                .bind(username)
                .fetch_optional(self.read_pool())
                .await?,
        )
    }

    /// Forgets a user's password and every token issued to them.
    pub async fn delete_credentials(&self, username: &str) -> Result<(), StoreError> {
        let mut tx = self.write_pool().begin().await?;
        sqlx::query("DELETE FROM credentials WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tokens WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn any_credentials(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credentials")
            .fetch_one(self.read_pool())
            .await?;
        Ok(n > 0)
    }

    pub async fn insert_token(&self, hash: &str, record: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tokens (hash, username, expires_at, created_at, description) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash)
            .bind(&record.username)
            .bind(record.expires_at)
            .bind(record.created_at)
            .bind(&record.description)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    pub async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT username, expires_at, created_at, description FROM tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.read_pool())
        .await?;
        row.map(|r| {
            Ok(TokenRecord {
                username: r.try_get(0)?,
                expires_at: r.try_get(1)?,
                created_at: r.try_get(2)?,
                description: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Returns whether a token was there to delete.
    pub async fn delete_token(&self, hash: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM tokens WHERE hash = $1")
            .bind(hash)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes the tokens issued with `description` (e.g. a build's push
    /// token once the build ended); returns how many.
    pub async fn delete_tokens_described(&self, description: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM tokens WHERE description = $1")
            .bind(description)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn delete_expired_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
            .bind(now)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected())
    }
}

/// Service account tokens die with their project. A namespace is a DNS-1123
/// label, so it holds no LIKE wildcard.
pub(super) async fn delete_namespace_tokens(
    tx: &mut Transaction<'static, Any>,
    ns: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tokens WHERE username LIKE $1")
        .bind(format!("system:serviceaccount:{ns}:%"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
