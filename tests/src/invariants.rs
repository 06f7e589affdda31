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
//!
//! [`check_invariants`] returns every violation it finds as a value ([`Violation`]); the tests
//! assert there is none ([`assert_invariants`]), check-invariants and the soak print them.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    time::Duration,
};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Cluster, poll};

/// `(id, status, payment_id, total_amount, items)` of an order row.
type OrderRow = (Uuid, String, Option<Uuid>, Option<i64>, Value);
/// `(payment id, status, amount)` of one of an order's payments.
type PaymentOf<'a> = (Uuid, &'a str, Option<i64>);
/// `(status, amount, priced_items)` of an order's reservation.
type ReservationOf<'a> = (&'a str, Option<i64>, Option<&'a Value>);
/// `(sku, quantity, unit_price)` of an order or reservation line.
type Line = (String, i64, Option<i64>);

/// The four services' databases of one tenant.
pub struct Databases {
    pub orders: PgPool,
    pub payments: PgPool,
    pub inventory: PgPool,
    pub notify: PgPool,
}

/// What a [`Violation`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Order(Uuid),
    Sku(String),
}

/// One invariant that does not hold: which, about what, what it expects and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub subject: Subject,
    /// The invariant, in a few words (e.g. `the amount charged is the order's total`).
    pub invariant: &'static str,
    pub expected: String,
    pub found: String,
}

impl Violation {
    fn new(
        subject: Subject,
        invariant: &'static str,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Violation {
        Violation {
            subject,
            invariant,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Order(id) => write!(f, "order {id}")?,
            Subject::Sku(sku) => write!(f, "SKU {sku}")?,
        }
        write!(
            f,
            ": {}: expected {}, found {}",
            self.invariant, self.expected, self.found
        )
    }
}

/// What was left when [`wait_until_settled`] stopped waiting.
#[derive(Debug)]
pub enum Unsettled {
    /// Orders still `PENDING` or `CANCELLING` and notifications still undelivered.
    Left { orders: i64, notifications: i64 },
    /// The orders database did not answer the last count.
    Unanswered(sqlx::Error),
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsettled::Left {
                orders,
                notifications,
            } => write!(
                f,
                "{orders} orders still PENDING or CANCELLING, {notifications} notifications undelivered"
            ),
            Unsettled::Unanswered(e) => write!(f, "the orders database did not answer: {e}"),
        }
    }
}

/// Checks every invariant (once every order settled); `initial_stock` is what each SKU was
/// seeded with. Fails the test with every violation found.
pub async fn assert_invariants(cluster: &Cluster, initial_stock: &[(&str, i64)]) {
    cluster.wait_until_settled().await;
    let violations = check_invariants(&cluster.databases().await, initial_stock)
        .await
        .expect("the databases answer");
    assert!(
        violations.is_empty(),
        "{} invariant violations:\n{}",
        violations.len(),
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Waits until no order is `PENDING` or `CANCELLING` and the outbox is empty, for at most
/// `within`; what was left otherwise.
pub async fn wait_until_settled(orders: &PgPool, within: Duration) -> Result<(), Unsettled> {
    poll(within, || async {
        let (pending, undelivered): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM orders WHERE status IN ('PENDING', 'CANCELLING')),
                    (SELECT count(*) FROM outbox WHERE delivered_at IS NULL)",
        )
        .fetch_one(orders)
        .await
        .map_err(Unsettled::Unanswered)?;
        match pending + undelivered {
            0 => Ok(()),
            _ => Err(Unsettled::Left {
                orders: pending,
                notifications: undelivered,
            }),
        }
    })
    .await
}

