//! The AsyncAPI 3.0 document of the WebSocket endpoints (`GET
//! /api/asyncapi/`): how a browser opens `/ws/events/` and
//! `/ws/missions/{id}/`, the frames it receives, and why a socket is
//! refused or closed.
//!
//! The frames' `data` schemas are not written here a second time: they are
//! the OpenAPI document's components (`Activity`, `Mission`, `Document`),
//! copied in at run time with everything they reference, so the two
//! documents cannot disagree about a representation.

use serde_json::{Map, Value, json};

use crate::hub::SocketPolicy;

/// Where a reference to a schema component points, in both documents.
const SCHEMA_REF: &str = "#/components/schemas/";

/// One kind of frame the server sends.
struct MessageSpec {
    /// The key under `components.messages`.
    key: &'static str,
    /// The frame's `event` value.
    event: &'static str,
    /// The OpenAPI component its `data` is.
    schema: &'static str,
    summary: &'static str,
    example: fn() -> Value,
}

/// Every frame a socket can carry, in the order the document lists them.
const MESSAGES: [MessageSpec; 3] = [
    MessageSpec {
        key: "activityCreated",
        event: "activity.created",
        schema: "Activity",
        summary: "An activity was recorded (the same representation as GET /api/activities/{id}/).",
        example: activity_example,
    },
    MessageSpec {
        key: "missionUpdated",
        event: "mission.updated",
        schema: "Mission",
        summary: "A mission changed: created, edited, an action, or its progress after a step changed \
                  (the list representation, without plan_steps and documents).",
        example: mission_example,
    },
    MessageSpec {
        key: "documentUpdated",
        event: "document.updated",
        schema: "Document",
        summary: "A document was uploaded, edited or verified (the same representation as \
                  GET /api/documents/{id}/).",
        example: document_example,
    },
];

fn activity_example() -> Value {
    json!({
        "id": 42,
        "type": "mission_started",
        "message": "Mission started",
        "details": {},
        "user": 7,
        "mission": 3,
        "document": null,
        "timestamp": "2026-11-25T10:00:00.123456Z"
    })
}

fn mission_example() -> Value {
    json!({
        "id": 3,
        "title": "Retrieve Tax Documents",
        "description": "",
        "type": "document_retrieval",
        "status": "in_progress",
        "priority": "high",
        "progress": 50,
        "owner": 7,
        "deadline": null,
        "started_at": "2026-11-25T10:00:00.123456Z",
        "completed_at": null,
        "created_at": "2026-11-24T09:30:00.000000Z",
        "updated_at": "2026-11-25T10:00:00.123456Z",
        "steps_total": 4,
        "steps_completed": 2,
        "document_count": 1
    })
}

fn document_example() -> Value {
    json!({
        "id": 11,
        "name": "2025 return",
        "type": "tax_return",
        "status": "verified",
        "verified": true,
        "verified_at": "2026-11-25T10:05:00.000000Z",
        "verification_error": "",
        "mission": 3,
        "owner": 7,
        "original_filename": "return-2025.pdf",
        "content_type": "application/pdf",
        "size": 182034,
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "download_url": "https://api.example.com/api/documents/11/download/",
        "uploaded_at": "2026-11-25T10:04:00.000000Z",
        "updated_at": "2026-11-25T10:05:00.000000Z"
    })
}

