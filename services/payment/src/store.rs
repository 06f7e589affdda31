//! SQL for payments. Every status change is a conditional UPDATE from the one status it may
//! leave (`AUTHORIZED` for pricing, capture and void, `CAPTURED` for refund), so concurrent or
//! repeated requests can race freely: exactly one of them moves the payment, the others read the
//! result.

use chrono::{DateTime, Utc};
use commerce::contracts::{
    LineItem, PricedLine,
    payment::{FailureReason, Payment, PaymentMethod, PaymentStatus},
};
use platform::db::{self, Database, Text};
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{PaymentRequest, Terms};

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    order_id: Uuid,
    status: Text<PaymentStatus>,
    failure_reason: Option<Text<FailureReason>>,
    amount: Option<i64>,
    requested_amount: Option<i64>,
    currency: String,
    payment_method: Text<PaymentMethod>,
    items: Json<Vec<LineItem>>,
    priced_items: Json<Vec<PricedLine>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, order_id, status, failure_reason, amount, requested_amount, currency, \
                       payment_method, items, priced_items, created_at, updated_at";

/// A stored payment: what the API shows, and what it was asked for.
#[derive(Debug, Clone)]
pub struct Stored {
    pub payment: Payment,
    pub terms: Terms,
}

impl From<Row> for Stored {
    fn from(row: Row) -> Self {
        Stored {
            payment: Payment {
                id: row.id,
                order_id: row.order_id,
                status: row.status.0,
                failure_reason: row.failure_reason.map(|reason| reason.0),
                amount: row.amount,
                currency: row.currency.clone(),
                items: row.priced_items.0,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            terms: Terms {
                requested_amount: row.requested_amount,
                currency: row.currency,
                method: row.payment_method.0,
                items: row.items.0,
            },
        }
    }
}

/// A payment found by its id, its order recorded on the current span (found by id, the order is
/// known only now).
fn found_payment(row: Row) -> Stored {
    tracing::Span::current().record("order_id", tracing::field::display(row.order_id));
    row.into()
}

/// Stores a new payment in its initial status unless the order already has one; returns the
/// stored payment and whether this call created it.
#[tracing::instrument(name = "db.insert_payment", skip_all, fields(order_id = %request.order_id))]
pub async fn insert_or_find(
    db: &Database,
    request: &PaymentRequest,
) -> Result<(Stored, bool), sqlx::Error> {
    let (status, reason) = request.initial_status();
    let inserted: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payments
             (id, order_id, status, failure_reason, requested_amount, currency, payment_method, items)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(request.order_id)
    .bind(Text(status))
    .bind(reason.map(Text))
    .bind(request.requested_amount.map(|a| a.get()))
    .bind(request.currency.code())
    .bind(Text(request.method))
    .bind(Json(request.items()))
    .fetch_optional(db)
    .await?;
    if let Some(row) = inserted {
        return Ok((row.into(), true));
    }
    let existing = by_order(db, request.order_id)
        .await?
        .ok_or_else(|| db::unexpected("a conflicting payment row is gone"))?;
    Ok((existing, false))
}

#[tracing::instrument(name = "db.get_payment", skip_all, fields(payment_id = %id, order_id = tracing::field::Empty))]
pub async fn by_id(db: &Database, id: Uuid) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(found_payment))
}

#[tracing::instrument(name = "db.get_payment_of_order", skip_all, fields(%order_id))]
pub async fn by_order(db: &Database, order_id: Uuid) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1"
    )))
    .bind(order_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Stored::from))
}

/// The amount and lines of the order's priced reservation: what a capture charges.
#[derive(Debug, Clone)]
pub struct Priced {
    pub amount: i64,
    pub lines: Vec<PricedLine>,
}

/// Moves the order's payment out of `AUTHORIZED` into `status` (with `reason`, and the priced
/// amount and lines when its stock was reserved), unless another request already moved it;
/// returns the payment as it now is.
#[tracing::instrument(name = "db.finish_payment", skip_all, fields(%order_id))]
pub async fn finish_authorized(
    db: &Database,
    order_id: Uuid,
    status: PaymentStatus,
    reason: Option<FailureReason>,
    priced: Option<&Priced>,
) -> Result<Stored, sqlx::Error> {
    let moved: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = $2, failure_reason = $3,
                amount = coalesce($4, amount), priced_items = coalesce($5, priced_items),
                updated_at = now()
         WHERE order_id = $1 AND status = 'AUTHORIZED'
         RETURNING {COLUMNS}"
    )))
    .bind(order_id)
    .bind(Text(status))
    .bind(reason.map(Text))
    .bind(priced.map(|p| p.amount))
    .bind(priced.map(|p| Json(&p.lines)))
    .fetch_optional(db)
    .await?;
    match moved {
        Some(row) => Ok(row.into()),
        None => by_order(db, order_id)
            .await?
            .ok_or_else(|| db::unexpected("an authorized payment row is gone")),
    }
}

/// `CAPTURED` → `REFUNDED`; `None` when the payment was not captured (or does not exist).
#[tracing::instrument(name = "db.refund_payment", skip_all, fields(payment_id = %id, order_id = tracing::field::Empty))]
pub async fn refund(db: &Database, id: Uuid) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = 'REFUNDED', updated_at = now()
         WHERE id = $1 AND status = 'CAPTURED'
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(found_payment))
}
