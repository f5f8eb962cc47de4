//! `GET /metrics` as Prometheus reads it (issue 16): the text format parsed
//! by a Prometheus parser, requests labelled by route template (never by a
//! raw path), and a 404 for clients outside `server.metrics_allow`.

use prometheus_parse::{Sample, Scrape, Value};

use crate::harness::{Backend, TestApp};

backend_tests!(metrics_are_prometheus_text_labelled_by_route,);

backend_custom_tests!(metrics_are_refused_outside_metrics_allow,);

/// The parsed scrape, and its text.
async fn scrape(app: &TestApp) -> (Scrape, String) {
    let response = app
        .client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let body = response.text().await.expect("the text");
    let parsed =
        Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text");
    (parsed, body)
}

fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape.samples.iter().find(|sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
    })
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
        other => panic!("{} is not a number: {other:?}", sample.metric),
    }
}

async fn metrics_are_prometheus_text_labelled_by_route(app: TestApp) {
    let anna = app.register("anna").await;
    for _ in 0..2 {
        app.get("/api/users/me/", Some(&anna.access))
            .await
            .assert_status(200);
    }
    app.get("/api/missions/424242/", Some(&anna.access))
        .await
        .assert_status(404);
    app.get("/api/nope-9876/", None).await.assert_status(404);
    // Invented methods share one label: a client cannot grow the label sets.
    for invented in ["FOO1", "FOO2"] {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).expect("a method");
        app.client()
            .request(method, app.url("/api/nope-9876/"))
            .send()
            .await
            .expect("an answer");
    }
    let pdf: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    crate::documents::upload(&app, &anna, "w2.pdf", "application/pdf", pdf).await;

    let (scrape, text) = scrape(&app).await;
    let me = [
        ("method", "GET"),
        ("route", "/api/users/me/"),
        ("status", "200"),
    ];
    let requests = find(&scrape, "autodocs_http_requests_total", &me).unwrap_or_else(|| {
        panic!(
            "no request counter for /api/users/me/: {:#?}",
            scrape.samples
        )
    });
    assert!(number(requests) >= 2.0);
    // prometheus-parse 0.2 ends a label value at its first `}`, so the
    // template's braces are looked for in the text itself.
    assert!(
        text.contains(r#"route="/api/missions/{id}/",status="404"}"#),
        "a templated route: {text}"
    );
    assert!(
        find(
            &scrape,
            "autodocs_http_requests_total",
            &[("route", "unmatched")]
        )
        .is_some(),
        "an unknown path is counted as unmatched"
    );
    assert!(
        !scrape.samples.iter().any(|sample| sample
            .labels
            .get("route")
            .is_some_and(|route| route.contains("424242") || route.contains("nope-9876"))),
        "raw paths never become labels"
    );
    assert!(
        find(
            &scrape,
            "autodocs_http_requests_total",
            &[("method", "other")]
        )
        .is_some(),
        "invented methods are counted as other"
    );
    assert!(
        !text.contains("FOO1") && !text.contains("FOO2"),
        "invented methods never become labels: {text}"
    );
    let latency =
        find(&scrape, "autodocs_http_request_duration_seconds", &me).expect("a latency histogram");
    match &latency.value {
        Value::Histogram(buckets) => assert!(buckets.len() >= 10, "{buckets:?}"),
        other => panic!("not a histogram: {other:?}"),
    }
    let uploaded = find(&scrape, "autodocs_upload_bytes_total", &[]).expect("upload bytes");
    assert!(number(uploaded) >= pdf.len() as f64);
    for status in ["queued", "running", "done", "dead"] {
        assert!(
            find(&scrape, "autodocs_jobs", &[("status", status)]).is_some(),
            "jobs {status}"
        );
    }
    for gauge in [
        "autodocs_jobs_oldest_due_age_seconds",
        "autodocs_db_pool_connections_in_use",
        "autodocs_db_pool_connections_idle",
        "autodocs_db_lane_queue_length",
        "autodocs_websockets_open",
    ] {
        let sample = find(&scrape, gauge, &[]).unwrap_or_else(|| panic!("no {gauge}"));
        assert!(number(sample) >= 0.0);
    }
    let idle = number(find(&scrape, "autodocs_db_pool_connections_idle", &[]).expect("idle"));
    let in_use = number(find(&scrape, "autodocs_db_pool_connections_in_use", &[]).expect("used"));
    assert!(idle + in_use >= 1.0, "the pool holds a connection");
}

/// A client outside `server.metrics_allow` reads the API's 404.
async fn metrics_are_refused_outside_metrics_allow(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__SERVER__METRICS_ALLOW", "10.0.0.0/8")],
    )
    .await;
    let r = app.get("/metrics", None).await;
    r.assert_not_found();
    assert!(!r.describe().contains("autodocs_http_requests_total"));
}
