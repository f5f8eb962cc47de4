//! `/api/missions/`: CRUD, the lifecycle actions and their race, filters,
//! search, ordering, pagination and ownership.
//!
//! Also home of the helpers that `steps`, `activities` and `hostile` share.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Registered, Resp, TestApp, assert_keys, is_rfc3339_utc};

// ---------------------------------------------------------------------------
// Shared helpers (used by steps.rs, activities.rs and hostile.rs too)
// ---------------------------------------------------------------------------

pub const MISSIONS: &str = "/api/missions/";
pub const ACTIVITIES: &str = "/api/activities/";

/// The keys of `Mission` (list items, action and update responses).
pub const MISSION_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "type",
    "status",
    "priority",
    "progress",
    "owner",
    "deadline",
    "started_at",
    "completed_at",
    "created_at",
    "updated_at",
    "steps_total",
    "steps_completed",
    "document_count",
];

/// What the detail view adds.
pub const DETAIL_EXTRA: &[&str] = &["plan_steps", "documents"];

/// The keys of `PlanStep`, `children` included (tree views and single steps).
pub const STEP_KEYS: &[&str] = &[
    "id",
    "mission",
    "parent",
    "title",
    "description",
    "order",
    "status",
    "action",
    "started_at",
    "completed_at",
    "created_at",
    "updated_at",
    "children",
];

/// The keys of `Activity`.
pub const ACTIVITY_KEYS: &[&str] = &[
    "id",
    "type",
    "message",
    "details",
    "user",
    "mission",
    "document",
    "timestamp",
];

pub const MISSION_STATUSES: &[&str] = &[
    "pending",
    "in_progress",
    "paused",
    "completed",
    "failed",
    "cancelled",
];
pub const STEP_STATUSES: &[&str] = &["pending", "in_progress", "completed", "failed", "skipped"];
pub const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];
pub const TYPES: &[&str] = &[
    "document_retrieval",
    "document_verification",
    "form_submission",
    "data_extraction",
    "custom",
];

pub fn mission_url(id: i64) -> String {
    format!("{MISSIONS}{id}/")
}

pub fn action_url(id: i64, action: &str) -> String {
    format!("{MISSIONS}{id}/{action}/")
}

pub fn steps_url(mission: i64) -> String {
    format!("{MISSIONS}{mission}/steps/")
}

pub fn step_url(mission: i64, step: i64) -> String {
    format!("{MISSIONS}{mission}/steps/{step}/")
}

pub fn activity_url(id: i64) -> String {
    format!("{ACTIVITIES}{id}/")
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `id` of an object.
#[track_caller]
pub fn id_of(v: &Value) -> i64 {
    v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("id is an integer: {v}"))
}

/// `results` of a page.
#[track_caller]
pub fn results(page: &Value) -> Vec<Value> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results is a list: {page}"))
        .clone()
}

/// The ids of a page's results, in order.
#[track_caller]
pub fn result_ids(page: &Value) -> Vec<i64> {
    results(page).iter().map(id_of).collect()
}

/// The titles of a page's results, in order.
#[track_caller]
pub fn result_titles(page: &Value) -> Vec<String> {
    results(page)
        .iter()
        .map(|m| m["title"].as_str().expect("title").to_owned())
        .collect()
}

/// A paginated list response: 200, JSON, the four keys.
#[track_caller]
pub fn assert_page(r: &Resp) {
    r.assert_status(200).assert_json();
    assert_keys(
        &r.body,
        &["count", "next", "previous", "results"],
        &r.describe(),
    );
    assert!(r.body["count"].is_u64(), "count\n{}", r.describe());
    assert!(
        r.body["next"].is_null() || r.body["next"].is_string(),
        "next\n{}",
        r.describe()
    );
    assert!(
        r.body["previous"].is_null() || r.body["previous"].is_string(),
        "previous\n{}",
        r.describe()
    );
    assert!(r.body["results"].is_array(), "results\n{}", r.describe());
}

#[track_caller]
fn assert_ts_or_null(v: &Value, what: &str, ctx: &str) {
    assert!(
        v.is_null() || v.as_str().is_some_and(is_rfc3339_utc),
        "{what} is null or an RFC 3339 UTC timestamp\n{ctx}"
    );
}

#[track_caller]
fn assert_mission_fields(m: &Value, ctx: &str) {
    assert!(m["id"].is_i64(), "id\n{ctx}");
    assert!(m["title"].is_string(), "title\n{ctx}");
    assert!(m["description"].is_string(), "description\n{ctx}");
    assert!(
        m["type"].as_str().is_some_and(|t| TYPES.contains(&t)),
        "type\n{ctx}"
    );
    assert!(
        m["status"]
            .as_str()
            .is_some_and(|t| MISSION_STATUSES.contains(&t)),
        "status\n{ctx}"
    );
    assert!(
        m["priority"]
            .as_str()
            .is_some_and(|t| PRIORITIES.contains(&t)),
        "priority\n{ctx}"
    );
    assert!(
        m["progress"].as_u64().is_some_and(|p| p <= 100),
        "progress is an integer 0..=100\n{ctx}"
    );
    assert!(m["owner"].is_i64(), "owner\n{ctx}");
    assert_ts_or_null(&m["deadline"], "deadline", ctx);
    assert_ts_or_null(&m["started_at"], "started_at", ctx);
    assert_ts_or_null(&m["completed_at"], "completed_at", ctx);
    for key in ["created_at", "updated_at"] {
        assert!(
            m[key].as_str().is_some_and(is_rfc3339_utc),
            "{key} is an RFC 3339 UTC timestamp\n{ctx}"
        );
    }
    for key in ["steps_total", "steps_completed", "document_count"] {
        assert!(m[key].is_u64(), "{key} is a non-negative integer\n{ctx}");
    }
}

/// A list item: exactly the `Mission` keys.
#[track_caller]
pub fn assert_mission_shape(m: &Value) {
    let ctx = format!("mission: {m}");
    assert_keys(m, MISSION_KEYS, &ctx);
    assert_mission_fields(m, &ctx);
}

/// A detail view: `Mission` + `plan_steps` (a valid tree) + `documents`.
#[track_caller]
pub fn assert_detail_shape(m: &Value) {
    let ctx = format!("mission detail: {m}");
    let all: Vec<&str> = MISSION_KEYS.iter().chain(DETAIL_EXTRA).copied().collect();
    assert_keys(m, &all, &ctx);
    assert_mission_fields(m, &ctx);
    let steps = m["plan_steps"]
        .as_array()
        .unwrap_or_else(|| panic!("plan_steps is a list\n{ctx}"));
    for step in steps {
        assert_step_tree(step, id_of(m), None);
    }
    assert!(m["documents"].is_array(), "documents is a list\n{ctx}");
}

/// A create/update/action response: the `Mission` keys, and possibly the
/// detail keys too (the contract only says "Mission").
#[track_caller]
pub fn assert_mission_like(m: &Value) {
    let ctx = format!("mission: {m}");
    let obj = m
        .as_object()
        .unwrap_or_else(|| panic!("a Mission is an object\n{ctx}"));
    for key in MISSION_KEYS {
        assert!(obj.contains_key(*key), "Mission has key {key:?}\n{ctx}");
    }
    for key in obj.keys() {
        assert!(
            MISSION_KEYS.contains(&key.as_str()) || DETAIL_EXTRA.contains(&key.as_str()),
            "unexpected Mission key {key:?}\n{ctx}"
        );
    }
    assert_mission_fields(m, &ctx);
}

/// One step with exactly the `PlanStep` keys (its children checked too).
#[track_caller]
pub fn assert_step_shape(step: &Value) {
    let mission = step["mission"]
        .as_i64()
        .unwrap_or_else(|| panic!("step.mission is an integer: {step}"));
    let parent = step["parent"].as_i64();
    assert_step_tree(step, mission, parent);
}

