//! The staff admin's sign-in, as a browser does it: cookies, forms, CSRF
//! tokens and redirects, against the real server.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::harness::TestApp;

const LOGIN_REFUSED: &str = "Please enter the correct username and password for a staff account.";

/// A browser's view of the admin: it keeps cookies and follows nothing by itself.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|cookie| cookie.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the hidden input `name` (the first one).
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("the value ends") + start;
        self.body[start..end].to_owned()
    }
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        for cookie in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = cookie.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let removed = cookie.contains("Max-Age=0") || value.is_empty();
                if removed {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let body = response.text().await.expect("a body");
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .app
            .client()
            .get(format!("{}{path}", self.app.base_url))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.keep(response).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .app
            .client()
            .post(format!("{}{path}", self.app.base_url))
            .header(COOKIE, self.cookie_header())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_encode(fields))
            .send()
            .await
            .expect("POST");
        self.keep(response).await
    }

    /// Opens the login form and submits it; the answer to the POST.
    async fn log_in(&mut self, username: &str, password: &str, next: &str) -> Page {
        let form = self.get(&format!("/admin/login/?next={}", encode(next))).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.hidden("csrfmiddlewaretoken");
        let next = form.hidden("next");
        self.post(
            "/admin/login/",
            &[
                ("csrfmiddlewaretoken", &csrf),
                ("username", username),
                ("password", password),
                ("next", &next),
            ],
        )
        .await
    }
}

backend_tests!(
    staff_log_in_see_the_index_and_log_out,
    the_login_refuses_other_users_and_forged_forms,
    a_session_ends_when_its_account_loses_staff_status,
);

async fn staff_log_in_see_the_index_and_log_out(app: TestApp) {
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    app.post_json(
        "/api/missions/",
        &json!({"title": "Retrieve Tax Documents", "type": "document_retrieval"}),
        Some(&anna.access),
    )
    .await
    .assert_status(201);
    let mut browser = Browser::new(&app);

    let anonymous = browser.get("/admin/").await;
    assert_eq!(anonymous.status, StatusCode::FOUND);
    assert_eq!(anonymous.location(), "/admin/login/?next=/admin/");

    let form = browser.get("/admin/login/?next=/admin/").await;
    assert_eq!(form.status, StatusCode::OK);
    for field in ["name=\"username\"", "name=\"password\"", "name=\"csrfmiddlewaretoken\""] {
        assert!(form.body.contains(field), "the form has {field}");
    }
    let csrf_cookie = form.set_cookie("csrftoken").expect("the form sets csrftoken");
    assert!(csrf_cookie.contains("SameSite=Lax"), "{csrf_cookie}");

    let signed_in = browser.log_in("root", &root.password, "/admin/").await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/admin/");
    let session = signed_in.set_cookie("sessionid").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(!session.contains("Secure"), "plain http: not Secure: {session}");

    let index = browser.get("/admin/").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.body);
    assert!(index.body.contains("Site administration"));
    for link in [
        "/admin/auth/user/",
        "/admin/missions/mission/",
        "/admin/missions/planstep/",
        "/admin/documents/document/",
        "/admin/activities/activity/",
        "/admin/jobs/job/",
    ] {
        assert!(index.body.contains(&format!("href=\"{link}\"")), "the index links {link}");
    }
    assert!(index.body.contains("user_logged_in"), "the login is a recent action");
    assert!(index.body.contains("Welcome, <strong>root</strong>"));

    // A logout without the session's token changes nothing.
    let forged = browser.post("/admin/logout/", &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("CSRF verification failed"));
    let wrong = browser
        .post("/admin/logout/", &[("csrfmiddlewaretoken", "0".repeat(64).as_str())])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/admin/").await.status, StatusCode::OK);

    let token = index.hidden("csrfmiddlewaretoken");
    let out = browser
        .post("/admin/logout/", &[("csrfmiddlewaretoken", &token)])
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("Logged out"));
    assert!(!browser.cookies.contains_key("sessionid"), "the cookie is dropped");
    // The session is gone server-side too: its old cookie opens nothing.
    browser.cookies.insert(
        "sessionid".into(),
        session
            .split(';')
            .next()
            .and_then(|pair| pair.split_once('='))
            .map(|(_, value)| value.to_owned())
            .expect("the cookie's value"),
    );
    assert_eq!(browser.get("/admin/").await.status, StatusCode::FOUND);

    let missing = browser.get("/admin/no/such/page/").await;
    assert_eq!(missing.status, StatusCode::FOUND, "anonymous: to the login first");
}

async fn the_login_refuses_other_users_and_forged_forms(app: TestApp) {
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    let mut browser = Browser::new(&app);

    let not_staff = browser.log_in("anna", &anna.password, "/admin/").await;
    assert_eq!(not_staff.status, StatusCode::OK);
    assert!(not_staff.body.contains(LOGIN_REFUSED), "{}", not_staff.body);
    assert!(not_staff.set_cookie("sessionid").is_none());
    assert_eq!(not_staff.hidden("username"), "anna", "the form keeps the username");

    let wrong = browser.log_in("root", "not-the-password", "/admin/").await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.body.contains(LOGIN_REFUSED));
    assert!(wrong.set_cookie("sessionid").is_none());

    // Without the csrftoken cookie's value, nothing is checked at all.
    let forged = browser
        .post(
            "/admin/login/",
            &[("username", "root"), ("password", &root.password)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.set_cookie("sessionid").is_none());

    // `next` never leaves the admin.
    for next in ["https://evil.example/", "//evil.example/", "/api/missions/"] {
        let mut fresh = Browser::new(&app);
        let signed_in = fresh.log_in("root", &root.password, next).await;
        assert_eq!(signed_in.status, StatusCode::FOUND);
        assert_eq!(signed_in.location(), "/admin/", "next={next}");
    }

    let mut fresh = Browser::new(&app);
    let signed_in = fresh.log_in("root", &root.password, "/admin/").await;
    assert_eq!(signed_in.status, StatusCode::FOUND);
    let missing = fresh.get("/admin/no/such/page/").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("<html"),
        "an admin 404 is a page: {}",
        missing.body
    );
}

async fn a_session_ends_when_its_account_loses_staff_status(app: TestApp) {
    let root = app.create_superuser("root").await;
    let ada = app.register("ada").await;
    app.staff_patch_user(&root, ada.id, &json!({"is_staff": true}))
        .await;
    let mut browser = Browser::new(&app);
    let signed_in = browser.log_in("ada", &ada.password, "/admin/").await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    assert_eq!(browser.get("/admin/").await.status, StatusCode::OK);

    app.staff_patch_user(&root, ada.id, &json!({"is_staff": false}))
        .await;
    let after = browser.get("/admin/").await;
    assert_eq!(after.status, StatusCode::FOUND);
    assert!(after.location().starts_with("/admin/login/"));
}
