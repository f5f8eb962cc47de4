//! Documents: upload, list, read, edit, delete and verify.
//!
//! The bytes go through the [`FileStorage`](crate::ports::FileStorage) port:
//! an upload is received into a temporary place by an
//! [`UploadSink`] (size, SHA-256 and type measured
//! on the way), then [`DocumentService::upload`] checks it, moves it into
//! place and commits the row with its `document_uploaded` activity. If
//! anything fails after the move, the stored file is deleted again, so
//! neither a row without its file nor (short of a crash, which the start-up
//! sweep quarantines) a file without its row is left.
//!
//! Documents are private to their owner and to staff, as missions are: a
//! user sees only their own (someone else's is "not found"); staff see,
//! download, verify, edit and delete everyone's, as they act on everyone's
//! missions. Uploads are always the caller's own. An activity recorded by
//! a staff user's action on someone else's document names the staff user
//! (its `user`) and the owner (`details.owner`).

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::document::{
    AllowedContentType, Document, DocumentChanges, DocumentName, DocumentQuery, DocumentType,
    DocumentVerification, NewDocument, OriginalFilename, VerificationOutcome, judge,
};
use crate::error::DocumentError;
use crate::ids::{DocumentId, MissionId};
use crate::paging::Page;
use crate::ports::{self, Repositories, StagedUpload, StoredFile, UploadSink};
use crate::user::{Principal, UserId};
use crate::validation::InvalidValue;

/// The rejection reason when storage cannot be read at all.
pub const UNREADABLE_FILE: &str = "File could not be read from storage.";

/// The command to store an uploaded file as a new document of the caller.
///
/// The name defaults to the (sanitised) file name, the type to `other`.
#[derive(Debug)]
pub struct UploadDocument {
    /// Display name; `None` takes the file's name.
    pub name: Option<DocumentName>,
    /// Type.
    pub kind: DocumentType,
    /// The mission it belongs to (must be the caller's).
    pub mission: Option<MissionId>,
    /// The received file.
    pub file: UploadedPart,
}

impl UploadDocument {
    /// An upload of `file` with the default name and type, in no mission.
    pub fn new(file: UploadedPart) -> Self {
        Self {
            name: None,
            kind: DocumentType::default(),
            mission: None,
            file,
        }
    }

    /// This upload named `name`.
    pub fn named(self, name: DocumentName) -> Self {
        Self {
            name: Some(name),
            ..self
        }
    }

    /// This upload of type `kind`.
    pub fn of_type(self, kind: DocumentType) -> Self {
        Self { kind, ..self }
    }

    /// This upload in `mission`.
    pub fn in_mission(self, mission: MissionId) -> Self {
        Self {
            mission: Some(mission),
            ..self
        }
    }
}

/// The `file` part of an upload: the client's file name and the received bytes.
pub struct UploadedPart {
    /// The file name the client sent (never used as a path).
    pub filename: String,
    /// The `Content-Type` the client declared for the part, if any: within
    /// the text family it (and the file name) choose the recorded type.
    pub declared_type: Option<String>,
    /// The bytes, durable in a temporary place.
    pub staged: Box<dyn StagedUpload>,
}

impl std::fmt::Debug for UploadedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadedPart")
            .field("filename", &self.filename)
            .field("declared_type", &self.declared_type)
            .field("file", self.staged.file())
            .finish()
    }
}

/// Refuses a mission that is not `owner`'s (a 400 on `mission`).
/// Checks that `mission` (if any) is the owner's, locking its row: a
/// document write changes its mission's counts, so it takes the mission's
/// lock first, in the same order as every other write on that mission.
fn check_own_mission(
    repos: &mut dyn Repositories,
    mission: Option<MissionId>,
    owner: UserId,
) -> Result<(), DocumentError> {
    if let Some(id) = mission
        && repos.missions().lock(id, Some(owner))?.is_none()
    {
        return Err(DocumentError::field(
            "mission",
            InvalidValue::DoesNotExist { id: id.0 },
        ));
    }
    Ok(())
}

/// The activity of `principal`'s action on `document`: it names who acted;
/// a staff user acting on someone else's document is named as the `user`,
/// and the owner goes in `details.owner`.
fn acted(kind: SystemActivity, principal: Principal, document: &Document) -> NewActivity {
    let activity = NewActivity::system(kind, principal.user_id);
    if principal.user_id == document.owner {
        activity
    } else {
        activity.with_detail("owner", document.owner.0)
    }
}

/// Locks the rows of the given missions in ascending id order, so two
/// transactions moving documents between the same missions cannot deadlock.
fn lock_missions(
    repos: &mut dyn Repositories,
    missions: impl IntoIterator<Item = Option<MissionId>>,
) -> Result<(), DocumentError> {
    let mut ids: Vec<MissionId> = missions.into_iter().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        repos.missions().lock(id, None)?;
    }
    Ok(())
}

