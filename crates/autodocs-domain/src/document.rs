//! Documents: uploaded files, their names, types and verification.
//!
//! The bytes live in storage behind a port; this module holds what can be
//! decided without them: valid names, the client's file name made harmless
//! ([`OriginalFilename::sanitize`]), the allowed sniffed content types, the
//! verification status machine and the verdict of a re-read ([`judge`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::ids::{DocumentId, MissionId};
use crate::paging::PageRequest;
use crate::text::text_value;
use crate::transition::InvalidTransition;
use crate::user::UserId;
use crate::validation::InvalidValue;

/// What a document is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    /// `tax_return`.
    TaxReturn,
    /// `bank_statement`.
    BankStatement,
    /// `identity`.
    Identity,
    /// `invoice`.
    Invoice,
    /// `receipt`.
    Receipt,
    /// `contract`.
    Contract,
    /// `certificate`.
    Certificate,
    /// `other`; the default.
    #[default]
    Other,
}

impl DocumentType {
    /// Every document type.
    pub const ALL: [DocumentType; 8] = [
        DocumentType::TaxReturn,
        DocumentType::BankStatement,
        DocumentType::Identity,
        DocumentType::Invoice,
        DocumentType::Receipt,
        DocumentType::Contract,
        DocumentType::Certificate,
        DocumentType::Other,
    ];

    /// The wire name, e.g. `tax_return`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocumentType::TaxReturn => "tax_return",
            DocumentType::BankStatement => "bank_statement",
            DocumentType::Identity => "identity",
            DocumentType::Invoice => "invoice",
            DocumentType::Receipt => "receipt",
            DocumentType::Contract => "contract",
            DocumentType::Certificate => "certificate",
            DocumentType::Other => "other",
        }
    }

    /// The type with this exact wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }
}

impl fmt::Display for DocumentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocumentType {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// Whether a document passed its last verification.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Stored, never verified; the status of every new document.
    #[default]
    Uploaded,
    /// The last verification found the file as recorded.
    Verified,
    /// The last verification found the file missing or changed.
    Rejected,
}

impl DocumentStatus {
    /// Every status.
    pub const ALL: [DocumentStatus; 3] = [
        DocumentStatus::Uploaded,
        DocumentStatus::Verified,
        DocumentStatus::Rejected,
    ];

    /// The wire name: `uploaded`, `verified` or `rejected`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Uploaded => "uploaded",
            DocumentStatus::Verified => "verified",
            DocumentStatus::Rejected => "rejected",
        }
    }

    /// The status with this exact wire name.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| InvalidValue::invalid_choice(raw))
    }

    /// The `verified` flag of the API: whether the status is `verified`.
    pub const fn is_verified(self) -> bool {
        matches!(self, DocumentStatus::Verified)
    }

    /// The status after a verification that found the file as recorded.
    ///
    /// Verification may run from every status: `uploaded` → `verified`, and a
    /// `verified` or `rejected` document may be verified again, since the
    /// stored file may have changed (or been restored) since. So this never
    /// fails today; it returns a `Result` so that the rule can tighten
    /// without changing callers.
    pub fn verify(self) -> Result<DocumentStatus, InvalidTransition> {
        Ok(DocumentStatus::Verified)
    }

    /// The status after a verification that found the file missing or
    /// changed: `rejected`, from every status (see [`verify`](Self::verify)).
    pub fn reject(self) -> Result<DocumentStatus, InvalidTransition> {
        Ok(DocumentStatus::Rejected)
    }

    /// The status after a verification with this outcome.
    pub fn apply(self, outcome: &VerificationOutcome) -> Result<DocumentStatus, InvalidTransition> {
        match outcome {
            VerificationOutcome::Verified => self.verify(),
            VerificationOutcome::Rejected(_) => self.reject(),
        }
    }
}

