//! The API reference page `/api/docs/`, its assets, and the AsyncAPI
//! document `/api/asyncapi/` (issue 13, item 5; API.md, "Operations").

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Backend, Registered, Resp, TestApp};

const DOCS: &str = "/api/docs/";
const ASYNCAPI: &str = "/api/asyncapi/";
const SCHEMA: &str = "/api/schema/";

/// How long a frame may take to arrive.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// The frames of API.md and the OpenAPI component each one's `data` is.
const FRAMES: [(&str, &str); 3] = [
    ("activity.created", "Activity"),
    ("mission.updated", "Mission"),
    ("document.updated", "Document"),
];

backend_tests!(
    docs_page_is_html_under_a_strict_policy,
    every_asset_the_page_names_is_served_and_cached,
    unknown_assets_are_json_404,
    asyncapi_names_channels_messages_and_resolves,
    asyncapi_frames_match_what_sockets_send,
    both_documents_are_in_the_openapi_document,
);

backend_custom_tests!(asyncapi_server_follows_the_public_url);

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

/// The values of every `src="..."` and `href="..."` of an HTML page.
fn linked_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            let after = &rest[start + attribute.len()..];
            let end = after.find('"').expect("a closed attribute value");
            urls.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    urls
}

/// The `http://` and `https://` URLs in `text` (up to the next quote,
/// space or bracket).
fn absolute_urls(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (at, _) in text.match_indices(scheme) {
            let url: String = text[at..]
                .chars()
                .take_while(|c| !matches!(c, '"' | '\'' | ' ' | '<' | '>' | ')' | '\n'))
                .collect();
            found.push(url);
        }
    }
    found
}

fn csp_directives(r: &Resp) -> Vec<(String, Vec<String>)> {
    let values: Vec<_> = r
        .headers
        .get_all("content-security-policy")
        .iter()
        .collect();
    assert_eq!(values.len(), 1, "one CSP header\n{}", r.describe());
    let policy = values[0].to_str().expect("an ASCII policy");
    policy
        .split(';')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .map(|directive| {
            let mut words = directive.split_whitespace().map(str::to_owned);
            let name = words.next().expect("a directive name");
            (name, words.collect())
        })
        .collect()
}

async fn docs_page_is_html_under_a_strict_policy(app: TestApp) {
    let r = app.get(DOCS, None).await;
    r.assert_status(200);
    let content_type = r.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{content_type}\n{}",
        r.describe()
    );
    assert!(r.text.contains("id=\"swagger-ui\""), "{}", r.describe());
    // Without the trailing slash too, as every route.
    app.get("/api/docs", None).await.assert_status(200);

    let directives = csp_directives(&r);
    let sources = |name: &str| -> Vec<String> {
        directives
            .iter()
            .find(|(directive, _)| directive == name)
            .map(|(_, sources)| sources.clone())
            .unwrap_or_else(|| panic!("no {name} in the policy {directives:?}"))
    };
    assert_eq!(sources("default-src"), ["'self'"]);
    assert_eq!(
        sources("script-src"),
        ["'self'"],
        "no inline or remote script"
    );
    assert_eq!(
        sources("connect-src"),
        ["'self'"],
        "requests go to this server only"
    );
    for (name, list) in &directives {
        for source in list {
            assert!(
                source.starts_with('\'') || source == "data:",
                "{name} allows {source}: only this origin (and data: images) may be named"
            );
            assert!(
                !source.contains("unsafe"),
                "{name} allows {source}: the page needs no inline or eval'd code"
            );
        }
    }
    // No inline script: every <script> has a src and no body.
    let scripts = r.text.matches("<script").count();
    let with_src = r.text.matches("<script src=\"/").count();
    assert!(scripts >= 2, "Swagger UI and its initialiser\n{}", r.text);
    assert_eq!(scripts, with_src, "inline scripts in\n{}", r.text);
    assert_eq!(
        r.text.matches("></script>").count(),
        scripts,
        "a script with a body in\n{}",
        r.text
    );
    // The security headers still come with it, and the policy only with it.
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    let health = app.get("/api/health/", None).await;
    assert!(
        health.header("content-security-policy").is_none(),
        "the page's policy is not the API's\n{}",
        health.describe()
    );
    // A visible way to the raw documents.
    let links = linked_urls(&r.text);
    for target in [SCHEMA, ASYNCAPI] {
        assert!(
            links.iter().any(|url| url == target),
            "a link to {target} in {links:?}"
        );
    }
}

