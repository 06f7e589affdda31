//! The invariants of DESIGN.md, checked with SQL across the four services' databases after a run
//! (faults included), once every order has settled:
//!
//! - every order ends `CONFIRMED` or `FAILED`;
//! - `CONFIRMED` ⇔ exactly one captured payment and one committed reservation for it;
//! - `FAILED` ⇔ no net charge (declined or voided) and no net reservation (released, or
//!   rejected for lack of stock);
//! - per SKU: initial stock = available + committed (nothing left reserved); never negative;
//! - one notification per (order, kind), of the kind that matches the outcome.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::{Cluster, Svc};

/// Checks every invariant; `initial_stock` is what each SKU was seeded with.
pub async fn assert_invariants(cluster: &Cluster, initial_stock: &[(&str, i64)]) {
    cluster.wait_until_settled().await;
    let orders_db = cluster.db(Svc::Order).await;
    let payments_db = cluster.db(Svc::Payment).await;
    let inventory_db = cluster.db(Svc::Inventory).await;
    let notify_db = cluster.db(Svc::Notify).await;

    let orders: Vec<(Uuid, String, Option<Uuid>)> =
        sqlx::query_as("SELECT id, status, payment_id FROM orders")
            .fetch_all(&orders_db)
            .await
            .unwrap();
    let payments: Vec<(Uuid, Uuid, String)> =
        sqlx::query_as("SELECT id, order_id, status FROM payments")
            .fetch_all(&payments_db)
            .await
            .unwrap();
    let reservations: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT order_id, status FROM reservations")
            .fetch_all(&inventory_db)
            .await
            .unwrap();
    let notifications: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, kind, count(*) FROM notifications GROUP BY order_id, kind",
    )
    .fetch_all(&notify_db)
    .await
    .unwrap();

    let mut payments_by_order: HashMap<Uuid, Vec<(Uuid, &str)>> = HashMap::new();
    for (id, order_id, status) in &payments {
        payments_by_order
            .entry(*order_id)
            .or_default()
            .push((*id, status));
    }
    let mut reservations_by_order: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for (order_id, status) in &reservations {
        reservations_by_order
            .entry(*order_id)
            .or_default()
            .push(status);
    }
    let mut notifications_by_order: HashMap<Uuid, BTreeMap<&str, i64>> = HashMap::new();
    for (order_id, kind, count) in &notifications {
        notifications_by_order
            .entry(*order_id)
            .or_default()
            .insert(kind, *count);
    }

    for (id, status, payment_id) in &orders {
        let pays = payments_by_order.get(id).cloned().unwrap_or_default();
        let reserves = reservations_by_order.get(id).cloned().unwrap_or_default();
        let notes = notifications_by_order.get(id).cloned().unwrap_or_default();
        match status.as_str() {
            "CONFIRMED" => {
                let captured: Vec<_> = pays.iter().filter(|(_, s)| *s == "CAPTURED").collect();
                assert_eq!(
                    captured.len(),
                    1,
                    "CONFIRMED order {id}: exactly one captured payment, got {pays:?}"
                );
                assert_eq!(
                    Some(captured[0].0),
                    *payment_id,
                    "CONFIRMED order {id} names its captured payment"
                );
                assert_eq!(
                    reserves,
                    ["COMMITTED"],
                    "CONFIRMED order {id}: one committed reservation"
                );
                assert_eq!(
                    notes,
                    BTreeMap::from([("order_confirmed", 1)]),
                    "order {id}: one confirmation"
                );
            }
            "FAILED" => {
                assert!(
                    pays.iter()
                        .all(|(_, s)| matches!(*s, "DECLINED" | "VOIDED")),
                    "FAILED order {id}: no net charge, got {pays:?}"
                );
                assert!(
                    reserves
                        .iter()
                        .all(|s| matches!(*s, "RELEASED" | "REJECTED")),
                    "FAILED order {id}: no net reservation, got {reserves:?}"
                );
                assert_eq!(
                    notes,
                    BTreeMap::from([("order_failed", 1)]),
                    "order {id}: one failure notice"
                );
            }
            other => panic!("order {id} ended {other}, not CONFIRMED or FAILED"),
        }
    }
    let order_ids: std::collections::HashSet<Uuid> = orders.iter().map(|(id, _, _)| *id).collect();
    for (_, order_id, status) in &payments {
        assert!(
            order_ids.contains(order_id),
            "payment {status} for unknown order {order_id}"
        );
    }
    for (order_id, _) in &reservations {
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
    .fetch_all(&inventory_db)
    .await
    .unwrap();
    let committed_by_sku: HashMap<String, i64> = committed_by_sku.into_iter().collect();
    for (sku, initial) in initial_stock {
        let (available, reserved, committed): (i64, i64, i64) =
            sqlx::query_as("SELECT available, reserved, committed FROM items WHERE sku = $1")
                .bind(sku)
                .fetch_one(&inventory_db)
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
