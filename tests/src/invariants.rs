//! The invariants of DESIGN.md, checked with SQL across the four services' databases after a run
//! (faults included), once every order has settled:
//!
//! - every order ends `CONFIRMED`, `FAILED` or `CANCELLED`;
//! - `CONFIRMED` ⇔ exactly one captured payment and one committed reservation for it, and the
//!   amount captured = the reservation's priced amount = the order's total, at the reservation's
//!   catalog prices line by line;
//! - `CANCELLED` ⇔ exactly one refunded payment and one returned reservation (money and stock
//!   back), with the same amounts;
//! - `FAILED` ⇔ no net charge (declined or voided) and no net reservation (released, or
//!   rejected for lack of stock or a changed price);
//! - per SKU: initial stock = available + committed (nothing left reserved); never negative;
//! - one notification per (order, kind), of the kinds that match the outcome.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use sqlx::PgPool;
use uuid::Uuid;

use crate::{Cluster, Svc, eventually};

/// `(id, status, payment_id, total_amount, items)` of an order row.
type OrderRow = (Uuid, String, Option<Uuid>, Option<i64>, serde_json::Value);
/// `(payment id, status, amount)` of one of an order's payments.
type PaymentOf<'a> = (Uuid, &'a str, Option<i64>);
/// `(status, amount, priced_items)` of an order's reservation.
type ReservationOf<'a> = (&'a str, Option<i64>, Option<&'a serde_json::Value>);

/// The four services' databases of one tenant.
pub struct Databases {
    pub orders: PgPool,
    pub payments: PgPool,
    pub inventory: PgPool,
    pub notify: PgPool,
}

/// Checks every invariant; `initial_stock` is what each SKU was seeded with.
pub async fn assert_invariants(cluster: &Cluster, initial_stock: &[(&str, i64)]) {
    cluster.wait_until_settled().await;
    let dbs = Databases {
        orders: cluster.db(Svc::Order).await,
        payments: cluster.db(Svc::Payment).await,
        inventory: cluster.db(Svc::Inventory).await,
        notify: cluster.db(Svc::Notify).await,
    };
    assert_invariants_in(&dbs, initial_stock).await;
}

/// Waits until no order is `PENDING` or `CANCELLING` and the outbox is empty.
pub async fn wait_until_settled(orders: &PgPool, within: Duration) {
    eventually(
        "every order settled and every notification delivered",
        within,
        || {
            let orders = orders.clone();
            async move {
                let pending: i64 = sqlx::query_scalar(
                    "SELECT (SELECT count(*) FROM orders WHERE status IN ('PENDING', 'CANCELLING'))
                      + (SELECT count(*) FROM outbox WHERE delivered_at IS NULL)",
                )
                .fetch_one(&orders)
                .await
                .ok()?;
                (pending == 0).then_some(())
            }
        },
    )
    .await;
}