impl fmt::Display for DocumentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocumentStatus {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// Characters that can make a name display as something else: the Unicode
/// bidirectional embeddings, overrides and isolates (e.g. `U+202E`, which
/// turns `invoice\u{202E}fdp.exe` into "invoiceexe.pdf" on screen).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters never allowed in a document name or file name: control
/// characters (including NUL, newlines, tabs) and bidi controls.
fn is_forbidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// `as_str`, `Display`, `AsRef<str>`, `From<String>` via `sanitize`, `Into<String>`.
macro_rules! text_value_infallible {
    ($name:ident) => {
        impl $name {
            /// The sanitised text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The sanitised text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(raw: String) -> Self {
                Self::sanitize(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// The display name of a document: 1–255 characters after trimming, without
/// control characters (NUL, newlines, tabs, …) or bidirectional controls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DocumentName(String);

impl DocumentName {
    /// The most characters a name may have.
    pub const MAX_CHARS: usize = 255;

    /// Trims `raw` and checks it is non-blank, at most 255 characters and
    /// free of control characters (refused, not removed).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue::blank());
        }
        if trimmed.chars().any(is_forbidden) {
            return Err(InvalidValue::new("Control characters are not allowed."));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::too_long(Self::MAX_CHARS));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The default name of an upload: its sanitised file name (always a valid name).
    pub fn from_filename(filename: &OriginalFilename) -> Self {
        Self(filename.as_str().to_owned())
    }
}
text_value!(DocumentName);

/// A client's file name made harmless, for display and `Content-Disposition`
/// only: the stored path is always chosen by the server.
///
/// Built by [`sanitize`](Self::sanitize), which never fails. The result is
/// non-empty, at most 255 characters, contains no `/`, `\`, control or bidi
/// control characters, and neither starts nor ends with a dot or whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub struct OriginalFilename(String);

impl OriginalFilename {
    /// The most characters a file name keeps.
    pub const MAX_CHARS: usize = 255;

    /// The name used when nothing is left of the client's.
    pub const FALLBACK: &'static str = "file";

    /// The longest extension kept when a long name is shortened.
    const MAX_EXTENSION_CHARS: usize = 16;

    /// Makes a client's file name harmless:
    ///
    /// 1. removes control characters (NUL, `\n`, `\r`, …) and bidi controls;
    /// 2. keeps the last path component after `/` or `\` that is not empty
    ///    (`../../etc/passwd` → `passwd`, `C:\Windows\x.exe` → `x.exe`);
    /// 3. trims dots and whitespace at both ends (`..`, `.bashrc` → `bashrc`);
    /// 4. shortens it to 255 characters, keeping an extension of up to 16
    ///    characters (`aaaa….pdf` stays a `.pdf`);
    /// 5. falls back to `file` if nothing is left.
    pub fn sanitize(raw: &str) -> Self {
        let cleaned: String = raw.chars().filter(|c| !is_forbidden(*c)).collect();
        let component = cleaned
            .rsplit(['/', '\\'])
            .map(trim_name)
            .find(|component| !component.is_empty())
            .unwrap_or("");
        let name = shorten(component, Self::MAX_CHARS);
        if name.is_empty() {
            Self(Self::FALLBACK.to_owned())
        } else {
            Self(name)
        }
    }

    /// The extension: the text after the last dot, if any (`pdf` for `a.b.pdf`).
    pub fn extension(&self) -> Option<&str> {
        self.0.rsplit_once('.').map(|(_, extension)| extension)
    }
}
text_value_infallible!(OriginalFilename);

/// Trims whitespace and dots at both ends.
fn trim_name(name: &str) -> &str {
    name.trim_matches(|c: char| c == '.' || c.is_whitespace())
}

/// Shortens a trimmed name to at most `max` characters, keeping a short
/// extension when there is one, and trims again.
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    if let Some((stem, extension)) = name.rsplit_once('.') {
        let extension_chars = extension.chars().count();
        if !stem.is_empty()
            && (1..=OriginalFilename::MAX_EXTENSION_CHARS).contains(&extension_chars)
        {
            let stem_max = max - 1 - extension_chars;
            let stem: String = stem.chars().take(stem_max).collect();
            let stem = trim_name(&stem);
            if !stem.is_empty() {
                return format!("{stem}.{extension}");
            }
        }
    }
    let cut: String = name.chars().take(max).collect();
    trim_name(&cut).to_owned()
}

/// A content type an upload may have, as sniffed from its bytes.
///
/// Serialised as its MIME type (`"application/pdf"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowedContentType {
    /// `application/pdf`.
    Pdf,
    /// `image/png`.
    Png,
    /// `image/jpeg`.
    Jpeg,
    /// `image/tiff`.
    Tiff,
    /// `image/webp`.
    Webp,
    /// `text/plain`.
    PlainText,
    /// `text/csv`.
    Csv,
    /// `application/json`.
    Json,
    /// `application/vnd.openxmlformats-officedocument.wordprocessingml.document`.
    Docx,
    /// `application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`.
    Xlsx,
    /// `application/vnd.oasis.opendocument.text`.
    Odt,
}

impl AllowedContentType {
    /// Every allowed type.
    pub const ALL: [AllowedContentType; 11] = [
        AllowedContentType::Pdf,
        AllowedContentType::Png,
        AllowedContentType::Jpeg,
        AllowedContentType::Tiff,
        AllowedContentType::Webp,
        AllowedContentType::PlainText,
        AllowedContentType::Csv,
        AllowedContentType::Json,
        AllowedContentType::Docx,
        AllowedContentType::Xlsx,
        AllowedContentType::Odt,
    ];

    /// The MIME type, e.g. `application/pdf`.
    pub const fn mime(self) -> &'static str {
        match self {
            AllowedContentType::Pdf => "application/pdf",
            AllowedContentType::Png => "image/png",
            AllowedContentType::Jpeg => "image/jpeg",
            AllowedContentType::Tiff => "image/tiff",
            AllowedContentType::Webp => "image/webp",
            AllowedContentType::PlainText => "text/plain",
            AllowedContentType::Csv => "text/csv",
            AllowedContentType::Json => "application/json",
            AllowedContentType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            AllowedContentType::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            AllowedContentType::Odt => "application/vnd.oasis.opendocument.text",
        }
    }

    /// The usual file extension, without the dot (`pdf`, `jpg`, `docx`, …).
    pub const fn extension(self) -> &'static str {
        match self {
            AllowedContentType::Pdf => "pdf",
            AllowedContentType::Png => "png",
            AllowedContentType::Jpeg => "jpg",
            AllowedContentType::Tiff => "tiff",
            AllowedContentType::Webp => "webp",
            AllowedContentType::PlainText => "txt",
            AllowedContentType::Csv => "csv",
            AllowedContentType::Json => "json",
            AllowedContentType::Docx => "docx",
            AllowedContentType::Xlsx => "xlsx",
            AllowedContentType::Odt => "odt",
        }
    }

