//! Hostile input to the missions, steps and activities endpoints: SQL-looking
//! strings, NUL bytes, huge strings, deep JSON, wrong JSON types, absurd ids
//! and page numbers. Each is answered with JSON — a 4xx when the input is
//! invalid — and never a 5xx; the server stays healthy afterwards.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Registered, Resp, TestApp};
use crate::missions::{
    ACTIVITIES, MISSIONS, action_url, assert_page, create_mission, enc, id_of, mission_detail,
    mission_url, new_mission, result_ids, result_titles, results, step_url, steps_url,
};

backend_tests!(
    sql_looking_strings_are_plain_data,
    like_wildcards_are_literal_in_search,
    nul_bytes_are_rejected_not_500,
    huge_strings_are_rejected_or_kept,
    deeply_nested_json_is_rejected,
    wrong_json_types_are_rejected,
    absurd_ids_in_paths_are_not_found,
    absurd_pagination_is_handled,
    wrong_bodies_and_content_types_are_rejected,
);

const SQL: &str = "'; DROP TABLE missions_mission; --";

/// A client error with a JSON object body.
#[track_caller]
fn assert_4xx_json(r: &Resp) {
    assert!(
        (400..500).contains(&r.code()),
        "expected a 4xx\n{}",
        r.describe()
    );
    r.assert_json();
    assert!(r.body.is_object(), "JSON object body\n{}", r.describe());
}

/// Stands for an integer too big for any machine type in a JSON body
/// (see `post_text`).
const HUGE: &str = "__HUGE__";

/// POSTs `body` as JSON text, with every `"__HUGE__"` string replaced by the
/// bare number 99999999999999999999.
async fn post_text(app: &TestApp, path: &str, user: &Registered, body: &Value) -> Resp {
    let text = body
        .to_string()
        .replace(&format!("\"{HUGE}\""), "99999999999999999999");
    let token = format!("Bearer {}", user.access);
    app.raw(
        Method::POST,
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", token.as_str()),
        ],
        Some(text.into_bytes()),
    )
    .await
}

/// 201 or a 400 on `field`; never anything else.
#[track_caller]
fn assert_created_or_field_error(r: &Resp, field: &str) {
    match r.code() {
        201 => {
            r.assert_json();
        }
        _ => {
            r.assert_field_errors(&[field]);
        }
    }
}

