//! File storage for AutoDocs: the domain's
//! [`FileStorage`](autodocs_domain::ports::FileStorage) port over a local
//! directory (`storage.media_root`).
//!
//! Layout under the root:
//!
//! - `.tmp/<uuid>.part`: uploads being received. Each is created fresh
//!   (`create_new`, mode 0600), written while its size is counted, its
//!   SHA-256 computed and its type sniffed ([`sniff`]), then fsynced. A
//!   guard deletes it on every path that does not persist it (error, limit
//!   passed, client gone, panic).
//! - `documents/<uuid>`: stored files. A finished upload is renamed here
//!   under a fresh UUID (the storage key) and the directory fsynced, so a
//!   stored file is always complete. Nothing a client sends ever becomes
//!   part of a path.
//!
//! What a crash leaves behind (a temporary file, or a stored file whose row
//! never committed or was deleted) is removed by the sweep
//! ([`FileStorage::sweep_temporary`], [`FileStorage::stale_keys`]).
#![warn(missing_docs)]

pub mod sniff;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use autodocs_domain::document::{ObservedFile, StorageKey, UploadedFile};
use autodocs_domain::ports::{
    FileStorage, StagedUpload, StorageError, StoredFile, UploadError, UploadSink,
};
use sha2::{Digest, Sha256};

use crate::sniff::Sniffer;

/// The directory of uploads in progress, under the root.
pub const TEMPORARY_DIR: &str = ".tmp";

/// The directory of stored files, under the root.
pub const FILES_DIR: &str = "documents";

/// The suffix of temporary files.
const PART_SUFFIX: &str = ".part";

/// Write buffer of an upload, and read buffer of a verification.
const BUFFER: usize = 256 * 1024;

fn io_error(context: &str, error: io::Error) -> StorageError {
    StorageError::Io(format!("{context}: {error}"))
}

/// Lower-case hex of a digest.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Flushes a directory's entries (a rename or create in it) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Creates a file that must not exist yet, readable by its owner only.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Whether a directory entry was last modified at least `min_age` ago.
fn is_stale(metadata: &fs::Metadata, min_age: Duration, now: SystemTime) -> bool {
    metadata
        .modified()
        .ok()
        .and_then(|modified| now.duration_since(modified).ok())
        .is_some_and(|age| age >= min_age)
}

/// Documents in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage under `root` (created on [`prepare`](Self::prepare) or first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of uploads in progress.
    pub fn temporary_dir(&self) -> PathBuf {
        self.root.join(TEMPORARY_DIR)
    }

    /// The directory of stored files.
    pub fn files_dir(&self) -> PathBuf {
        self.root.join(FILES_DIR)
    }

    /// Creates the directories, so that a root that cannot be written to
    /// fails at start-up rather than on the first upload.
    pub fn prepare(&self) -> io::Result<()> {
        fs::create_dir_all(self.temporary_dir())?;
        fs::create_dir_all(self.files_dir())?;
        // Probe that files can be created there.
        let probe = self
            .temporary_dir()
            .join(format!("probe-{}{PART_SUFFIX}", uuid::Uuid::new_v4()));
        create_private(&probe)?;
        fs::remove_file(&probe)
    }

    /// The path of a stored file. Only canonical UUIDs are keys of this
    /// storage, so a key can never leave the files directory.
    pub fn path_of(&self, key: &StorageKey) -> Result<PathBuf, StorageError> {
        match uuid::Uuid::try_parse(key.as_str()) {
            Ok(id) if id.hyphenated().to_string() == key.as_str() => {
                Ok(self.files_dir().join(key.as_str()))
            }
            _ => Err(StorageError::InvalidKey(key.as_str().to_owned())),
        }
    }
}

/// Deletes a temporary file when dropped, unless disarmed.
#[derive(Debug)]
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// An upload being received into `.tmp/`.
struct LocalUpload {
    // Declared before the guard: the file closes before it is deleted.
    file: BufWriter<File>,
    guard: TempGuard,
    hasher: Sha256,
    sniffer: Sniffer,
    size: u64,
    limit: u64,
    files_dir: PathBuf,
    failed: Option<UploadError>,
}

impl UploadSink for LocalUpload {
    fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let size = self.size + chunk.len() as u64;
        if size > self.limit {
            let error = UploadError::TooLarge { limit: self.limit };
            self.failed = Some(error.clone());
            return Err(error);
        }
        if let Err(error) = self.file.write_all(chunk) {
            let error = UploadError::Storage(io_error("cannot write the upload", error));
            self.failed = Some(error.clone());
            return Err(error);
        }
        self.hasher.update(chunk);
        self.sniffer.feed(chunk);
        self.size = size;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Box<dyn StagedUpload>, UploadError> {
        let upload = *self;
        if let Some(error) = upload.failed {
            return Err(error);
        }
        let file = upload
            .file
            .into_inner()
            .map_err(|error| io_error("cannot flush the upload", error.into_error()))?;
        file.sync_all()
            .map_err(|error| io_error("cannot sync the upload", error))?;
        drop(file);
        Ok(Box::new(LocalStaged {
            info: UploadedFile {
                size: upload.size,
                sha256: hex(&upload.hasher.finalize()),
                content_type: upload.sniffer.verdict(),
                text_fit: upload.sniffer.text_fit(),
            },
            guard: upload.guard,
            files_dir: upload.files_dir,
        }))
    }
}

