//! `/healthz` (the process is alive and serving) and `/readyz` (its database answers and its
//! migrations are applied), the endpoints Kubernetes probes and `make up` waits on.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    db::{Database, Migrated},
    problem::Problem,
};

#[derive(Debug, Clone)]
pub struct Readiness {
    pub db: Database,
    pub migrated: Migrated,
}

/// The body of a probe that passed.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct ProbeStatus {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    #[schema(pattern = "^(ok|ready)$")]
    pub status: &'static str,
}

/// The process is alive and serving (it checks nothing else).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "infrastructure",
    responses((status = 200, description = "Alive", body = ProbeStatus)),
)]
pub async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus { status: "ok" })
}

/// The database answers and the migrations are applied: the process can serve its API.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "infrastructure",
    responses(
        (status = 200, description = "Ready", body = ProbeStatus,
            example = json!({"status": "ready"})),
        (status = 503, description = "Not ready yet (Retry-After)", body = Problem,
            content_type = "application/problem+json",
            examples(("not-ready" = (summary = "Not ready", value = json!({
                "type": "https://ordermesh.dev/problems/not-ready",
                "title": "Not ready",
                "status": 503,
                "detail": "the database does not answer"
            }))))),
    ),
)]
pub async fn readyz(State(readiness): State<Readiness>) -> Result<Json<ProbeStatus>, Problem> {
    let not_ready = |detail: &str| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready")
            .detail(detail.to_owned())
            .retry_after(1)
    };
    if !readiness.migrated.is_done() {
        return Err(not_ready("database migrations are not applied yet"));
    }
    let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&readiness.db);
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(Json(ProbeStatus { status: "ready" })),
        _ => Err(not_ready("the database does not answer")),
    }
}
