//! Upload sessions. Each session lives in memory while this process serves
//! it, and its durable part (bytes stored, digest state, driver state) is
//! saved in the store after every chunk, so another start of the process
//! (or another replica) can continue it.
//!
//! Between requests a session is *parked*: when every byte it holds is
//! durable its driver handle (an open file on fs) is dropped and only the
//! digest state and the driver's saved state stay, so an idle session holds
//! no descriptor and a few hundred bytes. Open sessions are capped per
//! principal and in total (`TOOMANYREQUESTS`).

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
    /// A parked session's size and driver state (`upload` is then None).
    parked: Option<(u64, String)>,
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
        match (&self.upload, &self.parked) {
            (Some(u), _) => u.written,
            (None, Some((size, _))) => *size,
            (None, None) => 0,
        }
    }
}

/// How many sessions may be open at once.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub per_principal: usize,
    pub total: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            per_principal: 256,
            total: 4096,
        }
    }
}

type Shared = Arc<tokio::sync::Mutex<Session>>;

pub struct Uploads {
    store: Store,
    storage: Arc<dyn BlobStorage>,
    /// id → (the principal that opened it, the session).
    live: Mutex<HashMap<String, (String, Shared)>>,
    limits: UploadLimits,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn unknown() -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
}

impl Uploads {
    pub fn new(store: Store, storage: Arc<dyn BlobStorage>, limits: UploadLimits) -> Self {
        Uploads {
            store,
            storage,
            live: Mutex::new(HashMap::new()),
            limits,
        }
    }

    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    /// Starts a session for `repo` opened by `owner`; returns its id. Over
    /// a cap: `TOOMANYREQUESTS` and nothing is started.
    pub async fn start(&self, repo: &str, owner: &str) -> Result<String> {
        {
            let live = self.live.lock().map_err(RegistryError::internal)?;
            let mine = live.values().filter(|(o, _)| o == owner).count();
            if mine >= self.limits.per_principal {
                return Err(RegistryError::too_many(format!(
                    "{mine} blob uploads are open for this user: finish or cancel some first"
                )));
            }
            if live.len() >= self.limits.total {
                return Err(RegistryError::too_many(
                    "the registry has too many open blob uploads",
                ));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let upload = self.storage.start_upload(&id).await?;
        let session = Session {
            repo: repo.to_string(),
            hasher: ResumableSha256::new(),
            upload: Some(upload),
            parked: None,
            created_at: now(),
            persisted: false,
            touched: std::time::Instant::now(),
        };
        self.live.lock().map_err(RegistryError::internal)?.insert(
            id.clone(),
            (
                owner.to_string(),
                Arc::new(tokio::sync::Mutex::new(session)),
            ),
        );
        Ok(id)
    }

    /// Parks session `id` until its next request (see the module doc).
    pub async fn park(&self, id: &str) -> Result<()> {
        let Some(shared) = self.live_session(id)? else {
            return Ok(());
        };
        let mut s = shared.lock().await;
        self.park_locked(&mut s).await
    }

    async fn park_locked(&self, s: &mut Session) -> Result<()> {
        let Some(up) = s.upload.as_mut() else {
            return Ok(());
        };
        self.storage.flush(up).await?;
        // A driver that still buffers bytes (an S3 part not yet full) keeps
        // its handle: dropping it would lose them.
        if up.durable == up.written {
            let state = self.storage.saved_state(up);
            s.parked = Some((up.written, state));
            s.upload = None;
        }
        Ok(())
    }

    /// The driver handle of a session, reopened if it was parked.
    async fn unpark(&self, id: &str, s: &mut Session) -> Result<()> {
        if s.upload.is_none() {
            if let Some((size, state)) = s.parked.take() {
                match self.storage.resume_upload(id, &state, size).await {
                    Ok(up) => s.upload = Some(up),
                    Err(e) => {
                        s.parked = Some((size, state));
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }

    fn live_session(&self, id: &str) -> Result<Option<Shared>> {
        Ok(self
            .live
            .lock()
            .map_err(RegistryError::internal)?
            .get(id)
            .map(|(_, s)| s.clone()))
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

    /// The session `id` of `repo`, from memory or (parked) from the store.
    pub async fn get(&self, repo: &str, id: &str) -> Result<Shared> {
        if let Some(s) = self.live_session(id)? {
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
        let session = Arc::new(tokio::sync::Mutex::new(Session {
            repo: record.repo,
            hasher,
            upload: None,
            parked: Some((record.size as u64, record.driver_state)),
            created_at: record.created_at,
            persisted: true,
            touched: std::time::Instant::now(),
        }));
        let mut live = self.live.lock().map_err(RegistryError::internal)?;
        Ok(live
            .entry(id.to_string())
            // Saved before a restart: counted in the total only.
            .or_insert((String::new(), session))
            .1
            .clone())
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
        self.unpark(id, &mut s).await?;
        let result = self.pump(&mut s, body).await;
        s.touched = std::time::Instant::now();
        if keep {
            if let Some(up) = s.upload.as_mut() {
                self.storage.flush(up).await?;
            }
            self.save(id, &mut s).await?;
            self.park_locked(&mut s).await?;
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
        self.unpark(id, &mut s).await?;
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
        // A parked upload is reopened to be aborted (S3: its multipart
        // upload is ended); one that cannot be is gone already.
        let _ = self.unpark(id, &mut s).await;
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
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        let mut idle = 0;
        for (id, shared) in live {
            let Ok(mut s) = shared.try_lock() else {
                continue;
            };
            if s.persisted || s.touched.elapsed() < ttl {
                continue;
            }
            let _ = self.unpark(&id, &mut s).await;
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
                Some((_, shared)) => {
                    let mut s = shared.lock().await;
                    let _ = self.unpark(&record.id, &mut s).await;
                    s.upload.take()
                }
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