/// A received upload, still in `.tmp/`.
struct LocalStaged {
    info: UploadedFile,
    guard: TempGuard,
    files_dir: PathBuf,
}

impl StagedUpload for LocalStaged {
    fn file(&self) -> &UploadedFile {
        &self.info
    }

    fn persist(self: Box<Self>) -> Result<StorageKey, StorageError> {
        let mut staged = *self;
        fs::create_dir_all(&staged.files_dir)
            .map_err(|error| io_error("cannot create the files directory", error))?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let key = StorageKey::parse(&id).map_err(|_| StorageError::InvalidKey(id.clone()))?;
        let destination = staged.files_dir.join(&id);
        if destination.exists() {
            return Err(StorageError::Io(format!("storage key {id} is taken")));
        }
        fs::rename(&staged.guard.path, &destination)
            .map_err(|error| io_error("cannot move the upload into place", error))?;
        staged.guard.armed = false;
        if let Err(error) = sync_dir(&staged.files_dir) {
            // Not durable: take it back out rather than leave it half-stored.
            let _ = fs::remove_file(&destination);
            return Err(io_error("cannot sync the files directory", error));
        }
        Ok(key)
    }
}

/// Hashes, sizes and sniffs everything `reader` yields.
fn measure(mut reader: impl Read) -> io::Result<(u64, String, Sniffer)> {
    let mut hasher = Sha256::new();
    let mut sniffer = Sniffer::new();
    let mut buffer = vec![0; BUFFER];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        sniffer.feed(&buffer[..read]);
    }
    Ok((sniffer.size(), hex(&hasher.finalize()), sniffer))
}

impl FileStorage for LocalStorage {
    fn begin_upload(&self, max_bytes: u64) -> Result<Box<dyn UploadSink>, StorageError> {
        let dir = self.temporary_dir();
        fs::create_dir_all(&dir)
            .map_err(|error| io_error("cannot create the temporary directory", error))?;
        let path = dir.join(format!("{}{PART_SUFFIX}", uuid::Uuid::new_v4()));
        let file = create_private(&path)
            .map_err(|error| io_error("cannot create a temporary file", error))?;
        Ok(Box::new(LocalUpload {
            file: BufWriter::with_capacity(BUFFER, file),
            guard: TempGuard { path, armed: true },
            hasher: Sha256::new(),
            sniffer: Sniffer::new(),
            size: 0,
            limit: max_bytes,
            files_dir: self.files_dir(),
            failed: None,
        }))
    }

