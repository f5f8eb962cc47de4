//! The [`FileStorage`] port over an S3-compatible object store (AWS S3,
//! MinIO, Ceph, moto), through the `object_store` crate.
//!
//! Layout under `storage.s3.prefix` in the bucket:
//!
//! - `documents/<uuid>`: stored files. A file under 5 MiB is sent to its
//!   final key in one `PUT` when it ends. A larger one streams as a
//!   multipart upload of 5 MiB parts (one part in memory at a time) to
//!   `tmp/<uuid>`, which S3 makes visible only when it completes, and is
//!   copied into place when persisted: S3 dates a multipart object from
//!   the upload's start, so a slow upload written straight into
//!   `documents/` could look older than the sweep's grace period before
//!   its row commits; the copy is dated now. An upload that ends any other
//!   way (error, limit passed, client gone) is aborted, and a completed one
//!   that is never persisted (a refused file) is deleted.
//! - `tmp/<uuid>`: completed multipart uploads not yet persisted; what a
//!   crash leaves here is deleted by [`FileStorage::sweep_temporary`].
//! - `quarantine/documents/<uuid>`: unreferenced files the sweep moved
//!   aside (copied, then deleted from `documents/`), dated from the move.
//! - `.autodocs-instance`: the marker naming the database this bucket
//!   prefix belongs to.
//!
//! A process killed mid-upload leaves an incomplete multipart upload, which
//! S3 does not list as an object and `object_store` cannot enumerate: the
//! bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes those
//! (docs/operations.md).
//!
//! The port is blocking; every call here runs its requests on this
//! storage's own small runtime and waits for the answer on the caller's
//! thread (a blocking-pool thread), so it works from any thread and never
//! from inside the server's event loop.

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use autodocs_domain::document::{ObservedFile, StorageKey, UploadedFile};
use autodocs_domain::instance::DatabaseIdentity;
use autodocs_domain::ports::{
    FileStorage, StagedUpload, StorageError, StoredFile, UploadError, UploadSink,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

use crate::sniff::Sniffer;
use crate::{FILES_DIR, MARKER_FILE, hex, is_canonical_key, measure};

/// The size of one multipart part, and the most of an upload held in
/// memory: S3's smallest allowed part (except the last).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// The largest object one `CopyObject` may move into place (S3's limit),
/// hence the largest upload this storage takes.
pub const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Completed multipart uploads waiting to be persisted, under the prefix.
const STAGING: &str = "tmp";

/// The most of a stored file one ranged read brings into memory.
const READ_CHUNK: u64 = 1024 * 1024;

/// The quarantine prefix (it holds `documents/<key>`).
const QUARANTINE: &str = "quarantine";

/// Where the objects live and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The endpoint of an S3-compatible service (`http://127.0.0.1:9000`);
    /// `None` for AWS itself. Plain `http://` is allowed only here.
    pub endpoint: Option<String>,
    /// The region; empty: `AWS_REGION` (or `AWS_DEFAULT_REGION`), else
    /// `us-east-1`, which most S3-compatible services take.
    pub region: String,
    /// A key prefix inside the bucket (`autodocs/production`); empty for
    /// the bucket's root.
    pub prefix: String,
    /// Explicit credentials; `None` reads the standard variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
    /// or, without them, the instance's role.
    pub credentials: Option<S3Credentials>,
}

/// An access key pair (its secret is never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Runs the object store's requests; shut down without waiting when the
/// last handle goes, whatever thread that is on.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The client shared by the storage, its uploads and its readers.
struct Client {
    store: Arc<dyn ObjectStore>,
    runtime: Runtime,
    prefix: Path,
}

impl Client {
    fn handle(&self) -> Result<&tokio::runtime::Handle, StorageError> {
        self.runtime
            .0
            .as_ref()
            .map(tokio::runtime::Runtime::handle)
            .ok_or_else(|| StorageError::Io("the object store client is shut down".to_owned()))
    }

