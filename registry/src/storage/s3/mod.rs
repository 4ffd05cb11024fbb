//! The S3 driver. Every blob lives under a key of its own upload
//! (`blobs/<upload id>`), recorded in the store: a finished blob is never
//! copied, and nothing is listed. A blob smaller than a part is sent in one
//! PutObject; a larger one becomes a multipart upload of 5 MiB parts, each
//! part sent as soon as it is full. `flush` makes the bytes after the last
//! part durable too, as tail fragments (`tail`): a session needs no memory
//! between requests, and another replica can continue it exactly where it
//! stopped.

mod tail;

use std::ops::Range;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use self::tail::{Fragment, RecentTails};
use super::{BlobStorage, ByteStream, DriverUpload, StorageError};
use podspace_oci::digest::Digest;

/// S3's smallest part but the last.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Key prefix, e.g. `registry/`.
    pub prefix: String,
}

pub struct S3Storage {
    client: Client,
    bucket: String,
    prefix: String,
    recent: RecentTails,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    key: String,
    /// The multipart upload, once the first part was sent.
    upload_id: Option<String>,
    parts: Vec<(i32, String)>,
    /// The object exists already (completed early to be read back).
    completed: bool,
    /// The fragments holding the bytes after the parts, in order.
    #[serde(default)]
    fragments: Vec<Fragment>,
    /// The next fragment's number: the upload's fragment objects are
    /// `0..next_fragment`, removed when it is finished or aborted.
    #[serde(default)]
    next_fragment: u32,
}

struct S3Upload {
    saved: Saved,
    /// The bytes after the parts.
    buffer: BytesMut,
    /// How much of `buffer` the fragments hold.
    synced: usize,
    /// Write the next fragment as the whole buffer, replacing the list (it
    /// was read back from many fragments).
    consolidate: bool,
}

impl Saved {
    fn fragment_key(&self, n: u32) -> String {
        format!("{}.tail.{n}", self.key)
    }