/// A step of `mission` under `parent`, and its subtree; siblings by `order`.
#[track_caller]
pub fn assert_step_tree(step: &Value, mission: i64, parent: Option<i64>) {
    let ctx = format!("step: {step}");
    assert_keys(step, STEP_KEYS, &ctx);
    assert!(step["id"].is_i64(), "id\n{ctx}");
    assert_eq!(step["mission"], json!(mission), "step.mission\n{ctx}");
    assert_eq!(
        step["parent"],
        parent.map_or(Value::Null, Value::from),
        "step.parent\n{ctx}"
    );
    assert!(step["title"].is_string(), "title\n{ctx}");
    assert!(step["description"].is_string(), "description\n{ctx}");
    assert!(step["order"].is_i64(), "order is an integer\n{ctx}");
    assert!(
        step["status"]
            .as_str()
            .is_some_and(|s| STEP_STATUSES.contains(&s)),
        "status\n{ctx}"
    );
    assert!(
        step["action"]["kind"].is_string(),
        "action is an object with a kind\n{ctx}"
    );
    assert_ts_or_null(&step["started_at"], "started_at", &ctx);
    assert_ts_or_null(&step["completed_at"], "completed_at", &ctx);
    for key in ["created_at", "updated_at"] {
        assert!(
            step[key].as_str().is_some_and(is_rfc3339_utc),
            "{key}\n{ctx}"
        );
    }
    let children = step["children"]
        .as_array()
        .unwrap_or_else(|| panic!("children is a list\n{ctx}"));
    assert_sibling_order(children, &ctx);
    let id = id_of(step);
    for child in children {
        assert_step_tree(child, mission, Some(id));
    }
}

/// Siblings are sorted by `order` (ties by id).
#[track_caller]
pub fn assert_sibling_order(siblings: &[Value], ctx: &str) {
    let keys: Vec<(i64, i64)> = siblings
        .iter()
        .map(|s| (s["order"].as_i64().unwrap_or(i64::MIN), id_of(s)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "siblings ordered by `order`\n{ctx}");
}

/// An activity with exactly the `Activity` keys.
#[track_caller]
pub fn assert_activity_shape(a: &Value) {
    let ctx = format!("activity: {a}");
    assert_keys(a, ACTIVITY_KEYS, &ctx);
    assert!(a["id"].is_i64(), "id\n{ctx}");
    assert!(a["type"].is_string(), "type\n{ctx}");
    assert!(a["message"].is_string(), "message\n{ctx}");
    assert!(a["details"].is_object(), "details is an object\n{ctx}");
    assert!(a["user"].is_i64() || a["user"].is_null(), "user\n{ctx}");
    assert!(
        a["mission"].is_i64() || a["mission"].is_null(),
        "mission\n{ctx}"
    );
    assert!(
        a["document"].is_i64() || a["document"].is_null(),
        "document\n{ctx}"
    );
    assert!(
        a["timestamp"].as_str().is_some_and(is_rfc3339_utc),
        "timestamp\n{ctx}"
    );
}

/// A comparable key for an RFC 3339 UTC timestamp: (whole seconds, nanos).
#[track_caller]
pub fn ts_key(s: &str) -> (String, u32) {
    assert!(is_rfc3339_utc(s), "RFC 3339 UTC timestamp: {s:?}");
    let head = s[..19].to_owned();
    let frac = &s[19..s.len() - 1];
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits = &frac[1..];
        let mut padded: String = digits.chars().take(9).collect();
        while padded.len() < 9 {
            padded.push('0');
        }
        padded.parse().expect("fraction digits")
    };
    (head, nanos)
}

/// POSTs a mission; asserts 201 and the shape; returns the body.
pub async fn create_mission(app: &TestApp, user: &Registered, body: &Value) -> Value {
    let r = app.post_json(MISSIONS, body, Some(&user.access)).await;
    r.assert_status(201).assert_json();
    assert_mission_like(&r.body);
    r.body.clone()
}

/// A `custom` mission with this title; returns its id.
pub async fn new_mission(app: &TestApp, user: &Registered, title: &str) -> i64 {
    id_of(&create_mission(app, user, &json!({"title": title, "type": "custom"})).await)
}

/// GET of the detail view; asserts 200 and the shape.
pub async fn mission_detail(app: &TestApp, user: &Registered, id: i64) -> Value {
    let r = app.get(&mission_url(id), Some(&user.access)).await;
    r.assert_status(200).assert_json();
    assert_detail_shape(&r.body);
    r.body.clone()
}

/// POST `{id}/{action}/` without a body.
pub async fn act(app: &TestApp, user: &Registered, id: i64, action: &str) -> Resp {
    app.request(
        Method::POST,
        &action_url(id, action),
        Some(&user.access),
        None,
    )
    .await
}

/// An action that must succeed: 200 and the new status; returns the mission.
pub async fn act_ok(
    app: &TestApp,
    user: &Registered,
    id: i64,
    action: &str,
    status: &str,
) -> Value {
    let r = act(app, user, id, action).await;
    r.assert_status(200).assert_json();
    assert_mission_like(&r.body);
    assert_eq!(r.body["status"], status, "{action}\n{}", r.describe());
    assert_eq!(r.body["id"], id);
    r.body.clone()
}

/// The 409 body of a refused action.
pub fn transition_error(action: &str, status: &str) -> Value {
    json!({
        "detail": format!("Cannot {action} a mission that is {status}."),
        "code": "invalid_transition",
    })
}

/// Every activity a user sees for this query (first 100), asserting shapes.
pub async fn activities(app: &TestApp, user: &Registered, query: &str) -> Vec<Value> {
    let sep = if query.is_empty() { "" } else { "&" };
    let r = app
        .get(
            &format!("{ACTIVITIES}?page_size=100{sep}{query}"),
            Some(&user.access),
        )
        .await;
    assert_page(&r);
    let list = results(&r.body);
    for a in &list {
        assert_activity_shape(a);
    }
    list
}

/// How many activities of `kind` the user sees for mission `id`.
pub async fn count_activities(app: &TestApp, user: &Registered, kind: &str, mission: i64) -> usize {
    let list = activities(app, user, &format!("type={kind}&mission={mission}")).await;
    for a in &list {
        assert_eq!(a["type"], kind, "type filter: {a}");
        assert_eq!(a["mission"], mission, "mission filter: {a}");
    }
    list.len()
}

/// The roots of the steps list, paginated or not (the contract says "the
/// tree" for this endpoint; a page of roots is accepted too when it is whole).
#[track_caller]
pub fn step_roots(r: &Resp) -> Vec<Value> {
    r.assert_status(200).assert_json();
    match &r.body {
        Value::Array(list) => list.clone(),
        Value::Object(_) => {
            assert_page(r);
            assert_eq!(
                r.body["next"],
                Value::Null,
                "the whole tree on one page\n{}",
                r.describe()
            );
            assert_eq!(
                r.body["count"].as_u64(),
                Some(results(&r.body).len() as u64),
                "count of roots\n{}",
                r.describe()
            );
            results(&r.body)
        }
        _ => panic!("steps list is a list or a page\n{}", r.describe()),
    }
}

