//! Upload sessions. Each session lives in memory while this process serves
//! it, and its durable part (bytes stored, digest state, driver state) is
//! saved in the store after every chunk, so another start of the process
//! (or another replica) can continue it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use podspace_api::store::{BlobRecord, Store, UploadRecord};

use crate::digest::{Algorithm, Digest, ResumableSha256};
use crate::error::{Code, RegistryError, Result};
use crate::storage::{BlobStorage, DriverUpload};

pub struct Session {
    pub repo: String,
    hasher: ResumableSha256,
    upload: Option<DriverUpload>,
    created_at: i64,
    /// Whether the store has a record of this session. A session is saved
    /// only once a PATCH leaves bytes in it: a blob sent whole (POST, then
    /// PUT with the body) never needs one, and a session that was never
    /// saved answers BLOB_UPLOAD_UNKNOWN after a restart, as the spec allows.
    persisted: bool,
    touched: std::time::Instant,
}

impl Session {
    pub fn size(&self) -> u64 {
        self.upload.as_ref().map_or(0, |u| u.written)
    }
}

type Shared = Arc<tokio::sync::Mutex<Session>>;

pub struct Uploads {
    store: Store,
    storage: Arc<dyn BlobStorage>,
    live: Mutex<HashMap<String, Shared>>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn unknown() -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
}

impl Uploads {
    pub fn new(store: Store, storage: Arc<dyn BlobStorage>) -> Self {
        Uploads {
            store,
            storage,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    /// Starts a session for `repo`; returns its id.
    pub async fn start(&self, repo: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let upload = self.storage.start_upload(&id).await?;
        let session = Session {
            repo: repo.to_string(),
            hasher: ResumableSha256::new(),
            upload: Some(upload),
            created_at: now(),
            persisted: false,
            touched: std::time::Instant::now(),
        };
        self.live
            .lock()
            .map_err(RegistryError::internal)?
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
        Ok(id)
    }

    async fn save(&self, id: &str, s: &mut Session) -> Result<()> {
        let Some(up) = &s.upload else { return Ok(()) };
        // Only a state where every accepted byte is durable is worth saving:
        // the digest state must describe exactly the stored bytes.
        if up.durable != up.written {
            return Ok(());
        }
        self.store
            .save_upload(&UploadRecord {
                id: id.to_string(),
                repo: s.repo.clone(),
                size: up.durable as i64,
                hash_state: s.hasher.save(),
                driver_state: self.storage.saved_state(up),
                created_at: s.created_at,
                updated_at: now(),
            })
            .await?;
        s.persisted = true;
        Ok(())
    }

    /// The session `id` of `repo`, from memory or resumed from the store.
    pub async fn get(&self, repo: &str, id: &str) -> Result<Shared> {
        if let Some(s) = self
            .live
            .lock()
            .map_err(RegistryError::internal)?
            .get(id)
            .cloned()
        {
            return Ok(s);
        }
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(unknown());
        }
        let record = self.store.upload(id).await?.ok_or_else(unknown)?;
        if record.repo != repo {
            return Err(unknown());
        }
        let hasher = ResumableSha256::restore(&record.hash_state).ok_or_else(unknown)?;
        if hasher.bytes_hashed() != record.size as u64 {
            return Err(unknown());
        }
        let upload = self
            .storage
            .resume_upload(id, &record.driver_state, record.size as u64)
            .await?;
        let session = Arc::new(tokio::sync::Mutex::new(Session {
            repo: record.repo,
            hasher,
            upload: Some(upload),
            created_at: record.created_at,
            persisted: true,
            touched: std::time::Instant::now(),
        }));
        let mut live = self.live.lock().map_err(RegistryError::internal)?;
        Ok(live.entry(id.to_string()).or_insert(session).clone())
    }

    /// Appends a request body. `start`, when the client sent a
    /// Content-Range, must be where the session stands (else 416). `keep`
    /// saves the session for a later request (a PATCH); a body that is
    /// finished right away (PUT) needs no saving.
    pub async fn append<S>(
        &self,
        repo: &str,
        id: &str,
        start: Option<u64>,
        body: S,
        keep: bool,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, axum::Error>> + Unpin,
    {
        let shared = self.get(repo, id).await?;
        let mut s = shared.lock().await;
        if s.repo != repo {
            return Err(unknown());
        }
        if let Some(start) = start {
            if start != s.size() {
                return Err(RegistryError::new(
                    Code::RangeInvalid,
                    format!(
                        "the chunk starts at {start} but the upload holds {} bytes",
                        s.size()
                    ),
                ));
            }
        }
        let result = self.pump(&mut s, body).await;
        s.touched = std::time::Instant::now();
        if keep {
            if let Some(up) = s.upload.as_mut() {
                self.storage.flush(up).await?;
            }
            self.save(id, &mut s).await?;
        }
        result?;
        Ok(s.size())
    }

    async fn pump<S>(&self, s: &mut Session, mut body: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, axum::Error>> + Unpin,
    {
        let Session { hasher, upload, .. } = s;
        let up = upload.as_mut().ok_or_else(unknown)?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                RegistryError::new(
                    Code::BlobUploadInvalid,
                    format!("reading the request body failed: {e}"),
                )
            })?;
            hasher.update(&chunk);
            self.storage.write(up, chunk).await?;
        }
        Ok(())
    }

