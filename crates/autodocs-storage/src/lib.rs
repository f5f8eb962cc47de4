//! File storage for AutoDocs: the domain's [`FileStorage`] port over a
//! local directory (`storage.media_root`, [`LocalStorage`]) or an
//! S3-compatible bucket (`storage.backend = "s3"`, [`s3::S3Storage`]).
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
//! - `.quarantine/documents/<uuid>`: stored files the sweep found
//!   unreferenced, moved here (never deleted at once) with their
//!   modification time set to the move, so an operator can move them back;
//!   deleted after the quarantine period.
//! - `.autodocs-instance`: the marker naming the database this media root
//!   belongs to (its identity, one line).
//!
//! What a crash leaves behind is handled by the sweep, whose rules live in
//! the domain: dead temporary files are deleted
//! ([`FileStorage::sweep_temporary`]), unreferenced stored files
//! quarantined ([`FileStorage::stale_keys`], [`FileStorage::quarantine`]).
//! Listing never follows a symbolic link: a link among the files is not a
//! stored file, and a linked directory is refused.
#![warn(missing_docs)]

pub mod s3;
pub mod sniff;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use autodocs_domain::document::{ObservedFile, StorageKey, UploadedFile};
use autodocs_domain::instance::DatabaseIdentity;
use autodocs_domain::ports::{
    FileStorage, StagedUpload, StorageError, StoredFile, UploadError, UploadSink,
};
use sha2::{Digest, Sha256};

use crate::sniff::Sniffer;

/// The directory of uploads in progress, under the root.
pub const TEMPORARY_DIR: &str = ".tmp";

/// The directory of stored files, under the root.
pub const FILES_DIR: &str = "documents";

/// The quarantine directory, under the root (it holds `documents/<key>`).
pub const QUARANTINE_DIR: &str = ".quarantine";

/// The marker naming the database this root belongs to, under the root.
pub const MARKER_FILE: &str = ".autodocs-instance";

/// The suffix of temporary files.
const PART_SUFFIX: &str = ".part";

/// An upload being received touches its temporary file (by flushing what
/// it buffered) at least this often while bytes arrive, so the sweep's age
/// test sees it alive however slowly it comes.
const TOUCH_INTERVAL: Duration = Duration::from_secs(5);

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

/// Lists a directory the sweep works in; `None` when it does not exist.
/// A directory that is a symbolic link is refused: the sweep never moves
/// or deletes anything outside the root.
fn sweep_entries(dir: &Path, what: &str) -> Result<Option<fs::ReadDir>, StorageError> {
    match fs::symlink_metadata(dir) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(StorageError::Io(format!(
                "the {what} {} is a symbolic link; the sweep does not follow links",
                dir.display()
            )));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&format!("cannot inspect the {what}"), error)),
    }
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(&format!("cannot list the {what}"), error)),
    }
}

/// The storage keys of the regular files (not links) in `dir` whose
/// modification is at least `min_age` old.
fn stale_files(dir: &Path, what: &str, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
    let Some(entries) = sweep_entries(dir, what)? else {
        return Ok(Vec::new());
    };
    let now = SystemTime::now();
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| io_error(&format!("cannot list the {what}"), error))?;
        let Some(key) = entry
            .file_name()
            .to_str()
            .and_then(|name| StorageKey::parse(name).ok())
            .filter(is_canonical_key)
        else {
            continue;
        };
        // `DirEntry::metadata` does not follow links: a link is no file of ours.
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

