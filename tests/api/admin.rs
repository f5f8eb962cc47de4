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
        for cookie in headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
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
        let form = self
            .get(&format!("/admin/login/?next={}", encode(next)))
            .await;
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
    staff_search_change_and_act_on_missions,
    staff_manage_users_documents_steps_activities_and_jobs,
    changelists_show_a_hundred_rows_a_page,
);

backend_custom_tests!(staff_delete_finished_jobs_only,);

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
    for field in [
        "name=\"username\"",
        "name=\"password\"",
        "name=\"csrfmiddlewaretoken\"",
    ] {
        assert!(form.body.contains(field), "the form has {field}");
    }
    let csrf_cookie = form
        .set_cookie("csrftoken")
        .expect("the form sets csrftoken");
    assert!(csrf_cookie.contains("SameSite=Lax"), "{csrf_cookie}");

    let signed_in = browser.log_in("root", &root.password, "/admin/").await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/admin/");
    let session = signed_in.set_cookie("sessionid").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain http: not Secure: {session}"
    );

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
        assert!(
            index.body.contains(&format!("href=\"{link}\"")),
            "the index links {link}"
        );
    }
    assert!(
        index.body.contains("user_logged_in"),
        "the login is a recent action"
    );
    assert!(index.body.contains("Welcome, <strong>root</strong>"));

    // A logout without the session's token changes nothing.
    let forged = browser.post("/admin/logout/", &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("CSRF verification failed"));
    let wrong = browser
        .post(
            "/admin/logout/",
            &[("csrfmiddlewaretoken", "0".repeat(64).as_str())],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get("/admin/").await.status, StatusCode::OK);

    let token = index.hidden("csrfmiddlewaretoken");
    let out = browser
        .post("/admin/logout/", &[("csrfmiddlewaretoken", &token)])
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("Logged out"));
    assert!(
        !browser.cookies.contains_key("sessionid"),
        "the cookie is dropped"
    );
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
    assert_eq!(
        missing.status,
        StatusCode::FOUND,
        "anonymous: to the login first"
    );
}

