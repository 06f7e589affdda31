//! RFC 9457 `application/problem+json` errors, and the JSON extractor that turns every client
//! mistake in a body into one.
//!
//! Services build a [`Problem`] for each error they return; nothing else ever reaches a client as
//! an error body. [`Json`] replaces axum's extractor so that malformed JSON is a 400, a valid
//! document with wrong or unknown fields is a 422, a wrong content type is a 415 and an oversized
//! body is a 413 — never a plain-text rejection.

use axum::{
    extract::{FromRequest, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use commerce::values::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Base of every problem `type` URI; the slug after it names the kind of error.
pub const PROBLEM_TYPE_BASE: &str = "https://ordermesh.dev/problems/";
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One problem detail document (RFC 9457), plus the HTTP details that go with it.
///
/// Every error answer is one, as `application/problem+json`: `type` names the kind of error
/// (`https://ordermesh.dev/problems/<slug>`), `status` repeats the HTTP status, and extension
/// members say more (`errors` lists the invalid fields of a 422, `sku`, `order_id`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "https://ordermesh.dev/problems/not-found",
    "title": "Not found",
    "status": 404,
    "detail": "no order 0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f"
}))]
pub struct Problem {
    /// `https://ordermesh.dev/problems/` and the slug of the kind of error.
    #[serde(rename = "type")]
    #[schema(pattern = "^https://ordermesh\\.dev/problems/[a-z0-9-]+$")]
    pub type_uri: String,
    pub title: String,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, such as `errors` or `reason`.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    /// Seconds for the `Retry-After` header (503s only).
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    /// A problem of kind `slug` (the last segment of its `type` URI).
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{PROBLEM_TYPE_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            extensions: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(key.to_owned(), value);
        }
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The slug of this problem's type, if it is one of ours.
    /// A peer's answer body read as a problem document, if it is one (the status, title and
    /// `type` present; anything else is not a problem document).
    pub fn from_peer(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    pub fn slug(&self) -> Option<&str> {
        self.type_uri.strip_prefix(PROBLEM_TYPE_BASE)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// 422 with the list of fields that failed validation.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "Request failed validation",
        )
        .detail(detail)
        .with("errors", errors)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, "Conflict").detail(detail)
    }

    /// 503: a dependency failed; the same request may be sent again after `retry_after_secs`.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency-unavailable",
            "A dependency is unavailable",
        )
        .detail(detail)
        .retry_after(retry_after_secs)
    }

    /// 500 for our own faults; the detail stays in the logs, not in the response.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A database error is never the client's fault: log it and answer 503 (retry-safe) when the
/// database is unreachable, 500 otherwise.
impl From<sqlx::Error> for Problem {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(%error, "database unavailable");
                Problem::unavailable("the database is unavailable", 1)
            }
            // PostgreSQL rolled the statement back (a deadlock it broke, or a serialization
            // conflict): nothing happened, and the same request may simply be repeated.
            sqlx::Error::Database(e) if matches!(e.code().as_deref(), Some("40P01" | "40001")) => {
                tracing::warn!(%error, "database conflict; the request may be repeated");
                Problem::unavailable("a concurrent request conflicted; repeat the request", 1)
            }
            _ => {
                tracing::error!(%error, "database error");
                Problem::internal()
            }
        }
    }
}

/// JSON body extractor whose every rejection is a [`Problem`].
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        json_rejection_problem(rejection)
    }
}

fn json_rejection_problem(rejection: JsonRejection) -> Problem {
    use std::error::Error as _;
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message says which field and why: the most useful thing to return.
            let message = e
                .source()
                .map(ToString::to_string)
                .unwrap_or_else(|| e.body_text());
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Request failed validation",
            )
            .detail(message)
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON").detail(
                e.source()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.body_text()),
            )
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("expected `Content-Type: application/json`"),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            payload_too_large()
        }
        other => {
            Problem::new(other.status(), "bad-request", "Bad request").detail(other.body_text())
        }
    }
}

/// 413, for bodies over the configured limit.
pub fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Request body too large",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_serialises_with_type_and_extensions() {
        let p = Problem::conflict("idempotency-key-reused", "different body").with("order_id", "x");
        let v = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(
            v["type"],
            "https://ordermesh.dev/problems/idempotency-key-reused"
        );
        assert_eq!(v["status"], 409);
        assert_eq!(v["order_id"], "x");
        assert!(v.get("retry_after_secs").is_none());
    }

    #[test]
    fn a_peers_problem_reads_back_equal_after_reserialising() {
        // Found by the problem_json fuzz target: without exact float parsing, 49.7776e44 read,
        // written and read again was another number.
        let body = br#"{"type":"https://ordermesh.dev/problems/x","title":"X","status":409,"n":49.7776e44,"m":[0.1,1e-300]}"#;
        let problem = Problem::from_peer(body).unwrap_or_else(|| panic!("a problem document"));
        let again = serde_json::to_vec(&problem).unwrap_or_default();
        assert_eq!(Problem::from_peer(&again), Some(problem));
    }

    #[test]
    fn unavailable_sets_retry_after_header() {
        let response = Problem::unavailable("down", 2).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
    }

    #[test]
    fn invalid_fields_lists_each_field() {
        let p = Problem::invalid_fields(vec![FieldError::new("items[0].quantity", "must be > 0")]);
        assert_eq!(p.status, 422);
        assert_eq!(p.detail.as_deref(), Some("items[0].quantity: must be > 0"));
        assert_eq!(p.slug(), Some("validation-failed"));
    }
}
