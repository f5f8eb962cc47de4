//! Schema-only types of the OpenAPI document.
//!
//! The handlers render JSON by hand (see [`crate::views`]) because that is
//! fast; these types exist only to describe, in `/api/schema/`, what the
//! handlers send and accept. They are never built at run time. Drift
//! between the two is caught by the black-box suite, which validates every
//! response it sees against this document.
//!
//! Enumerations are built from the domain's value lists (`ALL`, `KINDS`),
//! so a new status or type cannot be missing from the document.

use std::borrow::Cow;

use autodocs_domain::document::DocumentType as DomainDocumentType;
use autodocs_domain::document::{DocumentSortKey, DocumentStatus as DomainDocumentStatus};
use autodocs_domain::mission::{
    MissionSortKey, MissionStatus as DomainMissionStatus, MissionType as DomainMissionType,
    Priority as DomainPriority,
};
use autodocs_domain::plan_step::{StepAction as DomainStepAction, StepStatus as DomainStepStatus};
use autodocs_domain::user::UserSortKey;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A string schema whose values are exactly `values`.
fn string_enum<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values.into_iter().collect::<Vec<_>>()))
        .into()
}

/// Declares a schema-only unit type whose schema is `$schema`.
macro_rules! manual_schema {
    ($(#[$meta:meta])* $name:ident => $schema:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

manual_schema!(
    /// A mission's lifecycle status (read-only: changed by the actions).
    MissionStatus => string_enum(
        "A mission's lifecycle status; changed only by the actions.",
        DomainMissionStatus::ALL.map(DomainMissionStatus::as_str),
    )
);

manual_schema!(
    /// What a mission is about.
    MissionType => string_enum("What a mission is about.", DomainMissionType::ALL.map(DomainMissionType::as_str))
);

manual_schema!(
    /// A mission's priority; ordering by it means urgency.
    Priority => string_enum(
        "A mission's priority; ordering by priority means urgency, not the alphabet.",
        DomainPriority::ALL.map(DomainPriority::as_str),
    )
);

manual_schema!(
    /// A plan step's status.
    StepStatus => string_enum("A plan step's status.", DomainStepStatus::ALL.map(DomainStepStatus::as_str))
);

manual_schema!(
    /// What kind of document a file is.
    DocumentType => string_enum("What kind of document a file is.", DomainDocumentType::ALL.map(DomainDocumentType::as_str))
);

manual_schema!(
    /// A document's verification status.
    DocumentStatus => string_enum("A document's verification status.", DomainDocumentStatus::ALL.map(DomainDocumentStatus::as_str))
);

/// One item of a list's `?ordering=`: each of `fields`, ascending and (`-`)
/// descending.
fn ordering_schema(noun: &str, fields: &[&'static str]) -> RefOr<Schema> {
    let values: Vec<String> = fields
        .iter()
        .flat_map(|field| [(*field).to_owned(), format!("-{field}")])
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "A field to sort {noun} by; a leading `-` sorts descending."
        )))
        .enum_values(Some(values))
        .into()
}

manual_schema!(
    /// One item of a mission list's `?ordering=`.
    MissionOrdering => ordering_schema("missions", &MissionSortKey::ALL.map(MissionSortKey::as_str))
);

manual_schema!(
    /// One item of a document list's `?ordering=`.
    DocumentOrdering => ordering_schema("documents", &DocumentSortKey::ALL.map(DocumentSortKey::as_str))
);

manual_schema!(
    /// One item of the user list's `?ordering=`.
    UserOrdering => ordering_schema("users", &UserSortKey::ALL.map(UserSortKey::as_str))
);

/// The component name of the [`StepAction`] variant of `kind`.
fn action_variant_name(kind: &str) -> String {
    let camel: String = kind
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("StepAction{camel}")
}

/// The schema of the [`StepAction`] variant of `kind`.
fn action_variant(kind: &str) -> RefOr<Schema> {
    let object = ObjectBuilder::new()
        .property("kind", string_enum("The action's kind.", [kind]))
        .required("kind");
    let object = match kind {
        "wait" => object
            .description(Some("A timer run by the background workers."))
            .property(
                "seconds",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(DomainStepAction::MAX_WAIT_SECONDS)),
            )
            .required("seconds"),
        "fetch_url" => object
            .description(Some(
                "Downloads a document into the mission (private addresses are refused).",
            ))
            .property(
                "url",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::Custom("uri".to_owned()))),
            )
            .required("url"),
        "verify_documents" => object.description(Some("Verifies every document of the mission.")),
        _ => object.description(Some("Done by the user; the workers wait for it.")),
    };
    object.into()
}