/// Every violation of the invariants in settled databases (see [`wait_until_settled`]);
/// `initial_stock` is what each SKU was seeded with. An error only when a database does not
/// answer.
pub async fn check_invariants(
    dbs: &Databases,
    initial_stock: &[(&str, i64)],
) -> Result<Vec<Violation>, sqlx::Error> {
    let orders: Vec<OrderRow> =
        sqlx::query_as("SELECT id, status, payment_id, total_amount, items FROM orders")
            .fetch_all(&dbs.orders)
            .await?;
    let payments: Vec<(Uuid, Uuid, String, Option<i64>)> =
        sqlx::query_as("SELECT id, order_id, status, amount FROM payments")
            .fetch_all(&dbs.payments)
            .await?;
    let reservations: Vec<(Uuid, String, Option<i64>, Option<Value>)> =
        sqlx::query_as("SELECT order_id, status, amount, priced_items FROM reservations")
            .fetch_all(&dbs.inventory)
            .await?;
    let notifications: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, kind, count(*) FROM notifications GROUP BY order_id, kind",
    )
    .fetch_all(&dbs.notify)
    .await?;

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

    let mut violations = Vec::new();
    for order in &orders {
        let id = order.0;
        violations.extend(order_violations(
            order,
            payments_by_order.get(&id).map_or(&[], Vec::as_slice),
            reservations_by_order.get(&id).map_or(&[], Vec::as_slice),
            notifications_by_order.get(&id).cloned().unwrap_or_default(),
        ));
    }
    let order_ids: HashSet<Uuid> = orders.iter().map(|(id, ..)| *id).collect();
    for (_, order_id, status, _) in &payments {
        if !order_ids.contains(order_id) {
            violations.push(Violation::new(
                Subject::Order(*order_id),
                "every payment is for a stored order",
                "the order",
                format!("a {status} payment and no order"),
            ));
        }
    }
    for (order_id, status, ..) in &reservations {
        if !order_ids.contains(order_id) {
            violations.push(Violation::new(
                Subject::Order(*order_id),
                "every reservation is for a stored order",
                "the order",
                format!("a {status} reservation and no order"),
            ));
        }
    }
    violations.extend(stock_violations(&dbs.inventory, initial_stock).await?);
    Ok(violations)
}