/// Checks every invariant on settled databases (see [`wait_until_settled`]); panics with the
/// first violation.
pub async fn assert_invariants_in(dbs: &Databases, initial_stock: &[(&str, i64)]) {
    let (orders_db, payments_db, inventory_db, notify_db) =
        (&dbs.orders, &dbs.payments, &dbs.inventory, &dbs.notify);

    let orders: Vec<OrderRow> =
        sqlx::query_as("SELECT id, status, payment_id, total_amount, items FROM orders")
            .fetch_all(orders_db)
            .await
            .unwrap();
    let payments: Vec<(Uuid, Uuid, String, Option<i64>)> =
        sqlx::query_as("SELECT id, order_id, status, amount FROM payments")
            .fetch_all(payments_db)
            .await
            .unwrap();
    let reservations: Vec<(Uuid, String, Option<i64>, Option<serde_json::Value>)> =
        sqlx::query_as("SELECT order_id, status, amount, priced_items FROM reservations")
            .fetch_all(inventory_db)
            .await
            .unwrap();
    let notifications: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, kind, count(*) FROM notifications GROUP BY order_id, kind",
    )
    .fetch_all(notify_db)
    .await
    .unwrap();

    let mut payments_by_order: HashMap<Uuid, Vec<PaymentOf>> = HashMap::new();
    for (id, order_id, status, amount) in &payments {
        payments_by_order
            .entry(*order_id)
            .or_default()
            .push((*id, status, *amount));
    }
    let mut reservations_by_order: HashMap<Uuid, Vec<ReservationOf>> = HashMap::new();
    for (order_id, status, amount, priced) in &reservations {
        reservations_by_order.entry(*order_id).or_default().push((
            status,
            *amount,
            priced.as_ref(),
        ));
    }
    let mut notifications_by_order: HashMap<Uuid, BTreeMap<&str, i64>> = HashMap::new();
    for (order_id, kind, count) in &notifications {
        notifications_by_order
            .entry(*order_id)
            .or_default()
            .insert(kind, *count);
    }

    for (id, status, payment_id, total, items) in &orders {
        let pays = payments_by_order.get(id).cloned().unwrap_or_default();
        let reserves = reservations_by_order.get(id).cloned().unwrap_or_default();
        let notes = notifications_by_order.get(id).cloned().unwrap_or_default();
        let charged = |payment_status: &str, reservation_status: &str| {
            let paid: Vec<_> = pays
                .iter()
                .filter(|(_, s, _)| *s == payment_status)
                .collect();
            assert_eq!(
                paid.len(),
                1,
                "{status} order {id}: exactly one {payment_status} payment, got {pays:?}"
            );
            assert_eq!(
                Some(paid[0].0),
                *payment_id,
                "{status} order {id} names its payment"
            );
            assert_eq!(
                reserves.iter().map(|r| r.0).collect::<Vec<_>>(),
                [reservation_status],
                "{status} order {id}: one {reservation_status} reservation"
            );
            let (_, reserved_amount, priced) = reserves[0];
            assert!(total.is_some(), "{status} order {id} has its total");
            assert_eq!(
                paid[0].2, *total,
                "order {id}: charged amount = order total"
            );
            assert_eq!(
                reserved_amount, *total,
                "order {id}: reservation amount = order total"
            );
            let order_prices: Vec<(String, i64, Option<i64>)> = items
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["sku"].as_str().unwrap().to_owned(),
                        l["quantity"].as_i64().unwrap(),
                        l["unit_price"].as_i64(),
                    )
                })
                .collect();
            for line in priced.and_then(|p| p.as_array()).unwrap() {
                let want = (
                    line["sku"].as_str().unwrap().to_owned(),
                    line["quantity"].as_i64().unwrap(),
                    line["unit_price"].as_i64(),
                );
                assert!(
                    order_prices.contains(&want),
                    "order {id} shows the catalog price it was charged: {want:?} in {order_prices:?}"
                );
            }
        };
        match status.as_str() {
            "CONFIRMED" => {
                charged("CAPTURED", "COMMITTED");
                assert_eq!(
                    notes,
                    BTreeMap::from([("order_confirmed", 1)]),
                    "order {id}: one confirmation"
                );
            }
            "CANCELLED" => {
                charged("REFUNDED", "RETURNED");
                assert_eq!(
                    notes,
                    BTreeMap::from([("order_cancelled", 1), ("order_confirmed", 1)]),
                    "order {id}: confirmed, then cancelled"
                );
            }
            "FAILED" => {
                assert!(
                    pays.iter()
                        .all(|(_, s, _)| matches!(*s, "DECLINED" | "VOIDED")),
                    "FAILED order {id}: no net charge, got {pays:?}"
                );
                assert!(
                    reserves
                        .iter()
                        .all(|(s, _, _)| matches!(*s, "RELEASED" | "REJECTED")),
                    "FAILED order {id}: no net reservation, got {reserves:?}"
                );
                assert_eq!(total, &None, "FAILED order {id} was charged nothing");
                assert_eq!(
                    notes,
                    BTreeMap::from([("order_failed", 1)]),
                    "order {id}: one failure notice"
                );
            }
            other => panic!("order {id} ended {other}, not CONFIRMED, FAILED or CANCELLED"),
        }
    }
    let order_ids: std::collections::HashSet<Uuid> = orders.iter().map(|(id, ..)| *id).collect();
    for (_, order_id, status, _) in &payments {
        assert!(
            order_ids.contains(order_id),
            "payment {status} for unknown order {order_id}"
        );
    }
    for (order_id, ..) in &reservations {
        assert!(
            order_ids.contains(order_id),
            "reservation for unknown order {order_id}"
        );
    }

    let committed_by_sku: Vec<(String, i64)> = sqlx::query_as(
        "SELECT line->>'sku', sum((line->>'quantity')::bigint)::bigint
         FROM reservations, jsonb_array_elements(items) AS line
         WHERE status = 'COMMITTED' GROUP BY 1",
    )
    .fetch_all(inventory_db)
    .await
    .unwrap();
    let committed_by_sku: HashMap<String, i64> = committed_by_sku.into_iter().collect();
    for (sku, initial) in initial_stock {
        let (available, reserved, committed): (i64, i64, i64) =
            sqlx::query_as("SELECT available, reserved, committed FROM items WHERE sku = $1")
                .bind(sku)
                .fetch_one(inventory_db)
                .await
                .unwrap();
        assert!(
            available >= 0 && reserved >= 0 && committed >= 0,
            "{sku}: never negative"
        );
        assert_eq!(
            reserved, 0,
            "{sku}: nothing left reserved once every order settled"
        );
        assert_eq!(
            available + committed,
            *initial,
            "{sku}: initial = available + committed"
        );
        assert_eq!(
            committed,
            committed_by_sku.get(*sku).copied().unwrap_or(0),
            "{sku}: committed stock = the committed reservations' quantities"
        );
    }
}