/// The AsyncAPI document for a server whose public base URL is `base_url`
/// (`https://api.example.com`, as [`crate::client::ClientPolicy`] decides
/// it), held to `policy`, with the frames' schemas taken from `openapi`
/// (the OpenAPI document as JSON).
pub fn document(base_url: &str, policy: &SocketPolicy, openapi: &Value) -> Value {
    let source = openapi
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let roots: Vec<&str> = MESSAGES.iter().map(|message| message.schema).collect();
    let schemas = embedded_schemas(&source, &roots);

    let messages: Map<String, Value> = MESSAGES
        .iter()
        .map(|message| (message.key.to_owned(), message_object(message)))
        .collect();
    let channel_messages: Map<String, Value> = MESSAGES
        .iter()
        .map(|message| {
            (
                message.key.to_owned(),
                json!({"$ref": format!("#/components/messages/{}", message.key)}),
            )
        })
        .collect();
    let operation_messages = |channel: &str| -> Vec<Value> {
        MESSAGES
            .iter()
            .map(
                |message| json!({"$ref": format!("#/channels/{channel}/messages/{}", message.key)}),
            )
            .collect()
    };

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "AutoDocs real-time events",
            "version": "1.0.0",
            "description": description(policy),
            "externalDocs": {
                "description": "The HTTP API (OpenAPI document)",
                "url": format!("{base_url}/api/schema/")
            }
        },
        "defaultContentType": "application/json",
        "servers": {"autodocs": server(base_url)},
        "channels": {
            "userEvents": {
                "address": "/ws/events/",
                "title": "Every event of the signed-in user",
                "description": "Frames about the user's own activities, missions and documents, \
                                sent after the transaction that caused them commits.",
                "messages": channel_messages.clone(),
                "bindings": {"ws": ws_binding()}
            },
            "missionEvents": {
                "address": "/ws/missions/{id}/",
                "title": "The events of one mission",
                "description": "The frames of `/ws/events/` that concern this mission. A mission \
                                of another user (or none) is 404 before the upgrade.",
                "parameters": {
                    "id": {"description": "The id of one of the user's missions.", "examples": ["3"]}
                },
                "messages": channel_messages,
                "bindings": {"ws": ws_binding()}
            }
        },
        "operations": {
            "receiveUserEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/userEvents"},
                "title": "Events of the user",
                "summary": "The server sends each of the user's events as one JSON text frame.",
                "messages": operation_messages("userEvents")
            },
            "receiveMissionEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/missionEvents"},
                "title": "Events of one mission",
                "summary": "The server sends each event of the mission as one JSON text frame.",
                "messages": operation_messages("missionEvents")
            }
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "tokenQuery": {
                    "type": "httpApiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The access token (as returned by POST /api/auth/login/ or \
                                    /api/auth/token/refresh/) in the query string: \
                                    `/ws/events/?token=<access>`. Browsers cannot set headers \
                                    on a WebSocket, so this is how a browser authenticates."
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer <access>` on the upgrade request \
                                    (non-browser clients); `?token=` wins when both are sent."
                }
            }
        }
    })
}

/// The server entry: the same origin as the HTTP API, `ws` or `wss`.
fn server(base_url: &str) -> Value {
    let lower = base_url.to_ascii_lowercase();
    let (protocol, rest) = if lower.starts_with("https://") {
        ("wss", base_url.get("https://".len()..).unwrap_or_default())
    } else {
        ("ws", base_url.get("http://".len()..).unwrap_or_default())
    };
    let (host, pathname) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let mut server = json!({
        "host": host,
        "protocol": protocol,
        "description": "The HTTP API's own origin: `wss` when it is served over https.",
        "security": [
            {"$ref": "#/components/securitySchemes/tokenQuery"},
            {"$ref": "#/components/securitySchemes/bearer"}
        ]
    });
    if !pathname.is_empty() {
        server["pathname"] = Value::from(pathname.trim_end_matches('/'));
    }
    server
}

/// The upgrade request, as the WebSocket binding describes it.
fn ws_binding() -> Value {
    json!({
        "method": "GET",
        "query": {
            "type": "object",
            "properties": {
                "token": {"type": "string", "description": "The access token (or send `Authorization: Bearer`)."}
            }
        },
        "bindingVersion": "0.1.0"
    })
}

fn message_object(message: &MessageSpec) -> Value {
    json!({
        "name": message.event,
        "title": message.event,
        "summary": message.summary,
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "const": message.event},
                "data": {"$ref": format!("{SCHEMA_REF}{}", message.schema)}
            }
        },
        "examples": [{
            "name": message.key,
            "payload": {"event": message.event, "data": (message.example)()}
        }]
    })
}

/// The prose a frontend developer reads first; the numbers are this
/// server's settings.
fn description(policy: &SocketPolicy) -> String {
    format!(
        "Live events over WebSocket, JSON text frames `{{\"event\": ..., \"data\": ...}}` \
         sent by the server only (what a client sends is ignored, pings aside).\n\n\
         **Authentication.** Open `/ws/events/?token=<access token>` (or send \
         `Authorization: Bearer <access token>` where the client can set headers). \
         The access token is the one of `POST /api/auth/login/`; refresh it with \
         `POST /api/auth/token/refresh/` and reconnect with the new one before it expires.\n\n\
         **Refused before the upgrade** (an HTTP answer with the API's JSON error body, no socket): \
         403 when the `Origin` header is not an allowed CORS origin (`cors.allowed_origins`; \
         no `Origin` is allowed, for non-browser clients); 401 for a missing, invalid or \
         expired token (`code` `not_authenticated` or `token_not_valid`); 404 for a mission \
         that is not the user's; 429 with `Retry-After` when the user already holds \
         {max} sockets on this server process (`realtime.max_sockets_per_user`; the open ones are kept).\n\n\
         **Close codes.** 1008 (policy violation) when the access token expires (reason \
         `Token expired.`) or the user's credentials are revoked: deactivated, deleted, or \
         the password changed (reason `Credentials revoked.`): get a new token and reconnect \
         (after a revocation, log in again). 1001 (going away) when the server shuts down or \
         the client reads too slowly to keep up (its queue of {queue} frames is full): \
         reconnect after a pause and re-read the state over HTTP, since frames may have been \
         missed. A close the client starts is answered with the same code.\n\n\
         **Liveness.** The server pings an idle socket every {ping} s and answers pings; a \
         peer that sends nothing, not even a pong, for {timeout} s is closed with no status code \
         (a browser reports 1005 or 1006). Browsers answer pings on their own.\n\n\
         **Reconnecting.** Frames are not replayed: after any close, reconnect with backoff \
         (e.g. 1 s doubling to 30 s, with jitter) and refetch what the page shows.",
        max = policy.max_sockets_per_user,
        queue = crate::hub::SOCKET_QUEUE,
        ping = policy.ping_interval.as_secs(),
        timeout = policy.peer_timeout.as_secs(),
    )
}

/// The schemas `roots` name, and every schema they reference,
/// transitively, copied from `source` (the OpenAPI components). A name
/// `source` lacks becomes a plain object schema, so that every reference in
/// the result resolves.
fn embedded_schemas(source: &Map<String, Value>, roots: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut pending: Vec<String> = roots.iter().map(|root| (*root).to_owned()).collect();
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let mut schema = source.get(&name).cloned().unwrap_or_else(|| {
            json!({
                "type": "object",
                "description": format!("The {name} representation of the HTTP API (/api/schema/).")
            })
        });
        asyncapi_dialect(&mut schema);
        references(&schema, &mut pending);
        out.insert(name, schema);
    }
    out
}