/// A plan step's action: a union tagged by `kind`.
pub struct StepAction;

impl PartialSchema for StepAction {
    fn schema() -> RefOr<Schema> {
        let mut discriminator = Discriminator::new("kind");
        let mut union = OneOfBuilder::new().description(Some(
            "What a step does: `manual` (the default) waits for the user; the others are run by the background workers.",
        ));
        for kind in DomainStepAction::KINDS {
            let name = action_variant_name(kind);
            discriminator
                .mapping
                .insert(kind.to_owned(), format!("#/components/schemas/{name}"));
            union = union.item(Ref::from_schema_name(name));
        }
        union.discriminator(Some(discriminator)).into()
    }
}

impl ToSchema for StepAction {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StepAction")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for kind in DomainStepAction::KINDS {
            schemas.push((action_variant_name(kind), action_variant(kind)));
        }
    }
}

/// The error codes the server puts in a [`Detail`]'s `code`.
pub const ERROR_CODES: [&str; 11] = [
    "not_authenticated",
    "token_not_valid",
    "authentication_failed",
    "invalid_transition",
    "file_too_large",
    "unsupported_file_type",
    "unsupported_media_type",
    "request_timeout",
    "service_unavailable",
    "link_invalid",
    "link_expired",
];

manual_schema!(
    /// A machine-readable error code.
    ErrorCode => string_enum("A machine-readable error code.", ERROR_CODES)
);

/// An error with a message: `{"detail", "code"?}` (the 500 adds `request_id`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Detail {
    /// A human-readable message.
    detail: String,
    /// Which error it is, where the contract names one.
    #[schema(required = false)]
    code: ErrorCode,
    /// The id to quote when reporting a server error (500 only).
    #[schema(required = false)]
    request_id: String,
    /// Why a token was refused (`token_not_valid` only).
    #[schema(required = false)]
    messages: Vec<TokenMessage>,
}

/// Why a token was refused.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenMessage {
    /// The reason.
    message: String,
}

/// The messages of one field.
fn messages() -> ArrayBuilder {
    ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String))
}

manual_schema!(
    /// Field errors, DRF style.
    ValidationError => ObjectBuilder::new()
        .description(Some(
            "Errors by field name (`non_field_errors` for the body as a whole); only the fields \
             that failed. A nested object (`profile`) has its own fields' errors.",
        ))
        .additional_properties(Some(
            RefOr::<Schema>::from(
                OneOfBuilder::new()
                    .item(messages())
                    .item(ObjectBuilder::new().additional_properties(Some(messages()))),
            ),
        ))
        .into()
);

manual_schema!(
    /// The body of a 400: field errors, or a `detail` (malformed JSON or form).
    BadRequest => AnyOfBuilder::new()
        .item(Ref::from_schema_name("ValidationError"))
        .item(Ref::from_schema_name("Detail"))
        .into()
);

manual_schema!(
    /// Any error body.
    Error => AnyOfBuilder::new()
        .item(Ref::from_schema_name("Detail"))
        .item(Ref::from_schema_name("ValidationError"))
        .into()
);

manual_schema!(
    /// An empty JSON object.
    Empty => ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An empty JSON object."))
        .into()
);

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// A mission, as lists show it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Mission {
    #[schema(read_only)]
    id: i64,
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    description: String,
    #[schema(rename = "type")]
    kind: MissionType,
    #[schema(read_only)]
    status: MissionStatus,
    priority: Priority,
    /// The share of leaf steps done, in percent.
    #[schema(read_only, minimum = 0, maximum = 100)]
    progress: u8,
    /// The owner's user id.
    #[schema(read_only)]
    owner: i64,
    #[schema(required = true, format = DateTime)]
    deadline: Option<String>,
    #[schema(read_only, required = true, format = DateTime)]
    started_at: Option<String>,
    #[schema(read_only, required = true, format = DateTime)]
    completed_at: Option<String>,
    #[schema(read_only, format = DateTime)]
    created_at: String,
    #[schema(read_only, format = DateTime)]
    updated_at: String,
    #[schema(read_only)]
    steps_total: u64,
    #[schema(read_only)]
    steps_completed: u64,
    #[schema(read_only)]
    document_count: u64,
}

