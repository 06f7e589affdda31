//! SQL for payments. Every status change is a conditional UPDATE from the one status it may
//! leave (`AUTHORIZED` for pricing, capture and void, `CAPTURED` for refund), so concurrent or
//! repeated requests can race freely: exactly one of them moves the payment, the others read the
//! result.

use chrono::{DateTime, Utc};
use commerce::contracts::{
    LineItem, PricedLine,
    payment::{FailureReason, Payment, PaymentStatus},
};
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

use crate::domain::{self, PaymentRequest, Terms};

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    order_id: Uuid,
    status: String,
    failure_reason: Option<String>,
    amount: Option<i64>,
    requested_amount: Option<i64>,
    currency: String,
    payment_method: String,
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

impl TryFrom<Row> for Stored {
    type Error = sqlx::Error;

    /// Spellings the table's CHECKs allow always decode; anything else is a database error.
    fn try_from(row: Row) -> Result<Self, Self::Error> {
        let status =
            domain::parse_status(&row.status).ok_or_else(|| decode_error("status", &row.status))?;
        let failure_reason = row
            .failure_reason
            .as_deref()
            .map(|r| domain::parse_reason(r).ok_or_else(|| decode_error("failure_reason", r)))
            .transpose()?;
        Ok(Stored {
            payment: Payment {
                id: row.id,
                order_id: row.order_id,
                status,
                failure_reason,
                amount: row.amount,
                currency: row.currency.clone(),
                items: row.priced_items.0,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            terms: Terms {
                requested_amount: row.requested_amount,
                currency: row.currency,
                method: row.payment_method,
                items: row.items.0,
            },
        })
    }
}

fn decode_error(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown payments.{column} {value:?}").into())
}

fn decode(row: Option<Row>) -> Result<Option<Stored>, sqlx::Error> {
    row.map(Stored::try_from).transpose()
}

/// Stores a new payment in its initial status unless the order already has one; returns the
/// stored payment and whether this call created it.
pub async fn insert_or_find(
    pool: &PgPool,
    request: &PaymentRequest,
) -> Result<(Stored, bool), sqlx::Error> {
    platform::telemetry::in_span(
        "db.insert_payment",
        Some(request.order_id),
        insert_or_find_tx(pool, request),
    )
    .await
}

async fn insert_or_find_tx(
    pool: &PgPool,
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
    .bind(domain::status_str(status))
    .bind(reason.map(domain::reason_str))
    .bind(request.requested_amount.map(|a| a.get()))
    .bind(request.currency.code())
    .bind(domain::method_str(request.method))
    .bind(Json(request.items()))
    .fetch_optional(pool)
    .await?;
    if let Some(stored) = decode(inserted)? {
        return Ok((stored, true));
    }
    let existing = by_order(pool, request.order_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((existing, false))
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Stored>, sqlx::Error> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    decode(row)
}

pub async fn by_order(pool: &PgPool, order_id: Uuid) -> Result<Option<Stored>, sqlx::Error> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1"
    )))
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    decode(row)
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
pub async fn finish_authorized(
    pool: &PgPool,
    order_id: Uuid,
    status: PaymentStatus,
    reason: Option<FailureReason>,
    priced: Option<&Priced>,
) -> Result<Stored, sqlx::Error> {
    platform::telemetry::in_span(
        "db.finish_payment",
        Some(order_id),
        finish_authorized_tx(pool, order_id, status, reason, priced),
    )
    .await
}

async fn finish_authorized_tx(
    pool: &PgPool,
    order_id: Uuid,
    status: PaymentStatus,
    reason: Option<FailureReason>,
    priced: Option<&Priced>,
) -> Result<Stored, sqlx::Error> {
    let moved = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = $2, failure_reason = $3,
                amount = coalesce($4, amount), priced_items = coalesce($5, priced_items),
                updated_at = now()
         WHERE order_id = $1 AND status = 'AUTHORIZED'
         RETURNING {COLUMNS}"
    )))
    .bind(order_id)
    .bind(domain::status_str(status))
    .bind(reason.map(domain::reason_str))
    .bind(priced.map(|p| p.amount))
    .bind(priced.map(|p| Json(&p.lines)))
    .fetch_optional(pool)
    .await?;
    match decode(moved)? {
        Some(stored) => Ok(stored),
        None => by_order(pool, order_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

/// `CAPTURED` → `REFUNDED`; `None` when the payment was not captured (or does not exist).
pub async fn refund(pool: &PgPool, id: Uuid) -> Result<Option<Stored>, sqlx::Error> {
    let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = 'REFUNDED', updated_at = now()
         WHERE id = $1 AND status = 'CAPTURED'
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    decode(row)
}
