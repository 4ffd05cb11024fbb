//! Blob storage drivers. One small trait, two implementations (`fs`, `s3`),
//! one shared test suite (`tests/driver_suite.rs`).
//!
//! Drivers store bytes only. What exists, where it lies and who may read it
//! is metadata in the store; a driver never lists anything on a request.

pub mod fs;
pub mod s3;

use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use podspace_oci::digest::Digest;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob not found at {0}")]
    NotFound(String),
    #[error("the upload cannot be continued: {0}")]
    UploadLost(String),
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage backend: {0}")]
    Backend(String),
}

/// An upload in progress. `inner` is the driver's own state.
pub struct DriverUpload {
    pub id: String,
    /// Bytes accepted so far.
    pub written: u64,
    /// Bytes that would survive a restart of this process; equal to
    /// `written` unless the driver buffers (S3 buffers up to a part).
    pub durable: u64,
    pub inner: Box<dyn std::any::Any + Send + Sync>,
}

#[async_trait::async_trait]
pub trait BlobStorage: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
    async fn start_upload(&self, id: &str) -> Result<DriverUpload, StorageError>;
    /// The driver state to persist so that the upload can resume after a
    /// restart (valid for `upload.durable` bytes).
    fn saved_state(&self, upload: &DriverUpload) -> String;
    /// Continues an upload from its saved state, `durable` bytes long.
    async fn resume_upload(
        &self,
        id: &str,
        saved: &str,
        durable: u64,
    ) -> Result<DriverUpload, StorageError>;
    async fn write(&self, upload: &mut DriverUpload, data: Bytes) -> Result<(), StorageError>;
    /// Makes what was written as durable as the driver can before the
    /// session's state is saved (`upload.durable` says how far).
    async fn flush(&self, upload: &mut DriverUpload) -> Result<(), StorageError>;
    /// Makes every byte durable and puts the blob where it will be read
    /// from; returns that location. The caller has verified `digest`.
    async fn finish(&self, upload: DriverUpload, digest: &Digest) -> Result<String, StorageError>;
    async fn abort(&self, upload: DriverUpload) -> Result<(), StorageError>;
    /// Reads a finished blob, or the `range` of it.
    async fn read(
        &self,
        location: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError>;
    /// Reads back what an unfinished upload holds (to compute a digest other
    /// than SHA-256 before the blob becomes visible).
    async fn read_upload(&self, upload: &mut DriverUpload) -> Result<ByteStream, StorageError>;
    async fn delete(&self, location: &str) -> Result<(), StorageError>;
}
