//! `POST /api/documents/{id}/download-link/`: a signed, short-lived URL that
//! serves a document's bytes with no `Authorization` header (for `<a href>`
//! and `<img src>`), exactly like the authenticated download; and every way
//! a link is refused (tampered, another document's, another key's, expired,
//! a user who lost access, a deleted document) serving nothing.
//!
//! Some links are forged here from the documented format (see
//! `crates/autodocs-http/src/links.rs`) with the server's own key and with
//! another one, so the format is pinned and "another server's key" is
//! proven refused for the key, not for the shape.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::harness::{
    Backend, Registered, TestApp, TestDb, adjust_env, assert_keys, b64url_encode, base_env,
    describe, hmac_sha256, is_rfc3339_utc, now_unix, random_secret, run_cli,
};

backend_tests!(
    a_link_serves_like_the_authenticated_download,
    refused_links_serve_nothing,
    who_may_make_and_follow_links,
    stalled_link_downloads_hold_no_thread_and_slow_no_one,
);

backend_custom_tests!(
    links_expire,
    link_seconds_is_bounded,
    the_access_log_never_shows_a_link
);

const DOCUMENTS: &str = "/api/documents/";

/// Headers a link's response must share with the authenticated download.
const SAME_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-disposition",
    "etag",
    "accept-ranges",
    "cache-control",
    "x-content-type-options",
    "content-security-policy",
];

const BOUNDARY: &str = "----autodocs-links-boundary-3c1d";

/// Uploads a text file for `user`; returns the Document.
async fn upload(app: &TestApp, user: &Registered, filename: &str, body: &[u8]) -> Value {
    let mut form = Vec::new();
    form.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(body);
    form.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let url = app.url(DOCUMENTS);
    let request = app
        .client()
        .post(&url)
        .bearer_auth(&user.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form);
    let r = app.send(&Method::POST, &url, request).await;
    r.assert_status(201);
    r.body
}

fn id_of(document: &Value) -> i64 {
    document["id"].as_i64().expect("document id")
}

fn link_path(id: i64) -> String {
    format!("{DOCUMENTS}{id}/download-link/")
}

/// Asks for a link to document `id`; panics unless 200. Returns the body.
async fn make_link(app: &TestApp, token: &str, id: i64) -> Value {
    let r = app.post_json(&link_path(id), &json!({}), Some(token)).await;
    r.assert_status(200).assert_json();
    assert_keys(&r.body, &["expires_at", "url"], &r.describe());
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("no-store"),
        "a link is a credential: {}",
        r.describe()
    );
    r.body
}

/// The link URL of a link body, moved onto `app`'s address (the body may
/// name a public URL).
fn link_url(app: &TestApp, link: &Value) -> String {
    let url = link["url"].as_str().expect("url is a string");
    let at = url.find("/api/").expect("url has the API path");
    app.url(&url[at..])
}

/// The token of a link body.
fn token_of(link: &Value) -> String {
    let url = link["url"].as_str().expect("url is a string");
    url.split_once("?link=")
        .map(|(_, token)| token.to_owned())
        .unwrap_or_else(|| panic!("url carries ?link=: {url}"))
}