async fn the_login_refuses_other_users_and_forged_forms(app: TestApp) {
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    let mut browser = Browser::new(&app);

    let not_staff = browser.log_in("anna", &anna.password, "/admin/").await;
    assert_eq!(not_staff.status, StatusCode::OK);
    assert!(not_staff.body.contains(LOGIN_REFUSED), "{}", not_staff.body);
    assert!(not_staff.set_cookie("sessionid").is_none());
    assert_eq!(
        not_staff.hidden("username"),
        "anna",
        "the form keeps the username"
    );

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

async fn new_mission(
    app: &TestApp,
    owner: &crate::harness::Registered,
    title: &str,
    priority: &str,
) -> i64 {
    let r = app
        .post_json(
            "/api/missions/",
            &json!({"title": title, "type": "document_retrieval", "priority": priority}),
            Some(&owner.access),
        )
        .await;
    r.assert_status(201);
    r.body["id"].as_i64().expect("an id")
}

async fn status_of(app: &TestApp, owner: &crate::harness::Registered, id: i64) -> String {
    let r = app
        .get(&format!("/api/missions/{id}/"), Some(&owner.access))
        .await;
    r.assert_status(200);
    r.body["status"].as_str().expect("a status").to_owned()
}

async fn staff_search_change_and_act_on_missions(app: TestApp) {
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    let taxes = new_mission(&app, &anna, "Retrieve Tax Documents", "high").await;
    let passport = new_mission(&app, &anna, "Renew passport", "low").await;
    let forms = new_mission(&app, &anna, "Tax forms 2027", "medium").await;
    let mut browser = Browser::new(&app);
    let signed_in = browser
        .log_in("root", &root.password, "/admin/missions/mission/")
        .await;
    assert_eq!(signed_in.location(), "/admin/missions/mission/");

    // Search, filter, order.
    let found = browser.get("/admin/missions/mission/?q=tax").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(found.body.contains("Retrieve Tax Documents"));
    assert!(found.body.contains("Tax forms 2027"));
    assert!(!found.body.contains("Renew passport"));
    assert!(found.body.contains("2 missions"));
    let low = browser
        .get("/admin/missions/mission/?priority__exact=low")
        .await;
    assert!(low.body.contains("Renew passport"));
    assert!(!low.body.contains("Tax forms 2027"));
    let by_title = browser.get("/admin/missions/mission/?o=1").await;
    let position = |text: &str| {
        by_title
            .body
            .find(text)
            .unwrap_or_else(|| panic!("{text} listed"))
    };
    assert!(position("Renew passport") < position("Retrieve Tax Documents"));
    assert!(position("Retrieve Tax Documents") < position("Tax forms 2027"));
    assert!(
        by_title
            .body
            .contains(&format!("href=\"/admin/missions/mission/{taxes}/change/\"")),
        "each row links to its change page"
    );

    // The change page: a field error, then a change through the use case.
    let change_url = format!("/admin/missions/mission/{taxes}/change/");
    let page = browser.get(&change_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("name=\"title\""));
    assert!(page.body.contains("anna"), "the owner is shown");
    let csrf = page.hidden("csrfmiddlewaretoken");
    let fields = |title: &'static str| {
        vec![
            ("title", title),
            ("description", ""),
            ("type", "document_retrieval"),
            ("priority", "high"),
            ("deadline", ""),
        ]
    };
    let mut blank = fields("   ");
    blank.push(("csrfmiddlewaretoken", &csrf));
    let refused = browser.post(&change_url, &blank).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.body.contains("errorlist"), "{}", refused.body);
    assert!(refused.body.contains("This field may not be blank."));
    let mut bad_deadline = fields("Retrieve Tax Documents");
    bad_deadline.retain(|(name, _)| *name != "deadline");
    bad_deadline.push(("deadline", "next tuesday"));
    bad_deadline.push(("csrfmiddlewaretoken", &csrf));
    let refused = browser.post(&change_url, &bad_deadline).await;
    assert!(
        refused.body.contains("Enter a valid date/time"),
        "{}",
        refused.body
    );
    let detail = app
        .get(&format!("/api/missions/{taxes}/"), Some(&anna.access))
        .await;
    assert_eq!(
        detail.body["title"], "Retrieve Tax Documents",
        "nothing changed"
    );

    let mut forged = fields("Forged title");
    forged.push(("csrfmiddlewaretoken", "x"));
    assert_eq!(
        browser.post(&change_url, &forged).await.status,
        StatusCode::FORBIDDEN
    );

    let mut renamed = fields("Retrieve 2026 Tax Documents");
    renamed.push(("csrfmiddlewaretoken", &csrf));
    let saved = browser.post(&change_url, &renamed).await;
    assert_eq!(saved.status, StatusCode::FOUND, "{}", saved.body);
    assert_eq!(saved.location(), "/admin/missions/mission/");
    let listed = browser.get("/admin/missions/mission/").await;
    assert!(
        listed.body.contains("was changed successfully"),
        "{}",
        listed.body
    );
    let again = browser.get("/admin/missions/mission/").await;
    assert!(
        !again.body.contains("was changed successfully"),
        "a message shows once"
    );
    let detail = app
        .get(&format!("/api/missions/{taxes}/"), Some(&anna.access))
        .await;
    assert_eq!(detail.body["title"], "Retrieve 2026 Tax Documents");
    let log = app
        .get(
            &format!("/api/activities/?mission={taxes}&type=mission_updated"),
            Some(&root.access),
        )
        .await;
    log.assert_status(200);
    let updated = &log.body["results"][0];
    assert_eq!(
        updated["user"], root.id,
        "the staff member is named: {updated}"
    );
    assert_eq!(updated["details"]["owner"], anna.id);

    // Actions on selected rows, reported per row, back to the same list.
    let list_url = "/admin/missions/mission/?o=1";
    let list = browser.get(list_url).await;
    let token = list.hidden("csrfmiddlewaretoken");
    let (taxes_id, passport_id, forms_id) =
        (taxes.to_string(), passport.to_string(), forms.to_string());
    let started = browser
        .post(
            list_url,
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "start"),
                ("_selected_action", &taxes_id),
                ("_selected_action", &passport_id),
                ("index", "0"),
            ],
        )
        .await;
    assert_eq!(started.status, StatusCode::FOUND, "{}", started.body);
    assert_eq!(started.location(), list_url);
    let report = browser.get(list_url).await;
    assert!(
        report.body.contains("Successfully updated 2 missions."),
        "{}",
        report.body
    );
    assert_eq!(status_of(&app, &anna, taxes).await, "in_progress");
    assert_eq!(status_of(&app, &anna, passport).await, "in_progress");

    let mixed = browser
        .post(
            list_url,
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "start"),
                ("_selected_action", &taxes_id),
                ("_selected_action", &forms_id),
            ],
        )
        .await;
    assert_eq!(mixed.status, StatusCode::FOUND);
    let report = browser.get(list_url).await;
    assert!(
        report.body.contains("Successfully updated 1 mission."),
        "{}",
        report.body
    );
    assert!(
        report.body.contains(&format!(
            "Mission {taxes} was not changed: Cannot start a mission that is in_progress."
        )),
        "{}",
        report.body
    );
    assert_eq!(status_of(&app, &anna, forms).await, "in_progress");

    let forged = browser
        .post(
            list_url,
            &[("action", "pause"), ("_selected_action", &forms_id)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&app, &anna, forms).await, "in_progress");

    let none = browser
        .post(
            list_url,
            &[("csrfmiddlewaretoken", &token), ("action", "pause")],
        )
        .await;
    assert_eq!(none.status, StatusCode::FOUND);
    let report = browser.get(list_url).await;
    assert!(
        report.body.contains("Items must be selected"),
        "{}",
        report.body
    );

    let missing = browser.get("/admin/missions/mission/999999/change/").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Deletion asks first, then goes through the use case (which keeps a
    // running mission).
    let draft = new_mission(&app, &anna, "Old draft", "low")
        .await
        .to_string();
    let asked = browser
        .post(
            list_url,
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "delete_selected"),
                ("_selected_action", &draft),
                ("_selected_action", &taxes_id),
            ],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("Are you sure?"));
    assert_eq!(
        status_of(&app, &anna, draft.parse().expect("id")).await,
        "pending",
        "nothing deleted yet"
    );
    let deleted = browser
        .post(
            list_url,
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "delete_selected"),
                ("post", "yes"),
                ("_selected_action", &draft),
                ("_selected_action", &taxes_id),
            ],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::FOUND);
    let report = browser.get(list_url).await;
    assert!(
        report.body.contains("Successfully deleted 1 mission."),
        "{}",
        report.body
    );
    assert!(
        report
            .body
            .contains("Cannot delete a mission that is in_progress."),
        "{}",
        report.body
    );
    app.get(&format!("/api/missions/{draft}/"), Some(&anna.access))
        .await
        .assert_status(404);

    // Afterwards the server settles: next to no CPU, no job piling up.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let jobs_before = crate::jobs::count(&app, "");
    let share = crate::harness::server_cpu_share(&app, std::time::Duration::from_secs(2)).await;
    assert!(
        share < 0.05,
        "an idle server used {:.1}% of a core after the admin's actions\n{}",
        share * 100.0,
        crate::jobs::job_table(&app)
    );
    assert_eq!(
        crate::jobs::count(&app, ""),
        jobs_before,
        "the job table kept growing\n{}",
        crate::jobs::job_table(&app)
    );
}

