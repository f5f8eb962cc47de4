//! The process's metrics for Prometheus, at `GET /metrics` on the API port:
//! requests by method, route template and status (a counter and a latency
//! histogram), the database pool and lane, the job queue, open WebSockets
//! and uploaded bytes. Only clients in `server.metrics_allow` are answered;
//! anyone else reads the API's 404, so the address tells strangers nothing.

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Latency buckets, in seconds: from a cached read to a slow upload.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The route label of a request no route matched: one value, however many
/// paths clients invent.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A method as a label: the standard ones by name, any other (a client may
/// send `FOO1`, `FOO2`, …) as `other`, so no client can grow the label sets.
fn method_label(method: &str) -> &str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// Every metric of this process.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    upload_bytes: IntCounter,
    pool_in_use: IntGauge,
    pool_idle: IntGauge,
    lane_queued: IntGauge,
    jobs: IntGaugeVec,
    oldest_due: Gauge,
    websockets: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new("autodocs_http_requests_total", "HTTP requests answered."),
            labels,
        )
        .expect("a valid counter");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "autodocs_http_request_duration_seconds",
                "Time from a request's arrival to its response.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            labels,
        )
        .expect("a valid histogram");
        let upload_bytes = IntCounter::new(
            "autodocs_upload_bytes_total",
            "Bytes of uploaded files received.",
        )
        .expect("a valid counter");
        let pool_in_use = IntGauge::new(
            "autodocs_db_pool_connections_in_use",
            "Database connections lent out.",
        )
        .expect("a valid gauge");
        let pool_idle = IntGauge::new(
            "autodocs_db_pool_connections_idle",
            "Database connections open and idle.",
        )
        .expect("a valid gauge");
        let lane_queued = IntGauge::new(
            "autodocs_db_lane_queue_length",
            "Database calls waiting for a lane thread.",
        )
        .expect("a valid gauge");
        let jobs = IntGaugeVec::new(
            Opts::new("autodocs_jobs", "Background jobs in the queue, by status."),
            &["status"],
        )
        .expect("a valid gauge");
        let oldest_due = Gauge::new(
            "autodocs_jobs_oldest_due_age_seconds",
            "How long the longest-waiting due job has waited (0: none waits).",
        )
        .expect("a valid gauge");
        let websockets = IntGauge::new(
            "autodocs_websockets_open",
            "WebSockets open on this process.",
        )
        .expect("a valid gauge");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(upload_bytes.clone()),
            Box::new(pool_in_use.clone()),
            Box::new(pool_idle.clone()),
            Box::new(lane_queued.clone()),
            Box::new(jobs.clone()),
            Box::new(oldest_due.clone()),
            Box::new(websockets.clone()),
        ] {
            registry.register(collector).expect("distinct metric names");
        }
        Self {
            registry,
            requests,
            latency,
            upload_bytes,
            pool_in_use,
            pool_idle,
            lane_queued,
            jobs,
            oldest_due,
            websockets,
        }
    }

    /// Counts an answered request under its route template.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method_label(method), route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// Counts bytes of an upload as they arrive.
    pub fn add_upload_bytes(&self, bytes: usize) {
        self.upload_bytes.inc_by(bytes as u64);
    }

    /// The text exposition format.
    fn render(&self) -> Result<String, ApiError> {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .map_err(|error| ApiError::Internal(error.to_string()))?;
        String::from_utf8(buffer).map_err(|error| ApiError::Internal(error.to_string()))
    }
}

/// `GET /metrics`: the gauges are read now (the queue and pool on the
/// lane), then everything is rendered in Prometheus's text format.
pub async fn scrape(request: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let allowed = request
        .peer_addr()
        .is_some_and(|peer| state.metrics_allow.contains(peer.ip()));
    if !allowed {
        return Err(ApiError::NotFound);
    }
    let metrics = metrics();
    let services = state.services.clone();
    let health = state.health.clone();
    let (queue, pool) = state
        .lane
        .run(move || (services.engine().queue_stats(), health.pool_use()))
        .await?;
    let queue = queue?;
    for (status, count) in &queue.counts {
        metrics
            .jobs
            .with_label_values(&[status.as_str()])
            .set(i64::try_from(*count).unwrap_or(i64::MAX));
    }
    let now = state.services.now();
    let waited = queue
        .next_due
        .map(|due| (now - due).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics.oldest_due.set(waited);
    if let Some(pool) = pool {
        metrics.pool_in_use.set(i64::from(pool.in_use));
        metrics.pool_idle.set(i64::from(pool.idle));
    }
    metrics
        .lane_queued
        .set(i64::try_from(state.lane.queued()).unwrap_or(i64::MAX));
    metrics
        .websockets
        .set(i64::try_from(state.hub.open_sockets()).unwrap_or(i64::MAX));
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(metrics.render()?))
}
