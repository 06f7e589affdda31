//! The one HTTP client each process uses to call other services.
//!
//! It pools connections (one `reqwest::Client` per process), bounds every call by the configured
//! upstream timeout and the current request's remaining deadline, and sets the headers contract
//! on every hop: the trace context in every enabled format, `baggage` with `tenant` and
//! `order_id`, `x-request-id`, `x-tenant-id` and `x-order-id`. Each call is a client span and is
//! counted by target and outcome.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::{Serialize, de::DeserializeOwned};
use trace_context::REQUEST_ID_HEADER;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    context,
    metrics::{HTTP_CLIENT_DURATION, HTTP_CLIENT_REQUESTS, status_outcome},
    problem::Problem,
    tenancy::{TENANT_HEADER, TenantId},
};

/// The order a call is about, on every call that has one.
pub const ORDER_ID_HEADER: &str = "x-order-id";

/// Time kept back from the caller's deadline so it can still answer after a call times out.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// A service this one calls: the name its calls are counted, traced and reported under, and the
/// base URL of its API. Every endpoint is `<base>/api/v1/<segments…>`, keeping any path prefix
/// the base has (a gateway that routes by prefix), and is built only here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    name: &'static str,
    base: url::Url,
}

impl Peer {
    /// `base` must be an absolute `http://` or `https://` URL with a host.
    pub fn new(name: &'static str, base: url::Url) -> Result<Self, String> {
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err("expected an absolute http(s) URL".into());
        }
        Ok(Self { name, base })
    }

    /// The peer's service name (`payment-service`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `<base>/api/v1/<segments…>`; each segment is percent-encoded as one path segment.
    pub fn endpoint(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        // An http(s) URL with a host always takes path segments (`new` admits no other).
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }
}

#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    tenant: TenantId,
    service_type: &'static str,
    timeout: Duration,
}

/// Why a call produced no usable answer. Every variant means the outcome at the peer is
/// unknown: the caller must treat the operation as possibly applied and retry it idempotently.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{target} did not answer within {timeout_ms} ms")]
    Timeout {
        target: &'static str,
        timeout_ms: u128,
    },
    #[error("{target} is unreachable: {detail}")]
    Unreachable {
        target: &'static str,
        detail: String,
    },
    #[error("{target} answered {status} with an unreadable body: {detail}")]
    BadResponse {
        target: &'static str,
        status: StatusCode,
        detail: String,
    },
}

impl CallError {
    /// 503 with `Retry-After`: the client may repeat the same request.
    pub fn to_problem(&self) -> Problem {
        Problem::unavailable(self.to_string(), 1)
    }
}

/// An answer from a peer service.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    target: &'static str,
    body: Bytes,
}

impl Reply {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::BadResponse {
            target: self.target,
            status: self.status,
            detail: e.to_string(),
        })
    }

    /// The body as a problem document, if it is one.
    pub fn problem(&self) -> Option<Problem> {
        Problem::from_peer(&self.body)
    }
}