    /// Current size of a session.
    pub async fn size(&self, repo: &str, id: &str) -> Result<u64> {
        let shared = self.get(repo, id).await?;
        let s = shared.lock().await;
        if s.repo != repo {
            return Err(unknown());
        }
        Ok(s.size())
    }

    /// Verifies `digest` over everything uploaded and makes the blob
    /// visible in `repo`. On a mismatch the upload is discarded.
    pub async fn finish(&self, repo: &str, id: &str, digest: &Digest) -> Result<BlobRecord> {
        let shared = self.get(repo, id).await?;
        let mut s = shared.lock().await;
        if s.repo != repo {
            return Err(unknown());
        }
        let mut upload = s.upload.take().ok_or_else(unknown)?;
        let actual = match digest.algorithm {
            Algorithm::Sha256 => s.hasher.finish(),
            Algorithm::Sha512 => {
                let mut stream = self.storage.read_upload(&mut upload).await?;
                let mut h = <sha2::Sha512 as sha2::Digest>::new();
                while let Some(chunk) = stream.next().await {
                    sha2::Digest::update(&mut h, &chunk.map_err(RegistryError::internal)?);
                }
                Digest {
                    algorithm: Algorithm::Sha512,
                    hex: hex::encode(sha2::Digest::finalize(h)),
                }
            }
        };
        let size = upload.written;
        self.forget(id, s.persisted).await;
        if &actual != digest {
            self.storage.abort(upload).await?;
            return Err(RegistryError::new(
                Code::DigestInvalid,
                format!("the uploaded content has digest {actual}, not {digest}"),
            ));
        }
        let location = self.storage.finish(upload, digest).await?;
        let record = BlobRecord {
            digest: digest.to_string(),
            size: size as i64,
            location: location.clone(),
        };
        let stored = self.store.add_blob(repo, &record).await?;
        if stored.location != location {
            // The blob was already stored elsewhere (another upload won);
            // ours is redundant.
            if let Err(e) = self.storage.delete(&location).await {
                tracing::warn!(error = %e, "removing a duplicate blob failed");
            }
        }
        Ok(stored)
    }

    pub async fn cancel(&self, repo: &str, id: &str) -> Result<()> {
        let shared = self.get(repo, id).await?;
        let mut s = shared.lock().await;
        if s.repo != repo {
            return Err(unknown());
        }
        let upload = s.upload.take();
        self.forget(id, s.persisted).await;
        if let Some(u) = upload {
            self.storage.abort(u).await?;
        }
        Ok(())
    }

    async fn forget(&self, id: &str, persisted: bool) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
        if persisted {
            if let Err(e) = self.store.delete_upload(id).await {
                tracing::warn!(error = %e, "forgetting an upload failed");
            }
        }
    }

    /// Aborts sessions untouched for `ttl_secs`: saved ones, and ones only
    /// this process knows.
    pub async fn expire(&self, ttl_secs: i64) -> Result<usize> {
        let ttl = std::time::Duration::from_secs(ttl_secs.max(0) as u64);
        let live: Vec<(String, Shared)> = self
            .live
            .lock()
            .map_err(RegistryError::internal)?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut idle = 0;
        for (id, shared) in live {
            let Ok(mut s) = shared.try_lock() else {
                continue;
            };
            if s.persisted || s.touched.elapsed() < ttl {
                continue;
            }
            if let Some(u) = s.upload.take() {
                let _ = self.storage.abort(u).await;
            }
            if let Ok(mut map) = self.live.lock() {
                map.remove(&id);
            }
            idle += 1;
        }
        let stale = self.store.stale_uploads(now() - ttl_secs).await?;
        let n = stale.len() + idle;
        for record in stale {
            let live = self
                .live
                .lock()
                .map_err(RegistryError::internal)?
                .remove(&record.id);
            let upload = match live {
                Some(shared) => shared.lock().await.upload.take(),
                None => self
                    .storage
                    .resume_upload(&record.id, &record.driver_state, record.size as u64)
                    .await
                    .ok(),
            };
            if let Some(u) = upload {
                let _ = self.storage.abort(u).await;
            }
            self.store.delete_upload(&record.id).await?;
        }
        Ok(n)
    }
}
