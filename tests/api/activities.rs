//! `/api/activities/`: the append-only audit log — own entries only, newest
//! first, filters, client-posted entries and their validation.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Registered, TestApp, assert_keys};
use crate::missions::{
    ACTIVITIES, activities, activity_url, assert_activity_shape, assert_page, enc, id_of,
    new_mission, result_ids, results, ts_key,
};

backend_tests!(
    activities_require_authentication,
    list_shows_own_activities_newest_first,
    post_creates_custom_activity,
    post_validates_type,
    post_validates_message_and_details,
    post_mission_must_be_own,
    filter_by_type_and_mission,
    filter_by_since_and_until,
    bad_filter_values_are_rejected,
    search_matches_message,
    other_users_activity_is_not_found,
    activities_are_append_only,
    staff_sees_all_activities,
);

/// POSTs an activity; asserts 201 and the shape; returns the body.
async fn post_activity(app: &TestApp, user: &Registered, body: &Value) -> Value {
    let r = app.post_json(ACTIVITIES, body, Some(&user.access)).await;
    r.assert_status(201).assert_json();
    assert_activity_shape(&r.body);
    r.body.clone()
}

/// A short pause so that consecutive activities get distinct timestamps
/// (ordering, not timing, is asserted).
async fn tick() {
    tokio::time::sleep(Duration::from_millis(15)).await;
}

async fn activities_require_authentication(app: TestApp) {
    let anna = app.register("anna").await;
    let a = post_activity(&app, &anna, &json!({"type": "note_added", "message": "hi"})).await;
    for r in [
        app.get(ACTIVITIES, None).await,
        app.get(&activity_url(id_of(&a)), None).await,
        app.post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": "x"}),
            None,
        )
        .await,
    ] {
        r.assert_unauthorized("not_authenticated");
    }
    assert_eq!(activities(&app, &anna, "type=note_added").await.len(), 1);
}

async fn list_shows_own_activities_newest_first(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        tick().await;
        mine.push(id_of(
            &post_activity(
                &app,
                &anna,
                &json!({"type": "note_added", "message": format!("anna {i}")}),
            )
            .await,
        ));
        tick().await;
        post_activity(
            &app,
            &ben,
            &json!({"type": "note_added", "message": format!("ben {i}")}),
        )
        .await;
    }
    new_mission(&app, &ben, "Ben's mission").await;

    let r = app.get(ACTIVITIES, Some(&anna.access)).await;
    assert_page(&r);
    let list = results(&r.body);
    assert!(!list.is_empty());
    for a in &list {
        assert_activity_shape(a);
        assert_eq!(a["user"], anna.id, "only own activities: {a}");
        assert!(
            !a["message"].as_str().unwrap_or("").starts_with("ben"),
            "{a}"
        );
    }
    assert_eq!(r.body["count"].as_u64(), Some(list.len() as u64));
    // Newest first.
    let stamps: Vec<(String, u32)> = list
        .iter()
        .map(|a| ts_key(a["timestamp"].as_str().expect("timestamp")))
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] >= w[1]),
        "timestamps descending: {stamps:?}"
    );
    let notes: Vec<i64> = list
        .iter()
        .filter(|a| a["type"] == "note_added")
        .map(id_of)
        .collect();
    let mut expected = mine.clone();
    expected.reverse();
    assert_eq!(notes, expected, "own notes, newest first");
    // Registration was recorded for Anna herself.
    assert!(
        list.iter().any(|a| a["type"] == "user_registered"),
        "user_registered in {list:?}"
    );
    // Ben sees his own, never Anna's.
    let bens = activities(&app, &ben, "").await;
    assert!(bens.iter().all(|a| a["user"] == ben.id));
    assert!(bens.iter().all(|a| !mine.contains(&id_of(a))));
    assert!(bens.iter().any(|a| a["type"] == "mission_created"));
}