/// A request with no Authorization header, as a browser following a link.
async fn follow(
    app: &TestApp,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = app.client().request(method.clone(), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", app.server_log()));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("read the body").to_vec();
    (status, headers, body)
}

/// The authenticated download, for comparison.
async fn download(app: &TestApp, token: &str, id: i64) -> (u16, HeaderMap, Vec<u8>) {
    let url = app.url(&format!("{DOCUMENTS}{id}/download/"));
    let response = app
        .client()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("read the body").to_vec();
    (status, headers, body)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A refusal: `status`, a JSON `{"detail", "code"?}` body, never the bytes.
#[track_caller]
fn assert_refused(
    (status, headers, body): &(u16, HeaderMap, Vec<u8>),
    expected: &[u16],
    code: Option<&str>,
    secret_bytes: &[u8],
    context: &str,
) {
    let text = String::from_utf8_lossy(body);
    assert!(
        expected.contains(status),
        "{context}: expected {expected:?}, got {status}: {text}"
    );
    assert!(
        !body
            .windows(secret_bytes.len())
            .any(|window| window == secret_bytes),
        "{context}: the document's bytes leaked: {text}"
    );
    assert!(
        header(headers, "content-disposition").is_none() && header(headers, "etag").is_none(),
        "{context}: download headers on a refusal: {headers:?}"
    );
    if body.is_empty() {
        return; // HEAD
    }
    let json: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("{context}: a JSON error body, got {text}"));
    assert!(json["detail"].is_string(), "{context}: {json}");
    if let Some(code) = code {
        assert_eq!(json["code"], json!(code), "{context}: {json}");
    }
}

/// A token in the documented format, signed with `secret`.
fn forge(secret: &str, document: i64, user: i64, expires: i64) -> String {
    let key = hmac_sha256(secret.as_bytes(), b"autodocs download-link key");
    let mut message = b"autodocs download-link v1\0".to_vec();
    message.extend_from_slice(&document.to_be_bytes());
    message.extend_from_slice(&user.to_be_bytes());
    message.extend_from_slice(&expires.to_be_bytes());
    let mut token = Vec::new();
    token.extend_from_slice(&user.to_be_bytes());
    token.extend_from_slice(&expires.to_be_bytes());
    token.extend_from_slice(&hmac_sha256(&key, &message));
    b64url_encode(&token)
}

/// `token` with the character at `index` replaced by another base64url one.
fn flip(token: &str, index: usize) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn with_token(app: &TestApp, id: i64, token: &str) -> String {
    app.url(&format!("{DOCUMENTS}{id}/download/?link={token}"))
}

/// Seconds from now until `expires_at` (RFC 3339).
fn seconds_left(expires_at: &Value) -> i64 {
    let text = expires_at.as_str().expect("expires_at is a string");
    assert!(is_rfc3339_utc(text), "expires_at is RFC 3339 UTC: {text}");
    let at = chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
    at.timestamp() - now_unix()
}

// ---------------------------------------------------------------------------

async fn a_link_serves_like_the_authenticated_download(app: TestApp) {
    let anna = app.register("anna").await;
    let bytes: Vec<u8> = (0..2000)
        .map(|n| format!("line {n} of anna's notes\n"))
        .collect::<String>()
        .into_bytes();
    let document = upload(&app, &anna, "Notizen für 2025.txt", &bytes).await;
    let id = id_of(&document);
    let activities = activity_count(&app, &anna).await;

    let link = make_link(&app, &anna.access, id).await;
    // The same base as download_url, plus the one opaque parameter.
    let url = link["url"].as_str().expect("url");
    let download_url = document["download_url"].as_str().expect("download_url");
    assert!(
        url.starts_with(&format!("{download_url}?link=")),
        "{url} extends {download_url}"
    );
    let token = token_of(&link);
    assert!(
        token.len() >= 40
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "an opaque base64url token: {token}"
    );
    let left = seconds_left(&link["expires_at"]);
    assert!((290..=301).contains(&left), "expires in ≈300 s: {left}");

    // No Authorization header: the exact bytes and the same headers.
    let url = link_url(&app, &link);
    let expected = download(&app, &anna.access, id).await;
    assert_eq!(expected.0, 200);
    let (status, headers, body) = follow(&app, Method::GET, &url, &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, bytes);
    for name in SAME_HEADERS {
        assert_eq!(
            header(&headers, name),
            header(&expected.1, name),
            "{name} as in the authenticated download"
        );
    }
    assert!(
        header(&headers, "cache-control").is_some_and(|value| value.contains("private")),
        "{headers:?}"
    );
    assert_eq!(
        header(&headers, "referrer-policy").as_deref(),
        Some("same-origin")
    );
    let etag = header(&headers, "etag").expect("etag");

    // Followed again (not single-use), with a Range.
    let (status, headers, body) = follow(&app, Method::GET, &url, &[("range", "bytes=5-14")]).await;
    assert_eq!(status, 206);
    assert_eq!(body, &bytes[5..=14]);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes 5-14/{}", bytes.len()))
    );

    // A validator the browser already holds.
    let (status, headers, body) =
        follow(&app, Method::GET, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "etag"), Some(etag.clone()));

    // HEAD: the headers, no body.
    let (status, head, body) = follow(&app, Method::HEAD, &url, &[]).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    for name in SAME_HEADERS {
        assert_eq!(
            header(&head, name),
            header(&expected.1, name),
            "HEAD {name}"
        );
    }

    // A credential-less download without a link is still a 401, and the
    // authenticated download is unchanged.
    app.get(&format!("{DOCUMENTS}{id}/download/"), None)
        .await
        .assert_unauthorized("not_authenticated");

    // Another process sharing the key and the database accepts it.
    let peer = app.spawn_peer_sharing_media().await;
    let on_peer = format!("{}{}", peer.base_url, &url[app.base_url.len()..]);
    let (status, _, body) = follow(&peer, Method::GET, &on_peer, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    drop(peer);

    // Making and following links changed nothing: no activity.
    assert_eq!(activity_count(&app, &anna).await, activities);
}