/// The nested titles of a step tree: `[{"title", "children": [...]}]`.
pub fn tree_titles(steps: &Value) -> Value {
    Value::Array(
        steps
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|s| json!({"title": s["title"], "children": tree_titles(&s["children"])}))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Every step of a tree, depth-first.
pub fn flatten(steps: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for s in steps {
        out.push(s.clone());
        if let Some(children) = s["children"].as_array() {
            out.extend(flatten(children));
        }
    }
    out
}

/// The step with this title in a tree.
#[track_caller]
pub fn find_step(steps: &[Value], title: &str) -> Value {
    flatten(steps)
        .into_iter()
        .find(|s| s["title"] == title)
        .unwrap_or_else(|| panic!("a step titled {title:?} in {steps:?}"))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

backend_tests!(
    missions_require_authentication,
    create_applies_defaults,
    create_with_nested_plan_steps,
    create_validates_fields,
    detail_and_list_show_own_missions_only,
    staff_sees_all_and_filters_by_owner,
    patch_is_partial_and_ignores_read_only_fields,
    put_replaces_fields,
    delete_removes_mission,
    delete_in_progress_is_conflict,
    actions_follow_transition_table,
    start_and_complete_set_timestamps_and_skip_open_steps,
    complete_from_paused_and_cancel_from_every_open_state,
    action_activities_are_recorded,
    concurrent_starts_have_one_winner,
    filters_by_status_type_priority,
    bad_filter_values_are_rejected,
    search_matches_title_and_description,
    ordering_by_priority_title_and_default,
    pagination_keeps_params_and_clamps_size,
    list_items_count_steps,
    other_users_mission_is_not_found_and_unchanged,
);

async fn missions_require_authentication(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Secret").await;
    for r in [
        app.get(MISSIONS, None).await,
        app.post_json(MISSIONS, &json!({"title": "x", "type": "custom"}), None)
            .await,
        app.get(&mission_url(id), None).await,
        app.request(Method::POST, &action_url(id, "start"), None, None)
            .await,
        app.get(&steps_url(id), None).await,
    ] {
        r.assert_unauthorized("not_authenticated");
    }
    // Nothing happened.
    let m = mission_detail(&app, &anna, id).await;
    assert_eq!(m["status"], "pending");
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 1);
}

async fn create_applies_defaults(app: TestApp) {
    let anna = app.register("anna").await;
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "  Retrieve Tax Documents  ", "type": "document_retrieval"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201).assert_json();
    let m = r.body.clone();
    assert_mission_like(&m);
    assert_eq!(m["title"], "Retrieve Tax Documents", "title trimmed");
    assert_eq!(m["description"], "");
    assert_eq!(m["type"], "document_retrieval");
    assert_eq!(m["status"], "pending");
    assert_eq!(m["priority"], "medium");
    assert_eq!(m["progress"], 0);
    assert_eq!(m["owner"], anna.id);
    assert_eq!(m["deadline"], Value::Null);
    assert_eq!(m["started_at"], Value::Null);
    assert_eq!(m["completed_at"], Value::Null);
    assert_eq!(m["steps_total"], 0);
    assert_eq!(m["steps_completed"], 0);
    assert_eq!(m["document_count"], 0);

    // The detail view agrees and adds the (empty) tree and documents.
    let d = mission_detail(&app, &anna, id_of(&m)).await;
    for key in MISSION_KEYS {
        assert_eq!(d[*key], m[*key], "detail {key} equals the created mission");
    }
    assert_eq!(d["plan_steps"], json!([]));
    assert_eq!(d["documents"], json!([]));

    // Every field given; read-only ones ignored.
    let m = create_mission(
        &app,
        &anna,
        &json!({
            "title": "Bank statements",
            "type": "data_extraction",
            "priority": "urgent",
            "description": "Q3 and Q4",
            "deadline": "2030-01-31T12:30:00+01:00",
            "status": "completed",
            "progress": 77,
            "owner": 999_999,
            "started_at": "2020-01-01T00:00:00Z",
        }),
    )
    .await;
    assert_eq!(m["title"], "Bank statements");
    assert_eq!(m["type"], "data_extraction");
    assert_eq!(m["priority"], "urgent");
    assert_eq!(m["description"], "Q3 and Q4");
    assert_eq!(
        ts_key(m["deadline"].as_str().expect("deadline")),
        ("2030-01-31T11:30:00".to_owned(), 0),
        "deadline stored in UTC: {m}"
    );
    assert_eq!(m["status"], "pending");
    assert_eq!(m["progress"], 0);
    assert_eq!(m["owner"], anna.id);
    assert_eq!(m["started_at"], Value::Null);

    // A 200-character title is fine.
    let long = "t".repeat(200);
    let m = create_mission(&app, &anna, &json!({"title": long, "type": "custom"})).await;
    assert_eq!(m["title"], long.as_str());

    // mission_created was recorded for each.
    let created = activities(&app, &anna, "type=mission_created").await;
    assert_eq!(created.len(), 3, "{created:?}");
    for a in &created {
        assert_eq!(a["message"], "Mission created");
        assert_eq!(a["user"], anna.id);
        assert!(a["mission"].is_i64());
    }
    let first = created
        .iter()
        .find(|a| a["mission"] == d["id"])
        .expect("mission_created for the first mission");
    assert_eq!(first["type"], "mission_created");
}

async fn create_with_nested_plan_steps(app: TestApp) {
    let anna = app.register("anna").await;
    let body = json!({
        "title": "Taxes",
        "type": "document_retrieval",
        "plan_steps": [
            {"title": "Collect", "children": [
                {"title": "Collect W-2"},
                {"title": "Collect 1099", "description": "from the bank"},
                {"title": "Collect receipts"},
            ]},
            {"title": "Review"},
            {"title": "Submit", "description": "e-file", "children": [
                {"title": "Sign"},
            ]},
        ],
    });
    let m = create_mission(&app, &anna, &body).await;
    assert_eq!(m["steps_total"], 7, "all levels counted: {m}");
    assert_eq!(m["steps_completed"], 0);
    assert_eq!(m["progress"], 0);
    assert_eq!(m["status"], "pending");

    let d = mission_detail(&app, &anna, id_of(&m)).await;
    assert_eq!(
        tree_titles(&d["plan_steps"]),
        json!([
            {"title": "Collect", "children": [
                {"title": "Collect W-2", "children": []},
                {"title": "Collect 1099", "children": []},
                {"title": "Collect receipts", "children": []},
            ]},
            {"title": "Review", "children": []},
            {"title": "Submit", "children": [{"title": "Sign", "children": []}]},
        ]),
        "tree in creation order: {d}"
    );
    assert_eq!(d["steps_total"], 7);
    let roots = d["plan_steps"].as_array().expect("plan_steps").clone();
    let all = flatten(&roots);
    assert_eq!(all.len(), 7);
    for s in &all {
        assert_eq!(s["status"], "pending", "{s}");
        assert_eq!(
            s["action"],
            json!({"kind": "manual"}),
            "default action: {s}"
        );
        assert_eq!(s["started_at"], Value::Null);
        assert_eq!(s["completed_at"], Value::Null);
    }
    assert_eq!(
        find_step(&roots, "Collect 1099")["description"],
        "from the bank"
    );
    assert_eq!(find_step(&roots, "Submit")["description"], "e-file");
    assert_eq!(find_step(&roots, "Review")["description"], "");
    // Orders strictly increase among siblings.
    let orders = |list: &[Value]| -> Vec<i64> {
        list.iter()
            .map(|s| s["order"].as_i64().expect("order"))
            .collect()
    };
    for siblings in [
        roots.clone(),
        roots[0]["children"].as_array().expect("children").clone(),
    ] {
        let o = orders(&siblings);
        assert!(o.windows(2).all(|w| w[0] < w[1]), "orders increase: {o:?}");
    }

    // The steps list shows the same tree.
    let r = app.get(&steps_url(id_of(&m)), Some(&anna.access)).await;
    let listed = step_roots(&r);
    assert_eq!(
        Value::Array(listed),
        d["plan_steps"],
        "steps list = detail tree"
    );

    // Invalid nested steps: nothing is created.
    for bad in [
        json!({"title": "Bad", "type": "custom", "plan_steps": [{"title": ""}]}),
        json!({"title": "Bad", "type": "custom", "plan_steps": [{"description": "no title"}]}),
        json!({"title": "Bad", "type": "custom", "plan_steps": [{"title": "ok", "children": [{"title": "   "}]}]}),
        json!({"title": "Bad", "type": "custom", "plan_steps": "steps"}),
    ] {
        let r = app.post_json(MISSIONS, &bad, Some(&anna.access)).await;
        r.assert_status(400).assert_json();
        assert!(
            r.body.get("plan_steps").is_some(),
            "error on plan_steps\n{}",
            r.describe()
        );
    }
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 1, "no mission from the rejected bodies");
}