async fn post_creates_custom_activity(app: TestApp) {
    let anna = app.register("anna").await;
    let mission = new_mission(&app, &anna, "Taxes").await;
    let a = post_activity(
        &app,
        &anna,
        &json!({"type": "note_added", "message": "  Called the bank  "}),
    )
    .await;
    assert_eq!(a["type"], "note_added");
    assert_eq!(a["message"], "Called the bank");
    assert_eq!(a["details"], json!({}));
    assert_eq!(a["user"], anna.id);
    assert_eq!(a["mission"], Value::Null);
    assert_eq!(a["document"], Value::Null);

    let details =
        json!({"phone": "+1 555", "nested": {"list": [1, 2.5, "x", null, true]}, "empty": {}});
    let b = post_activity(
        &app,
        &anna,
        &json!({
            "type": "call_made_2",
            "message": "m".repeat(1000),
            "details": details,
            "mission": mission,
            "user": anna.id + 100,
            "timestamp": "2000-01-01T00:00:00Z",
            "id": 123_456,
        }),
    )
    .await;
    assert_eq!(b["details"], details);
    assert_eq!(b["mission"], mission);
    assert_eq!(b["user"], anna.id, "user is the caller");
    assert_ne!(b["id"], 123_456);
    assert!(
        b["timestamp"]
            .as_str()
            .is_some_and(|t| !t.starts_with("2000")),
        "{b}"
    );
    // The longest type is fine.
    post_activity(
        &app,
        &anna,
        &json!({"type": "a".repeat(50), "message": "long type"}),
    )
    .await;

    // GET of one.
    let r = app.get(&activity_url(id_of(&b)), Some(&anna.access)).await;
    r.assert_status(200).assert_json();
    assert_eq!(r.body, b);
    let r = app
        .get(&format!("{ACTIVITIES}{}", id_of(&a)), Some(&anna.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body, a);
    app.get(&activity_url(id_of(&b) + 1000), Some(&anna.access))
        .await
        .assert_not_found();
}

async fn post_validates_type(app: TestApp) {
    let anna = app.register("anna").await;
    for kind in [
        json!("mission_created"),
        json!("user_registered"),
        json!("step_deleted"),
        json!("document_verified"),
        json!("Bad-Type"),
        json!("NoteAdded"),
        json!("1note"),
        json!("_note"),
        json!("note added"),
        json!("note-added"),
        json!("a".repeat(51)),
        json!(""),
        json!(42),
        json!(null),
    ] {
        let r = app
            .post_json(
                ACTIVITIES,
                &json!({"type": kind, "message": "hello"}),
                Some(&anna.access),
            )
            .await;
        r.assert_field_errors(&["type"]);
    }
    let r = app
        .post_json(ACTIVITIES, &json!({"message": "hello"}), Some(&anna.access))
        .await;
    r.assert_field_errors(&["type"]);
    r.assert_field_message("type", "This field is required.");
    assert_eq!(
        activities(&app, &anna, "").await.len(),
        activities(&app, &anna, "type=user_registered").await.len(),
        "nothing but the registration was recorded"
    );
}

async fn post_validates_message_and_details(app: TestApp) {
    let anna = app.register("anna").await;
    let base = |changes: Value| {
        let mut body = json!({"type": "note_added", "message": "ok"});
        for (k, v) in changes.as_object().expect("object") {
            if v.is_null() && k == "message" {
                body.as_object_mut().expect("object").remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (base(json!({"message": ""})), "message"),
        (base(json!({"message": "    "})), "message"),
        (base(json!({"message": "m".repeat(1001)})), "message"),
        (base(json!({"message": null})), "message"),
        (base(json!({"details": []})), "details"),
        (base(json!({"details": [{"a": 1}]})), "details"),
        (base(json!({"details": "text"})), "details"),
        (base(json!({"details": 5})), "details"),
        (
            base(json!({"details": {"blob": "x".repeat(17 * 1024)}})),
            "details",
        ),
        (
            base(
                json!({"details": {"many": (0..3000).map(|i| format!("v{i}")).collect::<Vec<_>>()}}),
            ),
            "details",
        ),
    ];
    for (body, field) in cases {
        let r = app.post_json(ACTIVITIES, &body, Some(&anna.access)).await;
        r.assert_field_errors(&[field]);
    }
    assert!(
        activities(&app, &anna, "type=note_added").await.is_empty(),
        "nothing recorded"
    );
    // Just under the limit is fine.
    let a = post_activity(
        &app,
        &anna,
        &json!({"type": "note_added", "message": "big", "details": {"blob": "x".repeat(15 * 1024)}}),
    )
    .await;
    assert_eq!(a["details"]["blob"].as_str().map(str::len), Some(15 * 1024));
    // details null: treated as absent or refused, never a 500.
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": "null details", "details": null}),
            Some(&anna.access),
        )
        .await;
    r.assert_not_5xx().assert_json();
    if r.code() == 201 {
        assert_eq!(r.body["details"], json!({}));
    } else {
        r.assert_field_errors(&["details"]);
    }
}

async fn post_mission_must_be_own(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let bens = new_mission(&app, &ben, "Ben's").await;
    for mission in [json!(bens), json!(bens + 1000), json!("abc")] {
        let r = app
            .post_json(
                ACTIVITIES,
                &json!({"type": "note_added", "message": "sneaky", "mission": mission}),
                Some(&anna.access),
            )
            .await;
        r.assert_field_errors(&["mission"]);
    }
    // A document that does not exist (or is not hers) is refused the same way.
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note_added", "message": "doc", "document": 999_999}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["document"]);
    // Nothing was attached to Ben's mission.
    let list = activities(&app, &ben, &format!("mission={bens}")).await;
    assert!(
        list.iter().all(|a| a["type"] == "mission_created"),
        "{list:?}"
    );
    assert!(activities(&app, &anna, "type=note_added").await.is_empty());
}

async fn filter_by_type_and_mission(app: TestApp) {
    let anna = app.register("anna").await;
    let m1 = new_mission(&app, &anna, "One").await;
    let m2 = new_mission(&app, &anna, "Two").await;
    tick().await;
    let n1 = id_of(
        &post_activity(
            &app,
            &anna,
            &json!({"type": "note_added", "message": "a", "mission": m1}),
        )
        .await,
    );
    tick().await;
    let n2 =
        id_of(&post_activity(&app, &anna, &json!({"type": "note_added", "message": "b"})).await);
    tick().await;
    let c1 = id_of(
        &post_activity(
            &app,
            &anna,
            &json!({"type": "call_made", "message": "c", "mission": m2}),
        )
        .await,
    );
    tick().await;
    post_activity(
        &app,
        &anna,
        &json!({"type": "other_thing", "message": "d", "mission": m1}),
    )
    .await;

    let ids = |list: &[Value]| {
        let mut v: Vec<i64> = list.iter().map(id_of).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<i64>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(&activities(&app, &anna, "type=note_added").await),
        sorted(vec![n1, n2])
    );
    assert_eq!(
        ids(&activities(&app, &anna, "type=note_added,call_made").await),
        sorted(vec![n1, n2, c1])
    );
    assert_eq!(
        ids(&activities(&app, &anna, "type=note_added&type=call_made").await).len(),
        3,
        "repeated parameter works like a comma list"
    );
    let created = activities(&app, &anna, "type=mission_created").await;
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|a| a["type"] == "mission_created"));

    let by_m1 = activities(&app, &anna, &format!("mission={m1}")).await;
    let kinds: Vec<&str> = by_m1
        .iter()
        .map(|a| a["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(by_m1.len(), 3, "{kinds:?}");
    assert!(by_m1.iter().all(|a| a["mission"] == m1));
    assert_eq!(
        kinds,
        ["other_thing", "note_added", "mission_created"],
        "newest first"
    );
    let r = app
        .get(
            &format!("{ACTIVITIES}?mission={m2}&type=call_made"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), vec![c1]);
    assert_eq!(activities(&app, &anna, "type=never_used").await.len(), 0);
    // A mission that does not exist: empty, or a 400 on `mission`.
    let r = app
        .get(
            &format!("{ACTIVITIES}?mission={}", m2 + 1000),
            Some(&anna.access),
        )
        .await;
    r.assert_not_5xx().assert_json();
    if r.code() == 200 {
        assert_eq!(r.body["count"], 0);
    } else {
        r.assert_field_errors(&["mission"]);
    }
}

async fn filter_by_since_and_until(app: TestApp) {
    let anna = app.register("anna").await;
    tick().await;
    let a = post_activity(&app, &anna, &json!({"type": "note_added", "message": "a"})).await;
    tick().await;
    let b = post_activity(&app, &anna, &json!({"type": "note_added", "message": "b"})).await;
    tick().await;
    let c = post_activity(&app, &anna, &json!({"type": "note_added", "message": "c"})).await;
    let ts = |v: &Value| v["timestamp"].as_str().expect("timestamp").to_owned();
    assert!(ts_key(&ts(&a)) < ts_key(&ts(&b)) && ts_key(&ts(&b)) < ts_key(&ts(&c)));

    let notes = |list: Vec<Value>| -> Vec<i64> {
        list.iter()
            .filter(|x| x["type"] == "note_added")
            .map(id_of)
            .collect()
    };
    let since_b = notes(activities(&app, &anna, &format!("since={}", enc(&ts(&b)))).await);
    assert!(since_b.contains(&id_of(&c)), "since b has c: {since_b:?}");
    assert!(
        !since_b.contains(&id_of(&a)),
        "since b lacks a: {since_b:?}"
    );
    let until_b = notes(activities(&app, &anna, &format!("until={}", enc(&ts(&b)))).await);
    assert!(until_b.contains(&id_of(&a)), "until b has a: {until_b:?}");
    assert!(
        !until_b.contains(&id_of(&c)),
        "until b lacks c: {until_b:?}"
    );
    let between = notes(
        activities(
            &app,
            &anna,
            &format!("since={}&until={}", enc(&ts(&a)), enc(&ts(&c))),
        )
        .await,
    );
    assert!(between.contains(&id_of(&b)), "{between:?}");

    assert!(
        activities(&app, &anna, "since=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert!(
        activities(&app, &anna, "until=2000-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    // Other offsets are understood: +14:00 at 2999 is still in the future.
    assert!(
        activities(
            &app,
            &anna,
            &format!("since={}", enc("2999-01-01T00:00:00+14:00"))
        )
        .await
        .is_empty()
    );
    let all = activities(&app, &anna, "since=2000-01-01T00:00:00Z").await;
    assert_eq!(notes(all).len(), 3);
}

async fn bad_filter_values_are_rejected(app: TestApp) {
    let anna = app.register("anna").await;
    for (query, key) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=12345abc", "since"),
        ("type=Bad-Type", "type"),
        ("mission=abc", "mission"),
    ] {
        let r = app
            .get(&format!("{ACTIVITIES}?{query}"), Some(&anna.access))
            .await;
        r.assert_status(400).assert_json();
        assert!(
            r.body.get(key).is_some(),
            "?{query}: error keyed {key:?}\n{}",
            r.describe()
        );
        crate::harness::assert_messages(&r.body[key], &r.describe());
    }
    app.get(&format!("{ACTIVITIES}?page=999"), Some(&anna.access))
        .await
        .assert_body(404, &json!({"detail": "Invalid page."}));
}

async fn search_matches_message(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let bank = id_of(
        &post_activity(
            &app,
            &anna,
            &json!({"type": "note_added", "message": "Called the BANK today"}),
        )
        .await,
    );
    let email = id_of(
        &post_activity(
            &app,
            &anna,
            &json!({"type": "note_added", "message": "sent an email to the bank"}),
        )
        .await,
    );
    post_activity(&app, &anna, &json!({"type": "note_added", "message": "nothing here", "details": {"bank": "in details only"}})).await;
    post_activity(
        &app,
        &ben,
        &json!({"type": "note_added", "message": "Ben's bank"}),
    )
    .await;

    let mut found: Vec<i64> = activities(&app, &anna, "search=bank")
        .await
        .iter()
        .map(id_of)
        .collect();
    found.sort();
    assert_eq!(found, vec![bank, email]);
    let found: Vec<i64> = activities(&app, &anna, &format!("search={}", enc("CALLED the")))
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(found, vec![bank]);
    assert!(activities(&app, &anna, "search=zzzz").await.is_empty());
    let found: Vec<i64> = activities(&app, &anna, "search=bank&type=note_added")
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(found.len(), 2);
}

async fn other_users_activity_is_not_found(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let a = post_activity(
        &app,
        &anna,
        &json!({"type": "note_added", "message": "private"}),
    )
    .await;
    let mission = new_mission(&app, &anna, "M").await;
    let created = activities(
        &app,
        &anna,
        &format!("type=mission_created&mission={mission}"),
    )
    .await;
    assert_eq!(created.len(), 1);
    for id in [id_of(&a), id_of(&created[0])] {
        app.get(&activity_url(id), Some(&ben.access))
            .await
            .assert_not_found();
        let r = app.get(&activity_url(id), Some(&anna.access)).await;
        r.assert_status(200);
        assert_eq!(r.body["id"], id);
    }
}

async fn activities_are_append_only(app: TestApp) {
    let anna = app.register("anna").await;
    let a = post_activity(
        &app,
        &anna,
        &json!({"type": "note_added", "message": "keep me"}),
    )
    .await;
    let url = activity_url(id_of(&a));
    for (method, body) in [
        (
            Method::PUT,
            Some(json!({"type": "note_added", "message": "changed"})),
        ),
        (Method::PATCH, Some(json!({"message": "changed"}))),
        (Method::DELETE, None),
    ] {
        let r = app
            .request(method.clone(), &url, Some(&anna.access), body.as_ref())
            .await;
        r.assert_body(
            405,
            &json!({"detail": format!("Method \"{}\" not allowed.", method.as_str())}),
        );
    }
    // Nor on the collection.
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let r = app
            .request(
                method.clone(),
                ACTIVITIES,
                Some(&anna.access),
                Some(&json!({})),
            )
            .await;
        r.assert_body(
            405,
            &json!({"detail": format!("Method \"{}\" not allowed.", method.as_str())}),
        );
    }
    let r = app.get(&url, Some(&anna.access)).await;
    r.assert_status(200);
    assert_eq!(r.body, a, "unchanged");
}

async fn staff_sees_all_activities(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let na =
        id_of(&post_activity(&app, &anna, &json!({"type": "note_added", "message": "a"})).await);
    let nb =
        id_of(&post_activity(&app, &ben, &json!({"type": "note_added", "message": "b"})).await);
    let all = activities(&app, &admin, "type=note_added").await;
    let mut ids: Vec<i64> = all.iter().map(id_of).collect();
    ids.sort();
    assert_eq!(ids, vec![na, nb]);
    let only_ben = activities(&app, &admin, &format!("type=note_added&user={}", ben.id)).await;
    assert_eq!(only_ben.iter().map(id_of).collect::<Vec<_>>(), vec![nb]);
    let r = app.get(&activity_url(na), Some(&admin.access)).await;
    r.assert_status(200);
    assert_keys(&r.body, crate::missions::ACTIVITY_KEYS, &r.describe());
    assert_eq!(r.body["user"], anna.id);
}
