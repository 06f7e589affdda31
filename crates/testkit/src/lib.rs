//! Test support shared by every service's tests and the end-to-end tests.
//!
//! Each test gets a fresh database on the real local PostgreSQL (`make test` starts it;
//! `TEST_DATABASE_URL` points elsewhere) and starts the service it tests in-process on a free
//! loopback port, exactly as `main` would build it. Nothing here is a test double.
//!
//! Every answer a [`TestApp`] gives — to the test, or to another service under test — is checked
//! against the service's own OpenAPI document ([`openapi::Contract`]); an answer the document
//! does not allow fails the test.
//!
//! A test calls a service through its [`Api`] (a [`TestApp`] is one; the end-to-end cluster hands
//! out one per service process), and waits on a condition with [`poll`] or [`eventually`].
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: failing loudly is the point

mod api;
pub mod openapi;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
};
use platform::{
    configuration::{CommonSettings, DatabaseSettings},
    startup::Application,
    tenancy::TenantId,
};
use sqlx::{Connection, Executor, PgConnection};
use tokio_util::sync::CancellationToken;

pub use crate::api::Api;
use crate::api::Violations;

/// The catalog price tests seed items at unless they say otherwise, in minor units of
/// [`CURRENCY`].
pub const UNIT_PRICE: i64 = 100;
pub const CURRENCY: &str = "EUR";

/// The body of `PUT /api/v1/items/{sku}`.
pub fn item_body(available: i64, unit_price: i64) -> serde_json::Value {
    serde_json::json!({ "available": available, "unit_price": unit_price, "currency": CURRENCY })
}

/// Where the local test cluster listens unless `TEST_DATABASE_URL` says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into())
}

/// Creates an empty database named after `label` and returns its URL.
pub async fn fresh_database(label: &str) -> String {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("cannot reach the test PostgreSQL at {admin} ({e}); run `make db-up`")
    });
    let name = format!(
        "test_{}_{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        uuid::Uuid::new_v4().simple()
    );
    // The name is ours (a label and a UUID), so building the statement from it is safe.
    conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Shared settings for a service under test: loopback, port 0, short timeouts.
pub fn settings(tenant: &str, database_url: String) -> CommonSettings {
    CommonSettings {
        tenant: TenantId::parse(tenant).expect("valid tenant"),
        listen_addr: "127.0.0.1:0".parse().expect("loopback address"),
        database: DatabaseSettings {
            url: database_url,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        },
        upstream_timeout: Duration::from_millis(1_500),
        request_timeout: Duration::from_secs(10),
        on_caller_gone: platform::configuration::CallerGone::default(),
        body_limit_bytes: 64 * 1024,
        trusted_peer_namespaces: vec!["istio-system".into()],
        peer_identity: platform::callers::PeerIdentitySettings::default(),
        log_format: None,
        server: platform::server::ServerLimits::default(),
        service_version: "dev".into(),
    }
}

/// A service running in this test process; its [`Api`] (through `Deref`) is how a test calls it.
pub struct TestApp {
    api: Api,
    /// The service's OpenAPI document, which every answer it gives is checked against.
    pub contract: Arc<openapi::Contract>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    /// Runs `app` in the background and waits until `/readyz` answers 200.
    pub async fn start(app: Application, tenant: &str) -> TestApp {
        let app = TestApp::spawn(app, tenant);
        wait_ready(&app.client, &app.base).await;
        app
    }

    /// Runs `app` in the background without waiting for it to be ready (e.g. while its database
    /// is down), every answer checked against its OpenAPI document.
    pub fn spawn(app: Application, tenant: &str) -> TestApp {
        let contract = Arc::new(openapi::Contract::from_json(app.openapi_json()));
        let violations = Violations::default();
        let checker = (contract.clone(), violations.clone());
        let app = app.wrap_router(|router| {
            router.layer(middleware::from_fn_with_state(checker, check_answer))
        });
        let addr = app.local_addr().expect("bound address");
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        let base = url::Url::parse(&format!("http://{addr}/")).expect("base url");
        TestApp {
            api: Api::new(reqwest::Client::new(), base, tenant).checked_by(violations),
            contract,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the server (graceful drain), waits for it to finish, and fails the test if any
    /// answer it gave broke its OpenAPI document.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task joins")
                .expect("server stops cleanly");
        }
        self.assert_contract_kept();
    }
}

/// A test that ends without [`TestApp::stop`] still fails on a broken contract (unless it is
/// failing already).
impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if !std::thread::panicking() {
            self.assert_contract_kept();
        }
    }
}

/// Middleware around a service under test: checks each answer against its OpenAPI document and
/// records the ones that break it (and says so at once on stderr).
async fn check_answer(
    State((contract, violations)): State<(Arc<openapi::Contract>, Violations)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            violations
                .lock()
                .unwrap()
                .push(format!("{method} {path}: the body could not be read: {e}"));
            return Response::from_parts(parts, Body::empty());
        }
    };
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(violation) = contract.check(
        method.as_str(),
        &path,
        parts.status.as_u16(),
        content_type,
        &body,
    ) {
        eprintln!("OpenAPI contract broken: {violation}");
        violations.lock().unwrap().push(violation);
    }
    Response::from_parts(parts, Body::from(body))
}

/// How often [`poll`] checks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `check` every [`POLL_INTERVAL`] until it returns `Ok`, for at most `timeout`; returns
/// that `Ok`, or the last `Err` (what was seen instead) once the time is up. Waiting on a
/// condition with a deadline, for tests and the tools that check a run's outcome alike.
pub async fn poll<T, E, F, Fut>(timeout: Duration, mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let result = check().await;
        if result.is_ok() || Instant::now() >= deadline {
            return result;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `GET /readyz` until it answers 200 (at most 30 s).
pub async fn wait_ready(client: &reqwest::Client, base: &url::Url) {
    let url = base.join("readyz").expect("readyz url");
    let ready = poll(Duration::from_secs(30), || async {
        match client.get(url.clone()).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(response.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    if let Err(last) = ready {
        panic!("{url} did not become ready within 30 s (last answer: {last})");
    }
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let checked = poll(timeout, || {
        let check = check();
        async move { check.await.ok_or(()) }
    })
    .await;
    checked.unwrap_or_else(|()| panic!("timed out after {timeout:?} waiting for: {what}"))
}

/// The JSON body of a response, with its status.
pub async fn json(response: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.bytes().await.expect("body");
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "status {status}, content-type {content_type}: body is not JSON: {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    if !status.is_success() {
        assert_eq!(
            content_type, "application/problem+json",
            "errors are problem+json: {value}"
        );
    }
    (status, value)
}

/// The slug of a problem document's `type` (`…/problems/out-of-stock` → `out-of-stock`).
pub fn problem_slug(problem: &serde_json::Value) -> &str {
    problem["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or_default()
}

/// Runs `make(i)` for `i in 0..n` as concurrent tasks and returns their results in order.
pub async fn concurrently<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("task completes"));
    }
    results
}
