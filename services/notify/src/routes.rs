//! notify-service's HTTP API (called by order-service's outbox only):
//! `POST /api/v1/notifications` and `GET /api/v1/notifications?order_id=…`, each documented by
//! its `#[utoipa::path]` (see `platform::openapi`).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use commerce::contracts::notify::{CreateNotification, Notification, NotificationList};
use platform::{Json, Problem, Query, db::Database};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{domain, store};

/// The routes with their documentation, before the state is given.
pub fn api() -> OpenApiRouter<Database> {
    OpenApiRouter::new().routes(routes!(deliver, list_for_order))
}

pub fn router(db: Database) -> OpenApiRouter {
    api().with_state(db)
}

/// Records a notification once per `(order_id, kind)`.
///
/// 201 when recorded now, 200 when it had been delivered before (the stored one is returned).
#[utoipa::path(
    post,
    path = "/api/v1/notifications",
    tag = "notifications",
    request_body = CreateNotification,
    responses(
        (status = 201, description = "Recorded now", body = Notification,
            links(("NotificationsOfOrder" = (operation_id = "list_for_order", parameters(("query.order_id" = "$response.body#/order_id")))))),
        (status = 200, description = "Delivered before: the stored notification", body = Notification,
            links(("NotificationsOfOrder" = (operation_id = "list_for_order", parameters(("query.order_id" = "$response.body#/order_id")))))),
    ),
)]
async fn deliver(
    axum::extract::State(db): axum::extract::State<Database>,
    Json(request): Json<CreateNotification>,
) -> Result<Response, Problem> {
    domain::validate(&request).map_err(Problem::invalid_fields)?;
    platform::context::record_order_id(&request.order_id);
    let (notification, created) = store::deliver_once(&db, &request).await?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ByOrder {
    /// The order whose notifications to list.
    order_id: Uuid,
}

/// The notifications delivered for an order, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "notifications",
    params(ByOrder),
    responses((status = 200, description = "The order's notifications", body = NotificationList)),
)]
async fn list_for_order(
    axum::extract::State(db): axum::extract::State<Database>,
    Query(ByOrder { order_id }): Query<ByOrder>,
) -> Result<axum::Json<NotificationList>, Problem> {
    platform::context::record_order_id(&order_id);
    let items = store::for_order(&db, order_id).await?;
    Ok(axum::Json(NotificationList { items }))
}
