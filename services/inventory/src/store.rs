//! SQL for items (stock and catalog price) and reservations. Every multi-row change is one
//! transaction, and every transaction locks rows in the same order — the order's reservation row
//! first, then its items in SKU order — so concurrent requests queue instead of deadlocking, and
//! a reservation is priced from exactly the rows it takes stock from.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use commerce::contracts::{
    LineItem, PricedLine,
    inventory::{Item, Reservation},
};
use platform::db::{self, Database, Text};
use sqlx::{Connection, PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{
    self, Bucket, CatalogEntry, ItemUpdate, Pricing, RecordState, Refusal, ReservationAction,
    ReservationRequest, Transition,
};

#[derive(sqlx::FromRow)]
struct ItemRow {
    sku: String,
    available: i64,
    reserved: i64,
    committed: i64,
    unit_price: i64,
    currency: String,
}

impl From<ItemRow> for Item {
    fn from(row: ItemRow) -> Self {
        Item {
            sku: row.sku,
            available: row.available,
            reserved: row.reserved,
            committed: row.committed,
            unit_price: row.unit_price,
            currency: row.currency,
        }
    }
}

const ITEM_COLUMNS: &str = "sku, available, reserved, committed, unit_price, currency";

/// Sets the available units and the catalog price of `sku`, creating the item if needed;
/// reserved and committed units are left as they are (and so are the prices reservations
/// already hold).
#[tracing::instrument(name = "db.set_item", skip_all, fields(%sku))]
pub async fn set_item(db: &Database, sku: &str, update: &ItemUpdate) -> Result<Item, sqlx::Error> {
    let row: ItemRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items (sku, available, unit_price, currency) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available,
             unit_price = EXCLUDED.unit_price, currency = EXCLUDED.currency, updated_at = now()
         RETURNING {ITEM_COLUMNS}"
    )))
    .bind(sku)
    .bind(update.available)
    .bind(update.unit_price.get())
    .bind(update.currency.code())
    .fetch_one(db)
    .await?;
    Ok(row.into())
}

#[tracing::instrument(name = "db.get_item", skip_all, fields(%sku))]
pub async fn item(db: &Database, sku: &str) -> Result<Option<Item>, sqlx::Error> {
    let row: Option<ItemRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE sku = $1"
    )))
    .bind(sku)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Item::from))
}