    fn open(&self, key: &StorageKey) -> Result<Option<StoredFile>, StorageError> {
        let path = self.path_of(key)?;
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("cannot open a stored file", error)),
        };
        let size = file
            .metadata()
            .map_err(|error| io_error("cannot stat a stored file", error))?
            .len();
        Ok(Some(StoredFile {
            size,
            reader: Box::new(file),
        }))
    }

    fn inspect(&self, key: &StorageKey) -> Result<ObservedFile, StorageError> {
        let Ok(path) = self.path_of(key) else {
            // A key this storage never issues names no file of it.
            return Ok(ObservedFile::Missing);
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(ObservedFile::Missing);
            }
            Err(error) => return Err(io_error("cannot open a stored file", error)),
        };
        let (size, sha256, sniffer) =
            measure(file).map_err(|error| io_error("cannot read a stored file", error))?;
        Ok(ObservedFile::Present {
            size,
            sha256,
            content_type: sniffer.verdict(),
            text_fit: sniffer.text_fit(),
        })
    }

    fn delete(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error("cannot delete a stored file", error)),
        }
    }

    fn sweep_temporary(&self, min_age: Duration) -> Result<u64, StorageError> {
        let entries = match fs::read_dir(self.temporary_dir()) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(io_error("cannot list the temporary directory", error)),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|error| io_error("cannot list temporary files", error))?;
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_file()
                && is_stale(&metadata, min_age, now)
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn stale_keys(&self, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
        let entries = match fs::read_dir(self.files_dir()) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("cannot list the files directory", error)),
        };
        let now = SystemTime::now();
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| io_error("cannot list stored files", error))?;
            let Some(key) = entry
                .file_name()
                .to_str()
                .and_then(|name| StorageKey::parse(name).ok())
            else {
                continue;
            };
            if self.path_of(&key).is_err() {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_file() && is_stale(&metadata, min_age, now) {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom};

    use autodocs_domain::document::AllowedContentType;

    use super::*;

    fn storage() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = LocalStorage::new(dir.path().join("media"));
        storage.prepare().expect("prepare");
        (dir, storage)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    const TEXT: &[u8] = b"Quarterly statement\nAll good.\n";

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn upload_persist_open_inspect_delete() {
        let (_dir, storage) = storage();
        let mut sink = storage.begin_upload(1024).expect("begin");
        for piece in TEXT.chunks(7) {
            sink.write(piece).expect("write");
        }
        assert_eq!(entries(&storage.temporary_dir()).len(), 1);
        let staged = sink.finish().expect("finish");
        assert_eq!(staged.file().size, TEXT.len() as u64);
        assert_eq!(staged.file().sha256, sha256_hex(TEXT));
        assert_eq!(
            staged.file().content_type,
            Some(AllowedContentType::PlainText)
        );
        let key = staged.persist().expect("persist");
        assert!(entries(&storage.temporary_dir()).is_empty());
        assert_eq!(entries(&storage.files_dir()), vec![key.as_str().to_owned()]);

        let mut opened = storage.open(&key).expect("open").expect("present");
        assert_eq!(opened.size, TEXT.len() as u64);
        opened.reader.seek(SeekFrom::Start(8)).expect("seek");
        let mut rest = String::new();
        opened.reader.read_to_string(&mut rest).expect("read");
        assert_eq!(rest.as_bytes(), &TEXT[8..]);

        assert_eq!(
            storage.inspect(&key).expect("inspect"),
            ObservedFile::Present {
                size: TEXT.len() as u64,
                sha256: sha256_hex(TEXT),
                content_type: Some(AllowedContentType::PlainText),
                text_fit: autodocs_domain::document::TextFit { json: false },
            }
        );
        assert!(storage.delete(&key).expect("delete"));
        assert!(!storage.delete(&key).expect("delete again"));
        assert!(storage.open(&key).expect("open").is_none());
        assert_eq!(
            storage.inspect(&key).expect("inspect"),
            ObservedFile::Missing
        );
    }

    #[test]
    fn a_dropped_or_refused_upload_leaves_nothing() {
        let (_dir, storage) = storage();
        let mut sink = storage.begin_upload(1024).expect("begin");
        sink.write(b"partial").expect("write");
        drop(sink);
        assert!(entries(&storage.temporary_dir()).is_empty());

        let mut sink = storage.begin_upload(10).expect("begin");
        sink.write(b"0123456789").expect("exactly the limit");
        assert_eq!(sink.write(b"x"), Err(UploadError::TooLarge { limit: 10 }));
        assert!(sink.finish().is_err());
        assert!(entries(&storage.temporary_dir()).is_empty());

        let mut sink = storage.begin_upload(1024).expect("begin");
        sink.write(b"staged, never stored").expect("write");
        drop(sink.finish().expect("finish"));
        assert!(entries(&storage.temporary_dir()).is_empty());
        assert!(entries(&storage.files_dir()).is_empty());
    }

    #[test]
    fn inspect_sees_changes() {
        let (_dir, storage) = storage();
        let mut sink = storage.begin_upload(1024).expect("begin");
        sink.write(TEXT).expect("write");
        let key = sink.finish().expect("finish").persist().expect("persist");
        let path = storage.path_of(&key).expect("path");
        fs::write(&path, b"\x7fELF\x02\x01\x01\x00").expect("tamper");
        match storage.inspect(&key).expect("inspect") {
            ObservedFile::Present {
                size, content_type, ..
            } => {
                assert_eq!(size, 8);
                assert_eq!(content_type, None);
            }
            ObservedFile::Missing => panic!("the file is there"),
        }
    }

    #[test]
    fn keys_never_leave_the_files_directory() {
        let (_dir, storage) = storage();
        for key in [
            "etc",
            "file_1",
            "0123-abc",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        ] {
            let key = StorageKey::parse(key).expect("a well-formed key");
            assert!(storage.path_of(&key).is_err(), "{key}");
            assert_eq!(
                storage.inspect(&key).expect("inspect"),
                ObservedFile::Missing
            );
            assert!(storage.delete(&key).is_err());
        }
        assert!(StorageKey::parse("../etc/passwd").is_err());
        assert!(StorageKey::parse("a/b").is_err());
    }

    #[test]
    fn sweeps_spare_fresh_files() {
        let (_dir, storage) = storage();
        let mut sink = storage.begin_upload(1024).expect("begin");
        sink.write(TEXT).expect("write");
        let key = sink.finish().expect("finish").persist().expect("persist");
        let leftover = storage.temporary_dir().join("dead.part");
        fs::write(&leftover, b"half an upload").expect("leftover");
        fs::write(storage.files_dir().join("not-a-key.txt"), b"x").expect("stray");

        // Everything is fresh: nothing goes.
        assert_eq!(storage.sweep_temporary(Duration::from_secs(60)), Ok(0));
        assert_eq!(storage.stale_keys(Duration::from_secs(60)), Ok(Vec::new()));

        // Backdate them.
        let old = SystemTime::now() - Duration::from_secs(3600);
        for path in [leftover.clone(), storage.path_of(&key).expect("path")] {
            File::options()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(old))
                .expect("backdate");
        }
        assert_eq!(storage.stale_keys(Duration::from_secs(60)), Ok(vec![key]));
        assert_eq!(storage.sweep_temporary(Duration::from_secs(60)), Ok(1));
        assert!(entries(&storage.temporary_dir()).is_empty());
    }
}