/// A mission with its plan and documents.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MissionDetail {
    #[schema(read_only)]
    id: i64,
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    description: String,
    #[schema(rename = "type")]
    kind: MissionType,
    #[schema(read_only)]
    status: MissionStatus,
    priority: Priority,
    /// The share of leaf steps done, in percent.
    #[schema(read_only, minimum = 0, maximum = 100)]
    progress: u8,
    /// The owner's user id.
    #[schema(read_only)]
    owner: i64,
    #[schema(required = true, format = DateTime)]
    deadline: Option<String>,
    #[schema(read_only, required = true, format = DateTime)]
    started_at: Option<String>,
    #[schema(read_only, required = true, format = DateTime)]
    completed_at: Option<String>,
    #[schema(read_only, format = DateTime)]
    created_at: String,
    #[schema(read_only, format = DateTime)]
    updated_at: String,
    #[schema(read_only)]
    steps_total: u64,
    #[schema(read_only)]
    steps_completed: u64,
    #[schema(read_only)]
    document_count: u64,
    /// The plan: root steps, each with its `children`.
    #[schema(read_only)]
    plan_steps: Vec<PlanStep>,
    /// The mission's documents.
    #[schema(read_only)]
    documents: Vec<Document>,
}

/// A plan step with its children (every view renders the subtree).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlanStep {
    #[schema(read_only)]
    id: i64,
    /// The mission's id.
    #[schema(read_only)]
    mission: i64,
    /// The parent step's id; null for a root step.
    #[schema(required = true)]
    parent: Option<i64>,
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    description: String,
    /// Position among siblings.
    order: i32,
    status: StepStatus,
    action: StepAction,
    #[schema(read_only, required = true, format = DateTime)]
    started_at: Option<String>,
    #[schema(read_only, required = true, format = DateTime)]
    completed_at: Option<String>,
    #[schema(read_only, format = DateTime)]
    created_at: String,
    #[schema(read_only, format = DateTime)]
    updated_at: String,
    /// The child steps, in order.
    #[schema(read_only, no_recursion)]
    children: Vec<PlanStep>,
}

/// An uploaded document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Document {
    #[schema(read_only)]
    id: i64,
    name: String,
    #[schema(rename = "type")]
    kind: DocumentType,
    #[schema(read_only)]
    status: DocumentStatus,
    #[schema(read_only)]
    verified: bool,
    #[schema(read_only, required = true, format = DateTime)]
    verified_at: Option<String>,
    /// Why verification rejected the file; empty otherwise.
    #[schema(read_only)]
    verification_error: String,
    /// The mission's id, if the document belongs to one.
    #[schema(required = true)]
    mission: Option<i64>,
    /// The owner's user id.
    #[schema(read_only)]
    owner: i64,
    #[schema(read_only)]
    original_filename: String,
    /// The sniffed media type.
    #[schema(read_only)]
    content_type: String,
    /// Bytes.
    #[schema(read_only)]
    size: u64,
    /// Hex SHA-256 of the bytes (also the download's `ETag`).
    #[schema(read_only, pattern = "^[0-9a-f]{64}$")]
    sha256: String,
    /// Where the bytes are (needs the `Authorization` header).
    #[schema(read_only, format = "uri")]
    download_url: String,
    #[schema(read_only, format = DateTime)]
    uploaded_at: String,
    #[schema(read_only, format = DateTime)]
    updated_at: String,
}

/// An entry of the audit log.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Activity {
    #[schema(read_only)]
    id: i64,
    /// A system type (`mission_created`, ...) or a custom one.
    #[schema(rename = "type", pattern = "^[a-z][a-z0-9_]{0,49}$")]
    kind: String,
    message: String,
    #[schema(value_type = Object)]
    details: serde_json::Map<String, serde_json::Value>,
    /// The acting user's id.
    #[schema(read_only, required = true)]
    user: Option<i64>,
    #[schema(required = true)]
    mission: Option<i64>,
    #[schema(required = true)]
    document: Option<i64>,
    #[schema(read_only, format = DateTime)]
    timestamp: String,
}