/// The server is healthy and `user` still lists exactly `count` missions.
async fn still_healthy(app: &TestApp, user: &Registered, count: u64) {
    app.get("/api/health/", None)
        .await
        .assert_body(200, &json!({"status": "ok", "database": "ok"}));
    let r = app.get(MISSIONS, Some(&user.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], count, "{}", r.describe());
    let r = app.get(ACTIVITIES, Some(&user.access)).await;
    assert_page(&r);
    // Accounts still work too.
    let other = app
        .register(&format!(
            "after{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .await;
    app.get("/api/users/me/", Some(&other.access))
        .await
        .assert_status(200);
}

async fn sql_looking_strings_are_plain_data(app: TestApp) {
    let anna = app.register("anna").await;
    let plain = new_mission(&app, &anna, "Plain").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": SQL, "type": "custom", "description": "1; DELETE FROM auth_user; -- \" OR \"\"=\""}),
    )
    .await;
    assert_eq!(m["title"], SQL);
    assert_eq!(
        m["description"],
        "1; DELETE FROM auth_user; -- \" OR \"\"=\""
    );
    let id = id_of(&m);
    assert_eq!(mission_detail(&app, &anna, id).await["title"], SQL);

    // Search is a substring match, not SQL.
    let r = app
        .get(
            &format!("{MISSIONS}?search={}", enc(SQL)),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), vec![id]);
    for term in [
        "' OR '1'='1",
        "%' OR 1=1 --",
        "\") OR 1=1 --",
        "' UNION SELECT password FROM auth_user --",
    ] {
        let r = app
            .get(
                &format!("{MISSIONS}?search={}", enc(term)),
                Some(&anna.access),
            )
            .await;
        assert_page(&r);
        assert_eq!(r.body["count"], 0, "search {term:?}\n{}", r.describe());
    }
    // In enum filters and ordering: 400s.
    for (param, key) in [
        ("status", "status"),
        ("priority", "priority"),
        ("type", "type"),
        ("ordering", "ordering"),
    ] {
        let r = app
            .get(
                &format!("{MISSIONS}?{param}={}", enc(SQL)),
                Some(&anna.access),
            )
            .await;
        r.assert_status(400).assert_json();
        assert!(r.body.get(key).is_some(), "{}", r.describe());
    }
    let r = app
        .get(
            &format!("{MISSIONS}?ordering={}", enc("title; DROP TABLE auth_user")),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400).assert_json();
    // In a step and in activities.
    let r = app
        .post_json(
            &steps_url(id),
            &json!({"title": SQL, "description": SQL}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body["title"], SQL);
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": SQL, "details": {SQL: SQL}}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body["message"], SQL);
    assert_eq!(r.body["details"], json!({SQL: SQL}));
    let r = app
        .get(
            &format!("{ACTIVITIES}?search={}", enc(SQL)),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(r.body["count"], 1);
    for (param, value) in [("type", SQL), ("mission", "1 OR 1=1"), ("since", SQL)] {
        let r = app
            .get(
                &format!("{ACTIVITIES}?{param}={}", enc(value)),
                Some(&anna.access),
            )
            .await;
        r.assert_status(400).assert_json();
    }
    // A PATCH with it is data too.
    let r = app
        .patch_json(
            &mission_url(plain),
            &json!({"title": SQL}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["title"], SQL);
    still_healthy(&app, &anna, 2).await;
}

async fn like_wildcards_are_literal_in_search(app: TestApp) {
    let anna = app.register("anna").await;
    let percent = new_mission(&app, &anna, "100% done").await;
    let underscore = new_mission(&app, &anna, "under_score").await;
    let backslash = new_mission(&app, &anna, "back\\slash").await;
    new_mission(&app, &anna, "plain title").await;
    for (term, expected) in [
        ("%", vec![percent]),
        ("_", vec![underscore]),
        ("\\", vec![backslash]),
        ("0%", vec![percent]),
        ("r_s", vec![underscore]),
        ("k\\s", vec![backslash]),
        ("%%", vec![]),
        ("\\%", vec![]),
        ("[a-z]", vec![]),
        ("*", vec![]),
    ] {
        let r = app
            .get(
                &format!("{MISSIONS}?search={}", enc(term)),
                Some(&anna.access),
            )
            .await;
        assert_page(&r);
        assert_eq!(
            result_ids(&r.body),
            expected,
            "search {term:?}: {:?}",
            result_titles(&r.body)
        );
    }
    still_healthy(&app, &anna, 4).await;
}

async fn nul_bytes_are_rejected_not_500(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ok").await;
    let nul = "a\u{0}b";

    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": nul, "type": "custom"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["title"]);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "fine", "type": "custom", "description": nul}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["description"]);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "fine", "type": "custom\u{0}"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["type"]);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "fine", "type": "custom", "plan_steps": [{"title": nul}]}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400).assert_json();
    assert!(r.body.get("plan_steps").is_some(), "{}", r.describe());
    let r = app
        .patch_json(&mission_url(id), &json!({"title": nul}), Some(&anna.access))
        .await;
    r.assert_field_errors(&["title"]);
    let r = app
        .post_json(&steps_url(id), &json!({"title": nul}), Some(&anna.access))
        .await;
    r.assert_field_errors(&["title"]);
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": nul}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["message"]);
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note\u{0}", "message": "x"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["type"]);
    // Inside details (a JSON value): stored faithfully or refused, never a 500.
    for details in [
        json!({"k": nul}),
        json!({nul: 1}),
        json!({"deep": [{"x": "\u{0}"}]}),
    ] {
        let r = app
            .post_json(
                ACTIVITIES,
                &json!({"type": "note_added", "message": "nul in details", "details": details}),
                Some(&anna.access),
            )
            .await;
        assert_created_or_field_error(&r, "details");
        if r.code() == 201 {
            assert_eq!(r.body["details"], details, "stored faithfully");
            let back = app
                .get(
                    &crate::missions::activity_url(id_of(&r.body)),
                    Some(&anna.access),
                )
                .await;
            back.assert_status(200);
            assert_eq!(back.body["details"], details, "read back faithfully");
        }
    }
    // In query strings.
    for query in [
        "search=a%00b",
        "status=pending%00",
        "ordering=title%00",
        "search=%00",
    ] {
        let r = app
            .get(&format!("{MISSIONS}?{query}"), Some(&anna.access))
            .await;
        r.assert_not_5xx().assert_json();
    }
    for query in [
        "search=a%00b",
        "type=note%00",
        "since=2020-01-01T00:00:00Z%00",
    ] {
        let r = app
            .get(&format!("{ACTIVITIES}?{query}"), Some(&anna.access))
            .await;
        r.assert_not_5xx().assert_json();
    }
    // In a path.
    let r = app
        .get(&format!("{MISSIONS}{id}%00/"), Some(&anna.access))
        .await;
    r.assert_not_found();
    assert_eq!(mission_detail(&app, &anna, id).await["title"], "Ok");
    still_healthy(&app, &anna, 1).await;
}

async fn huge_strings_are_rejected_or_kept(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ok").await;
    let big = "x".repeat(10 * 1024);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": big, "type": "custom"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["title"]);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "ok", "type": big}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["type"]);
    // A 10 KB description: kept whole, or refused on `description`.
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "long description", "type": "custom", "description": big}),
            Some(&anna.access),
        )
        .await;
    assert_created_or_field_error(&r, "description");
    let mut missions = 1;
    if r.code() == 201 {
        missions += 1;
        assert_eq!(
            r.body["description"].as_str().map(str::len),
            Some(big.len())
        );
    }
    // Multi-byte: 201 characters of 4 bytes each is still too long; 200 is fine.
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "😀".repeat(201), "type": "custom"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["title"]);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "😀".repeat(200), "type": "custom"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body["title"], "😀".repeat(200));
    missions += 1;
    // A 2 MB string: a 400 or 413, as JSON.
    let huge = "y".repeat(2 * 1024 * 1024);
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "huge", "type": "custom", "description": huge}),
            Some(&anna.access),
        )
        .await;
    assert_4xx_json(&r);
    let r = app
        .post_json(&steps_url(id), &json!({"title": big}), Some(&anna.access))
        .await;
    r.assert_field_errors(&["title"]);
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": big}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["message"]);
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": big, "message": "x"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["type"]);
    // In query strings.
    let r = app
        .get(&format!("{MISSIONS}?search={big}"), Some(&anna.access))
        .await;
    assert_page(&r);
    assert_eq!(r.body["count"], 0);
    for param in ["status", "ordering", "priority"] {
        let r = app
            .get(&format!("{MISSIONS}?{param}={big}"), Some(&anna.access))
            .await;
        r.assert_status(400).assert_json();
    }
    let r = app
        .get(&format!("{ACTIVITIES}?search={big}"), Some(&anna.access))
        .await;
    assert_page(&r);
    let r = app
        .get(
            &format!("{MISSIONS}?page={}", "9".repeat(5000)),
            Some(&anna.access),
        )
        .await;
    r.assert_body(404, &json!({"detail": "Invalid page."}));
    still_healthy(&app, &anna, missions).await;
}