impl HttpClient {
    pub fn new(
        tenant: TenantId,
        service_type: &'static str,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let inner = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            inner,
            tenant,
            service_type,
            timeout,
        })
    }

    /// The same client (same connection pool) with another per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// `POST` a JSON body to the peer's `api/v1/<segments…>`.
    pub async fn post_json<B: Serialize + ?Sized>(
        &self,
        peer: &Peer,
        segments: &[&str],
        order_id: Option<Uuid>,
        body: &B,
    ) -> Result<Reply, CallError> {
        let (target, url) = (peer.name, peer.endpoint(segments));
        let body = serde_json::to_vec(body).map_err(|e| CallError::BadResponse {
            target,
            status: StatusCode::OK,
            detail: format!("request body: {e}"),
        })?;
        self.call(target, Method::POST, url, order_id, Some(body))
            .await
    }

    async fn call(
        &self,
        target: &'static str,
        method: Method,
        url: url::Url,
        order_id: Option<Uuid>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CallError> {
        let span = tracing::info_span!(
            "HTTP client",
            otel.name = format!("{method} {target}"),
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %method,
            http.response.status_code = Empty,
            server.address = url.host_str().unwrap_or_default(),
            url.path = url.path(),
            peer.service = target,
            tenant = %self.tenant,
            service_type = self.service_type,
            order_id = Empty,
        );
        if let Some(id) = order_id {
            span.record("order_id", tracing::field::display(id));
        }
        let timeout = self.budget();
        let headers = self.headers(&span, order_id, body.is_some());
        let mut request = self
            .inner
            .request(method.clone(), url)
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.body(body);
        }
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .instrument(span.clone())
        .await;
        let outcome = match &result {
            Ok((status, _)) => status_outcome(status.as_u16()),
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "error",
        };
        metrics::counter!(HTTP_CLIENT_REQUESTS, "target" => target, "method" => method.to_string(), "outcome" => outcome).increment(1);
        metrics::histogram!(HTTP_CLIENT_DURATION, "target" => target, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok((status, body)) => {
                span.record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
                Ok(Reply {
                    status,
                    target,
                    body,
                })
            }
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                Err(if error.is_timeout() {
                    CallError::Timeout {
                        target,
                        timeout_ms: timeout.as_millis(),
                    }
                } else {
                    CallError::Unreachable {
                        target,
                        detail: error_chain(&error),
                    }
                })
            }
        }
    }

    /// The configured timeout, shortened to fit the current request's remaining deadline.
    fn budget(&self) -> Duration {
        match context::remaining() {
            Some(left) => self
                .timeout
                .min(left.saturating_sub(DEADLINE_MARGIN))
                .max(Duration::from_millis(1)),
            None => self.timeout,
        }
    }

    fn headers(&self, span: &tracing::Span, order_id: Option<Uuid>, json: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let order_id = order_id.map(|id| id.to_string());
        let mut baggage = vec![("tenant", self.tenant.as_str())];
        if let Some(id) = &order_id {
            baggage.push(("order_id", id.as_str()));
            if let Ok(value) = HeaderValue::from_str(id) {
                headers.insert(ORDER_ID_HEADER, value);
            }
        }
        let cx = trace_context::with_baggage_first(&span.context(), &baggage);
        trace_context::inject(&cx, &mut headers);
        headers.insert(
            REQUEST_ID_HEADER,
            context::request_id().unwrap_or_else(trace_context::new_request_id),
        );
        if let Ok(tenant) = HeaderValue::from_str(self.tenant.as_str()) {
            headers.insert(TENANT_HEADER, tenant);
        }
        if json {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        headers
    }
}

/// The error and its causes on one line (reqwest's top-level message alone hides the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(base: &str) -> Peer {
        Peer::new("inventory-service", url::Url::parse(base).unwrap()).unwrap()
    }

    #[test]
    fn endpoints_keep_the_base_path_and_encode_each_segment() {
        assert_eq!(
            peer("http://inventory:8080")
                .endpoint(&["reservations"])
                .as_str(),
            "http://inventory:8080/api/v1/reservations"
        );
        let id = Uuid::nil().to_string();
        assert_eq!(
            peer("http://gateway/inventory/")
                .endpoint(&["reservations", &id, "release"])
                .as_str(),
            format!("http://gateway/inventory/api/v1/reservations/{id}/release")
        );
        assert_eq!(
            peer("http://gateway/inventory")
                .endpoint(&["items", "a/b?c"])
                .as_str(),
            "http://gateway/inventory/api/v1/items/a%2Fb%3Fc"
        );
    }

    #[test]
    fn a_peer_is_an_absolute_http_url_with_a_host() {
        for refused in ["mailto:ops@example.com", "file:///tmp/x", "ftp://host/"] {
            let url = url::Url::parse(refused).unwrap();
            assert!(Peer::new("x", url).is_err(), "{refused} was accepted");
        }
        assert_eq!(peer("https://inventory").name(), "inventory-service");
    }
}