/// A user's profile.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Profile {
    phone: String,
    organization: String,
    bio: String,
    /// An IANA time zone name.
    timezone: String,
    /// Free-form settings, at most 16 KiB.
    #[schema(value_type = Object)]
    preferences: serde_json::Map<String, serde_json::Value>,
}

/// A user account.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct User {
    #[schema(read_only)]
    id: i64,
    #[schema(read_only)]
    username: String,
    #[schema(format = IdnEmail)]
    email: String,
    first_name: String,
    last_name: String,
    #[schema(read_only)]
    is_staff: bool,
    #[schema(read_only, format = DateTime)]
    date_joined: String,
    #[schema(read_only, required = true, format = DateTime)]
    last_login: Option<String>,
    profile: Profile,
}

/// A pair of JWTs.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenPair {
    /// The access token (short-lived).
    #[schema(read_only)]
    access: String,
    /// The refresh token (rotates on use).
    #[schema(read_only)]
    refresh: String,
}

/// A logged-in session: the user and their tokens.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuthSession {
    #[schema(read_only)]
    user: User,
    #[schema(read_only)]
    access: String,
    #[schema(read_only)]
    refresh: String,
}

manual_schema!(
    /// The server's and database's state.
    Health => ObjectBuilder::new()
        .property("status", string_enum("`ok`, or `error` when the database is down.", ["ok", "error"]))
        .required("status")
        .property("database", string_enum("`ok` or `unavailable`.", ["ok", "unavailable"]))
        .required("database")
        .into()
);

/// Declares a DRF page of `$item`.
macro_rules! page {
    ($(#[$meta:meta])* $name:ident, $item:ty) => {
        $(#[$meta])*
        #[derive(ToSchema)]
        #[allow(dead_code)]
        pub struct $name {
            /// Items in every page.
            #[schema(read_only)]
            count: u64,
            /// The next page, absolute; null on the last page.
            #[schema(read_only, required = true, format = "uri")]
            next: Option<String>,
            /// The previous page, absolute; null on the first page.
            #[schema(read_only, required = true, format = "uri")]
            previous: Option<String>,
            #[schema(read_only)]
            results: Vec<$item>,
        }
    };
}

page!(
    /// A page of missions.
    PaginatedMissionList,
    Mission
);
page!(
    /// A page of documents.
    PaginatedDocumentList,
    Document
);
page!(
    /// A page of activities.
    PaginatedActivityList,
    Activity
);
page!(
    /// A page of users.
    PaginatedUserList,
    User
);

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------

/// A step of a new mission's nested plan.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlanStepDraft {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(required = false)]
    description: Option<String>,
    #[schema(required = false)]
    action: StepAction,
    /// Sub-steps, created in order (at most 5 levels in all).
    #[schema(required = false, no_recursion)]
    children: Vec<PlanStepDraft>,
}

/// Creates a mission.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MissionCreate {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(rename = "type")]
    kind: MissionType,
    #[schema(required = false)]
    priority: Priority,
    #[schema(required = false)]
    description: Option<String>,
    #[schema(required = false, format = DateTime)]
    deadline: Option<String>,
    /// The plan: a list of steps with nested `children`, created in order.
    #[schema(required = false)]
    plan_steps: Vec<PlanStepDraft>,
}

/// Replaces a mission's editable fields (PUT).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MissionReplace {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(rename = "type")]
    kind: MissionType,
    #[schema(required = false)]
    priority: Priority,
    #[schema(required = false)]
    description: Option<String>,
    #[schema(required = false, format = DateTime)]
    deadline: Option<String>,
}

/// Changes some of a mission's fields (PATCH).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MissionUpdate {
    #[schema(required = false, min_length = 1, max_length = 200)]
    title: String,
    #[schema(rename = "type", required = false)]
    kind: MissionType,
    #[schema(required = false)]
    priority: Priority,
    #[schema(required = false)]
    description: Option<String>,
    #[schema(required = false, format = DateTime)]
    deadline: Option<String>,
}

