//! Building and running a service: the shared router layers, the server, and the process's
//! `main` from configuration to exit code.
//!
//! A service contributes its `/api` routes (documented, as an `OpenApiRouter`) and background
//! tasks; everything else — health, metrics, the OpenAPI document at `/openapi.json`, tenancy,
//! each route's callers (from the call graph; a service whose routes and call-graph operations
//! differ does not start), header and body limits, request deadline, request ids, server spans,
//! request metrics, problem+json for unknown routes and panics, migrations, bounded connections,
//! graceful drain — is assembled here the same way for all four.

use std::{
    future::Future,
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use trace_context::REQUEST_ID_HEADER;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa_axum::{router::OpenApiRouter, routes};

use commerce::callgraph::CallGraph;

use crate::{
    callers::{self, CallerPolicy},
    configuration::{CallerGone, CommonSettings, ConfigError},
    context::{self, RequestContext},
    db::{self, Database, Migrated},
    health::{self, Readiness},
    http_client::HttpClient,
    metrics::{self as platform_metrics, HTTP_SERVER_DURATION, HTTP_SERVER_REQUESTS},
    openapi::OPENAPI_PATH,
    problem::Problem,
    telemetry::{self, ServiceIdentity},
    tenancy::{self, TenantPolicy},
};

/// How long in-flight requests and background tasks get to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What a service is, for the platform.
#[derive(Debug)]
pub struct Service {
    pub identity: ServiceIdentity,
    pub migrator: &'static Migrator,
}

/// A service's settings: the shared ones plus its own.
pub trait ServiceSettings: Sized {
    fn from_env() -> Result<Self, ConfigError>;
    fn common(&self) -> &CommonSettings;
}

/// A service that needs nothing beyond the shared settings uses them as its settings.
impl ServiceSettings for CommonSettings {
    fn from_env() -> Result<Self, ConfigError> {
        CommonSettings::from_env()
    }

    fn common(&self) -> &CommonSettings {
        self
    }
}

/// The shared resources a service's routes and tasks use.
#[derive(Debug, Clone)]
pub struct Platform {
    pub identity: ServiceIdentity,
    pub settings: CommonSettings,
    pub db: Database,
    pub http: HttpClient,
    pub migrated: Migrated,
    /// Cancelled when the process is asked to stop.
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Platform {
    /// Runs `task` in the background; shutdown waits for it (within the drain timeout).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }
}

/// A service bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    platform: Platform,
    openapi: Bytes,
}

impl Application {
    /// Binds the listener, prepares the pool, starts migrations and assembles the router around
    /// the service's API routes, whose documentation becomes the service's OpenAPI document.
    pub async fn build(
        service: &'static Service,
        settings: CommonSettings,
        api: impl FnOnce(&Platform) -> OpenApiRouter,
    ) -> Result<Self, StartupError> {
        let db = Database::new(db::lazy_pool(&settings.database).map_err(StartupError::Database)?);
        let http = HttpClient::new(
            settings.tenant.clone(),
            service.identity.service_type,
            settings.upstream_timeout,
        )
        .map_err(StartupError::HttpClient)?;
        let listener = crate::server::listen(settings.listen_addr, settings.server.listen_backlog)
            .map_err(|e| StartupError::Bind(settings.listen_addr, e))?;
        let platform = Platform {
            identity: service.identity,
            settings,
            db,
            http,
            migrated: Migrated::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        // The metrics recorder first: what is recorded before it exists goes nowhere, and the
        // router records `service_info` while it is built.
        let _ = platform_metrics::handle();
        let (api, api_doc) = api(&platform).split_for_parts();
        let callers = caller_policy(service, &platform.settings, &api_doc)?;
        let openapi = serde_json::to_vec(&document(service, api_doc))
            .map(Bytes::from)
            .map_err(StartupError::OpenApi)?;
        let router = router(api, &platform, openapi.clone(), callers);
        platform.spawn(db::migrate_until_done(
            platform.db.clone(),
            service.migrator,
            platform.migrated.clone(),
            platform.shutdown.clone(),
        ));
        platform.spawn(platform_metrics::run_upkeep(platform.shutdown.clone()));
        Ok(Self {
            listener,
            router,
            platform,
            openapi,
        })
    }

    /// The OpenAPI document this application serves at `/openapi.json` (JSON).
    pub fn openapi_json(&self) -> &[u8] {
        &self.openapi
    }

    /// Wraps the whole router in `wrap` (outside every shared layer), e.g. so that a test can see
    /// every answer the application gives.
    pub fn wrap_router(mut self, wrap: impl FnOnce(Router) -> Router) -> Self {
        self.router = wrap(self.router);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The token that stops this application when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.platform.shutdown.clone()
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Serves until the shutdown token is cancelled, then drains requests and background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            platform,
            ..
        } = self;
        let result = crate::server::serve(
            listener,
            router,
            platform.settings.server,
            platform.shutdown.clone(),
        )
        .await;
        platform.tasks.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, platform.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not finish within the drain timeout");
        }
        platform.db.close().await;
        result
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid DATABASE_URL: {0}")]
    Database(sqlx::Error),
    #[error("building the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("writing the OpenAPI document: {0}")]
    OpenApi(serde_json::Error),
    #[error("the caller table of {service}: {reason}")]
    CallGraph {
        service: &'static str,
        reason: String,
    },
}

/// The caller table of `service` for its tenant, from the compiled-in call graph; it must name
/// callers for exactly the API routes the service serves (its document's operations), so no
/// route is served without its callers being checked.
fn caller_policy(
    service: &Service,
    settings: &CommonSettings,
    api: &utoipa::openapi::OpenApi,
) -> Result<CallerPolicy, StartupError> {
    let refuse = |reason: String| StartupError::CallGraph {
        service: service.identity.name,
        reason,
    };
    let operations = CallGraph::compiled_in()
        .and_then(|graph| graph.operations_of(service.identity.name))
        .map_err(|e| refuse(e.to_string()))?;
    let policy = CallerPolicy::new(
        &operations,
        &settings.tenant,
        settings.peer_identity.clone(),
    );
    let served = served_routes(api);
    policy.covers_exactly(&served).map_err(refuse)?;
    tracing::info!(
        routes = served.len(),
        require_peer_identity = settings.peer_identity.require,
        trust_domain = %settings.peer_identity.trust_domain,
        "each route answers the callers the call graph names"
    );
    Ok(policy)
}

/// Every (method, route template) an API document lists.
fn served_routes(api: &utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (path, item) in &api.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ];
        for (method, operation) in methods {
            if operation.is_some() {
                routes.push((method.to_owned(), path.clone()));
            }
        }
        for method in item.additional_operations.keys() {
            routes.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

/// The OpenAPI document of `service` with the API routes `api`: what it serves at
/// `/openapi.json` (see [`crate::openapi`]).
pub fn openapi<S>(service: &Service, api: OpenApiRouter<S>) -> serde_json::Value
where
    S: Clone + Send + Sync + 'static,
{
    document(service, api.into_openapi())
}

fn document(service: &Service, api: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut routes = infrastructure().into_openapi();
    routes.merge(api);
    crate::openapi::document(service.identity, routes)
}

/// What the infrastructure routes (probes, metrics, the OpenAPI document) read.
#[derive(Clone)]
struct Infrastructure {
    readiness: Readiness,
    openapi: Bytes,
}

impl FromRef<Infrastructure> for Readiness {
    fn from_ref(infrastructure: &Infrastructure) -> Self {
        infrastructure.readiness.clone()
    }
}

/// The routes every service has besides its API: not behind tenancy, documented like the API.
fn infrastructure() -> OpenApiRouter<Infrastructure> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi_json))
}

