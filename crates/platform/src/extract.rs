//! Path and query extractors whose rejections are problem+json (400) instead of axum's plain
//! text, so a malformed id or query string is reported like every other client mistake.

use axum::{
    extract::{FromRequestParts, rejection::PathRejection, rejection::QueryRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Like `axum::extract::Path`, rejecting with a 400 problem.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection: PathRejection| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-path-parameter",
                    "Invalid path parameter",
                )
                .detail(rejection.body_text())
            })
    }
}

/// Like `axum::extract::Query`, rejecting with a 400 problem.
#[derive(Debug, Clone, Copy)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    "Invalid query string",
                )
                .detail(rejection.body_text())
            })
    }
}
