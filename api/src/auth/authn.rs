//! Passwords (argon2) and bearer tokens (random, stored as SHA-256).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::throttle::LoginThrottle;
use super::Principal;
use crate::store::{Store, StoreError, TokenRecord};

/// Tokens start with this so that they are recognisable in a leaked config
/// file or a secret scanner.
pub const TOKEN_PREFIX: &str = "psc_";

/// How long a resolved token is trusted without asking the store again.
/// Revocation through this process is immediate; through another replica it
/// takes at most this long.
const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid username or password")]
    BadCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("too many failed logins: try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: i64,
}

struct Cached {
    username: String,
    expires_at: i64,
    cached_at: Instant,
}

#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<RwLock<HashMap<String, Cached>>>,
    throttle: Arc<LoginThrottle>,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            cache: Arc::default(),
            throttle: Arc::default(),
        }
    }

    /// Stores an argon2 hash of `password`. Hashing runs off the async
    /// runtime: it is deliberately slow.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AuthError::Hash(e.to_string()))
        })
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))??;
        self.store.set_password_hash(username, &hash).await?;
        Ok(())
    }

    pub async fn verify_password(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        let stored = self.store.password_hash(username).await?;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            // A missing user still costs one hash, so timing tells nothing
            // about which user names exist.
            let dummy = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3M6mY5oV1S1K1S3dC3n4vJQnS5r0dFZQ0Z4m3rWwz6Q";
            let hash = stored.as_deref().unwrap_or(dummy);
            let ok = PasswordHash::new(hash)
                .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false);
            Ok(ok && stored.is_some())
        })
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))?
    }

    /// A password login from `client`, throttled after failures (see
    /// `throttle.rs`): `Throttled` is answered before any hashing.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<bool, AuthError> {
        if let Some(wait) = self.throttle.wait(username, client) {
            return Err(AuthError::Throttled(wait));
        }
        let ok = self.verify_password(username, password).await?;
        if ok {
            self.throttle.succeeded(username, client);
        } else {
            self.throttle.failed(username, client);
        }
        Ok(ok)
    }

    /// Exchanges a user name and password for a new token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
        ttl: Duration,
    ) -> Result<IssuedToken, AuthError> {
        if !self.check_password(username, password, client).await? {
            return Err(AuthError::BadCredentials);
        }
        self.issue_token(username, ttl, "login").await
    }

    pub async fn issue_token(
        &self,
        username: &str,
        ttl: Duration,
        description: &str,
    ) -> Result<IssuedToken, AuthError> {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let now = unix_now();
        let expires_at = now + ttl.as_secs() as i64;
        self.store
            .insert_token(
                &hash_token(&token),
                &TokenRecord {
                    username: username.into(),
                    expires_at,
                    created_at: now,
                    description: description.into(),
                },
            )
            .await?;
        Ok(IssuedToken { token, expires_at })
    }

    /// Resolves a bearer token; `None` for unknown, expired or revoked ones.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        let hash = hash_token(token);
        let now = unix_now();
        if let Ok(cache) = self.cache.read() {
            if let Some(c) = cache.get(&hash) {
                if c.cached_at.elapsed() < CACHE_TTL && c.expires_at > now {
                    return Ok(Some(Principal::user(&c.username)));
                }
            }
        }
        let Some(record) = self.store.token(&hash).await? else {
            return Ok(None);
        };
        if record.expires_at <= now {
            return Ok(None);
        }
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                hash,
                Cached {
                    username: record.username.clone(),
                    expires_at: record.expires_at,
                    cached_at: Instant::now(),
                },
            );
        }
        Ok(Some(Principal::user(&record.username)))
    }

    /// Revokes a token; returns whether it existed.
    pub async fn revoke(&self, token: &str) -> Result<bool, AuthError> {
        let hash = hash_token(token);
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(&hash);
        }
        Ok(self.store.delete_token(&hash).await?)
    }

    /// Forgets a user's (or service account's) password and tokens.
    pub async fn forget(&self, username: &str) -> Result<(), AuthError> {
        self.store.delete_credentials(username).await?;
        self.forget_cached(|u| u == username);
        Ok(())
    }

    /// Drops cached tokens of every service account of a deleted project.
    pub fn forget_namespace(&self, ns: &str) {
        let prefix = format!("{}{ns}:", super::SERVICE_ACCOUNT_PREFIX);
        self.forget_cached(|u| u.starts_with(&prefix));
    }

    fn forget_cached(&self, matches: impl Fn(&str) -> bool) {
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|_, c| !matches(&c.username));
        }
    }
}
