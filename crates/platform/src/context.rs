//! The per-request context that code deep in a handler needs without threading it through every
//! call: the request id to forward, the deadline to stay within, and the request's span (so the
//! order id can be tagged on it once it is known).
//!
//! The server middleware sets it for the duration of each request; background tasks run without
//! one, and everything here then falls back to sensible defaults.

use std::time::{Duration, Instant};

use http::HeaderValue;
use tracing::Span;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: HeaderValue,
    pub deadline: Instant,
    pub span: Span,
}

tokio::task_local! {
    static CURRENT: RequestContext;
    static CONTINUED_REQUEST_ID: HeaderValue;
}

/// Runs `fut` with `cx` as the current request context.
pub async fn scope<F: Future>(cx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(cx, fut).await
}

/// Runs background work that finishes an earlier request (an outbox delivery) under that
/// request's id, so its calls carry it as the request's own calls did. In the mesh the id also
/// carries Envoy's sampling decision; a new one would be sampled afresh.
pub async fn continuing_request<F: Future>(request_id: HeaderValue, fut: F) -> F::Output {
    CONTINUED_REQUEST_ID.scope(request_id, fut).await
}

/// The current request's id, if this task serves a request or continues one.
pub fn request_id() -> Option<HeaderValue> {
    CURRENT
        .try_with(|cx| cx.request_id.clone())
        .ok()
        .or_else(|| CONTINUED_REQUEST_ID.try_with(Clone::clone).ok())
}

/// Time left before the current request's deadline (`None` outside a request).
pub fn remaining() -> Option<Duration> {
    CURRENT
        .try_with(|cx| cx.deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Tags the current request's server span (and so its logs) with the order it is about.
pub fn record_order_id(order_id: &uuid::Uuid) {
    let _ = CURRENT.try_with(|cx| {
        cx.span
            .record("order_id", tracing::field::display(order_id));
    });
}

/// The current request's trace id (32 hex digits), if it has a valid one.
pub fn trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    CURRENT
        .try_with(|cx| {
            let otel = cx.span.context();
            let span_context = otel.span().span_context().clone();
            span_context
                .is_valid()
                .then(|| span_context.trace_id().to_string())
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_continuing_a_request_carries_its_id() {
        let id = HeaderValue::from_static("req-42");
        let seen = continuing_request(id.clone(), async { request_id() }).await;
        assert_eq!(seen, Some(id));
        assert_eq!(request_id(), None);
    }
}
