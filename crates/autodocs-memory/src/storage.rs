//! File storage in memory: the bytes of each stored file in a map.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use autodocs_domain::document::{
    AllowedContentType, ObservedFile, StorageKey, TextFit, UploadedFile,
};
use autodocs_domain::instance::DatabaseIdentity;
use autodocs_domain::ports::{
    Clock, FileStorage, StagedUpload, StorageError, StoredFile, UploadError, UploadSink,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::state::{hex, random_hex};

/// A stored file.
#[derive(Debug, Clone)]
struct File {
    bytes: Arc<Vec<u8>>,
    /// When it was stored (or quarantined, for a quarantined file).
    touched: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Files {
    stored: BTreeMap<StorageKey, File>,
    quarantined: BTreeMap<StorageKey, File>,
    marker: Option<String>,
}

/// [`FileStorage`] keeping every file's bytes in memory.
///
/// Uploads are measured while they are written (size, SHA-256, and a
/// simple sniff of the type: PDF, PNG, JPEG, TIFF, WebP by their magic
/// bytes, UTF-8 text as plain text or JSON; office formats are not
/// recognised). A sink dropped before it is persisted leaves nothing
/// behind, so there are never temporary files to sweep. Ages (stale keys,
/// quarantine) are measured with the given [`Clock`]. Clones share the files.
#[derive(Clone)]
pub struct MemoryFileStorage {
    files: Arc<Mutex<Files>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryFileStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryFileStorage").finish_non_exhaustive()
    }
}

impl MemoryFileStorage {
    /// An empty storage whose ages are measured with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            files: Arc::new(Mutex::new(Files::default())),
            clock,
        }
    }

    /// Stores `bytes` directly under a fresh key (a test's shortcut past an upload).
    pub fn put(&self, bytes: impl Into<Vec<u8>>) -> Result<StorageKey, StorageError> {
        let now = self.clock.now();
        store(&self.files, bytes.into(), now)
    }

    /// The bytes of a stored file, if it is there.
    pub fn bytes(&self, key: &StorageKey) -> Option<Vec<u8>> {
        let files = self.lock().ok()?;
        files.stored.get(key).map(|file| file.bytes.to_vec())
    }

    /// How many files are stored (quarantined ones not counted).
    pub fn len(&self) -> usize {
        self.lock().map(|files| files.stored.len()).unwrap_or(0)
    }

    /// Whether no file is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<MutexGuard<'_, Files>, StorageError> {
        lock(&self.files)
    }

    /// Keys of `files` untouched for `min_age`.
    fn older_than(
        &self,
        files: &BTreeMap<StorageKey, File>,
        min_age: std::time::Duration,
    ) -> Vec<StorageKey> {
        let now = self.clock.now();
        let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        files
            .iter()
            .filter(|(_, file)| now.signed_duration_since(file.touched) >= min_age)
            .map(|(key, _)| key.clone())
            .collect()
    }
}

fn lock(files: &Mutex<Files>) -> Result<MutexGuard<'_, Files>, StorageError> {
    files
        .lock()
        .map_err(|_| StorageError::Io("the in-memory storage is poisoned".into()))
}