async fn activity_count(app: &TestApp, user: &Registered) -> i64 {
    let r = app.get("/api/activities/", Some(&user.access)).await;
    r.assert_status(200);
    r.body["count"].as_i64().expect("count")
}

async fn refused_links_serve_nothing(app: TestApp) {
    let anna = app.register("anna").await;
    let secret_a = b"document A: the secret ledger".to_vec();
    let a = id_of(&upload(&app, &anna, "a.txt", &secret_a).await);
    let b = id_of(&upload(&app, &anna, "b.txt", b"document B").await);
    let link = make_link(&app, &anna.access, a).await;
    let token = token_of(&link);
    let good = with_token(&app, a, &token);
    assert_eq!(follow(&app, Method::GET, &good, &[]).await.0, 200);

    // One character changed in the user, the expiry and the MAC.
    for index in [3, 14, 40, token.len() - 1] {
        let url = with_token(&app, a, &flip(&token, index));
        let response = follow(&app, Method::GET, &url, &[]).await;
        assert_refused(
            &response,
            &[403],
            Some("link_invalid"),
            &secret_a,
            &format!("flipped {index}"),
        );
    }
    // A's link on B's URL; garbage; empty; truncated; padded.
    for (id, bad) in [
        (b, token.clone()),
        (a, "not-a-link".to_owned()),
        (a, String::new()),
        (a, token[..token.len() - 2].to_owned()),
        (a, format!("{token}%3D")),
    ] {
        let response = follow(&app, Method::GET, &with_token(&app, id, &bad), &[]).await;
        assert_refused(
            &response,
            &[403],
            Some("link_invalid"),
            &secret_a,
            &format!("{id} {bad:?}"),
        );
    }
    // HEAD and Range are refused the same way.
    let tampered = with_token(&app, a, &flip(&token, 40));
    let response = follow(&app, Method::HEAD, &tampered, &[]).await;
    assert_refused(&response, &[403], None, &secret_a, "HEAD");
    let response = follow(&app, Method::GET, &tampered, &[("range", "bytes=0-9")]).await;
    assert_refused(&response, &[403], Some("link_invalid"), &secret_a, "Range");

    // The documented format with the server's own key works: a link made
    // with any other key fails for the key alone.
    let expires = now_unix() + 60;
    let forged = forge(&app.secret_key, a, anna.id, expires);
    let (status, _, body) = follow(&app, Method::GET, &with_token(&app, a, &forged), &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, secret_a);
    let foreign = forge(&random_secret(), a, anna.id, expires);
    let response = follow(&app, Method::GET, &with_token(&app, a, &foreign), &[]).await;
    assert_refused(
        &response,
        &[403],
        Some("link_invalid"),
        &secret_a,
        "another key",
    );
    // Not the JWT signature either: the link key is derived, not the secret itself.
    let key_itself = {
        let mut message = b"autodocs download-link v1\0".to_vec();
        for part in [a, anna.id, expires] {
            message.extend_from_slice(&part.to_be_bytes());
        }
        let mut raw = Vec::new();
        raw.extend_from_slice(&anna.id.to_be_bytes());
        raw.extend_from_slice(&expires.to_be_bytes());
        raw.extend_from_slice(&hmac_sha256(app.secret_key.as_bytes(), &message));
        b64url_encode(&raw)
    };
    let response = follow(&app, Method::GET, &with_token(&app, a, &key_itself), &[]).await;
    assert_refused(
        &response,
        &[403],
        Some("link_invalid"),
        &secret_a,
        "underived key",
    );
    // An access token is not a link.
    let response = follow(&app, Method::GET, &with_token(&app, a, &anna.access), &[]).await;
    assert_refused(&response, &[403], Some("link_invalid"), &secret_a, "a JWT");
    // A genuine link past its expiry.
    let expired = forge(&app.secret_key, a, anna.id, now_unix() - 1);
    let response = follow(&app, Method::GET, &with_token(&app, a, &expired), &[]).await;
    assert_refused(
        &response,
        &[403],
        Some("link_expired"),
        &secret_a,
        "expired",
    );
    // A genuine link for a user who does not exist.
    let nobody = forge(&app.secret_key, a, 999_999, expires);
    let response = follow(&app, Method::GET, &with_token(&app, a, &nobody), &[]).await;
    assert_refused(&response, &[404], None, &secret_a, "no such user");
}