/// The violations of one order's invariants, given its payments, reservations and
/// notifications (kind → count).
fn order_violations(
    (id, status, payment_id, total, items): &OrderRow,
    pays: &[PaymentOf],
    reserves: &[ReservationOf],
    notes: BTreeMap<&str, i64>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut violated = |invariant, expected: &dyn fmt::Display, found: &dyn fmt::Display| {
        violations.push(Violation::new(
            Subject::Order(*id),
            invariant,
            expected,
            found,
        ))
    };
    let expected_notes: &[(&str, i64)] = match status.as_str() {
        "CONFIRMED" => &[("order_confirmed", 1)],
        "CANCELLED" => &[("order_cancelled", 1), ("order_confirmed", 1)],
        "FAILED" => &[("order_failed", 1)],
        other => {
            violated(
                "every order settles",
                &"CONFIRMED, FAILED or CANCELLED",
                &other,
            );
            return violations;
        }
    };
    let expected_notes = BTreeMap::from_iter(expected_notes.iter().copied());
    if notes != expected_notes {
        violated(
            "one notification of each kind the outcome has",
            &format!("{expected_notes:?}"),
            &format!("{notes:?}"),
        );
    }
    let (payment_status, reservation_status) = match status.as_str() {
        "CONFIRMED" => ("CAPTURED", "COMMITTED"),
        "CANCELLED" => ("REFUNDED", "RETURNED"),
        _ => {
            if !pays
                .iter()
                .all(|(_, s, _)| matches!(*s, "DECLINED" | "VOIDED"))
            {
                violated(
                    "a FAILED order has no net charge",
                    &"only DECLINED or VOIDED payments",
                    &format!("{pays:?}"),
                );
            }
            if !reserves
                .iter()
                .all(|(s, _, _)| matches!(*s, "RELEASED" | "REJECTED"))
            {
                violated(
                    "a FAILED order has no net reservation",
                    &"only RELEASED or REJECTED reservations",
                    &format!("{reserves:?}"),
                );
            }
            if total.is_some() {
                violated(
                    "a FAILED order was charged nothing",
                    &"no total",
                    &format!("{total:?}"),
                );
            }
            return violations;
        }
    };

    // CONFIRMED or CANCELLED: charged once, at the catalog's prices, and reserved once.
    if total.is_none() {
        violated("a charged order has its total", &"a total", &"none");
    }
    let paid: Vec<_> = pays
        .iter()
        .filter(|(_, s, _)| *s == payment_status)
        .collect();
    match paid.as_slice() {
        [(paid_id, _, amount)] => {
            if Some(*paid_id) != *payment_id {
                violated(
                    "the order names its payment",
                    &format!("{paid_id}"),
                    &format!("{payment_id:?}"),
                );
            }
            if amount != total {
                violated(
                    "the amount charged is the order's total",
                    &format!("{total:?}"),
                    &format!("{amount:?}"),
                );
            }
        }
        _ => violated(
            "exactly one payment, in the outcome's state",
            &format!("one {payment_status} payment"),
            &format!("{pays:?}"),
        ),
    }
    let statuses: Vec<&str> = reserves.iter().map(|r| r.0).collect();
    if statuses != [reservation_status] {
        violated(
            "exactly one reservation, in the outcome's state",
            &format!("[{reservation_status:?}]"),
            &format!("{statuses:?}"),
        );
    }
    let [(_, reserved_amount, priced)] = reserves else {
        return violations;
    };
    if reserved_amount != total {
        violated(
            "the amount reserved is the order's total",
            &format!("{total:?}"),
            &format!("{reserved_amount:?}"),
        );
    }
    match (lines(items), priced.and_then(lines)) {
        (Some(ordered), Some(priced)) => {
            for line in priced.iter().filter(|l| !ordered.contains(l)) {
                violated(
                    "the order shows the catalog price it was charged",
                    &format!("{line:?} among its lines"),
                    &format!("{ordered:?}"),
                );
            }
        }
        _ => violated(
            "the order's and its reservation's lines are readable",
            &"two arrays of {sku, quantity, unit_price}",
            &format!("{items} and {priced:?}"),
        ),
    }
    violations
}

/// `(sku, quantity, unit_price)` of each line of a JSON array of order lines; `None` when it is
/// not one.
fn lines(items: &Value) -> Option<Vec<Line>> {
    items
        .as_array()?
        .iter()
        .map(|l| {
            Some((
                l["sku"].as_str()?.to_owned(),
                l["quantity"].as_i64()?,
                l["unit_price"].as_i64(),
            ))
        })
        .collect()
}