    /// The type of a MIME string, ignoring case, surrounding spaces and
    /// parameters (`text/plain; charset=utf-8` is `PlainText`).
    pub fn from_mime(raw: &str) -> Option<Self> {
        let essence = raw.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.mime().eq_ignore_ascii_case(essence))
    }
}

/// Which members of the text family (plain text, CSV, JSON) a file's
/// content fits, besides the one sniffing picked. Plain text and CSV fit
/// any text the sniffer accepts (a CSV file may have ragged rows or a
/// single column); JSON fits only what parses as JSON.
///
/// Sniffing alone cannot tell a note whose lines happen to contain commas
/// from a CSV file: both fit. When the content fits several members, the
/// client's declared type and file name decide ([`AllowedContentType::resolve`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TextFit {
    /// The content is JSON (parsed whole, or judged by its start when large).
    pub json: bool,
}

impl AllowedContentType {
    /// Whether this is plain text, CSV or JSON.
    pub const fn is_text_family(self) -> bool {
        matches!(
            self,
            AllowedContentType::PlainText | AllowedContentType::Csv | AllowedContentType::Json
        )
    }

    /// The text-family member a declared MIME type names (`text/plain`,
    /// `text/csv`, `application/json`, with their common aliases), if any.
    pub fn text_hint_of_mime(raw: &str) -> Option<Self> {
        let essence = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/plain" => Some(AllowedContentType::PlainText),
            "text/csv" | "application/csv" | "text/x-csv" | "text/comma-separated-values" => {
                Some(AllowedContentType::Csv)
            }
            "application/json" | "text/json" => Some(AllowedContentType::Json),
            _ => None,
        }
    }

    /// The text-family member a file name's extension names (`.txt`,
    /// `.text`, `.csv`, `.json`), if any.
    pub fn text_hint_of_filename(filename: &str) -> Option<Self> {
        let (_, extension) = filename.rsplit_once('.')?;
        match extension.trim().to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(AllowedContentType::PlainText),
            "csv" => Some(AllowedContentType::Csv),
            "json" => Some(AllowedContentType::Json),
            _ => None,
        }
    }

    /// Whether content of this sniffed type with this fit also fits `member`.
    fn fits(self, fit: TextFit, member: Self) -> bool {
        self.is_text_family()
            && match member {
                AllowedContentType::PlainText | AllowedContentType::Csv => true,
                AllowedContentType::Json => self == member || fit.json,
                _ => false,
            }
    }

    /// The type to record for content that sniffed as `self` with `fit`,
    /// given the client's hints (its declared type, its file name's
    /// extension).
    ///
    /// Outside the text family sniffing decides and hints are ignored (a PDF
    /// declared `text/plain` is a PDF). Within it, the hints that the
    /// content fits decide, the most specific first (JSON, then CSV, then
    /// plain text: `text/plain` is what many clients declare for any text,
    /// so it never overrides a `.csv` name); when no hint fits (a declared
    /// `application/json` that does not parse), sniffing decides.
    pub fn resolve(self, fit: TextFit, hints: &[Option<Self>]) -> Self {
        if !self.is_text_family() {
            return self;
        }
        [
            AllowedContentType::Json,
            AllowedContentType::Csv,
            AllowedContentType::PlainText,
        ]
        .into_iter()
        .find(|member| hints.contains(&Some(*member)) && self.fits(fit, *member))
        .unwrap_or(self)
    }
}

