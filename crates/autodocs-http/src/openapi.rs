//! The OpenAPI document, generated from the handlers' annotations and the
//! schema-only types of [`crate::schemas`].
//!
//! What every operation shares is added here, once, by [`CommonResponses`]
//! rather than repeated in each annotation: the 401 of every operation that
//! needs a token, the 400/408/413/415 that reading any request body can
//! answer, and a `default` error for what can happen anywhere (405, 429,
//! 503, 500). The tests at the end hold the document to the route table.

use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::{routes, schemas};

/// The name of the bearer JWT security scheme.
pub const BEARER: &str = "bearer";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `/api/auth/login/` or `/api/auth/token/`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the responses every operation of a kind shares (see the module docs).
struct CommonResponses;

fn text_header(description: &str) -> Header {
    let mut header = Header::new(Object::with_type(Type::String));
    header.description = Some(description.to_owned());
    header
}

fn json_response(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(schema))),
    )
}

fn unauthorized() -> Response {
    json_response(
        "No, invalid or expired credentials (`not_authenticated`, `token_not_valid`)",
        "Detail",
    )
    .header(
        "WWW-Authenticate",
        text_header("`Bearer realm=\"api\"`: the scheme to authenticate with"),
    )
    .build()
}

fn any_error() -> Response {
    json_response(
        "Another error that can happen on any operation: 405 (method not allowed), 429 \
         (throttled; `Retry-After`), 503 (`service_unavailable`; `Retry-After`), 500 \
         (`request_id`)",
        "Error",
    )
    .header("Retry-After", text_header("Seconds to wait (429 and 503)"))
    .build()
}