async fn create_validates_fields(app: TestApp) {
    let anna = app.register("anna").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"type": "custom"}), "title"),
        (json!({"title": "", "type": "custom"}), "title"),
        (json!({"title": "   ", "type": "custom"}), "title"),
        (json!({"title": null, "type": "custom"}), "title"),
        (json!({"title": "t".repeat(201), "type": "custom"}), "title"),
        (json!({"title": "ok"}), "type"),
        (json!({"title": "ok", "type": "teleportation"}), "type"),
        (json!({"title": "ok", "type": "CUSTOM"}), "type"),
        (
            json!({"title": "ok", "type": "custom", "priority": "critical"}),
            "priority",
        ),
        (
            json!({"title": "ok", "type": "custom", "priority": "High"}),
            "priority",
        ),
        (
            json!({"title": "ok", "type": "custom", "deadline": "next tuesday"}),
            "deadline",
        ),
        (
            json!({"title": "ok", "type": "custom", "deadline": "2026-13-45T99:00:00Z"}),
            "deadline",
        ),
    ];
    for (body, field) in cases {
        let r = app.post_json(MISSIONS, &body, Some(&anna.access)).await;
        r.assert_field_errors(&[field]);
    }
    let r = app
        .post_json(MISSIONS, &json!({"type": "custom"}), Some(&anna.access))
        .await;
    r.assert_field_message("title", "This field is required.");
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "ok", "type": "custom", "priority": "critical"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_message("priority", "\"critical\" is not a valid choice.");
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": "t".repeat(201), "type": "custom"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_message(
        "title",
        "Ensure this field has no more than 200 characters.",
    );
    // Several bad fields at once: all reported.
    let r = app
        .post_json(
            MISSIONS,
            &json!({"title": " ", "type": "x", "priority": "y"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["title", "type", "priority"]);
    // Empty body.
    let r = app
        .post_json(MISSIONS, &json!({}), Some(&anna.access))
        .await;
    r.assert_field_errors(&["title", "type"]);

    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 0, "nothing was created\n{}", r.describe());
}

async fn detail_and_list_show_own_missions_only(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let a1 = new_mission(&app, &anna, "Anna one").await;
    let a2 = new_mission(&app, &anna, "Anna two").await;
    let b1 = new_mission(&app, &ben, "Ben one").await;

    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 2);
    for m in results(&r.body) {
        assert_mission_shape(&m);
        assert_eq!(m["owner"], anna.id);
    }
    let ids: BTreeSet<i64> = result_ids(&r.body).into_iter().collect();
    assert_eq!(ids, BTreeSet::from([a1, a2]));

    let r = app.get(MISSIONS, Some(&ben.access)).await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), vec![b1]);

    // Detail of one's own; without the trailing slash too.
    let d = mission_detail(&app, &anna, a1).await;
    assert_eq!(d["title"], "Anna one");
    let r = app
        .get(&format!("{MISSIONS}{a1}"), Some(&anna.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["id"], a1);

    // Non-staff `?owner=` cannot widen the list (ignored, empty, or refused).
    let r = app
        .get(&format!("{MISSIONS}?owner={}", ben.id), Some(&anna.access))
        .await;
    r.assert_not_5xx().assert_json();
    if r.code() == 200 {
        assert!(
            !result_ids(&r.body).contains(&b1),
            "another user's mission listed\n{}",
            r.describe()
        );
    } else {
        assert!(matches!(r.code(), 400 | 403), "{}", r.describe());
    }

    // Unknown ids.
    for path in [mission_url(b1 + 1000), format!("{MISSIONS}0/")] {
        app.get(&path, Some(&anna.access)).await.assert_not_found();
    }
}

async fn staff_sees_all_and_filters_by_owner(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let a1 = new_mission(&app, &anna, "Anna one").await;
    let a2 = new_mission(&app, &anna, "Anna two").await;
    let b1 = new_mission(&app, &ben, "Ben one").await;

    let r = app.get(MISSIONS, Some(&admin.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 3);
    let ids: BTreeSet<i64> = result_ids(&r.body).into_iter().collect();
    assert_eq!(ids, BTreeSet::from([a1, a2, b1]));

    let r = app
        .get(
            &format!("{MISSIONS}?owner={}", anna.id),
            Some(&admin.access),
        )
        .await;
    assert_page(&r);
    let ids: BTreeSet<i64> = result_ids(&r.body).into_iter().collect();
    assert_eq!(ids, BTreeSet::from([a1, a2]));
    let r = app
        .get(&format!("{MISSIONS}?owner={}", ben.id), Some(&admin.access))
        .await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), vec![b1]);
    assert_eq!(results(&r.body)[0]["owner"], ben.id);

    // Staff can read any mission.
    let r = app.get(&mission_url(b1), Some(&admin.access)).await;
    r.assert_status(200);
    assert_eq!(r.body["owner"], ben.id);
}