super::service!(
    /// Documents: upload, list, read, open, edit, verify, delete.
    ///
    /// ```
    /// # let memory = autodocs_memory::services();
    /// # let services = &memory.services;
    /// # let session = services.accounts().register(
    /// #     autodocs_domain::usecases::auth::Registration::parse(
    /// #         &autodocs_domain::usecases::auth::RegisterInput {
    /// #             username: "anna".into(),
    /// #             email: "anna@example.com".into(),
    /// #             password: "violet-Harbor-1987".into(),
    /// #             first_name: "Anna".into(),
    /// #             last_name: "Berg".into(),
    /// #         },
    /// #     )?,
    /// # )?;
    /// # let anna = autodocs_domain::user::Principal { user_id: session.user.id, is_staff: false };
    /// use autodocs_domain::document::{DocumentQuery, DocumentStatus};
    /// use autodocs_domain::usecases::documents::{UploadDocument, UploadedPart};
    ///
    /// // The bytes stream into a sink that measures them on the way ...
    /// let mut sink = services.documents().begin_upload()?;
    /// sink.write(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")?;
    /// let part = UploadedPart {
    ///     filename: "w2.pdf".into(),
    ///     declared_type: Some("application/pdf".into()),
    ///     staged: sink.finish()?,
    /// };
    /// // ... then the document is checked and stored with its activity.
    /// let document = services.documents().upload(anna, UploadDocument::new(part))?;
    /// assert_eq!(document.content_type.as_str(), "application/pdf");
    /// let verified = services.documents().verify(anna, document.id)?;
    /// assert_eq!(verified.status, DocumentStatus::Verified);
    /// assert_eq!(services.documents().list(anna, DocumentQuery::default())?.count, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    DocumentService
);

impl DocumentService {
    /// Starts receiving an upload, limited to the configured size.
    pub fn begin_upload(&self) -> Result<Box<dyn UploadSink>, DocumentError> {
        Ok(self
            .context
            .storage
            .begin_upload(self.context.max_upload_bytes)?)
    }

    /// Stores a received upload as a new document of the principal, with
    /// its `document_uploaded` activity.
    ///
    /// An empty file is refused (on `file`), a type that is not allowed is
    /// [`DocumentError::UnsupportedFileType`], a mission that is not the caller's is
    /// refused (on `mission`); otherwise the file is moved into place and
    /// the row committed. On every error the upload is discarded: the staged
    /// file when it is dropped, the stored file by deleting it again.
    pub fn upload(
        &self,
        principal: Principal,
        command: UploadDocument,
    ) -> Result<Document, DocumentError> {
        self.upload_then(principal, command, &mut |_| Ok(()))
    }

    /// [`DocumentService::upload`], running `then` in the same transaction
    /// after the document is created: an error from it rolls the document
    /// back (the background engine completes its step this way, so the
    /// document exists if and only if the step completed).
    pub(crate) fn upload_then(
        &self,
        principal: Principal,
        command: UploadDocument,
        then: &mut dyn FnMut(&mut dyn Repositories) -> Result<(), DocumentError>,
    ) -> Result<Document, DocumentError> {
        let UploadDocument {
            name,
            kind,
            mission,
            file: part,
        } = command;
        if part.staged.file().size == 0 {
            return Err(DocumentError::field(
                "file",
                InvalidValue::rule("empty", "An empty file is not a document."),
            ));
        }
        let uploaded = part.staged.file().clone();
        let hints = [
            part.declared_type
                .as_deref()
                .and_then(AllowedContentType::text_hint_of_mime),
            AllowedContentType::text_hint_of_filename(&part.filename),
        ];
        let content_type = uploaded
            .content_type
            .ok_or(DocumentError::UnsupportedFileType)?
            .resolve(uploaded.text_fit, &hints);
        let original_filename = OriginalFilename::sanitize(&part.filename);
        let name = name.unwrap_or_else(|| DocumentName::from_filename(&original_filename));
        let storage_key = part.staged.persist()?;
        let new = NewDocument {
            name,
            kind,
            mission,
            owner: principal.user_id,
            original_filename,
            content_type,
            size: uploaded.size,
            sha256: uploaded.sha256,
            storage_key: storage_key.clone(),
        };
        let now = self.context.clock.now();
        let created = self.context.write(|repos| {
            check_own_mission(repos, new.mission, new.owner)?;
            let document = repos.documents().create(&new, now)?;
            let mut activity = NewActivity::system(SystemActivity::DocumentUploaded, new.owner)
                .with_document(document.id)
                .with_detail("name", document.name.as_str())
                .with_detail("content_type", document.content_type.as_str())
                .with_detail("size", document.size);
            if let Some(mission) = document.mission {
                activity = activity.with_mission(mission);
            }
            repos.activities().record(&activity, now)?;
            then(repos)?;
            Ok(document)
        });
        if created.is_err() {
            // Nothing committed: the file must not stay either. Should this
            // delete fail, the sweep quarantines the orphan.
            let _ = self.context.storage.delete(&storage_key);
        }
        created
    }

    /// A page of the documents the principal can see: their own, or for
    /// staff everyone's (narrowed by `query.owner`, which is ignored for
    /// anyone else, as for missions).
    pub fn list(
        &self,
        principal: Principal,
        mut query: DocumentQuery,
    ) -> Result<Page<Document>, DocumentError> {
        if !principal.is_staff {
            query.owner = Some(principal.user_id);
        }
        let found = ports::read(&*self.context.uow, |repos| repos.documents().list(&query))?;
        Ok(found.found()?)
    }

