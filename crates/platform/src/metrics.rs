//! Prometheus metrics: one process-wide recorder (the `metrics` facade with its Prometheus
//! exporter), rendered by `GET /metrics` on the service's own port.
//!
//! Labels are always bounded: route templates (never raw paths), methods, status codes, tenants,
//! peer service names and outcome words. Never an order id.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request and call latency buckets, in seconds (1 ms to 10 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub const HTTP_SERVER_REQUESTS: &str = "http_server_requests_total";
pub const HTTP_SERVER_DURATION: &str = "http_server_request_duration_seconds";
/// Requests whose handler did not run to its answer: `reason` is `caller_gone` (the connection
/// or stream closed first) or `deadline` (`REQUEST_TIMEOUT_MS` passed).
pub const HTTP_SERVER_CANCELLED: &str = "http_server_requests_cancelled_total";
/// Connections closed by the server: `reason` is `evicted` (an idle one made room at the cap)
/// or why it ended.
pub const HTTP_SERVER_CONNECTIONS_CLOSED: &str = "http_server_connections_closed_total";
/// Connections refused at the cap (answered 503 `overloaded` when the server could write one).
pub const HTTP_SERVER_CONNECTIONS_REFUSED: &str = "http_server_connections_refused_total";
pub const HTTP_CLIENT_REQUESTS: &str = "http_client_requests_total";
pub const HTTP_CLIENT_DURATION: &str = "http_client_request_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// The pool's ceiling: saturation is `db_pool_connections{state="in_use"}` over this.
pub const DB_POOL_MAX_CONNECTIONS: &str = "db_pool_max_connections";
/// `service_info{version, tenant} 1`: which build (`SERVICE_VERSION`) this process runs.
pub const SERVICE_INFO: &str = "service_info";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder on first use and returns the handle that renders it. `None` only if
/// another recorder was installed first (then this process's metrics go there).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        HTTP_SERVER_REQUESTS,
        "HTTP requests served, by route template, method, status and tenant"
    );
    metrics::describe_histogram!(
        HTTP_SERVER_DURATION,
        metrics::Unit::Seconds,
        "Time to serve an HTTP request"
    );
    metrics::describe_counter!(
        HTTP_SERVER_CANCELLED,
        "Requests whose handler did not run to its answer, by reason (caller_gone, deadline) and route"
    );
    metrics::describe_counter!(
        HTTP_CLIENT_REQUESTS,
        "Outgoing calls to other services, by target and outcome"
    );
    metrics::describe_histogram!(
        HTTP_CLIENT_DURATION,
        metrics::Unit::Seconds,
        "Time for an outgoing call, by target and outcome"
    );
    metrics::describe_gauge!(
        SERVICE_INFO,
        "Always 1; labels say which build (SERVICE_VERSION: stable, canary, ...) serves which tenant"
    );
    metrics::describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections by state (in_use, idle)"
    );
    metrics::describe_gauge!(
        DB_POOL_MAX_CONNECTIONS,
        "The most connections the database pool opens (DATABASE_MAX_CONNECTIONS)"
    );
}

/// How the database pool is used at the moment of a scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolUse {
    pub idle: f64,
    pub size: f64,
    pub max: f64,
}

/// The text exposition of every metric, after setting the pool gauges to `pool`.
pub fn render(pool: PoolUse) -> String {
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(pool.idle);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set((pool.size - pool.idle).max(0.0));
    metrics::gauge!(DB_POOL_MAX_CONNECTIONS).set(pool.max);
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// Keeps the exporter's histograms from growing without bound (called from a background task).
pub async fn run_upkeep(shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Some(handle) = handle() {
                    handle.run_upkeep();
                }
            }
        }
    }
}

/// The status class used as the outcome label of a completed call.
pub fn status_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