async fn patch_is_partial_and_ignores_read_only_fields(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Original", "type": "custom", "description": "desc", "priority": "low"}),
    )
    .await;
    let id = id_of(&m);
    let before = mission_detail(&app, &anna, id).await;

    let r = app
        .patch_json(
            &mission_url(id),
            &json!({"priority": "high"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200).assert_json();
    assert_mission_like(&r.body);
    for key in MISSION_KEYS {
        match *key {
            "priority" => assert_eq!(r.body[*key], "high"),
            "updated_at" => assert!(
                ts_key(r.body[*key].as_str().expect("updated_at"))
                    >= ts_key(before[*key].as_str().expect("updated_at"))
            ),
            _ => assert_eq!(r.body[*key], before[*key], "{key} unchanged by PATCH"),
        }
    }
    assert_eq!(
        count_activities(&app, &anna, "mission_updated", id).await,
        1,
        "one mission_updated"
    );

    let r = app
        .patch_json(
            &mission_url(id),
            &json!({"title": "  Renamed ", "description": "", "deadline": "2031-05-01T08:00:00Z", "type": "form_submission"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["title"], "Renamed");
    assert_eq!(r.body["description"], "");
    assert_eq!(r.body["type"], "form_submission");
    assert_eq!(r.body["priority"], "high");
    assert_eq!(
        ts_key(r.body["deadline"].as_str().expect("deadline")),
        ("2031-05-01T08:00:00".to_owned(), 0)
    );
    // The deadline can be cleared.
    let r = app
        .patch_json(
            &mission_url(id),
            &json!({"deadline": null}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["deadline"], Value::Null);

    // Read-only fields are ignored.
    let r = app
        .patch_json(
            &mission_url(id),
            &json!({"status": "completed", "progress": 99, "owner": anna.id + 1, "id": 12345, "steps_total": 9, "completed_at": "2020-01-01T00:00:00Z"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["progress"], 0);
    assert_eq!(r.body["owner"], anna.id);
    assert_eq!(r.body["steps_total"], 0);
    assert_eq!(r.body["completed_at"], Value::Null);

    // Invalid PATCHes change nothing.
    let snapshot = mission_detail(&app, &anna, id).await;
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"priority": "whenever"}), "priority"),
        (json!({"type": "nope"}), "type"),
        (json!({"deadline": "soon"}), "deadline"),
        (json!({"title": "Valid", "priority": "bad"}), "priority"),
    ] {
        let r = app
            .patch_json(&mission_url(id), &body, Some(&anna.access))
            .await;
        r.assert_field_errors(&[field]);
    }
    assert_eq!(mission_detail(&app, &anna, id).await, snapshot);

    // GET reflects the last successful PATCH.
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["title"], "Renamed");
    assert_eq!(d["priority"], "high");
}

async fn put_replaces_fields(app: TestApp) {
    let anna = app.register("anna").await;
    let id = id_of(
        &create_mission(
            &app,
            &anna,
            &json!({"title": "Old", "type": "custom", "description": "old", "priority": "low"}),
        )
        .await,
    );
    let r = app
        .put_json(
            &mission_url(id),
            &json!({
                "title": "New",
                "type": "document_verification",
                "description": "new",
                "priority": "urgent",
                "deadline": "2032-02-29T00:00:00Z",
            }),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200).assert_json();
    assert_mission_like(&r.body);
    assert_eq!(r.body["title"], "New");
    assert_eq!(r.body["type"], "document_verification");
    assert_eq!(r.body["description"], "new");
    assert_eq!(r.body["priority"], "urgent");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["owner"], anna.id);
    assert_eq!(
        ts_key(r.body["deadline"].as_str().expect("deadline")),
        ("2032-02-29T00:00:00".to_owned(), 0)
    );
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["title"], "New");
    assert_eq!(d["priority"], "urgent");

    // PUT is a full update: the required fields are required.
    let r = app
        .put_json(
            &mission_url(id),
            &json!({"title": "Only"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["type"]);
    let r = app
        .put_json(
            &mission_url(id),
            &json!({"type": "custom"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["title"]);
    assert_eq!(mission_detail(&app, &anna, id).await["title"], "New");
}

async fn delete_removes_mission(app: TestApp) {
    let anna = app.register("anna").await;
    let keep = new_mission(&app, &anna, "Keep").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Gone", "type": "custom", "plan_steps": [{"title": "a", "children": [{"title": "b"}]}]}),
    )
    .await;
    let id = id_of(&m);
    let d = mission_detail(&app, &anna, id).await;
    let step = id_of(&d["plan_steps"][0]);

    let r = app.delete(&mission_url(id), Some(&anna.access)).await;
    r.assert_status(204);
    assert!(r.text.is_empty(), "204 has no body\n{}", r.describe());

    app.get(&mission_url(id), Some(&anna.access))
        .await
        .assert_not_found();
    app.get(&step_url(id, step), Some(&anna.access))
        .await
        .assert_not_found();
    app.delete(&mission_url(id), Some(&anna.access))
        .await
        .assert_not_found();
    act(&app, &anna, id, "start").await.assert_not_found();
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), vec![keep]);

    let deleted = activities(&app, &anna, "type=mission_deleted").await;
    assert_eq!(deleted.len(), 1, "one mission_deleted: {deleted:?}");
    assert_eq!(deleted[0]["user"], anna.id);

    // Deletable from the other states too.
    for (actions, status) in [
        (&["start", "pause"][..], "paused"),
        (&["start", "complete"][..], "completed"),
        (&["cancel"][..], "cancelled"),
    ] {
        let id = new_mission(&app, &anna, status).await;
        for a in actions {
            act(&app, &anna, id, a).await.assert_status(200);
        }
        app.delete(&mission_url(id), Some(&anna.access))
            .await
            .assert_status(204);
        app.get(&mission_url(id), Some(&anna.access))
            .await
            .assert_not_found();
    }
}

async fn delete_in_progress_is_conflict(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Running").await;
    act_ok(&app, &anna, id, "start", "in_progress").await;
    let before = mission_detail(&app, &anna, id).await;

    let r = app.delete(&mission_url(id), Some(&anna.access)).await;
    r.assert_status(409).assert_json();
    assert_keys(&r.body, &["detail", "code"], &r.describe());
    assert_eq!(r.body["code"], "invalid_transition", "{}", r.describe());
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.describe()
    );
    assert_eq!(mission_detail(&app, &anna, id).await, before, "still there");
    assert_eq!(
        activities(&app, &anna, "type=mission_deleted").await.len(),
        0
    );

    // Once paused, it can go.
    act_ok(&app, &anna, id, "pause", "paused").await;
    app.delete(&mission_url(id), Some(&anna.access))
        .await
        .assert_status(204);
}

/// Brings a fresh mission to `state` through the API; returns its id.
async fn mission_in(app: &TestApp, user: &Registered, state: &str) -> i64 {
    let id = new_mission(app, user, &format!("in {state}")).await;
    let path: &[&str] = match state {
        "pending" => &[],
        "in_progress" => &["start"],
        "paused" => &["start", "pause"],
        "completed" => &["start", "complete"],
        "cancelled" => &["cancel"],
        other => panic!("unreachable state {other}"),
    };
    for a in path {
        act(app, user, id, a).await.assert_status(200);
    }
    assert_eq!(mission_detail(app, user, id).await["status"], state);
    id
}

async fn actions_follow_transition_table(app: TestApp) {
    let anna = app.register("anna").await;
    // (action, statuses it is legal from, target)
    let table: [(&str, &[&str], &str); 5] = [
        ("start", &["pending", "failed"], "in_progress"),
        ("pause", &["in_progress"], "paused"),
        ("resume", &["paused"], "in_progress"),
        ("complete", &["in_progress", "paused"], "completed"),
        ("cancel", &["pending", "in_progress", "paused"], "cancelled"),
    ];
    let states = ["pending", "in_progress", "paused", "completed", "cancelled"];
    for state in states {
        for (action, from, target) in table {
            let id = mission_in(&app, &anna, state).await;
            let before = mission_detail(&app, &anna, id).await;
            let r = act(&app, &anna, id, action).await;
            if from.contains(&state) {
                r.assert_status(200).assert_json();
                assert_mission_like(&r.body);
                assert_eq!(r.body["status"], target, "{action} from {state}");
                let after = mission_detail(&app, &anna, id).await;
                assert_eq!(after["status"], target, "{action} from {state} persisted");
            } else {
                r.assert_body(409, &transition_error(action, state));
                let after = mission_detail(&app, &anna, id).await;
                assert_eq!(after, before, "{action} from {state} changed nothing");
            }
        }
    }
    // The examples from the brief, spelled out.
    let pending = mission_in(&app, &anna, "pending").await;
    act(&app, &anna, pending, "pause").await.assert_body(
        409,
        &json!({"detail": "Cannot pause a mission that is pending.", "code": "invalid_transition"}),
    );
    let running = mission_in(&app, &anna, "in_progress").await;
    act(&app, &anna, running, "resume").await.assert_body(
        409,
        &json!({"detail": "Cannot resume a mission that is in_progress.", "code": "invalid_transition"}),
    );
    // A JSON body `{}` works like no body; trailing slash optional.
    let id = new_mission(&app, &anna, "with body").await;
    let r = app
        .post_json(&action_url(id, "start"), &json!({}), Some(&anna.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["status"], "in_progress");
    let r = app
        .post_json(
            &format!("{MISSIONS}{id}/pause"),
            &json!({}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["status"], "paused");
    // Unknown action.
    let r = act(&app, &anna, id, "explode").await;
    assert!(
        matches!(r.code(), 404 | 405),
        "unknown action\n{}",
        r.describe()
    );
    r.assert_json();
    // GET on an action is not allowed.
    let r = app.get(&action_url(id, "start"), Some(&anna.access)).await;
    r.assert_body(405, &json!({"detail": "Method \"GET\" not allowed."}));
}

async fn start_and_complete_set_timestamps_and_skip_open_steps(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Steps", "type": "custom", "plan_steps": [
            {"title": "A", "children": [{"title": "A1"}, {"title": "A2"}]},
            {"title": "B"},
        ]}),
    )
    .await;
    let id = id_of(&m);
    let roots = mission_detail(&app, &anna, id).await["plan_steps"]
        .as_array()
        .expect("plan_steps")
        .clone();
    let a1 = id_of(&find_step(&roots, "A1"));

    let started = act_ok(&app, &anna, id, "start", "in_progress").await;
    let started_at = started["started_at"]
        .as_str()
        .unwrap_or_else(|| panic!("started_at set by start: {started}"))
        .to_owned();
    assert!(ts_key(&started_at) >= ts_key(m["created_at"].as_str().expect("created_at")));
    assert_eq!(started["completed_at"], Value::Null);
    assert_eq!(started["progress"], 0);

    // One leaf done by the user: 1 of 3.
    let r = app
        .patch_json(
            &step_url(id, a1),
            &json!({"status": "completed"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 33);
    assert_eq!(d["status"], "in_progress");

    let paused = act_ok(&app, &anna, id, "pause", "paused").await;
    assert_eq!(
        paused["started_at"],
        started_at.as_str(),
        "pause keeps started_at"
    );
    let resumed = act_ok(&app, &anna, id, "resume", "in_progress").await;
    assert!(resumed["started_at"].is_string());
    assert_eq!(resumed["completed_at"], Value::Null);

    let done = act_ok(&app, &anna, id, "complete", "completed").await;
    assert_eq!(done["progress"], 100);
    let completed_at = done["completed_at"]
        .as_str()
        .unwrap_or_else(|| panic!("completed_at set by complete: {done}"));
    assert!(ts_key(completed_at) >= ts_key(&started_at));

    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["status"], "completed");
    assert_eq!(d["progress"], 100);
    assert_eq!(d["completed_at"], done["completed_at"]);
    let roots = d["plan_steps"].as_array().expect("plan_steps").clone();
    assert_eq!(
        find_step(&roots, "A1")["status"],
        "completed",
        "done steps stay"
    );
    for title in ["A2", "B"] {
        assert_eq!(
            find_step(&roots, title)["status"],
            "skipped",
            "open leaf {title} skipped: {d}"
        );
    }
    assert_ne!(
        find_step(&roots, "A")["status"],
        "pending",
        "open parent skipped too"
    );
    assert_eq!(d["steps_total"], 4);
    assert_eq!(d["steps_completed"], 1, "skipped is not completed");

    // A completed mission cannot be started, paused, resumed, completed or cancelled.
    for action in ["start", "pause", "resume", "complete", "cancel"] {
        act(&app, &anna, id, action)
            .await
            .assert_body(409, &transition_error(action, "completed"));
    }
}