    /// One document the principal can see (their own; staff: any).
    pub fn get(&self, principal: Principal, id: DocumentId) -> Result<Document, DocumentError> {
        ports::read(&*self.context.uow, |repos| {
            repos
                .documents()
                .find(id, principal.visible_owner())?
                .ok_or(DocumentError::NotFound)
        })
    }

    /// One document the principal can see, with its stored file opened for
    /// reading (`None` if the file is missing from storage).
    pub fn open(
        &self,
        principal: Principal,
        id: DocumentId,
    ) -> Result<(Document, Option<StoredFile>), DocumentError> {
        let document = self.get(principal, id)?;
        let file = self.context.storage.open(&document.storage_key)?;
        Ok((document, file))
    }

    /// Edits a document's name, type or mission (the principal's own;
    /// staff: any), recording `document_updated` with the changed fields.
    /// The mission it moves to must be the document owner's.
    pub fn update(
        &self,
        principal: Principal,
        id: DocumentId,
        changes: DocumentChanges,
    ) -> Result<Document, DocumentError> {
        let now = self.context.clock.now();
        self.context.write(|repos| {
            let document = repos
                .documents()
                .find(id, principal.visible_owner())?
                .ok_or(DocumentError::NotFound)?;
            if changes.is_empty() {
                return Ok(document);
            }
            lock_missions(repos, [document.mission, changes.mission.flatten()])?;
            if let Some(mission) = changes.mission {
                check_own_mission(repos, mission, document.owner)?;
            }
            repos.documents().update(id, &changes, now)?;
            let updated = repos
                .documents()
                .find(id, None)?
                .ok_or(DocumentError::NotFound)?;
            let mut activity = acted(SystemActivity::DocumentUpdated, principal, &document)
                .with_document(id)
                .with_detail("fields", changes.changed_fields());
            if let Some(mission) = updated.mission {
                activity = activity.with_mission(mission);
            }
            repos.activities().record(&activity, now)?;
            Ok(updated)
        })
    }

    /// Deletes a document (the principal's own; staff: any), recording
    /// `document_deleted`: first the row
    /// (with its activity, committed), then the stored file. A crash
    /// between the two leaves an orphan file for the sweep, never a row
    /// without its file.
    pub fn delete(&self, principal: Principal, id: DocumentId) -> Result<(), DocumentError> {
        let now = self.context.clock.now();
        let document = self.context.write(|repos| {
            let document = repos
                .documents()
                .find(id, principal.visible_owner())?
                .ok_or(DocumentError::NotFound)?;
            // The activity outlives the row: its id and name go in the details.
            let mut activity = acted(SystemActivity::DocumentDeleted, principal, &document)
                .with_detail("document_id", id)
                .with_detail("name", document.name.as_str());
            if let Some(mission) = document.mission {
                activity = activity.with_mission(mission);
            }
            lock_missions(repos, [document.mission])?;
            repos.activities().record(&activity, now)?;
            if !repos.documents().delete(id)? {
                return Err(DocumentError::NotFound);
            }
            Ok(document)
        })?;
        // The row is gone for good; a file that cannot be deleted now is an
        // orphan the sweep quarantines later.
        let _ = self.context.storage.delete(&document.storage_key);
        Ok(())
    }

    /// Re-reads a document's stored file and compares its size, SHA-256
    /// and sniffed type with what was recorded at upload: the document
    /// becomes `verified` or `rejected` (with the reason), with a
    /// `document_verified` or `document_rejected` activity, in one
    /// transaction. A missing or unreadable file is a rejection, not an error.
    pub fn verify(&self, principal: Principal, id: DocumentId) -> Result<Document, DocumentError> {
        let document = self.get(principal, id)?;
        // The long read happens outside the transaction.
        let outcome = match self.context.storage.inspect(&document.storage_key) {
            Ok(observed) => judge(&document.recorded(), &observed),
            Err(_) => VerificationOutcome::Rejected(UNREADABLE_FILE.to_owned()),
        };
        let now = self.context.clock.now();
        self.context.write(|repos| {
            // Still there and still visible to the caller (what was
            // recorded never changes).
            let current = repos
                .documents()
                .find(id, principal.visible_owner())?
                .ok_or(DocumentError::NotFound)?;
            let verification = DocumentVerification::of(current.status, &outcome, now)?;
            repos.documents().set_verification(id, &verification, now)?;
            let kind = if outcome.is_verified() {
                SystemActivity::DocumentVerified
            } else {
                SystemActivity::DocumentRejected
            };
            let mut activity = acted(kind, principal, &current).with_document(id);
            if let Some(reason) = outcome.reason() {
                activity = activity.with_detail("reason", reason);
            }
            if let Some(mission) = current.mission {
                activity = activity.with_mission(mission);
            }
            repos.activities().record(&activity, now)?;
            repos
                .documents()
                .find(id, None)?
                .ok_or(DocumentError::NotFound)
        })
    }
}