async fn who_may_make_and_follow_links(app: TestApp) {
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;
    let staff = app.create_superuser("root").await;
    let bytes = b"anna's private statement".to_vec();
    let id = id_of(&upload(&app, &anna, "statement.txt", &bytes).await);

    // Someone else's document, a missing one, a bad id, no credentials.
    app.post_json(&link_path(id), &json!({}), Some(&bob.access))
        .await
        .assert_not_found();
    app.post_json(&link_path(999_999), &json!({}), Some(&anna.access))
        .await
        .assert_not_found();
    app.post_json(
        &format!("{DOCUMENTS}abc/download-link/"),
        &json!({}),
        Some(&anna.access),
    )
    .await
    .assert_not_found();
    app.post_json(&link_path(id), &json!({}), None)
        .await
        .assert_unauthorized("not_authenticated");
    let r = app.get(&link_path(id), Some(&anna.access)).await;
    r.assert_status(405);

    // Bob's link to his own document does not open Anna's.
    let bobs = id_of(&upload(&app, &bob, "bob.txt", b"bob's").await);
    let bob_token = token_of(&make_link(&app, &bob.access, bobs).await);
    let response = follow(&app, Method::GET, &with_token(&app, id, &bob_token), &[]).await;
    assert_refused(
        &response,
        &[403],
        Some("link_invalid"),
        &bytes,
        "bob's link on anna's document",
    );
    // Nor does a genuine link in Bob's name for Anna's document.
    let forged = forge(&app.secret_key, id, bob.id, now_unix() + 60);
    let response = follow(&app, Method::GET, &with_token(&app, id, &forged), &[]).await;
    assert_refused(&response, &[404], None, &bytes, "a link in bob's name");

    // Staff may make a link to anyone's document.
    let staff_link = link_url(&app, &make_link(&app, &staff.access, id).await);
    let anna_link = link_url(&app, &make_link(&app, &anna.access, id).await);
    for url in [&staff_link, &anna_link] {
        let (status, _, body) = follow(&app, Method::GET, url, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(body, bytes);
    }

    // A deactivated owner's link stops working; the staff's does not.
    app.staff_patch_user(&staff, anna.id, &json!({"is_active": false}))
        .await;
    let response = follow(&app, Method::GET, &anna_link, &[]).await;
    assert_refused(&response, &[404], None, &bytes, "deactivated owner");
    assert_eq!(follow(&app, Method::GET, &staff_link, &[]).await.0, 200);
    // Reactivated, it works again (nothing was stored or revoked).
    app.staff_patch_user(&staff, anna.id, &json!({"is_active": true}))
        .await;
    assert_eq!(follow(&app, Method::GET, &anna_link, &[]).await.0, 200);

    // A staff member who is no longer staff loses the links they made.
    let former = app.create_superuser("former").await;
    let former_link = link_url(&app, &make_link(&app, &former.access, id).await);
    assert_eq!(follow(&app, Method::GET, &former_link, &[]).await.0, 200);
    app.staff_patch_user(&staff, former.id, &json!({"is_staff": false}))
        .await;
    let response = follow(&app, Method::GET, &former_link, &[]).await;
    assert_refused(&response, &[404], None, &bytes, "demoted staff");

    // A deleted document's links serve nothing.
    app.delete(&format!("{DOCUMENTS}{id}/"), Some(&anna.access))
        .await
        .assert_status(204);
    for url in [&staff_link, &anna_link] {
        let response = follow(&app, Method::GET, url, &[]).await;
        assert_refused(&response, &[404], None, &bytes, "deleted document");
    }
}

async fn links_expire(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__UPLOADS__LINK_SECONDS", "1"),
            ("AUTODOCS__SERVER__PUBLIC_URL", "https://files.example.com"),
        ],
    )
    .await;
    let anna = app.register("anna").await;
    let bytes = b"short-lived".to_vec();
    let id = id_of(&upload(&app, &anna, "soon.txt", &bytes).await);
    let link = make_link(&app, &anna.access, id).await;
    // The public-URL policy of download_url.
    let url = link["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!(
            "https://files.example.com/api/documents/{id}/download/?link="
        )),
        "{url}"
    );
    let left = seconds_left(&link["expires_at"]);
    assert!((0..=2).contains(&left), "expires in ≈1 s: {left}");

    // Past its expiry (whole seconds: wait out the second after it).
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let url = link_url(&app, &link);
    let response = follow(&app, Method::GET, &url, &[]).await;
    assert_refused(&response, &[403], Some("link_expired"), &bytes, "expired");
    let response = follow(&app, Method::HEAD, &url, &[]).await;
    assert_refused(&response, &[403], None, &bytes, "expired HEAD");
}

