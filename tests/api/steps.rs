//! `/api/missions/{id}/steps/`: the plan tree, its rules (same mission, no
//! cycles, at most 5 levels), actions, progress and auto-completion.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Registered, TestApp};
use crate::missions::{
    act_ok, activities, assert_sibling_order, assert_step_shape, assert_step_tree,
    count_activities, create_mission, find_step, flatten, id_of, mission_detail, new_mission,
    step_roots, step_url, steps_url, tree_titles,
};

backend_tests!(
    steps_require_own_mission,
    create_returns_step_with_defaults,
    list_is_tree_ordered_by_order,
    omitted_order_appends_last,
    create_validates_title_and_parent,
    parent_must_be_same_mission,
    depth_is_limited_to_five,
    moving_under_own_descendant_is_refused,
    patch_updates_and_moves_steps,
    step_actions_are_validated,
    completing_leaves_moves_progress,
    last_leaf_completes_in_progress_mission,
    delete_removes_subtree_and_recomputes_progress,
    step_activities_are_recorded,
    step_of_other_mission_in_path_is_not_found,
    a_mission_holds_at_most_max_steps,
    step_writes_and_mission_actions_never_deadlock,
);

backend_custom_tests!(the_step_limit_holds_under_concurrent_creates);

/// POSTs a step; asserts 201 and the shape; returns the body.
async fn add_step(app: &TestApp, user: &Registered, mission: i64, body: &Value) -> Value {
    let r = app
        .post_json(&steps_url(mission), body, Some(&user.access))
        .await;
    r.assert_status(201).assert_json();
    assert_step_shape(&r.body);
    assert_eq!(r.body["mission"], mission, "{}", r.describe());
    r.body.clone()
}

/// The steps list of a mission, as roots; every node's shape checked.
async fn tree(app: &TestApp, user: &Registered, mission: i64) -> Vec<Value> {
    let r = app.get(&steps_url(mission), Some(&user.access)).await;
    let roots = step_roots(&r);
    assert_sibling_order(&roots, &r.describe());
    for s in &roots {
        assert_step_tree(s, mission, None);
    }
    roots
}

/// PATCHes a step's status; asserts 200.
async fn set_status(
    app: &TestApp,
    user: &Registered,
    mission: i64,
    step: i64,
    status: &str,
) -> Value {
    let r = app
        .patch_json(
            &step_url(mission, step),
            &json!({"status": status}),
            Some(&user.access),
        )
        .await;
    r.assert_status(200).assert_json();
    assert_step_shape(&r.body);
    assert_eq!(r.body["status"], status, "{}", r.describe());
    r.body.clone()
}

async fn steps_require_own_mission(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let id = new_mission(&app, &anna, "Anna's").await;
    let step = id_of(&add_step(&app, &anna, id, &json!({"title": "s"})).await);
    for r in [
        app.get(&steps_url(id), None).await,
        app.post_json(&steps_url(id), &json!({"title": "x"}), None)
            .await,
        app.patch_json(&step_url(id, step), &json!({"title": "x"}), None)
            .await,
        app.delete(&step_url(id, step), None).await,
    ] {
        r.assert_unauthorized("not_authenticated");
    }
    let tok = Some(ben.access.as_str());
    for r in [
        app.get(&steps_url(id), tok).await,
        app.post_json(&steps_url(id), &json!({"title": "x"}), tok)
            .await,
        app.get(&step_url(id, step), tok).await,
        app.patch_json(&step_url(id, step), &json!({"status": "completed"}), tok)
            .await,
        app.delete(&step_url(id, step), tok).await,
    ] {
        r.assert_not_found();
    }
    // Unknown mission, unknown step.
    app.get(&steps_url(id + 1000), Some(&anna.access))
        .await
        .assert_not_found();
    app.post_json(
        &steps_url(id + 1000),
        &json!({"title": "x"}),
        Some(&anna.access),
    )
    .await
    .assert_not_found();
    app.get(&step_url(id, step + 1000), Some(&anna.access))
        .await
        .assert_not_found();
    let roots = tree(&app, &anna, id).await;
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["title"], "s");
    assert_eq!(roots[0]["status"], "pending");
}

