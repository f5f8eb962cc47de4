//! Values the database cannot hold are 400, never 500 (issue 12, item 4):
//! timestamps from clients hold years 1–9999, round-trip exactly at the
//! edges, and order correctly on both databases (SQLite compares them as
//! text).

use serde_json::{Value, json};

use crate::harness::TestApp;
use crate::missions::enc;

const MISSIONS: &str = "/api/missions/";
const ACTIVITIES: &str = "/api/activities/";

const OUT_OF_RANGE: &[&str] = &[
    "-5000-01-01T00:00:00Z",
    "-5000-01-01",
    "0000-01-01T00:00:00Z",
    "0000-06-15",
    "+10000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "10000-01-01",
    "+10000-01-01T00:00:00",
    // In range as written, outside once in UTC.
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:30:00-01:00",
];

backend_tests!(
    out_of_range_deadlines_are_400,
    extreme_deadlines_round_trip_and_order,
    activity_filters_take_extremes_and_refuse_out_of_range,
);

async fn out_of_range_deadlines_are_400(app: TestApp) {
    let anna = app.register("anna").await;
    let created = app
        .post_json(
            MISSIONS,
            &json!({"title": "kept", "type": "custom", "deadline": "2030-01-01T00:00:00Z"}),
            Some(&anna.access),
        )
        .await;
    created.assert_status(201);
    let detail = format!("{MISSIONS}{}/", created.body["id"]);
    for deadline in OUT_OF_RANGE {
        app.post_json(
            MISSIONS,
            &json!({"title": "t", "type": "custom", "deadline": deadline}),
            Some(&anna.access),
        )
        .await
        .assert_field_errors(&["deadline"]);
        app.patch_json(&detail, &json!({"deadline": deadline}), Some(&anna.access))
            .await
            .assert_field_errors(&["deadline"]);
        app.put_json(
            &detail,
            &json!({"title": "t", "type": "custom", "deadline": deadline}),
            Some(&anna.access),
        )
        .await
        .assert_field_errors(&["deadline"]);
    }
    // Nothing was created or changed by the refused requests.
    let list = app.get(MISSIONS, Some(&anna.access)).await;
    list.assert_status(200);
    assert_eq!(list.body["count"], 1, "{}", list.describe());
    let kept = app.get(&detail, Some(&anna.access)).await;
    assert_eq!(kept.body["deadline"], "2030-01-01T00:00:00.000000Z");
}

async fn extreme_deadlines_round_trip_and_order(app: TestApp) {
    let anna = app.register("anna").await;
    // (sent, as the API shows it), in the order the instants come.
    let ordered = [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("0001-01-01T00:00:00.000001Z", "0001-01-01T00:00:00.000001Z"),
        ("0999-12-31T23:59:59Z", "0999-12-31T23:59:59.000000Z"),
        ("1000-01-01", "1000-01-01T00:00:00.000000Z"),
        ("2026-06-01T12:00:00Z", "2026-06-01T12:00:00.000000Z"),
        ("2026-06-01T12:00:00.05Z", "2026-06-01T12:00:00.050000Z"),
        ("2026-06-01T12:00:00.1Z", "2026-06-01T12:00:00.100000Z"),
        ("2026-06-01T12:00:00.123Z", "2026-06-01T12:00:00.123000Z"),
        ("2026-06-01T12:00:00.1234Z", "2026-06-01T12:00:00.123400Z"),
        ("2026-06-01T14:00:00.5+02:00", "2026-06-01T12:00:00.500000Z"),
        (
            "2026-06-01T12:00:00.9999999Z",
            "2026-06-01T12:00:00.999999Z",
        ),
        ("2026-06-01T12:00:01Z", "2026-06-01T12:00:01.000000Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59.000000Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ];
    // Created in a shuffled order, so the id order proves nothing.
    let shuffled = [7, 0, 13, 3, 10, 5, 12, 1, 9, 4, 11, 2, 8, 6];
    let mut ids = vec![0i64; ordered.len()];
    for index in shuffled {
        let (sent, shown) = ordered[index];
        let r = app
            .post_json(
                MISSIONS,
                &json!({"title": format!("m{index}"), "type": "custom", "deadline": sent}),
                Some(&anna.access),
            )
            .await;
        r.assert_status(201);
        assert_eq!(r.body["deadline"], shown, "{sent}: {}", r.describe());
        ids[index] = r.body["id"].as_i64().expect("id");
        let detail = app
            .get(&format!("{MISSIONS}{}/", ids[index]), Some(&anna.access))
            .await;
        assert_eq!(detail.body["deadline"], shown, "{sent} read back");
    }
    let listed = |body: &Value| -> Vec<i64> {
        body["results"]
            .as_array()
            .map(|items| items.iter().filter_map(|m| m["id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let ascending = app
        .get(
            &format!("{MISSIONS}?ordering=deadline&page_size=100"),
            Some(&anna.access),
        )
        .await;
    ascending.assert_status(200);
    assert_eq!(listed(&ascending.body), ids, "{}", ascending.describe());
    let descending = app
        .get(
            &format!("{MISSIONS}?ordering=-deadline&page_size=100"),
            Some(&anna.access),
        )
        .await;
    descending.assert_status(200);
    let mut reversed = ids.clone();
    reversed.reverse();
    assert_eq!(
        listed(&descending.body),
        reversed,
        "{}",
        descending.describe()
    );

    // A PATCH to an edge value round-trips too.
    let r = app
        .patch_json(
            &format!("{MISSIONS}{}/", ids[4]),
            &json!({"deadline": "9999-12-31T23:59:59.999999Z"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["deadline"], "9999-12-31T23:59:59.999999Z");
}

async fn activity_filters_take_extremes_and_refuse_out_of_range(app: TestApp) {
    let anna = app.register("anna").await;
    let r = app
        .post_json(
            ACTIVITIES,
            &json!({"type": "note", "message": "hello"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    let count = |query: String| {
        let app = &app;
        let token = anna.access.clone();
        async move {
            let r = app
                .get(&format!("{ACTIVITIES}?{query}"), Some(&token))
                .await;
            r.assert_status(200);
            r.body["count"].as_u64().expect("count")
        }
    };
    let all = count(String::new()).await;
    assert!(all >= 2, "registration and the note");
    let first = "0001-01-01T00:00:00Z";
    let last = "9999-12-31T23:59:59.999999Z";
    assert_eq!(count(format!("since={}", enc(first))).await, all);
    assert_eq!(count(format!("until={}", enc(last))).await, all);
    assert_eq!(
        count(format!("since={}&until={}", enc(first), enc(last))).await,
        all
    );
    assert_eq!(count(format!("since={}", enc(last))).await, 0);
    assert_eq!(count(format!("until={}", enc(first))).await, 0);
    for value in OUT_OF_RANGE {
        for key in ["since", "until"] {
            let r = app
                .get(
                    &format!("{ACTIVITIES}?{key}={}", enc(value)),
                    Some(&anna.access),
                )
                .await;
            r.assert_status(400).assert_json();
            assert!(
                r.body.get(key).is_some(),
                "?{key}={value}: error keyed {key}\n{}",
                r.describe()
            );
            crate::harness::assert_messages(&r.body[key], &r.describe());
        }
    }
}