    /// Runs `work` on the client's runtime and waits for its result.
    fn wait<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle()?.spawn(async move {
            let _ = sender.send(work.await);
        });
        receiver
            .recv()
            .map_err(|_| StorageError::Io("an object store request was cut short".to_owned()))
    }

    /// Starts `work` without waiting for it (clean-up from `Drop`).
    fn detach(&self, work: impl Future<Output = ()> + Send + 'static) {
        if let Ok(handle) = self.handle() {
            handle.spawn(work);
        }
    }

    fn files(&self) -> Path {
        self.prefix.clone().join(FILES_DIR)
    }

    fn quarantine(&self) -> Path {
        self.prefix.clone().join(QUARANTINE).join(FILES_DIR)
    }

    fn file(&self, key: &StorageKey) -> Result<Path, StorageError> {
        canonical(key).map(|key| self.files().join(key))
    }

    fn quarantined(&self, key: &StorageKey) -> Result<Path, StorageError> {
        canonical(key).map(|key| self.quarantine().join(key))
    }

    fn staging(&self) -> Path {
        self.prefix.clone().join(STAGING)
    }

    fn marker(&self) -> Path {
        self.prefix.clone().join(MARKER_FILE)
    }

    /// The size of an object; `None` if there is none.
    fn size_of(&self, location: &Path) -> Result<Option<u64>, StorageError> {
        let store = Arc::clone(&self.store);
        let location = location.clone();
        match self.wait(async move { store.head(&location).await })? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(failed("cannot read a stored object's size", &error)),
        }
    }

    /// Deletes an object; false if there was none.
    fn remove(&self, location: &Path) -> Result<bool, StorageError> {
        if self.size_of(location)?.is_none() {
            return Ok(false);
        }
        let store = Arc::clone(&self.store);
        let location = location.clone();
        match self.wait(async move { store.delete(&location).await })? {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(failed("cannot delete a stored object", &error)),
        }
    }

    /// The keys of canonical objects under `prefix` last written at least
    /// `min_age` ago.
    fn older_than(&self, prefix: Path, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
        let store = Arc::clone(&self.store);
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let listed = self.wait(async move {
            store
                .list(Some(&prefix))
                .try_filter_map(|meta| {
                    let key = (meta.last_modified <= cutoff)
                        .then(|| meta.location.filename().map(StorageKey::parse))
                        .flatten()
                        .and_then(Result::ok)
                        .filter(is_canonical_key);
                    async move { Ok(key) }
                })
                .try_collect::<Vec<_>>()
                .await
        })?;
        listed.map_err(|error| failed("cannot list stored objects", &error))
    }
}

fn canonical(key: &StorageKey) -> Result<&str, StorageError> {
    if is_canonical_key(key) {
        Ok(key.as_str())
    } else {
        Err(StorageError::InvalidKey(key.as_str().to_owned()))
    }
}

/// One line for an operator: S3 answers errors as an XML document, whose
/// code and message say it all; anything else is folded onto one line.
fn failed(context: &str, error: &object_store::Error) -> StorageError {
    let text = error.to_string();
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + end].to_owned())
    };
    let summary = match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    StorageError::Io(format!("{context}: {summary}"))
}