async fn create_returns_step_with_defaults(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "M").await;
    let s = add_step(&app, &anna, id, &json!({"title": "  Gather  "})).await;
    assert_eq!(s["title"], "Gather", "title trimmed");
    assert_eq!(s["description"], "");
    assert_eq!(s["parent"], Value::Null);
    assert_eq!(s["status"], "pending");
    assert_eq!(s["action"], json!({"kind": "manual"}));
    assert_eq!(s["children"], json!([]));
    assert_eq!(s["started_at"], Value::Null);
    assert_eq!(s["completed_at"], Value::Null);

    let child = add_step(
        &app,
        &anna,
        id,
        &json!({"title": "Child", "description": "d", "parent": id_of(&s), "order": 3, "status": "completed", "mission": 999_999}),
    )
    .await;
    assert_eq!(child["parent"], s["id"]);
    assert_eq!(child["description"], "d");
    assert_eq!(child["order"], 3);
    assert_eq!(child["mission"], id, "mission comes from the path");
    assert_eq!(child["status"], "pending", "status is not set by create");

    // GET of one step carries its children.
    let r = app.get(&step_url(id, id_of(&s)), Some(&anna.access)).await;
    r.assert_status(200).assert_json();
    assert_step_shape(&r.body);
    assert_eq!(
        tree_titles(&json!([r.body])),
        json!([{"title": "Gather", "children": [{"title": "Child", "children": []}]}])
    );
    assert_eq!(r.body["children"][0], child);
    // Without the trailing slash too.
    let r = app
        .get(
            &format!("{}{}", steps_url(id), id_of(&child)),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body, child);

    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["steps_total"], 2);
}

async fn list_is_tree_ordered_by_order(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Ordered").await;
    assert_eq!(
        tree(&app, &anna, id).await,
        Vec::<Value>::new(),
        "empty plan"
    );
    let second = add_step(&app, &anna, id, &json!({"title": "second", "order": 10})).await;
    let first = add_step(&app, &anna, id, &json!({"title": "first", "order": 5})).await;
    add_step(&app, &anna, id, &json!({"title": "third", "order": 20})).await;
    add_step(
        &app,
        &anna,
        id,
        &json!({"title": "first.b", "parent": id_of(&first), "order": 2}),
    )
    .await;
    let fa = add_step(
        &app,
        &anna,
        id,
        &json!({"title": "first.a", "parent": id_of(&first), "order": 1}),
    )
    .await;
    add_step(
        &app,
        &anna,
        id,
        &json!({"title": "first.a.i", "parent": id_of(&fa)}),
    )
    .await;
    add_step(
        &app,
        &anna,
        id,
        &json!({"title": "second.a", "parent": id_of(&second), "order": 0}),
    )
    .await;

    let expected = json!([
        {"title": "first", "children": [
            {"title": "first.a", "children": [{"title": "first.a.i", "children": []}]},
            {"title": "first.b", "children": []},
        ]},
        {"title": "second", "children": [{"title": "second.a", "children": []}]},
        {"title": "third", "children": []},
    ]);
    let roots = tree(&app, &anna, id).await;
    assert_eq!(tree_titles(&Value::Array(roots.clone())), expected);
    // The detail view shows the same tree.
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["plan_steps"], Value::Array(roots));
    assert_eq!(d["steps_total"], 7);
}

async fn omitted_order_appends_last(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Append").await;
    let a = add_step(&app, &anna, id, &json!({"title": "a", "order": 7})).await;
    add_step(&app, &anna, id, &json!({"title": "b", "order": 3})).await;
    let c = add_step(&app, &anna, id, &json!({"title": "c"})).await;
    assert!(
        c["order"].as_i64().expect("order") > 7,
        "appended after the highest sibling order: {c}"
    );
    let d = add_step(&app, &anna, id, &json!({"title": "d"})).await;
    assert!(d["order"].as_i64() > c["order"].as_i64(), "{d} after {c}");
    let roots = tree(&app, &anna, id).await;
    let titles: Vec<&str> = roots
        .iter()
        .map(|s| s["title"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(titles, ["b", "a", "c", "d"]);

    // Among children too, independent of the top level.
    let x = add_step(
        &app,
        &anna,
        id,
        &json!({"title": "x", "parent": id_of(&a), "order": 4}),
    )
    .await;
    let y = add_step(&app, &anna, id, &json!({"title": "y", "parent": id_of(&a)})).await;
    assert!(y["order"].as_i64() > x["order"].as_i64(), "{y} after {x}");
    let roots = tree(&app, &anna, id).await;
    assert_eq!(
        tree_titles(&find_step(&roots, "a")["children"]),
        json!([{"title": "x", "children": []}, {"title": "y", "children": []}])
    );
}

async fn create_validates_title_and_parent(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Validate").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "title"),
        (json!({"description": "no title"}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "s".repeat(201)}), "title"),
        (json!({"title": "ok", "parent": 999_999}), "parent"),
        (json!({"title": "ok", "parent": "abc"}), "parent"),
        (json!({"title": "ok", "order": "first"}), "order"),
    ];
    for (body, field) in cases {
        let r = app
            .post_json(&steps_url(id), &body, Some(&anna.access))
            .await;
        r.assert_field_errors(&[field]);
    }
    assert_eq!(tree(&app, &anna, id).await.len(), 0, "nothing created");
    add_step(&app, &anna, id, &json!({"title": "s".repeat(200)})).await;
}

