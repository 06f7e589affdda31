//! SQL for notifications.

use commerce::contracts::notify::{CreateNotification, Notification, NotificationKind};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    order_id: Uuid,
    kind: String,
    message: String,
    delivered_at: chrono::DateTime<chrono::Utc>,
}

impl Row {
    fn into_notification(self) -> Option<Notification> {
        let kind = NotificationKind::parse(&self.kind)?;
        Some(Notification {
            id: self.id,
            order_id: self.order_id,
            kind,
            message: self.message,
            delivered_at: self.delivered_at,
        })
    }
}

/// Records the notification unless one exists for `(order_id, kind)`; returns the stored one
/// and whether this call created it.
pub async fn deliver_once(
    pool: &PgPool,
    request: &CreateNotification,
) -> Result<(Notification, bool), sqlx::Error> {
    platform::telemetry::in_span(
        "db.record_notification",
        Some(request.order_id),
        deliver_once_tx(pool, request),
    )
    .await
}

async fn deliver_once_tx(
    pool: &PgPool,
    request: &CreateNotification,
) -> Result<(Notification, bool), sqlx::Error> {
    let inserted: Option<Row> = sqlx::query_as(
        "INSERT INTO notifications (id, order_id, kind, message) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id, kind) DO NOTHING
         RETURNING id, order_id, kind, message, delivered_at",
    )
    .bind(Uuid::now_v7())
    .bind(request.order_id)
    .bind(request.kind.as_str())
    .bind(&request.message)
    .fetch_optional(pool)
    .await?;
    let (row, created) = match inserted {
        Some(row) => (row, true),
        None => (
            sqlx::query_as(
                "SELECT id, order_id, kind, message, delivered_at FROM notifications
                 WHERE order_id = $1 AND kind = $2",
            )
            .bind(request.order_id)
            .bind(request.kind.as_str())
            .fetch_one(pool)
            .await?,
            false,
        ),
    };
    let notification = row.into_notification().ok_or(sqlx::Error::RowNotFound)?;
    Ok((notification, created))
}

pub async fn for_order(pool: &PgPool, order_id: Uuid) -> Result<Vec<Notification>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, order_id, kind, message, delivered_at FROM notifications
         WHERE order_id = $1 ORDER BY delivered_at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(Row::into_notification)
        .collect())
}
