//! The filesystem driver: uploads are files under `uploads/`; a finished
//! blob is fsynced and renamed to `blobs/<algorithm>/<hex>`, so a blob file
//! is either complete or absent. The rename is made durable by an fsync of
//! the directory, which concurrent finishes share (one directory per
//! algorithm makes that possible; ext4 and xfs index large directories).

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{BlobStorage, ByteStream, DriverUpload, StorageError};
use podspace_oci::digest::Digest;

pub struct FsStorage {
    root: PathBuf,
    dir_syncs: DirSyncs,
}

/// Group fsync of a directory: a finish that renamed a file asks for a sync
/// and is satisfied by any sync that started after its request.
#[derive(Default)]
struct DirSyncs {
    requested: std::sync::atomic::AtomicU64,
    done: tokio::sync::Mutex<u64>,
}

impl DirSyncs {
    async fn sync(&self, dir: &Path) -> Result<(), StorageError> {
        use std::sync::atomic::Ordering;
        let mine = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut done = self.done.lock().await;
        if *done >= mine {
            return Ok(());
        }
        let covers = self.requested.load(Ordering::Acquire);
        sync_dir(dir).await?;
        *done = covers;
        Ok(())
    }
}

/// Chunks from the network are small; writing them through a buffer saves
/// a trip to the blocking pool per chunk.
const WRITE_BUFFER: usize = 1 << 20;

struct FsUpload {
    file: tokio::io::BufWriter<tokio::fs::File>,
}

/// Blobs are tenants' data: directories 0700, files 0600 (the server
/// reads them, nobody else on the machine does).
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true).mode(0o700);
    b.create(dir).await
}

impl FsStorage {
    pub async fn open(root: impl Into<PathBuf>) -> Result<FsStorage, StorageError> {
        let root = root.into();
        private_dir(&root.join("uploads")).await?;
        private_dir(&root.join("blobs")).await?;
        Ok(FsStorage {
            root,
            dir_syncs: DirSyncs::default(),
        })
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(StorageError::UploadLost(format!("bad upload id {id:?}")));
        }
        Ok(self.root.join("uploads").join(id))
    }

    /// Locations come from our own metadata; refuse anything that could
    /// leave the root all the same.
    fn location_path(&self, location: &str) -> Result<PathBuf, StorageError> {
        let rel = Path::new(location);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(StorageError::NotFound(location.to_string()));
        }
        Ok(self.root.join(rel))
    }

    fn file_of(
        upload: &mut DriverUpload,
    ) -> Result<&mut tokio::io::BufWriter<tokio::fs::File>, StorageError> {
        upload
            .inner
            .downcast_mut::<FsUpload>()
            .map(|u| &mut u.file)
            .ok_or_else(|| StorageError::Backend("not an fs upload".into()))
    }
}

async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))??;
    Ok(())
}

fn stream_file(file: tokio::fs::File, len: u64) -> ByteStream {
    Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file.take(len),
        256 * 1024,
    ))
}

#[async_trait::async_trait]
impl BlobStorage for FsStorage {
    fn name(&self) -> &'static str {
        "fs"
    }

    async fn start_upload(&self, id: &str) -> Result<DriverUpload, StorageError> {
        let file = tokio::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(self.upload_path(id)?)
            .await?;
        Ok(DriverUpload {
            id: id.to_string(),
            written: 0,
            durable: 0,
            inner: Box::new(FsUpload {
                file: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file),
            }),
        })
    }

    fn saved_state(&self, _upload: &DriverUpload) -> String {
        "{}".into()
    }

    async fn resume_upload(
        &self,
        id: &str,
        _saved: &str,
        durable: u64,
    ) -> Result<DriverUpload, StorageError> {
        let path = self.upload_path(id)?;
        let mut file = match tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::UploadLost("its data is gone".into()))
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        if len < durable {
            return Err(StorageError::UploadLost(format!(
                "{len} of {durable} bytes survived"
            )));
        }
        // Bytes written after the last saved state are dropped: the saved
        // digest state covers exactly `durable` bytes.
        file.set_len(durable).await?;
        file.seek(SeekFrom::Start(durable)).await?;
        Ok(DriverUpload {
            id: id.to_string(),
            written: durable,
            durable,
            inner: Box::new(FsUpload {
                file: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file),
            }),
        })
    }

    async fn write(&self, upload: &mut DriverUpload, data: Bytes) -> Result<(), StorageError> {
        let file = Self::file_of(upload)?;
        file.write_all(&data).await?;
        upload.written += data.len() as u64;
        Ok(())
    }

    /// Into the page cache: that survives a killed process.
    async fn flush(&self, upload: &mut DriverUpload) -> Result<(), StorageError> {
        Self::file_of(upload)?.flush().await?;
        upload.durable = upload.written;
        Ok(())
    }

    async fn finish(
        &self,
        mut upload: DriverUpload,
        digest: &Digest,
    ) -> Result<String, StorageError> {
        let file = Self::file_of(&mut upload)?;
        file.flush().await?;
        file.get_ref().sync_data().await?;
        // Each upload has a location of its own, as on S3: a collection
        // deleting an older copy of the same blob can never delete this one.
        let location = format!(
            "blobs/{}/{}.{}",
            digest.algorithm.name(),
            digest.hex,
            upload.id
        );
        let target = self.location_path(&location)?;
        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        private_dir(&dir).await?;
        let from = self.upload_path(&upload.id)?;
        drop(upload);
        tokio::fs::rename(&from, &target).await?;
        self.dir_syncs.sync(&dir).await?;
        Ok(location)
    }

    async fn abort(&self, upload: DriverUpload) -> Result<(), StorageError> {
        let path = self.upload_path(&upload.id)?;
        drop(upload);
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(
        &self,
        location: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        let path = self.location_path(location)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(location.into()))
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        let range = range.unwrap_or(0..len);
        file.seek(SeekFrom::Start(range.start)).await?;
        Ok(stream_file(
            file,
            range.end.min(len).saturating_sub(range.start),
        ))
    }

    async fn read_upload(&self, upload: &mut DriverUpload) -> Result<ByteStream, StorageError> {
        let file = Self::file_of(upload)?;
        file.flush().await?;
        let copy = tokio::fs::File::open(self.upload_path(&upload.id)?).await?;
        Ok(stream_file(copy, upload.written))
    }

    async fn delete(&self, location: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.location_path(location)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::NotFound(location.into()))
            }
            Err(e) => Err(e.into()),
        }
    }
}