async fn link_seconds_is_bounded(backend: Backend) {
    let db = TestDb::new(backend);
    let env = base_env(&db, &random_secret());
    for bad in ["0", "86401", "-5", "soon"] {
        let mut env = env.clone();
        adjust_env(&mut env, &[("AUTODOCS__UPLOADS__LINK_SECONDS", bad)], &[]);
        for command in ["check", "serve"] {
            let out = run_cli(&[command], &env).await;
            assert!(
                !out.status.success(),
                "{command} with {bad:?}: {}",
                describe(&out)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("link_seconds"),
                "{command} with {bad:?} names the setting: {}",
                describe(&out)
            );
        }
    }
    for good in ["1", "86400"] {
        let mut env = env.clone();
        adjust_env(&mut env, &[("AUTODOCS__UPLOADS__LINK_SECONDS", good)], &[]);
        let out = run_cli(&["check"], &env).await;
        assert!(
            out.status.success(),
            "check with {good}: {}",
            describe(&out)
        );
    }
}

/// The threads of the server process now.
fn server_threads(app: &TestApp) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.server_pid()))
        .expect("/proc/<pid>/status of the server");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a Threads: line")
}

/// A link download whose client never reads: a tiny receive buffer, so the
/// server's side fills up after a few hundred KiB of a large file.
async fn stalled_download(app: &TestApp, url: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let address: std::net::SocketAddr = app.base_url["http://".len()..]
        .parse()
        .expect("a socket address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(address).await.expect("connect");
    let path = &url[app.base_url.len()..];
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .expect("send the request");
    stream
}

/// Anyone holding a link can open downloads and stop reading. Each holds
/// its socket, never a thread (a reader thread parked on a full response
/// would, at a few hundred, take the blocking pool every query needs), and
/// another user is not slowed.
async fn stalled_link_downloads_hold_no_thread_and_slow_no_one(app: TestApp) {
    const STALLED: usize = 40;
    let anna = app.register("anna").await;
    let bytes = vec![b'x'; 8 * 1024 * 1024];
    let document = upload(&app, &anna, "big.txt", &bytes).await;
    let url = link_url(&app, &make_link(&app, &anna.access, id_of(&document)).await);
    let before = server_threads(&app);

    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(stalled_download(&app, &url).await);
    }
    // Let every download fill its socket; idle blocking threads are let go
    // after 10 s, so any thread still there after that is parked on a
    // download.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let during = server_threads(&app);
    assert!(
        during < before + STALLED / 4,
        "{STALLED} stalled downloads hold threads: {before} before, {during} now"
    );

    // Another user lists and downloads as usual, under a generous bound.
    let bob = app.register("bob").await;
    let small = upload(&app, &bob, "small.txt", b"bob's").await;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        app.get(DOCUMENTS, Some(&bob.access))
            .await
            .assert_status(200);
        let (status, _, body) = download(&app, &bob.access, id_of(&small)).await;
        assert_eq!((status, body.as_slice()), (200, &b"bob's"[..]));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "another user waited {:?}",
            started.elapsed()
        );
    }
    // The stalled downloads cost no CPU while they wait.
    let share = crate::harness::server_cpu_share(&app, Duration::from_secs(2)).await;
    assert!(share < 0.05, "the server used {share:.3} of a core");

    // A follower that reads gets the whole file.
    let (status, _, body) = follow(&app, Method::GET, &url, &[]).await;
    assert_eq!((status, body.len()), (200, bytes.len()));
    drop(stalled);
}