/// The Prometheus text exposition of this process's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "infrastructure",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain")),
)]
async fn metrics_text(State(infrastructure): State<Infrastructure>) -> String {
    platform_metrics::render(&infrastructure.readiness.db)
}

/// This document: the service's HTTP API as OpenAPI 3.1, generated from its code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "infrastructure",
    responses((status = 200, description = "The OpenAPI 3.1 document",
        body = inline(serde_json::Value), content_type = "application/json")),
)]
async fn openapi_json(State(infrastructure): State<Infrastructure>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        infrastructure.openapi,
    )
        .into_response()
}

/// The whole of a service's `main`: settings, telemetry, build, serve until SIGTERM, flush.
/// Exit code 0 after a clean drain, 2 for bad configuration, 1 for other start-up failures.
pub async fn run<S, F, Fut>(service: &'static Service, build: F) -> ExitCode
where
    S: ServiceSettings,
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = Result<Application, StartupError>>,
{
    let settings = match S::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{}: configuration error: {error}", service.identity.name);
            return ExitCode::from(2);
        }
    };
    let common = settings.common();
    let telemetry =
        match telemetry::init(service.identity, common.tenant.as_str(), common.log_format) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("{}: telemetry error: {error}", service.identity.name);
                return ExitCode::from(2);
            }
        };
    let app = match build(settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "start-up failed");
            telemetry.shutdown();
            return ExitCode::FAILURE;
        }
    };
    let addr = app.local_addr().ok();
    tracing::info!(address = ?addr, tenant = %app.platform.settings.tenant, "listening");
    crate::shutdown::cancel_on_signal(app.shutdown_token());
    let result = app.run_until_stopped().await;
    tracing::info!("stopped");
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: server error: {error}", service.identity.name);
            ExitCode::FAILURE
        }
    }
}