async fn parent_must_be_same_mission(app: TestApp) {
    let anna = app.register("anna").await;
    let m1 = new_mission(&app, &anna, "One").await;
    let m2 = new_mission(&app, &anna, "Two").await;
    let in_m1 = add_step(&app, &anna, m1, &json!({"title": "in one"})).await;
    let in_m2 = add_step(&app, &anna, m2, &json!({"title": "in two"})).await;

    let r = app
        .post_json(
            &steps_url(m2),
            &json!({"title": "cross", "parent": id_of(&in_m1)}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["parent"]);
    // Moving there by PATCH is refused too.
    let r = app
        .patch_json(
            &step_url(m2, id_of(&in_m2)),
            &json!({"parent": id_of(&in_m1)}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["parent"]);
    assert_eq!(
        tree(&app, &anna, m2).await,
        vec![
            app.get(&step_url(m2, id_of(&in_m2)), Some(&anna.access))
                .await
                .body
        ]
    );
    assert_eq!(tree(&app, &anna, m1).await.len(), 1);
    assert_eq!(mission_detail(&app, &anna, m1).await["steps_total"], 1);
    assert_eq!(mission_detail(&app, &anna, m2).await["steps_total"], 1);
}

async fn depth_is_limited_to_five(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Deep").await;
    let mut parent = Value::Null;
    let mut chain = Vec::new();
    for level in 1..=5 {
        let s = add_step(
            &app,
            &anna,
            id,
            &json!({"title": format!("level {level}"), "parent": parent}),
        )
        .await;
        parent = s["id"].clone();
        chain.push(id_of(&s));
    }
    let r = app
        .post_json(
            &steps_url(id),
            &json!({"title": "level 6", "parent": chain[4]}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["parent"]);
    assert_eq!(mission_detail(&app, &anna, id).await["steps_total"], 5);

    // Moving a two-level subtree: under level 3 it ends at level 5 (fine),
    // under level 4 at level 6 (refused).
    let x = add_step(&app, &anna, id, &json!({"title": "x"})).await;
    add_step(
        &app,
        &anna,
        id,
        &json!({"title": "x.1", "parent": id_of(&x)}),
    )
    .await;
    let r = app
        .patch_json(
            &step_url(id, id_of(&x)),
            &json!({"parent": chain[3]}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["parent"]);
    let r = app
        .patch_json(
            &step_url(id, id_of(&x)),
            &json!({"parent": chain[2]}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["parent"], chain[2]);
    let roots = tree(&app, &anna, id).await;
    assert_eq!(roots.len(), 1, "x moved under level 3");
    assert_eq!(find_step(&roots, "x")["parent"], chain[2]);
    assert_eq!(find_step(&roots, "x.1")["parent"], x["id"]);

    // Mission create with plan_steps nested 6 deep is refused as well.
    let mut nested = json!({"title": "l6"});
    for level in (1..=5).rev() {
        nested = json!({"title": format!("l{level}"), "children": [nested]});
    }
    let r = app
        .post_json(
            crate::missions::MISSIONS,
            &json!({"title": "too deep", "type": "custom", "plan_steps": [nested]}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400).assert_json();
    assert!(r.body.get("plan_steps").is_some(), "{}", r.describe());
}

async fn moving_under_own_descendant_is_refused(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Cycles").await;
    let a = add_step(&app, &anna, id, &json!({"title": "a"})).await;
    let b = add_step(&app, &anna, id, &json!({"title": "b", "parent": id_of(&a)})).await;
    let c = add_step(&app, &anna, id, &json!({"title": "c", "parent": id_of(&b)})).await;
    let before = tree(&app, &anna, id).await;
    for (step, parent) in [
        (id_of(&a), id_of(&c)),
        (id_of(&a), id_of(&b)),
        (id_of(&b), id_of(&c)),
        (id_of(&a), id_of(&a)),
        (id_of(&c), id_of(&c)),
    ] {
        let r = app
            .patch_json(
                &step_url(id, step),
                &json!({"parent": parent}),
                Some(&anna.access),
            )
            .await;
        r.assert_field_errors(&["parent"]);
    }
    assert_eq!(tree(&app, &anna, id).await, before, "tree unchanged");
}

async fn patch_updates_and_moves_steps(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Patch").await;
    let a = add_step(&app, &anna, id, &json!({"title": "a", "order": 1})).await;
    let b = add_step(&app, &anna, id, &json!({"title": "b", "order": 2})).await;
    let c = add_step(&app, &anna, id, &json!({"title": "c", "parent": id_of(&a)})).await;

    // Partial: only the title.
    let r = app
        .patch_json(
            &step_url(id, id_of(&b)),
            &json!({"title": " B! "}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200).assert_json();
    assert_step_shape(&r.body);
    assert_eq!(r.body["title"], "B!");
    for key in [
        "id",
        "mission",
        "parent",
        "description",
        "order",
        "status",
        "action",
        "created_at",
    ] {
        assert_eq!(r.body[key], b[key], "{key} unchanged");
    }
    // Reorder: b before a.
    app.patch_json(
        &step_url(id, id_of(&b)),
        &json!({"order": 0, "description": "now first"}),
        Some(&anna.access),
    )
    .await
    .assert_status(200);
    let roots = tree(&app, &anna, id).await;
    let titles: Vec<&str> = roots
        .iter()
        .map(|s| s["title"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(titles, ["B!", "a"]);
    assert_eq!(roots[0]["description"], "now first");
    // Move c to the top level, then b under a.
    let r = app
        .patch_json(
            &step_url(id, id_of(&c)),
            &json!({"parent": null}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["parent"], Value::Null);
    let r = app
        .patch_json(
            &step_url(id, id_of(&b)),
            &json!({"parent": id_of(&a)}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["parent"], a["id"]);
    let roots = tree(&app, &anna, id).await;
    let top: Vec<&str> = roots
        .iter()
        .map(|s| s["title"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(top.len(), 2);
    assert!(top.contains(&"a") && top.contains(&"c"), "{top:?}");
    assert_eq!(
        tree_titles(&find_step(&roots, "a")["children"]),
        json!([{"title": "B!", "children": []}])
    );
    // The single-step view of a shows its new child.
    let r = app.get(&step_url(id, id_of(&a)), Some(&anna.access)).await;
    r.assert_status(200);
    assert_eq!(r.body["children"][0]["id"], b["id"]);

    // Invalid PATCHes change nothing; read-only fields are ignored.
    let before = tree(&app, &anna, id).await;
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"status": "bogus"}), "status"),
        (json!({"order": "x"}), "order"),
        (json!({"parent": 999_999}), "parent"),
    ] {
        app.patch_json(&step_url(id, id_of(&a)), &body, Some(&anna.access))
            .await
            .assert_field_errors(&[field]);
    }
    let r = app
        .patch_json(
            &step_url(id, id_of(&a)),
            &json!({"id": 1, "mission": 999, "created_at": "2000-01-01T00:00:00Z"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["id"], a["id"]);
    assert_eq!(r.body["mission"], id);
    assert_eq!(tree(&app, &anna, id).await.len(), before.len());
    assert_eq!(
        tree_titles(&Value::Array(tree(&app, &anna, id).await)),
        tree_titles(&Value::Array(before))
    );
}

async fn step_actions_are_validated(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Actions").await;
    for action in [
        json!({"kind": "teleport"}),
        json!({"kind": "wait", "seconds": -5}),
        json!({"kind": "wait", "seconds": 0}),
        json!({"kind": "wait", "seconds": 86_401}),
        json!({"kind": "wait", "seconds": "five"}),
        json!({"kind": "wait"}),
        json!({"kind": "fetch_url", "url": "file:///etc/passwd"}),
        json!({"kind": "fetch_url", "url": "javascript:alert(1)"}),
        json!({"kind": "fetch_url", "url": "http://user:pw@example.com/"}),
        json!({"kind": "fetch_url"}),
        json!({"seconds": 5}),
        json!("manual"),
        json!([{"kind": "manual"}]),
        json!(42),
    ] {
        let r = app
            .post_json(
                &steps_url(id),
                &json!({"title": "automated", "action": action}),
                Some(&anna.access),
            )
            .await;
        r.assert_field_errors(&["action"]);
    }
    assert_eq!(tree(&app, &anna, id).await.len(), 0, "nothing created");

    for action in [
        json!({"kind": "wait", "seconds": 5}),
        json!({"kind": "manual"}),
        json!({"kind": "verify_documents"}),
        json!({"kind": "fetch_url", "url": "https://example.com/statement.pdf"}),
    ] {
        let s = add_step(&app, &anna, id, &json!({"title": "ok", "action": action})).await;
        assert_eq!(s["action"], action, "action echoed");
        let r = app.get(&step_url(id, id_of(&s)), Some(&anna.access)).await;
        assert_eq!(r.body["action"], action, "action stored");
    }
    // Nested in a mission create.
    let r = app
        .post_json(
            crate::missions::MISSIONS,
            &json!({"title": "bad action", "type": "custom", "plan_steps": [{"title": "s", "action": {"kind": "teleport"}}]}),
            Some(&anna.access),
        )
        .await;
    if r.code() == 201 {
        // `action` is not among the documented plan_steps keys: ignored.
        let d = mission_detail(&app, &anna, id_of(&r.body)).await;
        assert_eq!(d["plan_steps"][0]["action"], json!({"kind": "manual"}));
    } else {
        r.assert_status(400).assert_json();
    }
}

async fn completing_leaves_moves_progress(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Progress", "type": "custom", "plan_steps": [
            {"title": "A", "children": [{"title": "A1"}, {"title": "A2"}]},
            {"title": "B"},
        ]}),
    )
    .await;
    let id = id_of(&m);
    let roots = tree(&app, &anna, id).await;
    let a1 = id_of(&find_step(&roots, "A1"));
    let a2 = id_of(&find_step(&roots, "A2"));
    let b = id_of(&find_step(&roots, "B"));

    let s = set_status(&app, &anna, id, a1, "completed").await;
    assert!(s["completed_at"].is_string(), "completed_at set: {s}");
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 33, "1 of 3 leaves");
    assert_eq!(d["steps_completed"], 1);
    assert_eq!(d["steps_total"], 4);

    set_status(&app, &anna, id, a2, "completed").await;
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 66, "2 of 3 leaves");
    assert_eq!(d["status"], "pending");

    // Setting the same status again is a no-op.
    set_status(&app, &anna, id, a2, "completed").await;
    assert_eq!(mission_detail(&app, &anna, id).await["progress"], 66);

    // A pending mission does not complete by itself.
    set_status(&app, &anna, id, b, "skipped").await;
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 100, "skipped counts as done");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["completed_at"], Value::Null);

    // The list item follows too.
    let r = app.get(crate::missions::MISSIONS, Some(&anna.access)).await;
    assert_eq!(r.body["results"][0]["progress"], 100);
}

async fn last_leaf_completes_in_progress_mission(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Auto", "type": "custom", "plan_steps": [
            {"title": "P", "children": [{"title": "L1"}]},
            {"title": "L2"},
        ]}),
    )
    .await;
    let id = id_of(&m);
    let roots = tree(&app, &anna, id).await;
    let l1 = id_of(&find_step(&roots, "L1"));
    let l2 = id_of(&find_step(&roots, "L2"));
    act_ok(&app, &anna, id, "start", "in_progress").await;

    set_status(&app, &anna, id, l1, "in_progress").await;
    set_status(&app, &anna, id, l1, "completed").await;
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["status"], "in_progress");
    assert_eq!(d["progress"], 50);
    assert_eq!(d["completed_at"], Value::Null);

    set_status(&app, &anna, id, l2, "completed").await;
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["status"], "completed", "completed by itself: {d}");
    assert_eq!(d["progress"], 100);
    assert!(d["completed_at"].is_string(), "{d}");
    assert_eq!(
        count_activities(&app, &anna, "mission_completed", id).await,
        1
    );
    // It is really completed: completing again is refused.
    crate::missions::act(&app, &anna, id, "complete")
        .await
        .assert_body(
            409,
            &crate::missions::transition_error("complete", "completed"),
        );
}

