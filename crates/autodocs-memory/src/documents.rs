//! Document rows.

use std::cmp::Ordering;

use autodocs_domain::RepoError;
use autodocs_domain::document::{
    Document, DocumentChanges, DocumentOrderField, DocumentQuery, DocumentSortKey, DocumentStatus,
    DocumentVerification, NewDocument, StorageKey,
};
use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{DocumentRepository, RepoResult};
use autodocs_domain::user::UserId;
use autodocs_domain::{DocumentId, MissionId};
use chrono::{DateTime, Utc};

use crate::state::{contains_folded, missing, page_of, sort_by_ordering};
use crate::uow::MemoryRepos;

fn compare_documents(a: &Document, b: &Document, item: DocumentOrderField) -> Ordering {
    let ascending = match item.field {
        DocumentSortKey::UploadedAt => a.uploaded_at.cmp(&b.uploaded_at),
        DocumentSortKey::Name => a.name.as_str().cmp(b.name.as_str()),
        DocumentSortKey::Size => a.size.cmp(&b.size),
    };
    if item.descending {
        ascending.reverse()
    } else {
        ascending
    }
}

impl DocumentRepository for MemoryRepos {
    fn create(&mut self, new: &NewDocument, now: DateTime<Utc>) -> RepoResult<Document> {
        if !self.state.users.contains_key(&new.owner.0) {
            return Err(missing("the document's owner"));
        }
        if new
            .mission
            .is_some_and(|mission| !self.state.missions.contains_key(&mission))
        {
            return Err(missing("the document's mission"));
        }
        if i64::try_from(new.size).is_err() {
            return Err(RepoError::ConstraintViolation("document size".into()));
        }
        if self
            .state
            .documents
            .values()
            .any(|document| document.storage_key == new.storage_key)
        {
            return Err(RepoError::UniqueViolation(
                "documents_document_storage_key_key".into(),
            ));
        }
        self.state.ids.documents += 1;
        let document = Document {
            id: DocumentId(self.state.ids.documents),
            name: new.name.clone(),
            kind: new.kind,
            status: DocumentStatus::Uploaded,
            verified_at: None,
            verification_error: String::new(),
            mission: new.mission,
            owner: new.owner,
            original_filename: new.original_filename.clone(),
            content_type: new.content_type.mime().to_owned(),
            size: new.size,
            sha256: new.sha256.clone(),
            storage_key: new.storage_key.clone(),
            uploaded_at: now,
            updated_at: now,
        };
        self.state.documents.insert(document.id, document.clone());
        Ok(document)
    }

    fn find(&mut self, id: DocumentId, owner: Option<UserId>) -> RepoResult<Option<Document>> {
        Ok(self
            .state
            .documents
            .get(&id)
            .filter(|document| owner.is_none_or(|owner| document.owner == owner))
            .cloned())
    }

    fn list(&mut self, query: &DocumentQuery) -> RepoResult<PageResult<Document>> {
        let search = query.search.as_deref().filter(|search| !search.is_empty());
        let mut documents: Vec<Document> = self
            .state
            .documents
            .values()
            .filter(|d| query.owner.is_none_or(|owner| d.owner == owner))
            .filter(|d| {
                query.missions.is_empty()
                    || d.mission
                        .is_some_and(|mission| query.missions.contains(&mission))
            })
            .filter(|d| query.kinds.is_empty() || query.kinds.contains(&d.kind))
            .filter(|d| query.statuses.is_empty() || query.statuses.contains(&d.status))
            .filter(|d| {
                query
                    .verified
                    .is_none_or(|verified| d.status.is_verified() == verified)
            })
            .filter(|d| search.is_none_or(|term| contains_folded(d.name.as_str(), term)))
            .cloned()
            .collect();
        sort_by_ordering(
            &mut documents,
            &query.ordering,
            DocumentOrderField::DEFAULT,
            compare_documents,
            |item| item.id,
        );
        Ok(page_of(documents, query.page))
    }

    fn list_for_mission(&mut self, mission: MissionId) -> RepoResult<Vec<Document>> {
        let mut documents: Vec<Document> = self
            .state
            .documents
            .values()
            .filter(|document| document.mission == Some(mission))
            .cloned()
            .collect();
        documents.sort_by(|a, b| b.uploaded_at.cmp(&a.uploaded_at).then(b.id.cmp(&a.id)));
        Ok(documents)
    }

    fn update(
        &mut self,
        id: DocumentId,
        changes: &DocumentChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        if let Some(Some(mission)) = changes.mission
            && !self.state.missions.contains_key(&mission)
        {
            return Err(missing("the document's mission"));
        }
        if let Some(document) = self.state.documents.get_mut(&id) {
            if let Some(name) = &changes.name {
                document.name = name.clone();
            }
            if let Some(kind) = changes.kind {
                document.kind = kind;
            }
            if let Some(mission) = changes.mission {
                document.mission = mission;
            }
            document.updated_at = now;
        }
        Ok(())
    }

    fn set_verification(
        &mut self,
        id: DocumentId,
        verification: &DocumentVerification,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        if let Some(document) = self.state.documents.get_mut(&id) {
            document.status = verification.status;
            document.verified_at = verification.verified_at;
            document.verification_error = verification.error.clone();
            document.updated_at = now;
        }
        Ok(())
    }

    fn delete(&mut self, id: DocumentId) -> RepoResult<bool> {
        Ok(self.state.delete_document(id))
    }

    fn existing_storage_keys(&mut self, keys: &[StorageKey]) -> RepoResult<Vec<StorageKey>> {
        Ok(self
            .state
            .documents
            .values()
            .filter(|document| keys.contains(&document.storage_key))
            .map(|document| document.storage_key.clone())
            .collect())
    }

    fn any_exist(&mut self) -> RepoResult<bool> {
        Ok(!self.state.documents.is_empty())
    }
}
