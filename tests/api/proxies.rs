//! Forwarded headers (issue 12, item 5): absolute URLs come from
//! `server.public_url` when set, else from the request, and
//! `X-Forwarded-Host/-Proto/-For` and `Forwarded` are believed only from
//! `server.trusted_proxies` — for links and for the address throttling keys on.
//!
//! The test client connects from 127.0.0.1, so trusting `127.0.0.0/8` makes
//! it a trusted proxy.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const MISSIONS: &str = "/api/missions/";
const DOCUMENTS: &str = "/api/documents/";

backend_custom_tests!(
    forged_forwarded_headers_do_not_move_links,
    public_url_beats_every_header,
    trusted_proxies_are_believed,
    a_client_cannot_rotate_its_address_past_throttling,
    behind_a_trusted_proxy_each_client_has_its_own_budget,
    bad_trusted_proxies_refuse_to_start,
);

/// `X-Forwarded-*` headers a client forges.
const X_FORWARDED: &[(&str, &str)] = &[
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-for", "203.0.113.66"),
];

/// The same, as RFC 7239 says it.
const FORWARDED: &[(&str, &str)] = &[(
    "forwarded",
    "for=203.0.113.66;host=evil.example;proto=https",
)];

fn with_headers(
    mut request: reqwest::RequestBuilder,
    token: &str,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    request = request.bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

async fn get(app: &TestApp, path: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
    let url = app.url(path);
    let request = with_headers(app.client().get(&url), token, headers);
    let r = app.send(&Method::GET, &url, request).await;
    r.assert_status(200).assert_json();
    r
}

async fn post(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Resp {
    let url = app.url(path);
    let request = with_headers(app.client().post(&url).json(body), token, headers);
    let r = app.send(&Method::POST, &url, request).await;
    r.assert_status(201).assert_json();
    r
}

const BOUNDARY: &str = "----autodocs-proxies-boundary";

/// Uploads a small text document into `mission`, sending `headers`.
async fn upload(app: &TestApp, token: &str, mission: i64, headers: &[(&str, &str)]) -> Resp {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"mission\"\r\n\r\n{mission}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nplain notes\r\n--{BOUNDARY}--\r\n"
    );
    let url = app.url(DOCUMENTS);
    let request = with_headers(
        app.client()
            .post(&url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body),
        token,
        headers,
    );
    let r = app.send(&Method::POST, &url, request).await;
    r.assert_status(201).assert_json();
    r
}

/// Every absolute URL the API hands out, from requests carrying `headers`:
/// `next` and `previous` of a middle page, and `download_url` of an upload's
/// answer, the document list, the document detail and the mission detail.
async fn absolute_urls(app: &TestApp, headers: &[(&str, &str)]) -> Vec<String> {
    // A fresh user each call, so one server serves several batches.
    static USERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = USERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let anna = app.register(&format!("anna{n}")).await;
    let token = anna.access.as_str();
    let mut missions = Vec::new();
    for title in ["one", "two", "three"] {
        let r = post(
            app,
            MISSIONS,
            token,
            &json!({"title": title, "type": "custom"}),
            headers,
        )
        .await;
        missions.push(r.body["id"].as_i64().expect("mission id"));
    }
    let mut urls = Vec::new();
    let page = get(
        app,
        &format!("{MISSIONS}?page_size=1&page=2"),
        token,
        headers,
    )
    .await;
    for link in ["next", "previous"] {
        urls.push(
            page.body[link]
                .as_str()
                .unwrap_or_else(|| panic!("{link}: {}", page.describe()))
                .to_owned(),
        );
    }
    let uploaded = upload(app, token, missions[0], headers).await;
    let id = uploaded.body["id"].as_i64().expect("document id");
    let mut download_urls = vec![uploaded.body["download_url"].clone()];
    let list = get(app, DOCUMENTS, token, headers).await;
    download_urls.push(list.body["results"][0]["download_url"].clone());
    let detail = get(app, &format!("{DOCUMENTS}{id}/"), token, headers).await;
    download_urls.push(detail.body["download_url"].clone());
    let mission = get(app, &format!("{MISSIONS}{}/", missions[0]), token, headers).await;
    download_urls.push(mission.body["documents"][0]["download_url"].clone());
    for url in download_urls {
        let url = url
            .as_str()
            .unwrap_or_else(|| panic!("download_url: {url}"));
        assert!(
            url.ends_with(&format!("/api/documents/{id}/download/")),
            "{url}"
        );
        urls.push(url.to_owned());
    }
    assert!(urls[0].contains("/api/missions/?"), "{urls:?}");
    urls
}

fn assert_all_start_with(urls: &[String], base: &str, context: &str) {
    for url in urls {
        assert!(
            url.starts_with(&format!("{base}/")),
            "{context}: {url} should start with {base}/ ({urls:?})"
        );
        assert!(!url.contains("evil"), "{context}: {url}");
    }
}

async fn forged_forwarded_headers_do_not_move_links(backend: Backend) {
    // Default settings: no proxy is trusted.
    let app = TestApp::spawn(backend).await;
    let urls = absolute_urls(&app, &[]).await;
    assert_all_start_with(&urls, &app.base_url, "plain");
    let urls = absolute_urls(&app, X_FORWARDED).await;
    assert_all_start_with(&urls, &app.base_url, "X-Forwarded-*");
    let urls = absolute_urls(&app, FORWARDED).await;
    assert_all_start_with(&urls, &app.base_url, "Forwarded");
}

async fn public_url_beats_every_header(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[
            ("AUTODOCS__SERVER__PUBLIC_URL", "https://api.example.com/"),
            ("AUTODOCS__SERVER__TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    )
    .await;
    // Even what a trusted proxy reports does not move them.
    let proxied = [
        ("x-forwarded-host", "proxied.example"),
        ("x-forwarded-proto", "http"),
    ];
    let urls = absolute_urls(&app, &proxied).await;
    assert_all_start_with(&urls, "https://api.example.com", "public_url");

    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__PUBLIC_URL", "https://api.example.com")],
    )
    .await;
    let mut forged = X_FORWARDED.to_vec();
    forged.extend_from_slice(FORWARDED);
    let urls = absolute_urls(&app, &forged).await;
    assert_all_start_with(
        &urls,
        "https://api.example.com",
        "public_url, forged headers",
    );
}

async fn trusted_proxies_are_believed(backend: Backend) {
    // The JSON-style list form of the variable.
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__TRUSTED_PROXIES", "[\"127.0.0.0/8\"]")],
    )
    .await;
    let proxied = [
        ("x-forwarded-host", "proxied.example"),
        ("x-forwarded-proto", "https"),
    ];
    let urls = absolute_urls(&app, &proxied).await;
    assert_all_start_with(&urls, "https://proxied.example", "trusted X-Forwarded-*");

    // The comma-separated form, and RFC 7239's header.
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")],
    )
    .await;
    let urls = absolute_urls(
        &app,
        &[(
            "forwarded",
            "for=203.0.113.1;host=proxied.example:8443;proto=https",
        )],
    )
    .await;
    assert_all_start_with(&urls, "https://proxied.example:8443", "trusted Forwarded");

    // Even a trusted proxy cannot hand over a host that carries a URL.
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let urls = absolute_urls(&app, &[("x-forwarded-host", "evil.example/x?y=")]).await;
    assert_all_start_with(&urls, &app.base_url, "malformed forwarded host");
}