/// Every request gets an access log line (method, path, status, latency),
/// and a link's token, a credential, is never in it.
async fn the_access_log_never_shows_a_link(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("RUST_LOG", "info")]).await;
    let anna = app.register("anna").await;
    let document = upload(&app, &anna, "log.txt", b"logged").await;
    let link = make_link(&app, &anna.access, id_of(&document)).await;
    let token = token_of(&link);
    let url = link_url(&app, &link);
    let (status, _, body) = follow(&app, Method::GET, &url, &[]).await;
    assert_eq!((status, body.as_slice()), (200, &b"logged"[..]));
    // The same token under a percent-encoded name, and a tampered one.
    let encoded = url.replace("?link=", "?lin%6B=");
    follow(&app, Method::GET, &encoded, &[]).await;
    let tampered = format!("{url}x");
    follow(&app, Method::GET, &tampered, &[]).await;

    let want = format!(
        "/api/documents/{}/download/?link=[redacted]",
        id_of(&document)
    );
    // The line is written after the response: wait for the last one.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !app.server_log().contains("status=403") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = app.server_log();
    let access: Vec<&str> = log.lines().filter(|line| line.contains("access")).collect();
    assert!(
        access
            .iter()
            .any(|line| line.contains(&want) && line.contains("status=200")),
        "an access line for the followed link: {access:#?}"
    );
    assert!(
        access.iter().any(|line| line.contains("lin%6B=[redacted]")),
        "{access:#?}"
    );
    assert!(
        access
            .iter()
            .any(|line| line.contains("POST") && line.contains("/api/auth/register/")),
        "{access:#?}"
    );
    let secret = &token[..token.len().min(24)];
    assert!(!log.contains(secret), "the token is in the log:\n{log}");
}
