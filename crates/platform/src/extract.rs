//! Path and query extractors whose rejections are problem+json (400) instead of axum's plain
//! text, so a malformed id or query string is reported like every other client mistake.

use axum::{
    extract::{
        FromRequestParts,
        rejection::{PathRejection, QueryRejection},
    },
    http::StatusCode,
};

use crate::problem::Problem;

/// Like `axum::extract::Path`, rejecting with a 400 problem.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

/// Like `axum::extract::Query`, rejecting with a 400 problem.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path-parameter",
            "Invalid path parameter",
        )
        .detail(rejection.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query string",
        )
        .detail(rejection.body_text())
    }
}