    fn durable(&self) -> u64 {
        self.parts.len() as u64 * PART_SIZE as u64
            + self.fragments.iter().map(|f| f.len).sum::<u64>()
    }
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// The full chain of an SDK error: its Display alone says "service error".
fn sdk<E: std::error::Error>(e: E) -> StorageError {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    StorageError::Backend(msg)
}

impl S3Storage {
    pub fn new(cfg: S3Config) -> S3Storage {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region))
            .credentials_provider(Credentials::new(
                cfg.access_key,
                cfg.secret_key,
                None,
                None,
                "podspace",
            ))
            .force_path_style(true)
            // S3-compatible servers (Garage, moto) refuse the SDK's default
            // streaming checksums on multipart uploads.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .http_client(http);
        if let Some(endpoint) = cfg.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        S3Storage {
            client: Client::from_conf(conf.build()),
            bucket: cfg.bucket,
            prefix: cfg.prefix,
            recent: RecentTails::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn state(upload: &mut DriverUpload) -> Result<&mut S3Upload, StorageError> {
        upload
            .inner
            .downcast_mut::<S3Upload>()
            .ok_or_else(|| backend("not an S3 upload"))
    }

    async fn send_part(&self, up: &mut S3Upload, data: Bytes) -> Result<(), StorageError> {
        if up.saved.upload_id.is_none() {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&up.saved.key)
                .content_type("application/octet-stream")
                .send()
                .await
                .map_err(sdk)?;
            up.saved.upload_id = Some(
                created
                    .upload_id()
                    .ok_or_else(|| backend("S3 gave no upload id"))?
                    .to_string(),
            );
        }
        let number = up.saved.parts.len() as i32 + 1;
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&up.saved.key)
            .upload_id(up.saved.upload_id.as_deref().unwrap_or_default())
            .part_number(number)
            .body(S3Body::from(data))
            .send()
            .await
            .map_err(sdk)?;
        up.saved
            .parts
            .push((number, part.e_tag().unwrap_or_default().to_string()));
        Ok(())
    }

    /// Puts everything the upload holds into its object.
    async fn complete(&self, up: &mut S3Upload) -> Result<(), StorageError> {
        if up.saved.completed {
            return Ok(());
        }
        let rest = up.buffer.split().freeze();
        match &up.saved.upload_id {
            None => {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&up.saved.key)
                    .content_type("application/octet-stream")
                    .body(S3Body::from(rest))
                    .send()
                    .await
                    .map_err(sdk)?;
            }
            Some(_) => {
                if !rest.is_empty() {
                    self.send_part(up, rest).await?;
                }
                let parts = up
                    .saved
                    .parts
                    .iter()
                    .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
                    .collect();
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&up.saved.key)
                    .upload_id(up.saved.upload_id.as_deref().unwrap_or_default())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(sdk)?;
            }
        }
        up.saved.completed = true;
        self.remove_fragments(up).await;
        Ok(())
    }

    /// Removes every tail fragment the upload may have written. Their
    /// bytes are in the blob (or the upload is aborted), so a failure only
    /// leaves garbage.
    async fn remove_fragments(&self, up: &mut S3Upload) {
        up.saved.fragments.clear();
        let numbers: Vec<u32> = (0..std::mem::take(&mut up.saved.next_fragment)).collect();
        // DeleteObjects takes at most 1,000 keys.
        for batch in numbers.chunks(1000) {
            let objects: Result<Vec<_>, _> = batch
                .iter()
                .map(|n| {
                    ObjectIdentifier::builder()
                        .key(up.saved.fragment_key(*n))
                        .build()
                })
                .collect();
            let delete =
                objects.and_then(|o| Delete::builder().set_objects(Some(o)).quiet(true).build());
            let result = match delete {
                Ok(delete) => self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(sdk)
                    .map(|out| out.errors().len()),
                Err(e) => Err(backend(e)),
            };
            match result {
                Ok(0) => {}
                Ok(failed) => {
                    tracing::warn!(key = %up.saved.key, failed, "some tail fragments of an upload were not removed")
                }
                Err(e) => {
                    tracing::warn!(key = %up.saved.key, error = %e, "removing an upload's tail fragments failed")
                }
            }
        }
    }

    /// Reads the fragments a saved state names back, each checked against
    /// the ETag it was saved with.
    async fn read_fragments(&self, saved: &Saved) -> Result<BytesMut, StorageError> {
        let mut buffer = BytesMut::new();
        for f in &saved.fragments {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(saved.fragment_key(f.n))
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                        StorageError::UploadLost("a tail fragment is gone".into())
                    } else {
                        sdk(e)
                    }
                })?;
            // A fragment rewritten by a request whose state was never saved
            // (its claim lapsed, or it died) is not the one this state names.
            if out.e_tag() != Some(f.etag.as_str()) {
                return Err(StorageError::UploadLost(
                    "a tail fragment was rewritten after the state was saved".into(),
                ));
            }
            let bytes = out.body.collect().await.map_err(backend)?.into_bytes();
            if bytes.len() as u64 != f.len {
                return Err(StorageError::UploadLost(format!(
                    "a tail fragment holds {} bytes, not {}",
                    bytes.len(),
                    f.len
                )));
            }
            buffer.extend_from_slice(&bytes);
        }
        Ok(buffer)
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(r) = &range {
            if r.end <= r.start {
                return Ok(Box::pin(futures_util::stream::empty()));
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                StorageError::NotFound(key.to_string())
            } else {
                sdk(e)
            }
        })?;
        Ok(Box::pin(futures_util::stream::unfold(
            out.body,
            |mut body| async move {
                match body.next().await {
                    Some(Ok(chunk)) => Some((Ok(chunk), body)),
                    Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), body)),
                    None => None,
                }
            },
        )))
    }
}

#[async_trait::async_trait]
impl BlobStorage for S3Storage {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn start_upload(&self, id: &str) -> Result<DriverUpload, StorageError> {
        Ok(DriverUpload {
            id: id.to_string(),
            written: 0,
            durable: 0,
            inner: Box::new(S3Upload {
                saved: Saved {
                    key: format!("{}blobs/{id}", self.prefix),
                    ..Default::default()
                },
                buffer: BytesMut::new(),
                synced: 0,
                consolidate: false,
            }),
        })
    }

    fn saved_state(&self, upload: &DriverUpload) -> String {
        upload
            .inner
            .downcast_ref::<S3Upload>()
            .and_then(|u| serde_json::to_string(&u.saved).ok())
            .unwrap_or_default()
    }

    async fn resume_upload(
        &self,
        id: &str,
        saved: &str,
        durable: u64,
    ) -> Result<DriverUpload, StorageError> {
        let state = saved;
        let saved: Saved = serde_json::from_str(state)
            .map_err(|e| StorageError::UploadLost(format!("unreadable state: {e}")))?;
        if saved.completed || saved.durable() != durable {
            return Err(StorageError::UploadLost(
                "its state does not match the stored parts".into(),
            ));
        }
        let (buffer, consolidate) = match self.recent.take(id, state) {
            Some(tail) => (BytesMut::from(&tail[..]), false),
            None => (
                self.read_fragments(&saved).await?,
                saved.fragments.len() > 1,
            ),
        };
        Ok(DriverUpload {
            id: id.to_string(),
            written: durable,
            durable,
            inner: Box::new(S3Upload {
                synced: buffer.len(),
                saved,
                buffer,
                consolidate,
            }),
        })
    }