async fn complete_from_paused_and_cancel_from_every_open_state(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Paused", "type": "custom", "plan_steps": [{"title": "x"}, {"title": "y"}]}),
    )
    .await;
    let id = id_of(&m);
    act_ok(&app, &anna, id, "start", "in_progress").await;
    act_ok(&app, &anna, id, "pause", "paused").await;
    let done = act_ok(&app, &anna, id, "complete", "completed").await;
    assert_eq!(done["progress"], 100);
    assert!(done["completed_at"].is_string(), "{done}");
    let d = mission_detail(&app, &anna, id).await;
    for s in d["plan_steps"].as_array().expect("plan_steps") {
        assert_eq!(s["status"], "skipped", "{s}");
    }

    for state in ["pending", "in_progress", "paused"] {
        let id = mission_in(&app, &anna, state).await;
        let r = act_ok(&app, &anna, id, "cancel", "cancelled").await;
        assert_eq!(r["completed_at"], Value::Null, "cancel is not completion");
        for action in ["start", "pause", "resume", "complete", "cancel"] {
            act(&app, &anna, id, action)
                .await
                .assert_body(409, &transition_error(action, "cancelled"));
        }
    }
}

async fn action_activities_are_recorded(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Audited").await;
    for (action, status) in [
        ("start", "in_progress"),
        ("pause", "paused"),
        ("resume", "in_progress"),
        ("complete", "completed"),
    ] {
        act_ok(&app, &anna, id, action, status).await;
    }
    let other = new_mission(&app, &anna, "Cancelled").await;
    act_ok(&app, &anna, other, "cancel", "cancelled").await;
    // A refused action records nothing.
    act(&app, &anna, other, "start").await.assert_status(409);

    for (kind, mission, message) in [
        ("mission_created", id, "Mission created"),
        ("mission_started", id, "Mission started"),
        ("mission_paused", id, "Mission paused"),
        ("mission_resumed", id, "Mission resumed"),
        ("mission_completed", id, "Mission completed"),
        ("mission_cancelled", other, "Mission cancelled"),
    ] {
        let list = activities(&app, &anna, &format!("type={kind}&mission={mission}")).await;
        assert_eq!(list.len(), 1, "{kind} for {mission}: {list:?}");
        assert_eq!(list[0]["user"], anna.id);
        assert_eq!(list[0]["message"], message);
    }
    assert_eq!(
        count_activities(&app, &anna, "mission_started", other).await,
        0
    );
    assert_eq!(
        count_activities(&app, &anna, "mission_cancelled", id).await,
        0
    );
}