async fn every_asset_the_page_names_is_served_and_cached(app: TestApp) {
    let page = app.get(DOCS, None).await;
    page.assert_status(200);
    assert!(
        absolute_urls(&page.text).is_empty(),
        "the page names outside URLs: {:?}",
        absolute_urls(&page.text)
    );
    let urls = linked_urls(&page.text);
    let assets: Vec<&String> = urls
        .iter()
        .filter(|url| url.starts_with("/static/"))
        .collect();
    assert!(
        assets.len() >= 4,
        "css, bundle, initialiser, icon: {urls:?}"
    );
    let mut seen_types = BTreeSet::new();
    for url in &urls {
        assert!(url.starts_with('/'), "{url} is not on this server");
        let r = app.get(url, None).await;
        r.assert_status(200);
        if !url.starts_with("/static/") {
            // /api/schema/ and /api/asyncapi/.
            r.assert_json();
            continue;
        }
        let expected = match url.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("png") => "image/png",
            other => panic!("{url}: an asset of unexpected kind {other:?}"),
        };
        let content_type = r.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with(expected),
            "{url}: {content_type}, expected {expected}"
        );
        seen_types.insert(expected);
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(!r.text.is_empty(), "{url} is empty");
        let cache = r.header("cache-control").unwrap_or_default();
        assert!(cache.contains("max-age="), "{url}: Cache-Control {cache:?}");
        let etag = r
            .header("etag")
            .unwrap_or_else(|| panic!("{url}: no ETag\n{}", r.describe()));
        assert!(
            etag.starts_with('"') && etag.len() > 10,
            "{url}: ETag {etag}"
        );
        let again = app
            .raw(Method::GET, url, &[("if-none-match", etag.as_str())], None)
            .await;
        again.assert_status(304);
        assert!(again.text.is_empty(), "a 304 has no body");
        let stale = app
            .raw(Method::GET, url, &[("if-none-match", "\"other\"")], None)
            .await;
        stale.assert_status(200);
        assert_eq!(stale.text.len(), r.text.len());
        let head = app.raw(Method::HEAD, url, &[], None).await;
        head.assert_status(200);
        if url.ends_with("apidocs.js") {
            // The initialiser: Swagger UI on this server's document, a
            // token kept across reloads, nothing fetched from elsewhere.
            assert!(r.text.contains("persistAuthorization: true"), "{}", r.text);
            assert!(r.text.contains("validatorUrl: null"), "{}", r.text);
            assert!(
                absolute_urls(&r.text).is_empty(),
                "the initialiser names outside URLs: {:?}",
                absolute_urls(&r.text)
            );
        }
    }
    assert_eq!(
        seen_types,
        BTreeSet::from(["image/png", "text/css", "text/javascript"]),
        "{urls:?}"
    );
}

async fn unknown_assets_are_json_404(app: TestApp) {
    for path in [
        "/static/apidocs/nope.js",
        "/static/apidocs/swagger-ui-bundle.js.map",
        "/static/apidocs/index.html",
        "/static/apidocs/%2e%2e%2fCargo.toml",
        "/static/apidocs/..%2f..%2fCargo.toml",
        "/static/apidocs/",
        "/static/other.js",
    ] {
        app.get(path, None).await.assert_not_found();
    }
    let r = app
        .raw(Method::POST, "/static/apidocs/apidocs.js", &[], None)
        .await;
    r.assert_status(405).assert_json();
    let r = app.raw(Method::POST, DOCS, &[], None).await;
    r.assert_status(405).assert_json();
}

// ---------------------------------------------------------------------------
// The AsyncAPI document
// ---------------------------------------------------------------------------

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => into.push(target.clone()),
                    _ => collect_refs(item, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}

/// The OpenAPI `discriminator` object becomes its property name in AsyncAPI.
fn asyncapi_dialect(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(
                    |(key, item)| match (key.as_str(), item.get("propertyName")) {
                        ("discriminator", Some(name)) => (key.clone(), name.clone()),
                        _ => (key.clone(), asyncapi_dialect(item)),
                    },
                )
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(asyncapi_dialect).collect()),
        other => other.clone(),
    }
}

