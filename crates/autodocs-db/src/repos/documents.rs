use autodocs_domain::RepoError;
use autodocs_domain::document::{
    Document, DocumentChanges, DocumentName, DocumentOrderField, DocumentQuery, DocumentSortKey,
    DocumentStatus, DocumentType, DocumentVerification, NewDocument, OriginalFilename, StorageKey,
};
use autodocs_domain::paging::PageResult;
use autodocs_domain::ports::{DocumentRepository, RepoResult};
use autodocs_domain::user::UserId;
use autodocs_domain::{DocumentId, MissionId};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::paging::paginate;
use super::{Db, contains_pattern, lower};
use crate::error::OrRepoError;
use crate::schema::documents_document as document;
use crate::time::{StoredTime, from_db, to_db};
use crate::uow::DieselRepos;

#[derive(Queryable, Selectable)]
#[diesel(table_name = document)]
struct DocumentRow {
    id: i64,
    name: String,
    type_: String,
    status: String,
    verified_at: Option<StoredTime>,
    verification_error: String,
    mission_id: Option<i64>,
    owner_id: i64,
    original_filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
    uploaded_at: StoredTime,
    updated_at: StoredTime,
}

/// A stored value that does not parse (the database checks should prevent it).
fn corrupt(id: i64, field: &str, error: impl std::fmt::Display) -> RepoError {
    RepoError::Other(format!(
        "document {id} has an invalid stored {field}: {error}"
    ))
}

fn to_document(row: DocumentRow) -> RepoResult<Document> {
    let id = row.id;
    Ok(Document {
        id: DocumentId(id),
        name: DocumentName::parse(&row.name).map_err(|e| corrupt(id, "name", e))?,
        kind: DocumentType::parse(&row.type_).map_err(|e| corrupt(id, "type", e))?,
        status: DocumentStatus::parse(&row.status).map_err(|e| corrupt(id, "status", e))?,
        verified_at: row.verified_at.map(from_db),
        verification_error: row.verification_error,
        mission: row.mission_id.map(MissionId),
        owner: UserId(row.owner_id),
        original_filename: OriginalFilename::sanitize(&row.original_filename),
        content_type: row.content_type,
        size: u64::try_from(row.size).map_err(|e| corrupt(id, "size", e))?,
        sha256: row.sha256,
        storage_key: StorageKey::parse(&row.storage_key)
            .map_err(|e| corrupt(id, "storage key", e))?,
        uploaded_at: from_db(row.uploaded_at),
        updated_at: from_db(row.updated_at),
    })
}

fn to_db_size(size: u64) -> RepoResult<i64> {
    i64::try_from(size).map_err(|_| RepoError::ConstraintViolation("document size".into()))
}

/// Appends one sort key.
fn then_order(
    query: document::BoxedQuery<'_, Db>,
    item: DocumentOrderField,
) -> document::BoxedQuery<'_, Db> {
    use DocumentSortKey as Key;
    match (item.field, item.descending) {
        (Key::UploadedAt, false) => query.then_order_by(document::uploaded_at.asc()),
        (Key::UploadedAt, true) => query.then_order_by(document::uploaded_at.desc()),
        (Key::Name, false) => query.then_order_by(document::name.asc()),
        (Key::Name, true) => query.then_order_by(document::name.desc()),
        (Key::Size, false) => query.then_order_by(document::size.asc()),
        (Key::Size, true) => query.then_order_by(document::size.desc()),
    }
}

impl DieselRepos<'_> {
    fn document_row(&mut self, id: i64, owner: Option<UserId>) -> RepoResult<Option<DocumentRow>> {
        let mut query = document::table.filter(document::id.eq(id)).into_boxed();
        if let Some(owner) = owner {
            query = query.filter(document::owner_id.eq(owner.0));
        }
        query
            .select(DocumentRow::as_select())
            .first(self.conn)
            .optional()
            .repo()
    }
}

