//! SQL for orders and the outbox. Each public function is one statement or one transaction, run
//! inside a `db.*` span tagged with the order it touches.

use chrono::{DateTime, Utc};
use commerce::contracts::{notify::NotificationKind, payment::PaymentMethod};
use platform::db::{self, Database, Text};
use serde::Serialize;
use sqlx::types::Json;
use trace_context::StoredContext;
use uuid::Uuid;

use crate::domain::{
    FailureCause, IdempotencyKey, NewOrder, OrderLine, OrderStatus, PaymentOutcome,
};

/// What recording an outcome or cancelling did: the order as it now stands, and whether this call moved it
/// (a concurrent caller may have got there first).
pub type Moved = (Order, bool);

/// An order as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "0190f3a2-5b7c-7d1e-8f20-3a4b5c6d7e8f",
    "status": "CONFIRMED",
    "failure_reason": null,
    "customer_id": "c-1",
    "currency": "EUR",
    "total_amount": 3998,
    "payment_method": "card",
    "items": [{"sku": "SKU-001", "quantity": 2, "expected_unit_price": 1999, "unit_price": 1999}],
    "payment_id": "0190f3a2-6c8d-7e2f-9a31-4b5c6d7e8f90",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "created_at": "2026-12-02T10:15:30.012345Z",
    "updated_at": "2026-12-02T10:15:30.345678Z"
}))]
pub struct Order {
    pub id: Uuid,
    #[schema(value_type = OrderStatus)]
    pub status: Text<OrderStatus>,
    /// Why a `FAILED` order failed; `null` otherwise.
    #[schema(value_type = Option<FailureCause>)]
    pub failure_reason: Option<Text<FailureCause>>,
    pub customer_id: String,
    #[schema(schema_with = commerce::schemas::currency)]
    pub currency: String,
    /// The total charged (catalog prices); `null` until the payment is captured.
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub total_amount: Option<i64>,
    #[schema(value_type = PaymentMethod)]
    pub payment_method: Text<PaymentMethod>,
    #[sqlx(json)]
    pub items: Vec<OrderLine>,
    /// The payment, once payment-service has answered with one.
    pub payment_id: Option<Uuid>,
    /// The trace that created the order (W3C trace id), when it was sampled.
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub request_hash: String,
    /// The creating request's trace headers (see migration 0003).
    #[serde(skip)]
    #[sqlx(json)]
    pub trace_context: StoredContext,
}

impl Order {
    pub fn status(&self) -> OrderStatus {
        self.status.0
    }
}

const ORDER_COLUMNS: &str = "id, status, failure_reason, customer_id, currency, total_amount, \
    payment_method, items, payment_id, trace_id, created_at, updated_at, request_hash, trace_context";

/// The result of storing an order under an idempotency key.
pub enum Stored {
    Created(Order),
    /// An order already holds this key (created by an earlier or concurrent request).
    Existing(Order),
}

/// Inserts a `PENDING` order unless one already holds `key`.
#[tracing::instrument(name = "db.insert_order", skip_all, fields(order_id = tracing::field::Empty))]
pub async fn insert_pending(
    db: &Database,
    key: &IdempotencyKey,
    order: &NewOrder,
    trace_id: Option<String>,
    trace_context: &StoredContext,
) -> Result<Stored, sqlx::Error> {
    let id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(id));
    let inserted: Option<Order> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO orders (id, idempotency_key, request_hash, status, customer_id, currency,
                             payment_method, items, trace_id, trace_context)
         VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING {ORDER_COLUMNS}"
    )))
    .bind(id)
    .bind(key.as_str())
    .bind(order.request_hash())
    .bind(&order.customer_id)
    .bind(order.currency.code())
    .bind(Text(order.payment_method))
    .bind(Json(order.stored_lines()))
    .bind(trace_id)
    .bind(Json(trace_context))
    .fetch_optional(db)
    .await?;
    match inserted {
        Some(order) => Ok(Stored::Created(order)),
        None => {
            let existing: Order = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1"
            )))
            .bind(key.as_str())
            .fetch_one(db)
            .await?;
            Ok(Stored::Existing(existing))
        }
    }
}

