//! `/api/users/`: the own account (`me/`, `me/password/`) and the staff views.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::{
    Registered, TestApp, assert_keys, assert_user_exact_keys, assert_user_shape,
    assert_user_shape_with,
};

const ME: &str = "/api/users/me/";
const PASSWORD: &str = "/api/users/me/password/";
const USERS: &str = "/api/users/";
const REQUIRED: &str = "This field is required.";

/// Keys a staff view may add to `User`.
const STAFF_EXTRA: &[&str] = &["is_active", "is_superuser"];

fn user_url(id: i64) -> String {
    format!("/api/users/{id}/")
}

/// `before` with the given top-level keys replaced.
fn with(before: &Value, changes: &Value) -> Value {
    let mut after = before.clone();
    for (k, v) in changes.as_object().expect("changes object") {
        after[k] = v.clone();
    }
    after
}

/// The usernames of a list page.
fn usernames(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results is a list: {page}"))
        .iter()
        .map(|u| u["username"].as_str().expect("username").to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[track_caller]
fn assert_page(r: &crate::harness::Resp) {
    r.assert_status(200).assert_json();
    assert_keys(
        &r.body,
        &["count", "next", "previous", "results"],
        &r.describe(),
    );
    assert!(
        r.body["count"].is_u64(),
        "count is an integer\n{}",
        r.describe()
    );
    for user in r.body["results"].as_array().expect("results") {
        assert_user_shape_with(user, STAFF_EXTRA);
    }
}

backend_tests!(
    user_representation_has_exactly_the_contract_keys,
    me_returns_own_user,
    me_patch_first_name_only,
    me_patch_nested_profile_is_partial,
    me_rejects_invalid_timezone,
    me_rejects_bad_preferences,
    me_ignores_read_only_fields,
    me_email_change_checks_uniqueness,
    me_put_updates_user,
    password_change_rejects_wrong_old_password,
    password_change_rejects_weak_new_password,
    password_change_requires_fields,
    password_change_succeeds_and_kills_sessions,
    staff_endpoints_forbid_non_staff,
    staff_endpoints_require_authentication,
    staff_lists_users_with_pagination,
    staff_searches_users,
    staff_filters_by_is_active,
    staff_filters_by_is_staff_and_orders,
    staff_rejects_bad_filter_and_page,
    staff_gets_and_patches_user,
    staff_deletes_user,
    staff_unknown_user_is_not_found,
    nul_bytes_never_cause_server_errors,
);

// ---------------------------------------------------------------------------
// me/
// ---------------------------------------------------------------------------

async fn user_representation_has_exactly_the_contract_keys(app: TestApp) {
    // API.md: User is {id, username, email, first_name, last_name, is_staff,
    // date_joined, last_login, profile{phone, organization, bio, timezone,
    // preferences}}, in every answer a user gets about themselves.
    let ann = app.register("ann").await;
    assert_user_exact_keys(&ann.user);
    let r = app.login("ann", &ann.password).await;
    r.assert_status(200);
    assert_user_exact_keys(&r.body["user"]);
    let r = app.get(ME, Some(&ann.access)).await;
    r.assert_status(200);
    assert_user_exact_keys(&r.body);
    let r = app
        .patch_json(ME, &json!({"first_name": "Ann"}), Some(&ann.access))
        .await;
    r.assert_status(200);
    assert_user_exact_keys(&r.body);
}

async fn me_returns_own_user(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    for user in [&anna, &ben] {
        let r = app.get(ME, Some(&user.access)).await;
        r.assert_status(200).assert_json();
        assert_user_shape(&r.body);
        assert_eq!(r.body["id"], user.id);
        assert_eq!(r.body["username"], user.username.as_str());
        assert_eq!(r.body["email"], user.email.as_str());
        assert_eq!(r.body["is_staff"], false);
    }
    assert_ne!(anna.id, ben.id);
}

async fn me_patch_first_name_only(app: TestApp) {
    let cleo = app.register("cleo").await;
    let before = app.get(ME, Some(&cleo.access)).await.body;
    let r = app
        .patch_json(ME, &json!({"first_name": "Cleopatra"}), Some(&cleo.access))
        .await;
    r.assert_status(200).assert_json();
    assert_user_shape(&r.body);
    assert_eq!(r.body, with(&before, &json!({"first_name": "Cleopatra"})));
    let after = app.get(ME, Some(&cleo.access)).await;
    assert_eq!(after.body, r.body, "GET after PATCH");

    let r = app
        .patch_json(ME, &json!({"last_name": "Philopator"}), Some(&cleo.access))
        .await;
    r.assert_status(200);
    assert_eq!(
        r.body,
        with(
            &before,
            &json!({"first_name": "Cleopatra", "last_name": "Philopator"})
        )
    );
    // An empty PATCH changes nothing.
    let r = app.patch_json(ME, &json!({}), Some(&cleo.access)).await;
    r.assert_status(200);
    assert_eq!(
        r.body,
        with(
            &before,
            &json!({"first_name": "Cleopatra", "last_name": "Philopator"})
        )
    );
}

async fn me_patch_nested_profile_is_partial(app: TestApp) {
    let dora = app.register("dora").await;
    let prefs = json!({"theme": "dark", "nested": {"list": [1, 2, 3], "flag": true, "none": null}});
    let r = app
        .patch_json(
            ME,
            &json!({"profile": {"phone": "+33 1 23 45 67 89", "organization": "ACME", "bio": "Explorer.\nLine two.", "preferences": prefs}}),
            Some(&dora.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(
        r.body["profile"],
        json!({"phone": "+33 1 23 45 67 89", "organization": "ACME", "bio": "Explorer.\nLine two.", "timezone": "UTC", "preferences": prefs})
    );
    let before = r.body.clone();

    let r = app
        .patch_json(
            ME,
            &json!({"profile": {"timezone": "Europe/Paris"}}),
            Some(&dora.access),
        )
        .await;
    r.assert_status(200);
    let mut expected = before.clone();
    expected["profile"]["timezone"] = json!("Europe/Paris");
    assert_eq!(r.body, expected, "only the timezone changed");
    assert_eq!(app.get(ME, Some(&dora.access)).await.body, expected);

    // Top-level and nested fields together.
    let r = app
        .patch_json(
            ME,
            &json!({"first_name": "Dora", "profile": {"bio": ""}}),
            Some(&dora.access),
        )
        .await;
    r.assert_status(200);
    expected["first_name"] = json!("Dora");
    expected["profile"]["bio"] = json!("");
    assert_eq!(r.body, expected);
}

async fn me_rejects_invalid_timezone(app: TestApp) {
    let eli = app.register("eli").await;
    for tz in ["Mars/Olympus", "", "utc+25", "Europe/../etc/passwd"] {
        let r = app
            .patch_json(ME, &json!({"profile": {"timezone": tz}}), Some(&eli.access))
            .await;
        r.assert_status(400).assert_json();
        assert_keys(&r.body, &["profile"], &r.describe());
        assert_keys(&r.body["profile"], &["timezone"], &r.describe());
        crate::harness::assert_messages(&r.body["profile"]["timezone"], &r.describe());
    }
    // A failed update changes nothing, not even the valid fields beside it.
    let r = app
        .patch_json(
            ME,
            &json!({"first_name": "Changed", "profile": {"timezone": "Mars/Olympus", "bio": "changed"}}),
            Some(&eli.access),
        )
        .await;
    r.assert_status(400);
    let me = app.get(ME, Some(&eli.access)).await.body;
    assert_eq!(me["first_name"], "");
    assert_eq!(me["profile"]["timezone"], "UTC");
    assert_eq!(me["profile"]["bio"], "");
}

async fn me_rejects_bad_preferences(app: TestApp) {
    let fay = app.register("fay").await;
    let too_big = json!({"blob": "x".repeat(17 * 1024)});
    for prefs in [json!([1, 2]), json!("dark"), json!(42), too_big] {
        let r = app
            .patch_json(
                ME,
                &json!({"profile": {"preferences": prefs}}),
                Some(&fay.access),
            )
            .await;
        r.assert_status(400).assert_json();
        assert_keys(&r.body, &["profile"], &r.describe());
        assert_keys(&r.body["profile"], &["preferences"], &r.describe());
        crate::harness::assert_messages(&r.body["profile"]["preferences"], &r.describe());
    }
    assert_eq!(
        app.get(ME, Some(&fay.access)).await.body["profile"]["preferences"],
        json!({})
    );

    // Just under the limit is fine and round-trips exactly.
    let ok = json!({"blob": "y".repeat(15 * 1024), "ünïcode": "✓", "n": 1.5});
    let r = app
        .patch_json(
            ME,
            &json!({"profile": {"preferences": ok}}),
            Some(&fay.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["profile"]["preferences"], ok);
    assert_eq!(
        app.get(ME, Some(&fay.access)).await.body["profile"]["preferences"],
        ok
    );
}

async fn me_ignores_read_only_fields(app: TestApp) {
    let gus = app.register("gus").await;
    let before = app.get(ME, Some(&gus.access)).await.body;
    let r = app
        .patch_json(
            ME,
            &json!({
                "username": "mallory",
                "is_staff": true,
                "is_superuser": true,
                "is_active": false,
                "id": 12345,
                "date_joined": "2000-01-01T00:00:00Z",
                "last_login": "2000-01-01T00:00:00Z",
                "password": "Pwned-pass-123",
                "first_name": "Gus",
            }),
            Some(&gus.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["username"], "gus", "username is read-only");
    assert_eq!(
        r.body["is_staff"], false,
        "is_staff is read-only for the user"
    );
    assert_eq!(r.body["id"], gus.id);
    assert_eq!(r.body["date_joined"], before["date_joined"]);
    assert_eq!(r.body["first_name"], "Gus");

    // Still active, still not staff, password unchanged.
    app.get(ME, Some(&gus.access)).await.assert_status(200);
    app.get(USERS, Some(&gus.access)).await.assert_forbidden();
    app.login("gus", &gus.password).await.assert_status(200);
    app.login("gus", "Pwned-pass-123")
        .await
        .assert_unauthorized("authentication_failed");
    app.login("mallory", &gus.password)
        .await
        .assert_unauthorized("authentication_failed");
}

async fn me_email_change_checks_uniqueness(app: TestApp) {
    let hal = app.register("hal").await;
    app.register("ida").await;
    for email in ["ida@example.com", "IDA@example.com", "Ida@Example.Com"] {
        let r = app
            .patch_json(ME, &json!({"email": email}), Some(&hal.access))
            .await;
        r.assert_field_errors(&["email"]);
    }
    let r = app
        .patch_json(ME, &json!({"email": "not an email"}), Some(&hal.access))
        .await;
    r.assert_field_errors(&["email"]);
    assert_eq!(
        app.get(ME, Some(&hal.access)).await.body["email"],
        "hal@example.com"
    );

    let r = app
        .patch_json(
            ME,
            &json!({"email": "hal.new@example.com"}),
            Some(&hal.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["email"], "hal.new@example.com");
    app.login("hal.new@example.com", &hal.password)
        .await
        .assert_status(200);
    app.login("hal@example.com", &hal.password)
        .await
        .assert_unauthorized("authentication_failed");

    // Re-saving one's own address (any case) is not a conflict.
    let r = app
        .patch_json(
            ME,
            &json!({"email": "HAL.NEW@example.com"}),
            Some(&hal.access),
        )
        .await;
    r.assert_status(200);
    app.login("hal.new@example.com", &hal.password)
        .await
        .assert_status(200);
    // The freed address can be taken by someone else.
    app.register_with("jon", "hal@example.com").await;
}

async fn me_put_updates_user(app: TestApp) {
    let kai = app.register("kai").await;
    let body = json!({
        "first_name": "Kai",
        "last_name": "Lee",
        "email": "kai.lee@example.com",
        "profile": {
            "phone": "555-0100",
            "organization": "Example Org",
            "bio": "Hi.",
            "timezone": "America/New_York",
            "preferences": {"lang": "en"},
        },
    });
    let r = app.put_json(ME, &body, Some(&kai.access)).await;
    r.assert_status(200).assert_json();
    assert_user_shape(&r.body);
    assert_eq!(r.body["username"], "kai");
    assert_eq!(r.body["id"], kai.id);
    for key in ["first_name", "last_name", "email", "profile"] {
        assert_eq!(r.body[key], body[key], "{key}");
    }
    let me = app.get(ME, Some(&kai.access)).await;
    assert_eq!(me.body, r.body);

    // PUT validates like PATCH.
    let mut bad = body.clone();
    bad["profile"]["timezone"] = json!("Nowhere/Special");
    let r = app.put_json(ME, &bad, Some(&kai.access)).await;
    r.assert_status(400);
    assert_keys(&r.body, &["profile"], &r.describe());
}

// ---------------------------------------------------------------------------
// me/password/
// ---------------------------------------------------------------------------

async fn password_change_rejects_wrong_old_password(app: TestApp) {
    let lea = app.register("lea").await;
    let r = app
        .post_json(
            PASSWORD,
            &json!({"old_password": "Not-her-password-1", "new_password": "Brand-new-pass-42"}),
            Some(&lea.access),
        )
        .await;
    r.assert_field_errors(&["old_password"]);
    app.login("lea", &lea.password).await.assert_status(200);
    app.login("lea", "Brand-new-pass-42")
        .await
        .assert_unauthorized("authentication_failed");
    app.refresh(&lea.refresh).await.assert_status(200);
}

async fn password_change_rejects_weak_new_password(app: TestApp) {
    let leonardo = app.register("leonardo").await;
    let cases = [
        (
            "Xy7!ab",
            "This password is too short. It must contain at least 8 characters.",
        ),
        ("8409173526", "This password is entirely numeric."),
        ("qwertyuiop", "This password is too common."),
        ("leonardo1", "The password is too similar to the username."),
    ];
    for (new, message) in cases {
        let r = app
            .post_json(
                PASSWORD,
                &json!({"old_password": leonardo.password, "new_password": new}),
                Some(&leonardo.access),
            )
            .await;
        r.assert_field_errors(&["new_password"]);
        r.assert_field_message("new_password", message);
    }
    app.login("leonardo", &leonardo.password)
        .await
        .assert_status(200);
}

async fn password_change_requires_fields(app: TestApp) {
    let max = app.register("max").await;
    let r = app.post_json(PASSWORD, &json!({}), Some(&max.access)).await;
    r.assert_body(
        400,
        &json!({"old_password": [REQUIRED], "new_password": [REQUIRED]}),
    );
    let r = app
        .post_json(
            PASSWORD,
            &json!({"old_password": max.password, "new_password": "Brand-new-pass-42"}),
            None,
        )
        .await;
    r.assert_unauthorized("not_authenticated");
    app.login("max", &max.password).await.assert_status(200);
}

async fn password_change_succeeds_and_kills_sessions(app: TestApp) {
    let nia = app.register("nia").await;
    let (_, second_session) = app.login_tokens("nia", &nia.password).await;
    let other = app.register("otto").await;

    let new_password = "Brand-new-pass-42";
    let r = app
        .post_json(
            PASSWORD,
            &json!({"old_password": nia.password, "new_password": new_password}),
            Some(&nia.access),
        )
        .await;
    r.assert_status(204);
    assert!(r.text.is_empty(), "204 has no body\n{}", r.describe());

    // Every refresh token of nia died; nobody else's did.
    app.refresh(&nia.refresh)
        .await
        .assert_unauthorized("token_not_valid");
    app.refresh(&second_session)
        .await
        .assert_unauthorized("token_not_valid");
    app.refresh(&other.refresh).await.assert_status(200);

    app.login("nia", &nia.password)
        .await
        .assert_unauthorized("authentication_failed");
    let (access, refresh) = app.login_tokens("nia", new_password).await;
    app.get(ME, Some(&access)).await.assert_status(200);
    app.refresh(&refresh).await.assert_status(200);
}

// ---------------------------------------------------------------------------
// Staff views
// ---------------------------------------------------------------------------

async fn staff_endpoints_forbid_non_staff(app: TestApp) {
    let pia = app.register("pia").await;
    let rex = app.register("rex").await;
    app.get(USERS, Some(&pia.access)).await.assert_forbidden();
    app.get(&format!("{USERS}?search=rex"), Some(&pia.access))
        .await
        .assert_forbidden();
    app.get(&user_url(pia.id), Some(&pia.access))
        .await
        .assert_forbidden();
    app.get(&user_url(rex.id), Some(&pia.access))
        .await
        .assert_forbidden();
    app.patch_json(
        &user_url(pia.id),
        &json!({"is_staff": true}),
        Some(&pia.access),
    )
    .await
    .assert_forbidden();
    app.delete(&user_url(rex.id), Some(&pia.access))
        .await
        .assert_forbidden();

    // Nothing changed.
    assert_eq!(app.get(ME, Some(&pia.access)).await.body["is_staff"], false);
    app.login("rex", &rex.password).await.assert_status(200);
}

async fn staff_endpoints_require_authentication(app: TestApp) {
    let sue = app.register("sue").await;
    app.get(USERS, None)
        .await
        .assert_unauthorized("not_authenticated");
    app.get(&user_url(sue.id), None)
        .await
        .assert_unauthorized("not_authenticated");
    app.patch_json(&user_url(sue.id), &json!({"is_active": false}), None)
        .await
        .assert_unauthorized("not_authenticated");
    app.delete(&user_url(sue.id), None)
        .await
        .assert_unauthorized("not_authenticated");
    app.login("sue", &sue.password).await.assert_status(200);
}

async fn staff_lists_users_with_pagination(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let mut all = vec!["admin".to_owned()];
    for name in ["u1", "u2", "u3", "u4"] {
        app.register(name).await;
        all.push(name.to_owned());
    }
    let all: BTreeSet<String> = all.into_iter().collect();

    let r = app.get(USERS, Some(&admin.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 5);
    assert_eq!(r.body["next"], Value::Null);
    assert_eq!(r.body["previous"], Value::Null);
    assert_eq!(usernames(&r.body).into_iter().collect::<BTreeSet<_>>(), all);
    let admin_row = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|u| u["username"] == "admin")
        .expect("admin listed");
    assert_eq!(admin_row["is_staff"], true);

    // Two per page: 2 + 2 + 1, following `next`.
    let r = app
        .get(&format!("{USERS}?page_size=2"), Some(&admin.access))
        .await;
    assert_page(&r);
    assert_eq!(r.body["count"], 5);
    assert_eq!(r.body["previous"], Value::Null);
    let mut seen = usernames(&r.body);
    assert_eq!(seen.len(), 2);
    let mut next = r.body["next"].clone();
    let mut pages = 1;
    while let Some(url) = next.as_str() {
        assert!(url.starts_with("http://"), "next is an absolute URL: {url}");
        assert!(url.contains("/api/users/"), "next: {url}");
        let r = app.get(url, Some(&admin.access)).await;
        assert_page(&r);
        assert_eq!(r.body["count"], 5);
        assert!(
            r.body["previous"].is_string(),
            "page {} has previous\n{}",
            pages + 1,
            r.describe()
        );
        seen.extend(usernames(&r.body));
        next = r.body["next"].clone();
        pages += 1;
        assert!(pages <= 3, "at most three pages");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "no user twice: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);

    // Explicit page numbers.
    let r = app
        .get(&format!("{USERS}?page=3&page_size=2"), Some(&admin.access))
        .await;
    assert_page(&r);
    assert_eq!(usernames(&r.body).len(), 1);
    assert_eq!(r.body["next"], Value::Null);
    assert!(
        r.body["previous"]
            .as_str()
            .is_some_and(|p| p.contains("page_size=2"))
    );
}

async fn staff_searches_users(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    app.register_with("searchalpha", "searchalpha@example.com")
        .await;
    app.register_with("betauser", "contact@beta.example.org")
        .await;
    app.register_with("gamma", "gamma@example.com").await;

    let cases: [(&str, &[&str]); 6] = [
        ("ALPHA", &["searchalpha"]),
        ("chAlp", &["searchalpha"]),
        ("EXAMPLE.ORG", &["betauser"]),
        ("contact@", &["betauser"]),
        ("a", &["admin", "searchalpha", "betauser", "gamma"]),
        ("zzz", &[]),
    ];
    for (term, expected) in cases {
        let r = app
            .get(
                &format!("{USERS}?search={}", term.replace('@', "%40")),
                Some(&admin.access),
            )
            .await;
        assert_page(&r);
        let found: BTreeSet<String> = usernames(&r.body).into_iter().collect();
        assert_eq!(found, set(expected), "search {term:?}");
        assert_eq!(r.body["count"], expected.len(), "search {term:?}");
    }
}

async fn staff_filters_by_is_active(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    app.register("act1").await;
    app.register("act2").await;
    let gone = app.register("inact").await;
    app.staff_patch_user(&admin, gone.id, &json!({"is_active": false}))
        .await;

    let r = app
        .get(&format!("{USERS}?is_active=false"), Some(&admin.access))
        .await;
    assert_page(&r);
    assert_eq!(usernames(&r.body), vec!["inact".to_owned()]);
    assert_eq!(r.body["count"], 1);

    let r = app
        .get(&format!("{USERS}?is_active=true"), Some(&admin.access))
        .await;
    assert_page(&r);
    assert_eq!(
        usernames(&r.body).into_iter().collect::<BTreeSet<_>>(),
        set(&["admin", "act1", "act2"])
    );

    // Without the filter, inactive users are listed too.
    let r = app.get(USERS, Some(&admin.access)).await;
    assert_eq!(r.body["count"], 4);

    // Combined with search.
    let r = app
        .get(
            &format!("{USERS}?is_active=true&search=act"),
            Some(&admin.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(
        usernames(&r.body).into_iter().collect::<BTreeSet<_>>(),
        set(&["act1", "act2"])
    );
}

async fn staff_filters_by_is_staff_and_orders(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let bob = app.register("bob").await;
    let carol = app.register("Carol").await;
    app.register("alice").await;
    let helper = app.register("helper").await;
    app.staff_patch_user(&admin, helper.id, &json!({"is_staff": true}))
        .await;
    // Carol logs in before Bob; alice never does.
    app.login_tokens("Carol", &carol.password).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.login_tokens("bob", &bob.password).await;

    let list = |query: &str| {
        let query = query.to_owned();
        let app = &app;
        let token = admin.access.clone();
        async move {
            let r = app.get(&format!("{USERS}?{query}"), Some(&token)).await;
            assert_page(&r);
            usernames(&r.body)
        }
    };
    let staff: BTreeSet<String> = list("is_staff=true").await.into_iter().collect();
    assert_eq!(staff, set(&["admin", "helper"]));
    let others = list("is_staff=false&ordering=username").await;
    // By the normalised name: Carol sorts between bob and helper, in any case.
    assert_eq!(others, vec!["alice", "bob", "Carol"]);
    assert_eq!(
        list("is_staff=false&ordering=-username").await,
        vec!["Carol", "bob", "alice"]
    );
    // Default: the order of registration; `-id` reverses it.
    assert_eq!(
        list("").await,
        vec!["admin", "bob", "Carol", "alice", "helper"]
    );
    assert_eq!(
        list("ordering=-id").await,
        vec!["helper", "alice", "Carol", "bob", "admin"]
    );
    assert_eq!(
        list("ordering=-date_joined,username").await,
        vec!["helper", "alice", "Carol", "bob", "admin"]
    );
    // Never logged in comes last in both directions.
    assert_eq!(
        list("is_staff=false&ordering=-last_login").await,
        vec!["bob", "Carol", "alice"]
    );
    assert_eq!(
        list("is_staff=false&ordering=last_login").await,
        vec!["Carol", "bob", "alice"]
    );

    for bad in [
        "is_staff=perhaps",
        "ordering=password",
        "ordering=-is_staff",
    ] {
        let r = app
            .get(&format!("{USERS}?{bad}"), Some(&admin.access))
            .await;
        r.assert_status(400).assert_json();
        let field = bad.split('=').next().expect("name");
        assert!(r.body.get(field).is_some(), "{bad}: {}", r.describe());
    }
}

async fn staff_rejects_bad_filter_and_page(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    app.register("one").await;
    let r = app
        .get(&format!("{USERS}?is_active=maybe"), Some(&admin.access))
        .await;
    r.assert_status(400).assert_json();
    assert!(r.body.is_object(), "{}", r.describe());

    for page in ["999", "0", "-1", "abc"] {
        let r = app
            .get(&format!("{USERS}?page={page}"), Some(&admin.access))
            .await;
        r.assert_body(404, &json!({"detail": "Invalid page."}));
    }
    // The last page exists.
    let r = app
        .get(&format!("{USERS}?page=1"), Some(&admin.access))
        .await;
    assert_page(&r);
    assert_eq!(r.body["count"], 2);
}

async fn staff_gets_and_patches_user(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let tom = app.register("tom").await;

    let r = app.get(&user_url(tom.id), Some(&admin.access)).await;
    r.assert_status(200).assert_json();
    assert_user_shape_with(&r.body, STAFF_EXTRA);
    assert_eq!(r.body["id"], tom.id);
    assert_eq!(r.body["username"], "tom");
    assert_eq!(r.body["email"], "tom@example.com");
    assert_eq!(r.body["is_staff"], false);

    // Promote: tom can now use the staff views with the token he has.
    let body = app
        .staff_patch_user(&admin, tom.id, &json!({"is_staff": true}))
        .await;
    assert_user_shape_with(&body, STAFF_EXTRA);
    assert_eq!(body["is_staff"], true);
    assert_eq!(body["username"], "tom");
    assert_eq!(app.get(ME, Some(&tom.access)).await.body["is_staff"], true);
    let r = app.get(USERS, Some(&tom.access)).await;
    assert_page(&r);

    // Demote: forbidden again at once.
    let body = app
        .staff_patch_user(&admin, tom.id, &json!({"is_staff": false}))
        .await;
    assert_eq!(body["is_staff"], false);
    app.get(USERS, Some(&tom.access)).await.assert_forbidden();

    // Deactivate: no more logins.
    app.staff_patch_user(&admin, tom.id, &json!({"is_active": false}))
        .await;
    app.login("tom", &tom.password)
        .await
        .assert_unauthorized("authentication_failed");
    let r = app.get(&user_url(tom.id), Some(&admin.access)).await;
    r.assert_status(200);
    if let Some(active) = r.body.get("is_active") {
        assert_eq!(active, &json!(false));
    }
    app.staff_patch_user(&admin, tom.id, &json!({"is_active": true}))
        .await;
    app.login("tom", &tom.password).await.assert_status(200);

    // Bad values are 400.
    let r = app
        .patch_json(
            &user_url(tom.id),
            &json!({"is_active": "perhaps"}),
            Some(&admin.access),
        )
        .await;
    r.assert_field_errors(&["is_active"]);
}

async fn staff_deletes_user(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let uli: Registered = app.register("uli").await;
    let vera = app.register("vera").await;

    let r = app.delete(&user_url(uli.id), Some(&admin.access)).await;
    r.assert_status(204);
    assert!(r.text.is_empty(), "204 has no body\n{}", r.describe());

    app.get(&user_url(uli.id), Some(&admin.access))
        .await
        .assert_not_found();
    app.delete(&user_url(uli.id), Some(&admin.access))
        .await
        .assert_not_found();
    app.patch_json(
        &user_url(uli.id),
        &json!({"is_staff": true}),
        Some(&admin.access),
    )
    .await
    .assert_not_found();
    app.login("uli", &uli.password)
        .await
        .assert_unauthorized("authentication_failed");

    let r = app.get(USERS, Some(&admin.access)).await;
    assert_eq!(
        usernames(&r.body).into_iter().collect::<BTreeSet<_>>(),
        set(&["admin", "vera"])
    );
    app.login("vera", &vera.password).await.assert_status(200);

    // The username and email are free again.
    app.register("uli").await;
}

async fn staff_unknown_user_is_not_found(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    app.get(&user_url(999_999), Some(&admin.access))
        .await
        .assert_not_found();
    app.patch_json(
        &user_url(999_999),
        &json!({"is_active": false}),
        Some(&admin.access),
    )
    .await
    .assert_not_found();
    app.delete(&user_url(999_999), Some(&admin.access))
        .await
        .assert_not_found();
    for bad in ["abc", "1.5", "-1", "99999999999999999999999"] {
        app.get(&format!("/api/users/{bad}/"), Some(&admin.access))
            .await
            .assert_not_found();
    }
}

async fn nul_bytes_never_cause_server_errors(app: TestApp) {
    // PostgreSQL text cannot hold NUL: DRF refuses it ("Null characters are
    // not allowed."); whatever the answer, it is never a 5xx.
    let admin = app.create_superuser("admin").await;
    let wyn = app.register("wyn").await;
    let logins = [
        json!({"username": "wyn\0", "password": wyn.password}),
        json!({"username": "wyn@example.com\0", "password": wyn.password}),
        json!({"username": "wyn", "password": "a\0b"}),
    ];
    for body in &logins {
        for path in ["/api/auth/login/", "/api/auth/token/"] {
            let r = app.post_json(path, body, None).await;
            r.assert_not_5xx();
            assert!(r.code() == 400 || r.code() == 401, "{}", r.describe());
        }
    }
    for body in [
        json!({"first_name": "a\0b"}),
        json!({"email": "w\0yn@example.com"}),
        json!({"profile": {"bio": "a\0b"}}),
        json!({"profile": {"timezone": "UTC\0"}}),
    ] {
        let r = app.patch_json(ME, &body, Some(&wyn.access)).await;
        r.assert_not_5xx();
        assert_eq!(r.code(), 400, "{body}\n{}", r.describe());
    }
    // Inside a JSON object it is just an escaped character.
    let prefs = json!({"k\0": "v\0"});
    let r = app
        .patch_json(
            ME,
            &json!({"profile": {"preferences": prefs}}),
            Some(&wyn.access),
        )
        .await;
    r.assert_not_5xx();
    if r.code() == 200 {
        assert_eq!(r.body["profile"]["preferences"], prefs);
    }
    let r = app
        .post_json(
            PASSWORD,
            &json!({"old_password": "a\0b", "new_password": "Brand-new-pass-42"}),
            Some(&wyn.access),
        )
        .await;
    r.assert_not_5xx();
    assert_eq!(r.code(), 400, "{}", r.describe());
    for query in ["search=a%00b", "is_active=true%00"] {
        let r = app
            .get(&format!("{USERS}?{query}"), Some(&admin.access))
            .await;
        r.assert_not_5xx();
        assert!(r.code() == 200 || r.code() == 400, "{}", r.describe());
    }
    app.login("wyn", &wyn.password).await.assert_status(200);
}

/// Each process keeps the account check of a busy user for at most a
/// second: a user deactivated through one process is refused by another
/// within that second, and at once by the process that made the change.
#[tokio::test]
async fn deactivation_reaches_every_process_within_a_second() {
    if !crate::harness::postgres_configured() {
        println!("skipped: TEST_DATABASE_URL not set (PostgreSQL only)");
        return;
    }
    let app = TestApp::spawn(crate::harness::Backend::Postgres).await;
    let peer = app.spawn_peer().await;
    let admin = app.create_superuser("root").await;
    let sue = app.register("sue").await;
    // Both processes have just checked sue's account (and keep it).
    for server in [&app, &peer] {
        server
            .get("/api/missions/", Some(&sue.access))
            .await
            .assert_status(200);
    }
    app.staff_patch_user(&admin, sue.id, &json!({"is_active": false}))
        .await;
    let changed = std::time::Instant::now();
    app.get("/api/missions/", Some(&sue.access))
        .await
        .assert_status(401);
    loop {
        let r = peer.get("/api/missions/", Some(&sue.access)).await;
        if r.code() == 401 {
            break;
        }
        r.assert_status(200);
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(2),
            "the other process still served a deactivated user after {:?}",
            changed.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(peer);
}