/// Pushes the component names `value` references onto `into`.
fn references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(SCHEMA_REF) {
                            into.push(name.to_owned());
                        }
                    }
                    // A property may be named `$ref`: then it is a schema.
                    _ => references(item, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, into)),
        _ => {}
    }
}

/// Rewrites what OpenAPI schemas say differently from AsyncAPI's: the
/// `discriminator` is an object in OpenAPI and the property name alone in
/// AsyncAPI.
fn asyncapi_dialect(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("discriminator")
                .and_then(|discriminator| discriminator.get("propertyName"))
                .cloned()
            {
                map.insert("discriminator".to_owned(), name);
            }
            map.values_mut().for_each(asyncapi_dialect);
        }
        Value::Array(items) => items.iter_mut().for_each(asyncapi_dialect),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", Value::String(target)) => into.push(target.clone()),
                        _ => all_refs(item, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| all_refs(item, into)),
            _ => {}
        }
    }

    fn resolves(document: &Value, reference: &str) -> bool {
        reference
            .strip_prefix('#')
            .is_some_and(|pointer| document.pointer(pointer).is_some())
    }

    #[test]
    fn referenced_components_are_copied_transitively() {
        let openapi = json!({"components": {"schemas": {
            "Activity": {"type": "object", "properties": {"user": {"$ref": "#/components/schemas/User"}}},
            "User": {"type": "object", "properties": {"profile": {"$ref": "#/components/schemas/Profile"}}},
            "Profile": {"type": "object"},
            "Unrelated": {"type": "string"},
            "Document": {"oneOf": [{"$ref": "#/components/schemas/Document"}],
                         "discriminator": {"propertyName": "kind", "mapping": {}}}
        }}});
        let doc = document("http://127.0.0.1:8000", &SocketPolicy::default(), &openapi);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in ["Activity", "User", "Profile", "Document", "Mission"] {
            assert!(schemas.contains_key(name), "{name} embedded");
        }
        assert!(!schemas.contains_key("Unrelated"));
        assert_eq!(
            schemas["Activity"],
            openapi["components"]["schemas"]["Activity"]
        );
        // Mission is not in this OpenAPI document: a stand-in, not a dangling ref.
        assert_eq!(schemas["Mission"]["type"], "object");
        assert_eq!(schemas["Document"]["discriminator"], "kind");
        let mut refs = Vec::new();
        all_refs(&doc, &mut refs);
        assert!(refs.len() > 10, "{refs:?}");
        for reference in refs {
            assert!(resolves(&doc, &reference), "{reference} does not resolve");
        }
    }

    #[test]
    fn the_server_follows_the_public_url() {
        let policy = SocketPolicy::default();
        let empty = json!({});
        let doc = document("https://api.example.com/prefix", &policy, &empty);
        assert_eq!(
            doc["servers"]["autodocs"],
            json!({
                "host": "api.example.com",
                "protocol": "wss",
                "pathname": "/prefix",
                "description": doc["servers"]["autodocs"]["description"],
                "security": doc["servers"]["autodocs"]["security"],
            })
        );
        let doc = document("http://127.0.0.1:8000", &policy, &empty);
        assert_eq!(doc["servers"]["autodocs"]["host"], "127.0.0.1:8000");
        assert_eq!(doc["servers"]["autodocs"]["protocol"], "ws");
        assert!(doc["servers"]["autodocs"].get("pathname").is_none());
    }

    #[test]
    fn the_description_states_this_servers_limits() {
        let policy = SocketPolicy {
            max_sockets_per_user: 7,
            ping_interval: std::time::Duration::from_secs(13),
            ..SocketPolicy::default()
        };
        let doc = document("http://x", &policy, &json!({}));
        let text = doc["info"]["description"].as_str().expect("description");
        for needle in [
            "7 sockets",
            "every 13 s",
            "1008",
            "1001",
            "?token=",
            "429",
            "403",
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
    }
}