/// Whether a key is one this storage issues (a canonical hyphenated UUID).
fn is_canonical_key(key: &StorageKey) -> bool {
    uuid::Uuid::try_parse(key.as_str()).is_ok_and(|id| id.hyphenated().to_string() == key.as_str())
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

    /// The quarantine directory of stored files (`.quarantine/documents`).
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join(QUARANTINE_DIR).join(FILES_DIR)
    }

    /// The marker file naming the database this root belongs to.
    pub fn marker_path(&self) -> PathBuf {
        self.root.join(MARKER_FILE)
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
        if is_canonical_key(key) {
            Ok(self.files_dir().join(key.as_str()))
        } else {
            Err(StorageError::InvalidKey(key.as_str().to_owned()))
        }
    }

    /// The path of a quarantined file (same rule as [`Self::path_of`]).
    pub fn quarantined_path_of(&self, key: &StorageKey) -> Result<PathBuf, StorageError> {
        if is_canonical_key(key) {
            Ok(self.quarantine_dir().join(key.as_str()))
        } else {
            Err(StorageError::InvalidKey(key.as_str().to_owned()))
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
    /// When the file was last written to (its modification time).
    touched: std::time::Instant,
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
        // A slow upload may fill the buffer only after minutes: flush now
        // and then so its file looks alive to the sweep of dead uploads.
        if !chunk.is_empty() && self.touched.elapsed() >= TOUCH_INTERVAL {
            if let Err(error) = self.file.flush() {
                let error = UploadError::Storage(io_error("cannot write the upload", error));
                self.failed = Some(error.clone());
                return Err(error);
            }
            self.touched = std::time::Instant::now();
        }
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
            touched: std::time::Instant::now(),
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

    fn sweep_temporary(&self, min_age: Duration, dry_run: bool) -> Result<u64, StorageError> {
        let Some(entries) = sweep_entries(&self.temporary_dir(), "temporary directory")? else {
            return Ok(0);
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|error| io_error("cannot list temporary files", error))?;
            // Only our own temporary files: `<anything>.part`, regular files.
            let is_part = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.ends_with(PART_SUFFIX));
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if is_part
                && metadata.is_file()
                && is_stale(&metadata, min_age, now)
                && (dry_run || fs::remove_file(entry.path()).is_ok())
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn stale_keys(&self, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
        stale_files(&self.files_dir(), "files directory", min_age)
    }

    fn quarantine(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let source = self.path_of(key)?;
        match fs::symlink_metadata(&source) {
            Ok(metadata) if metadata.is_file() => {}
            // A link or a directory is not a stored file: leave it.
            Ok(_) => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(io_error("cannot inspect a stored file", error)),
        }
        let quarantine_root = self.root.join(QUARANTINE_DIR);
        for dir in [&quarantine_root, &self.quarantine_dir()] {
            if fs::symlink_metadata(dir).is_ok_and(|metadata| !metadata.is_dir()) {
                return Err(StorageError::Io(format!(
                    "{} is not a directory (a link?); the sweep does not follow links",
                    dir.display()
                )));
            }
        }
        let dir = self.quarantine_dir();
        fs::create_dir_all(&dir)
            .map_err(|error| io_error("cannot create the quarantine directory", error))?;
        let destination = self.quarantined_path_of(key)?;
        match fs::rename(&source, &destination) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(io_error("cannot move a file to quarantine", error)),
        }
        // Its time in quarantine starts now (the file itself may be old):
        // without this, an old orphan would be deleted by the next sweep.
        let touched = File::open(&destination)
            .and_then(|file| file.set_modified(SystemTime::now()))
            .and_then(|()| sync_dir(&dir))
            .and_then(|()| sync_dir(&self.files_dir()));
        if let Err(error) = touched {
            // Put it back rather than leave it to an early purge.
            let _ = fs::rename(&destination, &source);
            return Err(io_error("cannot date a quarantined file", error));
        }
        Ok(true)
    }

    fn expired_quarantine(&self, min_age: Duration) -> Result<Vec<StorageKey>, StorageError> {
        if fs::symlink_metadata(self.root.join(QUARANTINE_DIR))
            .is_ok_and(|metadata| metadata.file_type().is_symlink())
        {
            return Err(StorageError::Io(
                "the quarantine directory is a symbolic link; the sweep does not follow links"
                    .to_owned(),
            ));
        }
        stale_files(&self.quarantine_dir(), "quarantine directory", min_age)
    }

    fn purge_quarantined(&self, key: &StorageKey) -> Result<bool, StorageError> {
        let path = self.quarantined_path_of(key)?;
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => return Ok(false),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(io_error("cannot inspect a quarantined file", error)),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error("cannot delete a quarantined file", error)),
        }
    }

    fn read_marker(&self) -> Result<Option<String>, StorageError> {
        let path = self.marker_path();
        if fs::symlink_metadata(&path).is_ok_and(|metadata| !metadata.is_file()) {
            // A link or directory in its place is no marker of ours, but is
            // not "no marker" either: it names no database we know.
            return Ok(Some(format!("<{} is not a regular file>", MARKER_FILE)));
        }
        match fs::read(&path) {
            // A marker is one short line; anything else names no database of ours.
            Ok(bytes) => Ok(Some(
                String::from_utf8_lossy(&bytes[..bytes.len().min(256)])
                    .trim()
                    .to_owned(),
            )),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error("cannot read the media root marker", error)),
        }
    }

    fn write_marker(&self, identity: &DatabaseIdentity) -> Result<(), StorageError> {
        fs::create_dir_all(&self.root)
            .map_err(|error| io_error("cannot create the media root", error))?;
        // Written aside, then renamed: a crash never leaves half a marker.
        let temporary = self
            .root
            .join(format!("{MARKER_FILE}.{}.new", uuid::Uuid::new_v4()));
        let written = create_private(&temporary).and_then(|mut file| {
            file.write_all(format!("{identity}\n").as_bytes())?;
            file.sync_all()
        });
        let placed = written
            .and_then(|()| fs::rename(&temporary, self.marker_path()))
            .and_then(|()| sync_dir(&self.root));
        if let Err(error) = placed {
            let _ = fs::remove_file(&temporary);
            return Err(io_error("cannot write the media root marker", error));
        }
        Ok(())
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
        assert_eq!(
            storage.sweep_temporary(Duration::from_secs(60), false),
            Ok(0)
        );
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
        assert_eq!(
            storage.sweep_temporary(Duration::from_secs(60), true),
            Ok(1)
        );
        assert_eq!(
            entries(&storage.temporary_dir()).len(),
            1,
            "a dry run deletes nothing"
        );
        assert_eq!(
            storage.sweep_temporary(Duration::from_secs(60), false),
            Ok(1)
        );
        assert!(entries(&storage.temporary_dir()).is_empty());
    }

    fn backdate(path: &Path, age: Duration) {
        File::open(path)
            .and_then(|file| file.set_modified(SystemTime::now() - age))
            .expect("backdate");
    }

    fn stored(storage: &LocalStorage, bytes: &[u8]) -> StorageKey {
        let mut sink = storage.begin_upload(1024).expect("begin");
        sink.write(bytes).expect("write");
        sink.finish().expect("finish").persist().expect("persist")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn quarantine_keeps_the_file_and_dates_it_from_the_move() {
        let (_dir, storage) = storage();
        let key = stored(&storage, TEXT);
        backdate(&storage.path_of(&key).expect("path"), 30 * 24 * HOUR);
        assert_eq!(storage.stale_keys(HOUR), Ok(vec![key.clone()]));

        assert_eq!(storage.quarantine(&key), Ok(true));
        assert_eq!(storage.quarantine(&key), Ok(false), "already moved");
        let moved = storage.quarantined_path_of(&key).expect("path");
        assert_eq!(fs::read(&moved).expect("kept"), TEXT);
        assert!(storage.open(&key).expect("open").is_none());
        // Quarantined files are not stored files, and their age restarts.
        assert_eq!(storage.stale_keys(Duration::ZERO), Ok(Vec::new()));
        assert_eq!(storage.expired_quarantine(HOUR), Ok(Vec::new()));

        backdate(&moved, 8 * 24 * HOUR);
        assert_eq!(
            storage.expired_quarantine(7 * 24 * HOUR),
            Ok(vec![key.clone()])
        );
        assert_eq!(storage.purge_quarantined(&key), Ok(true));
        assert_eq!(storage.purge_quarantined(&key), Ok(false));
        assert!(!moved.exists());
    }

    #[test]
    fn only_old_part_files_are_deleted() {
        let (_dir, storage) = storage();
        let old_part = storage.temporary_dir().join("dead.part");
        let young_part = storage.temporary_dir().join("alive.part");
        let other = storage.temporary_dir().join("notes.txt");
        for path in [&old_part, &young_part, &other] {
            fs::write(path, b"x").expect("write");
        }
        backdate(&old_part, Duration::from_secs(120));
        backdate(&young_part, Duration::from_secs(20));
        backdate(&other, 24 * HOUR);
        assert_eq!(
            storage.sweep_temporary(Duration::from_secs(90), false),
            Ok(1)
        );
        assert!(!old_part.exists());
        assert!(young_part.exists());
        assert!(other.exists(), "not a temporary file of ours");
    }

    #[test]
    fn a_slow_upload_keeps_its_file_fresh() {
        let (_dir, storage) = storage();
        let mut sink = storage.begin_upload(1024).expect("begin");
        sink.write(b"first").expect("write");
        let part = fs::read_dir(storage.temporary_dir())
            .expect("list")
            .next()
            .expect("one file")
            .expect("entry")
            .path();
        backdate(&part, HOUR);
        std::thread::sleep(TOUCH_INTERVAL + Duration::from_millis(100));
        sink.write(b"second").expect("write");
        assert_eq!(
            storage.sweep_temporary(Duration::from_secs(60), false),
            Ok(0)
        );
        let key = sink.finish().expect("finish").persist().expect("persist");
        assert_eq!(
            fs::read(storage.path_of(&key).expect("path")).expect("read"),
            b"firstsecond"
        );
    }

    #[test]
    fn the_marker_round_trips() {
        let (_dir, storage) = storage();
        assert_eq!(storage.read_marker(), Ok(None));
        let identity = DatabaseIdentity::parse("0f1e2d3c4b5a69788796a5b4c3d2e1f0").expect("id");
        storage.write_marker(&identity).expect("write");
        assert_eq!(
            storage.read_marker(),
            Ok(Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_owned()))
        );
        assert_eq!(
            fs::read_to_string(storage.marker_path()).expect("marker"),
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0\n"
        );
        // Nothing but the marker itself is left at the root.
        let mut expected = vec![MARKER_FILE, TEMPORARY_DIR, FILES_DIR];
        expected.sort_unstable();
        assert_eq!(entries(storage.root()), expected);
    }

    #[cfg(unix)]
    #[test]
    fn the_sweep_never_follows_links_out_of_the_root() {
        let (dir, storage) = storage();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).expect("outside");
        let precious = outside.join("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        fs::write(&precious, b"precious").expect("write");
        backdate(&precious, 24 * HOUR);
        // A link among the stored files, named like a key.
        let link = storage
            .files_dir()
            .join("b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        std::os::unix::fs::symlink(&precious, &link).expect("link");
        assert_eq!(storage.stale_keys(Duration::ZERO), Ok(Vec::new()));
        let key = StorageKey::parse("b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").expect("key");
        assert_eq!(storage.quarantine(&key), Ok(false));
        // A linked quarantine directory is refused.
        std::os::unix::fs::symlink(&outside, storage.root().join(QUARANTINE_DIR)).expect("link");
        assert!(storage.expired_quarantine(Duration::ZERO).is_err());
        let real = stored(&storage, TEXT);
        assert!(storage.quarantine(&real).is_err());
        assert!(storage.path_of(&real).expect("path").exists());
        assert_eq!(fs::read(&precious).expect("untouched"), b"precious");
        assert_eq!(entries(&outside).len(), 1);
    }
}