async fn deeply_nested_json_is_rejected(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ok").await;
    let json_headers = [("content-type", "application/json")];
    let token = format!("Bearer {}", anna.access);
    let headers = [json_headers[0], ("authorization", token.as_str())];
    let brackets = "[".repeat(10_000);
    let objects = "{\"a\":".repeat(10_000);
    let closed = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (path, body) in [
        (MISSIONS.to_owned(), brackets.clone()),
        (MISSIONS.to_owned(), objects.clone()),
        (MISSIONS.to_owned(), closed.clone()),
        (steps_url(id), brackets.clone()),
        (ACTIVITIES.to_owned(), objects.clone()),
        (
            ACTIVITIES.to_owned(),
            format!("{{\"type\":\"note_added\",\"message\":\"x\",\"details\":{closed}}}"),
        ),
    ] {
        let r = app
            .raw(Method::POST, &path, &headers, Some(body.into_bytes()))
            .await;
        r.assert_status(400).assert_json();
        assert!(r.body.is_object(), "{}", r.describe());
    }
    let r = app
        .raw(
            Method::PATCH,
            &mission_url(id),
            &headers,
            Some(brackets.clone().into_bytes()),
        )
        .await;
    r.assert_status(400).assert_json();
    // Plan steps nested far beyond 5 levels (but parseable).
    let mut nested = json!({"title": "leaf"});
    for level in 0..40 {
        nested = json!({"title": format!("level {level}"), "children": [nested]});
    }
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "deep", "type": "custom", "plan_steps": [nested]}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400).assert_json();
    assert!(r.body.get("plan_steps").is_some(), "{}", r.describe());
    // Details nested 60 deep: kept or refused, never a 500.
    let mut details = json!({"end": true});
    for _ in 0..60 {
        details = json!({"d": details});
    }
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": "deep", "details": details}),
            Some(&anna.access),
        )
        .await;
    assert_created_or_field_error(&r, "details");
    if r.code() == 201 {
        assert_eq!(r.body["details"], details);
    }
    still_healthy(&app, &anna, 1).await;
}

