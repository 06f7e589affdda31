//! A service's HTTP API as a test calls it for one tenant: where the service listens, the
//! `x-tenant-id` (and any other header) every request carries, and the calls the suites share —
//! seeding inventory-service's catalog, reading stock, reserving, reading `/metrics`.
//!
//! A [`crate::TestApp`] is one, its answers checked against the service's OpenAPI document; the
//! end-to-end cluster hands one out for each of its service processes. Either way a test seeds
//! stock or sends a request through the same code.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

use crate::{CURRENCY, UNIT_PRICE, item_body, json, problem_slug};

/// The answers that broke a service's OpenAPI document, as messages.
pub(crate) type Violations = Arc<Mutex<Vec<String>>>;

/// One service's API, called as one tenant.
#[derive(Clone)]
pub struct Api {
    pub base: url::Url,
    pub tenant: String,
    pub client: reqwest::Client,
    /// Sent on every request besides the tenant's (e.g. the ingress gateway's identity).
    headers: HeaderMap,
    /// Where the service under test records answers its document does not allow; empty for a
    /// service whose answers nothing checks.
    violations: Violations,
}

impl Api {
    /// The API at `base` (e.g. `http://127.0.0.1:8081/`), called as `tenant`.
    pub fn new(client: reqwest::Client, base: url::Url, tenant: &str) -> Api {
        Api {
            base,
            tenant: tenant.into(),
            client,
            headers: HeaderMap::new(),
            violations: Violations::default(),
        }
    }

    /// This API with `name: value` sent on every request made with [`Api::request`].
    pub fn with_header(mut self, name: &'static str, value: &str) -> Api {
        self.headers
            .insert(name, value.parse().expect("a valid header value"));
        self
    }

    /// This API with its answers' contract violations read from `violations`.
    pub(crate) fn checked_by(mut self, violations: Violations) -> Api {
        self.violations = violations;
        self
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

    /// `path` (with or without its leading `/`, a query allowed) on this service.
    pub fn url(&self, path: &str) -> url::Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("path joins")
    }

    /// A request builder with this API's tenant header (and its other headers) set.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("x-tenant-id", &self.tenant)
            .headers(self.headers.clone())
    }

    /// Sends `method path` (with an optional JSON body) and returns the status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = json(request.send().await.expect("request is sent")).await;
        self.assert_contract_kept();
        answer
    }

    /// `GET /metrics` as Prometheus scrapes it (no tenant): the text exposition.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request is sent");
        assert_eq!(response.status(), StatusCode::OK, "GET /metrics");
        let text = response.text().await.expect("the metrics are text");
        self.assert_contract_kept();
        text
    }

    /// Sets `sku`'s available stock at the default catalog price ([`UNIT_PRICE`] [`CURRENCY`])
    /// through inventory-service's items API (this must be inventory-service).
    pub async fn seed_stock(&self, sku: &str, available: i64) {
        self.seed_item(sku, available, UNIT_PRICE).await;
    }

    /// Sets `sku`'s available stock and catalog price (in [`CURRENCY`]).
    pub async fn seed_item(&self, sku: &str, available: i64, unit_price: i64) {
        let (status, item) = self
            .call(
                Method::PUT,
                &format!("/api/v1/items/{sku}"),
                Some(item_body(available, unit_price)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "seeding {sku}: {item}");
    }

    /// `(available, reserved, committed)` of `sku`, from inventory-service's items API.
    pub async fn stock(&self, sku: &str) -> (i64, i64, i64) {
        let (status, item) = self
            .call(Method::GET, &format!("/api/v1/items/{sku}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "reading {sku}: {item}");
        let field = |name: &str| {
            item[name]
                .as_i64()
                .unwrap_or_else(|| panic!("{name} in {item}"))
        };
        (field("available"), field("reserved"), field("committed"))
    }

    /// `POST /api/v1/reservations` for `order_id` in [`CURRENCY`] (this must be
    /// inventory-service).
    pub async fn reserve(&self, order_id: uuid::Uuid, items: Value) -> (StatusCode, Value) {
        let body =
            serde_json::json!({ "order_id": order_id, "currency": CURRENCY, "items": items });
        self.call(Method::POST, "/api/v1/reservations", Some(body))
            .await
    }

    /// `GET /api/v1/reservations/{order_id}` (this must be inventory-service).
    pub async fn reservation(&self, order_id: uuid::Uuid) -> (StatusCode, Value) {
        let path = format!("/api/v1/reservations/{order_id}");
        self.call(Method::GET, &path, None).await
    }

    /// `POST /api/v1/reservations/{order_id}/{action}`, `action` being `commit` or `release`
    /// (this must be inventory-service).
    pub async fn commit_or_release(
        &self,
        order_id: uuid::Uuid,
        action: &str,
    ) -> (StatusCode, Value) {
        let path = format!("/api/v1/reservations/{order_id}/{action}");
        self.call(Method::POST, &path, None).await
    }

    /// Asserts that `method path` without `x-tenant-id` is a 400 `missing-tenant` and with
    /// another tenant's a 403 `wrong-tenant`.
    pub async fn assert_tenant_enforced(&self, method: Method, path: &str, body: Value) {
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
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem_slug(&problem), "missing-tenant");
        let other = if self.tenant == "tenant-b" {
            "tenant-a"
        } else {
            "tenant-b"
        };
        let (status, problem) = send(Some(other)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert_eq!(problem_slug(&problem), "wrong-tenant");
    }
}
