//! Test support shared by every service's tests and the end-to-end tests.
//!
//! Each test gets a fresh database on the real local PostgreSQL (`make test` starts it;
//! `TEST_DATABASE_URL` points elsewhere) and starts the service it tests in-process on a free
//! loopback port, exactly as `main` would build it. Nothing here is a test double.
//!
//! Every answer a [`TestApp`] gives — to the test, or to another service under test — is checked
//! against the service's own OpenAPI document ([`openapi::Contract`]); an answer the document
//! does not allow fails the test.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test support: failing loudly is the point

pub mod openapi;

use std::{
    sync::{Arc, Mutex},
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

/// A service running in this test process.
pub struct TestApp {
    pub base: url::Url,
    pub tenant: String,
    pub client: reqwest::Client,
    /// The service's OpenAPI document, which every answer it gives is checked against.
    pub contract: Arc<openapi::Contract>,
    violations: Violations,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The answers that broke the contract, as messages.
type Violations = Arc<Mutex<Vec<String>>>;

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
            base,
            tenant: tenant.into(),
            client: reqwest::Client::new(),
            contract,
            violations,
            shutdown,
            task: Some(task),
        }
    }

    /// Fails the test if any answer so far broke the service's OpenAPI document.
    pub fn assert_contract_kept(&self) {
        let violations = std::mem::take(&mut *self.violations.lock().unwrap());
        assert!(
            violations.is_empty(),
            "answers that the service's OpenAPI document does not allow:\n{}",
            violations.join("\n")
        );
    }

    pub fn url(&self, path: &str) -> url::Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("path joins")
    }

    /// A request builder with this app's tenant header set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("x-tenant-id", &self.tenant)
    }

    /// Sends `method path` (with an optional JSON body) and returns the status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = json(request.send().await.expect("request is sent")).await;
        self.assert_contract_kept();
        answer
    }

    /// Sets `sku`'s available stock at the default catalog price ([`UNIT_PRICE`] [`CURRENCY`])
    /// through inventory-service's items API (this app must be inventory-service).
    pub async fn seed_stock(&self, sku: &str, available: i64) {
        self.seed_item(sku, available, UNIT_PRICE).await;
    }

    /// Sets `sku`'s available stock and catalog price (in [`CURRENCY`]).
    pub async fn seed_item(&self, sku: &str, available: i64, unit_price: i64) {
        let (status, item) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/items/{sku}"),
                Some(item_body(available, unit_price)),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "seeding {sku}: {item}");
    }

    /// `(available, reserved, committed)` of `sku`, from inventory-service's items API.
    pub async fn stock(&self, sku: &str) -> (i64, i64, i64) {
        let (status, item) = self
            .call(reqwest::Method::GET, &format!("/api/v1/items/{sku}"), None)
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "reading {sku}: {item}");
        let field = |name: &str| {
            item[name]
                .as_i64()
                .unwrap_or_else(|| panic!("{name} in {item}"))
        };
        (field("available"), field("reserved"), field("committed"))
    }

    /// `POST /api/v1/reservations` for `order_id` in [`CURRENCY`] (this app must be
    /// inventory-service).
    pub async fn reserve(
        &self,
        order_id: uuid::Uuid,
        items: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let body =
            serde_json::json!({ "order_id": order_id, "currency": CURRENCY, "items": items });
        self.call(reqwest::Method::POST, "/api/v1/reservations", Some(body))
            .await
    }

    /// `GET /api/v1/reservations/{order_id}` (this app must be inventory-service).
    pub async fn reservation(
        &self,
        order_id: uuid::Uuid,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let path = format!("/api/v1/reservations/{order_id}");
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// `POST /api/v1/reservations/{order_id}/{action}`, `action` being `commit` or `release`
    /// (this app must be inventory-service).
    pub async fn commit_or_release(
        &self,
        order_id: uuid::Uuid,
        action: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let path = format!("/api/v1/reservations/{order_id}/{action}");
        self.call(reqwest::Method::POST, &path, None).await
    }

    /// Asserts that `method path` without `x-tenant-id` is a 400 `missing-tenant` and with
    /// another tenant's a 403 `wrong-tenant`.
    pub async fn assert_tenant_enforced(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) {
        let send = |tenant: Option<&str>| {
            let mut request = self
                .client
                .request(method.clone(), self.url(path))
                .json(&body);
            if let Some(tenant) = tenant {
                request = request.header("x-tenant-id", tenant);
            }
            async move { json(request.send().await.expect("request is sent")).await }
        };
        let (status, problem) = send(None).await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem_slug(&problem), "missing-tenant");
        let other = if self.tenant == "tenant-b" {
            "tenant-a"
        } else {
            "tenant-b"
        };
        let (status, problem) = send(Some(other)).await;
        assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{problem}");
        assert_eq!(problem_slug(&problem), "wrong-tenant");
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

/// Polls `GET /readyz` until it answers 200 (at most 30 s).
pub async fn wait_ready(client: &reqwest::Client, base: &url::Url) {
    let url = base.join("readyz").expect("readyz url");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(url.clone()).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not become ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