async fn delete_removes_subtree_and_recomputes_progress(app: TestApp) {
    let anna = app.register("anna").await;
    let m = create_mission(
        &app,
        &anna,
        &json!({"title": "Delete", "type": "custom", "plan_steps": [
            {"title": "A", "children": [{"title": "A1", "children": [{"title": "A1a"}]}, {"title": "A2"}]},
            {"title": "B"},
            {"title": "C"},
        ]}),
    )
    .await;
    let id = id_of(&m);
    let roots = tree(&app, &anna, id).await;
    let all: Vec<i64> = flatten(&roots).iter().map(id_of).collect();
    assert_eq!(all.len(), 6);
    let a = find_step(&roots, "A");
    set_status(
        &app,
        &anna,
        id,
        id_of(&find_step(&roots, "A1a")),
        "completed",
    )
    .await;
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 25, "1 of 4 leaves (A1a, A2, B, C)");

    let r = app
        .delete(&step_url(id, id_of(&a)), Some(&anna.access))
        .await;
    r.assert_status(204);
    assert!(r.text.is_empty(), "{}", r.describe());
    for title in ["A", "A1", "A1a", "A2"] {
        app.get(
            &step_url(id, id_of(&find_step(&roots, title))),
            Some(&anna.access),
        )
        .await
        .assert_not_found();
    }
    let left = tree(&app, &anna, id).await;
    assert_eq!(
        tree_titles(&Value::Array(left)),
        json!([{"title": "B", "children": []}, {"title": "C", "children": []}])
    );
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 0, "0 of 2 leaves");
    assert_eq!(d["steps_total"], 2);
    assert_eq!(d["steps_completed"], 0);

    // Deleting a leaf; deleting again is a 404.
    let b = id_of(&find_step(&roots, "B"));
    set_status(&app, &anna, id, id_of(&find_step(&roots, "C")), "completed").await;
    assert_eq!(mission_detail(&app, &anna, id).await["progress"], 50);
    app.delete(&step_url(id, b), Some(&anna.access))
        .await
        .assert_status(204);
    app.delete(&step_url(id, b), Some(&anna.access))
        .await
        .assert_not_found();
    let d = mission_detail(&app, &anna, id).await;
    assert_eq!(d["progress"], 100, "1 of 1 leaf");
    assert_eq!(d["steps_total"], 1);
}