/// Documents in an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Storage {
    client: Arc<Client>,
    description: String,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("at", &self.description)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// A client for `config` (see [`S3Config::credentials`] for where its
    /// credentials come from). Nothing is sent until the first call ([`Self::probe`] checks access).
    pub fn connect(config: &S3Config) -> Result<Self, StorageError> {
        if config.bucket.trim().is_empty() {
            return Err(StorageError::Io(
                "storage.s3.bucket is empty: name the bucket".to_owned(),
            ));
        }
        let prefix = Path::parse(config.prefix.trim_matches('/')).map_err(|error| {
            StorageError::Io(format!(
                "storage.s3.prefix {:?} is not a valid key prefix: {error}",
                config.prefix
            ))
        })?;
        // Every wait on the network has an end: a stalled store fails the
        // request that needed it instead of holding its thread.
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(Duration::from_secs(30))
            .with_timeout(Duration::from_secs(120));
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_client_options(options)
            .with_retry(retry);
        if !config.region.trim().is_empty() {
            builder = builder.with_region(config.region.trim());
        }
        if let Some(credentials) = &config.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
        }
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder.build().map_err(|error| {
            StorageError::Io(format!("cannot configure the S3 client: {error}"))
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("autodocs-s3")
            .enable_all()
            .build()
            .map_err(|error| StorageError::Io(format!("cannot start the S3 client: {error}")))?;
        let description = format!(
            "s3://{}/{}{}",
            config.bucket,
            prefix,
            config
                .endpoint
                .as_deref()
                .filter(|e| !e.is_empty())
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
        Ok(Self {
            client: Arc::new(Client {
                store: Arc::new(store),
                runtime: Runtime(Some(runtime)),
                prefix,
            }),
            description,
        })
    }

    /// Where the objects live (`s3://bucket/prefix at endpoint`), for logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes and deletes a probe object, so that a bucket that cannot be
    /// reached or written fails at start-up (and in `autodocs check`)
    /// rather than on the first upload.
    pub fn probe(&self) -> Result<(), StorageError> {
        let location = self
            .client
            .prefix
            .clone()
            .join(format!(".autodocs-probe-{}", uuid::Uuid::new_v4()));
        let store = Arc::clone(&self.client.store);
        self.client
            .wait(async move {
                store
                    .put(&location, PutPayload::from_static(b"probe"))
                    .await?;
                store.delete(&location).await
            })?
            .map_err(|error| failed("cannot write to the bucket", &error))
    }
}

/// An upload streaming to the bucket.
struct S3Upload {
    client: Arc<Client>,
    key: StorageKey,
    /// Where a file of one `PUT` goes: its final key.
    location: Path,
    /// Where a multipart upload goes until it is persisted.
    staging: Path,
    hasher: Sha256,
    sniffer: Sniffer,
    size: u64,
    limit: u64,
    /// Bytes not sent yet: less than one part.
    buffer: Vec<u8>,
    /// The multipart upload, once the file passed one part.
    multipart: Option<Box<dyn MultipartUpload>>,
    failed: Option<UploadError>,
}

impl S3Upload {
    fn fail(&mut self, error: UploadError) -> UploadError {
        self.failed = Some(error.clone());
        error
    }

    /// Sends the buffer as the next part (starting the multipart upload).
    fn send_part(&mut self) -> Result<(), StorageError> {
        let part = Bytes::from(std::mem::take(&mut self.buffer));
        let mut multipart = match self.multipart.take() {
            Some(multipart) => multipart,
            None => {
                let store = Arc::clone(&self.client.store);
                let staging = self.staging.clone();
                self.client
                    .wait(async move { store.put_multipart(&staging).await })?
                    .map_err(|error| failed("cannot start a multipart upload", &error))?
            }
        };
        let sent = multipart.put_part(PutPayload::from(part));
        self.multipart = Some(multipart);
        self.client
            .wait(sent)?
            .map_err(|error| failed("cannot send part of an upload", &error))
    }
}

impl UploadSink for S3Upload {
    fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let size = self.size + chunk.len() as u64;
        if size > self.limit {
            return Err(self.fail(UploadError::TooLarge { limit: self.limit }));
        }
        self.hasher.update(chunk);
        self.sniffer.feed(chunk);
        self.size = size;
        let mut rest = chunk;
        while !rest.is_empty() {
            let take = (PART_SIZE - self.buffer.len()).min(rest.len());
            if self.buffer.capacity() < self.buffer.len() + take {
                // Grow towards one part, never past it.
                let wanted = (self.buffer.len() + take)
                    .next_power_of_two()
                    .min(PART_SIZE);
                self.buffer.reserve_exact(wanted - self.buffer.len());
            }
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == PART_SIZE
                && let Err(error) = self.send_part()
            {
                return Err(self.fail(error.into()));
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Box<dyn StagedUpload>, UploadError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let staged_at = match self.multipart.is_some() {
            false => {
                let store = Arc::clone(&self.client.store);
                let location = self.location.clone();
                let body = PutPayload::from(Bytes::from(std::mem::take(&mut self.buffer)));
                self.client
                    .wait(async move { store.put(&location, body).await })?
                    .map_err(|error| failed("cannot store an upload", &error))?;
                None
            }
            true => {
                if !self.buffer.is_empty() {
                    self.send_part()?;
                }
                if let Some(mut multipart) = self.multipart.take() {
                    let completed = self.client.wait(async move {
                        let completed = multipart.complete().await;
                        if completed.is_err() {
                            let _ = multipart.abort().await;
                        }
                        completed
                    })?;
                    completed.map_err(|error| failed("cannot complete an upload", &error))?;
                }
                Some(self.staging.clone())
            }
        };
        let upload = *self;
        Ok(Box::new(S3Staged {
            info: UploadedFile {
                size: upload.size,
                sha256: hex(&upload.hasher.clone().finalize()),
                content_type: upload.sniffer.verdict(),
                text_fit: upload.sniffer.text_fit(),
            },
            client: Arc::clone(&upload.client),
            key: upload.key.clone(),
            location: upload.location.clone(),
            staged_at,
            persisted: false,
        }))
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // Ended without completing: the parts sent so far are given up.
        if let Some(mut multipart) = self.multipart.take() {
            self.client.detach(async move {
                let _ = multipart.abort().await;
            });
        }
    }
}

/// A completed upload, not yet persisted: at its final key (one `PUT`),
/// or at `staged_at` (multipart) until it is copied there.
struct S3Staged {
    info: UploadedFile,
    client: Arc<Client>,
    key: StorageKey,
    location: Path,
    staged_at: Option<Path>,
    persisted: bool,
}

impl StagedUpload for S3Staged {
    fn file(&self) -> &UploadedFile {
        &self.info
    }

    fn persist(mut self: Box<Self>) -> Result<StorageKey, StorageError> {
        if let Some(staging) = self.staged_at.clone() {
            let store = Arc::clone(&self.client.store);
            let destination = self.location.clone();
            self.client
                .wait(async move { store.copy(&staging, &destination).await })?
                .map_err(|error| failed("cannot move an upload into place", &error))?;
        }
        self.persisted = true;
        Ok(self.key.clone())
    }
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        // A staged copy is never needed after this; an unpersisted one-PUT
        // file is not a stored file. (A failed delete is the sweep's.)
        let leftover = match (&self.staged_at, self.persisted) {
            (Some(staging), _) => Some(staging.clone()),
            (None, false) => Some(self.location.clone()),
            (None, true) => None,
        };
        if let Some(location) = leftover {
            let store = Arc::clone(&self.client.store);
            self.client.detach(async move {
                let _ = store.delete(&location).await;
            });
        }
    }
}

/// Reads an object by ranges of at most `chunk` bytes, so memory stays
/// flat whatever its size and each request ends quickly however slowly
/// the bytes are consumed.
struct ObjectReader {
    client: Arc<Client>,
    location: Path,
    size: u64,
    position: u64,
    chunk_size: u64,
    chunk: Bytes,
    chunk_start: u64,
}

impl ObjectReader {
    fn fetch(&mut self) -> io::Result<()> {
        let end = self.size.min(self.position.saturating_add(self.chunk_size));
        let store = Arc::clone(&self.client.store);
        let location = self.location.clone();
        let range = self.position..end;
        let bytes = self
            .client
            .wait(async move { store.get_range(&location, range).await })
            .map_err(io::Error::other)?
            .map_err(|error| match error {
                object_store::Error::NotFound { .. } => io::Error::new(
                    io::ErrorKind::NotFound,
                    "the stored object disappeared while it was read",
                ),
                other => io::Error::other(failed("cannot read a stored object", &other)),
            })?;
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stored object is shorter than it was",
            ));
        }
        self.chunk = bytes;
        self.chunk_start = self.position;
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.position >= self.size {
            return Ok(0);
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if self.position < self.chunk_start || self.position >= chunk_end {
            self.fetch()?;
        }
        let offset = usize::try_from(self.position - self.chunk_start).map_err(io::Error::other)?;
        let available = &self.chunk[offset..];
        let read = available.len().min(out.len());
        out[..read].copy_from_slice(&available[..read]);
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of a stored object",
            )
        })?;
        self.position = target;
        Ok(target)
    }
}

