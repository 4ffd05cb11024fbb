//! Upload sessions. A session lives in the store, not in this process:
//! its owner, the bytes stored, the digest state at that size and the
//! storage driver's state. A request that writes to a session first
//! *claims* its row (for `CLAIM_SECS`, renewed while the body streams),
//! continues from the state it read, and saves the new state only under
//! that claim. So a session opened on one replica can be continued on
//! another, two requests never write one session's bytes at once (the
//! second gets `BLOB_UPLOAD_INVALID`), and a request whose claim was lost
//! (it stalled past the claim while another took over) saves nothing.
//!
//! Between requests a session holds nothing here: every accepted byte is
//! made durable before its state is saved, and the driver handle is
//! dropped. Open sessions are capped per user and in total, counted in the
//! store so that the caps hold across replicas (`TOOMANYREQUESTS`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::meta::{BlobRecord, RegistryStore, UploadClaim, UploadRecord};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::error::{Code, RegistryError, Result};
use crate::storage::{BlobStorage, DriverUpload};
use podspace_oci::digest::{Algorithm, Digest, ResumableSha256};

/// How long a claim lasts without renewal.
const CLAIM_SECS: i64 = 60;
/// How often a request that is still streaming renews its claim.
const RENEW_EVERY: Duration = Duration::from_secs(15);

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

/// A session claimed by one request: the state it continues from and the
/// driver handle it writes through.
pub struct Claimed {
    record: UploadRecord,
    hasher: ResumableSha256,
    upload: DriverUpload,
    renewed: Instant,
}

impl Claimed {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Bytes the session holds, those of this request included.
    pub fn size(&self) -> u64 {
        self.upload.written
    }
}

pub struct Uploads {
    meta: RegistryStore,
    storage: Arc<dyn BlobStorage>,
    limits: UploadLimits,
    /// This process's name on the claims it takes.
    writer: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn unknown() -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
}

fn busy() -> RegistryError {
    RegistryError::new(
        Code::BlobUploadInvalid,
        "another request is writing to this upload; send its chunks one after another",
    )
}

fn claim_lost() -> RegistryError {
    RegistryError::new(
        Code::BlobUploadInvalid,
        "this request stalled and the upload was continued by another; ask for its status (GET) and resume from there",
    )
}