async fn step_activities_are_recorded(app: TestApp) {
    let anna = app.register("anna").await;
    let id = new_mission(&app, &anna, "Audit").await;
    let a = add_step(&app, &anna, id, &json!({"title": "a"})).await;
    let b = add_step(&app, &anna, id, &json!({"title": "b", "parent": id_of(&a)})).await;
    add_step(&app, &anna, id, &json!({"title": "c"})).await;
    assert_eq!(count_activities(&app, &anna, "step_created", id).await, 3);
    assert_eq!(count_activities(&app, &anna, "step_updated", id).await, 0);

    app.patch_json(
        &step_url(id, id_of(&b)),
        &json!({"title": "bb"}),
        Some(&anna.access),
    )
    .await
    .assert_status(200);
    set_status(&app, &anna, id, id_of(&b), "completed").await;
    let updated = count_activities(&app, &anna, "step_updated", id).await;
    assert!(updated >= 1, "step_updated recorded ({updated})");
    // A refused change records nothing.
    app.patch_json(
        &step_url(id, id_of(&a)),
        &json!({"parent": id_of(&b)}),
        Some(&anna.access),
    )
    .await
    .assert_status(400);
    assert_eq!(
        count_activities(&app, &anna, "step_updated", id).await,
        updated
    );

    app.delete(&step_url(id, id_of(&a)), Some(&anna.access))
        .await
        .assert_status(204);
    let deleted = count_activities(&app, &anna, "step_deleted", id).await;
    assert!(deleted >= 1, "step_deleted recorded");
    for a in activities(&app, &anna, &format!("mission={id}")).await {
        assert_eq!(a["user"], anna.id, "{a}");
    }
}