fn store(
    files: &Mutex<Files>,
    bytes: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<StorageKey, StorageError> {
    let id = random_hex(16);
    let key = StorageKey::parse(&id).map_err(|_| StorageError::InvalidKey(id.clone()))?;
    let mut files = lock(files)?;
    if files.stored.contains_key(&key) || files.quarantined.contains_key(&key) {
        return Err(StorageError::Io(format!("storage key {id} is taken")));
    }
    files.stored.insert(
        key.clone(),
        File {
            bytes: Arc::new(bytes),
            touched: now,
        },
    );
    Ok(key)
}

/// The type of `bytes` and the text-family members it fits.
pub(crate) fn sniff(bytes: &[u8]) -> (Option<AllowedContentType>, TextFit) {
    let binary = if bytes.starts_with(b"%PDF-") {
        Some(AllowedContentType::Pdf)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(AllowedContentType::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(AllowedContentType::Jpeg)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(AllowedContentType::Tiff)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(AllowedContentType::Webp)
    } else {
        None
    };
    if binary.is_some() {
        return (binary, TextFit::default());
    }
    if bytes.is_empty() || bytes.contains(&0) {
        return (None, TextFit::default());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (None, TextFit::default());
    };
    let trimmed = text.trim_start();
    let json = (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(text).is_ok();
    if json {
        (Some(AllowedContentType::Json), TextFit { json: true })
    } else {
        (Some(AllowedContentType::PlainText), TextFit::default())
    }
}

/// What [`FileStorage::inspect`] finds in `bytes`.
fn observe(bytes: &[u8]) -> ObservedFile {
    let (content_type, text_fit) = sniff(bytes);
    ObservedFile::Present {
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(bytes)),
        content_type,
        text_fit,
    }
}

impl FileStorage for MemoryFileStorage {
    fn begin_upload(&self, max_bytes: u64) -> Result<Box<dyn UploadSink>, StorageError> {
        Ok(Box::new(MemorySink {
            files: Arc::clone(&self.files),
            clock: Arc::clone(&self.clock),
            limit: max_bytes,
            bytes: Vec::new(),
            hasher: Sha256::new(),
            failed: None,
        }))
    }

    fn open(&self, key: &StorageKey) -> Result<Option<StoredFile>, StorageError> {
        let files = self.lock()?;
        Ok(files.stored.get(key).map(|file| StoredFile {
            size: file.bytes.len() as u64,
            reader: Box::new(std::io::Cursor::new(file.bytes.to_vec())),
        }))
    }

    fn inspect(&self, key: &StorageKey) -> Result<ObservedFile, StorageError> {
        let files = self.lock()?;
        Ok(match files.stored.get(key) {
            Some(file) => observe(&file.bytes),
            None => ObservedFile::Missing,
        })
    }

    fn delete(&self, key: &StorageKey) -> Result<bool, StorageError> {
        Ok(self.lock()?.stored.remove(key).is_some())
    }

    fn sweep_temporary(
        &self,
        _min_age: std::time::Duration,
        _dry_run: bool,
    ) -> Result<u64, StorageError> {
        // An unfinished upload lives only in its sink.
        Ok(0)
    }

    fn stale_keys(&self, min_age: std::time::Duration) -> Result<Vec<StorageKey>, StorageError> {
        let files = self.lock()?;
        Ok(self.older_than(&files.stored, min_age))
    }

    fn quarantine(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let now = self.clock.now();
        let mut files = self.lock()?;
        Ok(match files.stored.remove(key) {
            Some(mut file) => {
                file.touched = now;
                files.quarantined.insert(key.clone(), file);
                true
            }
            None => false,
        })
    }

    fn expired_quarantine(
        &self,
        min_age: std::time::Duration,
    ) -> Result<Vec<StorageKey>, StorageError> {
        let files = self.lock()?;
        Ok(self.older_than(&files.quarantined, min_age))
    }

    fn purge_quarantined(&self, key: &StorageKey) -> Result<bool, StorageError> {
        Ok(self.lock()?.quarantined.remove(key).is_some())
    }

    fn read_marker(&self) -> Result<Option<String>, StorageError> {
        Ok(self.lock()?.marker.clone())
    }

    fn write_marker(&self, identity: &DatabaseIdentity) -> Result<(), StorageError> {
        self.lock()?.marker = Some(identity.as_str().to_owned());
        Ok(())
    }
}

/// An upload being received into memory.
struct MemorySink {
    files: Arc<Mutex<Files>>,
    clock: Arc<dyn Clock>,
    limit: u64,
    bytes: Vec<u8>,
    hasher: Sha256,
    failed: Option<UploadError>,
}

impl UploadSink for MemorySink {
    fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.bytes.len() as u64 + chunk.len() as u64 > self.limit {
            let error = UploadError::TooLarge { limit: self.limit };
            self.failed = Some(error.clone());
            self.bytes = Vec::new();
            return Err(error);
        }
        self.hasher.update(chunk);
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Box<dyn StagedUpload>, UploadError> {
        let sink = *self;
        if let Some(error) = sink.failed {
            return Err(error);
        }
        let (content_type, text_fit) = sniff(&sink.bytes);
        Ok(Box::new(MemoryStaged {
            info: UploadedFile {
                size: sink.bytes.len() as u64,
                sha256: hex(&sink.hasher.finalize()),
                content_type,
                text_fit,
            },
            bytes: sink.bytes,
            files: sink.files,
            clock: sink.clock,
        }))
    }
}

/// A received upload, not yet stored under a key.
struct MemoryStaged {
    info: UploadedFile,
    bytes: Vec<u8>,
    files: Arc<Mutex<Files>>,
    clock: Arc<dyn Clock>,
}

impl StagedUpload for MemoryStaged {
    fn file(&self) -> &UploadedFile {
        &self.info
    }

    fn persist(self: Box<Self>) -> Result<StorageKey, StorageError> {
        let staged = *self;
        store(&staged.files, staged.bytes, staged.clock.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_knows_the_common_types() {
        let kind = |bytes: &[u8]| sniff(bytes).0;
        assert_eq!(kind(b"%PDF-1.7\n"), Some(AllowedContentType::Pdf));
        assert_eq!(
            kind(b"\x89PNG\r\n\x1a\n...."),
            Some(AllowedContentType::Png)
        );
        assert_eq!(
            kind(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(AllowedContentType::Jpeg)
        );
        assert_eq!(
            kind(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(AllowedContentType::Webp)
        );
        assert_eq!(kind(b"hello\n"), Some(AllowedContentType::PlainText));
        assert_eq!(
            sniff(b" {\"a\": 1}"),
            (Some(AllowedContentType::Json), TextFit { json: true })
        );
        assert_eq!(kind(b"{not json"), Some(AllowedContentType::PlainText));
        assert_eq!(kind(b""), None);
        assert_eq!(kind(b"bin\0ary"), None);
        assert_eq!(kind(&[0xC3, 0x28]), None);
    }

    #[test]
    fn uploads_refuse_bytes_past_the_limit() {
        let clock: Arc<dyn Clock> = Arc::new(crate::ManualClock::new(crate::epoch()));
        let storage = MemoryFileStorage::new(clock);
        let mut sink = storage.begin_upload(4).expect("a sink");
        sink.write(b"abc").expect("within the limit");
        assert_eq!(sink.write(b"de"), Err(UploadError::TooLarge { limit: 4 }));
        assert!(sink.finish().is_err());
        assert!(storage.is_empty());
        let mut sink = storage.begin_upload(4).expect("a sink");
        sink.write(b"abcd").expect("within the limit");
        let staged = sink.finish().expect("received");
        assert_eq!(staged.file().size, 4);
        assert_eq!(
            staged.file().sha256,
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
        );
        let key = staged.persist().expect("stored");
        assert_eq!(storage.bytes(&key), Some(b"abcd".to_vec()));
    }
}