    async fn write(&self, upload: &mut DriverUpload, data: Bytes) -> Result<(), StorageError> {
        let len = data.len() as u64;
        let mut sent = 0u64;
        {
            let up = Self::state(upload)?;
            if up.saved.completed {
                return Err(backend("the upload was already completed"));
            }
            up.buffer.extend_from_slice(&data);
            while up.buffer.len() >= PART_SIZE {
                let part = up.buffer.split_to(PART_SIZE).freeze();
                self.send_part(up, part).await?;
                // The fragments' bytes are in the part now; what is left
                // of the buffer goes into a fragment of its own.
                up.saved.fragments.clear();
                up.synced = 0;
                up.consolidate = false;
                sent += 1;
            }
        }
        upload.written += len;
        if sent > 0 || len > 0 {
            upload.durable = Self::state(upload)?.saved.durable();
        }
        Ok(())
    }

    /// Writes the bytes no fragment holds yet as a new fragment: one
    /// PutObject of what the request brought.
    async fn flush(&self, upload: &mut DriverUpload) -> Result<(), StorageError> {
        let id = upload.id.clone();
        let up = Self::state(upload)?;
        if !up.saved.completed && up.buffer.len() > up.synced {
            let from = if up.consolidate { 0 } else { up.synced };
            let n = up.saved.next_fragment;
            let out = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(up.saved.fragment_key(n))
                .content_type("application/octet-stream")
                .body(S3Body::from(Bytes::copy_from_slice(&up.buffer[from..])))
                .send()
                .await
                .map_err(sdk)?;
            if up.consolidate {
                up.saved.fragments.clear();
                up.consolidate = false;
            }
            up.saved.next_fragment += 1;
            up.saved.fragments.push(Fragment {
                n,
                len: (up.buffer.len() - from) as u64,
                etag: out.e_tag().unwrap_or_default().to_string(),
            });
            up.synced = up.buffer.len();
        }
        if !up.buffer.is_empty() && !up.saved.completed {
            if let Ok(state) = serde_json::to_string(&up.saved) {
                self.recent
                    .remember(&id, state, Bytes::copy_from_slice(&up.buffer));
            }
        }
        upload.durable = Self::state(upload)?.saved.durable();
        Ok(())
    }

    async fn finish(
        &self,
        mut upload: DriverUpload,
        _digest: &Digest,
    ) -> Result<String, StorageError> {
        self.recent.forget(&upload.id);
        let up = Self::state(&mut upload)?;
        self.complete(up).await?;
        Ok(up.saved.key.clone())
    }

    async fn abort(&self, mut upload: DriverUpload) -> Result<(), StorageError> {
        self.recent.forget(&upload.id);
        let up = Self::state(&mut upload)?;
        self.remove_fragments(up).await;
        if up.saved.completed {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&up.saved.key)
                .send()
                .await
                .map_err(sdk)?;
        } else if let Some(id) = &up.saved.upload_id {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&up.saved.key)
                .upload_id(id)
                .send()
                .await
                .map_err(sdk)?;
        }
        Ok(())
    }

    async fn read(
        &self,
        location: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        if !location.starts_with(&self.prefix) {
            return Err(StorageError::NotFound(location.into()));
        }
        self.get_stream(location, range).await
    }

    /// S3 cannot read an unfinished multipart upload back, so the upload is
    /// completed into its own key first; the blob still becomes visible
    /// only when the caller records it.
    async fn read_upload(&self, upload: &mut DriverUpload) -> Result<ByteStream, StorageError> {
        let up = Self::state(upload)?;
        if up.saved.upload_id.is_none() && !up.saved.completed {
            let copy = up.buffer.clone().freeze();
            return Ok(Box::pin(futures_util::stream::iter([Ok(copy)])));
        }
        self.complete(up).await?;
        upload.durable = upload.written;
        let key = Self::state(upload)?.saved.key.clone();
        self.get_stream(&key, None).await
    }

    async fn delete(&self, location: &str) -> Result<(), StorageError> {
        if !location.starts_with(&self.prefix) {
            return Err(StorageError::NotFound(location.into()));
        }
        // S3 deletes are idempotent; a HEAD first tells a missing blob apart.
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(location)
            .send()
            .await;
        if let Err(e) = head {
            if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                return Err(StorageError::NotFound(location.into()));
            }
            return Err(sdk(e));
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(location)
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }
}