async fn step_of_other_mission_in_path_is_not_found(app: TestApp) {
    let anna = app.register("anna").await;
    let m1 = new_mission(&app, &anna, "One").await;
    let m2 = new_mission(&app, &anna, "Two").await;
    let s = add_step(&app, &anna, m1, &json!({"title": "of one"})).await;
    let wrong = step_url(m2, id_of(&s));
    app.get(&wrong, Some(&anna.access)).await.assert_not_found();
    app.patch_json(&wrong, &json!({"status": "completed"}), Some(&anna.access))
        .await
        .assert_not_found();
    app.delete(&wrong, Some(&anna.access))
        .await
        .assert_not_found();
    app.request(
        Method::PUT,
        &wrong,
        Some(&anna.access),
        Some(&json!({"title": "x"})),
    )
    .await
    .assert_not_5xx();
    let r = app.get(&step_url(m1, id_of(&s)), Some(&anna.access)).await;
    r.assert_status(200);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["title"], "of one");
}

// ---------------------------------------------------------------------------
// Plan size (`missions.max_steps`) and lock order (issue 11)
// ---------------------------------------------------------------------------

const LIMIT_MESSAGE: &str = "A mission can have at most 1000 plan steps.";

fn flat_plan(steps: usize) -> Value {
    Value::Array(
        (0..steps)
            .map(|i| json!({"title": format!("step {i}")}))
            .collect(),
    )
}