async fn asyncapi(app: &TestApp) -> Value {
    let r = app.get(ASYNCAPI, None).await;
    r.assert_status(200).assert_json();
    r.body.clone()
}

async fn asyncapi_names_channels_messages_and_resolves(app: TestApp) {
    let doc = asyncapi(&app).await;
    assert_eq!(doc["asyncapi"], "3.0.0", "{doc:#}");
    let addresses: BTreeSet<&str> = doc["channels"]
        .as_object()
        .expect("channels")
        .values()
        .filter_map(|channel| channel["address"].as_str())
        .collect();
    assert_eq!(
        addresses,
        BTreeSet::from(["/ws/events/", "/ws/missions/{id}/"])
    );
    let messages = doc["components"]["messages"].as_object().expect("messages");
    let names: BTreeSet<&str> = messages
        .values()
        .filter_map(|message| message["name"].as_str())
        .collect();
    assert_eq!(
        names,
        FRAMES
            .iter()
            .map(|(event, _)| *event)
            .collect::<BTreeSet<_>>()
    );
    for channel in doc["channels"].as_object().expect("channels").values() {
        assert_eq!(
            channel["messages"].as_object().map(|m| m.len()),
            Some(3),
            "each channel carries the three frames: {channel:#}"
        );
    }
    // Both ways of authenticating are declared, and the server uses them.
    let schemes = &doc["components"]["securitySchemes"];
    assert!(
        schemes
            .as_object()
            .expect("security schemes")
            .values()
            .any(|s| s["type"] == "httpApiKey" && s["in"] == "query" && s["name"] == "token"),
        "{schemes:#}"
    );
    let server = &doc["servers"]["autodocs"];
    assert_eq!(server["protocol"], "ws", "{server:#}");
    assert_eq!(
        server["host"],
        app.base_url.trim_start_matches("http://"),
        "the same origin as the API"
    );
    assert_eq!(server["security"].as_array().map(Vec::len), Some(2));
    let description = doc["info"]["description"].as_str().expect("a description");
    for needle in ["1008", "?token=", "429", "403", "401", "404", "ping"] {
        assert!(description.contains(needle), "{needle:?} in {description}");
    }

    // Every reference resolves inside the document itself.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() >= 15, "{refs:?}");
    for reference in &refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} points outside the document"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve in {doc:#}"
        );
    }

    // The frames' data are the OpenAPI document's components, embedded
    // with what they reference.
    let openapi = app.get(SCHEMA, None).await.body;
    let components = &openapi["components"]["schemas"];
    for (event, component) in FRAMES {
        let message = messages
            .values()
            .find(|message| message["name"] == event)
            .expect("the message");
        assert_eq!(
            message["payload"]["properties"]["data"]["$ref"],
            format!("#/components/schemas/{component}"),
            "{message:#}"
        );
        assert_eq!(
            message["payload"]["properties"]["event"]["const"], event,
            "{message:#}"
        );
        assert!(doc["components"]["schemas"][component].is_object());
        if let Some(schema) = components.get(component) {
            assert_eq!(
                doc["components"]["schemas"][component],
                asyncapi_dialect(schema),
                "{component} is the OpenAPI component"
            );
        }
    }
    for reference in refs {
        if let Some(name) = reference.strip_prefix("#/components/schemas/")
            && let Some(schema) = components.get(name)
        {
            assert_eq!(
                doc["components"]["schemas"][name],
                asyncapi_dialect(schema),
                "{name} is the OpenAPI component"
            );
        }
    }
}

/// The next text frame of a socket.
async fn next_frame<S>(ws: &mut S, ctx: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("{ctx}: no frame within {FRAME_TIMEOUT:?}"),
            Ok(None) => panic!("{ctx}: the socket closed"),
            Ok(Some(Err(e))) => panic!("{ctx}: socket error: {e}"),
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("{ctx}: a frame is JSON ({e}): {text}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(other))) => panic!("{ctx}: expected a text frame, got {other:?}"),
        }
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

async fn upload(app: &TestApp, user: &Registered, mission: i64) {
    let form = reqwest::multipart::Form::new()
        .text("mission", mission.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"hello, docs".to_vec())
                .file_name("notes.txt")
                .mime_str("text/plain")
                .expect("a mime type"),
        );
    let url = app.url("/api/documents/");
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&user.access)
        .multipart(form);
    app.send(&Method::POST, &url, request)
        .await
        .assert_status(201);
}