async fn concurrent_starts_have_one_winner(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Race").await;
    const N: usize = 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let url = app.url(&action_url(id, "start"));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let client = app.client().clone();
        let barrier = Arc::clone(&barrier);
        let url = url.clone();
        let token = anna.access.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .expect("send start");
            let (status, _, bytes) =
                crate::conformance::read_checked(&Method::POST, &url, response).await;
            (
                status.as_u16(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    let ok: Vec<&(u16, String)> = outcomes.iter().filter(|(s, _)| *s == 200).collect();
    let conflicts: Vec<&(u16, String)> = outcomes.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(ok.len(), 1, "exactly one winner: {outcomes:?}");
    assert_eq!(conflicts.len(), N - 1, "all others 409: {outcomes:?}");
    let winner: Value = serde_json::from_str(&ok[0].1).expect("winner JSON");
    assert_eq!(winner["status"], "in_progress");
    for (_, text) in conflicts {
        let body: Value = serde_json::from_str(text).expect("409 JSON");
        assert_eq!(body, transition_error("start", "in_progress"));
    }
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["status"], "in_progress");
    assert_eq!(
        count_activities(&app, &anna, "mission_started", id).await,
        1,
        "exactly one mission_started"
    );
}

async fn filters_by_status_type_priority(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let mk = |title: &'static str, kind: &'static str, priority: &'static str| json!({"title": title, "type": kind, "priority": priority});
    let p = id_of(&create_mission(&app, &anna, &mk("p", "custom", "low")).await);
    let r = id_of(&create_mission(&app, &anna, &mk("r", "form_submission", "high")).await);
    let z = id_of(&create_mission(&app, &anna, &mk("z", "form_submission", "urgent")).await);
    let c = id_of(&create_mission(&app, &anna, &mk("c", "data_extraction", "medium")).await);
    let x = id_of(&create_mission(&app, &anna, &mk("x", "custom", "high")).await);
    // Ben's would match several filters below.
    let bens = id_of(&create_mission(&app, &ben, &mk("ben", "form_submission", "high")).await);
    act_ok(&app, &ben, bens, "start", "in_progress").await;

    act_ok(&app, &anna, r, "start", "in_progress").await;
    act_ok(&app, &anna, z, "start", "in_progress").await;
    act_ok(&app, &anna, z, "pause", "paused").await;
    act_ok(&app, &anna, c, "cancel", "cancelled").await;

    let set = |ids: &[i64]| ids.iter().copied().collect::<BTreeSet<i64>>();
    let cases: Vec<(&str, BTreeSet<i64>)> = vec![
        ("status=pending", set(&[p, x])),
        ("status=pending,paused", set(&[p, x, z])),
        ("status=in_progress", set(&[r])),
        ("status=cancelled", set(&[c])),
        ("status=completed", set(&[])),
        ("type=form_submission", set(&[r, z])),
        ("type=custom,data_extraction", set(&[p, x, c])),
        ("priority=high,urgent", set(&[r, z, x])),
        ("priority=low", set(&[p])),
        ("priority=high&status=pending", set(&[x])),
        (
            "priority=high,urgent&type=form_submission&status=paused",
            set(&[z]),
        ),
    ];
    for (query, expected) in cases {
        let resp = app
            .get(&format!("{MISSIONS}?{query}"), Some(&anna.access))
            .await;
        assert_page(&resp);
        let got: BTreeSet<i64> = result_ids(&resp.body).into_iter().collect();
        assert_eq!(got, expected, "?{query}\n{}", resp.describe());
        assert_eq!(resp.body["count"], expected.len(), "?{query}");
        for m in results(&resp.body) {
            assert_mission_shape(&m);
        }
    }
}

async fn bad_filter_values_are_rejected(app: TestApp) {
    let anna = app.register("anna").await;
    new_mission(&app, &anna, "one").await;
    for (query, key) in [
        ("status=bogus", "status"),
        ("status=pending,bogus", "status"),
        ("priority=x", "priority"),
        ("type=y", "type"),
        ("ordering=nope", "ordering"),
        ("ordering=-password", "ordering"),
        ("ordering=title,owner__password", "ordering"),
    ] {
        let r = app
            .get(&format!("{MISSIONS}?{query}"), Some(&anna.access))
            .await;
        r.assert_status(400).assert_json();
        assert!(
            r.body.get(key).is_some(),
            "?{query}: error keyed {key:?}\n{}",
            r.describe()
        );
        crate::harness::assert_messages(&r.body[key], &r.describe());
    }
    // A bad value repeated is one message, not one per repeat.
    let repeated = ["bogus"; 500].join(",");
    let r = app
        .get(
            &format!("{MISSIONS}?status=pending,{repeated}&status=bogus"),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400);
    assert_eq!(
        r.body["status"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.describe()
    );
    for page in ["999", "2"] {
        app.get(&format!("{MISSIONS}?page={page}"), Some(&anna.access))
            .await
            .assert_body(404, &json!({"detail": "Invalid page."}));
    }
    // An empty filter value is no filter.
    let r = app
        .get(&format!("{MISSIONS}?status=&search="), Some(&anna.access))
        .await;
    assert_page(&r);
    assert_eq!(r.body["count"], 1);
}

async fn search_matches_title_and_description(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let tax = id_of(
        &create_mission(
            &app,
            &anna,
            &json!({"title": "Tax Return 2025", "type": "custom"}),
        )
        .await,
    );
    let bank = id_of(
        &create_mission(
            &app,
            &anna,
            &json!({"title": "Bank", "type": "custom", "description": "has the TAX forms"}),
        )
        .await,
    );
    let other = id_of(
        &create_mission(
            &app,
            &anna,
            &json!({"title": "Passport", "type": "custom", "description": "renewal"}),
        )
        .await,
    );
    create_mission(&app, &ben, &json!({"title": "Ben's tax", "type": "custom"})).await;

    let set = |ids: &[i64]| ids.iter().copied().collect::<BTreeSet<i64>>();
    for (term, expected) in [
        ("tax", set(&[tax, bank])),
        ("TAX", set(&[tax, bank])),
        ("tAx ReTuRn", set(&[tax])),
        ("renewal", set(&[other])),
        ("PASS", set(&[other])),
        ("forms", set(&[bank])),
        ("zzz", set(&[])),
    ] {
        let r = app
            .get(
                &format!("{MISSIONS}?search={}", enc(term)),
                Some(&anna.access),
            )
            .await;
        assert_page(&r);
        let got: BTreeSet<i64> = result_ids(&r.body).into_iter().collect();
        assert_eq!(got, expected, "search {term:?}\n{}", r.describe());
        assert_eq!(r.body["count"], expected.len());
    }
    // Combined with a filter.
    act_ok(&app, &anna, tax, "start", "in_progress").await;
    let r = app
        .get(
            &format!("{MISSIONS}?search=tax&status=pending"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), vec![bank]);
}

async fn ordering_by_priority_title_and_default(app: TestApp) {
    let anna = app.register("anna").await;
    let mut created = Vec::new();
    for (title, priority) in [
        ("bravo", "medium"),
        ("Delta", "low"),
        ("alpha", "urgent"),
        ("charlie", "high"),
    ] {
        created.push(id_of(
            &create_mission(
                &app,
                &anna,
                &json!({"title": title, "type": "custom", "priority": priority}),
            )
            .await,
        ));
    }
    let priorities = |r: &Resp| -> Vec<String> {
        results(&r.body)
            .iter()
            .map(|m| m["priority"].as_str().expect("priority").to_owned())
            .collect()
    };

    let r = app
        .get(
            &format!("{MISSIONS}?ordering=-priority"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(priorities(&r), ["urgent", "high", "medium", "low"]);
    let r = app
        .get(&format!("{MISSIONS}?ordering=priority"), Some(&anna.access))
        .await;
    assert_page(&r);
    assert_eq!(priorities(&r), ["low", "medium", "high", "urgent"]);

    let r = app
        .get(&format!("{MISSIONS}?ordering=title"), Some(&anna.access))
        .await;
    assert_page(&r);
    let titles = result_titles(&r.body);
    // Case-sensitive or not, a < b < c; only "Delta"'s place may differ.
    let lower: Vec<&String> = titles.iter().filter(|t| t.as_str() != "Delta").collect();
    assert_eq!(lower, ["alpha", "bravo", "charlie"], "{titles:?}");
    assert_eq!(titles.len(), 4);
    let r = app
        .get(&format!("{MISSIONS}?ordering=-title"), Some(&anna.access))
        .await;
    assert_page(&r);
    let mut reversed = result_titles(&r.body);
    reversed.reverse();
    assert_eq!(reversed, titles, "-title reverses title");

    // Default: newest first.
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(result_ids(&r.body), newest_first);
    let r = app
        .get(
            &format!("{MISSIONS}?ordering=created_at"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(result_ids(&r.body), created);

    // Several keys.
    create_mission(
        &app,
        &anna,
        &json!({"title": "aardvark", "type": "custom", "priority": "high"}),
    )
    .await;
    let r = app
        .get(
            &format!("{MISSIONS}?ordering=-priority,title"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    let titles = result_titles(&r.body);
    assert_eq!(&titles[..3], ["alpha", "aardvark", "charlie"], "{titles:?}");

    // A field named again changes nothing, and a long list of repeats
    // (a fuzzer's, 300 items) is answered as fast as the short one: each
    // field counts once.
    let long = ["-priority", "title", "-title", "priority", "created_at"]
        .repeat(60)
        .join(",");
    let started = std::time::Instant::now();
    let r = app
        .get(&format!("{MISSIONS}?ordering={long}"), Some(&anna.access))
        .await;
    assert_page(&r);
    assert_eq!(result_titles(&r.body), titles);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "a long ordering took {:?}",
        started.elapsed()
    );

    // The other documented keys are accepted.
    for key in [
        "updated_at",
        "-progress",
        "deadline",
        "-deadline",
        "progress",
    ] {
        let r = app
            .get(&format!("{MISSIONS}?ordering={key}"), Some(&anna.access))
            .await;
        assert_page(&r);
        assert_eq!(r.body["count"], 5, "?ordering={key}");
    }
}

async fn pagination_keeps_params_and_clamps_size(app: TestApp) {
    let anna = app.register("anna").await;
    let mut pending = BTreeSet::new();
    for i in 0..5 {
        pending.insert(new_mission(&app, &anna, &format!("pending {i}")).await);
    }
    let started = new_mission(&app, &anna, "started").await;
    act_ok(&app, &anna, started, "start", "in_progress").await;

    let r = app
        .get(
            &format!("{MISSIONS}?status=pending&page_size=2"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(r.body["count"], 5);
    assert_eq!(r.body["previous"], Value::Null);
    let mut seen = result_ids(&r.body);
    assert_eq!(seen.len(), 2);
    let mut next = r.body["next"].clone();
    let mut pages = 1;
    while let Some(url) = next.as_str() {
        assert!(url.starts_with("http://"), "absolute next: {url}");
        assert!(url.contains("/api/missions/"), "next: {url}");
        assert!(
            url.contains("status=pending"),
            "next keeps the filter: {url}"
        );
        assert!(url.contains("page_size=2"), "next keeps page_size: {url}");
        assert!(
            url.contains(&format!("page={}", pages + 1)),
            "next page: {url}"
        );
        let r = app.get(url, Some(&anna.access)).await;
        assert_page(&r);
        assert_eq!(r.body["count"], 5);
        assert!(r.body["previous"].is_string(), "{}", r.describe());
        seen.extend(result_ids(&r.body));
        next = r.body["next"].clone();
        pages += 1;
        assert!(pages <= 3, "three pages at most");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "no duplicates: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), pending);

    let r = app
        .get(
            &format!("{MISSIONS}?status=pending&page_size=2&page=3"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(results(&r.body).len(), 1);
    assert_eq!(r.body["next"], Value::Null);
    let prev = r.body["previous"].as_str().expect("previous").to_owned();
    assert!(
        prev.contains("status=pending") && prev.contains("page_size=2"),
        "{prev}"
    );

    for page in ["4", "999"] {
        app.get(
            &format!("{MISSIONS}?status=pending&page_size=2&page={page}"),
            Some(&anna.access),
        )
        .await
        .assert_body(404, &json!({"detail": "Invalid page."}));
    }

    // Default page size 20, maximum 100.
    for i in 0..(101 - 6) {
        new_mission(&app, &anna, &format!("bulk {i}")).await;
    }
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    assert_eq!(r.body["count"], 101);
    assert_eq!(results(&r.body).len(), 20, "default page size 20");
    let r = app
        .get(&format!("{MISSIONS}?page_size=1000"), Some(&anna.access))
        .await;
    assert_page(&r);
    assert_eq!(results(&r.body).len(), 100, "page_size clamped to 100");
    assert!(r.body["next"].is_string(), "a second page exists");
    let r = app
        .get(
            &format!("{MISSIONS}?page_size=1000&page=2"),
            Some(&anna.access),
        )
        .await;
    assert_page(&r);
    assert_eq!(results(&r.body).len(), 1);
}

async fn list_items_count_steps(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Counted", "type": "custom", "plan_steps": [
            {"title": "A", "children": [{"title": "A1"}, {"title": "A2"}]},
            {"title": "B"},
        ]}),
    )
    .await;
    let id = id_of(&m);
    let empty = new_mission(&app, &anna, "Empty").await;
    let d = mission_detail(&app, &anna, id).await;
    let roots = d["plan_steps"].as_array().expect("plan_steps").clone();
    let a = id_of(&find_step(&roots, "A"));
    let a1 = id_of(&find_step(&roots, "A1"));

    // Add a grandchild and a root via the steps endpoint.
    let r = app
        .post_json(
            &steps_url(id),
            &json!({"title": "A1x", "parent": a1}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    let a1x = id_of(&r.body);
    app.post_json(&steps_url(id), &json!({"title": "C"}), Some(&anna.access))
        .await
        .assert_status(201);
    for step in [a1x, id_of(&find_step(&roots, "B"))] {
        app.patch_json(
            &step_url(id, step),
            &json!({"status": "completed"}),
            Some(&anna.access),
        )
        .await
        .assert_status(200);
    }

    let r = app.get(MISSIONS, Some(&anna.access)).await;
    assert_page(&r);
    let item = results(&r.body)
        .into_iter()
        .find(|m| m["id"] == id)
        .expect("listed");
    assert_mission_shape(&item);
    assert_eq!(item["steps_total"], 6, "{item}");
    assert_eq!(item["steps_completed"], 2, "{item}");
    assert_eq!(item["document_count"], 0);
    // Leaves: A1x (done), A2, B (done), C → 2 of 4.
    assert_eq!(item["progress"], 50, "{item}");
    let e = results(&r.body)
        .into_iter()
        .find(|m| m["id"] == empty)
        .expect("listed");
    assert_eq!(e["steps_total"], 0);
    assert_eq!(e["steps_completed"], 0);

    // The detail agrees, and so after a delete.
    app.delete(&step_url(id, a), Some(&anna.access))
        .await
        .assert_status(204);
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["steps_total"], 2, "{d}");
    assert_eq!(d["steps_completed"], 1);
    assert_eq!(d["progress"], 50);
    let r = app.get(MISSIONS, Some(&anna.access)).await;
    let item = results(&r.body)
        .into_iter()
        .find(|m| m["id"] == id)
        .expect("listed");
    assert_eq!(item["steps_total"], 2);
}

async fn other_users_mission_is_not_found_and_unchanged(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Anna's", "type": "custom", "plan_steps": [{"title": "s", "children": [{"title": "c"}]}]}),
    )
    .await;
    let id = id_of(&m);
    let paused = mission_in(&app, &anna, "paused").await;
    let before = mission_detail(&app, &anna, id).await;
    let before_paused = mission_detail(&app, &anna, paused).await;
    let step = id_of(&before["plan_steps"][0]);
    let child = id_of(&before["plan_steps"][0]["children"][0]);
    let tok = Some(ben.access.as_str());

    let mut responses = vec![
        app.get(&mission_url(id), tok).await,
        app.patch_json(&mission_url(id), &json!({"title": "Ben's now"}), tok)
            .await,
        app.put_json(
            &mission_url(id),
            &json!({"title": "Ben's now", "type": "custom"}),
            tok,
        )
        .await,
        app.delete(&mission_url(id), tok).await,
        app.get(&steps_url(id), tok).await,
        app.post_json(&steps_url(id), &json!({"title": "intruder"}), tok)
            .await,
        app.get(&step_url(id, step), tok).await,
        app.patch_json(
            &step_url(id, step),
            &json!({"title": "x", "status": "completed"}),
            tok,
        )
        .await,
        app.delete(&step_url(id, child), tok).await,
        app.delete(&step_url(id, step), tok).await,
        app.delete(&mission_url(paused), tok).await,
    ];
    for action in ["start", "pause", "resume", "complete", "cancel"] {
        responses.push(act(&app, &ben, id, action).await);
        responses.push(act(&app, &ben, paused, action).await);
    }
    for r in &responses {
        r.assert_not_found();
    }
    // Ben cannot attach a step of his own mission to Anna's step either.
    let bens = new_mission(&app, &ben, "Ben's").await;
    let r = app
        .post_json(
            &steps_url(bens),
            &json!({"title": "x", "parent": step}),
            tok,
        )
        .await;
    r.assert_field_errors(&["parent"]);

    assert_eq!(mission_detail(&app, &anna, id).await, before, "unchanged");
    assert_eq!(mission_detail(&app, &anna, paused).await, before_paused);
    let r = app.get(MISSIONS, Some(&ben.access)).await;
    assert_eq!(result_ids(&r.body), vec![bens]);
    // Nothing but the creation was recorded about Anna's mission.
    let anna_acts = activities(&app, &anna, &format!("mission={id}")).await;
    assert!(
        anna_acts
            .iter()
            .all(|a| a["type"] == "mission_created" || a["type"] == "step_created"),
        "{anna_acts:?}"
    );
    assert_eq!(
        count_activities(&app, &anna, "mission_created", id).await,
        1
    );
    // Ben filtering on Anna's mission sees nothing (an empty page, or a 400).
    let r = app
        .get(&format!("{ACTIVITIES}?mission={id}"), Some(&ben.access))
        .await;
    r.assert_not_5xx().assert_json();
    if r.code() == 200 {
        assert_eq!(results(&r.body), Vec::<Value>::new(), "{}", r.describe());
    } else {
        r.assert_field_errors(&["mission"]);
    }
}
