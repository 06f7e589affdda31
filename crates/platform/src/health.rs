//! `/healthz` (the process is alive and serving) and `/readyz` (its database answers and its
//! migrations are applied), the endpoints Kubernetes probes and `make up` waits on.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;
use sqlx::PgPool;

use crate::{db::Migrated, problem::Problem};

#[derive(Debug, Clone)]
pub struct Readiness {
    pub pool: PgPool,
    pub migrated: Migrated,
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(readiness): State<Readiness>) -> Result<impl IntoResponse, Problem> {
    let not_ready = |detail: &str| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .detail(detail.to_owned())
            .retry_after(1)
    };
    if !readiness.migrated.is_done() {
        return Err(not_ready("database migrations are not applied yet"));
    }
    let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&readiness.pool);
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ready" }))),
        _ => Err(not_ready("the database does not answer")),
    }
}