/// The violations of the stock invariants of each SKU in `initial_stock`.
async fn stock_violations(
    inventory: &PgPool,
    initial_stock: &[(&str, i64)],
) -> Result<Vec<Violation>, sqlx::Error> {
    let committed_by_sku: Vec<(String, i64)> = sqlx::query_as(
        "SELECT line->>'sku', sum((line->>'quantity')::bigint)::bigint
         FROM reservations, jsonb_array_elements(items) AS line
         WHERE status = 'COMMITTED' GROUP BY 1",
    )
    .fetch_all(inventory)
    .await?;
    let committed_by_sku: HashMap<String, i64> = committed_by_sku.into_iter().collect();
    let mut violations = Vec::new();
    for (sku, initial) in initial_stock {
        let mut violated = |invariant, expected: String, found: String| {
            violations.push(Violation::new(
                Subject::Sku((*sku).to_owned()),
                invariant,
                expected,
                found,
            ))
        };
        let item: Option<(i64, i64, i64)> =
            sqlx::query_as("SELECT available, reserved, committed FROM items WHERE sku = $1")
                .bind(sku)
                .fetch_optional(inventory)
                .await?;
        let Some((available, reserved, committed)) = item else {
            violated(
                "every seeded SKU is in the catalog",
                format!("an item with {initial} units"),
                "none".into(),
            );
            continue;
        };
        if available < 0 || reserved < 0 || committed < 0 {
            violated(
                "stock is never negative",
                "available, reserved and committed ≥ 0".into(),
                format!("{available}, {reserved} and {committed}"),
            );
        }
        if reserved != 0 {
            violated(
                "nothing is left reserved once every order settled",
                "0 reserved".into(),
                format!("{reserved} reserved"),
            );
        }
        if available + committed != *initial {
            violated(
                "initial stock = available + committed",
                initial.to_string(),
                format!("{available} + {committed}"),
            );
        }
        let reserved_committed = committed_by_sku.get(*sku).copied().unwrap_or(0);
        if committed != reserved_committed {
            violated(
                "committed stock = the committed reservations' quantities",
                reserved_committed.to_string(),
                committed.to_string(),
            );
        }
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TOTAL: i64 = 300;

    fn order(status: &str, payment_id: Option<Uuid>, total: Option<i64>) -> OrderRow {
        let items = json!([{"sku": "A", "quantity": 3, "unit_price": 100}]);
        (Uuid::nil(), status.into(), payment_id, total, items)
    }

    fn priced() -> Value {
        json!([{"sku": "A", "quantity": 3, "unit_price": 100}])
    }

    fn invariants(violations: &[Violation]) -> Vec<&'static str> {
        violations.iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_confirmed_order_charged_and_reserved_once_at_its_total_holds() {
        let payment = Uuid::from_u128(7);
        let priced = priced();
        let violations = order_violations(
            &order("CONFIRMED", Some(payment), Some(TOTAL)),
            &[(payment, "CAPTURED", Some(TOTAL))],
            &[("COMMITTED", Some(TOTAL), Some(&priced))],
            BTreeMap::from([("order_confirmed", 1)]),
        );
        assert_eq!(violations, []);
    }

    #[test]
    fn a_confirmed_order_charged_twice_at_another_price_is_reported_with_what_was_found() {
        let (first, second) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let other_price = json!([{"sku": "A", "quantity": 3, "unit_price": 90}]);
        let violations = order_violations(
            &order("CONFIRMED", Some(first), Some(TOTAL)),
            &[
                (first, "CAPTURED", Some(TOTAL)),
                (second, "CAPTURED", Some(TOTAL)),
            ],
            &[("COMMITTED", Some(270), Some(&other_price))],
            BTreeMap::new(),
        );
        assert_eq!(
            invariants(&violations),
            [
                "one notification of each kind the outcome has",
                "exactly one payment, in the outcome's state",
                "the amount reserved is the order's total",
                "the order shows the catalog price it was charged",
            ]
        );
        assert_eq!(violations[1].expected, "one CAPTURED payment");
        assert_eq!(violations[2].found, "Some(270)");
        assert_eq!(
            violations[2].to_string(),
            format!(
                "order {}: the amount reserved is the order's total: expected Some(300), found Some(270)",
                Uuid::nil()
            )
        );
    }

    #[test]
    fn a_failed_order_with_a_net_charge_or_reservation_is_reported() {
        let payment = Uuid::from_u128(7);
        let violations = order_violations(
            &order("FAILED", None, Some(TOTAL)),
            &[(payment, "CAPTURED", Some(TOTAL))],
            &[("COMMITTED", Some(TOTAL), None)],
            BTreeMap::from([("order_failed", 1)]),
        );
        assert_eq!(
            invariants(&violations),
            [
                "a FAILED order has no net charge",
                "a FAILED order has no net reservation",
                "a FAILED order was charged nothing",
            ]
        );
    }

    #[test]
    fn an_order_left_pending_is_reported_and_nothing_else_about_it() {
        let violations = order_violations(&order("PENDING", None, None), &[], &[], BTreeMap::new());
        assert_eq!(invariants(&violations), ["every order settles"]);
        assert_eq!(violations[0].found, "PENDING");
    }
}
