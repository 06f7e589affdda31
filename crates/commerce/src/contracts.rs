//! The JSON bodies exchanged on the three service-to-service edges. Requests reject unknown
//! fields; responses are what the callee stores and replays.
//!
//! Every call is keyed by the order id, so repeating it (the mesh retries, and so do the saga and
//! the reconciler) is always safe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A SKU and quantity as they travel on the wire (validated by the receiver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub sku: String,
    pub quantity: i64,
}

/// Parses wire lines into validated stock lines (see [`crate::values::parse_stock_lines`]).
pub fn parse_line_items(
    items: &[LineItem],
) -> Result<Vec<crate::values::StockLine>, Vec<(String, String)>> {
    let raw: Vec<(String, i64)> = items
        .iter()
        .map(|item| (item.sku.clone(), item.quantity))
        .collect();
    crate::values::parse_stock_lines(&raw)
}

impl From<&crate::values::StockLine> for LineItem {
    fn from(line: &crate::values::StockLine) -> Self {
        Self {
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity.get(),
        }
    }
}

pub mod payment {
    use super::*;

    /// How the customer pays. `card_declined` is the documented test method that the payment
    /// service always declines.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum PaymentMethod {
        Card,
        CardDeclined,
    }

    /// `POST /api/v1/payments` (order-service → payment-service): pay for an order and reserve
    /// its stock. Idempotent per `order_id`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreatePayment {
        pub order_id: Uuid,
        pub amount: i64,
        pub currency: String,
        pub payment_method: PaymentMethod,
        pub items: Vec<LineItem>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum PaymentStatus {
        /// Authorised, stock not yet settled: an in-between state a retry completes.
        Authorized,
        /// Paid, and the stock is committed.
        Captured,
        /// Authorised, then released because the stock could not be reserved.
        Voided,
        /// Refused by the payment method; nothing was authorised.
        Declined,
        /// Captured, then paid back.
        Refunded,
    }

    /// Why a payment did not go through.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FailureReason {
        Declined,
        OutOfStock,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Payment {
        pub id: Uuid,
        pub order_id: Uuid,
        pub status: PaymentStatus,
        pub failure_reason: Option<FailureReason>,
        pub amount: i64,
        pub currency: String,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// `GET /api/v1/payments?order_id=…`
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PaymentList {
        pub items: Vec<Payment>,
    }
}

pub mod inventory {
    use super::*;

    /// `POST /api/v1/reservations` (payment-service → inventory-service): reserve stock for an
    /// order, all lines or none. Idempotent per `order_id`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateReservation {
        pub order_id: Uuid,
        pub items: Vec<LineItem>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ReservationStatus {
        /// Stock taken from `available`, not yet final.
        Reserved,
        /// Final: the stock is sold.
        Committed,
        /// Given back to `available`.
        Released,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reservation {
        pub order_id: Uuid,
        pub status: ReservationStatus,
        pub items: Vec<LineItem>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// Problem type slug inventory-service answers (409) when stock is short or a SKU unknown;
    /// the problem's `sku` member names the first line that could not be reserved.
    pub const OUT_OF_STOCK: &str = "out-of-stock";

    /// `PUT /api/v1/items/{sku}` (operators and seeding only; no service calls it).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SetStock {
        pub available: i64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Item {
        pub sku: String,
        pub available: i64,
        pub reserved: i64,
        pub committed: i64,
    }
}

pub mod notify {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum NotificationKind {
        OrderConfirmed,
        OrderFailed,
    }

    impl NotificationKind {
        /// The wire and database spelling.
        pub fn as_str(self) -> &'static str {
            match self {
                Self::OrderConfirmed => "order_confirmed",
                Self::OrderFailed => "order_failed",
            }
        }

        pub fn parse(value: &str) -> Option<Self> {
            [Self::OrderConfirmed, Self::OrderFailed]
                .into_iter()
                .find(|kind| kind.as_str() == value)
        }
    }

    /// `POST /api/v1/notifications` (order-service's outbox → notify-service). Idempotent per
    /// `(order_id, kind)`: the first delivery is kept, repeats answer 200 with it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateNotification {
        pub order_id: Uuid,
        pub kind: NotificationKind,
        pub message: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Notification {
        pub id: Uuid,
        pub order_id: Uuid,
        pub kind: NotificationKind,
        pub message: String,
        pub delivered_at: DateTime<Utc>,
    }

    /// `GET /api/v1/notifications?order_id=…`
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct NotificationList {
        pub items: Vec<Notification>,
    }
}