/// A reservation record as stored.
#[derive(Debug, sqlx::FromRow)]
struct RecordRow {
    order_id: Uuid,
    status: Text<RecordState>,
    items: Json<Vec<LineItem>>,
    rejected_sku: Option<String>,
    rejected_reason: Option<Text<Refusal>>,
    currency: Option<String>,
    priced_items: Option<Json<Vec<PricedLine>>>,
    amount: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An order's reservation record, its state decoded.
#[derive(Debug, Clone)]
pub struct Record {
    pub order_id: Uuid,
    pub state: RecordState,
    /// The request as sent (sorted by SKU, expected prices included).
    pub items: Vec<LineItem>,
    pub currency: String,
    /// Why a `REJECTED` record was refused, and which line.
    pub refused: Option<(String, Refusal)>,
    /// The lines priced from the catalog and their total (`None` for a refused record).
    pub priced: Option<(Vec<PricedLine>, i64)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RecordRow> for Record {
    fn from(row: RecordRow) -> Self {
        Record {
            order_id: row.order_id,
            state: row.status.0,
            items: row.items.0,
            currency: row.currency.unwrap_or_default(),
            refused: row
                .rejected_sku
                .zip(row.rejected_reason.map(|reason| reason.0)),
            priced: row.priced_items.map(|p| p.0).zip(row.amount),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl Record {
    /// The contract view, or `None` for a refused request (no reservation holds stock).
    pub fn to_reservation(&self) -> Option<Reservation> {
        let status = self.state.visible()?;
        let (items, amount) = self.priced.clone()?;
        Some(Reservation {
            order_id: self.order_id,
            status,
            currency: self.currency.clone(),
            items,
            amount,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    pub fn refused(&self) -> Option<(&str, Refusal)> {
        self.refused
            .as_ref()
            .map(|(sku, refusal)| (sku.as_str(), *refusal))
    }
}

const RECORD_COLUMNS: &str = "order_id, status, items, rejected_sku, rejected_reason, currency, \
                              priced_items, amount, created_at, updated_at";

/// What `reserve` did.
#[derive(Debug)]
pub enum Reserved {
    /// This call reserved and priced every line.
    Created(Record),
    /// This call refused the request (a line short, unknown, or not at the expected price or
    /// currency) and recorded why; no stock moved.
    Rejected { sku: String, refusal: Refusal },
    /// A record for the order already existed; nothing changed.
    Existing(Record),
}

/// Reserves every line of `request` or none, priced from the catalog, in one transaction, once
/// per order.
///
/// The reservation row is inserted first (`ON CONFLICT DO NOTHING`): a concurrent request for
/// the same order waits on that row and then finds it. The items are then locked in SKU order,
/// priced and checked, and either all taken at those prices or the record is marked `REJECTED`.
#[tracing::instrument(name = "db.reserve_stock", skip_all, fields(order_id = %request.order_id))]
pub async fn reserve(db: &Database, request: &ReservationRequest) -> Result<Reserved, sqlx::Error> {
    let mut lease = db.lease().await?;
    let reserved = reserve_on(&mut lease, request).await?;
    lease.done();
    Ok(reserved)
}

/// [`reserve`]'s transaction on `conn`.
async fn reserve_on(
    conn: &mut PgConnection,
    request: &ReservationRequest,
) -> Result<Reserved, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO reservations (order_id, status, items, currency) VALUES ($1, 'RESERVED', $2, $3)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(request.order_id)
    .bind(Json(request.items()))
    .bind(request.currency.code())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let existing = record_by_order(&mut *tx, request.order_id).await?;
        tx.commit().await?;
        return existing
            .map(Reserved::Existing)
            .ok_or_else(|| db::unexpected("a conflicting reservation row is gone"));
    }
    let catalog = lock_items(&mut tx, &request.skus()).await?;
    match domain::price_or_refuse(request, &catalog) {
        Pricing::Refused { sku, refusal } => {
            sqlx::query(
                "UPDATE reservations SET status = 'REJECTED', rejected_sku = $2,
                        rejected_reason = $3, updated_at = now()
                 WHERE order_id = $1",
            )
            .bind(request.order_id)
            .bind(&sku)
            .bind(Text(refusal))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Reserved::Rejected { sku, refusal })
        }
        Pricing::Priced { lines, amount } => {
            let record = take_stock(&mut tx, request, &lines, amount).await?;
            tx.commit().await?;
            Ok(Reserved::Created(record))
        }
    }
}

/// Moves every line's units from available to reserved (or straight to committed, for a request
/// that commits) and records the priced lines, total and state (`RESERVED` or `COMMITTED`; the
/// row was inserted `RESERVED`, the one unpriced state the table allows) on the reservation, in
/// one statement (the item rows are already locked by `lock_items`; a
/// request names each SKU once, so each row is updated once). The
/// `available >= quantity` guard is checked before (`domain::price_or_refuse`) under the same
/// locks; the table's CHECK makes a shortfall an error rather than negative stock.
async fn take_stock(
    conn: &mut PgConnection,
    request: &ReservationRequest,
    lines: &[PricedLine],
    amount: i64,
) -> Result<Record, sqlx::Error> {
    let (skus, quantities): (Vec<&str>, Vec<i64>) = request
        .lines
        .iter()
        .map(|line| (line.sku.as_str(), line.quantity.get()))
        .unzip();
    let (state, bucket) = request.placement();
    let into = column(bucket);
    // The column name comes from `column`, never from input.
    let row: RecordRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH taken AS (
             UPDATE items SET available = available - l.quantity,
                              {into} = {into} + l.quantity, updated_at = now()
             FROM unnest($4::text[], $5::bigint[]) AS l(sku, quantity)
             WHERE items.sku = l.sku)
         UPDATE reservations SET priced_items = $2, amount = $3, status = $6 WHERE order_id = $1
         RETURNING {RECORD_COLUMNS}"
    )))
    .bind(request.order_id)
    .bind(Json(lines))
    .bind(amount)
    .bind(skus)
    .bind(quantities)
    .bind(Text(state))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Locks the rows of `skus` in SKU order and returns their stock and price.
async fn lock_items(
    conn: &mut PgConnection,
    skus: &[String],
) -> Result<HashMap<String, CatalogEntry>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT sku, available, unit_price, currency FROM items WHERE sku = ANY($1)
         ORDER BY sku FOR UPDATE",
    )
    .bind(skus)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, available, unit_price, currency)| {
            (
                sku,
                CatalogEntry {
                    available,
                    unit_price,
                    currency,
                },
            )
        })
        .collect())
}