async fn wrong_json_types_are_rejected(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ok").await;
    let step = id_of(
        &app.post_json(&steps_url(id), &json!({"title": "s"}), Some(&anna.access))
            .await
            .body,
    );
    // Whole bodies that are not objects.
    for body in [
        json!([]),
        json!([{"title": "x", "type": "custom"}]),
        json!(null),
        json!("title"),
        json!(42),
        json!(true),
    ] {
        for path in [MISSIONS.to_owned(), steps_url(id), ACTIVITIES.to_owned()] {
            let r = app.post_json(&path, &body, Some(&anna.access)).await;
            r.assert_status(400).assert_json();
            assert!(r.body.is_object(), "{}", r.describe());
        }
        let r = app
            .patch_json(&mission_url(id), &body, Some(&anna.access))
            .await;
        r.assert_status(400).assert_json();
        let r = app
            .patch_json(&step_url(id, step), &body, Some(&anna.access))
            .await;
        r.assert_status(400).assert_json();
    }
    // Fields of the wrong type.
    let mission_cases: Vec<(Value, &str)> = vec![
        (json!({"title": true, "type": "custom"}), "title"),
        (json!({"title": {}, "type": "custom"}), "title"),
        (json!({"title": ["a"], "type": "custom"}), "title"),
        (json!({"title": "ok", "type": 5}), "type"),
        (json!({"title": "ok", "type": ["custom"]}), "type"),
        (
            json!({"title": "ok", "type": "custom", "priority": 3}),
            "priority",
        ),
        (
            json!({"title": "ok", "type": "custom", "priority": {"x": 1}}),
            "priority",
        ),
        (
            json!({"title": "ok", "type": "custom", "deadline": 12345}),
            "deadline",
        ),
        (
            json!({"title": "ok", "type": "custom", "deadline": {}}),
            "deadline",
        ),
        (
            json!({"title": "ok", "type": "custom", "deadline": true}),
            "deadline",
        ),
        (
            json!({"title": "ok", "type": "custom", "description": ["x"]}),
            "description",
        ),
        (
            json!({"title": "ok", "type": "custom", "plan_steps": {}}),
            "plan_steps",
        ),
        (
            json!({"title": "ok", "type": "custom", "plan_steps": [[]]}),
            "plan_steps",
        ),
        (
            json!({"title": "ok", "type": "custom", "plan_steps": [1, 2]}),
            "plan_steps",
        ),
        (
            json!({"title": "ok", "type": "custom", "plan_steps": [{"title": "x", "children": {}}]}),
            "plan_steps",
        ),
        (
            json!({"title": "ok", "type": "custom", "plan_steps": [{"title": "x", "children": "no"}]}),
            "plan_steps",
        ),
    ];
    for (body, field) in mission_cases {
        let r = app.post_json(MISSIONS, &body, Some(&anna.access)).await;
        r.assert_field_errors(&[field]);
    }
    // A number where a string belongs: coerced (as DRF does) or refused.
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": 123, "type": "custom"}),
            Some(&anna.access),
        )
        .await;
    assert_created_or_field_error(&r, "title");
    let mut missions = 1;
    if r.code() == 201 {
        assert_eq!(r.body["title"], "123");
        missions += 1;
    }
    let step_cases: Vec<(Value, &str)> = vec![
        (json!({"title": "s", "parent": true}), "parent"),
        (json!({"title": "s", "parent": [step]}), "parent"),
        (json!({"title": "s", "parent": {"id": step}}), "parent"),
        (json!({"title": "s", "parent": 1.5}), "parent"),
        (json!({"title": "s", "parent": HUGE}), "parent"),
        (json!({"title": "s", "parent": -1}), "parent"),
        (json!({"title": "s", "order": 1.5}), "order"),
        (json!({"title": "s", "order": "1; DROP"}), "order"),
        (json!({"title": "s", "order": 1e300}), "order"),
        (json!({"title": "s", "order": HUGE}), "order"),
        (json!({"title": "s", "order": [1]}), "order"),
        (json!({"title": "s", "action": []}), "action"),
        (
            json!({"title": "s", "action": {"kind": ["wait"]}}),
            "action",
        ),
        (
            json!({"title": "s", "action": {"kind": "wait", "seconds": 1e300}}),
            "action",
        ),
        (
            json!({"title": "s", "action": {"kind": "wait", "seconds": HUGE}}),
            "action",
        ),
        (
            json!({"title": "s", "action": {"kind": "fetch_url", "url": 5}}),
            "action",
        ),
    ];
    for (body, field) in step_cases {
        let r = post_text(&app, &steps_url(id), &anna, &body).await;
        r.assert_field_errors(&[field]);
    }
    for (body, field) in [
        (json!({"status": 1}), "status"),
        (json!({"status": ["completed"]}), "status"),
        (json!({"parent": "x"}), "parent"),
        (json!({"order": {}}), "order"),
    ] {
        let r = app
            .patch_json(&step_url(id, step), &body, Some(&anna.access))
            .await;
        r.assert_field_errors(&[field]);
    }
    let activity_cases: Vec<(Value, &str)> = vec![
        (json!({"type": 42, "message": "x"}), "type"),
        (json!({"type": ["note_added"], "message": "x"}), "type"),
        (json!({"type": "note_added", "message": {}}), "message"),
        (json!({"type": "note_added", "message": ["x"]}), "message"),
        (
            json!({"type": "note_added", "message": "x", "details": []}),
            "details",
        ),
        (
            json!({"type": "note_added", "message": "x", "details": "{}"}),
            "details",
        ),
        (
            json!({"type": "note_added", "message": "x", "mission": []}),
            "mission",
        ),
        (
            json!({"type": "note_added", "message": "x", "mission": {"id": id}}),
            "mission",
        ),
        (
            json!({"type": "note_added", "message": "x", "mission": HUGE}),
            "mission",
        ),
        (
            json!({"type": "note_added", "message": "x", "mission": true}),
            "mission",
        ),
        (
            json!({"type": "note_added", "message": "x", "document": "abc"}),
            "document",
        ),
    ];
    for (body, field) in activity_cases {
        let r = post_text(&app, ACTIVITIES, &anna, &body).await;
        r.assert_field_errors(&[field]);
    }
    let r = app.get(&steps_url(id), Some(&anna.access)).await;
    assert_eq!(
        crate::missions::step_roots(&r).len(),
        1,
        "no step was added"
    );
    still_healthy(&app, &anna, missions).await;
}