async fn staff_manage_users_documents_steps_activities_and_jobs(app: TestApp) {
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let mission = new_mission(&app, &anna, "Retrieve Tax Documents", "high").await;
    app.post_json(
        &format!("/api/missions/{mission}/steps/"),
        &json!({"title": "Download the W-2"}),
        Some(&anna.access),
    )
    .await
    .assert_status(201);
    let pdf: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    let document = crate::documents::upload(&app, &anna, "w2.pdf", "application/pdf", pdf).await;
    let document_id = document["id"].as_i64().expect("a document id").to_string();
    let mut browser = Browser::new(&app);
    browser.log_in("root", &root.password, "/admin/").await;

    // Users: search, filter, and the activate/deactivate actions.
    let users = browser.get("/admin/auth/user/?q=anna").await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    assert!(users.body.contains("anna@example.com"));
    assert!(!users.body.contains("ben@example.com"));
    let staff = browser.get("/admin/auth/user/?is_staff__exact=1").await;
    assert!(staff.body.contains("root@example.com"));
    assert!(!staff.body.contains("anna@example.com"));
    let token = users.hidden("csrfmiddlewaretoken");
    let (anna_id, root_id) = (anna.id.to_string(), root.id.to_string());
    browser
        .post(
            "/admin/auth/user/",
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "deactivate"),
                ("_selected_action", &anna_id),
                ("_selected_action", &root_id),
            ],
        )
        .await;
    let report = browser.get("/admin/auth/user/").await;
    assert!(
        report.body.contains("Successfully updated 1 user."),
        "{}",
        report.body
    );
    assert!(
        report
            .body
            .contains("you cannot deactivate your own account")
    );
    app.login("anna", &anna.password).await.assert_status(401);
    browser
        .post(
            "/admin/auth/user/",
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "activate"),
                ("_selected_action", &anna_id),
            ],
        )
        .await;
    app.login("anna", &anna.password).await.assert_status(200);

    // Documents: everyone's, and verified by an action.
    let documents = browser
        .get("/admin/documents/document/?status__exact=pending")
        .await;
    assert_eq!(documents.status, StatusCode::OK, "{}", documents.body);
    assert!(documents.body.contains("w2"), "{}", documents.body);
    browser
        .post(
            "/admin/documents/document/",
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "verify"),
                ("_selected_action", &document_id),
            ],
        )
        .await;
    let report = browser.get("/admin/documents/document/").await;
    assert!(
        report.body.contains("Successfully updated 1 document."),
        "{}",
        report.body
    );
    let seen = app
        .get(
            &format!("/api/documents/{document_id}/"),
            Some(&anna.access),
        )
        .await;
    assert_eq!(seen.body["status"], "verified");

    // Change pages of users and documents, through their use cases.
    let user_url = format!("/admin/auth/user/{}/change/", anna.id);
    let page = browser.get(&user_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("name=\"email\""));
    let user_fields = |email: &'static str| {
        vec![
            ("csrfmiddlewaretoken", token.clone()),
            ("email", email.to_owned()),
            ("first_name", "Ada".to_owned()),
            ("last_name", "Lovelace".to_owned()),
            ("is_active", "on".to_owned()),
        ]
    };
    let as_pairs =
        |fields: &[(&'static str, String)]| -> Vec<(&'static str, String)> { fields.to_vec() };
    let refused = browser
        .post(
            &user_url,
            &borrowed(&as_pairs(&user_fields("not an email"))),
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.body.contains("errorlist"), "{}", refused.body);
    let saved = browser
        .post(
            &user_url,
            &borrowed(&as_pairs(&user_fields("ada@example.com"))),
        )
        .await;
    assert_eq!(saved.status, StatusCode::FOUND, "{}", saved.body);
    let me = app.get("/api/users/me/", Some(&anna.access)).await;
    assert_eq!(me.body["first_name"], "Ada");
    assert_eq!(me.body["email"], "ada@example.com");
    let document_url = format!("/admin/documents/document/{document_id}/change/");
    let page = browser.get(&document_url).await;
    assert!(
        page.body
            .contains(&document["sha256"].as_str().unwrap_or("?").to_owned()),
        "read-only sha256 shown"
    );
    let refused = browser
        .post(
            &document_url,
            &[
                ("csrfmiddlewaretoken", token.as_str()),
                ("name", "W-2 2026"),
                ("type", "other"),
                ("mission", "999999"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.body.contains("Invalid pk"), "{}", refused.body);
    let saved = browser
        .post(
            &document_url,
            &[
                ("csrfmiddlewaretoken", token.as_str()),
                ("name", "W-2 2026"),
                ("type", "other"),
                ("mission", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::FOUND, "{}", saved.body);
    let seen = app
        .get(
            &format!("/api/documents/{document_id}/"),
            Some(&anna.access),
        )
        .await;
    assert_eq!(seen.body["name"], "W-2 2026");
    assert_eq!(seen.body["mission"], serde_json::Value::Null);

    // Downloads: the change page links the file, served through a signed
    // link of the staff member; the action takes exactly one document.
    let page = browser.get(&document_url).await;
    let download_url = format!("/admin/documents/document/{document_id}/download/");
    assert!(page.body.contains(&download_url), "{}", page.body);
    let redirected = browser.get(&download_url).await;
    assert_eq!(redirected.status, StatusCode::FOUND);
    assert!(
        redirected
            .location()
            .starts_with(&format!("/api/documents/{document_id}/download/?link=")),
        "{}",
        redirected.location()
    );
    let file = app
        .client()
        .get(format!("{}{}", app.base_url, redirected.location()))
        .send()
        .await
        .expect("the download");
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.bytes().await.expect("the bytes").as_ref(), pdf);
    let one = browser
        .post(
            "/admin/documents/document/",
            &[
                ("csrfmiddlewaretoken", token.as_str()),
                ("action", "download"),
                ("_selected_action", &document_id),
            ],
        )
        .await;
    assert_eq!(one.location(), download_url);
    let two = browser
        .post(
            "/admin/documents/document/",
            &[
                ("csrfmiddlewaretoken", token.as_str()),
                ("action", "download"),
                ("_selected_action", &document_id),
                ("_selected_action", "999"),
            ],
        )
        .await;
    assert_eq!(two.status, StatusCode::FOUND);
    let report = browser.get("/admin/documents/document/").await;
    assert!(
        report.body.contains("Select one document to download."),
        "{}",
        report.body
    );
    assert!(
        browser
            .get("/admin/documents/document/999999/download/")
            .await
            .status
            == StatusCode::NOT_FOUND
    );

    // Plan steps: every mission's, and one mission's through its filter.
    let other = new_mission(&app, &ben, "Renew the passport", "low").await;
    app.post_json(
        &format!("/api/missions/{other}/steps/"),
        &json!({"title": "Book an appointment"}),
        Some(&ben.access),
    )
    .await
    .assert_status(201);
    let all = browser.get("/admin/missions/planstep/").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert!(all.body.contains("Download the W-2"), "{}", all.body);
    assert!(all.body.contains("Book an appointment"), "{}", all.body);
    assert!(all.body.contains("2 plan steps"), "{}", all.body);
    assert!(
        all.body.contains(&format!("mission__exact={mission}")),
        "the sidebar offers each mission: {}",
        all.body
    );
    let found = browser.get("/admin/missions/planstep/?q=appointment").await;
    assert!(found.body.contains("Book an appointment"));
    assert!(!found.body.contains("Download the W-2"));
    assert!(
        found.body.contains("1 plan step") && !found.body.contains("1 plan steps"),
        "one row is counted in the singular: {}",
        found.body
    );
    let completed = browser
        .get("/admin/missions/planstep/?status__exact=completed")
        .await;
    assert!(
        completed.body.contains("0 plan steps"),
        "{}",
        completed.body
    );
    let steps = browser
        .get(&format!(
            "/admin/missions/planstep/?mission__exact={mission}"
        ))
        .await;
    assert!(steps.body.contains("Download the W-2"), "{}", steps.body);
    assert!(
        !steps.body.contains("Book an appointment"),
        "{}",
        steps.body
    );
    let marker = "href=\"/admin/missions/planstep/";
    let start = steps
        .body
        .find(marker)
        .expect("a step links its change page")
        + marker.len();
    let step_id: String = steps.body[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let step_url = format!("/admin/missions/planstep/{step_id}/change/");
    let page = browser.get(&step_url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let refused = browser
        .post(
            &step_url,
            &[
                ("csrfmiddlewaretoken", token.as_str()),
                ("title", "Download the W-2"),
                ("status", "pending"),
                ("order", "-1"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.body.contains("errorlist"), "{}", refused.body);
    let saved = browser
        .post(
            &step_url,
            &[
                ("csrfmiddlewaretoken", token.as_str()),
                ("title", "Download the 2026 W-2"),
                ("status", "in_progress"),
                ("order", "0"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::FOUND, "{}", saved.body);
    let seen = app
        .get(
            &format!("/api/missions/{mission}/steps/{step_id}/"),
            Some(&anna.access),
        )
        .await;
    assert_eq!(seen.body["title"], "Download the 2026 W-2", "{}", seen.body);
    assert_eq!(seen.body["status"], "in_progress");

    // Activities: searchable, read-only.
    let log = browser.get("/admin/activities/activity/?q=verified").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    assert!(log.body.contains("document_verified"), "{}", log.body);
    assert!(!log.body.contains("option value=\"delete_selected\""));
    let refused = browser
        .post(
            "/admin/activities/activity/",
            &[
                ("csrfmiddlewaretoken", &token),
                ("action", "delete_selected"),
                ("_selected_action", "1"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FOUND);
    let report = browser.get("/admin/activities/activity/").await;
    assert!(
        report.body.contains("No items have been changed."),
        "{}",
        report.body
    );

    // Jobs: the queue, filterable by status.
    let jobs = browser.get("/admin/jobs/job/?status__exact=dead").await;
    assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.body);
    assert!(jobs.body.contains("0 jobs"), "{}", jobs.body);
}

/// How many rows a changelist page shows (one checkbox each).
fn rows(page: &Page) -> usize {
    page.body.matches("name=\"_selected_action\"").count()
}

/// Django's `list_per_page`: 100 rows a page, the 101st on page 2, links
/// to both pages, and a page past the end is "not found", not an error.
async fn changelists_show_a_hundred_rows_a_page(app: TestApp) {
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    for n in 1..=100 {
        new_mission(&app, &anna, &format!("Mission {n:03}"), "low").await;
    }
    let mut browser = Browser::new(&app);
    browser.log_in("root", &root.password, "/admin/").await;
    let full = browser.get("/admin/missions/mission/").await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert_eq!(rows(&full), 100);
    assert!(full.body.contains("100 missions"), "{}", full.body);
    assert!(!full.body.contains("p=2"), "one page only");

    new_mission(&app, &anna, "Mission 101", "low").await;
    let first = browser.get("/admin/missions/mission/?o=1").await;
    assert_eq!(rows(&first), 100);
    assert!(first.body.contains("101 missions"), "{}", first.body);
    assert!(first.body.contains("p=2"), "a link to page 2");
    assert!(first.body.contains("Mission 001"));
    assert!(!first.body.contains("Mission 101"));
    let second = browser.get("/admin/missions/mission/?o=1&p=2").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(rows(&second), 1);
    assert!(second.body.contains("Mission 101"), "{}", second.body);
    let past = browser.get("/admin/missions/mission/?p=3").await;
    assert_eq!(past.status, StatusCode::NOT_FOUND, "{}", past.body);
    // Junk in `p` is page 1, as an old or hand-made link may hold.
    let junk = browser.get("/admin/missions/mission/?p=abc").await;
    assert_eq!(rows(&junk), 100);

    // The same holds where the rows are steps across missions and jobs.
    let steps = browser.get("/admin/missions/planstep/").await;
    assert_eq!(steps.status, StatusCode::OK, "{}", steps.body);
    let jobs = browser.get("/admin/jobs/job/?p=1").await;
    assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.body);
}

/// Jobs are deleted through Django's confirmation page, and only the
/// finished ones (done or dead): a queued job still has work to do.
async fn staff_delete_finished_jobs_only(backend: crate::harness::Backend) {
    // No worker in `serve`: queued jobs stay queued while we look.
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let root = app.create_superuser("root").await;
    let anna = app.register("anna").await;
    let timer = crate::jobs::wait(1);
    let mut missions = Vec::new();
    for title in ["First", "Second"] {
        let (mission, _) =
            crate::jobs::mission_with_steps(&app, &anna, title, std::slice::from_ref(&timer)).await;
        crate::jobs::act_ok(&app, &anna, mission, "start", "in_progress").await;
        missions.push(mission);
    }
    let job_of = |mission: i64| {
        app.db
            .query_value(&format!(
                "SELECT CAST(id AS TEXT) AS value FROM jobs_job WHERE mission_id = {mission}"
            ))
            .unwrap_or_else(|| {
                panic!(
                    "a job of mission {mission}\n{}",
                    crate::jobs::job_table(&app)
                )
            })
    };
    let (finished, queued) = (job_of(missions[0]), job_of(missions[1]));
    // As a worker leaves a job it finished.
    app.db.exec(&format!(
        "UPDATE jobs_job SET status = 'done', locked_by = NULL, locked_until = NULL WHERE id = {finished}"
    ));

    let mut browser = Browser::new(&app);
    browser.log_in("root", &root.password, "/admin/").await;
    let list = browser.get("/admin/jobs/job/").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains("option value=\"delete_selected\""));
    let token = list.hidden("csrfmiddlewaretoken");
    let selected = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("action", "delete_selected"),
        ("_selected_action", finished.as_str()),
        ("_selected_action", queued.as_str()),
    ];
    let asked = browser.post("/admin/jobs/job/", &selected).await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("Are you sure?"), "{}", asked.body);
    assert_eq!(
        crate::jobs::count(&app, &format!("WHERE id = {finished}")),
        1
    );

    let mut confirmed = selected.to_vec();
    confirmed.push(("post", "yes"));
    let deleted = browser.post("/admin/jobs/job/", &confirmed).await;
    assert_eq!(deleted.status, StatusCode::FOUND);
    assert_eq!(deleted.location(), "/admin/jobs/job/");
    let report = browser.get("/admin/jobs/job/").await;
    assert!(
        report.body.contains("Successfully deleted 1 job."),
        "{}",
        report.body
    );
    assert!(
        report.body.contains(&format!(
            "Job {queued} was not changed: only a done or dead job can be deleted"
        )),
        "{}",
        report.body
    );
    assert_eq!(
        crate::jobs::count(&app, &format!("WHERE id = {finished}")),
        0
    );
    assert_eq!(
        crate::jobs::count(&app, &format!("WHERE id = {queued} AND status = 'queued'")),
        1,
        "the queued job keeps its work\n{}",
        crate::jobs::job_table(&app)
    );
    // The index counts what is left.
    let index = browser.get("/admin/").await;
    assert!(index.body.contains("Jobs"), "{}", index.body);
}

fn borrowed<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}