impl fmt::Display for AllowedContentType {
    /// The MIME type.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

impl serde::Serialize for AllowedContentType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.mime())
    }
}

impl<'de> serde::Deserialize<'de> for AllowedContentType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::from_mime(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("unsupported content type {raw:?}")))
    }
}

/// What was recorded about a file when it was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, as hex (either case).
    pub sha256: String,
    /// Its sniffed MIME type, as stored (e.g. `image/png`).
    pub content_type: String,
}

/// What a fresh read of the stored file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedFile {
    /// Storage has no file at the recorded path.
    Missing,
    /// The file is there.
    Present {
        /// Its size in bytes.
        size: u64,
        /// Its SHA-256, as hex (either case).
        sha256: String,
        /// Its sniffed type, or `None` if it is no longer an allowed type.
        content_type: Option<AllowedContentType>,
        /// The other text-family members its content fits.
        text_fit: TextFit,
    },
}

/// The verdict of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationOutcome {
    /// The file is as recorded.
    Verified,
    /// The file is missing or changed; the reason is the `verification_error`.
    Rejected(String),
}

impl VerificationOutcome {
    /// Whether the file was found as recorded.
    pub fn is_verified(&self) -> bool {
        matches!(self, VerificationOutcome::Verified)
    }

    /// The reason of a rejection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            VerificationOutcome::Verified => None,
            VerificationOutcome::Rejected(reason) => Some(reason),
        }
    }

    /// The document status this outcome leads to.
    pub fn status(&self) -> DocumentStatus {
        match self {
            VerificationOutcome::Verified => DocumentStatus::Verified,
            VerificationOutcome::Rejected(_) => DocumentStatus::Rejected,
        }
    }
}

/// Compares a re-read file with what was recorded at upload.
///
/// Checks, in this order, and rejects with the first difference found:
/// presence (`File is missing from storage.`), size
/// (`Size changed: recorded 10 bytes, found 12.`), checksum
/// (`Checksum mismatch.`; hex compared case-insensitively) and sniffed type
/// (`Content type changed: recorded image/png, found application/pdf.`, or
/// `..., found a type that is not allowed.`).
pub fn judge(recorded: &RecordedFile, observed: &ObservedFile) -> VerificationOutcome {
    let ObservedFile::Present {
        size,
        sha256,
        content_type,
        text_fit,
    } = observed
    else {
        return VerificationOutcome::Rejected("File is missing from storage.".to_owned());
    };
    if *size != recorded.size {
        return VerificationOutcome::Rejected(format!(
            "Size changed: recorded {} bytes, found {size}.",
            recorded.size
        ));
    }
    if !sha256.trim().eq_ignore_ascii_case(recorded.sha256.trim()) {
        return VerificationOutcome::Rejected("Checksum mismatch.".to_owned());
    }
    let recorded_type = AllowedContentType::from_mime(&recorded.content_type);
    // The recorded type is the hint the upload resolved to: text that still
    // fits it (`notes.txt` with commas, recorded `text/plain`) is unchanged.
    let content_type = content_type.map(|sniffed| sniffed.resolve(*text_fit, &[recorded_type]));
    if recorded_type.is_none() || content_type != recorded_type {
        let found = content_type.map_or("a type that is not allowed", AllowedContentType::mime);
        return VerificationOutcome::Rejected(format!(
            "Content type changed: recorded {}, found {found}.",
            recorded.content_type
        ));
    }
    VerificationOutcome::Verified
}

/// A field documents can be listed by (`?ordering=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSortKey {
    /// `uploaded_at`.
    UploadedAt,
    /// `name`.
    Name,
    /// `size`.
    Size,
}