async fn absurd_ids_in_paths_are_not_found(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ok").await;
    let tok = Some(anna.access.as_str());
    let absurd = [
        "99999999999999999999",
        "9223372036854775807",
        "9223372036854775808",
        "-1",
        "0",
        "abc",
        "1.5",
        "1e3",
        "0x10",
        "%20",
        "1%20OR%201=1",
        "'%3B--",
    ];
    for bad in absurd {
        for path in [
            format!("{MISSIONS}{bad}/"),
            format!("{MISSIONS}{bad}/steps/"),
            format!("{MISSIONS}{id}/steps/{bad}/"),
            format!("{ACTIVITIES}{bad}/"),
        ] {
            app.get(&path, tok).await.assert_not_found();
        }
        app.patch_json(&format!("{MISSIONS}{bad}/"), &json!({"title": "x"}), tok)
            .await
            .assert_not_found();
        app.delete(&format!("{MISSIONS}{bad}/"), tok)
            .await
            .assert_not_found();
        app.post_json(&format!("{MISSIONS}{bad}/start/"), &json!({}), tok)
            .await
            .assert_not_found();
        app.post_json(
            &format!("{MISSIONS}{bad}/steps/"),
            &json!({"title": "x"}),
            tok,
        )
        .await
        .assert_not_found();
        app.patch_json(
            &format!("{MISSIONS}{id}/steps/{bad}/"),
            &json!({"title": "x"}),
            tok,
        )
        .await
        .assert_not_found();
        app.delete(&format!("{MISSIONS}{id}/steps/{bad}/"), tok)
            .await
            .assert_not_found();
    }
    app.request(Method::POST, &action_url(id, "start%00"), tok, None)
        .await
        .assert_not_5xx()
        .assert_json();
    assert_eq!(mission_detail(&app, &anna, id).await["status"], "pending");
    still_healthy(&app, &anna, 1).await;
}

