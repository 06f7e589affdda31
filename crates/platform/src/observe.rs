//! The outermost request middleware, the same for every route of every service: it continues
//! the caller's trace and opens the server span, sets the request context (request id,
//! deadline), answers 503 at the deadline, counts requests — answered, and cancelled because the
//! deadline passed or the caller went away — writes one access-log line with the mesh caller's
//! identity, and answers `x-request-id` and `x-service-version` on every response. It is the first
//! to read `x-forwarded-client-cert`, and leaves its parse in the request's extensions for the
//! tenancy and caller checks ([`crate::xfcc::ParsedXfcc`]).
//! [`crate::startup`] puts it around the router.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use trace_context::REQUEST_ID_HEADER;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    configuration::CallerGone,
    context::{self, RequestContext},
    metrics::{HTTP_SERVER_DURATION, HTTP_SERVER_REQUESTS},
    openapi::OPENAPI_PATH,
    problem::Problem,
    telemetry::ServiceIdentity,
    xfcc::ParsedXfcc,
};

/// What [`observe_request`] needs of the process: its identity, tenant, deadline, what to do when
/// a caller goes away, and its build.
#[derive(Debug, Clone)]
pub(crate) struct ServerContext {
    pub(crate) identity: ServiceIdentity,
    pub(crate) tenant: std::sync::Arc<str>,
    pub(crate) request_timeout: Duration,
    pub(crate) on_caller_gone: CallerGone,
    /// `SERVICE_VERSION` (checked by the configuration: a valid header value).
    pub(crate) version: axum::http::HeaderValue,
}

/// The `x-service-version` value, also published once as `service_info{version, tenant} 1`.
pub(crate) fn service_version(version: &str, tenant: &str) -> axum::http::HeaderValue {
    metrics::gauge!(
        crate::metrics::SERVICE_INFO,
        "version" => version.to_owned(),
        "tenant" => tenant.to_owned()
    )
    .set(1.0);
    axum::http::HeaderValue::from_str(version)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("invalid"))
}

/// Which build answered (`SERVICE_VERSION`), on every response.
pub const SERVICE_VERSION_HEADER: &str = "x-service-version";

/// Per request: continue the caller's trace, open the server span, set the request context and
/// deadline, answer 503 at the deadline, count the request, echo `x-request-id` and answer
/// `x-service-version` (which build — stable or canary — served it).
pub(crate) async fn observe_request(
    State(server): State<ServerContext>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let request_id = trace_context::request_id(request.headers());
    let xfcc = request
        .headers()
        .get(crate::tenancy::XFCC_HEADER)
        .map(ParsedXfcc::new);
    let peer = mesh_peer(xfcc.as_ref());
    if let Some(xfcc) = xfcc {
        // Parsed once: the tenancy and caller checks read it here.
        request.extensions_mut().insert(xfcc);
    }
    let parent = trace_context::extract(request.headers());
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        tenant = %server.tenant,
        service_type = server.identity.service_type,
        service.version = server.version.to_str().unwrap_or_default(),
        order_id = Empty,
        request_id = request_id.to_str().unwrap_or_default(),
        trace_id = Empty,
        span_id = Empty,
    );
    let _ = span.set_parent(parent);
    let span_context = {
        use opentelemetry::trace::TraceContextExt;
        span.context().span().span_context().clone()
    };
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
        span.record("span_id", span_context.span_id().to_string());
    }
    let cx = RequestContext {
        request_id: request_id.clone(),
        deadline: started + server.request_timeout,
        span: span.clone(),
    };
    let run = context::scope(cx, next.run(request)).instrument(span.clone());
    let bounded = answer_within(
        server.request_timeout,
        run,
        route.clone(),
        server.tenant.clone(),
    );
    let caller_gone = CallerGoneGuard::new(&route, &server.tenant);
    let mut response = match server.on_caller_gone {
        CallerGone::Abort => bounded.await,
        CallerGone::Finish => tokio::spawn(bounded)
            .await
            .unwrap_or_else(|_| Problem::internal().into_response()),
    };
    caller_gone.answered();
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    log_request(&span, &method, &route, &peer, status, started.elapsed());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
    response
        .headers_mut()
        .insert(SERVICE_VERSION_HEADER, server.version.clone());
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
        ("tenant", server.tenant.to_string()),
    ];
    metrics::counter!(HTTP_SERVER_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_SERVER_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The handler's answer, or 503 at the deadline (the handler is dropped there, counted as
/// cancelled for `deadline`).
async fn answer_within(
    deadline: Duration,
    run: impl Future<Output = Response>,
    route: String,
    tenant: std::sync::Arc<str>,
) -> Response {
    match tokio::time::timeout(deadline, run).await {
        Ok(response) => response,
        Err(_) => {
            count_cancelled("deadline", route, &tenant);
            Problem::unavailable("the request did not complete within its deadline", 1)
                .into_response()
        }
    }
}

fn count_cancelled(reason: &'static str, route: String, tenant: &str) {
    metrics::counter!(
        crate::metrics::HTTP_SERVER_CANCELLED,
        "reason" => reason,
        "route" => route,
        "tenant" => tenant.to_owned()
    )
    .increment(1);
}

/// Counts a request whose caller went away before its answer: hyper drops the request's future
/// when its connection closes, and with it this guard, unless [`CallerGoneGuard::answered`]
/// disarmed it first. (With `ON_CALLER_GONE=finish` the handler itself runs on in its task.)
struct CallerGoneGuard {
    armed: Option<(String, std::sync::Arc<str>)>,
}

impl CallerGoneGuard {
    fn new(route: &str, tenant: &std::sync::Arc<str>) -> Self {
        Self {
            armed: Some((route.to_owned(), tenant.clone())),
        }
    }

    fn answered(mut self) {
        self.armed = None;
    }
}

impl Drop for CallerGoneGuard {
    fn drop(&mut self) {
        if let Some((route, tenant)) = self.armed.take() {
            count_cancelled("caller_gone", route, &tenant);
        }
    }
}

/// The mesh caller's identity as the sidecar vouched for it in `x-forwarded-client-cert` (the
/// SPIFFE ids, comma-separated), or "-" when there is none or it is not in Envoy's form (the
/// tenancy check answers that request).
fn mesh_peer(xfcc: Option<&ParsedXfcc>) -> String {
    xfcc.and_then(|xfcc| xfcc.peers().ok())
        .map(|peers| {
            peers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// One access-log line per request, with the mesh caller's identity; probes and scrapes only at
/// debug level, so they do not drown the log.
fn log_request(
    span: &tracing::Span,
    method: &axum::http::Method,
    route: &str,
    peer: &str,
    status: StatusCode,
    elapsed: Duration,
) {
    let _entered = span.enter();
    let duration_ms = elapsed.as_secs_f64() * 1e3;
    if matches!(route, "/healthz" | "/readyz" | "/metrics") || route == OPENAPI_PATH {
        tracing::debug!(%method, route, peer, status = status.as_u16(), duration_ms, "request served");
    } else {
        tracing::info!(%method, route, peer, status = status.as_u16(), duration_ms, "request served");
    }
}