impl DocumentSortKey {
    /// Every sortable field.
    pub const ALL: [DocumentSortKey; 3] = [
        DocumentSortKey::UploadedAt,
        DocumentSortKey::Name,
        DocumentSortKey::Size,
    ];

    /// The field name as written in `?ordering=`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocumentSortKey::UploadedAt => "uploaded_at",
            DocumentSortKey::Name => "name",
            DocumentSortKey::Size => "size",
        }
    }
}

/// One item of a document list's `?ordering=`, e.g. `-size`.
pub type DocumentOrderField = crate::paging::OrderField<DocumentSortKey>;

impl DocumentOrderField {
    /// The default ordering of document lists: `-uploaded_at`, newest first.
    pub const DEFAULT: DocumentOrderField = DocumentOrderField {
        field: DocumentSortKey::UploadedAt,
        descending: true,
    };
}

impl crate::paging::SortKey for DocumentSortKey {
    const KEYS: &'static [Self] = &DocumentSortKey::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// Where storage keeps a document's bytes. Always chosen by the server
/// (a fresh UUID for the local directory), never derived from a client's
/// input: 1–100 characters of `A–Z a–z 0–9 - _`, so it can never name a
/// path outside the storage root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(String);

impl StorageKey {
    /// The most characters a key may have (the column's width).
    pub const MAX_CHARS: usize = 100;

    /// Checks a key's characters and length.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            return Err(InvalidValue::blank());
        }
        if raw.len() > Self::MAX_CHARS {
            return Err(InvalidValue::too_long(Self::MAX_CHARS));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidValue::new(
                "A storage key may only hold letters, digits, '-' and '_'.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}
text_value!(StorageKey);

/// A document as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Primary key.
    pub id: DocumentId,
    /// Display name.
    pub name: DocumentName,
    /// What it is.
    pub kind: DocumentType,
    /// Result of the last verification.
    pub status: DocumentStatus,
    /// When it was last found as recorded (`None` unless `verified`).
    pub verified_at: Option<DateTime<Utc>>,
    /// Why the last verification rejected it (empty otherwise).
    pub verification_error: String,
    /// The mission it belongs to.
    pub mission: Option<MissionId>,
    /// Its owner.
    pub owner: UserId,
    /// The client's file name, sanitised.
    pub original_filename: OriginalFilename,
    /// The sniffed MIME type recorded at upload.
    pub content_type: String,
    /// Size in bytes recorded at upload.
    pub size: u64,
    /// SHA-256 (lower-case hex) recorded at upload.
    pub sha256: String,
    /// Where storage keeps the bytes.
    pub storage_key: StorageKey,
    /// Upload time.
    pub uploaded_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Document {
    /// The API's `verified` flag.
    pub fn verified(&self) -> bool {
        self.status.is_verified()
    }

    /// What was recorded about the file, for [`judge`].
    pub fn recorded(&self) -> RecordedFile {
        RecordedFile {
            size: self.size,
            sha256: self.sha256.clone(),
            content_type: self.content_type.clone(),
        }
    }
}

/// What storage measured while receiving an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// The sniffed type, or `None` if it is not an allowed type.
    pub content_type: Option<AllowedContentType>,
    /// The other text-family members the content fits (the client's hints
    /// choose among them).
    pub text_fit: TextFit,
}

/// A document to insert, its file already in storage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// Display name.
    pub name: DocumentName,
    /// What it is.
    pub kind: DocumentType,
    /// The mission it belongs to (the owner's own).
    pub mission: Option<MissionId>,
    /// Its owner.
    pub owner: UserId,
    /// The client's file name, sanitised.
    pub original_filename: OriginalFilename,
    /// The sniffed type.
    pub content_type: AllowedContentType,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Where storage keeps the bytes.
    pub storage_key: StorageKey,
}

/// Changes to a document's editable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentChanges {
    /// New name.
    pub name: Option<DocumentName>,
    /// New type.
    pub kind: Option<DocumentType>,
    /// New mission (`Some(None)` detaches it).
    pub mission: Option<Option<MissionId>>,
}

impl DocumentChanges {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The names of the fields that change, for the activity's details.
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.name.is_some() {
            fields.push("name");
        }
        if self.kind.is_some() {
            fields.push("type");
        }
        if self.mission.is_some() {
            fields.push("mission");
        }
        fields
    }
}

