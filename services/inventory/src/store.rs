//! SQL for items and reservations. Every multi-row change is one transaction, and every
//! transaction locks rows in the same order — the order's reservation row first, then its items
//! in SKU order — so concurrent requests queue instead of deadlocking.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use commerce::contracts::{
    LineItem,
    inventory::{Item, Reservation},
};
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use crate::domain::{self, ReservationRequest, Settle, State, Transition};

#[derive(sqlx::FromRow)]
struct ItemRow {
    sku: String,
    available: i64,
    reserved: i64,
    committed: i64,
}

impl From<ItemRow> for Item {
    fn from(row: ItemRow) -> Self {
        Item {
            sku: row.sku,
            available: row.available,
            reserved: row.reserved,
            committed: row.committed,
        }
    }
}

/// Sets the available units of `sku`, creating the item if needed; reserved and committed
/// units are left as they are.
pub async fn set_available(pool: &PgPool, sku: &str, available: i64) -> Result<Item, sqlx::Error> {
    let row: ItemRow = sqlx::query_as(
        "INSERT INTO items (sku, available) VALUES ($1, $2)
         ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
         RETURNING sku, available, reserved, committed",
    )
    .bind(sku)
    .bind(available)
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

pub async fn item(pool: &PgPool, sku: &str) -> Result<Option<Item>, sqlx::Error> {
    let row: Option<ItemRow> =
        sqlx::query_as("SELECT sku, available, reserved, committed FROM items WHERE sku = $1")
            .bind(sku)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(Item::from))
}

/// A reservation record as stored.
#[derive(Debug, sqlx::FromRow)]
struct RecordRow {
    order_id: Uuid,
    status: String,
    items: Json<Vec<LineItem>>,
    rejected_sku: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An order's reservation record, its state decoded.
#[derive(Debug, Clone)]
pub struct Record {
    pub order_id: Uuid,
    pub state: State,
    pub items: Vec<LineItem>,
    pub rejected_sku: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<RecordRow> for Record {
    type Error = sqlx::Error;

    /// An unknown status cannot pass the table's CHECK; if one appears it is a database error.
    fn try_from(row: RecordRow) -> Result<Self, Self::Error> {
        let state = State::parse(&row.status).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown reservation status {:?}", row.status).into())
        })?;
        Ok(Record {
            order_id: row.order_id,
            state,
            items: row.items.0,
            rejected_sku: row.rejected_sku,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl Record {
    /// The contract view, or `None` for a rejected request (no reservation holds stock).
    pub fn to_reservation(&self) -> Option<Reservation> {
        self.state.visible().map(|status| Reservation {
            order_id: self.order_id,
            status,
            items: self.items.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const RECORD_COLUMNS: &str = "order_id, status, items, rejected_sku, created_at, updated_at";

/// What `reserve` did.
#[derive(Debug)]
pub enum Reserved {
    /// This call reserved every line.
    Created(Record),
    /// This call found a line short (or unknown) and recorded the refusal; no stock moved.
    Rejected { sku: String },
    /// A record for the order already existed; nothing changed.
    Existing(Record),
}

/// Reserves every line of `request` or none, in one transaction, once per order.
///
/// The reservation row is inserted first (`ON CONFLICT DO NOTHING`): a concurrent request for
/// the same order waits on that row and then finds it. The items are then locked in SKU order,
/// checked, and either all taken or the record is marked `REJECTED`.
pub async fn reserve(pool: &PgPool, request: &ReservationRequest) -> Result<Reserved, sqlx::Error> {
    platform::telemetry::in_span(
        "db.reserve_stock",
        Some(request.order_id),
        reserve_tx(pool, request),
    )
    .await
}

async fn reserve_tx(pool: &PgPool, request: &ReservationRequest) -> Result<Reserved, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted: Option<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO reservations (order_id, status, items) VALUES ($1, 'RESERVED', $2)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING {RECORD_COLUMNS}"
    )))
    .bind(request.order_id)
    .bind(Json(request.items()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = inserted else {
        let existing = record_by_order(&mut tx, request.order_id, false).await?;
        tx.commit().await?;
        return existing
            .map(Reserved::Existing)
            .ok_or(sqlx::Error::RowNotFound);
    };
    let available = lock_items(&mut tx, &request.skus()).await?;
    if let Some(sku) = domain::first_shortage(&request.lines, &available) {
        let sku = sku.as_str().to_owned();
        sqlx::query(
            "UPDATE reservations SET status = 'REJECTED', rejected_sku = $2, updated_at = now()
             WHERE order_id = $1",
        )
        .bind(request.order_id)
        .bind(&sku)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Reserved::Rejected { sku });
    }
    for line in &request.lines {
        take_available(&mut tx, line.sku.as_str(), line.quantity.get()).await?;
    }
    tx.commit().await?;
    Ok(Reserved::Created(row.try_into()?))
}

/// Locks the rows of `skus` in SKU order and returns their available units.
async fn lock_items(
    conn: &mut PgConnection,
    skus: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT sku, available FROM items WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
    )
    .bind(skus)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Moves `quantity` units of `sku` from available to reserved. The `available >= $2` guard (and
/// the table's CHECK) make a shortfall an error rather than negative stock.
async fn take_available(
    conn: &mut PgConnection,
    sku: &str,
    quantity: i64,
) -> Result<(), sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE items SET available = available - $2, reserved = reserved + $2, updated_at = now()
         WHERE sku = $1 AND available >= $2",
    )
    .bind(sku)
    .bind(quantity)
    .execute(conn)
    .await?;
    expect_one_row(moved.rows_affected(), sku)
}

fn expect_one_row(rows: u64, sku: &str) -> Result<(), sqlx::Error> {
    if rows == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "stock of `{sku}` changed under its row lock"
        )))
    }
}