#[tracing::instrument(name = "db.get_order", skip_all, fields(order_id = %id))]
pub async fn get(db: &Database, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The order `id`, which must exist (this transaction or an earlier one stored it).
async fn existing(db: &Database, id: Uuid) -> Result<Order, sqlx::Error> {
    get(db, id)
        .await?
        .ok_or_else(|| db::unexpected(format_args!("order {id} is gone")))
}

/// One page of orders, newest first, optionally of one status, after the `before` cursor.
#[tracing::instrument(name = "db.list_orders", skip_all)]
pub async fn list(
    db: &Database,
    status: Option<OrderStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(status.map(Text))
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Moves a `PENDING` order to the end state its payment's outcome gives it (a confirmed one with
/// its charged lines and total) and queues its notification, in one statement.
#[tracing::instrument(name = "db.record_outcome", skip_all, fields(order_id = %id))]
pub async fn record_outcome(
    db: &Database,
    id: Uuid,
    outcome: &PaymentOutcome,
    message: &str,
    trace_context: &StoredContext,
) -> Result<Moved, sqlx::Error> {
    let (status, reason, payment_id, total, lines, kind) = match outcome {
        PaymentOutcome::Confirmed {
            payment_id,
            total,
            lines,
        } => (
            OrderStatus::Confirmed,
            None,
            Some(*payment_id),
            Some(*total),
            Some(Json(lines.clone())),
            NotificationKind::OrderConfirmed,
        ),
        PaymentOutcome::Failed(cause) => (
            OrderStatus::Failed,
            Some(Text(*cause)),
            None,
            None,
            None,
            NotificationKind::OrderFailed,
        ),
        PaymentOutcome::Undecided => return Ok((existing(db, id).await?, false)),
    };
    let sql = transition_sql(
        "status = $2, failure_reason = $3, payment_id = $4, total_amount = $5,
         items = coalesce($6, items)",
        OrderStatus::Pending,
        7,
    );
    let moved: Option<Order> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(Text(status))
        .bind(reason)
        .bind(payment_id)
        .bind(total)
        .bind(lines)
        .bind(Text(kind))
        .bind(message)
        .bind(Json(trace_context))
        .fetch_optional(db)
        .await?;
    moved_or_current(db, id, moved).await
}

/// `CONFIRMED` → `CANCELLING`: the cancel is recorded before any money moves, so that a crash
/// leaves an order the reconciler finishes. `false` when the order was not `CONFIRMED`.
#[tracing::instrument(name = "db.begin_cancel", skip_all, fields(order_id = %id))]
pub async fn begin_cancel(db: &Database, id: Uuid) -> Result<Moved, sqlx::Error> {
    let updated: Option<Order> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET status = 'CANCELLING', updated_at = now()
         WHERE id = $1 AND status = 'CONFIRMED'
         RETURNING {ORDER_COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?;
    moved_or_current(db, id, updated).await
}

/// `CANCELLING` → `CANCELLED` once the payment is refunded, and the cancellation notice queued,
/// in one statement.
#[tracing::instrument(name = "db.finish_cancel", skip_all, fields(order_id = %id))]
pub async fn finish_cancel(
    db: &Database,
    id: Uuid,
    message: &str,
    trace_context: &StoredContext,
) -> Result<Moved, sqlx::Error> {
    let sql = transition_sql("status = 'CANCELLED'", OrderStatus::Cancelling, 2);
    let moved: Option<Order> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(Text(NotificationKind::OrderCancelled))
        .bind(message)
        .bind(Json(trace_context))
        .fetch_optional(db)
        .await?;
    moved_or_current(db, id, moved).await
}

/// One statement that moves the order `$1` out of `from` (setting `set`) and queues its
/// notification (kind, message and trace context in the parameters from `$outbox`), so both
/// happen or neither: PostgreSQL runs the INSERT to completion with the UPDATE, and only for the
/// row the UPDATE moved.
fn transition_sql(set: &str, from: OrderStatus, outbox: usize) -> String {
    let (kind, message, trace) = (outbox, outbox + 1, outbox + 2);
    let from: &'static str = from.into();
    format!(
        "WITH moved AS (
             UPDATE orders SET {set}, updated_at = now()
             WHERE id = $1 AND status = '{from}'
             RETURNING {ORDER_COLUMNS}),
         queued AS (
             INSERT INTO outbox (order_id, kind, message, trace_context)
             SELECT id, ${kind}, ${message}, ${trace} FROM moved
             ON CONFLICT (order_id, kind) DO NOTHING)
         SELECT {ORDER_COLUMNS} FROM moved"
    )
}

/// What a transition did: the moved order, or (when another caller moved it first) the order as
/// it now stands.
async fn moved_or_current(
    db: &Database,
    id: Uuid,
    moved: Option<Order>,
) -> Result<Moved, sqlx::Error> {
    match moved {
        Some(order) => Ok((order, true)),
        None => Ok((existing(db, id).await?, false)),
    }
}

/// Claims up to `limit` orders that have been `PENDING` or `CANCELLING` for longer than
/// `older_than` by touching them, so that another replica's reconciler does not pick the same
/// ones at once.
#[tracing::instrument(name = "db.claim_stuck_orders", skip_all)]
pub async fn claim_stuck(
    db: &Database,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET updated_at = now()
         WHERE id IN (
             SELECT id FROM orders
             WHERE status IN ('PENDING', 'CANCELLING')
               AND updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2
             FOR UPDATE SKIP LOCKED)
         RETURNING {ORDER_COLUMNS}"
    )))
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEntry {
    pub id: i64,
    pub order_id: Uuid,
    pub kind: Text<NotificationKind>,
    pub message: String,
    pub attempts: i32,
    /// The settling request's trace headers.
    #[sqlx(json)]
    pub trace_context: StoredContext,
}