/// The stored result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentVerification {
    /// The new status.
    pub status: DocumentStatus,
    /// `now` when verified, `None` when rejected.
    pub verified_at: Option<DateTime<Utc>>,
    /// The reason of a rejection, empty when verified.
    pub error: String,
}

impl DocumentVerification {
    /// What a verification with `outcome` stores on a document in status `from`.
    pub fn of(
        from: DocumentStatus,
        outcome: &VerificationOutcome,
        now: DateTime<Utc>,
    ) -> Result<Self, InvalidTransition> {
        let status = from.apply(outcome)?;
        Ok(Self {
            status,
            verified_at: status.is_verified().then_some(now),
            error: outcome.reason().unwrap_or_default().to_owned(),
        })
    }
}

/// The filters and ordering of a document list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentQuery {
    /// Only this owner's documents (`None`: everyone's).
    pub owner: Option<UserId>,
    /// Only documents of any of these missions (empty: all).
    pub missions: Vec<MissionId>,
    /// Any of these types.
    pub kinds: Vec<DocumentType>,
    /// Any of these statuses.
    pub statuses: Vec<DocumentStatus>,
    /// Only verified (`true`) or only unverified (`false`) documents.
    pub verified: Option<bool>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Sort keys, first one first (empty: `-uploaded_at`).
    pub ordering: Vec<DocumentOrderField>,
    /// Which page.
    pub page: PageRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_statuses() {
        let names = [
            "tax_return",
            "bank_statement",
            "identity",
            "invoice",
            "receipt",
            "contract",
            "certificate",
            "other",
        ];
        for (kind, name) in DocumentType::ALL.into_iter().zip(names) {
            assert_eq!(kind.as_str(), name);
            assert_eq!(DocumentType::parse(name), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serialise"),
                serde_json::json!(name)
            );
        }
        assert_eq!(DocumentType::default(), DocumentType::Other);
        assert_eq!(
            DocumentType::parse("passport"),
            Err(InvalidValue::invalid_choice("passport"))
        );
        for (status, name) in DocumentStatus::ALL
            .into_iter()
            .zip(["uploaded", "verified", "rejected"])
        {
            assert_eq!(status.as_str(), name);
            assert_eq!(DocumentStatus::parse(name), Ok(status));
            assert_eq!(status.is_verified(), name == "verified");
        }
        assert!(DocumentStatus::parse("Verified").is_err());
        assert_eq!(DocumentStatus::default(), DocumentStatus::Uploaded);
    }

    #[test]
    fn every_status_times_every_verification() {
        for status in DocumentStatus::ALL {
            assert_eq!(status.verify(), Ok(DocumentStatus::Verified));
            assert_eq!(status.reject(), Ok(DocumentStatus::Rejected));
            assert_eq!(
                status.apply(&VerificationOutcome::Verified),
                Ok(DocumentStatus::Verified)
            );
            assert_eq!(
                status.apply(&VerificationOutcome::Rejected("x".into())),
                Ok(DocumentStatus::Rejected)
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            DocumentName::parse("  2025 tax return.pdf ")
                .expect("valid")
                .as_str(),
            "2025 tax return.pdf"
        );
        assert_eq!(DocumentName::parse(" \t "), Err(InvalidValue::blank()));
        let control = Err(InvalidValue::new("Control characters are not allowed."));
        assert_eq!(DocumentName::parse("a\nb"), control);
        assert_eq!(DocumentName::parse("a\0b"), control);
        assert_eq!(DocumentName::parse("a\rb"), control);
        assert_eq!(DocumentName::parse("a\u{7}b"), control);
        assert_eq!(DocumentName::parse("invoice\u{202E}fdp.exe"), control);
        assert!(DocumentName::parse(&"ж".repeat(255)).is_ok());
        assert_eq!(
            DocumentName::parse(&"ж".repeat(256)),
            Err(InvalidValue::too_long(255))
        );
        assert!(serde_json::from_value::<DocumentName>(serde_json::json!("a\nb")).is_err());
    }

    fn sanitize(raw: &str) -> String {
        OriginalFilename::sanitize(raw).into_inner()
    }

    #[test]
    fn filenames() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("C:\\Windows\\x.exe"), "x.exe");
        assert_eq!(sanitize("/var/tmp/report.pdf"), "report.pdf");
        assert_eq!(sanitize("dir/"), "dir");
        assert_eq!(sanitize("a/b/../"), "b");
        assert_eq!(sanitize("evil\n.pdf"), "evil.pdf");
        assert_eq!(sanitize("in\r\nvoice.pdf\0.exe"), "invoice.pdf.exe");
        assert_eq!(sanitize("a\0/b"), "b");
        assert_eq!(sanitize("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize("  .hidden.  "), "hidden");
        assert_eq!(sanitize(""), "file");
        assert_eq!(sanitize("."), "file");
        assert_eq!(sanitize(".."), "file");
        assert_eq!(sanitize("../../"), "file");
        assert_eq!(sanitize("\0\n\r"), "file");
        assert_eq!(sanitize("/"), "file");
        assert_eq!(sanitize("résumé 2025.pdf"), "résumé 2025.pdf");

        // 300 characters: shortened to 255, the extension kept.
        let long = format!("{}.pdf", "a".repeat(296));
        let short = sanitize(&long);
        assert_eq!(short.chars().count(), 255);
        assert!(short.ends_with(".pdf"));
        assert_eq!(short, format!("{}.pdf", "a".repeat(251)));
        // Multi-byte characters are cut on a char boundary.
        let long = format!("{}.docx", "é".repeat(300));
        let short = sanitize(&long);
        assert_eq!(short.chars().count(), 255);
        assert!(short.ends_with(".docx"));
        // No extension (or an absurd one): plain cut.
        let short = sanitize(&"b".repeat(300));
        assert_eq!(short, "b".repeat(255));
        let short = sanitize(&format!("x.{}", "c".repeat(300)));
        assert_eq!(short.chars().count(), 255);
        // A cut that ends on a dot is trimmed.
        let short = sanitize(&format!("{}.{}", "d".repeat(254), "e".repeat(40)));
        assert_eq!(short, "d".repeat(254));

        // Always a valid document name.
        for raw in ["../../etc/passwd", "", "\n", &"z".repeat(1000), " . . "] {
            let filename = OriginalFilename::sanitize(raw);
            let name = DocumentName::from_filename(&filename);
            assert_eq!(DocumentName::parse(name.as_str()), Ok(name));
        }
        assert_eq!(
            OriginalFilename::sanitize("a.b.pdf").extension(),
            Some("pdf")
        );
        assert_eq!(OriginalFilename::sanitize("README").extension(), None);
        let de: OriginalFilename =
            serde_json::from_value(serde_json::json!("../x.txt")).expect("deserialise");
        assert_eq!(de.as_str(), "x.txt");
    }

    #[test]
    fn content_types() {
        for kind in AllowedContentType::ALL {
            assert_eq!(AllowedContentType::from_mime(kind.mime()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serialise"),
                serde_json::json!(kind.mime())
            );
            assert_eq!(
                serde_json::from_value::<AllowedContentType>(serde_json::json!(kind.mime()))
                    .expect("deserialise"),
                kind
            );
        }
        assert_eq!(
            AllowedContentType::from_mime("Text/Plain; charset=utf-8"),
            Some(AllowedContentType::PlainText)
        );
        assert_eq!(
            AllowedContentType::from_mime(" application/pdf "),
            Some(AllowedContentType::Pdf)
        );
        for bad in [
            "text/html",
            "application/x-msdownload",
            "application/octet-stream",
            "image/svg+xml",
            "",
            "pdf",
        ] {
            assert_eq!(AllowedContentType::from_mime(bad), None, "{bad}");
        }
        assert_eq!(AllowedContentType::Jpeg.extension(), "jpg");
    }

    fn recorded() -> RecordedFile {
        RecordedFile {
            size: 10,
            sha256: "ABCDEF".into(),
            content_type: "image/png".into(),
        }
    }

    fn present(size: u64, sha256: &str, content_type: Option<AllowedContentType>) -> ObservedFile {
        ObservedFile::Present {
            size,
            sha256: sha256.into(),
            content_type,
            text_fit: TextFit::default(),
        }
    }

    #[test]
    fn text_hints_decide_within_the_text_family_only() {
        use AllowedContentType as Kind;
        let both = TextFit { json: false };
        let plain = Kind::text_hint_of_mime("text/plain; charset=utf-8");
        let csv_name = Kind::text_hint_of_filename("data.CSV");
        let txt_name = Kind::text_hint_of_filename("notes.txt");
        let json = Kind::text_hint_of_mime("application/json");
        assert_eq!(plain, Some(Kind::PlainText));
        assert_eq!(csv_name, Some(Kind::Csv));
        assert_eq!(txt_name, Some(Kind::PlainText));
        assert_eq!(Kind::text_hint_of_filename("archive"), None);
        assert_eq!(Kind::text_hint_of_mime("application/octet-stream"), None);
        // Commas in a note: plain when the client says plain.
        assert_eq!(Kind::Csv.resolve(both, &[plain, txt_name]), Kind::PlainText);
        // A .csv name (even declared text/plain) or a declared CSV wins.
        assert_eq!(Kind::Csv.resolve(both, &[plain, csv_name]), Kind::Csv);
        assert_eq!(
            Kind::PlainText.resolve(
                TextFit { json: false },
                &[Kind::text_hint_of_mime("text/csv"), txt_name]
            ),
            Kind::Csv
        );
        // No hint: sniffing decides.
        assert_eq!(Kind::Csv.resolve(both, &[None, None]), Kind::Csv);
        // Declared JSON that is not JSON falls back to sniffing.
        assert_eq!(Kind::Csv.resolve(both, &[json, None]), Kind::Csv);
        assert_eq!(
            Kind::PlainText.resolve(TextFit::default(), &[json]),
            Kind::PlainText
        );
        // JSON that is JSON.
        assert_eq!(
            Kind::Json.resolve(TextFit { json: true }, &[json]),
            Kind::Json
        );
        // Outside the family, hints are ignored.
        assert_eq!(Kind::Pdf.resolve(both, &[plain, txt_name]), Kind::Pdf);
    }

    #[test]
    fn text_that_fits_its_recorded_type_verifies() {
        let mut note = recorded();
        note.content_type = "text/plain".into();
        let observed = ObservedFile::Present {
            size: 10,
            sha256: "abcdef".into(),
            content_type: Some(AllowedContentType::Csv),
            text_fit: TextFit { json: false },
        };
        assert!(judge(&note, &observed).is_verified());
        let mut data = recorded();
        data.content_type = "application/json".into();
        assert!(!judge(&data, &observed).is_verified());
    }

    #[test]
    fn judging() {
        let png = Some(AllowedContentType::Png);
        let verdict = judge(&recorded(), &present(10, "abcdef", png));
        assert_eq!(verdict, VerificationOutcome::Verified);
        assert!(verdict.is_verified());
        assert_eq!(verdict.reason(), None);
        assert_eq!(verdict.status(), DocumentStatus::Verified);

        let rejected = |reason: &str| VerificationOutcome::Rejected(reason.to_owned());
        assert_eq!(
            judge(&recorded(), &ObservedFile::Missing),
            rejected("File is missing from storage.")
        );
        assert_eq!(
            judge(&recorded(), &present(12, "abcdef", png)),
            rejected("Size changed: recorded 10 bytes, found 12.")
        );
        assert_eq!(
            judge(&recorded(), &present(10, "abcdee", png)),
            rejected("Checksum mismatch.")
        );
        assert_eq!(
            judge(
                &recorded(),
                &present(10, "abcdef", Some(AllowedContentType::Pdf))
            ),
            rejected("Content type changed: recorded image/png, found application/pdf.")
        );
        assert_eq!(
            judge(&recorded(), &present(10, "abcdef", None)),
            rejected("Content type changed: recorded image/png, found a type that is not allowed.")
        );
        // Size is reported before the checksum.
        let verdict = judge(&recorded(), &present(0, "", None));
        assert_eq!(
            verdict.reason(),
            Some("Size changed: recorded 10 bytes, found 0.")
        );
        assert_eq!(verdict.status(), DocumentStatus::Rejected);
        // A recorded type with parameters or another case still matches.
        let mut text = recorded();
        text.content_type = "Text/Plain; charset=utf-8".into();
        assert_eq!(
            judge(
                &text,
                &present(10, "abcdef", Some(AllowedContentType::PlainText))
            ),
            VerificationOutcome::Verified
        );
        // A recorded type that is not allowed (any more) never verifies.
        let mut html = recorded();
        html.content_type = "text/html".into();
        assert!(!judge(&html, &present(10, "abcdef", None)).is_verified());
    }

    #[test]
    fn document_ordering() {
        assert_eq!(
            DocumentOrderField::parse("-size"),
            Ok(DocumentOrderField {
                field: DocumentSortKey::Size,
                descending: true
            })
        );
        assert!(DocumentOrderField::parse("owner").is_err());
        assert_eq!(
            DocumentOrderField::parse_list("name,-uploaded_at").map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(DocumentOrderField::DEFAULT.to_string(), "-uploaded_at");
    }
}