async fn record_by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    for_update: bool,
) -> Result<Option<Record>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row: Option<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM reservations WHERE order_id = $1{lock}"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(Record::try_from).transpose()
}

pub async fn reservation(pool: &PgPool, order_id: Uuid) -> Result<Option<Record>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    record_by_order(&mut conn, order_id, false).await
}

/// What `settle` did.
#[derive(Debug)]
pub enum Settled {
    /// Moved now (`true`) or already in the target state (`false`).
    Done(Record, bool),
    /// In the opposite final state.
    Refused(State),
    /// No reservation for the order.
    Missing,
}

/// Commits or releases the order's reservation, moving its units out of `reserved`, in one
/// transaction under the reservation's row lock.
pub async fn settle(pool: &PgPool, order_id: Uuid, settle: Settle) -> Result<Settled, sqlx::Error> {
    platform::telemetry::in_span(
        "db.settle_reservation",
        Some(order_id),
        settle_tx(pool, order_id, settle),
    )
    .await
}

async fn settle_tx(pool: &PgPool, order_id: Uuid, settle: Settle) -> Result<Settled, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(record) = record_by_order(&mut tx, order_id, true).await? else {
        return Ok(Settled::Missing);
    };
    match domain::transition(settle, record.state) {
        Transition::Missing => Ok(Settled::Missing),
        Transition::Refuse(state) => Ok(Settled::Refused(state)),
        Transition::Unchanged => Ok(Settled::Done(record, false)),
        Transition::Apply => {
            for line in &record.items {
                move_reserved(&mut tx, settle, &line.sku, line.quantity).await?;
            }
            let updated: RecordRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1
                 RETURNING {RECORD_COLUMNS}"
            )))
            .bind(order_id)
            .bind(settle.target().as_str())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Settled::Done(updated.try_into()?, true))
        }
    }
}

/// Moves units out of `reserved`: to `committed` (sold) or back to `available`.
async fn move_reserved(
    conn: &mut PgConnection,
    settle: Settle,
    sku: &str,
    quantity: i64,
) -> Result<(), sqlx::Error> {
    let sql = match settle {
        Settle::Commit => {
            "UPDATE items SET reserved = reserved - $2, committed = committed + $2, updated_at = now()
             WHERE sku = $1 AND reserved >= $2"
        }
        Settle::Release => {
            "UPDATE items SET reserved = reserved - $2, available = available + $2, updated_at = now()
             WHERE sku = $1 AND reserved >= $2"
        }
    };
    let moved = sqlx::query(sql)
        .bind(sku)
        .bind(quantity)
        .execute(conn)
        .await?;
    expect_one_row(moved.rows_affected(), sku)
}