/// A few failed logins, each from the address `from` claims; returns the
/// status of each.
async fn logins(app: &TestApp, count: usize, from: impl Fn(usize) -> String) -> Vec<u16> {
    let mut statuses = Vec::new();
    for n in 0..count {
        let url = app.url("/api/auth/login/");
        // Another username each time: only the address's rate is at stake.
        let request = app
            .client()
            .post(&url)
            .header("x-forwarded-for", from(n))
            .json(&json!({"username": format!("nobody{n}"), "password": "wrong-password"}));
        let r = app.send(&Method::POST, &url, request).await;
        r.assert_json();
        statuses.push(r.code());
    }
    statuses
}

const LOW_RATE: &[(&str, &str)] = &[
    ("AUTODOCS__THROTTLE__ENABLED", "true"),
    ("AUTODOCS__THROTTLE__AUTH_PER_MINUTE", "3"),
];

async fn a_client_cannot_rotate_its_address_past_throttling(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, LOW_RATE).await;
    let statuses = logins(&app, 5, |n| format!("198.51.100.{n}")).await;
    assert!(
        statuses[..3].iter().all(|status| *status != 429),
        "{statuses:?}"
    );
    assert_eq!(statuses[3..], [429, 429], "{statuses:?}");
}

async fn behind_a_trusted_proxy_each_client_has_its_own_budget(backend: Backend) {
    let mut settings = LOW_RATE.to_vec();
    settings.push(("AUTODOCS__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"));
    let app = TestApp::spawn_with_env(backend, &settings).await;
    // Anything left of the client's address is the client's own say.
    let first = logins(&app, 4, |n| format!("10.9.9.{n}, 203.0.113.1")).await;
    assert!(first[..3].iter().all(|status| *status != 429), "{first:?}");
    assert_eq!(first[3], 429, "{first:?}");
    let second = logins(&app, 3, |_| "203.0.113.2".to_owned()).await;
    assert!(second.iter().all(|status| *status != 429), "{second:?}");
    let again = logins(&app, 1, |_| "203.0.113.1".to_owned()).await;
    assert_eq!(again, [429]);
}

async fn bad_trusted_proxies_refuse_to_start(backend: Backend) {
    let db = TestDb::new(backend);
    let env = base_env(&db, &random_secret());
    for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/8, nonsense"] {
        let mut env = env.clone();
        adjust_env(&mut env, &[("AUTODOCS__SERVER__TRUSTED_PROXIES", bad)], &[]);
        for command in ["check", "serve"] {
            let out = run_cli(&[command], &env).await;
            assert!(
                !out.status.success(),
                "{command} with {bad:?}: {}",
                describe(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("trusted_proxies"),
                "{command} with {bad:?}: {}",
                describe(&out)
            );
        }
    }
    let mut env = env.clone();
    adjust_env(
        &mut env,
        &[(
            "AUTODOCS__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8,::1,192.168.0.1",
        )],
        &[],
    );
    let out = run_cli(&["check"], &env).await;
    assert!(out.status.success(), "{}", describe(&out));
    adjust_env(
        &mut env,
        &[("AUTODOCS__SERVER__PUBLIC_URL", "api.example.com/")],
        &[],
    );
    let out = run_cli(&["check"], &env).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public_url"),
        "{}",
        describe(&out)
    );
}