impl DocumentRepository for DieselRepos<'_> {
    fn create(&mut self, new: &NewDocument, now: DateTime<Utc>) -> RepoResult<Document> {
        let id: i64 = diesel::insert_into(document::table)
            .values((
                document::name.eq(new.name.as_str()),
                document::type_.eq(new.kind.as_str()),
                document::status.eq(DocumentStatus::Uploaded.as_str()),
                document::verified.eq(false),
                document::verification_error.eq(""),
                document::mission_id.eq(new.mission.map(|mission| mission.0)),
                document::owner_id.eq(new.owner.0),
                document::original_filename.eq(new.original_filename.as_str()),
                document::content_type.eq(new.content_type.mime()),
                document::size.eq(to_db_size(new.size)?),
                document::sha256.eq(&new.sha256),
                document::storage_key.eq(new.storage_key.as_str()),
                document::uploaded_at.eq(to_db(now)),
                document::updated_at.eq(to_db(now)),
            ))
            .returning(document::id)
            .get_result(self.conn)
            .repo()?;
        let row = self
            .document_row(id, None)?
            .ok_or_else(|| RepoError::Other("document vanished after insert".into()))?;
        to_document(row)
    }

    fn find(&mut self, id: DocumentId, owner: Option<UserId>) -> RepoResult<Option<Document>> {
        let id = id.0;
        self.document_row(id, owner)?.map(to_document).transpose()
    }

    fn list(&mut self, query: &DocumentQuery) -> RepoResult<PageResult<Document>> {
        let filtered = || {
            let mut select = document::table.into_boxed::<Db>();
            if let Some(owner) = query.owner {
                select = select.filter(document::owner_id.eq(owner.0));
            }
            if !query.missions.is_empty() {
                select = select.filter(
                    document::mission_id.eq_any(
                        query
                            .missions
                            .iter()
                            .map(|mission| mission.0)
                            .collect::<Vec<_>>(),
                    ),
                );
            }
            if !query.kinds.is_empty() {
                let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
                select = select.filter(document::type_.eq_any(kinds));
            }
            if !query.statuses.is_empty() {
                let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
                select = select.filter(document::status.eq_any(statuses));
            }
            if let Some(verified) = query.verified {
                select = select.filter(document::verified.eq(verified));
            }
            if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
                select = select.filter(
                    lower(document::name)
                        .like(contains_pattern(search))
                        .escape('\\'),
                );
            }
            select
        };
        let ordering: &[DocumentOrderField] = if query.ordering.is_empty() {
            &[DocumentOrderField::DEFAULT]
        } else {
            &query.ordering
        };
        let mut ordered = filtered();
        for item in ordering {
            ordered = then_order(ordered, *item);
        }
        // A total order, so pages never overlap: the id breaks ties, in the
        // direction of the first key.
        ordered = if ordering[0].descending {
            ordered.then_order_by(document::id.desc())
        } else {
            ordered.then_order_by(document::id.asc())
        };
        let rows = ordered.select(DocumentRow::as_select());
        paginate(
            self.conn,
            &query.page,
            filtered().count(),
            rows,
            to_document,
        )
    }

    fn list_for_mission(&mut self, mission: MissionId) -> RepoResult<Vec<Document>> {
        let mission = mission.0;
        document::table
            .filter(document::mission_id.eq(mission))
            .order_by((document::uploaded_at.desc(), document::id.desc()))
            .select(DocumentRow::as_select())
            .load(self.conn)
            .repo()?
            .into_iter()
            .map(to_document)
            .collect()
    }

    fn update(
        &mut self,
        id: DocumentId,
        changes: &DocumentChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let id = id.0;
        #[derive(AsChangeset)]
        #[diesel(table_name = document)]
        struct Changeset<'a> {
            name: Option<&'a str>,
            type_: Option<&'static str>,
            mission_id: Option<Option<i64>>,
            updated_at: NaiveDateTime,
        }
        let changeset = Changeset {
            name: changes.name.as_ref().map(DocumentName::as_str),
            type_: changes.kind.map(DocumentType::as_str),
            mission_id: changes
                .mission
                .map(|mission| mission.map(|mission| mission.0)),
            updated_at: to_db(now),
        };
        diesel::update(document::table.find(id))
            .set(changeset)
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn set_verification(
        &mut self,
        id: DocumentId,
        verification: &DocumentVerification,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let id = id.0;
        diesel::update(document::table.find(id))
            .set((
                document::status.eq(verification.status.as_str()),
                document::verified.eq(verification.status.is_verified()),
                document::verified_at.eq(verification.verified_at.map(to_db)),
                document::verification_error.eq(&verification.error),
                document::updated_at.eq(to_db(now)),
            ))
            .execute(self.conn)
            .repo()?;
        Ok(())
    }

    fn delete(&mut self, id: DocumentId) -> RepoResult<bool> {
        let id = id.0;
        let deleted = diesel::delete(document::table.find(id))
            .execute(self.conn)
            .repo()?;
        Ok(deleted > 0)
    }

    fn existing_storage_keys(&mut self, keys: &[StorageKey]) -> RepoResult<Vec<StorageKey>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&str> = keys.iter().map(StorageKey::as_str).collect();
        let found: Vec<String> = document::table
            .filter(document::storage_key.eq_any(wanted))
            .select(document::storage_key)
            .load(self.conn)
            .repo()?;
        found
            .iter()
            .map(|key| StorageKey::parse(key).map_err(|e| corrupt(0, "storage key", e)))
            .collect()
    }

    fn any_exist(&mut self) -> RepoResult<bool> {
        diesel::select(diesel::dsl::exists(document::table.select(document::id)))
            .get_result(self.conn)
            .repo()
    }
}
