//! Building and running a service: the shared router layers, the server, and the process's
//! `main` from configuration to exit code.
//!
//! A service contributes its `/api` routes (documented, as an `OpenApiRouter`) and background
//! tasks; everything else — health, metrics, the OpenAPI document at `/openapi.json`, tenancy,
//! each route's callers (from the call graph; a service whose routes and call-graph operations
//! differ does not start), header and body limits, the per-request middleware of
//! [`crate::observe`] (request deadline, request ids, server spans, request metrics, access log),
//! problem+json for unknown routes and panics, migrations, bounded connections, graceful drain —
//! is assembled here the same way for all four.

use std::{future::Future, net::SocketAddr, process::ExitCode, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef, State},
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use utoipa_axum::{router::OpenApiRouter, routes};

use commerce::callgraph::CallGraph;

use crate::{
    callers::{self, CallerPolicy},
    configuration::{CommonSettings, ConfigError},
    db::{self, Database, Migrated},
    health::{self, Readiness},
    http_client::HttpClient,
    metrics as platform_metrics, observe,
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
    let db = &infrastructure.readiness.db;
    platform_metrics::render(platform_metrics::PoolUse {
        idle: db.idle() as f64,
        size: f64::from(db.size()),
        max: f64::from(db.pool().options().get_max_connections()),
    })
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
            observe::ServerContext {
                identity: platform.identity,
                tenant: platform.settings.tenant.as_str().into(),
                request_timeout: platform.settings.request_timeout,
                on_caller_gone: platform.settings.on_caller_gone,
                version: observe::service_version(
                    &platform.settings.service_version,
                    platform.settings.tenant.as_str(),
                ),
            },
            observe::observe_request,
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