async fn a_mission_holds_at_most_max_steps(app: TestApp) {
    let anna = app.register("anna").await;

    // Past the limit in one nested create: 400 on `plan_steps`, nothing kept.
    let r = app
        .post_json(
            crate::missions::MISSIONS,
            &json!({"title": "too big", "type": "custom", "plan_steps": flat_plan(1001)}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400);
    assert_eq!(
        r.body,
        json!({"plan_steps": [LIMIT_MESSAGE]}),
        "{}",
        r.describe()
    );
    // Nested steps count too: 1 + 1000 children.
    let nested = json!([{"title": "root", "children": flat_plan(1000)}]);
    let r = app
        .post_json(
            crate::missions::MISSIONS,
            &json!({"title": "too deep", "type": "custom", "plan_steps": nested}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400);
    assert_eq!(
        r.body,
        json!({"plan_steps": [LIMIT_MESSAGE]}),
        "{}",
        r.describe()
    );
    let r = app.get(crate::missions::MISSIONS, Some(&anna.access)).await;
    r.assert_status(200);
    assert_eq!(r.body["count"], 0, "a refused plan leaves no mission");

    // At the limit: accepted.
    let mission = create_mission(
        &app,
        &anna,
        &json!({"title": "full", "type": "custom", "plan_steps": flat_plan(1000)}),
    )
    .await;
    let id = id_of(&mission);
    assert_eq!(mission["steps_total"], 1000);
    assert_eq!(flatten(&tree(&app, &anna, id).await).len(), 1000);

    // One more, at any level: 400 on `non_field_errors`, nothing added.
    let first = id_of(&flatten(&tree(&app, &anna, id).await)[0]);
    for body in [
        json!({"title": "one more"}),
        json!({"title": "child", "parent": first}),
    ] {
        let r = app
            .post_json(&steps_url(id), &body, Some(&anna.access))
            .await;
        r.assert_status(400);
        assert_eq!(
            r.body,
            json!({"non_field_errors": [LIMIT_MESSAGE]}),
            "{}",
            r.describe()
        );
    }
    assert_eq!(mission_detail(&app, &anna, id).await["steps_total"], 1000);

    // Room again after a delete: exactly one place.
    let r = app.delete(&step_url(id, first), Some(&anna.access)).await;
    r.assert_status(204);
    add_step(&app, &anna, id, &json!({"title": "in its place"})).await;
    let r = app
        .post_json(
            &steps_url(id),
            &json!({"title": "no room"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400);
    assert_eq!(mission_detail(&app, &anna, id).await["steps_total"], 1000);
}

/// Many concurrent creates on a mission one short of a small limit: the
/// count is checked under the mission's lock, so exactly one wins.
async fn the_step_limit_holds_under_concurrent_creates(backend: crate::harness::Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__MISSIONS__MAX_STEPS", "5")]).await;
    let anna = app.register("anna").await;
    // At the configured limit and past it, in one create.
    let r = app
        .post_json(
            crate::missions::MISSIONS,
            &json!({"title": "six", "type": "custom", "plan_steps": flat_plan(6)}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(400);
    assert_eq!(
        r.body,
        json!({"plan_steps": ["A mission can have at most 5 plan steps."]})
    );
    for round in 0..3 {
        let id = id_of(
            &create_mission(
                &app,
                &anna,
                &json!({"title": format!("round {round}"), "type": "custom", "plan_steps": flat_plan(3)}),
            )
            .await,
        );
        let answers = futures_util::future::join_all((0..8).map(|i| {
            let (app, anna) = (&app, &anna);
            async move {
                app.post_json(
                    &steps_url(id),
                    &json!({"title": format!("racer {i}")}),
                    Some(&anna.access),
                )
                .await
            }
        }))
        .await;
        let created = answers.iter().filter(|r| r.code() == 201).count();
        for r in &answers {
            assert!(
                r.code() == 201
                    || (r.code() == 400
                        && r.body
                            == json!({"non_field_errors": ["A mission can have at most 5 plan steps."]})),
                "{}",
                r.describe()
            );
        }
        assert_eq!(created, 2, "two places were left for eight racers");
        assert_eq!(flatten(&tree(&app, &anna, id).await).len(), 5);
        assert_eq!(mission_detail(&app, &anna, id).await["steps_total"], 5);
    }
}

/// Step writes (PATCH, create, delete) racing mission actions (pause,
/// resume, complete) on the same mission: both shapes lock the mission
/// first, so PostgreSQL never reports a deadlock (40P01, a 500) and the
/// counts on the mission row match its steps afterwards.
async fn step_writes_and_mission_actions_never_deadlock(app: TestApp) {
    let anna = app.register("anna").await;
    for round in 0..12 {
        let mission = create_mission(
            &app,
            &anna,
            &json!({"title": format!("race {round}"), "type": "custom", "plan_steps": flat_plan(8)}),
        )
        .await;
        let id = id_of(&mission);
        act_ok(&app, &anna, id, "start", "in_progress").await;
        let steps: Vec<i64> = flatten(&tree(&app, &anna, id).await)
            .iter()
            .map(id_of)
            .collect();
        let mut requests: Vec<(Method, String, Option<Value>)> = Vec::new();
        for step in &steps[..4] {
            requests.push((
                Method::PATCH,
                step_url(id, *step),
                Some(json!({"status": "in_progress"})),
            ));
        }
        for step in &steps[4..6] {
            requests.push((Method::DELETE, step_url(id, *step), None));
        }
        for i in 0..2 {
            requests.push((
                Method::POST,
                steps_url(id),
                Some(json!({"title": format!("new {i}")})),
            ));
        }
        for action in ["pause", "resume", "complete"] {
            requests.push((
                Method::POST,
                format!("{}{action}/", crate::missions::mission_url(id)),
                Some(json!({})),
            ));
        }
        // Interleave the two shapes.
        let order = [0, 8, 4, 1, 9, 6, 2, 10, 5, 3, 7];
        let answers = futures_util::future::join_all(order.iter().map(|&i| {
            let (method, url, body) = requests[i].clone();
            let (app, anna) = (&app, &anna);
            async move {
                let mut request = app
                    .client()
                    .request(method.clone(), app.url(&url))
                    .bearer_auth(&anna.access);
                if let Some(body) = &body {
                    request = request.json(body);
                }
                app.send(&method, &app.url(&url), request).await
            }
        }))
        .await;
        for r in &answers {
            assert!(
                matches!(r.code(), 200 | 201 | 204 | 409),
                "round {round}: {}",
                r.describe()
            );
        }
        // The counts kept on the mission row match the steps.
        let detail = mission_detail(&app, &anna, id).await;
        let all = flatten(&tree(&app, &anna, id).await);
        let completed = all.iter().filter(|s| s["status"] == "completed").count();
        assert_eq!(detail["steps_total"], all.len(), "round {round}: {detail}");
        assert_eq!(
            detail["steps_completed"], completed,
            "round {round}: {detail}"
        );
    }
    let log = app.server_log();
    assert!(!log.contains("deadlock"), "a deadlock was reported:\n{log}");
}