async fn absurd_pagination_is_handled(app: TestApp) {
    let anna = app.register("anna").await;
    for i in 0..3 {
        new_mission(&app, &anna, &format!("m{i}")).await;
    }
    for list in [MISSIONS, ACTIVITIES] {
        for page in [
            "abc",
            "-1",
            "0",
            "99999999999999999999",
            "1.5",
            "1e3",
            "4294967296",
        ] {
            app.get(&format!("{list}?page={page}"), Some(&anna.access))
                .await
                .assert_body(404, &json!({"detail": "Invalid page."}));
        }
        // A NUL byte: an invalid page, or refused outright as a bad parameter.
        let r = app
            .get(&format!("{list}?page=%00"), Some(&anna.access))
            .await;
        if r.code() == 404 {
            r.assert_body(404, &json!({"detail": "Invalid page."}));
        } else {
            r.assert_field_errors(&["page"]);
        }
        for size in ["-1", "abc", "0", "1.5", "99999999999999999999", "%27%3B--"] {
            let r = app
                .get(&format!("{list}?page_size={size}"), Some(&anna.access))
                .await;
            r.assert_not_5xx().assert_json();
            match r.code() {
                200 => {
                    assert_page(&r);
                    let n = results(&r.body).len();
                    assert!((1..=100).contains(&n), "page_size={size}: {n} results");
                }
                _ => {
                    r.assert_field_errors(&["page_size"]);
                }
            }
        }
        let r = app
            .get(
                &format!("{list}?page_size=99999999999999999999"),
                Some(&anna.access),
            )
            .await;
        if r.code() == 200 {
            assert!(results(&r.body).len() <= 100);
        }
        // Duplicated and empty parameters.
        let r = app
            .get(
                &format!("{list}?page=1&page=1&page_size=&page_size=2"),
                Some(&anna.access),
            )
            .await;
        assert_page(&r);
    }
    let r = app
        .get(
            &format!("{MISSIONS}?page_size=2&page=2"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(results(&r.body).len(), 1);
    still_healthy(&app, &anna, 3).await;
}

async fn wrong_bodies_and_content_types_are_rejected(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ok").await;
    let token = format!("Bearer {}", anna.access);
    let auth = ("authorization", token.as_str());
    let body = br#"{"title": "sneaky", "type": "custom"}"#.to_vec();
    for (content_type, bytes, expected) in [
        ("text/plain", body.clone(), &[415][..]),
        ("application/xml", b"<mission/>".to_vec(), &[415][..]),
        ("application/json", b"".to_vec(), &[400][..]),
        ("application/json", b"{\"title\": ".to_vec(), &[400][..]),
        (
            "application/json",
            b"{\"title\": \"a\", }".to_vec(),
            &[400][..],
        ),
        ("application/json", b"\xff\xfe{}".to_vec(), &[400][..]),
        (
            "application/json",
            b"{\"title\": \"\xff\", \"type\": \"custom\"}".to_vec(),
            &[400][..],
        ),
        (
            "application/json",
            b"{\"title\": \"\\ud800\", \"type\": \"custom\"}".to_vec(),
            &[400][..],
        ),
        (
            "application/json",
            b"{\"title\": \"x\", \"type\": \"custom\"} trailing".to_vec(),
            &[400][..],
        ),
        (
            "application/json; charset=utf-8",
            b"NaN".to_vec(),
            &[400][..],
        ),
    ] {
        let r = app
            .raw(
                Method::POST,
                MISSIONS,
                &[("content-type", content_type), auth],
                Some(bytes),
            )
            .await;
        assert!(
            expected.contains(&r.code()),
            "{content_type}: expected {expected:?}\n{}",
            r.describe()
        );
        assert_4xx_json(&r);
    }
    // Duplicate keys: the last wins or a 400; never a 500.
    let r = app
        .raw(
            Method::POST,
            MISSIONS,
            &[("content-type", "application/json"), auth],
            Some(br#"{"title": "first", "title": "second", "type": "custom"}"#.to_vec()),
        )
        .await;
    r.assert_not_5xx().assert_json();
    let mut missions = 1;
    if r.code() == 201 {
        missions += 1;
    }
    // A body on the actions is ignored, whatever it is.
    let r = app
        .raw(
            Method::POST,
            &action_url(id, "start"),
            &[("content-type", "application/json"), auth],
            Some(br#"{"status": "completed"}"#.to_vec()),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["status"], "in_progress");
    let r = app
        .raw(
            Method::POST,
            &action_url(id, "pause"),
            &[("content-type", "application/json"), auth],
            Some(b"[[[[".to_vec()),
        )
        .await;
    assert!(
        r.code() == 200 || r.code() == 400,
        "malformed action body: 200 (ignored) or 400\n{}",
        r.describe()
    );
    r.assert_json();
    still_healthy(&app, &anna, missions).await;
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert!(result_titles(&r.body).iter().all(|t| t != "sneaky"));
}