/// Claims up to `limit` entries due for delivery, oldest first, in one statement: each is leased
/// for `lease` (its next attempt moved that far ahead), so that no other dispatcher takes it while
/// it is being delivered — outside any transaction — and a dispatcher that dies mid-delivery
/// leaves it due again once the lease is over (at-least-once; notify-service keeps one delivery
/// per order and kind). The dispatcher's bookkeeping spans are `debug`: a poll every second
/// would otherwise start a trace of its own each time.
#[tracing::instrument(level = "debug", name = "db.claim_outbox_entries", skip_all)]
pub async fn claim_due_outbox_entries(
    db: &Database,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<OutboxEntry>, sqlx::Error> {
    let mut entries: Vec<OutboxEntry> = sqlx::query_as(
        "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (
             SELECT id FROM outbox
             WHERE delivered_at IS NULL AND next_attempt_at <= now()
             ORDER BY id LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, order_id, kind, message, attempts, trace_context",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await?;
    entries.sort_by_key(|entry| entry.id);
    Ok(entries)
}

/// Records these entries as delivered, all in one statement.
#[tracing::instrument(level = "debug", name = "db.mark_delivered", skip_all, fields(entries = ids.len()))]
pub async fn mark_delivered(db: &Database, ids: &[i64]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await
        .map(drop)
}

#[tracing::instrument(level = "debug", name = "db.mark_failed_attempt", skip_all, fields(outbox_id = id))]
pub async fn mark_failed_attempt(
    db: &Database,
    id: i64,
    retry_in: std::time::Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $3,
                next_attempt_at = now() + make_interval(secs => $2)
         WHERE id = $1",
    )
    .bind(id)
    .bind(retry_in.as_secs_f64())
    .bind(error)
    .execute(db)
    .await
    .map(drop)
}

/// How many notifications are waiting to be delivered.
pub async fn outbox_depth(db: &Database) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
        .fetch_one(db)
        .await
}