/// The full router: the service's API behind tenancy and the caller check (in that order),
/// plus health, metrics and the OpenAPI document, inside the shared layers.
fn router(api: Router, platform: &Platform, openapi: Bytes, callers: CallerPolicy) -> Router {
    let policy = TenantPolicy::new(
        platform.settings.tenant.clone(),
        platform.settings.trusted_peer_namespaces.clone(),
    );
    let readiness = Readiness {
        db: platform.db.clone(),
        migrated: platform.migrated.clone(),
    };
    // The layer added last runs first: tenancy, then the caller.
    let api = api
        .route_layer(middleware::from_fn_with_state(
            callers,
            callers::require_caller,
        ))
        .route_layer(middleware::from_fn_with_state(
            policy,
            tenancy::require_tenant,
        ));
    let (infrastructure, _) = infrastructure()
        .with_state(Infrastructure { readiness, openapi })
        .split_for_parts();
    infrastructure
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(platform.settings.body_limit_bytes))
        .layer(middleware::from_fn_with_state(
            platform.settings.server.max_header_bytes,
            crate::server::limit_headers,
        ))
        .layer(middleware::from_fn_with_state(
            ServerContext {
                identity: platform.identity,
                tenant: platform.settings.tenant.as_str().into(),
                request_timeout: platform.settings.request_timeout,
                on_caller_gone: platform.settings.on_caller_gone,
                version: service_version(
                    &platform.settings.service_version,
                    platform.settings.tenant.as_str(),
                ),
            },
            observe_request,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| Problem::internal().into_response(),
        ))
}

async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
}

#[derive(Debug, Clone)]
struct ServerContext {
    identity: ServiceIdentity,
    tenant: std::sync::Arc<str>,
    request_timeout: Duration,
    on_caller_gone: CallerGone,
    /// `SERVICE_VERSION` (checked by the configuration: a valid header value).
    version: axum::http::HeaderValue,
}

/// The `x-service-version` value, also published once as `service_info{version, tenant} 1`.
fn service_version(version: &str, tenant: &str) -> axum::http::HeaderValue {
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
async fn observe_request(
    State(server): State<ServerContext>,
    request: Request,
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
    let peer = mesh_peer(request.headers());
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
fn mesh_peer(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(crate::tenancy::XFCC_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::xfcc::parse_peers(v).ok())
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