impl Uploads {
    pub fn new(meta: RegistryStore, storage: Arc<dyn BlobStorage>, limits: UploadLimits) -> Self {
        Uploads {
            meta,
            storage,
            limits,
            writer: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    /// Starts a session for `repo` opened by `owner`, claimed by the
    /// calling request. Over a cap: `TOOMANYREQUESTS` and nothing is
    /// started.
    pub async fn start(&self, repo: &str, owner: &str) -> Result<Claimed> {
        let (mine, total) = self.meta.count_uploads(owner).await?;
        if mine as usize >= self.limits.per_principal {
            return Err(RegistryError::too_many(format!(
                "{mine} blob uploads are open for this user: finish or cancel some first"
            )));
        }
        if total as usize >= self.limits.total {
            return Err(RegistryError::too_many(
                "the registry has too many open blob uploads",
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let upload = self.storage.start_upload(&id).await?;
        let hasher = ResumableSha256::new();
        let at = now();
        let record = UploadRecord {
            id: id.clone(),
            repo: repo.to_string(),
            owner: owner.to_string(),
            size: 0,
            hash_state: hasher.save(),
            driver_state: self.storage.saved_state(&upload),
            created_at: at,
            updated_at: at,
        };
        if let Err(e) = self
            .meta
            .insert_upload(&record, &self.writer, at + CLAIM_SECS)
            .await
        {
            let _ = self.storage.abort(upload).await;
            return Err(e.into());
        }
        Ok(Claimed {
            record,
            hasher,
            upload,
            renewed: Instant::now(),
        })
    }

    /// Claims session `id` of `repo` for a request that writes to it,
    /// continuing from its saved state.
    pub async fn open(&self, repo: &str, id: &str) -> Result<Claimed> {
        let record = self.claim_row(repo, id).await?;
        match self.restore(record).await {
            Ok(c) => Ok(c),
            Err(e) => {
                let _ = self.meta.release_upload(id, &self.writer).await;
                Err(e)
            }
        }
    }

    async fn claim_row(&self, repo: &str, id: &str) -> Result<UploadRecord> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(unknown());
        }
        let at = now();
        let record = match self
            .meta
            .claim_upload(id, &self.writer, at + CLAIM_SECS, at)
            .await?
        {
            UploadClaim::Claimed(r) => r,
            UploadClaim::Busy => return Err(busy()),
            UploadClaim::Gone => return Err(unknown()),
        };
        if record.repo != repo {
            let _ = self.meta.release_upload(id, &self.writer).await;
            return Err(unknown());
        }
        Ok(record)
    }

    async fn restore(&self, record: UploadRecord) -> Result<Claimed> {
        let hasher = ResumableSha256::restore(&record.hash_state)
            .filter(|h| h.bytes_hashed() == record.size as u64)
            .ok_or_else(unknown)?;
        let upload = self
            .storage
            .resume_upload(&record.id, &record.driver_state, record.size as u64)
            .await?;
        Ok(Claimed {
            record,
            hasher,
            upload,
            renewed: Instant::now(),
        })
    }

    /// Appends a request body to a claimed session. `start`, when the
    /// client sent a Content-Range, must be where the session stands (else
    /// 416).
    pub async fn append<S>(&self, c: &mut Claimed, start: Option<u64>, mut body: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, axum::Error>> + Unpin,
    {
        if let Some(start) = start {
            if start != c.size() {
                return Err(RegistryError::new(
                    Code::RangeInvalid,
                    format!(
                        "the chunk starts at {start} but the upload holds {} bytes",
                        c.size()
                    ),
                ));
            }
        }
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                RegistryError::new(
                    Code::BlobUploadInvalid,
                    format!("reading the request body failed: {e}"),
                )
            })?;
            // Renewed before a write, never after: a claim that lapsed
            // while the body stalled may be another request's by now.
            if c.renewed.elapsed() >= RENEW_EVERY {
                if !self
                    .meta
                    .renew_upload_claim(&c.record.id, &self.writer, now() + CLAIM_SECS)
                    .await?
                {
                    return Err(claim_lost());
                }
                c.renewed = Instant::now();
            }
            c.hasher.update(&chunk);
            self.storage.write(&mut c.upload, chunk).await?;
        }
        Ok(())
    }

    /// Makes what `c` holds durable, saves it under the claim and lets the
    /// session go until its next request; returns its size.
    pub async fn save(&self, mut c: Claimed) -> Result<u64> {
        if let Err(e) = self.storage.flush(&mut c.upload).await {
            self.release(c).await;
            return Err(e.into());
        }
        // The saved digest state must describe exactly the stored bytes.
        if c.upload.durable != c.upload.written {
            self.release(c).await;
            return Err(RegistryError::internal(
                "the storage driver kept bytes it could not make durable",
            ));
        }
        let record = UploadRecord {
            size: c.upload.durable as i64,
            hash_state: c.hasher.save(),
            driver_state: self.storage.saved_state(&c.upload),
            updated_at: now(),
            ..c.record.clone()
        };
        if !self.meta.save_upload(&record, &self.writer).await? {
            return Err(claim_lost());
        }
        Ok(record.size as u64)
    }

    /// Lets a claimed session go without saving what this request wrote:
    /// the next request continues from the last saved state.
    pub async fn release(&self, c: Claimed) {
        if let Err(e) = self.meta.release_upload(&c.record.id, &self.writer).await {
            tracing::warn!(error = %e, "releasing an upload claim failed");
        }
    }

    /// Current size of a session, as last saved.
    pub async fn size(&self, repo: &str, id: &str) -> Result<u64> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(unknown());
        }
        match self.meta.upload(id).await? {
            Some(r) if r.repo == repo => Ok(r.size as u64),
            _ => Err(unknown()),
        }
    }

    /// Verifies `digest` over everything uploaded and makes the blob
    /// visible in `repo`. On a mismatch the upload is discarded.
    pub async fn finish(&self, c: Claimed, digest: &Digest) -> Result<BlobRecord> {
        let Claimed {
            record,
            hasher,
            mut upload,
            ..
        } = c;
        let id = &record.id;
        let actual = match digest.algorithm {
            Algorithm::Sha256 => hasher.finish(),
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
        // Deleting the row under the claim is what ends the session: if
        // another request took it over meanwhile, this one stops here.
        if !self.meta.delete_upload(id, &self.writer).await? {
            return Err(claim_lost());
        }
        if &actual != digest {
            self.storage.abort(upload).await?;
            return Err(RegistryError::new(
                Code::DigestInvalid,
                format!("the uploaded content has digest {actual}, not {digest}"),
            ));
        }
        let location = self.storage.finish(upload, digest).await?;
        let blob = BlobRecord {
            digest: digest.to_string(),
            size: size as i64,
            location: location.clone(),
        };
        let stored = self.add_blob(&record.repo, &blob).await?;
        if stored.location != location {
            // The blob was already stored elsewhere (another upload won);
            // ours is redundant.
            if let Err(e) = self.storage.delete(&location).await {
                tracing::warn!(error = %e, "removing a duplicate blob failed");
            }
        }
        Ok(stored)
    }

    /// Records a finished blob. While a collection is deleting an old copy
    /// of the same blob (a matter of milliseconds), waits for it to finish,
    /// then records this copy as a new blob.
    async fn add_blob(&self, repo: &str, blob: &BlobRecord) -> Result<BlobRecord> {
        for _ in 0..100 {
            if let Some(stored) = self.meta.add_blob(repo, blob).await? {
                return Ok(stored);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if let Err(e) = self.storage.delete(&blob.location).await {
            tracing::warn!(error = %e, "removing a blob the collector holds failed");
        }
        Err(RegistryError::new(
            Code::BlobUploadInvalid,
            format!(
                "blob {} is being garbage-collected; upload it again",
                blob.digest
            ),
        ))
    }

    /// Ends a session and what it stored.
    pub async fn cancel(&self, repo: &str, id: &str) -> Result<()> {
        let record = self.claim_row(repo, id).await?;
        self.end(&record).await?;
        Ok(())
    }

    /// Ends a claimed session and what it stored.
    pub async fn discard(&self, c: Claimed) -> Result<()> {
        if self.meta.delete_upload(&c.record.id, &self.writer).await? {
            self.storage.abort(c.upload).await?;
        }
        Ok(())
    }

    /// Ends the session of a claimed row; false if the claim was lost.
    async fn end(&self, record: &UploadRecord) -> Result<bool> {
        // Its driver state may be unusable (the data is gone already); the
        // row goes either way.
        let upload = self
            .storage
            .resume_upload(&record.id, &record.driver_state, record.size as u64)
            .await
            .ok();
        if !self.meta.delete_upload(&record.id, &self.writer).await? {
            return Ok(false);
        }
        if let Some(u) = upload {
            if let Err(e) = self.storage.abort(u).await {
                tracing::warn!(error = %e, "aborting an upload's data failed");
            }
        }
        Ok(true)
    }

    /// Aborts sessions nobody has saved for `ttl_secs` and nobody holds.
    pub async fn expire(&self, ttl_secs: i64) -> Result<usize> {
        let at = now();
        let stale = self.meta.stale_uploads(at - ttl_secs, at).await?;
        let mut n = 0;
        for record in stale {
            let claimed = self
                .meta
                .claim_upload(&record.id, &self.writer, at + CLAIM_SECS, at)
                .await?;
            let UploadClaim::Claimed(record) = claimed else {
                continue;
            };
            // Saved again since it was listed: not stale after all.
            if record.updated_at >= at - ttl_secs {
                self.meta.release_upload(&record.id, &self.writer).await?;
                continue;
            }
            if self.end(&record).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}