/// Every operation of a path item, with whether it is a `HEAD` (whose
/// responses have no body).
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (bool, &mut Operation)> {
    [
        (false, &mut item.get),
        (false, &mut item.put),
        (false, &mut item.post),
        (false, &mut item.delete),
        (false, &mut item.options),
        (true, &mut item.head),
        (false, &mut item.patch),
        (false, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(head, operation)| operation.as_mut().map(|operation| (head, operation)))
}

fn needs_token(operation: &Operation) -> bool {
    serde_json::to_value(&operation.security)
        .ok()
        .and_then(|security| {
            security
                .as_array()
                .map(|requirements| requirements.iter().any(|r| r.get(BEARER).is_some()))
        })
        .unwrap_or(false)
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for (head, operation) in operations_mut(item) {
                let has_body = operation.request_body.is_some();
                let secured = needs_token(operation);
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, mut response: Response| {
                    if head {
                        response.content.clear();
                    }
                    responses
                        .entry(status.to_owned())
                        .or_insert(RefOr::T(response));
                };
                if secured {
                    add("401", unauthorized());
                }
                if has_body {
                    add(
                        "400",
                        json_response("Malformed or invalid body", "BadRequest").build(),
                    );
                    add(
                        "408",
                        json_response("The body stopped arriving (`request_timeout`)", "Detail")
                            .build(),
                    );
                    add(
                        "413",
                        json_response("The body is too large (`file_too_large`)", "Detail").build(),
                    );
                    add(
                        "415",
                        json_response(
                            "A content type the operation does not take (`unsupported_media_type`)",
                            "Detail",
                        )
                        .build(),
                    );
                }
                add("default", any_error());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AutoDocs API",
        version = "1.0.0",
        description = "Missions, plan steps, documents and activities. Errors are JSON: `Detail` \
            (`{detail, code?}`) or `ValidationError` (field name → messages). Authenticate with \
            `Authorization: Bearer <access token>`."
    ),
    paths(
        routes::auth::register,
        routes::auth::login,
        routes::auth::token,
        routes::auth::refresh,
        routes::auth::verify,
        routes::auth::logout,
        routes::users::me,
        routes::users::update_me,
        routes::users::replace_me,
        routes::users::change_password,
        routes::users::list,
        routes::users::detail,
        routes::users::update,
        routes::users::replace,
        routes::users::delete,
        routes::missions::list,
        routes::missions::create,
        routes::missions::detail,
        routes::missions::patch,
        routes::missions::put,
        routes::missions::delete,
        routes::missions::start,
        routes::missions::pause,
        routes::missions::resume,
        routes::missions::complete,
        routes::missions::cancel,
        routes::steps::list,
        routes::steps::create,
        routes::steps::detail,
        routes::steps::update,
        routes::steps::delete,
        routes::activities::list,
        routes::activities::create,
        routes::activities::detail,
        routes::documents::upload,
        routes::documents::list,
        routes::documents::detail,
        routes::documents::update,
        routes::documents::delete,
        routes::documents::download,
        routes::documents::download_head,
        routes::documents::download_link,
        routes::documents::verify,
        routes::ops::health,
        routes::ops::schema,
        routes::apidocs::page,
        routes::apidocs::asyncapi,
    ),
    components(schemas(
        schemas::Mission,
        schemas::MissionDetail,
        schemas::PlanStep,
        schemas::StepAction,
        schemas::Document,
        schemas::Activity,
        schemas::User,
        schemas::Profile,
        schemas::TokenPair,
        schemas::AuthSession,
        schemas::Health,
        schemas::PaginatedMissionList,
        schemas::PaginatedDocumentList,
        schemas::PaginatedActivityList,
        schemas::PaginatedUserList,
        schemas::Detail,
        schemas::TokenMessage,
        schemas::ErrorCode,
        schemas::ValidationError,
        schemas::BadRequest,
        schemas::Error,
        schemas::Empty,
        schemas::MissionStatus,
        schemas::MissionType,
        schemas::Priority,
        schemas::StepStatus,
        schemas::DocumentType,
        schemas::DocumentStatus,
        schemas::MissionOrdering,
        schemas::DocumentOrdering,
        schemas::UserOrdering,
        schemas::PageNumber,
        schemas::MissionCreate,
        schemas::MissionReplace,
        schemas::MissionUpdate,
        schemas::PlanStepDraft,
        schemas::PlanStepCreate,
        schemas::PlanStepUpdate,
        schemas::DocumentUpload,
        schemas::DocumentUpdate,
        schemas::ActivityCreate,
        schemas::Register,
        schemas::Login,
        schemas::TokenObtain,
        schemas::TokenRefresh,
        schemas::TokenVerify,
        schemas::Logout,
        schemas::UserMeUpdate,
        schemas::ProfileUpdate,
        schemas::UserAdminUpdate,
        schemas::PasswordChange,
        schemas::FileBytes,
        schemas::OpenApiDocument,
        routes::documents::DownloadLink,
    )),
    tags(
        (name = "auth", description = "Registration, login and JWTs (SimpleJWT's endpoints)."),
        (name = "users", description = "The caller's account; staff manage every account."),
        (name = "missions", description = "Missions and their lifecycle actions."),
        (name = "steps", description = "A mission's plan: a tree of steps."),
        (name = "documents", description = "Uploads, downloads and verification."),
        (name = "activities", description = "The append-only audit log."),
        (name = "ops", description = "Health and this document."),
    ),
    modifiers(&BearerAuth, &CommonResponses),
)]
struct ApiDoc;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use serde_json::Value;

    use super::*;

    /// Operations that need no token: they are how a client gets one, or
    /// what a monitor or a client generator reads.
    const PUBLIC: [&str; 10] = [
        "auth_register",
        "auth_login",
        "auth_token",
        "auth_token_refresh",
        "auth_token_verify",
        "auth_logout",
        "health_retrieve",
        "schema_retrieve",
        "docs_retrieve",
        "asyncapi_retrieve",
    ];

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn json() -> Value {
        serde_json::to_value(document()).unwrap_or_default()
    }

    /// Every `(METHOD, path)` of the document.
    fn documented(document: &Value) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        if let Some(paths) = document["paths"].as_object() {
            for (path, item) in paths {
                for method in METHODS {
                    if item.get(method).is_some() {
                        found.insert((method.to_ascii_uppercase(), path.clone()));
                    }
                }
            }
        }
        found
    }

    /// Every `(METHOD, path)` of the route table under `/api/` (the
    /// sockets are in the AsyncAPI document, not this one).
    fn routed(routes: &[(actix_web::http::Method, &str)]) -> BTreeSet<(String, String)> {
        routes
            .iter()
            .filter(|(_, path)| path.starts_with("/api/"))
            .map(|(method, path)| (method.as_str().to_owned(), (*path).to_owned()))
            .collect()
    }

    /// Both directions of route/schema parity, as messages.
    fn parity(
        routed: &BTreeSet<(String, String)>,
        documented: &BTreeSet<(String, String)>,
    ) -> Vec<String> {
        let mut problems: Vec<String> = routed
            .difference(documented)
            .map(|(method, path)| format!("{method} {path} is routed but not in the schema"))
            .collect();
        problems.extend(
            documented
                .difference(routed)
                .map(|(method, path)| format!("{method} {path} is in the schema but not routed")),
        );
        problems
    }

    fn operations(document: &Value) -> Vec<(String, String, &Value)> {
        let mut found = Vec::new();
        if let Some(paths) = document["paths"].as_object() {
            for (path, item) in paths {
                for method in METHODS {
                    if let Some(operation) = item.get(method) {
                        found.push((method.to_owned(), path.clone(), operation));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_routed_operation_is_documented_and_nothing_else() {
        let routed = routed(&crate::routes());
        let documented = documented(&json());
        assert!(routed.len() > 30, "the route table is read: {routed:?}");
        let problems = parity(&routed, &documented);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn parity_fails_on_a_missing_or_an_extra_operation() {
        // The same check as above, on a route table one route short and
        // one route long: both must be reported.
        let document = json();
        let documented = documented(&document);
        let mut routes = crate::routes();
        let dropped = routes
            .iter()
            .position(|(method, path)| {
                method == actix_web::http::Method::POST && *path == "/api/missions/{id}/start/"
            })
            .map(|index| routes.remove(index));
        assert!(dropped.is_some(), "the start action is routed");
        routes.push((actix_web::http::Method::PUT, "/api/activities/{id}/"));
        let problems = parity(&routed(&routes), &documented);
        assert_eq!(
            problems,
            vec![
                "PUT /api/activities/{id}/ is routed but not in the schema".to_owned(),
                "POST /api/missions/{id}/start/ is in the schema but not routed".to_owned(),
            ]
        );
    }

    #[test]
    fn operation_ids_are_unique_and_present() {
        let document = json();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (method, path, operation) in operations(&document) {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has an operationId"));
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{id} is snake_case"
            );
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("{id} names both {other} and {method} {path}");
            }
        }
    }

    #[test]
    fn every_response_has_a_description_and_a_body_schema_where_it_has_a_body() {
        let document = json();
        for (method, path, operation) in operations(&document) {
            let responses = operation["responses"].as_object();
            let responses = responses.unwrap_or_else(|| panic!("{method} {path} has responses"));
            assert!(responses.contains_key("default"), "{method} {path} default");
            for (status, response) in responses {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(
                    !description.is_empty(),
                    "{method} {path} {status} description"
                );
                let bodiless = method == "head" || ["204", "205", "304"].contains(&status.as_str());
                let content = response["content"].as_object();
                if bodiless {
                    assert!(content.is_none(), "{method} {path} {status} has no body");
                    continue;
                }
                let content = content.unwrap_or_else(|| panic!("{method} {path} {status} content"));
                for (media, body) in content {
                    assert!(
                        body.get("schema").is_some(),
                        "{method} {path} {status} {media} has a schema"
                    );
                }
            }
        }
    }

    #[test]
    fn every_operation_but_the_public_ones_needs_a_bearer_token() {
        let document = json();
        assert_eq!(
            document["components"]["securitySchemes"][BEARER],
            serde_json::json!({
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from `/api/auth/login/` or `/api/auth/token/`.",
            })
        );
        for (method, path, operation) in operations(&document) {
            let id = operation["operationId"].as_str().unwrap_or_default();
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|all| all.iter().any(|r| r.get(BEARER).is_some()));
            if PUBLIC.contains(&id) {
                assert!(!bearer, "{method} {path} ({id}) is public");
            } else {
                assert!(bearer, "{method} {path} ({id}) needs a bearer token");
                assert!(
                    operation["responses"]["401"]["headers"]
                        .get("WWW-Authenticate")
                        .is_some(),
                    "{method} {path} documents its 401's WWW-Authenticate"
                );
            }
        }
    }

    #[test]
    fn json_bodies_are_typed_and_under_application_json() {
        let document = json();
        for (method, path, operation) in operations(&document) {
            let Some(body) = operation.get("requestBody") else {
                continue;
            };
            let content = body["content"].as_object();
            let content = content.unwrap_or_else(|| panic!("{method} {path} body content"));
            for (media, schema) in content {
                assert!(
                    media == "application/json" || media == "multipart/form-data",
                    "{method} {path} takes {media}"
                );
                let reference = schema["schema"]["$ref"].as_str().unwrap_or_default();
                assert!(
                    reference.starts_with("#/components/schemas/"),
                    "{method} {path} has a named write schema, not {}",
                    schema["schema"]
                );
            }
        }
    }

    #[test]
    fn enums_come_from_the_domain() {
        use autodocs_domain::mission::MissionStatus;
        let document = json();
        let schemas = &document["components"]["schemas"];
        let statuses: Vec<&str> = MissionStatus::ALL.map(MissionStatus::as_str).to_vec();
        assert_eq!(
            schemas["MissionStatus"]["enum"],
            serde_json::json!(statuses)
        );
        let mapping = schemas["StepAction"]["discriminator"]["mapping"]
            .as_object()
            .map(|mapping| mapping.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default();
        let kinds = autodocs_domain::plan_step::StepAction::KINDS
            .map(str::to_owned)
            .into_iter()
            .collect::<BTreeSet<_>>();
        assert_eq!(mapping, kinds);
        for kind in kinds {
            let reference = schemas["StepAction"]["discriminator"]["mapping"][&kind]
                .as_str()
                .unwrap_or_default();
            let name = reference.trim_start_matches("#/components/schemas/");
            assert_eq!(
                schemas[name]["properties"]["kind"]["enum"],
                serde_json::json!([kind]),
                "{name}"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, schemas: &Value, missing: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        let name = reference.trim_start_matches("#/components/schemas/");
                        if schemas.get(name).is_none() {
                            missing.push(reference.clone());
                        }
                    }
                    map.values().for_each(|value| walk(value, schemas, missing));
                }
                Value::Array(items) => items.iter().for_each(|value| walk(value, schemas, missing)),
                _ => {}
            }
        }
        let document = json();
        let mut missing = Vec::new();
        walk(&document, &document["components"]["schemas"], &mut missing);
        assert!(missing.is_empty(), "unresolved: {missing:?}");
    }
}
