//! SQL for notifications.

use commerce::contracts::notify::{CreateNotification, Notification, NotificationKind};
use platform::db::{Database, Text};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    order_id: Uuid,
    kind: Text<NotificationKind>,
    message: String,
    delivered_at: chrono::DateTime<chrono::Utc>,
}

impl From<Row> for Notification {
    fn from(row: Row) -> Self {
        Notification {
            id: row.id,
            order_id: row.order_id,
            kind: row.kind.0,
            message: row.message,
            delivered_at: row.delivered_at,
        }
    }
}

/// Records the notification unless one exists for `(order_id, kind)`; returns the stored one
/// and whether this call created it.
#[tracing::instrument(name = "db.record_notification", skip_all, fields(order_id = %request.order_id))]
pub async fn deliver_once(
    db: &Database,
    request: &CreateNotification,
) -> Result<(Notification, bool), sqlx::Error> {
    let inserted: Option<Row> = sqlx::query_as(
        "INSERT INTO notifications (id, order_id, kind, message) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id, kind) DO NOTHING
         RETURNING id, order_id, kind, message, delivered_at",
    )
    .bind(Uuid::now_v7())
    .bind(request.order_id)
    .bind(Text(request.kind))
    .bind(&request.message)
    .fetch_optional(db)
    .await?;
    if let Some(row) = inserted {
        return Ok((row.into(), true));
    }
    let existing: Row = sqlx::query_as(
        "SELECT id, order_id, kind, message, delivered_at FROM notifications
         WHERE order_id = $1 AND kind = $2",
    )
    .bind(request.order_id)
    .bind(Text(request.kind))
    .fetch_one(db)
    .await?;
    Ok((existing.into(), false))
}

#[tracing::instrument(name = "db.notifications_for_order", skip_all, fields(%order_id))]
pub async fn for_order(db: &Database, order_id: Uuid) -> Result<Vec<Notification>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, order_id, kind, message, delivered_at FROM notifications
         WHERE order_id = $1 ORDER BY delivered_at, id",
    )
    .bind(order_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}