/// Adds a step to a mission.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlanStepCreate {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(required = false)]
    description: Option<String>,
    /// The parent step (same mission); null or absent for a root step.
    #[schema(required = false)]
    parent: Option<i64>,
    /// Position among siblings; absent: appended last.
    #[schema(required = false)]
    order: Option<i32>,
    #[schema(required = false)]
    action: StepAction,
}

/// Edits a step (PATCH).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PlanStepUpdate {
    #[schema(required = false, min_length = 1, max_length = 200)]
    title: String,
    #[schema(required = false)]
    description: Option<String>,
    /// Moves the step under another parent (null: to the root).
    #[schema(required = false)]
    parent: Option<i64>,
    #[schema(required = false)]
    order: Option<i32>,
    /// A legal transition from the current status (409 otherwise).
    #[schema(required = false)]
    status: StepStatus,
}

/// A multipart upload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpload {
    /// The file's bytes.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    /// Defaults to the file's name.
    #[schema(required = false)]
    name: String,
    #[schema(rename = "type", required = false)]
    kind: DocumentType,
    /// One of the caller's missions.
    #[schema(required = false)]
    mission: i64,
}

/// Edits a document (PATCH).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpdate {
    #[schema(required = false)]
    name: String,
    #[schema(rename = "type", required = false)]
    kind: DocumentType,
    /// One of the caller's missions, or null to detach.
    #[schema(required = false)]
    mission: Option<i64>,
}

/// Appends a custom activity.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActivityCreate {
    /// A custom type; system types are refused.
    #[schema(rename = "type", pattern = "^[a-z][a-z0-9_]{0,49}$")]
    kind: String,
    #[schema(min_length = 1, max_length = 1000)]
    message: String,
    /// A JSON object of at most 16 KiB.
    #[schema(required = false, value_type = Object)]
    details: serde_json::Map<String, serde_json::Value>,
    #[schema(required = false)]
    mission: Option<i64>,
    #[schema(required = false)]
    document: Option<i64>,
}

/// Creates an account.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Register {
    #[schema(pattern = r"^[\w.@+-]{1,150}$")]
    username: String,
    #[schema(format = IdnEmail)]
    email: String,
    #[schema(min_length = 8, format = Password)]
    password: String,
    #[schema(required = false)]
    first_name: String,
    #[schema(required = false)]
    last_name: String,
}

/// Credentials.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Login {
    /// A username, or an email address.
    username: String,
    #[schema(format = Password)]
    password: String,
}

/// Credentials for a token pair (SimpleJWT's `TokenObtainPair`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenObtain {
    /// A username, or an email address.
    username: String,
    #[schema(format = Password)]
    password: String,
}

/// A refresh token to rotate.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRefresh {
    refresh: String,
}

/// A token to check.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenVerify {
    token: String,
}

/// A refresh token to revoke.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Logout {
    refresh: String,
}

/// Profile fields to change; absent ones are kept.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProfileUpdate {
    #[schema(required = false)]
    phone: Option<String>,
    #[schema(required = false)]
    organization: Option<String>,
    #[schema(required = false)]
    bio: Option<String>,
    /// An IANA time zone name.
    #[schema(required = false)]
    timezone: String,
    /// At most 16 KiB.
    #[schema(required = false, value_type = Object)]
    preferences: serde_json::Map<String, serde_json::Value>,
}

/// Changes the caller's account (PUT and PATCH are both partial); the username is read-only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserMeUpdate {
    #[schema(required = false)]
    first_name: Option<String>,
    #[schema(required = false)]
    last_name: Option<String>,
    #[schema(required = false, format = IdnEmail)]
    email: String,
    #[schema(required = false)]
    profile: ProfileUpdate,
}

/// Staff: changes a user's account (PUT and PATCH are both partial).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserAdminUpdate {
    #[schema(required = false)]
    first_name: Option<String>,
    #[schema(required = false)]
    last_name: Option<String>,
    #[schema(required = false, format = IdnEmail)]
    email: String,
    #[schema(required = false)]
    profile: ProfileUpdate,
    #[schema(required = false)]
    is_active: bool,
    #[schema(required = false)]
    is_staff: bool,
}