impl FileStorage for S3Storage {
    fn begin_upload(&self, max_bytes: u64) -> Result<Box<dyn UploadSink>, StorageError> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let key = StorageKey::parse(&id).map_err(|_| StorageError::InvalidKey(id.clone()))?;
        let location = self.client.file(&key)?;
        let staging = self.client.staging().join(key.as_str());
        Ok(Box::new(S3Upload {
            client: Arc::clone(&self.client),
            key,
            location,
            staging,
            hasher: Sha256::new(),
            sniffer: Sniffer::new(),
            size: 0,
            limit: max_bytes,
            buffer: Vec::new(),
            multipart: None,
            failed: None,
        }))
    }

    fn open(&self, key: &StorageKey) -> Result<Option<StoredFile>, StorageError> {
        let location = self.client.file(key)?;
        let Some(size) = self.client.size_of(&location)? else {
            return Ok(None);
        };
        Ok(Some(StoredFile {
            size,
            reader: Box::new(ObjectReader {
                client: Arc::clone(&self.client),
                location,
                size,
                position: 0,
                chunk_size: READ_CHUNK,
                chunk: Bytes::new(),
                chunk_start: 0,
            }),
        }))
    }

    fn inspect(&self, key: &StorageKey) -> Result<ObservedFile, StorageError> {
        let Ok(location) = self.client.file(key) else {
            return Ok(ObservedFile::Missing);
        };
        let Some(size) = self.client.size_of(&location)? else {
            return Ok(ObservedFile::Missing);
        };
        let reader = ObjectReader {
            client: Arc::clone(&self.client),
            location,
            size,
            position: 0,
            chunk_size: READ_CHUNK * 4,
            chunk: Bytes::new(),
            chunk_start: 0,
        };
        match measure(reader) {
            Ok((size, sha256, sniffer)) => Ok(ObservedFile::Present {
                size,
                sha256,
                content_type: sniffer.verdict(),
                text_fit: sniffer.text_fit(),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ObservedFile::Missing),
            Err(error) => Err(StorageError::Io(format!(
                "cannot read a stored object: {error}"
            ))),
        }
    }

    fn delete(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let location = self.client.file(key)?;
        self.client.remove(&location)
    }

    fn sweep_temporary(&self, min_age: Duration, dry_run: bool) -> Result<u64, StorageError> {
        // Completed uploads never persisted (a crash between the two);
        // incomplete multipart uploads are the lifecycle rule's.
        let dead = self.client.older_than(self.client.staging(), min_age)?;
        if dry_run {
            return Ok(dead.len() as u64);
        }
        let mut removed = 0;
        for key in dead {
            let location = self.client.staging().join(key.as_str());
            if self.client.remove(&location)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn stale_keys(&self, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
        self.client.older_than(self.client.files(), min_age)
    }

    fn quarantine(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let source = self.client.file(key)?;
        let destination = self.client.quarantined(key)?;
        let store = Arc::clone(&self.client.store);
        let copied = {
            let (source, destination) = (source.clone(), destination.clone());
            self.client
                .wait(async move { store.copy(&source, &destination).await })?
        };
        match copied {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(failed("cannot copy a file to quarantine", &error)),
        }
        // The copy is dated now, so its time in quarantine starts now.
        let store = Arc::clone(&self.client.store);
        match self
            .client
            .wait(async move { store.delete(&source).await })?
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(error) => {
                // Keep one copy only: the stored one stays where it was.
                let store = Arc::clone(&self.client.store);
                self.client.detach(async move {
                    let _ = store.delete(&destination).await;
                });
                Err(failed("cannot move a file to quarantine", &error))
            }
        }
    }

    fn expired_quarantine(&self, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
        self.client.older_than(self.client.quarantine(), min_age)
    }

    fn purge_quarantined(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let location = self.client.quarantined(key)?;
        self.client.remove(&location)
    }

    fn read_marker(&self) -> Result<Option<String>, StorageError> {
        let store = Arc::clone(&self.client.store);
        let location = self.client.marker();
        let read = self
            .client
            .wait(async move { store.get(&location).await?.bytes().await })?;
        match read {
            // A marker is one short line; anything else names no database of ours.
            Ok(bytes) => Ok(Some(
                String::from_utf8_lossy(&bytes[..bytes.len().min(256)])
                    .trim()
                    .to_owned(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(failed("cannot read the bucket's marker", &error)),
        }
    }

    fn write_marker(&self, identity: &DatabaseIdentity) -> Result<(), StorageError> {
        let store = Arc::clone(&self.client.store);
        let location = self.client.marker();
        let body = PutPayload::from(format!("{identity}\n").into_bytes());
        self.client
            .wait(async move { store.put(&location, body).await })?
            .map(drop)
            .map_err(|error| failed("cannot write the bucket's marker", &error))
    }
}
