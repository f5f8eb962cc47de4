//! Security headers on every response, and refused CORS preflights in JSON
//! (issue 12, item 6; API.md, "Operations").

use reqwest::Method;

use crate::harness::*;

const FRONTEND: &str = "http://localhost:3000";
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Exactly one of each header, with the contract's value; HSTS only when
/// `expect_hsts`.
#[track_caller]
fn assert_security_headers(r: &Resp, expect_hsts: bool) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        let values: Vec<_> = r.headers.get_all(name).iter().collect();
        assert_eq!(
            values.len(),
            1,
            "one {name} header on {} {}\n{}",
            r.method,
            r.url,
            r.describe()
        );
        assert_eq!(values[0], value, "{name}\n{}", r.describe());
    }
    let hsts: Vec<_> = r
        .headers
        .get_all("strict-transport-security")
        .iter()
        .collect();
    if expect_hsts {
        assert_eq!(hsts.len(), 1, "one HSTS header\n{}", r.describe());
        assert_eq!(hsts[0], HSTS, "{}", r.describe());
    } else {
        assert!(
            hsts.is_empty(),
            "no HSTS without an https public URL\n{}",
            r.describe()
        );
    }
}

/// A 200, 401, 404 (default service), 405, 400, a download, a refused
/// WebSocket and a CORS preflight all carry the headers.
async fn every_response_carries_security_headers(app: TestApp) {
    check_every_kind_of_response(&app, false).await;
}

/// With an https public URL, HSTS joins them.
async fn https_public_url_adds_hsts(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__PUBLIC_URL", "https://docs.example.com")],
    )
    .await;
    check_every_kind_of_response(&app, true).await;
}

async fn check_every_kind_of_response(app: &TestApp, hsts: bool) {
    let r = app.get("/api/health/", None).await;
    r.assert_status(200).assert_json();
    assert_security_headers(&r, hsts);

    let r = app.get("/api/users/me/", None).await;
    r.assert_status(401).assert_json();
    assert_security_headers(&r, hsts);

    let r = app.get("/api/no-such-thing/", None).await;
    r.assert_status(404).assert_json();
    assert_security_headers(&r, hsts);

    let r = app.delete("/api/health/", None).await;
    r.assert_status(405).assert_json();
    assert_security_headers(&r, hsts);

    let r = app
        .raw(
            Method::POST,
            "/api/auth/login/",
            &[("content-type", "application/json")],
            Some(b"{not json".to_vec()),
        )
        .await;
    r.assert_status(400).assert_json();
    assert_security_headers(&r, hsts);

    let anna = app.register("anna").await;
    let r = app.get("/api/users/me/", Some(&anna.access)).await;
    r.assert_status(200);
    assert_security_headers(&r, hsts);

    // A download (which sets its own nosniff: still one header).
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"plain notes\n".to_vec())
            .file_name("notes.txt")
            .mime_str("text/plain")
            .expect("mime"),
    );
    let url = app.url("/api/documents/");
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&anna.access)
        .multipart(form);
    let r = app.send(&Method::POST, &url, request).await;
    r.assert_status(201);
    assert_security_headers(&r, hsts);
    let id = r.body["id"].as_i64().expect("document id");
    let path = format!("/api/documents/{id}/download/");
    let r = app
        .raw(
            Method::GET,
            &path,
            &[("authorization", &format!("Bearer {}", anna.access))],
            None,
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.text, "plain notes\n");
    assert_security_headers(&r, hsts);

    // A WebSocket refused before the upgrade (no token).
    let r = app
        .raw(
            Method::GET,
            "/ws/events/",
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            None,
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.describe());
    assert_security_headers(&r, hsts);

    // An allowed preflight.
    let r = preflight(app, FRONTEND, "GET", None).await;
    assert!(r.status.is_success(), "{}", r.describe());
    assert_security_headers(&r, hsts);
}

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: Option<&str>) -> Resp {
    let mut request = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(headers) = headers {
        request.push(("access-control-request-headers", headers));
    }
    app.raw(Method::OPTIONS, "/api/missions/", &request, None)
        .await
}

/// A refused preflight (unknown origin, method or header) answers the
/// contract's JSON error, keeping actix-cors's status; allowed ones still
/// answer with the CORS headers.
async fn refused_preflight_answers_json(app: TestApp) {
    for (what, origin, method, headers) in [
        ("an unknown origin", "http://evil.example", "GET", None),
        ("a method not allowed", FRONTEND, "TRACE", None),
        ("a header not allowed", FRONTEND, "GET", Some("x-evil")),
    ] {
        let r = preflight(&app, origin, method, headers).await;
        assert!(
            r.status.is_client_error(),
            "a preflight with {what} is refused\n{}",
            r.describe()
        );
        r.assert_json();
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.is_empty(),
            "{what}: {{\"detail\": ...}}\n{}",
            r.describe()
        );
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{what}: no CORS grant\n{}",
            r.describe()
        );
        assert_security_headers(&r, false);
    }

    let r = preflight(&app, FRONTEND, "PATCH", Some("authorization, content-type")).await;
    assert!(r.status.is_success(), "{}", r.describe());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(FRONTEND),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

backend_tests!(
    every_response_carries_security_headers,
    refused_preflight_answers_json
);
backend_custom_tests!(https_public_url_adds_hsts);