/// Changes the caller's password.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordChange {
    #[schema(format = Password)]
    old_password: String,
    #[schema(min_length = 8, format = Password)]
    new_password: String,
}

// ---------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------

manual_schema!(
    /// `?page=`: a page number from 1, or `last`.
    PageNumber => OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .item(string_enum("The last page.", ["last"]))
        .into()
);

/// Declares the paging parameters of a list, then its own.
macro_rules! list_params {
    ($(#[$meta:meta])* $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(IntoParams)]
        #[into_params(parameter_in = Query)]
        #[allow(dead_code)]
        pub struct $name {
            $($fields)*
            /// A page number from 1, or `last`; a page past the end is a 404.
            page: Option<PageNumber>,
            /// Items a page (default 20); more than 100 is taken as 100.
            #[param(minimum = 1)]
            page_size: Option<u32>,
        }
    };
}

list_params!(
    /// Filters of the mission list.
    MissionListParams {
        /// Statuses, comma-separated.
        #[param(style = Form, explode = false)]
        status: Option<Vec<MissionStatus>>,
        /// Types, comma-separated.
        #[param(rename = "type", style = Form, explode = false)]
        kind: Option<Vec<MissionType>>,
        /// Priorities, comma-separated.
        #[param(style = Form, explode = false)]
        priority: Option<Vec<Priority>>,
        /// Staff only: one user's missions (ignored for others).
        owner: Option<i64>,
        /// Case-insensitive substring of the title or description.
        search: Option<String>,
        /// Sort fields, comma-separated (default `-created_at`).
        #[param(style = Form, explode = false)]
        ordering: Option<Vec<MissionOrdering>>,
    }
);

list_params!(
    /// Filters of the document list.
    DocumentListParams {
        /// Mission ids, comma-separated.
        #[param(style = Form, explode = false)]
        mission: Option<Vec<i64>>,
        /// Types, comma-separated.
        #[param(rename = "type", style = Form, explode = false)]
        kind: Option<Vec<DocumentType>>,
        /// Statuses, comma-separated.
        #[param(style = Form, explode = false)]
        status: Option<Vec<DocumentStatus>>,
        /// Verified or not.
        verified: Option<bool>,
        /// Staff only: one user's documents (ignored for others).
        owner: Option<i64>,
        /// Case-insensitive substring of the name.
        search: Option<String>,
        /// Sort fields, comma-separated (default `-uploaded_at`).
        #[param(style = Form, explode = false)]
        ordering: Option<Vec<DocumentOrdering>>,
    }
);

list_params!(
    /// Filters of the activity log (always newest first).
    ActivityListParams {
        /// Activity types, comma-separated.
        #[param(rename = "type", style = Form, explode = false)]
        kind: Option<Vec<String>>,
        /// One mission's activities.
        mission: Option<i64>,
        /// One document's activities.
        document: Option<i64>,
        /// Staff only: one user's activities (ignored for others).
        user: Option<i64>,
        /// From this instant on (RFC 3339).
        #[param(format = DateTime)]
        since: Option<String>,
        /// Up to this instant (RFC 3339).
        #[param(format = DateTime)]
        until: Option<String>,
        /// Case-insensitive substring of the message.
        search: Option<String>,
    }
);

list_params!(
    /// Filters of the user list (staff).
    UserListParams {
        /// Case-insensitive substring of the username or email.
        search: Option<String>,
        /// Active accounts only, or inactive only.
        is_active: Option<bool>,
        /// Staff only, or non-staff only.
        is_staff: Option<bool>,
        /// Sort fields, comma-separated (default `id`).
        #[param(style = Form, explode = false)]
        ordering: Option<Vec<UserOrdering>>,
    }
);

manual_schema!(
    /// The bytes of a stored file, in the document's own content type.
    FileBytes => ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .description(Some("The file's bytes, in the document's own content type."))
        .into()
);

manual_schema!(
    /// An OpenAPI document.
    OpenApiDocument => ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("An OpenAPI 3.1 document."))
        .property("openapi", ObjectBuilder::new().schema_type(Type::String))
        .required("openapi")
        .property("info", ObjectBuilder::new().schema_type(Type::Object))
        .required("info")
        .property("paths", ObjectBuilder::new().schema_type(Type::Object))
        .required("paths")
        .into()
);
