//! notify-service's HTTP API (called by order-service's outbox only):
//! `POST /api/v1/notifications` and `GET /api/v1/notifications?order_id=…`.

use axum::{
    Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use commerce::contracts::notify::{CreateNotification, NotificationList};
use platform::{Json, Problem, Query};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{domain, store};

pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/api/v1/notifications", post(deliver).get(list_for_order))
        .with_state(pool)
}

/// 201 when recorded now, 200 when it had been delivered before (the stored one is returned).
async fn deliver(
    axum::extract::State(pool): axum::extract::State<PgPool>,
    Json(request): Json<CreateNotification>,
) -> Result<Response, Problem> {
    domain::validate(&request).map_err(Problem::invalid_fields)?;
    platform::context::record_order_id(&request.order_id);
    let (notification, created) = store::deliver_once(&pool, &request).await?;
    if created {
        let kind: &'static str = notification.kind.into();
        metrics::counter!("notify_notifications_delivered_total", "kind" => kind).increment(1);
        tracing::info!(kind, "notification delivered");
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(notification)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByOrder {
    order_id: Uuid,
}

async fn list_for_order(
    axum::extract::State(pool): axum::extract::State<PgPool>,
    Query(ByOrder { order_id }): Query<ByOrder>,
) -> Result<axum::Json<NotificationList>, Problem> {
    platform::context::record_order_id(&order_id);
    let items = store::for_order(&pool, order_id).await?;
    Ok(axum::Json(NotificationList { items }))
}
