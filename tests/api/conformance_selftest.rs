//! The conformance checker itself: it must fail on responses the document
//! does not describe, or the suite's "every response matches the schema"
//! proves nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::conformance::{Checked, Exchange, Kind, Spec, spec};
use crate::harness::{Backend, TestApp};

/// A small OpenAPI 3.1 document shaped like the real one: component schemas
/// behind `$ref`s, a shared error response, a literal path beside a
/// templated one, a download with a non-JSON body.
fn doc() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/api/things/": {
                "get": {"responses": {
                    "200": {"description": "page", "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["count", "results"],
                        "properties": {
                            "count": {"type": "integer"},
                            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}}
                        }
                    }}}},
                    "4XX": {"$ref": "#/components/responses/Error"}
                }}
            },
            "/api/things/{id}/": {
                "get": {"responses": {
                    "200": {"description": "one", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "404": {"$ref": "#/components/responses/Error"}
                }},
                "delete": {"responses": {"204": {"description": "gone"}}}
            },
            "/api/things/special/": {
                "get": {"responses": {
                    "200": {"description": "a file", "content": {"text/*": {}}}
                }},
                "head": {"responses": {"200": {"description": "headers only"}}}
            },
            "/api/loose/": {
                "get": {"responses": {"200": {"description": "no schema", "content": {"application/json": {}}}}}
            }
        },
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "required": ["id", "name", "created_at", "kind"],
                    "additionalProperties": false,
                    "properties": {
                        "id": {"type": "integer", "readOnly": true},
                        "name": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "kind": {"type": "string", "enum": ["a", "b"]}
                    }
                },
                "Detail": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}}
                }
            },
            "responses": {
                "Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}}
            }
        }
    })
}

fn thing() -> Value {
    json!({"id": 1, "name": "x", "created_at": "2026-11-25T10:00:00.123456Z", "kind": "a"})
}

const JSON: Option<&str> = Some("application/json");

fn check(
    spec: &Spec,
    method: Method,
    url: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Checked, crate::conformance::Failure> {
    spec.check(&Exchange {
        method: &method,
        url,
        status,
        content_type,
        body,
    })
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize")
}

#[track_caller]
fn assert_fails(outcome: Result<Checked, crate::conformance::Failure>, kind: Kind) -> String {
    match outcome {
        Ok(checked) => panic!("expected a {kind:?} failure, the checker passed it ({checked:?})"),
        Err(failure) => {
            assert_eq!(failure.kind, kind, "{failure}");
            failure.to_string()
        }
    }
}

#[test]
fn a_matching_body_passes() {
    let spec = Spec::new(doc());
    let page = json!({"count": 1, "results": [thing()]});
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "http://127.0.0.1:1/api/things/?page=1",
            200,
            JSON,
            &json_bytes(&page)
        )
        .ok(),
        Some(Checked::Validated)
    );
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/api/things/7/",
            200,
            Some("application/json; charset=utf-8"),
            &json_bytes(&thing())
        )
        .ok(),
        Some(Checked::Validated)
    );
    // The error response is shared through components/responses.
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/api/things/7/",
            404,
            JSON,
            br#"{"detail": "Not found."}"#
        )
        .ok(),
        Some(Checked::Validated)
    );
    // A status range covers the status.
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/api/things/",
            401,
            JSON,
            br#"{"detail": "x", "code": "not_authenticated"}"#
        )
        .ok(),
        Some(Checked::Validated)
    );
    assert_eq!(
        check(&spec, Method::DELETE, "/api/things/7/", 204, None, b"").ok(),
        Some(Checked::NoBody)
    );
}

#[test]
fn a_body_that_does_not_match_fails_with_its_pointer() {
    let spec = Spec::new(doc());
    // A missing required field, deep in a list, behind a $ref.
    let mut broken = thing();
    broken.as_object_mut().expect("object").remove("name");
    let page = json!({"count": 1, "results": [thing(), broken]});
    let message = assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/",
            200,
            JSON,
            &json_bytes(&page),
        ),
        Kind::BodyMismatch,
    );
    assert!(
        message.contains("/results/1"),
        "names the pointer: {message}"
    );
    assert!(message.contains("name"), "names the field: {message}");
    assert!(
        message.contains("GET /api/things/ -> 200"),
        "names the exchange: {message}"
    );

    // A wrong type.
    let mut wrong = thing();
    wrong["id"] = json!("1");
    assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/1/",
            200,
            JSON,
            &json_bytes(&wrong),
        ),
        Kind::BodyMismatch,
    );
    // A value outside an enum.
    let mut wrong = thing();
    wrong["kind"] = json!("c");
    assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/1/",
            200,
            JSON,
            &json_bytes(&wrong),
        ),
        Kind::BodyMismatch,
    );
    // An undocumented extra field where the schema closes the object.
    let mut wrong = thing();
    wrong["secret"] = json!(true);
    assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/1/",
            200,
            JSON,
            &json_bytes(&wrong),
        ),
        Kind::BodyMismatch,
    );
    // Formats are asserted, not just annotations.
    let mut wrong = thing();
    wrong["created_at"] = json!("yesterday");
    assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/1/",
            200,
            JSON,
            &json_bytes(&wrong),
        ),
        Kind::BodyMismatch,
    );
    // An error body that is not the documented error.
    assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/1/",
            404,
            JSON,
            br#"{"error": "nope"}"#,
        ),
        Kind::BodyMismatch,
    );
}

#[test]
fn an_undocumented_status_fails() {
    let spec = Spec::new(doc());
    let message = assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/things/1/",
            500,
            JSON,
            br#"{"detail": "Internal server error."}"#,
        ),
        Kind::UndocumentedStatus,
    );
    assert!(message.contains("500"), "{message}");
    assert_fails(
        check(
            &spec,
            Method::DELETE,
            "/api/things/1/",
            404,
            JSON,
            br#"{"detail": "Not found."}"#,
        ),
        Kind::UndocumentedStatus,
    );
}