async fn record_by_order(
    conn: impl sqlx::PgExecutor<'_>,
    order_id: Uuid,
) -> Result<Option<Record>, sqlx::Error> {
    let row: Option<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM reservations WHERE order_id = $1"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Record::from))
}

#[tracing::instrument(name = "db.get_reservation", skip_all, fields(%order_id))]
pub async fn reservation(db: &Database, order_id: Uuid) -> Result<Option<Record>, sqlx::Error> {
    record_by_order(db, order_id).await
}

/// What `commit_or_release` did.
#[derive(Debug)]
pub enum Applied {
    /// Moved now (`true`) or already in that state (`false`).
    Done(Record, bool),
    /// In the opposite final state.
    Refused(RecordState),
    /// No reservation for the order.
    Missing,
}

/// Commits or releases the order's reservation (releasing a committed one returns its stock).
///
/// Each attempt is one statement, so it is atomic on its own and holds the item rows' locks only
/// while PostgreSQL runs it: for every state `action` applies from (`domain::sources`), move the
/// reservation from that state and its units between the two buckets. When no attempt applies,
/// the record is read and the domain says why (already in that state, moved the other way, no
/// reservation). A concurrent request that moves the record between the attempts and the read is
/// caught by trying again, a bounded number of times.
#[tracing::instrument(name = "db.commit_or_release", skip_all, fields(%order_id, action = %action))]
pub async fn commit_or_release(
    db: &Database,
    order_id: Uuid,
    action: ReservationAction,
) -> Result<Applied, sqlx::Error> {
    for _ in 0..3 {
        for from_state in domain::sources(action) {
            if let Transition::Apply { from, into, to } = domain::transition(action, from_state)
                && let Some(record) =
                    apply_transition(db, order_id, from_state, to, from, into).await?
            {
                return Ok(Applied::Done(record, true));
            }
        }
        let Some(record) = record_by_order(db, order_id).await? else {
            return Ok(Applied::Missing);
        };
        match domain::transition(action, record.state) {
            Transition::Missing => return Ok(Applied::Missing),
            Transition::Refuse(state) => return Ok(Applied::Refused(state)),
            Transition::Unchanged => return Ok(Applied::Done(record, false)),
            Transition::Apply { .. } => continue,
        }
    }
    Err(db::unexpected(format_args!(
        "the reservation of order {order_id} kept changing under a commit or release"
    )))
}

/// Moves the reservation from `from_state` to `to` and its units from bucket `from` to `into`, in
/// one statement; `None` when the reservation is not in `from_state`. The reservation row is
/// locked first, then the item rows. A request names each SKU once (`parse_line_items`) and item
/// rows are never deleted, so every line finds its one row;
/// a bucket that would go negative violates the table's CHECK and fails the whole statement
/// (PostgreSQL runs a data-modifying CTE to completion whether or not the query reads it).
async fn apply_transition(
    db: &Database,
    order_id: Uuid,
    from_state: RecordState,
    to: RecordState,
    from: Bucket,
    into: Bucket,
) -> Result<Option<Record>, sqlx::Error> {
    let (from, into) = (column(from), column(into));
    // Both column names come from `column`, never from input.
    let row: Option<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH moved AS (
             UPDATE reservations SET status = $3, updated_at = now()
             WHERE order_id = $1 AND status = $2
             RETURNING {RECORD_COLUMNS}),
         lines AS (
             SELECT l.sku, l.quantity
             FROM moved, jsonb_to_recordset(moved.items) AS l(sku text, quantity bigint)),
         stock AS (
             UPDATE items SET {from} = {from} - lines.quantity,
                              {into} = {into} + lines.quantity, updated_at = now()
             FROM lines WHERE items.sku = lines.sku
             RETURNING items.sku)
         SELECT moved.* FROM moved"
    )))
    .bind(order_id)
    .bind(Text(from_state))
    .bind(Text(to))
    .fetch_optional(db)
    .await?;
    Ok(row.map(Record::from))
}

/// The `items` column that holds a bucket's units.
fn column(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Available => "available",
        Bucket::Reserved => "reserved",
        Bucket::Committed => "committed",
    }
}