/// A socket opened where the AsyncAPI document says, as it says, receives
/// frames shaped as its messages' examples and schemas.
async fn asyncapi_frames_match_what_sockets_send(app: TestApp) {
    let doc = asyncapi(&app).await;
    let user = app.register("asyncapi").await;
    let server = &doc["servers"]["autodocs"];
    let channel = doc["channels"]
        .as_object()
        .expect("channels")
        .values()
        .find(|channel| channel["address"] == "/ws/events/")
        .expect("the user channel");
    let url = format!(
        "{}://{}{}?token={}",
        server["protocol"].as_str().expect("protocol"),
        server["host"].as_str().expect("host"),
        channel["address"].as_str().expect("address"),
        crate::missions::enc(&user.access)
    );
    let (mut ws, _) = tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("a handshake in time")
        .expect("the documented socket opens");

    let mission = crate::missions::new_mission(&app, &user, "Documented frames").await;
    upload(&app, &user, mission).await;

    let messages: Vec<&Value> = doc["components"]["messages"]
        .as_object()
        .expect("messages")
        .values()
        .collect();
    let mut seen = BTreeSet::new();
    while seen.len() < FRAMES.len() {
        let frame = next_frame(&mut ws, "documented socket").await;
        assert_eq!(
            keys(&frame),
            BTreeSet::from(["data".to_owned(), "event".to_owned()])
        );
        let event = frame["event"].as_str().expect("an event name");
        let message = messages
            .iter()
            .find(|message| message["name"] == event)
            .unwrap_or_else(|| panic!("{event} is not documented"));
        let example = &message["examples"][0]["payload"];
        assert_eq!(example["event"], event);
        assert_eq!(
            keys(&frame["data"]),
            keys(&example["data"]),
            "{event}: the documented example has the frame's fields\nframe: {frame:#}"
        );
        let reference = message["payload"]["properties"]["data"]["$ref"]
            .as_str()
            .expect("a data schema");
        let schema = doc
            .pointer(reference.trim_start_matches('#'))
            .expect("the schema");
        if let Some(properties) = schema.get("properties") {
            let fields = keys(&frame["data"]);
            assert!(
                fields.is_subset(&keys(properties)),
                "{event}: every field of the frame is in the schema\nframe: {frame:#}\nschema: {schema:#}"
            );
            let required: BTreeSet<String> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect();
            assert!(
                required.is_subset(&fields),
                "{event}: the frame has every required field\nframe: {frame:#}\nschema: {schema:#}"
            );
        }
        seen.insert(event.to_owned());
    }
}

async fn both_documents_are_in_the_openapi_document(app: TestApp) {
    let openapi = app.get(SCHEMA, None).await.body;
    let docs = &openapi["paths"][DOCS]["get"];
    assert_eq!(docs["operationId"], "docs_retrieve", "{docs:#}");
    assert!(
        docs["responses"]["200"]["content"]["text/html"].is_object(),
        "{docs:#}"
    );
    let asyncapi = &openapi["paths"][ASYNCAPI]["get"];
    assert_eq!(asyncapi["operationId"], "asyncapi_retrieve", "{asyncapi:#}");
    assert!(
        asyncapi["responses"]["200"]["content"]["application/json"].is_object(),
        "{asyncapi:#}"
    );
    // The assets are not API operations.
    let paths = openapi["paths"].as_object().expect("paths");
    assert!(
        paths.keys().all(|path| path.starts_with("/api/")),
        "{:?}",
        paths.keys()
    );
}

/// Behind a public https URL, the socket server is `wss` on that host.
async fn asyncapi_server_follows_the_public_url(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__PUBLIC_URL", "https://api.example.com")],
    )
    .await;
    let doc = asyncapi(&app).await;
    let server = &doc["servers"]["autodocs"];
    assert_eq!(server["host"], "api.example.com", "{server:#}");
    assert_eq!(server["protocol"], "wss", "{server:#}");
    assert_eq!(
        doc["info"]["externalDocs"]["url"],
        json!("https://api.example.com/api/schema/")
    );
}