#[test]
fn unknown_routes_may_only_answer_a_json_404_or_405() {
    let spec = Spec::new(doc());
    let not_found = br#"{"detail": "Not found."}"#;
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/api/nothing/here/",
            404,
            JSON,
            not_found
        )
        .ok(),
        Some(Checked::Unrouted)
    );
    // A method the path does not document.
    assert_eq!(
        check(
            &spec,
            Method::PUT,
            "/api/things/1/",
            405,
            JSON,
            br#"{"detail": "Method \"PUT\" not allowed."}"#
        )
        .ok(),
        Some(Checked::Unrouted)
    );
    // Served but not documented: the document is incomplete.
    assert_fails(
        check(
            &spec,
            Method::PUT,
            "/api/things/1/",
            200,
            JSON,
            &json_bytes(&thing()),
        ),
        Kind::UndocumentedOperation,
    );
    // A 404 that is not the contract's JSON error.
    assert_fails(
        check(
            &spec,
            Method::GET,
            "/api/nothing/",
            404,
            Some("text/html"),
            b"<h1>Not Found</h1>",
        ),
        Kind::UndocumentedOperation,
    );
    // Outside /api/ nothing is checked.
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/metrics",
            200,
            Some("text/plain"),
            b"x 1"
        )
        .ok(),
        Some(Checked::Skipped)
    );
}

#[test]
fn paths_match_as_the_server_routes_them() {
    let spec = Spec::new(doc());
    // A literal segment wins over a parameter.
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/api/things/special/",
            200,
            Some("text/plain; charset=utf-8"),
            b"hello"
        )
        .ok(),
        Some(Checked::NonJson)
    );
    // A missing trailing slash and doubled slashes are normalised.
    assert_eq!(
        check(
            &spec,
            Method::GET,
            "/api/things//7?x=1",
            200,
            JSON,
            &json_bytes(&thing())
        )
        .ok(),
        Some(Checked::Validated)
    );
    // HEAD has no body to check, only its status.
    assert_eq!(
        check(
            &spec,
            Method::HEAD,
            "/api/things/special/",
            200,
            Some("text/plain"),
            b""
        )
        .ok(),
        Some(Checked::NoBody)
    );
    assert_fails(
        check(&spec, Method::HEAD, "/api/things/special/", 206, None, b""),
        Kind::UndocumentedStatus,
    );
}

#[test]
fn content_types_must_be_documented() {
    let spec = Spec::new(doc());
    // JSON where the response documents text.
    assert_fails(
        check(&spec, Method::GET, "/api/things/special/", 200, JSON, b"{}"),
        Kind::UndocumentedContentType,
    );
    // A body where the response documents none.
    assert_fails(
        check(&spec, Method::DELETE, "/api/things/1/", 204, JSON, b"{}"),
        Kind::UndocumentedContent,
    );
    // A JSON content type with a body that is not JSON.
    assert_fails(
        check(&spec, Method::GET, "/api/things/1/", 200, JSON, b"not json"),
        Kind::InvalidJson,
    );
    // An empty body where content is documented.
    assert_fails(
        check(&spec, Method::GET, "/api/things/1/", 200, JSON, b""),
        Kind::MissingBody,
    );
    // A documented media type without a schema cannot be validated, and says so.
    assert_eq!(
        check(&spec, Method::GET, "/api/loose/", 200, JSON, b"[1]").ok(),
        Some(Checked::NoSchema)
    );
}

#[test]
fn body_failures_fail_the_test_that_saw_them() {
    for kind in [
        Kind::BodyMismatch,
        Kind::InvalidJson,
        Kind::UndocumentedContentType,
        Kind::MissingBody,
        Kind::BrokenSchema,
    ] {
        assert!(kind.fails_test(), "{kind:?} must fail the test");
    }
    // Gaps in the document fail exactly when the gate is on.
    for kind in [
        Kind::UndocumentedOperation,
        Kind::UndocumentedStatus,
        Kind::UndocumentedContent,
    ] {
        assert_eq!(
            kind.fails_test(),
            crate::conformance::STRICT_STATUS,
            "{kind:?}"
        );
    }
}

/// Against the real server's document: a real response passes, the same
/// response with a field taken away does not, nor does it pass as an error.
async fn real_document_catches_a_broken_response(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Goes through the harness, so through the checker.
    let anna = app.register("anna").await;
    let spec = spec().await;
    let url = app.url("/api/auth/register/");
    let good = json!({"user": anna.user, "access": anna.access, "refresh": anna.refresh});
    assert_eq!(
        check(spec, Method::POST, &url, 201, JSON, &json_bytes(&good)).ok(),
        Some(Checked::Validated),
        "the register response validates against the served document"
    );
    let mut broken = good.clone();
    broken.as_object_mut().expect("object").remove("access");
    assert_fails(
        check(spec, Method::POST, &url, 201, JSON, &json_bytes(&broken)),
        Kind::BodyMismatch,
    );
    // Any other status is the `default` response, the error body: the
    // register body does not pass as one, a contract error does.
    assert_fails(
        check(spec, Method::POST, &url, 299, JSON, &json_bytes(&good)),
        Kind::BodyMismatch,
    );
    let error = json!({"detail": "Service unavailable.", "code": "service_unavailable"});
    assert_eq!(
        check(spec, Method::POST, &url, 299, JSON, &json_bytes(&error)).ok(),
        Some(Checked::Validated),
        "a contract error validates as the default response"
    );
}

backend_custom_tests!(real_document_catches_a_broken_response);
